"""affectflow.features."""
