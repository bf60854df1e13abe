"""Your own arrays → `TrialData`: trials already cut (`from_arrays`) or a continuous recording (`from_continuous`).

Both accept spike counts or 0/1 spike trains, rebin them to ``bin_ms``, store behaviour in cm and
cm/s (`kinematics.to_cm`), and derive what the recording lacks (`labels.derive_labels`): start,
target and reach angle from the hand path, condition ids from the given labels or by clustering
the reach endpoints, and stratified train/valid/test splits. What was derived is listed in
``provenance.derived``.

``gnocchi data import FILE --format mat|npz`` (`matfile.py`) reads the arrays from a file and calls
these; in Python::

    data = TrialData.from_arrays(spikes, bin_ms=20, conditions=labels)            # (trials, bins, units)
    data = TrialData.from_continuous(counts, bin_ms=50, behavior={"hand_pos": (pos, "m")})  # (time, units)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError
from .kinematics import differentiate_position, integrate_velocity, speed_onsets, to_cm, window_index
from .labels import TEST_FRACTION, VALID_FRACTION, derive_labels
from .trialdata import Provenance, TrialData

#: The window cut around each movement onset unless told otherwise (ms).
ONSET_WINDOW_MS = (-200.0, 600.0)
#: Behaviour given as an array, or as (array, unit).
Behavior = dict[str, "np.ndarray | tuple[np.ndarray, str]"]


def from_arrays(spikes, *, bin_ms: float, source_bin_ms: float | None = None, t0_ms: float = 0.0,
                units_axis: int = -1, behavior: Behavior | None = None, conditions=None,
                condition_name: str = "condition", trial_info: pd.DataFrame | None = None,
                splits=None, heldout_neurons=None, align_event: str = "trial_start", n_conditions: int = 8,
                valid_fraction: float = VALID_FRACTION, test_fraction: float = TEST_FRACTION, seed: int = 0,
                provenance: Provenance | None = None, notes: list[str] | None = None) -> TrialData:
    """Trials already cut, as a TrialData.

    ``spikes``: (trials, bins, units) counts or 0/1 trains (``units_axis=1`` for (trials, units, bins)),
    sampled every ``source_bin_ms`` (default ``bin_ms``) and summed into ``bin_ms`` bins (a whole
    multiple; bins left over at the end are dropped). ``t0_ms``: time of the first bin relative to
    ``align_event``. ``behavior``: name → (trials, bins, dims) array at the source rate, or
    (array, unit); lengths in m / mm / cm and velocities (m/s, …) are stored in cm and cm/s, a missing
    ``hand_vel`` is differentiated from ``hand_pos`` and a missing ``hand_pos`` integrated from
    ``hand_vel``. ``conditions``: one label per trial (strings or numbers), stored as
    ``condition_id`` and a ``condition_name`` column. ``splits``: one of train/valid/test per trial;
    by default derived, stratified by condition.
    """
    notes = list(notes or [])
    spikes = np.asarray(spikes)
    if spikes.ndim != 3:
        raise DataError("trial spikes must be 3-D", field="spikes", expected="(trials, bins, units)",
                        found=f"shape {spikes.shape}")
    if units_axis not in (-1, 1, 2):
        raise DataError("units axis of trial spikes must be 1 or 2", field="units_axis",
                        expected="1 (trials, units, bins) or 2 (trials, bins, units)", found=repr(units_axis))
    if units_axis == 1:
        spikes = spikes.transpose(0, 2, 1)
    counts, stored, units, _ = _binned(spikes, behavior, bin_ms, source_bin_ms, notes, continuous=False)
    n_trials = len(counts)
    info = pd.DataFrame(index=range(n_trials)) if trial_info is None else pd.DataFrame(trial_info).reset_index(drop=True)
    if splits is not None:
        info["split"] = np.asarray(splits, dtype=object)
    info, derived = derive_labels(info, hand_pos=stored.get("hand_pos"), bin_ms=bin_ms, t0_ms=t0_ms,
                                  conditions=conditions, condition_name=condition_name, n_conditions=n_conditions,
                                  splits=splits is None and "split" not in info, valid_fraction=valid_fraction,
                                  test_fraction=test_fraction, seed=seed)
    provenance = provenance or Provenance()
    provenance.description = "; ".join(filter(None, [provenance.description, *notes]))
    provenance.derived = "; ".join(derived)
    return TrialData(spikes=counts, bin_ms=bin_ms, t0_ms=t0_ms, trial_info=info, behavior=stored,
                     behavior_units=units, heldout_neurons=heldout_neurons, align_event=align_event,
                     provenance=provenance)


def from_continuous(spikes, *, bin_ms: float, source_bin_ms: float | None = None, units_axis: int = 1,
                    behavior: Behavior | None = None, onsets=None, window_ms: tuple[float, float] = ONSET_WINDOW_MS,
                    speed_threshold: float = 0.2, min_separation_ms: float = 300.0, conditions=None,
                    condition_name: str = "condition", heldout_neurons=None, n_conditions: int = 8,
                    valid_fraction: float = VALID_FRACTION, test_fraction: float = TEST_FRACTION, seed: int = 0,
                    provenance: Provenance | None = None) -> TrialData:
    """A continuous recording cut into trials, one per reach, aligned to movement onset.

    ``spikes``: (time, units) counts or 0/1 trains (``units_axis=0`` for (units, time)) sampled every
    ``source_bin_ms`` (default ``bin_ms``), summed into ``bin_ms`` bins. ``behavior``: name → (time,
    dims) array at the source rate, or (array, unit), stored in cm and cm/s. ``onsets``: sample
    indices (at the source rate) to align to; by default movement onsets found from hand speed
    (`kinematics.speed_onsets`: peaks at least ``min_separation_ms`` apart, onset at
    ``speed_threshold`` × the peak). Windows ``window_ms`` around each onset (a whole number of
    bins) that leave the recording are dropped. ``conditions``: one label per onset.
    """
    notes: list[str] = []
    spikes = np.asarray(spikes)
    if spikes.ndim != 2:
        raise DataError("continuous spikes must be 2-D", field="spikes", expected="(time, units) or (units, time)",
                        found=f"shape {spikes.shape}")
    if units_axis not in (0, 1, -1):
        raise DataError("units axis of continuous spikes must be 0 or 1", field="units_axis",
                        expected="0 (units, time) or 1 (time, units)", found=repr(units_axis))
    if units_axis == 0:
        spikes = spikes.T
    counts, stored, units, factor = _binned(spikes[None], behavior, bin_ms, source_bin_ms, notes, continuous=True)
    counts = counts[0]
    start, length = _window_bins(window_ms, bin_ms)
    if onsets is None:
        if "hand_vel" not in stored:
            raise DataError("cannot find movement onsets without hand kinematics", field="behavior",
                            expected="hand_pos or hand_vel to segment by speed, or onsets",
                            found=f"behaviour {sorted(stored) or 'none'}")
        speed = np.linalg.norm(stored["hand_vel"][:, :2], axis=1)
        onsets = speed_onsets(speed, threshold=speed_threshold,
                              min_separation=max(1, int(round(min_separation_ms / bin_ms))))
        onsets = onsets[onsets >= 0]
        found = (f"{len(onsets)} movement onsets at {speed_threshold:g} × each reach's peak hand speed (peaks at least "
                 f"{min_separation_ms:g} ms apart and above 0.3 × the 99th percentile of speed)")
    else:
        onsets = np.asarray(onsets, dtype=np.int64) // factor
        found = f"{len(onsets)} given onsets"
    if conditions is not None and len(conditions) != len(onsets):
        raise DataError("one condition label per onset required", field="conditions",
                        expected=f"{len(onsets)} labels", found=f"{len(conditions)}")
    index, inside = window_index(onsets, len(counts), start, length)
    if not inside.any():
        raise DataError("no window around an onset fits in the recording", field="window_ms",
                        expected=f"{length} bins of {bin_ms:g} ms inside {len(counts)} bins",
                        found=f"{found}, window {tuple(window_ms)}")
    notes.append(f"{found}; {int(inside.sum())} trials of {window_ms[0]:g}..{window_ms[1]:g} ms around them"
                 + (f", {int((~inside).sum())} dropped (window leaves the recording)" if not inside.all() else ""))
    overlap = np.diff(onsets[inside]) < length
    if overlap.any():
        notes.append(f"{int(overlap.sum())} windows overlap the next one (reaches closer than the window)")
    labels = None if conditions is None else np.asarray(conditions)[inside]
    info = pd.DataFrame({"onset_bin": onsets[inside], "onset_ms": onsets[inside] * bin_ms})
    return from_arrays(counts[index], bin_ms=bin_ms, t0_ms=window_ms[0], behavior=_trials(stored, index, units),
                       conditions=labels, condition_name=condition_name, trial_info=info,
                       heldout_neurons=heldout_neurons, align_event="move_onset", n_conditions=n_conditions,
                       valid_fraction=valid_fraction, test_fraction=test_fraction, seed=seed,
                       provenance=provenance, notes=notes)


# ---------------------------------------------------------------------- rebinning
def _binned(spikes: np.ndarray, behavior: Behavior | None, bin_ms: float, source_bin_ms: float | None,
            notes: list[str], *, continuous: bool) -> tuple[np.ndarray, dict, dict, int]:
    """Spikes (trials, samples, units) summed into ``bin_ms`` bins, and the behaviour in cm averaged into them
    (per trial (trials, samples, dims), or one continuous (samples, dims)) with a missing hand_pos / hand_vel
    derived from the other; returns counts, behaviour, units and the rebinning factor."""
    factor = rebin_factor(bin_ms, source_bin_ms)
    counts = rebin_counts(spikes, factor, axis=1)
    if factor > 1:
        notes.append(f"spikes summed from {source_bin_ms:g} ms into {bin_ms:g} ms bins")
    time_axis = 0 if continuous else 1
    leading = (spikes.shape[1],) if continuous else spikes.shape[:2]
    stored, units = _behavior_in_cm(behavior or {}, leading, notes, time_axis=time_axis)
    stored = {name: rebin_mean(values, factor, axis=time_axis) for name, values in stored.items()}
    _complete_hand(stored, units, bin_ms, notes, time_axis=time_axis)
    return counts, stored, units, factor


def rebin_factor(bin_ms: float, source_bin_ms: float | None) -> int:
    """How many source bins make one ``bin_ms`` bin (a whole number)."""
    if not (np.isfinite(bin_ms) and bin_ms > 0):
        raise DataError("bin width must be a positive number of ms", field="bin_ms", expected="> 0",
                        found=repr(bin_ms))
    source = bin_ms if source_bin_ms is None else float(source_bin_ms)
    ratio = bin_ms / source if source > 0 else np.nan
    if not (np.isfinite(ratio) and ratio >= 1 - 1e-9 and abs(ratio - round(ratio)) < 1e-6):
        raise DataError("bin width must be a whole multiple of the recording's sample interval", field="bin_ms",
                        expected=f"a multiple of {source:g} ms", found=f"{bin_ms:g} ms")
    return int(round(ratio))


def rebin_counts(spikes: np.ndarray, factor: int, axis: int = 1) -> np.ndarray:
    """Counts summed over groups of ``factor`` bins along ``axis`` (whole groups only)."""
    if spikes.dtype == bool:
        spikes = spikes.astype(np.int32)
    if factor == 1:
        return spikes
    n = spikes.shape[axis] // factor
    if n == 0:
        raise DataError("recording shorter than one bin", field="spikes", expected=f"at least {factor} samples",
                        found=f"{spikes.shape[axis]}")
    kept = np.take(spikes, np.arange(n * factor), axis=axis)
    shape = spikes.shape[:axis] + (n, factor) + spikes.shape[axis + 1:]
    return kept.reshape(shape).sum(axis=axis + 1)


def rebin_mean(values: np.ndarray, factor: int, axis: int = 1) -> np.ndarray:
    """Behaviour averaged over groups of ``factor`` samples along ``axis``."""
    if factor == 1:
        return values
    n = values.shape[axis] // factor
    kept = np.take(values, np.arange(n * factor), axis=axis)
    shape = values.shape[:axis] + (n, factor) + values.shape[axis + 1:]
    return kept.reshape(shape).mean(axis=axis + 1, dtype=np.float64).astype(np.float32)


def _window_bins(window_ms: tuple[float, float], bin_ms: float) -> tuple[int, int]:
    start, stop = (float(w) for w in window_ms)
    bins = (stop - start) / bin_ms
    if not (np.isfinite(bins) and bins >= 1 and abs(bins - round(bins)) < 1e-6
            and abs(start / bin_ms - round(start / bin_ms)) < 1e-6):
        raise DataError("window must be whole bins", field="window_ms",
                        expected=f"start and end multiples of {bin_ms:g} ms, end > start", found=str(tuple(window_ms)))
    return int(round(start / bin_ms)), int(round(bins))


# ---------------------------------------------------------------------- behaviour
def _behavior_in_cm(behavior: Behavior, leading: tuple[int, ...], notes: list[str],
                    time_axis: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Each behaviour as float32 (…, time, dims) in cm / cm/s, oriented to the spikes' time axis."""
    stored, units = {}, {}
    for name, given in behavior.items():
        values, unit = given if isinstance(given, tuple) else (given, "")
        values = _oriented(np.asarray(values), leading, name, time_axis)
        converted, new_unit = to_cm(values.astype(np.float32), unit)
        if new_unit != unit:
            notes.append(f"{name} converted from {unit} to {new_unit}")
        stored[name] = converted
        if new_unit:
            units[name] = new_unit
    return stored, units


def _oriented(values: np.ndarray, leading: tuple[int, ...], name: str, time_axis: int) -> np.ndarray:
    """(…, time, dims): accept (…, time), (…, time, dims) or (…, dims, time), matched on the time length."""
    if not np.issubdtype(values.dtype, np.number):
        raise DataError("behaviour must be numeric", field=f"behavior/{name}", expected="numbers",
                        found=f"dtype {values.dtype}")
    n_time = leading[time_axis]
    if values.ndim == len(leading):
        values = values[..., None]
    if values.ndim == len(leading) + 1:
        if values.shape[time_axis] == n_time and values.shape[:time_axis] == leading[:time_axis]:
            return values
        if values.shape[time_axis + 1] == n_time and values.shape[:time_axis] == leading[:time_axis]:
            return np.swapaxes(values, time_axis, time_axis + 1)
    layout = "(trials, bins, dims)" if time_axis == 1 else "(time, dims) or (dims, time)"
    raise DataError("behaviour does not match the spikes' samples", field=f"behavior/{name}",
                    expected=f"{layout} with {n_time} samples", found=f"shape {values.shape}")


def _complete_hand(stored: dict, units: dict, bin_ms: float, notes: list[str], time_axis: int) -> None:
    """hand_vel from hand_pos (differentiated) or hand_pos from hand_vel (integrated), when one is missing."""
    if "hand_pos" in stored and "hand_vel" not in stored:
        stored["hand_vel"] = differentiate_position(stored["hand_pos"], bin_ms, axis=time_axis)
        if units.get("hand_pos"):
            units["hand_vel"] = f"{units['hand_pos']}/s"
        notes.append("hand_vel differentiated from hand_pos")
    elif "hand_vel" in stored and "hand_pos" not in stored:
        vel = stored["hand_vel"] if time_axis == 1 else stored["hand_vel"][None]
        pos = integrate_velocity(vel, bin_ms)
        stored["hand_pos"] = pos if time_axis == 1 else pos[0]
        if units.get("hand_vel", "").endswith("/s"):
            units["hand_pos"] = units["hand_vel"][:-2]
        notes.append("hand_pos integrated from hand_vel (0 at the start)")


def _trials(stored: dict[str, np.ndarray], index: np.ndarray, units: dict[str, str]) -> Behavior:
    """Each continuous behaviour (time, dims) cut at ``index`` (trials, bins), with its unit."""
    return {name: (values[index], units.get(name, "")) for name, values in stored.items()}
