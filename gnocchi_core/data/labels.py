"""Trial labels and splits derived from the data when a recording has none.

Every importer goes through here, so every dataset is labelled the same way:

* ``start_x/start_y`` = hand position in the bin holding movement onset (t = 0; the first bin
  when the window does not contain t = 0), ``target_x/target_y`` = mean hand position over the
  last `END_MS` of the window, ``reach_angle`` = atan2 of target − start (radians);
* ``condition_id`` = the given per-trial labels enumerated in sorted order, else k-means of the
  reach endpoints (target − start) numbered by increasing angle of the cluster centre;
* ``split`` = train/valid/test stratified by condition (`stratified_split`).

What was derived is recorded in ``Provenance.derived`` and shown by `gnocchi data info`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: The reach endpoint (target) is the mean hand position over this much of the window's end.
END_MS = 50.0
#: A condition with at least this many labelled trials gets at least one trial in each
#: requested split (test, valid) and keeps at least one for training.
MIN_TRIALS_FOR_EVERY_SPLIT = 3
#: Default shares of the trials in valid and test when splits are derived.
VALID_FRACTION, TEST_FRACTION = 0.15, 0.2


def endpoint_bins(bin_ms: float, n_bins: int) -> int:
    """How many bins make up the window's last `END_MS` (at least one; 10 at 5 ms)."""
    return int(min(n_bins, max(1, round(END_MS / bin_ms))))


def reach_labels(hand_pos: np.ndarray, *, bin_ms: float, t0_ms: float, end_bins: int | None = None,
                 onset_in_window: bool = True) -> tuple[np.ndarray, str]:
    """(trials, 5) start x/y, target x/y, reach angle from hand positions (trials, bins, 2), and a note.

    ``t0_ms``: start of the first position bin relative to movement onset (for NLB behaviour, the
    spikes' t0 plus the behaviour lag). Start: the position in the bin containing t = 0 (movement
    onset); target: the mean position over the last ``end_bins`` bins; angle: atan2 of
    target − start. NaN where the path is not finite. ``end_bins`` defaults to the last `END_MS`.
    If t = 0 is outside the bins: ValueError, or (``onset_in_window=False``, trials aligned to
    something other than movement onset) the first bin is the start.
    """
    n_bins = hand_pos.shape[1]
    onset = int(np.floor((0.0 - t0_ms) / bin_ms + 1e-9))
    if not 0 <= onset < n_bins:
        if onset_in_window:
            raise ValueError(f"movement onset (t = 0) is outside the window {t0_ms:g}..{t0_ms + n_bins * bin_ms:g} "
                             "ms: cannot derive start positions")
        onset = 0
    end_bins = endpoint_bins(bin_ms, n_bins) if end_bins is None else min(end_bins, n_bins)
    pos = hand_pos.astype(np.float64)
    start = pos[:, onset, :2]
    target = pos[:, -end_bins:, :2].mean(axis=1)
    reach = target - start
    labels = np.column_stack([start, target, np.arctan2(reach[:, 1], reach[:, 0])])
    onset_ms = t0_ms + onset * bin_ms
    end_ms = t0_ms + (n_bins - end_bins) * bin_ms
    where = "containing movement onset" if t0_ms <= 0 < t0_ms + n_bins * bin_ms else "at the window start"
    note = (f"start_x/start_y = hand_pos in the bin {where} (behaviour bin {onset}, "
            f"{onset_ms:g}..{onset_ms + bin_ms:g} ms), target_x/target_y = mean hand_pos over the last {end_bins} "
            f"bins ({end_ms:g}..{t0_ms + n_bins * bin_ms:g} ms); "
            "reach_angle = atan2(target − start) in radians")
    return labels, note


def cluster_conditions(endpoints: np.ndarray, n_conditions: int, seed: int) -> tuple[np.ndarray, str]:
    """Condition ids 0..k-1 from k-means of reach endpoints (n, 2), numbered by increasing angle of the
    cluster centre (atan2, −π..π), and a note. k = n_conditions, or the number of distinct endpoints if fewer."""
    from sklearn.cluster import KMeans

    endpoints = np.asarray(endpoints, dtype=np.float64)
    n_distinct = len(np.unique(endpoints, axis=0))
    k = min(int(n_conditions), n_distinct)
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(endpoints)
    centres = kmeans.cluster_centers_
    order = np.lexsort((np.hypot(centres[:, 0], centres[:, 1]), np.arctan2(centres[:, 1], centres[:, 0])))
    rank = np.empty(k, np.int64)
    rank[order] = np.arange(k)
    note = (f"condition_id = k-means (k={k}, n_init=10, random_state={seed}) of the reach endpoints target − start, "
            "numbered by increasing angle of the cluster centre (the file has no reach conditions)")
    if k < n_conditions:
        note += f"; only {n_distinct} distinct endpoints, so {k} cluster(s) instead of n_conditions={n_conditions}"
    return rank[kmeans.labels_], note


def _check_fractions(valid_fraction: float, labelled_test_fraction: float) -> None:
    if not 0 <= valid_fraction < 1:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    if not 0 <= labelled_test_fraction < 1:
        raise ValueError(f"labelled_test_fraction must be in [0, 1), got {labelled_test_fraction}")
    if valid_fraction + labelled_test_fraction >= 1:
        raise ValueError(f"valid_fraction + labelled_test_fraction must be < 1 (some trials must train), "
                         f"got {valid_fraction} + {labelled_test_fraction}")


def random_split(n: int, valid_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """train/valid/test per trial at random: round(fraction × n) trials to test and to valid."""
    _check_fractions(valid_fraction, test_fraction)
    split = np.full(n, "train", dtype=object)
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_valid = (int(round(f * n)) for f in (test_fraction, valid_fraction))
    split[order[:n_test]], split[order[n_test:n_test + n_valid]] = "test", "valid"
    return split


def stratified_split(strata: np.ndarray, valid_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """train/valid/test per trial: round(fraction × n) trials to test and to valid overall, shared out over
    the strata (condition ids) in proportion to their size. A stratum with ≥ MIN_TRIALS_FOR_EVERY_SPLIT
    trials gets at least one trial in each requested split; every stratum keeps at least one training
    trial; unlabelled trials (stratum −1) never go to test."""
    strata = np.asarray(strata)
    names, index = np.unique(strata, return_inverse=True)
    sizes = np.bincount(index, minlength=len(names))
    rng = np.random.default_rng(seed)
    test = _allocate(sizes, test_fraction, caps=np.where(names < 0, 0, np.maximum(sizes - 1, 0)))
    valid = _allocate(sizes, valid_fraction, caps=np.maximum(sizes - 1 - test, 0))
    split = np.full(len(strata), "train", dtype=object)
    for s in range(len(names)):
        members = rng.permutation(np.flatnonzero(index == s))
        split[members[:test[s]]] = "test"
        split[members[test[s]:test[s] + valid[s]]] = "valid"
    return split


def _allocate(sizes: np.ndarray, fraction: float, caps: np.ndarray) -> np.ndarray:
    """Per-stratum counts summing to round(fraction × total) (as near as caps allow): proportional shares,
    at least one for strata of ≥ MIN_TRIALS_FOR_EVERY_SPLIT trials, largest remainders first; deterministic."""
    if fraction <= 0:
        return np.zeros(len(sizes), np.int64)
    quota = fraction * sizes
    floors = np.minimum(np.where(sizes >= MIN_TRIALS_FOR_EVERY_SPLIT, 1, 0), caps)
    counts = np.clip(np.floor(quota).astype(np.int64), floors, caps)
    total = int(round(fraction * sizes.sum()))
    while counts.sum() < total:
        room = np.flatnonzero(counts < caps)
        if not room.size:
            break
        counts[room[np.argmax(quota[room] - counts[room])]] += 1  # argmax: first of ties
    while counts.sum() > total:
        spare = np.flatnonzero(counts > floors)
        if not spare.size:
            break
        counts[spare[np.argmin(quota[spare] - counts[spare])]] -= 1
    return counts


# ---------------------------------------------------------------------- deriving what a recording lacks
def condition_ids(labels) -> tuple[np.ndarray, list]:
    """Per-trial labels (strings or numbers) → ids 0..k-1 in sorted label order, and the k labels."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"condition labels must be one value per trial, got shape {labels.shape}")
    if labels.dtype.kind in "OUS":
        labels = np.array([str(v).strip() for v in labels], dtype=object)
    names, ids = np.unique(labels, return_inverse=True)
    return ids.astype(np.int64), names.tolist()


def derive_splits(conditions: np.ndarray, *, valid_fraction: float = VALID_FRACTION,
                  test_fraction: float = TEST_FRACTION, seed: int = 0) -> tuple[np.ndarray, str]:
    """train/valid/test per trial, stratified by condition when there are conditions (−1 = none), and a note."""
    _check_fractions(valid_fraction, test_fraction)
    conditions = np.asarray(conditions, dtype=np.int64)
    if (conditions >= 0).any():
        split, how = stratified_split(conditions, valid_fraction, test_fraction, seed), "stratified by condition_id"
    else:
        split, how = random_split(len(conditions), valid_fraction, test_fraction, seed), "at random (no conditions)"
    return split, (f"split derived {how}: valid {valid_fraction:g}, test {test_fraction:g} of the trials, "
                   f"seed {seed}")


def derive_labels(info: pd.DataFrame, *, hand_pos: np.ndarray | None, bin_ms: float, t0_ms: float,
                  conditions=None, condition_name: str = "condition", n_conditions: int = 8,
                  splits: bool = True, valid_fraction: float = VALID_FRACTION, test_fraction: float = TEST_FRACTION,
                  seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """``info`` with what it lacks derived (see the module docstring), and one note per derived thing.

    ``hand_pos`` (trials, bins, ≥2) in cm fills start/target/reach_angle where they are all NaN;
    ``conditions`` (one label per trial) become ``condition_id`` and a ``condition_name`` column;
    without them, and with no condition_id, conditions are k-means clusters of the endpoints;
    ``splits`` derives train/valid/test (the caller passes False when the recording has splits).
    """
    info = info.copy()
    n = len(info)
    notes = []
    columns = ("start_x", "start_y", "target_x", "target_y", "reach_angle")
    unlabelled = all(c not in info or info[c].isna().all() for c in columns)
    if hand_pos is not None and hand_pos.shape[-1] >= 2 and unlabelled:
        labels, note = reach_labels(hand_pos, bin_ms=bin_ms, t0_ms=t0_ms, onset_in_window=False)
        for k, column in enumerate(columns):
            info[column] = labels[:, k]
        notes.append(note)
    if conditions is not None:
        ids, names = condition_ids(conditions)
        if len(ids) != n:
            raise ValueError(f"{len(ids)} condition labels for {n} trials")
        values = np.asarray(names)
        info["condition_id"] = ids
        info[condition_name] = values[ids] if values.dtype.kind in "biuf" else values.astype(object)[ids]
        notes.append(f"condition_id enumerates the {len(names)} distinct values of {condition_name} in sorted order")
    elif "condition_id" not in info or (info["condition_id"] < 0).all():
        ends = info[["start_x", "start_y", "target_x", "target_y"]].to_numpy(dtype=np.float64) \
            if {"start_x", "target_x"} <= set(info) else np.full((n, 4), np.nan)
        known = np.isfinite(ends).all(axis=1)
        ids = np.full(n, -1, np.int64)
        if known.sum() >= 2:
            ids[known], note = cluster_conditions(ends[known, 2:] - ends[known, :2], n_conditions, seed)
            notes.append(note)
        info["condition_id"] = ids
    if splits:
        info["split"], note = derive_splits(info["condition_id"].to_numpy(), valid_fraction=valid_fraction,
                                            test_fraction=test_fraction, seed=seed)
        notes.append(note)
    return info, notes
