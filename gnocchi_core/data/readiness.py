"""What a dataset supports: which commands accept it, and the one thing missing when one does not.

Three levels of labelling, each unlocking more:

* any trials with ``train`` and ``valid`` splits → ``train`` (and the explorer's PCA sliders);
* condition labels (``condition_id`` ≥ 0, at least two conditions) → the neural-only evaluation
  (code SNR by condition, generated vs recorded R², PCA) and condition-discriminant sliders;
* hand kinematics (``hand_pos`` and ``hand_vel``, 2-D) with start/target on every trial → the full
  reach evaluation (navigation, decoded reaches) and the explorer's reach panel.

`gnocchi data check` prints `readiness`; evaluate and the explorer use `has_reaches` and
`has_conditions` to pick what they show. Every function is a pure function of the `TrialData`.
"""

from __future__ import annotations

import numpy as np

from .trialdata import TrialData

REACH_FIELDS = ("hand_pos", "hand_vel")
REACH_LABELS = ("start_x", "start_y", "target_x", "target_y")
COMMANDS = ("train", "evaluate", "explore")


def missing_reach(data: TrialData) -> str | None:
    """Why the dataset has no reaches to decode and navigate (None when it has them)."""
    for name in REACH_FIELDS:
        if name not in data.behavior:
            return f"no behaviour '{name}' (hand kinematics in cm, cm/s)"
        if data.behavior[name].shape[-1] < 2:
            return f"behaviour '{name}' has {data.behavior[name].shape[-1]} dimension(s), 2 (x, y) needed"
    info = data.trial_info
    unlabelled = [c for c in REACH_LABELS if info[c].isna().any()]
    if unlabelled:
        n = int(info[unlabelled].isna().any(axis=1).sum())
        return f"{', '.join(unlabelled)} missing (NaN) on {n} of {data.n_trials} trials"
    if info["target_x"].nunique() < 2 and info["target_y"].nunique() < 2:
        return "every trial has the same target: no target axis to navigate"
    return None


def has_reaches(data: TrialData) -> bool:
    return missing_reach(data) is None


def missing_conditions(data: TrialData) -> str | None:
    """Why trials cannot be grouped by condition (None when they can)."""
    conditions = data.trial_info["condition_id"].to_numpy()
    if (conditions < 0).all():
        return "no condition labels (condition_id is -1 on every trial; import with --condition KEY)"
    if (conditions < 0).any():
        return f"condition_id missing (-1) on {int((conditions < 0).sum())} of {data.n_trials} trials"
    if len(np.unique(conditions)) < 2:
        return "a single condition: nothing to separate"
    return None


def has_conditions(data: TrialData) -> bool:
    return missing_conditions(data) is None


def missing_splits(data: TrialData, *needed: str) -> str | None:
    """Why the held-in trials lack one of the ``needed`` splits (None when each has a trial)."""
    for split in needed:
        if not data.heldin_conditions(split).any():
            return (f"no held-in '{split}' trials (every trial is "
                    f"{'/'.join(sorted(set(data.trial_info['split'])))}; re-import to derive splits)")
    return None


def readiness(data: TrialData) -> dict[str, str | None]:
    """{command: None if it accepts the dataset, else the one thing missing}, in `COMMANDS` order."""
    train = missing_splits(data, "train", "valid")
    evaluate = missing_splits(data, "train", "test")
    if evaluate is None and not has_reaches(data) and not has_conditions(data):
        evaluate = (f"neither reaches ({missing_reach(data)}) nor condition labels "
                    f"({missing_conditions(data)})")
    return {"train": train, "evaluate": evaluate, "explore": train}


def evaluation_kind(data: TrialData) -> str:
    """'reach' (the full evaluation) or 'neural' (what applies without kinematics)."""
    return "reach" if has_reaches(data) else "neural"
