"""GNOCCHI Explorer core: data, models, training, sampling, metrics and latent navigation."""

from .data import Provenance, TrialData, load_dataset
from .errors import DataError, GnocchiError
from .models import load_model

__all__ = ["DataError", "GnocchiError", "Provenance", "TrialData", "load_dataset", "load_model"]
