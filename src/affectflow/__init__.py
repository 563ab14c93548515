"""affectflow: raw recordings of people speaking to multimodal affect features and models."""

__version__ = "0.1.0"
