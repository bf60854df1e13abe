"""The evaluation of a model on a recording with condition labels but no hand kinematics
(`readiness.evaluation_kind` = 'neural'): what applies of `evaluation`'s protocol, every model
measured the same way, nothing chosen on the trials it reports.

- codes: `encode` of every trial; the condition discriminant and classifier are fitted on the
  held-in *training* codes only.
- ``code_snr_condition``: `metrics.code_snr` (unbiased variances) of the pooled held-in valid + test
  codes, conditions = ``condition_id``, along the first Fisher discriminant of the training codes by
  condition (`metrics.condition_discriminant`: multi-class LDA, Ledoit–Wolf-shrunk within-condition
  covariance, scikit-learn). It is the direction that maximises exactly the ratio the SNR measures.
- ``condition_accuracy``: fraction of the held-in test trials whose condition a shrinkage-LDA classifier
  fitted on the training codes names (`metrics.condition_accuracy`); ``condition_accuracy_chance``:
  the test trials' majority rate (the best a guess that ignores the codes can do).
- ``code_snr_target_x`` … ``code_snr_axis_target_y``: as `evaluation.evaluate_model` when start and
  target are labelled on every trial (reach labels without kinematics); else null with the reason.
- generation (`evaluation.recorded_generation`), like with like: R² of condition-averaged conditional
  means and single draws vs the test trials' rates (``r2_generated``, ``r2_generated_single``) and the
  ceiling ``r2_truth_ceiling`` (the other held-in trials' rates): the ground-truth rates when the
  dataset has them, else spikes smoothed with a Gaussian of ``sigma_ms``; ``cobps`` of held-out neurons.
- PCA of the codes (``pcs``, ``pc_variance``), as every evaluation.
- every reach metric (`evaluation.REACH_METRICS`: navigation, leakage, decoded reaches, velocity R²,
  axis cosines, held-out targets, the decoder's error): null, with `readiness.missing_reach` as why.
"""

from __future__ import annotations

import numpy as np

from ..data.preprocessing import smoothed_rates
from ..data.readiness import missing_conditions, missing_reach, missing_splits
from ..data.trialdata import TrialData
from ..errors import GnocchiError
from .decoding import VARIABLES
from .evaluation import (REACH_METRICS, ModelEvaluation, Recorder, behaviour_table, finish, raise_undefined,
                         recorded_generation, target_code_snrs)
from .metrics import Undefined, behaviour_axes, code_snr, condition_accuracy, condition_discriminant

#: how many times `evaluate_neural` ticks its progress callable
NEURAL_STEPS = 2


def evaluate_neural(name: str, model, data: TrialData, *, samples: int = 8, seed: int = 0, sigma_ms: float = 40.0,
                    progress=None) -> ModelEvaluation:
    """Every metric of the module docstring for one model; ``progress``: a callable(n) ticked per step.
    A GnocchiError names what is missing when the trials have no condition labels or no held-in
    'train' and 'test' trials."""
    tick = progress or (lambda n=1: None)
    missing = missing_conditions(data) or missing_splits(data, "train", "test")
    if missing:
        raise GnocchiError(f"the neural evaluation needs condition labels and held-in train and test trials: {missing}")
    conditions = data.trial_info["condition_id"].to_numpy()
    train, test = data.heldin_conditions("train"), data.heldin_conditions("test")
    pool = data.heldin_conditions("valid", "test")
    record = Recorder()
    codes = model.encode(data)
    record("code_snr_condition", lambda: code_snr(codes[pool], condition_discriminant(codes[train], conditions[train]),
                                                  conditions[pool]))
    try:
        accuracy, reason = condition_accuracy(codes[train], conditions[train], codes[test], conditions[test]), ""
    except Undefined as undefined:
        accuracy, reason = (None, None), str(undefined)
    for key, value in zip(("condition_accuracy", "condition_accuracy_chance"), accuracy):
        record(key, lambda: raise_undefined(reason) if value is None else value)
    axes = _target_snrs(record, codes, data, conditions, train, pool)
    tick(1)

    rates = data.rates if data.rates is not None else smoothed_rates(data.spikes, data.bin_ms, sigma_ms)
    r2_neurons = recorded_generation(record, model, data, codes, rates, samples=samples, seed=seed)
    reach = missing_reach(data) or "reach metrics are not part of the neural evaluation"
    for key in REACH_METRICS:
        record(key, lambda: raise_undefined(reach))
    tick(1)
    return finish(name, model, record, codes, axes, r2_neurons, scope="neural")


def _target_snrs(record: Recorder, codes, data: TrialData, conditions, train, pool) -> np.ndarray:
    """Code SNR of the target coordinates (discriminant direction and behaviour axis) when start and
    target are labelled on every trial, else null with the reason. Returns the behaviour axes (L, 4),
    NaN without labels."""
    try:
        behaviour = behaviour_table(data)
    except GnocchiError:
        labels = data.trial_info[list(VARIABLES)]
        unlabelled = [v for v in VARIABLES if labels[v].isna().any()]
        reason = (f"no reach labels: {', '.join(unlabelled)} missing (NaN) on "
                  f"{int(labels.isna().any(axis=1).sum())} of {data.n_trials} trials")
        for variable in ("target_x", "target_y"):
            for what in ("code_snr", "code_snr_axis"):
                record(f"{what}_{variable}", lambda: raise_undefined(reason))
        return np.full((codes.shape[1], len(VARIABLES)), np.nan)
    axes, _ = behaviour_axes(codes[train], behaviour[train])
    target_code_snrs(record, codes, behaviour, conditions, train, pool, axes)
    return axes
