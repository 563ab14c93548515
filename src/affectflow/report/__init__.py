"""affectflow.report."""
