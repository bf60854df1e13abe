"""Metrics as pure functions of arrays (in the spirit of nlb_tools): easy to test and reuse."""

from __future__ import annotations

import numpy as np


def behaviour_axes(codes: np.ndarray, behaviour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares fit codes ≈ behaviour · Aᵀ + c0.

    ``codes`` (n, L), ``behaviour`` (n, K). Returns A (L, K) and c0 (L,). Column k of A is the
    code displacement for one unit of behavioural variable k with the others held fixed: the
    axis to navigate along.
    """
    design = np.column_stack([behaviour, np.ones(len(behaviour))])
    coef, *_ = np.linalg.lstsq(design, codes, rcond=None)
    return coef[:-1].T, coef[-1]


def code_snr(codes: np.ndarray, axis: np.ndarray, conditions: np.ndarray) -> float:
    """Signal-to-noise ratio of codes along ``axis`` (Fig 2D).

    Project each code on the unit vector along ``axis``; SNR = variance across conditions of
    the per-condition mean projection ÷ mean over conditions of the within-condition
    variance of the projection. Conditions with a single trial add no within-condition term.
    """
    unit = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    projection = np.asarray(codes, dtype=np.float64) @ unit
    labels = np.unique(conditions)
    means = np.array([projection[conditions == c].mean() for c in labels])
    within = [projection[conditions == c].var() for c in labels if (conditions == c).sum() > 1]
    return float(means.var() / np.mean(within))


def r2_per_neuron(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Coefficient of determination per neuron (last axis), pooling all other axes.

    R²_j = 1 − Σ(truth − predicted)² / Σ(truth − mean(truth))², sums over trials and bins of
    neuron j. 1 is perfect; 0 is no better than the neuron's mean; it can be negative.
    """
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, truth.shape[-1])
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1, predicted.shape[-1])
    residual = ((truth - predicted) ** 2).sum(axis=0)
    total = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    return 1.0 - residual / total


def condition_average(values: np.ndarray, conditions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the trials of each condition: (conditions, …) and the condition labels."""
    labels = np.unique(conditions)
    return np.stack([values[conditions == c].mean(axis=0) for c in labels]), labels
