"""The extractors of the pipeline, one module each; `affectflow.features.registry` finds them."""
