"""Import Neural Latents Benchmark NWB files, exactly as DANDI serves them, into `TrialData`.

Two layouts are handled:

* trial-based (MC_Maze, DANDI 000128 / 000138-000140): ``intervals/trials`` carries
  ``move_onset_time``; each trial is aligned to it.
* continuous (MC_RTT, DANDI 000129): no movement onsets, so reaches are cut at every change
  of the ``target_pos`` behaviour series and aligned to the onset found from hand speed.

Spikes come from the ``units`` table (ragged ``spike_times``, bool ``heldout``); behaviour
from the TimeSeries under ``processing``. Windows that leave the observed recording (the
units' ``obs_intervals`` when present) are dropped rather than padded with zeros that were
never recorded; the provenance description says how many trials were dropped and why.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ..errors import DataError
from .kinematics import speed_onsets, to_cm
from .trialdata import Provenance, TrialData
from .validation import sniff

#: Slack when testing whether a window lies inside an observed interval (float seconds).
_TOL_S = 1e-6
#: NLB trial splits -> TrialData splits; anything else (NLB uses "none") is dropped.
_SPLITS = {"train": "train", "val": "valid", "valid": "valid", "test": "test"}
#: DANDI sets of the NLB releases, keyed by (subject, session) as in the DANDI file names.
_NLB_DANDI = {
    ("Jenkins", "full"): ("000128", "MC_Maze"),
    ("Jenkins", "large"): ("000138", "MC_Maze_Large"),
    ("Jenkins", "medium"): ("000139", "MC_Maze_Medium"),
    ("Jenkins", "small"): ("000140", "MC_Maze_Small"),
    ("Indy", None): ("000129", "MC_RTT"),
}
_CITE_NLB = ("Pei F, Ye J, Zoltowski D, et al. (2021) Neural Latents Benchmark '21: evaluating latent "
             "variable models of neural population activity. NeurIPS Datasets and Benchmarks. arXiv:2109.04463")
_CITE_SUBJECT = {
    "Jenkins": "Churchland MM, Cunningham JP, Kaufman MT, et al. (2012) Neural population dynamics "
               "during reaching. Nature 487:51-56. doi:10.1038/nature11129",
    "Indy": "O'Doherty JE, Cardoso MMB, Makin JG, Sabes PN (2017) Nonhuman primate reaching with "
            "multichannel sensorimotor cortex electrophysiology. Zenodo. doi:10.5281/zenodo.583331",
}


@dataclass
class _Series:
    """One behavioural time series: sample times (s), samples (n, dims) and unit."""

    t: np.ndarray
    data: np.ndarray
    unit: str = ""

    def at(self, times: np.ndarray) -> np.ndarray:
        """Linear interpolation of every dimension at ``times`` -> (len(times), dims)."""
        return np.stack([np.interp(times, self.t, d, left=np.nan, right=np.nan) for d in self.data.T], axis=1)


@dataclass
class _Recording:
    """What the importer needs from an NWB file, read once so the file can be closed."""

    unit_ids: np.ndarray
    spike_times: list[np.ndarray]
    heldout: np.ndarray
    obs_intervals: list[np.ndarray]
    trials: dict[str, np.ndarray] | None
    ragged: dict[str, list[np.ndarray]]
    series: dict[str, _Series]
    meta: dict[str, object]


def import_nwb(path, *, bin_ms: float = 5.0, window_ms: tuple[float, float] = (-200.0, 500.0),
               speed_threshold: float = 0.2, align: str | None = None) -> TrialData:
    """Bin an NWB file into trials aligned to an event (movement onset by default).

    ``window_ms`` is relative to the event and must be a whole number of ``bin_ms`` bins.
    ``align``: a time column of the trials table (``go_cue_time`` or ``go_cue``); by default
    ``move_onset_time``, and without one (MC_RTT-like continuous files) the onsets are found from
    hand speed with ``speed_threshold`` (fraction of a reach's peak speed). Lengths are stored in
    cm and velocities in cm/s (the trials' targets converted like the hand position).
    """
    path = Path(path)
    edges_ns = _bin_edges_ns(bin_ms, window_ms, path)
    rec = _read_file(path)
    try:
        events, alignment, notes = _aligned_events(rec, window_ms, speed_threshold, align)
        event = alignment.split(" ")[0].removesuffix("_time") if align else "move_onset"
    except DataError as err:
        raise err.with_path(path) from None
    align = events["align"].to_numpy()
    behavior = {name: _bin_means(s, align, edges_ns).astype(np.float32) for name, s in rec.series.items()}
    description = (
        f"{len(events)} trials aligned to {alignment}; {bin_ms:g} ms bins from {window_ms[0]:g} to "
        f"{window_ms[1]:g} ms; spike counts from units/spike_times, behaviour as bin means of "
        f"{', '.join(sorted(rec.series)) or 'none in the file'}; "
        f"{int(rec.heldout.sum())} of {len(rec.heldout)} neurons held out. "
        f"Dropped: {'; '.join(notes) if notes else 'none'}."
    )
    return TrialData(
        spikes=_count_spikes(rec.spike_times, align, edges_ns),
        bin_ms=bin_ms,
        t0_ms=window_ms[0],
        trial_info=_trial_info(events, rec.series, window_ms),
        behavior=behavior,
        behavior_units={name: s.unit for name, s in rec.series.items() if s.unit},
        heldout_neurons=rec.heldout,
        neuron_ids=rec.unit_ids,
        align_event=event,
        provenance=_provenance(path, rec, description),
    )


def _aligned_events(rec: _Recording, window_ms, speed_threshold: float,
                    align: str | None = None) -> tuple[pd.DataFrame, str, list[str]]:
    """Alignment time and labels of every usable trial, how they were aligned, and what was dropped."""
    column = _align_column(rec, align)
    if column is not None:
        events, notes = _maze_trials(rec, column)
        alignment = f"{column} from the trials table"
    else:
        events, notes = _rtt_reaches(rec, speed_threshold)
        alignment = f"movement onset at {speed_threshold:g} x peak hand speed after each target change"
    align = events["align"].to_numpy()
    inside = _inside(_observed_intervals(rec), align + window_ms[0] / 1e3, align + window_ms[1] / 1e3)
    _require_trials(inside, events, rec, window_ms)
    if not inside.all():
        notes.append(f"{int((~inside).sum())} trials whose window leaves the observed recording")
    return events[inside].reset_index(drop=True), alignment, notes


# ---------------------------------------------------------------------- reading
def _read_file(path: Path) -> _Recording:
    """Open with pynwb after cheap h5py checks, so errors say what the file is instead."""
    from pynwb import NWBHDF5IO  # slow to import; only needed here

    if not path.is_file():
        raise DataError("file not found", path=path)
    if not h5py.is_hdf5(path):
        raise DataError("not an HDF5 file", path=path, expected="an NWB (HDF5) file", found=sniff(path))
    with h5py.File(path, "r") as f:
        kind = f.attrs.get("neurodata_type")
    if kind != "NWBFile":
        raise DataError("HDF5 file is not NWB", path=path, field="/neurodata_type",
                        expected="'NWBFile'", found=repr(kind))
    try:
        with NWBHDF5IO(os.fspath(path), "r", load_namespaces=True) as io:
            return _read_recording(io.read())
    except DataError as err:
        raise err.with_path(path) from None
    except Exception as err:  # pynwb/hdmf raise many types for malformed files
        raise DataError(f"cannot be read as NWB ({type(err).__name__}: {err})", path=path) from None


def _read_recording(nwbfile) -> _Recording:
    units = nwbfile.units
    if units is None:
        raise DataError("NWB file has no units table", field="units",
                        expected="units with spike_times", found="no units")
    if "spike_times" not in units.colnames:
        raise DataError("units table has no spike times", field="units/spike_times",
                        expected="a spike_times column", found=f"columns {list(units.colnames)}")
    n_units = len(units.id)
    heldout = (np.asarray(units["heldout"].data[:], dtype=bool) if "heldout" in units.colnames
               else np.zeros(n_units, dtype=bool))
    trials, ragged = _read_table(nwbfile.trials) if nwbfile.trials is not None else (None, {})
    series = _with_hand_series(_read_behavior(nwbfile))
    if "target_pos" in ragged and "hand_pos" in series:  # targets are in the hand's frame and unit
        factor = to_cm(np.ones(1), series["hand_pos"].unit)[0][0]
        ragged["target_pos"] = [np.asarray(p, dtype=float) * factor for p in ragged["target_pos"]]
    series = {name: _Series(s.t, *to_cm(s.data, s.unit)) for name, s in series.items()}
    return _Recording(
        unit_ids=np.asarray(units.id.data[:], dtype=np.int64),
        spike_times=[np.sort(t) for t in _ragged(units["spike_times"])],
        heldout=heldout,
        obs_intervals=(_ragged(units["obs_intervals"]) if "obs_intervals" in units.colnames else []),
        trials=trials,
        ragged=ragged,
        series=series,
        meta=_read_meta(nwbfile),
    )


def _ragged(column) -> list[np.ndarray]:
    """Split a VectorIndex column into one array per row with a single read of the data."""
    offsets = np.asarray(column.data[:], dtype=np.int64)
    values = np.asarray(column.target.data[:])
    return np.split(values, offsets[:-1])


def _read_table(table) -> tuple[dict[str, np.ndarray], dict[str, list[np.ndarray]]]:
    """Scalar columns (strings decoded) and ragged columns of a DynamicTable, plus its ids."""
    from hdmf.common import VectorIndex

    scalars = {"id": np.asarray(table.id.data[:], dtype=np.int64)}
    ragged = {}
    for name in table.colnames:
        column = table[name]
        if isinstance(column, VectorIndex):
            ragged[name] = _ragged(column)
            continue
        values = np.asarray(column.data[:])
        if values.ndim != 1:
            continue
        if values.dtype.kind in "OS":
            values = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)
        scalars[name] = values
    return scalars, ragged


def _read_behavior(nwbfile) -> dict[str, _Series]:
    """Every TimeSeries under ``processing`` (inside containers such as Position too)."""
    from pynwb import TimeSeries

    found = {}
    for module in nwbfile.processing.values():
        for interface in module.data_interfaces.values():
            members = [interface] if isinstance(interface, TimeSeries) else list(getattr(interface, "children", []))
            for ts in members:
                if isinstance(ts, TimeSeries) and np.issubdtype(np.asarray(ts.data[:1]).dtype, np.number):
                    found[ts.name] = _to_series(ts)
    return found


def _to_series(ts) -> _Series:
    data = np.asarray(ts.data[:], dtype=np.float64)
    data = data.reshape(len(data), -1)
    if ts.timestamps is not None:
        t = np.asarray(ts.timestamps[:], dtype=np.float64)
    else:
        t = (ts.starting_time or 0.0) + np.arange(len(data)) / ts.rate
    return _Series(t=t, data=data, unit=str(ts.unit or ""))


def _with_hand_series(series: dict[str, _Series]) -> dict[str, _Series]:
    """Add ``hand_pos``/``hand_vel`` from MC_RTT names (or a derivative) so every set has them."""
    series = dict(series)
    if "hand_pos" not in series and "cursor_pos" in series:
        series["hand_pos"] = series["cursor_pos"]
    if "hand_vel" not in series and "finger_vel" in series:
        series["hand_vel"] = series["finger_vel"]
    if "hand_vel" not in series and "hand_pos" in series and len(series["hand_pos"].t) > 1:
        pos = series["hand_pos"]
        unit = f"{pos.unit}/s" if pos.unit else ""
        series["hand_vel"] = _Series(pos.t, np.gradient(pos.data, pos.t, axis=0), unit)
    return series


def _read_meta(nwbfile) -> dict[str, object]:
    subject = nwbfile.subject
    return {
        "identifier": nwbfile.identifier,
        "subject": getattr(subject, "subject_id", None) if subject is not None else None,
        "session": nwbfile.session_id,
        "keywords": [str(k) for k in (nwbfile.keywords[:] if nwbfile.keywords is not None else [])],
        "publications": [str(p) for p in (nwbfile.related_publications or [])],
    }


# ---------------------------------------------------------------------- alignment events
def _align_column(rec: _Recording, align: str | None) -> str | None:
    """The trials-table column to align to: ``align`` (with or without ``_time``), else
    ``move_onset_time`` when present, else None (segment continuous behaviour)."""
    columns = sorted(c for c, v in (rec.trials or {}).items() if c.endswith("_time") and v.dtype.kind in "iuf")
    if align is None:
        return "move_onset_time" if "move_onset_time" in columns else None
    for name in (align, f"{align}_time"):
        if name in columns:
            return name
    raise DataError("alignment event not in the trials table", field=f"intervals/trials/{align}",
                    expected="one of its time columns", found=", ".join(columns) or "no trials table time columns")


def _maze_trials(rec: _Recording, column: str = "move_onset_time") -> tuple[pd.DataFrame, list[str]]:
    """One event per trial at its ``column`` time; trials without that time or a split are dropped."""
    cols = rec.trials
    n = len(cols["id"])
    events = pd.DataFrame({"trial_id": cols["id"], "align": cols[column].astype(float)})
    raw_split = cols["split"] if "split" in cols else np.full(n, "train", dtype=object)
    events["split"] = [_SPLITS.get(str(s)) for s in raw_split]
    target = _active_targets(rec, n)
    events["target_x"], events["target_y"] = target[:, 0], target[:, 1]
    for name, values in cols.items():
        if name not in ("id", "split", column) and values.dtype.kind in "biuf":
            events[name] = values
    notes = []
    no_onset = ~np.isfinite(events["align"].to_numpy())
    if no_onset.any():
        notes.append(f"{int(no_onset.sum())} trials with NaN {column} (failed trials)")
    no_split = events["split"].isna().to_numpy() & ~no_onset
    if no_split.any():
        values = sorted({str(s) for s in np.asarray(raw_split)[no_split]})
        notes.append(f"{int(no_split.sum())} trials with split {values}")
    return events[~no_onset & ~no_split].reset_index(drop=True), notes


def _active_targets(rec: _Recording, n: int) -> np.ndarray:
    """MC_Maze target: row ``active_target`` of the trial's ragged ``target_pos``; else NaN."""
    target = np.full((n, 2), np.nan)
    if "target_pos" not in rec.ragged or "active_target" not in rec.trials:
        return target
    for i, (positions, active) in enumerate(zip(rec.ragged["target_pos"], rec.trials["active_target"])):
        positions = np.asarray(positions, dtype=float).reshape(-1, 2)
        if np.isfinite(active) and 0 <= int(active) < len(positions):
            target[i] = positions[int(active)]
    return target


def _rtt_reaches(rec: _Recording, speed_threshold: float) -> tuple[pd.DataFrame, list[str]]:
    """Cut continuous behaviour into reaches at target changes and find each reach's onset."""
    if "target_pos" not in rec.series or "hand_vel" not in rec.series:
        times = sorted(c for c in (rec.trials or {}) if c.endswith("_time"))
        raise DataError("no trials to align: the trials table has no move_onset_time and there is no "
                        "target_pos + hand velocity/position behaviour to segment reaches from"
                        + (f"; pass --align with one of {', '.join(times)}" if times else ""),
                        field="intervals/trials/move_onset_time",
                        expected="move_onset_time, --align EVENT, or target_pos and hand_pos/hand_vel series",
                        found=f"trial columns {sorted(rec.trials or {})}, behaviour {sorted(rec.series)}")
    if not 0 < speed_threshold < 1:
        raise DataError("speed threshold must be a fraction of peak speed", field="speed_threshold",
                        expected="0 < threshold < 1", found=repr(speed_threshold))
    target, vel = rec.series["target_pos"], rec.series["hand_vel"]
    changes = 1 + np.flatnonzero(np.any(~_same(target.data[1:], target.data[:-1]), axis=1))
    starts = target.t[changes]
    ends = np.append(starts[1:], np.inf)
    segments = np.column_stack([np.searchsorted(vel.t, starts), np.searchsorted(vel.t, ends)])
    onsets = speed_onsets(np.linalg.norm(vel.data, axis=1), threshold=speed_threshold, segments=segments)
    rows = [{"trial_id": reach, "align": vel.t[onset], "split": _split_at(rec.trials, vel.t[onset]),
             "target_x": target.data[change, 0], "target_y": target.data[change, 1], "target_change_time": t_start}
            for reach, (onset, change, t_start) in enumerate(zip(onsets, changes, starts)) if onset >= 0]
    still = int((onsets < 0).sum())
    notes = [f"{still} target changes without hand movement"] if still else []
    events = pd.DataFrame(rows, columns=["trial_id", "align", "split", "target_x", "target_y",
                                         "target_change_time"])
    unusable = events["split"].isna().to_numpy()
    if unusable.any():
        notes.append(f"{int(unusable.sum())} reaches in trials whose split is not train/val/test")
    return events[~unusable].reset_index(drop=True), notes


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b))


def _split_at(trials: dict[str, np.ndarray] | None, t: float) -> str | None:
    """Split of the trials-table interval holding ``t``; 'train' when no interval holds it."""
    if trials is None or "split" not in trials:
        return "train"
    inside = np.flatnonzero((trials["start_time"] <= t) & (t < trials["stop_time"]))
    return _SPLITS.get(str(trials["split"][inside[0]])) if inside.size else "train"


# ---------------------------------------------------------------------- recording extent
def _observed_intervals(rec: _Recording) -> list[np.ndarray]:
    """Merged observed intervals, one set per distinct unit coverage (NLB units share one)."""
    distinct = {iv.tobytes(): iv for iv in rec.obs_intervals if len(iv)}
    if distinct:
        return [_merge(iv.reshape(-1, 2)) for iv in distinct.values()]
    bounds = [np.r_[s.t[0], s.t[-1]] for s in rec.series.values() if len(s.t)]
    if rec.trials is not None and len(rec.trials["id"]):
        bounds.append(np.r_[np.nanmin(rec.trials["start_time"]), np.nanmax(rec.trials["stop_time"])])
    if not bounds:
        return []
    bounds = np.array(bounds)
    return [np.array([[bounds[:, 0].min(), bounds[:, 1].max()]])]


def _merge(intervals: np.ndarray) -> np.ndarray:
    """Sort and join touching or overlapping intervals, so a window may span chunk borders."""
    intervals = intervals[np.argsort(intervals[:, 0])]
    merged = [intervals[0].copy()]
    for start, stop in intervals[1:]:
        if start <= merged[-1][1] + _TOL_S:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append(np.array([start, stop]))
    return np.array(merged)


def _inside(interval_sets: list[np.ndarray], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Which windows [lo, hi] lie inside one interval of every set."""
    ok = np.ones(len(lo), dtype=bool)
    for intervals in interval_sets:
        i = np.searchsorted(intervals[:, 0], lo + _TOL_S, side="right") - 1
        held = np.clip(i, 0, None)
        ok &= (i >= 0) & (hi <= intervals[held, 1] + _TOL_S)
    return ok


def _require_trials(inside: np.ndarray, events: pd.DataFrame, rec: _Recording, window_ms) -> None:
    """Fail with the window the file can give when no trial window fits in the recording."""
    if inside.any():
        return
    found = f"no trial fits in the recording ({len(events)} candidates)"
    sets = _observed_intervals(rec)
    if len(events) and sets:
        align = events["align"].to_numpy()
        i = np.clip(np.searchsorted(sets[0][:, 0], align, side="right") - 1, 0, None)
        before = np.max(sets[0][i, 0] - align) * 1e3
        after = np.min(sets[0][i, 1] - align) * 1e3
        found += (f"; every trial is observed from {before:g} to {after:g} ms around its onset: "
                  f"use --window {before:g} {after:g}")
    raise DataError("window lies outside the observed recording for every trial", field="window_ms",
                    expected=f"a window within the observed data, got {tuple(window_ms)}", found=found)


# ---------------------------------------------------------------------- binning
def _bin_edges_ns(bin_ms: float, window_ms, path: Path) -> np.ndarray:
    """Bin edges relative to onset in integer nanoseconds, so edge spikes bin exactly."""
    w0, w1 = (float(w) for w in window_ms)
    if not (np.isfinite(bin_ms) and bin_ms > 0):
        raise DataError("bin width must be a positive number of ms", path=path, field="bin_ms",
                        expected="> 0", found=repr(bin_ms))
    n_bins = (w1 - w0) / bin_ms
    if not (np.isfinite(n_bins) and n_bins >= 1 and abs(n_bins - round(n_bins)) < 1e-6):
        raise DataError("window must be a whole, positive number of bins", path=path, field="window_ms",
                        expected=f"(end - start) a multiple of {bin_ms:g} ms", found=f"{tuple(window_ms)}")
    return np.rint((w0 + bin_ms * np.arange(round(n_bins) + 1)) * 1e6).astype(np.int64)


def _window_samples(t: np.ndarray, align: np.ndarray, edges_ns: np.ndarray):
    """Trial index and bin index of every sample of sorted ``t`` inside a trial window.

    Windows may overlap (continuous reaches), so samples are gathered per window as ragged
    ranges rather than assigned to one trial.
    """
    pad = 1e-6
    lo = np.searchsorted(t, align + edges_ns[0] / 1e9 - pad)
    hi = np.searchsorted(t, align + edges_ns[-1] / 1e9 + pad)
    counts = hi - lo
    trial = np.repeat(np.arange(len(align)), counts)
    sample = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo, counts)
    rel_ns = np.rint((t[sample] - align[trial]) * 1e9).astype(np.int64)
    bins = np.searchsorted(edges_ns, rel_ns, side="right") - 1
    keep = (bins >= 0) & (bins < len(edges_ns) - 1)
    return trial[keep], bins[keep], sample[keep]


def _count_spikes(spike_times: list[np.ndarray], align: np.ndarray, edges_ns: np.ndarray) -> np.ndarray:
    n_trials, n_bins = len(align), len(edges_ns) - 1
    spikes = np.zeros((n_trials, n_bins, len(spike_times)), dtype=np.int32)
    for unit, times in enumerate(spike_times):
        trial, bins, _ = _window_samples(times, align, edges_ns)
        spikes[:, :, unit] = np.bincount(trial * n_bins + bins, minlength=n_trials * n_bins).reshape(n_trials, n_bins)
    return spikes


def _bin_means(series: _Series, align: np.ndarray, edges_ns: np.ndarray) -> np.ndarray:
    """Mean of the finite samples in each bin; NaN where a bin has none."""
    n_trials, n_bins = len(align), len(edges_ns) - 1
    trial, bins, sample = _window_samples(series.t, align, edges_ns)
    flat = trial * n_bins + bins
    out = np.full((n_trials * n_bins, series.data.shape[1]), np.nan)
    for d, values in enumerate(series.data[sample].T):
        finite = np.isfinite(values)
        total = np.bincount(flat[finite], weights=values[finite], minlength=n_trials * n_bins)
        count = np.bincount(flat[finite], minlength=n_trials * n_bins)
        np.divide(total, count, out=out[:, d], where=count > 0)
    return out.reshape(n_trials, n_bins, -1)


# ---------------------------------------------------------------------- labels and provenance
def _trial_info(events: pd.DataFrame, series: dict[str, _Series], window_ms) -> pd.DataFrame:
    """Standard TrialData columns plus the numeric NWB trial columns; times as ms from onset."""
    align = events["align"].to_numpy()
    start = _hand_xy(series, align)
    target = events[["target_x", "target_y"]].to_numpy(dtype=float)
    has_target = np.isfinite(target).all(axis=1)
    aim = np.where(has_target[:, None], target, _hand_xy(series, align + window_ms[1] / 1e3)) - start
    info = pd.DataFrame({
        "trial_id": events["trial_id"].to_numpy(dtype=np.int64),
        "split": events["split"].to_numpy(dtype=object),
        "condition_id": _condition_ids(events),
        "heldout_condition": False,
        "start_x": start[:, 0], "start_y": start[:, 1],
        "target_x": target[:, 0], "target_y": target[:, 1],
        "reach_angle": np.arctan2(aim[:, 1], aim[:, 0]),
    })
    for name in events.columns.drop(["trial_id", "split", "align", "target_x", "target_y"]):
        if name.endswith("_time"):
            info[name[: -len("_time")] + "_ms"] = (events[name].to_numpy(dtype=float) - align) * 1e3
        elif name not in info:
            info[name] = events[name].to_numpy()
    return info


def _hand_xy(series: dict[str, _Series], times: np.ndarray) -> np.ndarray:
    """Hand x, y at ``times``; NaN without a 2-D hand position."""
    hand = series.get("hand_pos")
    if hand is None or hand.data.shape[1] < 2:
        return np.full((len(times), 2), np.nan)
    return hand.at(times)[:, :2]


def _condition_ids(events: pd.DataFrame) -> np.ndarray:
    """Enumerate (trial_type, trial_version) pairs, else distinct targets, else -1."""
    if {"trial_type", "trial_version"} <= set(events.columns):
        keys = events[["trial_type", "trial_version"]].to_numpy(dtype=float)
    else:
        keys = np.round(events[["target_x", "target_y"]].to_numpy(dtype=float), 3)
    ids = np.full(len(events), -1, dtype=np.int64)
    known = np.isfinite(keys).all(axis=1)
    if known.any():
        ids[known] = np.unique(keys[known], axis=0, return_inverse=True)[1].ravel()
    return ids


def _provenance(path: Path, rec: _Recording, description: str) -> Provenance:
    meta = rec.meta
    match = re.match(r"sub-([^_]+)(?:_ses-([^_]+))?", path.name)
    subject = match.group(1) if match else meta["subject"]
    session = match.group(2) if match and match.group(2) else meta["session"]
    dandi = _NLB_DANDI.get((subject, session)) or _NLB_DANDI.get((subject, None))
    is_nlb = dandi is not None or any("Neural Latents Benchmark" in k for k in meta["keywords"])
    source = f"{path.name} (NWB identifier {meta['identifier']})"
    if dandi:
        source += f"; NLB {dandi[1]}, DANDI:{dandi[0]} https://dandiarchive.org/dandiset/{dandi[0]}"
    citations = [_CITE_SUBJECT[subject]] if is_nlb and subject in _CITE_SUBJECT else []
    citations += [p for p in meta["publications"] if p not in citations]
    if is_nlb:
        citations.append(_CITE_NLB)
    return Provenance(source=source, licence="CC-BY-4.0" if is_nlb else "",
                      citation="; ".join(citations), description=description, command="")
