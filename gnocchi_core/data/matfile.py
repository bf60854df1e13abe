"""Import MATLAB (.mat) and NumPy (.npz) recordings: `gnocchi data import FILE --format mat|npz`.

Arrays are named by key: a variable (``spike_counts``), a field of a struct (``data.spikes``), or a
field of every element of a struct array (``trials.spikes``: one array per trial). The layout
decides what the recording is:

* a 2-D spike array is a **continuous** recording (units × time or time × units): it is cut into
  trials around movement onsets found from hand speed (``segment="speed-onset"``) or around given
  ``onsets`` (`arrays.from_continuous`);
* a 3-D array (trials × bins × units, or trials × units × bins) or one 2-D array per trial (a struct
  or cell array) is a set of **trials** (`arrays.from_arrays`); trials of different lengths are
  cut to a common window.

Spike counts or 0/1 trains are both accepted. The sample interval comes from ``source_bin_ms``,
else from a ``time`` vector (seconds when its steps are below 0.5, else ms), else 1 ms for 0/1
trains; the dataset is binned at ``bin_ms`` (default: the sample interval, 20 ms for 0/1 trains).
MATLAB v7.3 files (HDF5) are read too (`arraysource.py`): numeric arrays, structs and struct arrays of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .arrays import ONSET_WINDOW_MS, from_arrays, from_continuous
from .arraysource import ArraySource, describe
from .kinematics import onset_in, window_index
from .trialdata import Provenance, TrialData

TRAIN_BIN_MS = 20.0  # default bin width for 0/1 spike trains


@dataclass
class ArrayImport:
    """What to read from the file and how (the CLI's options, one field each)."""

    spikes: str
    units_axis: int | None = None
    bin_ms: float | None = None
    source_bin_ms: float | None = None
    time: str | None = None
    behavior: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (key, unit)
    condition: str | None = None
    split: str | None = None  # one of train / valid (or val) / test per trial; default: derived
    onsets: str | None = None
    segment: str | None = None  # "speed-onset"
    window_ms: tuple[float, float] | None = None
    speed_threshold: float = 0.2
    n_conditions: int = 8
    valid_fraction: float = 0.15
    test_fraction: float = 0.2
    seed: int = 0


def import_arrays(path: str | os.PathLike, options: ArrayImport, fmt: str | None = None) -> TrialData:
    """Read ``options``' arrays from a .mat or .npz file into a TrialData (see the module docstring)."""
    path = Path(path)
    fmt = fmt or ("npz" if path.suffix.lower() == ".npz" else "mat")
    try:
        source = ArraySource(path, fmt)
        return _build(source, options, path)
    except DataError as err:
        raise err.with_path(path) from None


def _build(source: "ArraySource", o: ArrayImport, path: Path) -> TrialData:
    spikes = source.get(o.spikes)
    provenance = Provenance(source=path.name, description=f"imported from {path.name} ({source.fmt}): spikes "
                                                           f"'{o.spikes}'")
    behavior = {name: (source.get(key), unit) for name, (key, unit) in o.behavior.items()}
    conditions = _labels(source.get(o.condition), o.condition) if o.condition else None
    splits = _splits(source.get(o.split), o.split) if o.split else None
    time = _vector(source.get(o.time), o.time) if o.time else None
    if isinstance(spikes, list) or (isinstance(spikes, np.ndarray) and spikes.ndim == 3):
        trials = _trial_list(spikes, o)
        source_ms, bin_ms = _bin_widths(o, trials, time)
        return _from_trials(trials, behavior, conditions, splits, o, source_ms, bin_ms, provenance)
    if not isinstance(spikes, np.ndarray) or spikes.ndim != 2:
        raise DataError("spikes must be 2-D (continuous), 3-D (trials) or one 2-D array per trial", field=o.spikes,
                        expected="units × time, trials × bins × units, or a struct/cell array of trials",
                        found=describe(spikes))
    if splits is not None:
        raise DataError("a continuous recording's splits are derived per trial", field=o.split,
                        expected="no --split for continuous spikes", found=f"a 2-D spike array {spikes.shape}")
    units_axis = _continuous_units_axis(spikes, o, time, behavior)
    source_ms, bin_ms = _bin_widths(o, spikes, time)
    onsets = None
    if o.onsets:
        onsets = _onset_samples(_vector(source.get(o.onsets), o.onsets), time)
    elif o.segment != "speed-onset":
        raise DataError("a continuous recording needs trials to be cut", field=o.spikes,
                        expected="--segment speed-onset (needs hand kinematics) or --onsets KEY",
                        found=f"a 2-D spike array {spikes.shape}")
    return from_continuous(_numeric(spikes, o.spikes), bin_ms=bin_ms, source_bin_ms=source_ms, units_axis=units_axis,
                           behavior={n: (_numeric(v, o.behavior[n][0]), u) for n, (v, u) in behavior.items()},
                           onsets=onsets, window_ms=o.window_ms or ONSET_WINDOW_MS,
                           speed_threshold=o.speed_threshold, conditions=conditions, condition_name=_column(o.condition),
                           n_conditions=o.n_conditions, valid_fraction=o.valid_fraction,
                           test_fraction=o.test_fraction, seed=o.seed, provenance=provenance)


# ---------------------------------------------------------------------- trials
def _trial_list(spikes, o: ArrayImport) -> list[np.ndarray]:
    """One (time, units) array per trial."""
    if isinstance(spikes, np.ndarray):  # (trials, bins, units) or (trials, units, bins)
        axis = 2 if o.units_axis in (None, -1, 2) else o.units_axis
        if axis not in (1, 2):
            raise DataError("units axis of 3-D spikes must be 1 or 2", field="--units-axis",
                            expected="1 (trials, units, bins) or 2 (trials, bins, units)", found=repr(o.units_axis))
        spikes = _numeric(spikes, o.spikes)
        return list(spikes if axis == 2 else spikes.transpose(0, 2, 1))
    trials = [_numeric(t, f"{o.spikes}[{i}]") for i, t in enumerate(spikes)]
    bad = next((i for i, t in enumerate(trials) if t.ndim != 2), None)
    if bad is not None:
        raise DataError("each trial's spikes must be 2-D", field=f"{o.spikes}[{bad}]", expected="units × time",
                        found=f"shape {trials[bad].shape}")
    axis = o.units_axis
    if axis is None:  # the axis of the same length in every trial holds the units
        same = [len({t.shape[a] for t in trials}) == 1 for a in (0, 1)]
        axis = 0 if same[0] and not same[1] else 1 if same[1] and not same[0] else int(np.argmin(trials[0].shape))
    if axis not in (0, 1):
        raise DataError("units axis of per-trial spikes must be 0 or 1", field="--units-axis",
                        expected="0 (units × time) or 1 (time × units)", found=repr(axis))
    trials = [t.T if axis == 0 else t for t in trials]
    if len({t.shape[1] for t in trials}) != 1:
        raise DataError("trials have different numbers of units", field=o.spikes, expected="the same units per trial",
                        found=str(sorted({t.shape[1] for t in trials})))
    return trials


def _from_trials(trials, behavior, conditions, splits, o: ArrayImport, source_ms: float, bin_ms: float,
                 provenance: Provenance) -> TrialData:
    """Cut every trial to one window (relative to trial start, or to its speed onset), then `from_arrays`."""
    n = len(trials)
    per_trial = {}
    for name, (values, unit) in behavior.items():
        key = o.behavior[name][0]
        items = list(values) if isinstance(values, (list, np.ndarray)) and len(values) == n else None
        if items is None:
            raise DataError("behaviour must have one entry per trial", field=key, expected=f"{n} trials",
                            found=describe(values))
        per_trial[name] = ([_time_first(_numeric(v, key), len(t), key) for v, t in zip(items, trials)], unit)
    for labels, key in ((conditions, o.condition), (splits, o.split)):
        if labels is not None and len(labels) != n:
            raise DataError("one label per trial required", field=key, expected=f"{n} labels", found=str(len(labels)))
    lengths = np.array([len(t) for t in trials])
    notes = []
    if o.segment == "speed-onset":
        if "hand_vel" not in per_trial and "hand_pos" not in per_trial:
            raise DataError("speed-onset segmentation needs hand kinematics", field="--segment",
                            expected="--behavior hand_pos=KEY or hand_vel=KEY", found="no hand behaviour")
        starts = _trial_onsets(per_trial, source_ms, o.speed_threshold)
        window = o.window_ms or ONSET_WINDOW_MS
        align, where = "move_onset", "movement onset (speed)"
    else:
        starts = np.zeros(n, dtype=np.int64)
        window = o.window_ms or (0.0, float(lengths.min() * source_ms))
        align, where = "trial_start", "trial start"
    length = int(round((window[1] - window[0]) / source_ms))
    index, keep = window_index(starts, lengths, int(round(window[0] / source_ms)), length)
    if not keep.any():
        raise DataError("no trial holds the window", field="--window", expected=f"{window[0]:g}..{window[1]:g} ms "
                        f"around {where} inside each trial", found=f"trials of {lengths.min() * source_ms:g}.."
                        f"{lengths.max() * source_ms:g} ms")
    notes.append(f"{n} trials cut to {window[0]:g}..{window[1]:g} ms around {where}"
                 + (f"; {int((~keep).sum())} dropped (too short, or no movement)" if not keep.all() else ""))
    kept = np.flatnonzero(keep)
    cut = lambda arrays: np.stack([arrays[i][rows] for i, rows in zip(kept, index)])  # noqa: E731
    return from_arrays(cut(trials), bin_ms=bin_ms, source_bin_ms=source_ms, t0_ms=window[0],
                       behavior={name: (cut(values), unit) for name, (values, unit) in per_trial.items()},
                       conditions=None if conditions is None else np.asarray(conditions)[keep],
                       splits=None if splits is None else splits[keep],
                       condition_name=_column(o.condition), align_event=align, n_conditions=o.n_conditions,
                       valid_fraction=o.valid_fraction, test_fraction=o.test_fraction, seed=o.seed,
                       provenance=provenance, notes=notes)


def _trial_onsets(per_trial: dict, source_ms: float, threshold: float) -> np.ndarray:
    """Sample index of movement onset in each trial (−1 without movement), from hand speed."""
    if "hand_vel" in per_trial:
        speeds = [np.linalg.norm(v[:, :2], axis=1) for v in per_trial["hand_vel"][0]]
    else:
        speeds = [np.linalg.norm(np.gradient(p[:, :2].astype(np.float64), axis=0), axis=1)
                  for p in per_trial["hand_pos"][0]]
    onsets = [onset_in(s, threshold) for s in speeds]
    return np.array([-1 if o is None else o for o in onsets], dtype=np.int64)


def _time_first(values: np.ndarray, n_time: int, key: str) -> np.ndarray:
    values = values[:, None] if values.ndim == 1 else values
    if values.ndim == 2 and values.shape[0] == n_time:
        return values
    if values.ndim == 2 and values.shape[1] == n_time:
        return values.T
    raise DataError("behaviour does not match the trial's samples", field=key, expected=f"{n_time} samples",
                    found=f"shape {values.shape}")


# ---------------------------------------------------------------------- continuous
def _continuous_units_axis(spikes: np.ndarray, o: ArrayImport, time, behavior) -> int:
    if o.units_axis is not None:
        if o.units_axis not in (0, 1):
            raise DataError("units axis of 2-D spikes must be 0 or 1", field="--units-axis",
                            expected="0 (units × time) or 1 (time × units)", found=repr(o.units_axis))
        return o.units_axis
    lengths = {len(time)} if time is not None else {max(np.shape(v)) for v, _ in behavior.values()
                                                    if isinstance(v, np.ndarray) and v.size}
    for axis in (0, 1):
        if spikes.shape[1 - axis] in lengths and spikes.shape[axis] not in lengths:
            return axis
    return int(np.argmin(spikes.shape))  # the shorter axis holds the units


def _onset_samples(onsets: np.ndarray, time: np.ndarray | None) -> np.ndarray:
    """Onsets as sample indices: times looked up in the time vector, else taken as indices."""
    if time is None:
        if not np.allclose(onsets, np.round(onsets)):
            raise DataError("onsets without a time vector must be sample indices", field="--onsets",
                            expected="whole numbers (or pass --time KEY)", found=f"e.g. {onsets[0]}")
        return onsets.astype(np.int64)
    return np.clip(np.searchsorted(time, onsets - 1e-9 * np.abs(onsets).max(initial=1)), 0, len(time) - 1)


# ---------------------------------------------------------------------- bin widths
def _bin_widths(o: ArrayImport, spikes, time=None) -> tuple[float, float]:
    """(sample interval, dataset bin width) in ms."""
    binary = _is_binary(spikes)
    if o.source_bin_ms is not None:
        source_ms = float(o.source_bin_ms)
    elif time is not None:
        steps = np.diff(time)
        if len(steps) == 0 or not np.all(steps > 0):
            raise DataError("time vector must increase", field=o.time, expected="increasing times",
                            found=f"{len(time)} values")
        step = float(np.median(steps))
        source_ms = step * 1000 if step < 0.5 else step  # seconds below 0.5, else ms
        source_ms = float(np.round(source_ms, 6))
    elif binary:
        source_ms = 1.0
    elif o.bin_ms is not None:
        source_ms = float(o.bin_ms)
    else:
        raise DataError("the sample interval is unknown", field="--bin-ms",
                        expected="--bin-ms MS, --source-bin-ms MS or --time KEY", found="spike counts without times")
    bin_ms = float(o.bin_ms) if o.bin_ms is not None else (max(TRAIN_BIN_MS, source_ms) if binary else source_ms)
    return source_ms, bin_ms


def _is_binary(spikes) -> bool:
    sample = spikes[: min(len(spikes), 20)] if isinstance(spikes, list) else [spikes]
    return all(np.isin(np.unique(np.asarray(s)), (0, 1)).all() for s in sample)


# ---------------------------------------------------------------------- values
def _column(key: str | None) -> str:
    """The trial_info column for labels read from ``key`` (its last part: trials.condition → condition)."""
    return key.split(".")[-1] if key else "condition"


def _numeric(values, key: str) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype == bool:
        return values.astype(np.uint8)
    if not np.issubdtype(values.dtype, np.number):
        raise DataError("expected numbers", field=key, expected="a numeric array", found=describe(values))
    return values


def _vector(values, key: str) -> np.ndarray:
    values = _numeric(values, key).astype(np.float64)
    if values.ndim > 1 and sorted(values.shape)[:-1] != [1] * (values.ndim - 1):
        raise DataError("expected a vector", field=key, expected="one value per sample or trial",
                        found=f"shape {values.shape}")
    return values.ravel()


def _labels(values, key: str) -> np.ndarray:
    """One label per trial: strings (MATLAB char arrays or cells) or numbers."""
    if isinstance(values, list) or np.asarray(values).dtype.kind in "OUS":
        return np.array([_scalar(v, key) for v in (values if isinstance(values, list) else np.asarray(values).ravel())],
                        dtype=object)
    return _vector(values, key)  # numbers: one per trial, in a vector of any orientation


def _splits(values, key: str) -> np.ndarray:
    """train / valid / test per trial ('val' and 'validation' read as valid)."""
    names = np.array([str(v).strip().lower() for v in _labels(values, key)], dtype=object)
    names[np.isin(names, ("val", "validation"))] = "valid"
    bad = sorted(set(names) - {"train", "valid", "test"})
    if bad:
        raise DataError("unknown split names", field=key, expected="train, valid (or val) and test", found=str(bad))
    return names


def _scalar(value, key: str):
    value = np.asarray(value)
    if value.dtype.kind in "US" and value.size == 1:
        return str(value.ravel()[0])
    if value.dtype.kind == "O" and value.size == 1:
        return _scalar(value.ravel()[0], key)
    if value.dtype.kind in "iuf" and value.size == 1:
        return float(value.ravel()[0])
    raise DataError("expected one label per trial", field=key, expected="a string or number per trial",
                    found=describe(value))
