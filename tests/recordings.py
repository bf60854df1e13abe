"""Small recordings in the three shapes users bring, written as real .mat / .npz files.

* `continuous_mat`: a continuous motor-cortex recording as MATLAB users keep it: spike counts in
  50 ms bins as a units × time array, hand position and velocity in metres as 3 × time arrays, a
  time vector in seconds. The hand reaches from target to target (minimum-jerk) with pauses;
  units are cosine-tuned to hand velocity.
* `struct_mat`: a MATLAB struct array of trials: per trial a units × time 0/1 spike train at 1 ms
  (trials of different lengths) and a condition string; no behaviour. Units prefer conditions.
* `trials_npz`: trials already cut in NumPy: (trials, bins, units) counts at 10 ms, hand position
  in mm per bin, a target index per trial.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io


def _min_jerk(n: int) -> np.ndarray:
    s = np.linspace(0, 1, n)
    return 10 * s**3 - 15 * s**4 + 6 * s**5


def reaching_path(n_bins: int, bin_ms: float, seed: int = 0) -> np.ndarray:
    """(n_bins, 3) hand position in metres: 600 ms reaches between 8 targets on a 10 cm circle, 400–900 ms
    pauses between them."""
    rng = np.random.default_rng(seed)
    targets = 0.1 * np.column_stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)])
    pos = np.zeros((n_bins, 3))
    here, t = np.zeros(2), 0
    reach = max(2, int(round(600 / bin_ms)))
    while t < n_bins:
        pause = int(rng.integers(400, 900) / bin_ms)
        pos[t:t + pause, :2] = here
        t += pause
        goal = targets[rng.integers(8)] if np.allclose(here, 0) else np.zeros(2)  # centre-out and back
        path = here + (goal - here) * _min_jerk(reach)[:, None]
        pos[t:t + reach, :2] = path[: max(0, min(reach, n_bins - t))]
        here, t = goal, t + reach
    pos[:, 2] = 0.01 * np.sin(np.arange(n_bins) * bin_ms / 1000)  # a small drift in depth
    return pos


def continuous_mat(path: Path, *, n_bins: int = 15_000, n_units: int = 171, bin_ms: float = 50.0,
                   seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    pos = reaching_path(n_bins, bin_ms, seed)
    vel = np.gradient(pos, bin_ms / 1000, axis=0)
    preferred = rng.uniform(-np.pi, np.pi, n_units)
    gain = rng.uniform(20, 60, n_units)
    base = rng.uniform(2, 15, n_units)
    drive = (vel[:, :1] * np.cos(preferred) + vel[:, 1:2] * np.sin(preferred)) * gain
    rates = np.clip(base + drive * 4, 0.5, None)  # spikes/s; peak hand speed ~0.3 m/s
    counts = rng.poisson(rates * bin_ms / 1000).astype(np.float64)  # MATLAB stores doubles
    scipy.io.savemat(path, {"spike_counts": counts.T, "pos": pos.T, "vel": vel.T,
                            "time": (np.arange(n_bins) * bin_ms / 1000)[None, :]})
    return path


CONDITIONS = ("left", "right", "up", "down", "up-left", "down-right", "centre")


def struct_mat(path: Path, *, n_trials: int = 210, n_units: int = 61, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    tuning = rng.uniform(5, 40, (len(CONDITIONS), n_units))
    dtype = [("spikes", object), ("condition", object)]
    trials = np.zeros((1, n_trials), dtype=dtype)
    for i in range(n_trials):
        c = i % len(CONDITIONS)
        length = int(rng.integers(700, 900))  # ms
        profile = np.sin(np.linspace(0, np.pi, length))[None, :]  # a response that rises and falls
        rate = 3 + tuning[c][:, None] * profile  # (units, time) spikes/s
        trials[0, i]["spikes"] = (rng.random((n_units, length)) < rate / 1000).astype(np.uint8)
        trials[0, i]["condition"] = CONDITIONS[c]
    scipy.io.savemat(path, {"trials": trials})
    return path


def trials_npz(path: Path, *, n_trials: int = 160, n_bins: int = 60, n_units: int = 40, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    target = np.arange(n_trials) % 8
    angle = target * np.pi / 4
    end_mm = 80 * np.column_stack([np.cos(angle), np.sin(angle)])
    onset = 20  # bins: movement starts 200 ms in
    s = np.clip((np.arange(n_bins) - onset) / 30, 0, 1)
    progress = 10 * s**3 - 15 * s**4 + 6 * s**5
    hand = end_mm[:, None, :] * progress[None, :, None] + rng.normal(0, 0.5, (n_trials, n_bins, 2))
    vel = np.gradient(hand, 0.01, axis=1)
    preferred = rng.uniform(-np.pi, np.pi, n_units)
    drive = vel[..., :1] * np.cos(preferred) + vel[..., 1:] * np.sin(preferred)  # mm/s
    rates = np.clip(8 + 0.06 * drive, 0.5, None)
    spikes = rng.poisson(rates * 0.01).astype(np.int16)
    np.savez(path, spikes=spikes, hand_pos=hand.astype(np.float32), target=target)
    return path


def nlb_tensors(path: Path, *, n_train: int = 40, n_eval: int = 12, n_bins: int = 40, n_heldin: int = 12,
                n_heldout: int = 4, seed: int = 0, eval_heldout_seed: int | None = None) -> Path:
    """An NLB tensor file as nlb_tools writes MC_Maze's (`train_*`, `eval_*`, hand velocity in mm/s):
    Poisson spikes whose rates follow each trial's reach direction; ``eval_heldout_seed`` redraws
    only the eval trials' held-out spikes (what a benchmark must never select on)."""
    import h5py

    rng = np.random.default_rng(seed)
    n = n_train + n_eval
    angles = rng.choice(np.linspace(0, 2 * np.pi, 4, endpoint=False), n)
    profile = np.zeros(n_bins)
    profile[n_bins // 4: n_bins // 4 + n_bins // 2] = np.sin(np.linspace(0, np.pi, n_bins // 2))
    vel = 300.0 * profile[None, :, None] * np.stack([np.cos(angles), np.sin(angles)], -1)[:, None, :]
    tuning = rng.normal(size=(2, n_heldin + n_heldout))
    rates = 0.05 * np.exp(np.clip(vel @ tuning / 300.0, -3, 3))
    spikes = rng.poisson(rates).astype(np.float32)
    heldout_eval = spikes[n_train:, :, n_heldin:]
    if eval_heldout_seed is not None:
        heldout_eval = np.random.default_rng(eval_heldout_seed).poisson(rates[n_train:, :, n_heldin:]).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["train_spikes_heldin"] = spikes[:n_train, :, :n_heldin]
        f["train_spikes_heldout"] = spikes[:n_train, :, n_heldin:]
        f["train_behavior"] = vel[:n_train].astype(np.float32)
        f["eval_spikes_heldin"] = spikes[n_train:, :, :n_heldin]
        f["eval_spikes_heldout"] = heldout_eval
    return path


def nlb_train_session_nwb(path: Path, *, n_trials: int = 48, n_val: int = 12, n_units: int = 10,
                          n_heldout: int = 3, seed: int = 0) -> Path:
    """An NWB file in the layout of a DANDI NLB MC_Maze *train* session: units with a bool
    ``heldout`` column, a trials table with ``move_onset_time`` and ``split`` ('train' / 'val'),
    ``trial_type``, and hand position / velocity (mm, mm/s) under processing/behavior."""
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.behavior import SpatialSeries

    rng = np.random.default_rng(seed)
    nwb = NWBFile(session_description="NLB train-session layout", identifier=f"nlb-train-{seed}",
                  session_start_time=datetime(2021, 1, 1, tzinfo=timezone.utc))
    starts = 1.0 + 1.5 * np.arange(n_trials)
    onsets = starts + 0.5
    kinds = rng.integers(0, 4, n_trials)
    split = np.array(["train"] * (n_trials - n_val) + ["val"] * n_val)[rng.permutation(n_trials)]
    end = starts[-1] + 1.5
    t = np.arange(0, end, 0.001)
    direction = np.zeros((len(t), 2))
    for onset, kind in zip(onsets, kinds):
        inside = (t >= onset) & (t < onset + 0.3)
        angle = kind * np.pi / 2
        direction[inside] = np.sin(np.pi * (t[inside] - onset) / 0.3)[:, None] * [np.cos(angle), np.sin(angle)]
    hand_vel = 300.0 * direction  # mm/s
    hand_pos = np.cumsum(hand_vel, axis=0) * 0.001
    nwb.add_unit_column("heldout", "held out in NLB")
    tuning = rng.normal(size=(n_units, 2))
    for u in range(n_units):
        rate = 20.0 * np.exp(np.clip(direction @ tuning[u], -3, 3))  # Hz
        times = t[rng.random(len(t)) < rate * 0.001]
        nwb.add_unit(spike_times=times, heldout=u >= n_units - n_heldout, id=u)
    for name in ("move_onset_time", "split", "trial_type"):
        nwb.add_trial_column(name, name)
    for start, onset, kind, s in zip(starts, onsets, kinds, split):
        nwb.add_trial(start_time=start, stop_time=start + 1.4, move_onset_time=onset, split=str(s),
                      trial_type=int(kind))
    behavior = nwb.create_processing_module("behavior", "hand")
    pos = SpatialSeries(name="hand_pos", data=hand_pos, timestamps=t, reference_frame="screen centre", unit="mm")
    behavior.add(pos)
    behavior.add(TimeSeries(name="hand_vel", data=hand_vel, timestamps=pos, unit="mm/s"))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path
