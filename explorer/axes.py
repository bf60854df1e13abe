"""The directions the explorer navigates codes along, and how it sorts neurons, fitted once per workspace.

* reach variables: `behaviour_axes` (codes regressed on start/target jointly), as the evaluation;
* any other continuous trial variable: `variable_axis`, the same regression with that variable added;
* conditions (data without kinematics): `condition_axes`, the leading linear-discriminant directions;
* neurons: by preferred reach angle, else by the condition of peak rate, else by their first-PC loading.

Plain numpy / scipy, tested without a browser.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gnocchi_core.analysis.metrics import Undefined, behaviour_axes, condition_discriminants, principal_axes

def condition_axes(codes: np.ndarray, conditions: np.ndarray, n: int = 2) -> np.ndarray:
    """The first ``n`` linear-discriminant directions of ``codes`` (trials, L) by ``conditions``, as the
    evaluation's code SNR by condition uses them (`metrics.condition_discriminants`): unit vectors (k, L);
    none (0, L) when the codes cannot separate conditions (one condition, too few trials, constant codes)."""
    try:
        return condition_discriminants(codes, conditions, n)
    except Undefined:
        return np.zeros((0, np.shape(codes)[1]))


def variable_axis(codes: np.ndarray, behaviour: np.ndarray | None, values: np.ndarray) -> np.ndarray | None:
    """The code displacement per unit of ``values`` with the ``behaviour`` columns (trials, K; None for none)
    held fixed: codes regressed on both jointly, over the trials where ``values`` is finite. None when the
    variable is (nearly) a linear function of the behaviour, or too few trials carry it."""
    values = np.asarray(values, dtype=np.float64)
    rows = np.isfinite(values)
    regressors = values[rows, None] if behaviour is None else np.column_stack([behaviour[rows], values[rows]])
    design = np.column_stack([regressors, np.ones(rows.sum())])
    if rows.sum() < design.shape[1] + 2 or np.linalg.matrix_rank(design) < design.shape[1]:
        return None
    if np.linalg.cond(design) > 1e8:
        return None
    axes, _ = behaviour_axes(np.asarray(codes, dtype=np.float64)[rows], regressors)
    return axes[:, -1]


def condition_centroids(codes: np.ndarray, conditions: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The mean code of each condition (C, L), the labels (C,), and the typical spread: the median distance
    of a trial's code to its own condition's centroid (1.0 if that is zero)."""
    labels, index = np.unique(conditions, return_inverse=True)
    centroids = np.stack([codes[index == c].mean(axis=0) for c in range(len(labels))])
    spread = float(np.median(np.linalg.norm(codes - centroids[index], axis=1)))
    return centroids, labels, spread or 1.0


def preferred_target_order(counts: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Neurons sorted by preferred reach angle (cosine tuning of their mean count), for readable rasters."""
    mean = counts.mean(axis=1, dtype=np.float64)  # (trials, neurons)
    design = np.column_stack([np.cos(angles), np.sin(angles), np.ones_like(angles)])
    coef, *_ = np.linalg.lstsq(design, mean, rcond=None)
    return np.argsort(np.arctan2(coef[1], coef[0]))


def peak_condition_order(counts: np.ndarray, conditions: np.ndarray) -> np.ndarray:
    """Neurons sorted by the condition where their mean count peaks (then by that peak, strongest last)."""
    mean = counts.mean(axis=1, dtype=np.float64)
    labels, index = np.unique(conditions, return_inverse=True)
    by_condition = np.stack([mean[index == c].mean(axis=0) for c in range(len(labels))])  # (C, neurons)
    return np.lexsort((by_condition.max(axis=0), by_condition.argmax(axis=0)))


def first_pc_order(counts: np.ndarray) -> np.ndarray:
    """Neurons sorted by their loading on the first principal component of the trials' mean counts."""
    mean = counts.mean(axis=1, dtype=np.float64)
    if len(mean) < 2 or not np.ptp(mean, axis=0).any():
        return np.arange(counts.shape[-1])
    axis, _, _ = principal_axes(mean, 1)
    return np.argsort(axis[0])


def neuron_order(counts: np.ndarray, info: pd.DataFrame, conditions: bool) -> tuple[np.ndarray, str]:
    """How the activity views sort neurons, and the axis label that says so: by preferred reach angle where
    every trial has one, else by the condition of peak rate (``conditions``: the trials are labelled), else by
    first-PC loading."""
    angles = info["reach_angle"].to_numpy(dtype=np.float64)
    if np.isfinite(angles).all() and np.ptp(angles) > 0:
        return preferred_target_order(counts, angles), "neuron (by preferred target)"
    if conditions:
        return peak_condition_order(counts, info["condition_id"].to_numpy()), "neuron (by condition of peak rate)"
    return first_pc_order(counts), "neuron (by PC 1 loading)"
