"""Hand kinematics: units, position ↔ velocity, and cutting continuous recordings into reaches.

Every dataset stores lengths in cm and velocities in cm/s (`to_cm`), whatever the recording
used, so the explorer's sliders, the decoders and the reports read one scale.

Segmentation (`speed_onsets`) is the one way continuous reaching becomes trials, for every
importer (MC_RTT's NWB files, continuous MATLAB / NumPy arrays): a reach's onset is the start of
the run of samples above ``threshold`` × its peak speed that contains the peak. Taking the run
around the peak, rather than the first crossing, keeps a small corrective movement or the tail
of the previous reach from being mistaken for the onset. The reaches are either given as
segments (MC_RTT: between target changes) or found as speed peaks.
"""

from __future__ import annotations

import numpy as np

#: cm per unit of length; velocities use the same factor per second.
CM_PER_UNIT = {"m": 100.0, "meter": 100.0, "meters": 100.0, "metre": 100.0, "metres": 100.0,
               "cm": 1.0, "centimeter": 1.0, "centimeters": 1.0,
               "mm": 0.1, "millimeter": 0.1, "millimeters": 0.1}
LENGTH_UNITS = ("m", "cm", "mm")


def to_cm(values: np.ndarray, unit: str) -> tuple[np.ndarray, str]:
    """``values`` in a length (m, cm, mm) or velocity unit (m/s, mm/s, …) → cm or cm/s, and the new unit.

    Any other unit (a force, a voltage, none) is returned unchanged: only lengths are converted.
    """
    unit = (unit or "").strip()
    base, per_second = (unit[:-2], True) if unit.lower().endswith("/s") else (unit, False)
    factor = CM_PER_UNIT.get(base.lower())
    if factor is None:
        return values, unit
    converted = values if factor == 1.0 else (np.asarray(values, dtype=np.float64) * factor).astype(values.dtype)
    return converted, "cm/s" if per_second else "cm"


def integrate_velocity(vel: np.ndarray, bin_ms: float) -> np.ndarray:
    """Position at each bin centre from per-bin velocity (trials, bins, dims), 0 at the window start.

    Units follow the velocity's: cm/s gives cm (velocity per second × bin width in s).
    """
    step = vel.astype(np.float64) * (bin_ms / 1000.0)
    return (np.cumsum(step, axis=1) - step / 2).astype(np.float32)


def differentiate_position(pos: np.ndarray, bin_ms: float, axis: int = 0) -> np.ndarray:
    """Velocity per second from positions sampled every ``bin_ms`` along ``axis`` (central differences)."""
    return (np.gradient(pos.astype(np.float64), bin_ms / 1000.0, axis=axis)).astype(np.float32)


# ---------------------------------------------------------------------- segmentation
def onset_in(speed: np.ndarray, threshold: float) -> int | None:
    """Index where the above-``threshold`` × peak run holding the peak of ``speed`` starts; None when still."""
    if not np.isfinite(speed).any() or np.nanmax(speed) <= 0:
        return None
    peak = int(np.nanargmax(speed))
    below = np.flatnonzero(~(speed[:peak] > threshold * speed[peak]))
    return int(below[-1]) + 1 if below.size else 0


def speed_onsets(speed: np.ndarray, *, threshold: float = 0.2, segments: np.ndarray | None = None,
                 min_peak: float = 0.3, min_separation: int = 1) -> np.ndarray:
    """Onset index of each reach in a continuous ``speed`` trace (−1 for a segment without movement).

    ``segments`` (n, 2) [start, stop) indices hold one reach each (e.g. between target changes).
    Without them, reaches are the peaks of ``speed`` above ``min_peak`` × its 99th percentile at
    least ``min_separation`` samples apart, and each reach's segment runs between the speed minima
    that separate it from its neighbours.
    """
    if not 0 < threshold < 1:
        raise ValueError(f"speed threshold must be a fraction of peak speed in (0, 1), got {threshold!r}")
    speed = np.asarray(speed, dtype=np.float64)
    if segments is None:
        segments = reach_segments(speed, min_peak=min_peak, min_separation=min_separation)
    onsets = np.full(len(segments), -1, dtype=np.int64)
    for i, (lo, hi) in enumerate(np.asarray(segments, dtype=np.int64).reshape(-1, 2)):
        onset = onset_in(speed[lo:hi], threshold)
        if onset is not None:
            onsets[i] = lo + onset
    return onsets


def reach_segments(speed: np.ndarray, *, min_peak: float = 0.3, min_separation: int = 1) -> np.ndarray:
    """[start, stop) of each speed peak's segment: from the minimum before the peak to the one after it."""
    from scipy.signal import find_peaks

    finite = np.where(np.isfinite(speed), speed, 0.0)
    level = np.percentile(finite, 99)
    if level <= 0:
        return np.zeros((0, 2), dtype=np.int64)
    peaks, _ = find_peaks(finite, height=min_peak * level, distance=max(1, int(min_separation)))
    if not len(peaks):
        return np.zeros((0, 2), dtype=np.int64)
    troughs = [lo + int(np.argmin(finite[lo:hi])) for lo, hi in zip(peaks[:-1], peaks[1:])]
    starts = np.r_[0, troughs]
    stops = np.r_[troughs, len(finite)]
    return np.column_stack([starts, stops]).astype(np.int64)


def window_index(onsets: np.ndarray, n_samples, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample indices (trials, length) of the windows [onset + start, onset + start + length) that lie
    inside 0..n_samples (one recording's length, or each trial's), and the mask of the onsets they came
    from (the others leave the recording; an onset of −1 means none was found)."""
    onsets = np.asarray(onsets, dtype=np.int64)
    first = onsets + start
    inside = (onsets >= 0) & (first >= 0) & (first + length <= n_samples)
    return first[inside][:, None] + np.arange(length)[None, :], inside
