"""Metrics as pure functions of arrays (in the spirit of nlb_tools): easy to test and reuse."""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln


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


def poisson_nll(rates: np.ndarray, spikes: np.ndarray) -> float:
    """Total Poisson negative log-likelihood Σ r − k·log r + log k! of counts k under expected counts r.

    As nlb_tools: entries where ``spikes`` is NaN are ignored; zero rates are read as 1e-9;
    negative or NaN rates are an error.
    """
    rates = np.asarray(rates, dtype=np.float64)
    spikes = np.asarray(spikes, dtype=np.float64)
    if rates.shape != spikes.shape:
        raise ValueError(f"rates and spikes must have the same shape, found {rates.shape} and {spikes.shape}")
    valid = ~np.isnan(spikes)
    rates, spikes = rates[valid], spikes[valid]
    if np.isnan(rates).any():
        raise ValueError("rates contain NaN where spikes are observed")
    if (rates < 0).any():
        raise ValueError("rates must be non-negative")
    rates = np.where(rates == 0, 1e-9, rates)
    return float(np.sum(rates - spikes * np.log(rates) + gammaln(spikes + 1.0)))


def bits_per_spike(rates: np.ndarray, spikes: np.ndarray) -> float:
    """Bits per spike of predicted rates, exactly as nlb_tools' `bits_per_spike` (co-bps on held-out neurons).

    ``rates`` are *expected counts per bin* (spikes/s × bin width in s), the same shape as
    ``spikes`` (trials, bins, neurons), or any (…, neurons). The null model predicts each
    neuron's mean count over all the evaluated trials and bins. Result:
    (LL_model − LL_null) / (total spikes · ln 2), with the full Poisson log-likelihood.
    """
    spikes = np.asarray(spikes, dtype=np.float64)
    if spikes.ndim < 2:
        raise ValueError(f"spikes must be (..., neurons), found shape {spikes.shape}")
    null = np.broadcast_to(np.nanmean(spikes, axis=tuple(range(spikes.ndim - 1)), keepdims=True), spikes.shape)
    return (poisson_nll(null, spikes) - poisson_nll(rates, spikes)) / np.nansum(spikes) / np.log(2)


def principal_axes(codes: np.ndarray, n: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of codes: unit axes (n, L) by decreasing variance, their explained-variance ratios, the mean."""
    codes = np.asarray(codes, dtype=np.float64)
    mean = codes.mean(axis=0)
    _, singular, vt = np.linalg.svd(codes - mean, full_matrices=False)
    variance = singular ** 2
    return vt[:n], variance[:n] / variance.sum(), mean


def axis_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised dot product a·b / (‖a‖‖b‖) of two axes (Fig 3D): 0 orthogonal, ±1 parallel."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def navigation_codes(reference: np.ndarray, axis: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Codes stepped along ``axis``: reference (n, L) + δ·axis for each δ → (steps, n, L)."""
    return np.asarray(reference)[None] + np.asarray(deltas)[:, None, None] * np.asarray(axis)[None, None]


def navigation_effect(variables: np.ndarray, deltas: np.ndarray, intended: int) -> tuple[float, float]:
    """How a traversal moved the behaviour it was meant to move, and how much else it moved (Fig 3B–D).

    ``variables`` (steps, n, K): the behavioural variables decoded from trials generated at each
    step δ (in the intended variable's units) from n reference codes; ``deltas`` (steps,).
    Returns
      - slope: least-squares slope of the intended variable (mean over references) against δ
        (1 = it moved exactly as commanded);
      - unintended movement: Σ over the other variables of their mean absolute deviation from
        the value at the reference (δ = 0, or the step nearest it), averaged over steps and
        references, divided by the mean |δ| commanded: cm of unwanted movement per cm commanded
        (0 = a perfectly isolated traversal).
    """
    variables = np.asarray(variables, dtype=np.float64)
    deltas = np.asarray(deltas, dtype=np.float64)
    mean = variables[:, :, intended].mean(axis=1)
    slope = float(np.polyfit(deltas, mean, 1)[0])
    origin = int(np.argmin(np.abs(deltas)))
    others = [k for k in range(variables.shape[2]) if k != intended]
    deviation = np.abs(variables[:, :, others] - variables[origin][None, :, others]).sum(axis=2).mean()
    return slope, float(deviation / np.mean(np.abs(deltas)))


def heldout_target_error(train_codes: np.ndarray, train_targets: np.ndarray, heldout_codes: np.ndarray,
                         heldout_targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean error per held-out trial of targets predicted from codes (Fig 3E–F, 4E–F).

    A linear map codes → targets (ridge, alpha by leave-one-out CV) is fitted on trials of
    held-in conditions and applied to the inferred codes of trials whose targets the model
    never saw. Returns the distance between predicted and true target per held-out trial (in
    the targets' units) and the predicted targets.
    """
    from sklearn.linear_model import RidgeCV

    ridge = RidgeCV(alphas=np.logspace(-4, 3, 15)).fit(train_codes, train_targets)
    predicted = ridge.predict(heldout_codes)
    return np.linalg.norm(predicted - np.asarray(heldout_targets), axis=1), predicted


def velocity_r2(train_rates: np.ndarray, train_velocity: np.ndarray, eval_rates: np.ndarray,
                eval_velocity: np.ndarray) -> float:
    """Hand-velocity decoding R² as NLB reports it: ridge (alpha by CV) from rates to velocity on the
    training trials, variance-weighted R² (`sklearn.metrics.r2_score`) on the evaluated ones."""
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score

    flat = lambda x: np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])  # noqa: E731
    ridge = RidgeCV(alphas=np.logspace(-3, 5, 17)).fit(flat(train_rates), flat(train_velocity))
    return float(r2_score(flat(eval_velocity), ridge.predict(flat(eval_rates)), multioutput="variance_weighted"))
