"""Generative models behind one interface: `encode`, `generate`, `sample_prior`, `load_model`."""

from .base import Generated, GenerativeModel, load_model

__all__ = ["Generated", "GenerativeModel", "load_model"]
