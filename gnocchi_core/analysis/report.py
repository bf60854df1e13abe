"""The evaluation report: every model (one or more training seeds each) on one dataset.

``report.json`` is strict JSON (no NaN or infinity)::

    {"dataset": {"trials": int, "test_trials_per_heldin_target_min": int, ...,
                 "missing_reach": str|null (why there are no reaches to decode, null when there are)},
     "evaluation": "reach" | "recording" | "neural", "protocol": str, "seeds": [int, ...],
     "models": {name: {metric: {"mean": float|null, "sd": float|null, "seeds": [float|null, ...],
                                "why": str (only when something is null)}}}}

``report.md`` shows the same as "mean ± sd (per-seed values)" with every row explained, "n/a (why)"
where a metric is undefined, and the figures of the first seed with how to read them. Datasets
with condition labels but no hand kinematics get the neural evaluation (`neural.evaluate_neural`):
its own protocol and figure captions, and every reach metric as "n/a (why)".
`comparison_paragraph` turns a report into the README's comparison sentences: "A beats B" only
where every seed agrees.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..data.readiness import evaluation_kind, missing_reach
from ..data.trialdata import TrialData
from .decoding import BehaviourDecoder
from .evaluation import ModelEvaluation, evaluate_model, evaluation_steps
from .neural import NEURAL_STEPS, evaluate_neural

PROTOCOL = ("Behaviour axes, discriminant directions, whitening, the held-out-target map and the behaviour "
            "decoder are fitted on the held-in training trials; early stopping reads the 'valid' split. Generation, "
            "navigation and decoding are scored on the test split (held-in test trials; all held-out-target trials "
            "for held-out prediction), which no setting was chosen on; code SNR pools the held-in valid and test "
            "trials; the axis cosines describe the axes fitted on training codes; the R² ceiling compares the "
            "test trials' true rates with the training and valid trials'. The default models' settings and where they "
            "were chosen: gnocchi_core/assets.py. Definitions: gnocchi_core/analysis/evaluation.py and metrics.py.")
NEURAL_PROTOCOL = ("No hand kinematics: the neural evaluation. The condition discriminant (first Fisher/LDA "
                   "direction) and the condition classifier are fitted on the held-in training codes; code SNR by "
                   "condition pools the held-in valid and test trials; condition accuracy, generation and co-bps "
                   "are scored on the held-in test trials, which no setting was chosen on; the R² ceiling compares "
                   "the test trials' rates (ground truth when the dataset has it, else smoothed spikes) with the "
                   "training and valid trials'. Reach metrics are n/a. Definitions: "
                   "gnocchi_core/analysis/neural.py, evaluation.py and metrics.py.")

#: (metric, what the row shows, which way is better: +1 higher, -1 lower, 0 neither)
ROWS = [
    ("code_snr_condition", "code SNR by condition, along the first condition discriminant of the training codes", +1),
    ("condition_accuracy", "condition decoded from test codes (LDA fitted on training codes), fraction correct", +1),
    ("condition_accuracy_chance", "chance accuracy: the test trials' most frequent condition's share "
                                  "(a property of the data)", 0),
    ("code_snr_target_x", "code SNR for target x, along the discriminant direction", +1),
    ("code_snr_target_y", "code SNR for target y, along the discriminant direction", +1),
    ("code_snr_axis_target_x", "code SNR for target x, along the behaviour axis", +1),
    ("code_snr_axis_target_y", "code SNR for target y, along the behaviour axis", +1),
    ("r2_generated", "R² generated vs true rates (smoothed spikes without ground truth): conditional means, "
                     "condition-averaged, mean over neurons", +1),
    ("r2_generated_single", "R² generated vs true rates: single draws, condition-averaged", +1),
    ("r2_truth_ceiling", "R² ceiling: the other held-in trials' rates vs the test trials' (true rates; smoothed "
                         "spikes without ground truth; a property of the data)", 0),
    ("nav_slope_target_x", "navigation slope, target x (decoded cm per commanded cm; 1 = exact)", 0),
    ("nav_slope_target_y", "navigation slope, target y (1 = exact)", 0),
    ("leakage_target_x", "leakage navigating target x: unintended cm per achieved cm", -1),
    ("leakage_target_y", "leakage navigating target y: unintended cm per achieved cm", -1),
    ("unintended_target_x", "unintended cm per commanded cm, navigating target x", -1),
    ("unintended_target_y", "unintended cm per commanded cm, navigating target y", -1),
    ("axis_cos_whitened_target_x_target_y", "|cos| target-x vs target-y axes on whitened codes (0 = orthogonal)", -1),
    ("axis_cos_random_expected", "|cos| expected between random axes in that code dimension", 0),
    ("decoded_target_error_cm", "endpoint error of reaches decoded from generated test trials (conditional means), cm",
     -1),
    ("decoded_target_error_cm_single", "the same from single draws, cm", -1),
    ("velocity_r2", "hand-velocity R² decoded from generated test trials (conditional means)", +1),
    ("velocity_r2_single", "the same from single draws", +1),
    ("heldout_target_error_cm", "held-out target error predicted from codes, cm", -1),
    ("heldout_target_error_frac_grid", "held-out target error ÷ grid spacing", -1),
    ("decoder_endpoint_error_cm", "behaviour decoder's median endpoint error on the recorded test trials, cm "
                                  "(the same for every model)", 0),
    ("cobps", "co-bps: bits per spike of the held-out neurons on the test trials", +1),
]
BETTER = {key: sign for key, _, sign in ROWS}
#: the metrics the README's comparison paragraph speaks about, with their short names and how a value
#: scores (higher score = better): the slope is better the closer it is to 1
COMPARED = {
    "code_snr_condition": ("code SNR by condition", lambda v: v),
    "condition_accuracy": ("condition accuracy from codes", lambda v: v),
    "code_snr_target_x": ("code SNR for target x", lambda v: v),
    "code_snr_target_y": ("code SNR for target y", lambda v: v),
    "r2_generated": ("R² of generated vs true rates", lambda v: v),
    "nav_slope_target_x": ("navigation slope for target x (1 = exact)", lambda v: -abs(1 - v)),
    "nav_slope_target_y": ("navigation slope for target y (1 = exact)", lambda v: -abs(1 - v)),
    "leakage_target_x": ("leakage navigating target x", lambda v: -v),
    "leakage_target_y": ("leakage navigating target y", lambda v: -v),
    "decoded_target_error_cm": ("endpoint error of reaches decoded from generated trials (cm)", lambda v: -v),
    "heldout_target_error_frac_grid": ("held-out target error ÷ grid spacing", lambda v: -v),
    "axis_cos_whitened_target_x_target_y": ("|cos| between the whitened target axes", lambda v: -v),
}
FIGURES = {
    "codes_pca": "Codes of every trial on their first principal components, coloured by target x and y (held-out "
                 "targets as crosses). A disentangled code shows smooth colour gradients in different directions.",
    "code_snr": "Code SNR per target coordinate: between-target variance ÷ within-target variance of the codes "
                "projected on one direction (dark: the direction that best predicts the coordinate; light: the "
                "behaviour axis). Higher means targets are better separated in code space.",
    "r2_neurons": "Per-neuron R² between condition-averaged generated and true rates. R² is 1 for a perfect match, 0 "
                  "for a prediction no better than the neuron's mean, and negative when the prediction is further "
                  "from the truth than that mean (e.g. the right shape at the wrong level).",
    "navigation": "Navigation: codes of test trials stepped along the target-x (top) or target-y axis so the "
                  "commanded target sweeps the grid; the reach decoded from the generated activity, coloured by the "
                  "commanded position. Below: decoded vs commanded target; the dashed identity line is exact control.",
    "unintended_orthogonality": "Left: leakage (cm of unwanted movement of the other start/target coordinates per cm "
                                "the commanded coordinate really moved) and unintended movement per commanded cm. "
                                "Right: |cos| between the target-x and target-y axes on whitened codes, beside the "
                                "value expected for random axes in that dimension.",
    "heldout_targets": "Targets of held-out conditions (never trained on) predicted from their trials' codes by a "
                       "linear map fitted on held-in trials; lines join prediction and truth.",
}
#: the captions that differ for the neural evaluation (no targets, no kinematics)
NEURAL_FIGURES = {
    "codes_pca": "Codes of every trial on their first principal components, coloured by condition (held-out "
                 "conditions' trials as black crosses). Codes that separate conditions form distinct clusters.",
    "code_snr": "Code SNR by condition: between-condition variance ÷ within-condition variance of the held-in valid "
                "and test codes projected on the first condition discriminant fitted on the training codes. Higher "
                "means conditions are better separated in code space.",
    "r2_neurons": "Per-neuron R² between condition-averaged generated and recorded rates (the ground truth when the "
                  "dataset has it, else smoothed spikes). R² is 1 for a perfect match, 0 for a prediction no better "
                  "than the neuron's mean, and negative when the prediction is further from the recorded rates than "
                  "that mean (e.g. the right shape at the wrong level).",
}


def evaluate_models(models: dict, data: TrialData, decoder: BehaviourDecoder | None = None, *, samples: int = 8,
                    nav_steps: int = 9, seed: int = 0, progress: bool = True,
                    desc: str = "evaluating") -> list[ModelEvaluation]:
    """Each named model evaluated, with one progress bar: `evaluate_model` when the dataset has reaches
    (the decoder defaults to one fitted on its held-in training trials), `neural.evaluate_neural`
    (no decoder) when it has condition labels but no kinematics (`readiness.evaluation_kind`)."""
    from tqdm.auto import tqdm

    if evaluation_kind(data) == "neural":
        steps = NEURAL_STEPS

        def evaluate(name, model, tick):
            return evaluate_neural(name, model, data, samples=samples, seed=seed, progress=tick)
    else:
        steps = evaluation_steps(nav_steps)
        if decoder is None:
            decoder = BehaviourDecoder.fit(data.subset(trials=data.heldin_conditions("train")))

        def evaluate(name, model, tick):
            return evaluate_model(name, model, data, decoder, samples=samples, nav_steps=nav_steps, seed=seed,
                                  progress=tick)
    with tqdm(total=steps * len(models), desc=desc, unit="step", disable=not progress, dynamic_ncols=True) as bar:
        return [evaluate(name, model, bar.update) for name, model in models.items()]


def dataset_summary(data: TrialData, source: str = "") -> dict:
    """Counts that say how much the report's numbers can be trusted."""
    info = data.trial_info
    heldout = info["heldout_condition"].to_numpy(bool)
    test = data.heldin_conditions("test")
    heldin_conditions = np.unique(info.loc[~heldout, "condition_id"])
    per_target = info.loc[test, "condition_id"].value_counts().reindex(heldin_conditions, fill_value=0)
    return {"source": source, "trials": int(data.n_trials), "neurons": int(data.n_neurons),
            "heldin_targets": int(info.loc[~heldout, "condition_id"].nunique()),
            "heldout_targets": int(info.loc[heldout, "condition_id"].nunique()),
            "train_trials": int(data.heldin_conditions("train").sum()),
            "valid_trials": int(data.heldin_conditions("valid").sum()),
            "test_trials_heldin": int(test.sum()), "test_trials_heldout": int(heldout.sum()),
            "test_trials_per_heldin_target_min": int(per_target.min()) if len(per_target) else 0,
            "ground_truth_rates": data.rates is not None, "missing_reach": missing_reach(data)}


def aggregate(per_seed: list[ModelEvaluation]) -> dict:
    """{metric: {mean, sd, seeds, why?}} over one model's seeds (sd with ddof 1; null below two seeds)."""
    keys = list(dict.fromkeys(k for ev in per_seed for k in ev.metrics))
    out = {}
    for key in keys:
        values = [ev.metrics.get(key) for ev in per_seed]
        defined = [v for v in values if v is not None]
        entry = {"mean": float(np.mean(defined)) if defined else None,
                 "sd": float(np.std(defined, ddof=1)) if len(defined) > 1 else None,
                 "seeds": [None if v is None else round(float(v), 6) for v in values]}
        reasons = {i: ev.why[key] for i, ev in enumerate(per_seed) if key in ev.why}
        if len(reasons) == len(per_seed) and len(set(reasons.values())) == 1:
            entry["why"] = next(iter(reasons.values()))
        elif reasons:
            entry["why"] = "; ".join(f"seed {i}: {text}" for i, text in reasons.items())
        elif entry["sd"] is None:
            entry["why"] = "a single seed has no spread"
        if entry["mean"] is not None:
            entry["mean"] = round(entry["mean"], 6)
        if entry["sd"] is not None:
            entry["sd"] = round(entry["sd"], 6)
        out[key] = entry
    return out


def build_report(per_seed: dict[str, list[ModelEvaluation]], data: TrialData, *, source: str = "",
                 seeds: list[int] | None = None, extra: dict | None = None) -> dict:
    """The report.json structure (see the module docstring)."""
    first = next(iter(per_seed.values()))
    seeds = seeds if seeds is not None else list(range(len(first)))
    scope = getattr(first[0], "scope", "reach")
    report = {"dataset": dataset_summary(data, source), "evaluation": scope,
              "protocol": NEURAL_PROTOCOL if scope == "neural" else PROTOCOL, "seeds": seeds,
              "models": {name: {"kind": evs[0].kind, **aggregate(evs)} for name, evs in per_seed.items()}}
    report.update(extra or {})
    return report


def write_report(per_seed: dict[str, list[ModelEvaluation]] | list[ModelEvaluation], data: TrialData,
                 out_dir: str | os.PathLike, *, source: str = "", seeds: list[int] | None = None,
                 extra: dict | None = None, figures: bool = True) -> dict:
    """``report.json``, ``report.md`` and the figures (of the first seed) in ``out_dir``, each written
    atomically. ``per_seed``: {model: [evaluation per seed]}, or a list of single-seed evaluations."""
    if isinstance(per_seed, list):
        per_seed = {ev.name: [ev] for ev in per_seed}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = build_report(per_seed, data, source=source, seeds=seeds, extra=extra)
    with atomic_path(out_dir / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    written = []
    if figures:
        from .figures import write_figures

        written = [Path(p).name for p in write_figures([evs[0] for evs in per_seed.values()], data, out_dir)]
    with atomic_path(out_dir / "report.md") as tmp:
        tmp.write_text(markdown(report, written))
    return report


def format_entry(entry: dict, digits: int = 3) -> str:
    """"mean ± sd (seed values)", or "n/a (why)"."""
    if entry["mean"] is None:
        return f"n/a ({entry.get('why', 'undefined')})"
    text = f"{entry['mean']:.{digits}f}"
    if entry["sd"] is not None:
        text += f" ± {entry['sd']:.{digits}f}"
    if len(entry["seeds"]) > 1:
        text += " (" + ", ".join("n/a" if v is None else f"{v:.{digits}f}" for v in entry["seeds"]) + ")"
    return text


def _describe(key: str, described: dict) -> str:
    if key in described:
        return described[key]
    if key.startswith("axis_cos_"):
        a, b = (v.replace("_", " ") for v in re.findall(r"(?:start|target)_[xy]", key))
        return f"cosine between the {a} and {b} axes, raw codes (`{key}`)"
    return key


def markdown(report: dict, figures: list[str]) -> str:
    names = list(report["models"])
    data = report["dataset"]
    neural = report.get("evaluation") == "neural"
    captions = {**FIGURES, **NEURAL_FIGURES} if neural else FIGURES
    lines = [f"# Evaluation{' on ' + data['source'] if data.get('source') else ''}", "",
             f"{data['trials']} trials, {data['neurons']} neurons; {data['heldin_targets']} held-in conditions "
             f"({data['train_trials']} train, {data['valid_trials']} valid, {data['test_trials_heldin']} test trials, "
             f"at least {data['test_trials_per_heldin_target_min']} test trials per condition) and "
             f"{data['heldout_targets']} held-out conditions ({data['test_trials_heldout']} trials). "
             + (f"No reaches to evaluate ({data['missing_reach']}), so the reach metrics are n/a. "
                if neural and data.get("missing_reach") else "")
             + f"Seeds: {', '.join(map(str, report['seeds']))}; each cell is mean ± sd over seeds (sd with ddof 1), "
             "then the per-seed values.", "", report.get("protocol", PROTOCOL), "",
             "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    described = {key: text for key, text, _ in ROWS}
    keys = [key for key, _, _ in ROWS if any(key in report["models"][n] for n in names)]
    keys += sorted({k for n in names for k in report["models"][n] if k != "kind"} - set(keys) - {"kind"})
    for key in keys:
        arrow = {1: " (↑)", -1: " (↓)"}.get(BETTER.get(key, 0), "")
        cells = [format_entry(report["models"][n][key]) if key in report["models"][n] else "–" for n in names]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in [_describe(key, described) + arrow, *cells])
                     + " |")
    lines += ["", "↑ higher is better, ↓ lower is better; rows without an arrow are read against a reference "
              "(slope: 1; |cos| of random axes; the ceiling and the decoder's error describe the data and the "
              "instrument, not a model).", ""]
    for name in figures:
        stem = Path(name).stem
        lines += [f"## {stem.replace('_', ' ')}", "", captions.get(stem, ""), "", f"![{stem}]({name})", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------- the README's comparison
README_START, README_END = "<!-- comparison:start (generated from assets/models/report/report.json) -->", \
    "<!-- comparison:end -->"


def comparison_paragraph(report: dict, subject: str = "gnocchi") -> str:
    """Sentences comparing ``subject`` with every other model on `COMPARED`: "better" or "worse" only
    where the seeds agree — every seed of one model beats every seed of the other (the per-seed
    ranges do not overlap) — otherwise "no consistent difference"."""
    models = report["models"]
    n_seeds = len(report["seeds"])
    lines = []
    for other in [n for n in models if n != subject]:
        wins, losses, ties, undefined = [], [], [], []
        for key, (name, score) in COMPARED.items():
            a, b = models[subject].get(key), models[other].get(key)
            if a is None or b is None:
                continue
            mine = [score(v) for v in a["seeds"] if v is not None]
            theirs = [score(v) for v in b["seeds"] if v is not None]
            if len(mine) < n_seeds or len(theirs) < n_seeds:
                undefined.append(name)
                continue
            label = f"{name} ({a['mean']:.2f} vs {b['mean']:.2f})"
            if n_seeds < 2:
                ties.append(label)
            elif min(mine) > max(theirs):
                wins.append(label)
            elif max(mine) < min(theirs):
                losses.append(label)
            else:
                ties.append(label)
        parts = [f"**{subject} vs {other}** (means over {len(report['seeds'])} seeds; better or worse only where "
                 f"every seed of one beats every seed of the other):"]
        parts.append(f"better on {', '.join(wins)}." if wins else "better on none of the compared metrics.")
        parts.append(f"Worse on {', '.join(losses)}." if losses else "Worse on none.")
        if ties:
            parts.append(f"No consistent difference{' (one seed cannot show one)' if n_seeds < 2 else ''} on "
                         f"{', '.join(ties)}.")
        if undefined:
            parts.append(f"Not comparable (undefined for some seed; see the report) on {', '.join(undefined)}.")
        lines.append(" ".join(parts))
    return "\n\n".join(lines)


def update_readme(readme: str | os.PathLike, report: dict) -> bool:
    """Rewrite the generated comparison between the README's markers; True when it changed."""
    path = Path(readme)
    text = path.read_text()
    if README_START not in text or README_END not in text:
        return False
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    new = pattern.sub(lambda _: f"{README_START}\n{comparison_paragraph(report)}\n{README_END}", text)
    if new != text:
        with atomic_path(path) as tmp:
            tmp.write_text(new)
    return new != text
