"""affectflow.ingest."""
