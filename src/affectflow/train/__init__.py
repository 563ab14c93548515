"""affectflow.train."""
