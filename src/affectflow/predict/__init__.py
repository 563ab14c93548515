"""Applying trained models: to a corpus's dataset (`corpus`), to raw media (`clip`), and as weak
labelers of other corpora (`weak`)."""
