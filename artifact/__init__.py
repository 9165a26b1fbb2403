"""Reproducible causal tracing of factual recall from text and speech in speech-text language models."""

__version__ = "0.1.0"
