"""The paper's evaluation (Figs 2–4) of any set of trained models on one dataset.

`evaluate_model` computes every metric and keeps the arrays the figures draw; `write_report`
writes ``report.json`` ({model: {metric: value}}), ``report.md`` (one table, models side by
side) and the PNG figures (`figures.py`).

Protocol, the same for every model:
- codes: `encode` of every trial; behaviour axes (codes ≈ A·b + c0, b = start x/y, target
  x/y in cm) and the code→target map for held-out conditions are fitted on the held-in
  *training* trials only;
- code SNR along each target axis: held-in test trials, conditions = targets;
- R² generated vs truth: each held-in test trial's code is generated `samples` times; per
  neuron, R² between condition-averaged generated rates and condition-averaged true rates
  (smoothed recorded rates when the dataset has no ground truth), then the mean over neurons;
  `r2_generated_single` is the same for single draws against single trials; `r2_truth_ceiling`
  is the R² that the other held-in trials' condition-averaged true rates reach against the test
  trials' (what a perfect model of the condition means could reach with this few test trials);
- navigation: from the held-in test trials' codes, step along axis k by δ ∈ the grid's span
  (in cm), generate, decode the reach with the behaviour decoder fitted on the recorded
  training trials, read start and target; slope and unintended movement as in
  `metrics.navigation_effect`; leakage = unintended movement ÷ |slope| (unwanted cm per cm the
  intended variable really moved);
- orthogonality: cosine between the target-x and target-y axes (and every pair);
- held-out conditions: `metrics.heldout_target_error` on the held-out-condition test trials.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..data.preprocessing import smoothed_rates
from ..data.trialdata import TrialData
from ..errors import GnocchiError
from .decoding import VARIABLES, BehaviourDecoder, reach_variables
from .metrics import (axis_cosine, behaviour_axes, code_snr, condition_average, heldout_target_error,
                      navigation_codes, navigation_effect, principal_axes, r2_per_neuron, velocity_r2)

NAVIGATED = ("target_x", "target_y")  # the axes the report traverses
METRICS = ("code_snr_target_x", "code_snr_target_y", "r2_generated", "r2_generated_single", "r2_truth_ceiling",
           "nav_slope_target_x", "nav_slope_target_y", "unintended_target_x", "unintended_target_y",
           "leakage_target_x", "leakage_target_y", "axis_cos_target_x_target_y",
           "heldout_target_error_cm", "heldout_target_error_frac_grid", "velocity_r2", "decoded_target_error_cm")


@dataclass
class ModelEvaluation:
    """One model's metrics and the arrays its figures draw."""

    name: str
    kind: str
    metrics: dict[str, float]
    codes: np.ndarray  # (trials, L): every trial of the dataset, in its order
    pcs: np.ndarray  # (trials, 3): codes projected on their top-3 principal axes (fitted on all trials)
    pc_variance: np.ndarray  # (3,): explained-variance ratios
    axes: np.ndarray  # (L, 4): behaviour axes, columns in VARIABLES order
    r2_neurons: np.ndarray  # (neurons,): condition-averaged R² per neuron
    navigation: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    # per navigated variable: deltas (steps,), positions (steps, bins, 2) = decoded hand path averaged
    # over references, variables (steps, references, 4) decoded start/target, reference_variables (4,)
    heldout: dict[str, np.ndarray] = field(default_factory=dict)  # predicted (n, 2), true (n, 2) targets


def behaviour_table(data: TrialData) -> np.ndarray:
    """(trials, 4) start x/y, target x/y from the trial table; an error names what is missing."""
    missing = [v for v in VARIABLES if data.trial_info[v].isna().any()]
    if missing:
        raise GnocchiError(f"the evaluation needs {list(VARIABLES)} on every trial; {missing} are missing "
                           f"(NaN) for some trials")
    return data.trial_info[list(VARIABLES)].to_numpy(dtype=np.float64)


def grid_spacing(values: np.ndarray) -> float:
    """Smallest gap between distinct target coordinates (the grid spacing, in cm)."""
    distinct = np.unique(np.round(np.asarray(values, dtype=np.float64), 6))
    if len(distinct) < 2:
        raise GnocchiError("targets take a single value: no grid to navigate across")
    return float(np.diff(distinct).min())


def evaluate_model(name: str, model, data: TrialData, decoder: BehaviourDecoder, *, samples: int = 5,
                   nav_steps: int = 9, seed: int = 0, progress=None) -> ModelEvaluation:
    """Every metric of the module docstring for one model. ``progress``: a callable(n) ticked per generation."""
    tick = progress or (lambda n=1: None)
    info = data.trial_info
    behaviour = behaviour_table(data)
    heldout = info["heldout_condition"].to_numpy(bool)
    train, test = data.heldin_conditions("train"), data.heldin_conditions("test")
    if not train.any() or not test.any():
        raise GnocchiError("the evaluation needs held-in 'train' and 'test' trials")
    codes = model.encode(data)
    axes, _ = behaviour_axes(codes[train], behaviour[train])
    pc_axes, pc_variance, pc_mean = principal_axes(codes, 3)
    metrics: dict[str, float] = {}
    conditions = info["condition_id"].to_numpy()
    for k, variable in enumerate(VARIABLES):
        if variable in NAVIGATED:
            metrics[f"code_snr_{variable}"] = code_snr(codes[test], axes[:, k], conditions[test])

    # generated vs truth
    test_data = data.subset(trials=test)
    draws = []
    for s in range(samples):
        draws.append(model.generate(codes[test], seed=seed + s).rates)
        tick(1)
    draws = np.stack(draws)
    truth = test_data.rates if test_data.rates is not None else \
        smoothed_rates(test_data.spikes, data.bin_ms, decoder.sigma_ms)
    truth_avg, _ = condition_average(truth, conditions[test])
    generated_avg, _ = condition_average(draws.mean(0), conditions[test])
    r2_neurons = r2_per_neuron(truth_avg, generated_avg)
    metrics["r2_generated"] = float(np.mean(r2_neurons))
    metrics["r2_generated_single"] = float(np.mean(r2_per_neuron(truth, draws[0])))
    if data.rates is not None:  # how well the other held-in trials' truth predicts the test trials' truth
        others = ~test & ~heldout & np.isin(conditions, conditions[test])
        if set(conditions[others]) == set(conditions[test]):
            metrics["r2_truth_ceiling"] = float(np.mean(r2_per_neuron(
                truth_avg, condition_average(data.rates[others], conditions[others])[0])))

    # decoding generated reconstructions of the test trials: velocity R² and target error
    train_rates = model.generate(codes[train], seed=seed).rates
    tick(1)
    metrics["velocity_r2"] = velocity_r2(train_rates, data.behavior["hand_vel"][train], draws[0],
                                         test_data.behavior["hand_vel"])
    decoded = reach_variables(decoder.position(decoder.predict(draws[0])), data.bin_centers_ms)
    metrics["decoded_target_error_cm"] = float(np.linalg.norm(decoded[:, 2:] - behaviour[test][:, 2:], axis=1).mean())

    # navigation along the target axes
    spacing = grid_spacing(behaviour[:, 2:])
    span = np.ptp(behaviour[:, 2:], axis=0).max()
    deltas = np.linspace(-span / 2, span / 2, nav_steps)
    navigation = {}
    for variable in NAVIGATED:
        k = VARIABLES.index(variable)
        stepped = navigation_codes(codes[test], axes[:, k], deltas)
        variables, paths = [], []
        for step_codes in stepped:
            rates = model.generate(step_codes, seed=seed).rates  # same noise at every step
            tick(1)
            position = decoder.position(decoder.predict(rates))
            variables.append(reach_variables(position, data.bin_centers_ms))
            paths.append(position.mean(axis=0))
        variables = np.stack(variables)
        slope, unintended = navigation_effect(variables, deltas, k)
        metrics[f"nav_slope_{variable}"] = slope
        metrics[f"unintended_{variable}"] = unintended
        # per cm the intended variable actually moved: a model that barely moves scores 0 above, not here
        metrics[f"leakage_{variable}"] = unintended / abs(slope) if slope else float("inf")
        navigation[variable] = {"deltas": deltas, "positions": np.stack(paths), "variables": variables}

    for a in range(4):
        for b in range(a + 1, 4):
            metrics[f"axis_cos_{VARIABLES[a]}_{VARIABLES[b]}"] = axis_cosine(axes[:, a], axes[:, b])

    heldout_result = {}
    if heldout.any():
        errors, predicted = heldout_target_error(codes[train], behaviour[train, 2:], codes[heldout],
                                                 behaviour[heldout, 2:])
        metrics["heldout_target_error_cm"] = float(errors.mean())
        metrics["heldout_target_error_frac_grid"] = float(errors.mean() / spacing)
        heldout_result = {"predicted": predicted, "true": behaviour[heldout, 2:]}
    pcs = (codes - pc_mean) @ pc_axes.T
    return ModelEvaluation(name, getattr(model, "kind", "model"), metrics, codes, pcs, pc_variance, axes, r2_neurons,
                           navigation, heldout_result)


def evaluate_models(models: dict, data: TrialData, decoder: BehaviourDecoder | None = None, *, samples: int = 5,
                    nav_steps: int = 9, seed: int = 0, progress: bool = True) -> list[ModelEvaluation]:
    """`evaluate_model` for each named model, with one progress bar over every generation.

    The decoder defaults to one fitted on the dataset's held-in training trials.
    """
    from tqdm.auto import tqdm

    if decoder is None:
        decoder = BehaviourDecoder.fit(data.subset(trials=data.heldin_conditions("train")))
    calls_per_model = samples + 1 + 2 * nav_steps
    with tqdm(total=calls_per_model * len(models), desc="generating", unit="batch", disable=not progress) as bar:
        return [evaluate_model(name, model, data, decoder, samples=samples, nav_steps=nav_steps, seed=seed,
                               progress=bar.update) for name, model in models.items()]


def write_report(evaluations: list[ModelEvaluation], data: TrialData, out_dir: str | os.PathLike, *,
                 source: str = "", figures: bool = True) -> Path:
    """``report.json``, ``report.md`` and the figures in ``out_dir`` (each written atomically)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = {ev.name: {"kind": ev.kind, **{k: round(float(v), 6) for k, v in ev.metrics.items()}}
             for ev in evaluations}
    with atomic_path(out_dir / "report.json") as tmp:
        tmp.write_text(json.dumps(table, indent=1))
    written = [Path(p).name for p in (_figures(evaluations, data, out_dir) if figures else [])]
    with atomic_path(out_dir / "report.md") as tmp:
        tmp.write_text(_markdown(evaluations, source, written))
    return out_dir


def _figures(evaluations, data, out_dir):
    from .figures import write_figures

    return write_figures(evaluations, data, out_dir)


DESCRIPTIONS = {
    "code_snr_target_x": "code SNR along the target-x axis (↑)",
    "code_snr_target_y": "code SNR along the target-y axis (↑)",
    "r2_generated": "R² generated vs truth, condition-averaged, mean over neurons (↑)",
    "r2_generated_single": "R² generated vs truth, single trials (↑)",
    "r2_truth_ceiling": "R² ceiling: other trials' true rates vs the test trials' (data, not model)",
    "nav_slope_target_x": "navigation slope, target x (1 = exact)",
    "nav_slope_target_y": "navigation slope, target y (1 = exact)",
    "unintended_target_x": "unintended movement per cm, navigating target x (↓)",
    "unintended_target_y": "unintended movement per cm, navigating target y (↓)",
    "leakage_target_x": "unintended movement per cm of achieved target-x movement (↓)",
    "leakage_target_y": "unintended movement per cm of achieved target-y movement (↓)",
    "axis_cos_target_x_target_y": "cosine between target-x and target-y axes (0 = orthogonal)",
    "heldout_target_error_cm": "held-out target error, cm (↓)",
    "heldout_target_error_frac_grid": "held-out target error / grid spacing (↓)",
    "velocity_r2": "hand-velocity R² decoded from generated reconstructions (↑)",
    "decoded_target_error_cm": "decoded endpoint error of generated test trials, cm (↓)",
}


def _markdown(evaluations: list[ModelEvaluation], source: str, figures: list[str]) -> str:
    names = [ev.name for ev in evaluations]
    keys = [k for k in METRICS if any(k in ev.metrics for ev in evaluations)]
    keys += sorted({k for ev in evaluations for k in ev.metrics} - set(keys))
    lines = [f"# Evaluation{f' on {source}' if source else ''}", "",
             "| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key in keys:
        values = [f"{ev.metrics[key]:.3f}" if key in ev.metrics else "–" for ev in evaluations]
        lines.append(f"| {DESCRIPTIONS.get(key, key)} | " + " | ".join(values) + " |")
    lines += ["", "Protocol: `gnocchi_core/analysis/report.py` (module docstring); metric definitions: "
              "`gnocchi_core/analysis/metrics.py`.", ""]
    lines += [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(lines) + "\n"
