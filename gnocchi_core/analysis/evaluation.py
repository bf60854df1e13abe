"""The paper's evaluation (Figs 2–4) of one trained model on one dataset: every metric, and the
arrays the figures draw.

Protocol, the same for every model (no setting is chosen on the trials it reports):
- codes: `encode` of every trial. Behaviour axes (codes ≈ A·b + c0, b = start x/y, target x/y
  in cm), discriminant directions, whitening and the code→target map for held-out conditions
  are fitted on the held-in *training* trials only.
- code SNR (`metrics.code_snr`, unbiased variances) on the pooled held-in valid + test trials,
  conditions = targets: along the discriminant direction of the variable (`code_snr_target_x`)
  and along its behaviour axis (`code_snr_axis_target_x`).
- generation, like with like: each held-in test trial's code → a *conditional mean* (GNOCCHI:
  the mean of ``samples`` diffusion samples; LFADS: its deterministic rates from the IC posterior
  mean) and a *single draw* (GNOCCHI: one sample; LFADS: the rates from one draw of the IC
  posterior). LFADS with a controller generates from the IC alone, its inferred inputs at their
  prior mean (zero): a code-only generation, which is what the code comparison asks; the variant
  without a controller (`lfads_ic`) is the fair generative baseline. For each kind: R² of condition-averaged generated vs true rates per neuron, mean over
  neurons (`r2_generated`, `r2_generated_single`); hand-velocity R² and endpoint error of the reach
  the behaviour decoder reads from the generated rates (`velocity_r2`, `decoded_target_error_cm`,
  and `_single`). `r2_truth_ceiling`: the same R² for the other held-in trials' true rates (what a
  perfect model of the condition means reaches on these test trials).
- navigation: from one held-in test trial per target, step the code along the target axis so the
  commanded target visits ``nav_steps`` positions across the grid's span (never off the grid),
  generate conditional means, decode start and target; slope, unintended movement per commanded
  cm, and leakage = unintended movement per achieved cm (`metrics.navigation_effect`, `leakage`).
- orthogonality: |cos| between the target-x and target-y axes fitted on whitened codes, beside the
  |cos| of random axes in that dimension.
- held-out conditions: `metrics.heldout_target_error` on the held-out-condition trials.
- the decoder itself: median endpoint error on the recorded held-in test trials
  (`decoder_endpoint_error_cm`, from their true rates when the dataset has them).
Undefined metrics are None with a reason in ``why``.

Without a behaviour decoder: `evaluate_recording` (MC_Maze: reach labels, no ground truth or grid)
and `neural.evaluate_neural` (condition labels, no kinematics) share `recorded_generation`
(generation R² against given rates, co-bps) and `finish` (PCA of the codes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from ..data.preprocessing import smoothed_rates
from ..data.trialdata import TrialData
from ..errors import GnocchiError
from .decoding import VARIABLES, BehaviourDecoder, reach_variables
from .metrics import (Undefined, axis_cosine, behaviour_axes, code_snr, condition_average, discriminant_direction, grid_deltas,
                      heldout_target_error, leakage, mean_r2, navigation_codes, navigation_effect, principal_axes,
                      r2_per_neuron, random_axis_cosine, whitened_axis_cosine)

NAVIGATED = ("target_x", "target_y")  # the axes the report traverses
#: the metrics of `evaluate_model` that need hand kinematics and a target grid (the decoder, navigation,
#: axis geometry, held-out targets), in its order: null with the reason on data without reaches
REACH_METRICS = (*(f"{m}{s}" for s in ("", "_single") for m in ("velocity_r2", "decoded_target_error_cm")),
                 "decoder_endpoint_error_cm",
                 *(f"{m}_{v}" for v in NAVIGATED for m in ("nav_slope", "unintended", "leakage")),
                 "axis_cos_whitened_target_x_target_y", "axis_cos_random_expected",
                 *(f"axis_cos_{a}_{b}" for a, b in combinations(VARIABLES, 2)),
                 "heldout_target_error_cm", "heldout_target_error_frac_grid")


@dataclass
class ModelEvaluation:
    """One model's metrics (None = undefined, reason in ``why``) and the arrays its figures draw."""

    name: str
    kind: str
    metrics: dict[str, float | None]
    why: dict[str, str]
    codes: np.ndarray  # (trials, L): every trial of the dataset, in its order
    pcs: np.ndarray  # (trials, 3): codes projected on their top-3 principal axes (fitted on all trials)
    pc_variance: np.ndarray  # (3,): explained-variance ratios
    axes: np.ndarray  # (L, 4): behaviour axes, columns in VARIABLES order
    r2_neurons: np.ndarray  # (neurons,): condition-averaged R² per neuron (NaN where undefined)
    navigation: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    # per navigated variable: positions (steps,) commanded, paths (steps, bins, 2) decoded hand path
    # averaged over references, variables (steps, references, 4) decoded start/target
    heldout: dict[str, np.ndarray] = field(default_factory=dict)  # predicted (n, 2), true (n, 2) targets
    scope: str = "reach"  # which evaluation: "reach" (evaluate_model), "recording" or "neural"


class Recorder:
    """Collects metrics: a value, or None and the reason when the computation raises `Undefined`."""

    def __init__(self):
        self.metrics: dict[str, float | None] = {}
        self.why: dict[str, str] = {}

    def __call__(self, name: str, compute):
        try:
            value = float(compute())
            if not math.isfinite(value):
                raise Undefined(f"the computation gave {value}")
        except Undefined as reason:
            self.metrics[name], self.why[name] = None, str(reason)
            return None
        self.metrics[name] = value
        return value


def behaviour_table(data: TrialData) -> np.ndarray:
    """(trials, 4) start x/y, target x/y from the trial table; an error names what is missing."""
    missing = [v for v in VARIABLES if data.trial_info[v].isna().any()]
    if missing:
        raise GnocchiError(f"the evaluation needs {list(VARIABLES)} on every trial; {missing} are missing "
                           f"(NaN) for some trials")
    return data.trial_info[list(VARIABLES)].to_numpy(dtype=np.float64)


def grid_spacing(values: np.ndarray) -> float:
    """Smallest gap between distinct target coordinates along any axis (the grid spacing, in cm)."""
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    gaps = [np.diff(np.unique(np.round(column, 6))) for column in values.T]
    gaps = [g.min() for g in gaps if len(g)]
    if not gaps:
        raise GnocchiError("targets take a single value: no grid to navigate across")
    return float(min(gaps))


def first_per_condition(mask: np.ndarray, conditions: np.ndarray, n: int = 1) -> np.ndarray:
    """Indices of the first ``n`` trials of each condition among ``mask``."""
    chosen = [np.flatnonzero(mask & (conditions == c))[:n] for c in np.unique(conditions[mask])]
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=int)


def conditional_mean(model, codes: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """Rates averaged over ``samples`` generations (one when the model's generation is deterministic)."""
    n = 1 if getattr(model, "deterministic_generate", False) else samples
    total = None
    for s in range(n):
        rates = model.generate(codes, seed=seed + s).rates.astype(np.float64)
        total = rates if total is None else total + rates
    return total / n


def single_draw(model, trials: TrialData, codes: np.ndarray, seed: int) -> np.ndarray:
    """One draw per trial: a diffusion sample, or (deterministic generators) rates from a posterior
    sample of the code."""
    if getattr(model, "deterministic_generate", False):
        return model.generate(model.encode(trials, sample=True, seed=seed), seed=seed).rates
    return model.generate(codes, seed=seed).rates


def decoder_endpoint_errors(decoder: BehaviourDecoder, data: TrialData, trials: np.ndarray,
                            use_rates: bool = True) -> np.ndarray:
    """Endpoint error (cm) per recorded trial of the decoder: its true rates when known and
    ``use_rates``, else its smoothed spikes."""
    targets = behaviour_table(data)[trials, 2:]
    if use_rates and data.rates is not None:
        decoded = decoder.predict(data.rates[trials])
    else:
        decoded = decoder.predict(smoothed_rates(data.spikes[trials], data.bin_ms, decoder.sigma_ms))
    ends = reach_variables(decoder.position(decoded), data.bin_centers_ms)[:, 2:]
    return np.linalg.norm(ends - targets, axis=1)


def decoded_reach(decoder: BehaviourDecoder, rates: np.ndarray, data: TrialData) -> tuple[np.ndarray, np.ndarray]:
    """Decoded (positions (n, bins, 2), start/target variables (n, 4)) of generated rates."""
    positions = decoder.position(decoder.predict(rates))
    return positions, reach_variables(positions, data.bin_centers_ms)


def velocity_r2(decoder: BehaviourDecoder, rates: np.ndarray, velocity: np.ndarray) -> float:
    """Variance-weighted R² of the hand velocity (x, y) the decoder reads from ``rates`` against ``velocity``
    (its first two dimensions: a recording may carry z too)."""
    from sklearn.metrics import r2_score

    columns = [decoder.outputs.index("hand_vel_x"), decoder.outputs.index("hand_vel_y")]
    decoded = decoder.predict(rates)[..., columns]
    return float(r2_score(velocity[..., :2].reshape(-1, 2), decoded.reshape(-1, 2), multioutput="variance_weighted"))


def evaluate_model(name: str, model, data: TrialData, decoder: BehaviourDecoder, *, samples: int = 8,
                   nav_steps: int = 9, seed: int = 0, progress=None) -> ModelEvaluation:
    """Every metric of the module docstring for one model. ``progress``: a callable(n) ticked per step."""
    tick = progress or (lambda n=1: None)
    info = data.trial_info
    behaviour = behaviour_table(data)
    conditions = info["condition_id"].to_numpy()
    heldout = info["heldout_condition"].to_numpy(bool)
    train, test = data.heldin_conditions("train"), data.heldin_conditions("test")
    pool = data.heldin_conditions("valid", "test")
    if not train.any() or not test.any():
        raise GnocchiError("the evaluation needs held-in 'train' and 'test' trials")
    record = Recorder()
    codes = model.encode(data)
    axes, _ = behaviour_axes(codes[train], behaviour[train])
    target_code_snrs(record, codes, behaviour, conditions, train, pool, axes)
    tick(1)

    # generation: conditional means and single draws of the held-in test trials
    test_data = data.subset(trials=test)
    truth = test_data.rates if test_data.rates is not None else \
        smoothed_rates(test_data.spikes, data.bin_ms, decoder.sigma_ms)
    r2_neurons, mean, single = generation_r2(
        record, model, data, codes, truth, data.rates if data.rates is not None else
        "the dataset has no ground-truth rates", samples=samples, seed=seed, test_data=test_data)
    tick(1)
    test_targets = behaviour[test, 2:]
    for suffix, rates in (("", mean), ("_single", single)):
        record(f"velocity_r2{suffix}", lambda: velocity_r2(decoder, rates, test_data.behavior["hand_vel"]))
        ends = decoded_reach(decoder, rates, data)[1][:, 2:]
        record(f"decoded_target_error_cm{suffix}", lambda: np.linalg.norm(ends - test_targets, axis=1).mean())
    record("decoder_endpoint_error_cm", lambda: np.median(decoder_endpoint_errors(decoder, data, np.flatnonzero(test))))

    # navigation along the target axes, from one test trial per held-in target, inside the grid
    spacing = grid_spacing(behaviour[:, 2:])
    references = first_per_condition(test, conditions)
    navigation = {}
    for variable in NAVIGATED:
        k = VARIABLES.index(variable)
        low, high = behaviour[:, k].min(), behaviour[:, k].max()
        deltas = grid_deltas(behaviour[references, k], low, high, nav_steps)
        stepped = navigation_codes(codes[references], axes[:, k], deltas)
        variables, paths = [], []
        for step_codes in stepped:
            positions, decoded = decoded_reach(decoder, conditional_mean(model, step_codes, samples, seed), data)
            variables.append(decoded)
            paths.append(positions.mean(axis=0))
            tick(1)
        variables = np.stack(variables)
        try:
            effect, reason = navigation_effect(variables, deltas, k), ""
        except Undefined as undefined:
            effect, reason = (None, None), str(undefined)
        slope = record(f"nav_slope_{variable}", lambda: raise_undefined(reason) if effect[0] is None else effect[0])
        unintended = record(f"unintended_{variable}",
                            lambda: raise_undefined(reason) if effect[1] is None else effect[1])
        record(f"leakage_{variable}", lambda: raise_undefined(reason or "slope or unintended movement undefined")
               if slope is None or unintended is None else leakage(unintended, slope))
        navigation[variable] = {"positions": np.linspace(low, high, nav_steps), "paths": np.stack(paths),
                                "variables": variables}

    try:
        cosine, reason = whitened_axis_cosine(codes[train], behaviour[train], VARIABLES.index("target_x"),
                                              VARIABLES.index("target_y")), ""
    except Undefined as undefined:
        cosine, reason = (None, None), str(undefined)
    record("axis_cos_whitened_target_x_target_y", lambda: raise_undefined(reason) if cosine[0] is None else cosine[0])
    record("axis_cos_random_expected",
           lambda: raise_undefined(reason) if cosine[1] is None else random_axis_cosine(cosine[1]))
    for a in range(4):
        for b in range(a + 1, 4):
            record(f"axis_cos_{VARIABLES[a]}_{VARIABLES[b]}", lambda: axis_cosine(axes[:, a], axes[:, b]))

    heldout_result = {}
    if heldout.any():
        errors, predicted = heldout_target_error(codes[train], behaviour[train, 2:], codes[heldout],
                                                 behaviour[heldout, 2:])
        record("heldout_target_error_cm", lambda: errors.mean())
        record("heldout_target_error_frac_grid", lambda: errors.mean() / spacing)
        heldout_result = {"predicted": predicted, "true": behaviour[heldout, 2:]}
    else:
        for key in ("heldout_target_error_cm", "heldout_target_error_frac_grid"):
            record(key, lambda: raise_undefined("the dataset has no held-out conditions"))
    return finish(name, model, record, codes, axes, r2_neurons, navigation=navigation, heldout=heldout_result)


def evaluation_steps(nav_steps: int = 9) -> int:
    """How many times `evaluate_model` ticks its progress callable."""
    return 2 + 2 * nav_steps


def raise_undefined(reason: str):
    """Raise `Undefined` (inside a `Recorder` lambda: the metric is null with ``reason``)."""
    raise Undefined(reason)


def target_code_snrs(record: Recorder, codes, behaviour, conditions, train, pool, axes=None) -> None:
    """Code SNR of each navigated variable on the ``pool`` trials: along the discriminant direction
    fitted on the ``train`` trials, and (given ``axes``) along the behaviour axis."""
    for variable in NAVIGATED:
        k = VARIABLES.index(variable)
        record(f"code_snr_{variable}", lambda: code_snr(
            codes[pool], discriminant_direction(codes[train], behaviour[train, k]), conditions[pool]))
        if axes is not None:
            record(f"code_snr_axis_{variable}", lambda: code_snr(codes[pool], axes[:, k], conditions[pool]))


def generation_r2(record: Recorder, model, data: TrialData, codes: np.ndarray, truth: np.ndarray, reference,
                  *, samples: int, seed: int, test_data: TrialData | None = None):
    """Generation, like with like, of the held-in test trials from their ``codes`` (every trial's):
    R² of condition-averaged conditional means and single draws vs ``truth`` (the test trials' rates),
    and the ceiling: the same R² of ``reference`` (every trial's rates, or why there are none)
    averaged over the other held-in (train, valid) trials. Returns the per-neuron R² of the conditional
    means, the conditional means and the single draws."""
    conditions = data.trial_info["condition_id"].to_numpy()
    test = data.heldin_conditions("test")
    test_data = test_data if test_data is not None else data.subset(trials=test)
    mean = conditional_mean(model, codes[test], samples, seed)
    single = single_draw(model, test_data, codes[test], seed)
    truth_avg, labels = condition_average(truth, conditions[test])
    mean_avg = condition_average(mean, conditions[test])[0]
    record("r2_generated", lambda: mean_r2(truth_avg, mean_avg))
    record("r2_generated_single", lambda: mean_r2(truth_avg, condition_average(single, conditions[test])[0]))
    others = data.heldin_conditions("train", "valid") & np.isin(conditions, labels)
    if isinstance(reference, str):
        record("r2_truth_ceiling", lambda: raise_undefined(reference))
    elif set(conditions[others]) != set(labels):
        record("r2_truth_ceiling", lambda: raise_undefined("some test conditions have no other held-in trials"))
    else:
        ceiling = condition_average(reference[others], conditions[others])[0]
        record("r2_truth_ceiling", lambda: mean_r2(truth_avg, ceiling))
    return r2_per_neuron(truth_avg, mean_avg), mean, single


def recorded_generation(record: Recorder, model, data: TrialData, codes: np.ndarray, rates: np.ndarray, *,
                        samples: int, seed: int) -> np.ndarray:
    """The steps the evaluations without a behaviour decoder share: `generation_r2` against ``rates``
    (every trial's: smoothed recorded spikes, or the ground truth; the ceiling from the same rates of
    the other held-in trials), then co-bps of the held-out neurons on the held-in test trials (models
    whose encoder does not read them only). Returns the per-neuron R²."""
    from .metrics import bits_per_spike

    test = data.heldin_conditions("test")
    test_data = data.subset(trials=test)
    r2_neurons = generation_r2(record, model, data, codes, rates[test], rates, samples=samples, seed=seed,
                               test_data=test_data)[0]
    heldout = data.heldout_neurons
    if not heldout.any():
        record("cobps", lambda: raise_undefined("the dataset has no held-out neurons"))
    elif hasattr(model, "reconstruct"):
        counts = model.reconstruct(test_data)[..., heldout] * (data.bin_ms / 1000.0)
        record("cobps", lambda: bits_per_spike(counts, test_data.spikes[..., heldout]))
    else:
        record("cobps", lambda: raise_undefined(f"{model.kind}'s encoder reads every neuron, the held-out ones included, "
                                       "so they are not held out from it"))
    return r2_neurons


def finish(name: str, model, record: Recorder, codes: np.ndarray, axes: np.ndarray, r2_neurons: np.ndarray,
           **arrays) -> ModelEvaluation:
    """The `ModelEvaluation`: the recorded metrics, the codes and their top-3 principal components
    (fitted on every trial), and the given arrays (``navigation``, ``heldout``, ``scope``)."""
    pc_axes, pc_variance, pc_mean = principal_axes(codes, 3)
    return ModelEvaluation(name, getattr(model, "kind", "model"), record.metrics, record.why, codes,
                           (codes - pc_mean) @ pc_axes.T, pc_variance, axes, r2_neurons, **arrays)


def evaluate_recording(name: str, model, data: TrialData, *, samples: int = 8, seed: int = 0,
                       sigma_ms: float = 40.0) -> ModelEvaluation:
    """The subset of the evaluation a recording without ground truth and without a target grid
    supports (MC_Maze): code SNR of the target coordinates by reach condition, R² of condition-averaged
    generated vs smoothed recorded rates (conditional means and single draws, beside the same R² of
    the other recorded trials: the ceiling), and co-bps of the held-out neurons on the test trials."""
    behaviour = behaviour_table(data)
    conditions = data.trial_info["condition_id"].to_numpy()
    train, pool = data.heldin_conditions("train"), data.heldin_conditions("valid", "test")
    record = Recorder()
    codes = model.encode(data)
    axes, _ = behaviour_axes(codes[train], behaviour[train])
    target_code_snrs(record, codes, behaviour, conditions, train, pool)
    smoothed = smoothed_rates(data.spikes, data.bin_ms, sigma_ms)
    r2_neurons = recorded_generation(record, model, data, codes, smoothed, samples=samples, seed=seed)
    return finish(name, model, record, codes, axes, r2_neurons, scope="recording")
