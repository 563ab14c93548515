"""affectflow.demo."""
