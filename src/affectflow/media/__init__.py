"""affectflow.media."""
