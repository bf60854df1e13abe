"""Data: the TrialData contract, importers for real recordings, synthetic data, preprocessing."""

from .trialdata import SPLITS, TRIAL_COLUMNS, Provenance, TrialData, load_dataset

__all__ = ["SPLITS", "TRIAL_COLUMNS", "Provenance", "TrialData", "load_dataset"]
