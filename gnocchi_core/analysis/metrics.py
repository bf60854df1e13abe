"""Metrics as pure functions of arrays (in the spirit of nlb_tools): easy to test and reuse.

A metric that has no value on the given arrays (one condition, silent neurons, a traversal that
does not move) raises `Undefined` with the reason; the report records it as ``null`` + why.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln


class Undefined(ValueError):
    """The metric has no value on these arrays; the message says why."""


def behaviour_axes(codes: np.ndarray, behaviour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares fit codes ≈ behaviour · Aᵀ + c0.

    ``codes`` (n, L), ``behaviour`` (n, K). Returns A (L, K) and c0 (L,). Column k of A is the
    code displacement for one unit of behavioural variable k with the others held fixed: the
    axis to navigate along.
    """
    design = np.column_stack([behaviour, np.ones(len(behaviour))])
    coef, *_ = np.linalg.lstsq(design, codes, rcond=None)
    return coef[:-1].T, coef[-1]


def code_snr(codes: np.ndarray, direction: np.ndarray, conditions: np.ndarray) -> float:
    """Signal-to-noise ratio of codes along ``direction`` (Fig 2D).

    Project each code on the unit vector along ``direction``; SNR = variance across conditions
    of the per-condition mean projection ÷ mean over conditions of the within-condition variance
    of the projection. Both variances use ddof 1 (the within-condition one is then unbiased; the
    between-condition one still carries the noise of each mean, within / trials per condition, as
    the paper's definition does); conditions with a single trial are left out of both terms
    (they carry no within-condition estimate).
    """
    unit = np.asarray(direction, dtype=np.float64)
    if not np.linalg.norm(unit) > 0:
        raise Undefined("the direction is zero")
    projection = np.asarray(codes, dtype=np.float64) @ (unit / np.linalg.norm(unit))
    conditions = np.asarray(conditions)
    labels = [c for c in np.unique(conditions) if (conditions == c).sum() > 1]
    if len(labels) < 2:
        raise Undefined(f"{len(labels)} condition(s) with two or more trials; the SNR needs two")
    means = np.array([projection[conditions == c].mean() for c in labels])
    within = float(np.mean([projection[conditions == c].var(ddof=1) for c in labels]))
    if not within > 0:
        raise Undefined("codes do not vary within conditions (zero noise variance)")
    return float(means.var(ddof=1) / within)


def discriminant_direction(codes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The code direction that best predicts ``values`` (n,) linearly: ridge weights (alpha by
    leave-one-out CV) of values ~ codes. Unlike a column of `behaviour_axes` (how codes move with
    the variable), it down-weights noisy code dimensions: the direction to read the variable from."""
    from sklearn.linear_model import RidgeCV

    values = np.asarray(values, dtype=np.float64)
    if np.ptp(values) == 0:
        raise Undefined("the variable takes a single value")
    codes = np.asarray(codes, dtype=np.float64)
    scale = codes.std(axis=0)
    scale[scale == 0] = 1.0
    ridge = RidgeCV(alphas=np.logspace(-4, 4, 17)).fit(codes / scale, values)
    return ridge.coef_ / scale


def _shrinkage_lda(codes: np.ndarray, conditions: np.ndarray, solver: str):
    """scikit-learn's LinearDiscriminantAnalysis with Ledoit–Wolf shrinkage of the within-condition
    covariance (``shrinkage='auto'``, on standardised codes), fitted on ``codes`` (n, L) by ``conditions``."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    codes, conditions = np.asarray(codes, dtype=np.float64), np.asarray(conditions)
    labels = np.unique(conditions)
    if len(labels) < 2:
        raise Undefined(f"{len(labels)} condition(s) among the training codes; a discriminant needs two")
    if len(codes) <= len(labels):
        raise Undefined(f"{len(codes)} training codes for {len(labels)} conditions: no within-condition spread")
    if not (codes.std(axis=0) > 0).any():
        raise Undefined("the training codes do not vary")
    return LinearDiscriminantAnalysis(solver=solver, shrinkage="auto").fit(codes, conditions)


def condition_discriminant(codes: np.ndarray, conditions: np.ndarray) -> np.ndarray:
    """The first Fisher linear discriminant of ``codes`` (n, L) by ``conditions`` (n,): the direction
    (L,) along which between-condition ÷ within-condition variance of the projected codes is largest,
    i.e. the ratio `code_snr` measures, for any number of conditions.

    It is the leading generalised eigenvector of S_between v = λ S_within v, with S_within shrunk
    towards a multiple of the identity by the Ledoit–Wolf amount (scikit-learn's
    ``LinearDiscriminantAnalysis(solver='eigen', shrinkage='auto')``), so it stays well defined when
    the code has many dimensions for few trials per condition. Fit it on training codes and score
    `code_snr` on other trials: on the same trials the maximisation inflates the SNR."""
    return condition_discriminants(codes, conditions, 1)[0]


def condition_discriminants(codes: np.ndarray, conditions: np.ndarray, n: int = 1) -> np.ndarray:
    """The first ``n`` Fisher directions of `condition_discriminant`, by decreasing variance ratio: unit
    vectors (k, L), k = min(n, conditions − 1, L), each signed so that its largest component is positive
    (the explorer's condition sliders walk along them)."""
    lda = _shrinkage_lda(codes, conditions, "eigen")
    k = min(int(n), len(lda.classes_) - 1, lda.scalings_.shape[1])
    axes = np.asarray(lda.scalings_[:, :k].T, dtype=np.float64)
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    signs = np.sign(axes[np.arange(k), np.argmax(np.abs(axes), axis=1)])
    return axes * signs[:, None]


def condition_accuracy(train_codes: np.ndarray, train_conditions: np.ndarray, test_codes: np.ndarray,
                       test_conditions: np.ndarray) -> tuple[float, float]:
    """How well codes name their trial's condition: the fraction of ``test_codes`` whose condition a
    linear classifier fitted on ``train_codes`` predicts (shrinkage LDA, as `condition_discriminant`),
    and chance: the majority rate of the test trials (what always naming their most frequent condition
    scores; 1 / conditions when they are balanced)."""
    test_conditions = np.asarray(test_conditions)
    if not len(test_conditions):
        raise Undefined("no test codes")
    predicted = _shrinkage_lda(train_codes, train_conditions, "lsqr").predict(np.asarray(test_codes, np.float64))
    counts = np.unique(test_conditions, return_counts=True)[1]
    return float(np.mean(predicted == test_conditions)), float(counts.max() / len(test_conditions))


def r2_per_neuron(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Coefficient of determination per neuron (last axis), pooling all other axes.

    R²_j = 1 − Σ(truth − predicted)² / Σ(truth − mean(truth))², sums over trials and bins of
    neuron j. 1 is perfect; 0 is no better than the neuron's mean; it is negative when the
    prediction is further from the truth than that mean (e.g. right shape, wrong level). NaN for
    a neuron whose truth does not vary (silent): R² is undefined there.
    """
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, truth.shape[-1])
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1, predicted.shape[-1])
    residual = ((truth - predicted) ** 2).sum(axis=0)
    total = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, 1.0 - residual / np.where(total > 0, total, 1.0), np.nan)


def mean_r2(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Mean over neurons of `r2_per_neuron`, leaving out neurons whose truth does not vary."""
    r2 = r2_per_neuron(truth, predicted)
    if not np.isfinite(r2).any():
        raise Undefined("no neuron's true rate varies across conditions and bins")
    return float(np.nanmean(r2))


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
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    if not norm > 0:
        raise Undefined("an axis is zero")
    return float(a @ b / norm)


def whitening(codes: np.ndarray, rel_tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Whitening map of codes (n, L): W (L, r) and mean with cov((codes − mean) @ W) = I_r, over the
    r directions whose variance exceeds ``rel_tol`` × the largest (unused dimensions dropped)."""
    codes = np.asarray(codes, dtype=np.float64)
    mean = codes.mean(axis=0)
    variance, vectors = np.linalg.eigh(np.cov(codes - mean, rowvar=False).reshape(codes.shape[1], -1))
    keep = variance > rel_tol * variance.max()
    return vectors[:, keep] / np.sqrt(variance[keep]), mean


def whitened_axis_cosine(codes: np.ndarray, behaviour: np.ndarray, a: int, b: int) -> tuple[float, int]:
    """|cos| between the behaviour axes of variables ``a`` and ``b`` fitted on whitened codes, and the
    whitened dimension. Whitening makes the angle independent of how the code space is scaled or
    mixed (any invertible linear map of the codes gives the same value), so code sizes compare;
    set it beside `random_axis_cosine` of that dimension."""
    weights, mean = whitening(codes)
    axes, _ = behaviour_axes((np.asarray(codes, dtype=np.float64) - mean) @ weights, behaviour)
    return abs(axis_cosine(axes[:, a], axes[:, b])), weights.shape[1]


def random_axis_cosine(dim: int) -> float:
    """Expected |cos| between two independent random directions in ``dim`` dimensions:
    Γ(d/2) / (√π Γ((d+1)/2)) (2/π in 2-D, about √(2/(π d)) for large d)."""
    if dim < 2:
        raise Undefined(f"axes in {dim} dimension(s) are always parallel")
    return float(np.exp(gammaln(dim / 2) - gammaln((dim + 1) / 2)) / np.sqrt(np.pi))


def navigation_codes(reference: np.ndarray, axis: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Codes stepped along ``axis``: reference (n, L) + δ·axis for each step.

    ``deltas`` (steps,) applies the same δ to every reference, (steps, n) one per reference
    (see `grid_deltas`) → (steps, n, L)."""
    deltas = np.asarray(deltas, dtype=np.float64)
    deltas = deltas[:, None] if deltas.ndim == 1 else deltas
    return np.asarray(reference)[None] + deltas[:, :, None] * np.asarray(axis)[None, None]


def grid_deltas(reference_values: np.ndarray, low: float, high: float, steps: int) -> np.ndarray:
    """Steps (steps, n) that take each reference's variable to ``steps`` evenly spaced positions
    from ``low`` to ``high`` (the grid's span): a traversal never commands a reach off the grid."""
    positions = np.linspace(low, high, steps)
    return positions[:, None] - np.asarray(reference_values, dtype=np.float64)[None, :]


def navigation_effect(variables: np.ndarray, deltas: np.ndarray, intended: int) -> tuple[float, float]:
    """How a traversal moved the behaviour it was meant to move, and how much else it moved (Fig 3B–D).

    ``variables`` (steps, n, K): the behavioural variables decoded from trials generated at each
    step from n reference codes; ``deltas`` (steps,) or (steps, n): the commanded change of the
    intended variable (its units). Returns
      - slope: least-squares slope of the decoded intended variable against δ, within references
        (1 = it moved exactly as commanded);
      - unintended movement: Σ over the other variables of their absolute deviation from their
        value at the reference's own step (δ = 0, or the step nearest it), averaged over steps
        and references, ÷ the mean |δ| commanded: cm of unwanted movement per cm commanded.
    """
    variables = np.asarray(variables, dtype=np.float64)
    deltas = np.broadcast_to(np.asarray(deltas, dtype=np.float64).reshape(len(variables), -1),
                             variables.shape[:2])
    x = deltas - deltas.mean(axis=0)
    y = variables[:, :, intended] - variables[:, :, intended].mean(axis=0)
    if not (x ** 2).sum() > 0:
        raise Undefined("the traversal commands no change")
    slope = float((x * y).sum() / (x ** 2).sum())
    origin = np.argmin(np.abs(deltas), axis=0)  # (n,)
    others = [k for k in range(variables.shape[2]) if k != intended]
    at_origin = variables[origin, np.arange(variables.shape[1])][:, others]  # (n, K-1)
    deviation = np.abs(variables[:, :, others] - at_origin[None]).sum(axis=2).mean()
    return slope, float(deviation / np.mean(np.abs(deltas)))


def leakage(unintended: float, slope: float, min_slope: float = 0.1) -> float:
    """Unintended movement per cm the intended variable really moved: ``unintended`` (per cm
    commanded) ÷ slope. A traversal that barely moves its variable, or moves it the wrong way
    (slope < ``min_slope``), has no meaningful ratio."""
    if not slope >= min_slope:
        raise Undefined(f"the intended variable barely moves or moves the wrong way (slope {slope:.3f} < "
                        f"{min_slope}), so unintended movement per achieved cm is not meaningful")
    return float(unintended / slope)


def heldout_target_error(train_codes: np.ndarray, train_targets: np.ndarray, heldout_codes: np.ndarray,
                         heldout_targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean error per held-out trial of targets predicted from codes (Fig 3E–F, 4E–F).

    A linear map codes → targets (ridge on codes standardised with the training codes' mean and
    sd, so the penalty means the same whatever a model's code scale; alpha by leave-one-out CV)
    is fitted on trials of held-in conditions and applied to the inferred codes of trials whose
    targets the model never saw. Returns the distance between predicted and true target per
    held-out trial (in the targets' units) and the predicted targets.
    """
    from sklearn.linear_model import RidgeCV

    train_codes = np.asarray(train_codes, dtype=np.float64)
    mean, scale = train_codes.mean(axis=0), train_codes.std(axis=0)
    scale[scale == 0] = 1.0
    ridge = RidgeCV(alphas=np.logspace(-4, 4, 17)).fit((train_codes - mean) / scale, train_targets)
    predicted = ridge.predict((np.asarray(heldout_codes, dtype=np.float64) - mean) / scale)
    return np.linalg.norm(predicted - np.asarray(heldout_targets), axis=1), predicted
