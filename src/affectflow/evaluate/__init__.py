"""affectflow.evaluate."""
