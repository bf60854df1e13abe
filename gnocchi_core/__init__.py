"""GNOCCHI Explorer core: data, models, training, sampling, metrics and latent navigation."""

from .data import Provenance, TrialData, load_dataset
from .errors import DataError, GnocchiError

__all__ = ["DataError", "GnocchiError", "Provenance", "TrialData", "load_dataset"]
