"""Import Neural Latents Benchmark tensor files (as `nlb_tools.make_*_input_tensors` write them).

Such a file holds `train_spikes_heldin`, `train_spikes_heldout`, `train_behavior` (hand velocity)
and `eval_spikes_heldin` / `eval_spikes_heldout`, already binned and aligned to movement onset.
Held-in and held-out neurons are joined (held-out last, marked in the mask); the train trials
are split into train/valid with a seeded shuffle, the eval trials become test. The files carry
no hand position and no target labels: position is integrated from velocity (relative to the
window start), and eval trials, which have no behaviour, get NaN behaviour.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import pandas as pd

from ..errors import DataError
from .trialdata import Provenance, TrialData, check_shape

NLB_CITATION = (
    "Pei et al. 2021, Neural Latents Benchmark '21 (arXiv:2109.04463); "
    "Churchland et al. 2012, Nature 487:51-56 (MC_Maze)"
)


def import_nlb(
    path: str | os.PathLike,
    *,
    bin_ms: float = 5.0,
    t0_ms: float = -250.0,
    valid_fraction: float = 0.2,
    seed: int = 0,
) -> TrialData:
    """Read an NLB tensor file. `bin_ms`/`t0_ms` default to NLB's MC_Maze settings (5 ms, −250 ms)."""
    path = os.fspath(path)
    if not h5py.is_hdf5(path):
        raise DataError("not an HDF5 file", path=path)
    with h5py.File(path, "r") as f:
        arrays = {key: f[key][()] for key in f if isinstance(f[key], h5py.Dataset)}
    for key in ("train_spikes_heldin", "train_spikes_heldout"):
        if key not in arrays:
            raise DataError("not an NLB tensor file: required array missing", path=path, field=key)

    parts = [("train", arrays["train_spikes_heldin"], arrays["train_spikes_heldout"], arrays.get("train_behavior"))]
    dropped_eval = "eval_spikes_heldin" in arrays and "eval_spikes_heldout" not in arrays
    if "eval_spikes_heldin" in arrays and not dropped_eval:
        parts.append(("eval", arrays["eval_spikes_heldin"], arrays["eval_spikes_heldout"], arrays.get("eval_behavior")))

    n_heldin, n_heldout = parts[0][1].shape[-1], parts[0][2].shape[-1]
    n_bins = parts[0][1].shape[1]
    for name, heldin, heldout, behavior in parts:
        check_shape(path, f"{name}_spikes_heldin", heldin, (None, n_bins, n_heldin))
        check_shape(path, f"{name}_spikes_heldout", heldout, (heldin.shape[0], n_bins, n_heldout))
        if behavior is not None:
            check_shape(path, f"{name}_behavior", behavior, (heldin.shape[0], n_bins, None))

    spikes = np.concatenate([np.concatenate([hi, ho], axis=-1) for _, hi, ho, _ in parts])
    vel_dims = next((b.shape[-1] for *_, b in parts if b is not None), None)
    behavior = {}
    if vel_dims is not None:
        vel = np.concatenate([
            b.astype(np.float32) if b is not None else np.full((hi.shape[0], n_bins, vel_dims), np.nan, np.float32)
            for _, hi, _, b in parts
        ])
        behavior = {"hand_vel": vel, "hand_pos": integrate_velocity(vel, bin_ms)}

    n_train = parts[0][1].shape[0]
    split = np.full(spikes.shape[0], "test", dtype=object)
    split[:n_train] = _train_valid_split(n_train, valid_fraction, seed)
    info = pd.DataFrame({"split": split, "nlb_split": ["train"] * n_train + ["eval"] * (spikes.shape[0] - n_train)})
    if behavior:
        displacement = behavior["hand_pos"][:, -1] - behavior["hand_pos"][:, 0]
        info["reach_angle"] = np.arctan2(displacement[:, 1], displacement[:, 0])

    notes = [f"NLB tensors from {os.path.basename(path)}; held-in {n_heldin} + held-out {n_heldout} neurons",
             f"train trials split train/valid with valid_fraction={valid_fraction}, seed={seed}; eval trials → test",
             "hand_pos integrated from hand_vel, relative to the window start"]
    if dropped_eval:
        notes.append("eval trials dropped: the file has no eval_spikes_heldout")
    forward = [k for k in arrays if k.endswith("_forward")]
    if forward:
        notes.append(f"forward-prediction arrays not imported: {', '.join(sorted(forward))}")
    try:
        return TrialData(
            spikes=spikes, bin_ms=bin_ms, t0_ms=t0_ms, trial_info=info, behavior=behavior,
            behavior_units={"hand_vel": "mm/s", "hand_pos": "mm"} if behavior else {},
            heldout_neurons=np.r_[np.zeros(n_heldin, bool), np.ones(n_heldout, bool)],
            provenance=Provenance(source=os.path.basename(path), licence="CC-BY-4.0",
                                  citation=NLB_CITATION, description="; ".join(notes)),
        )
    except DataError as err:
        raise err.with_path(path) from None


def integrate_velocity(vel: np.ndarray, bin_ms: float) -> np.ndarray:
    """Position at each bin centre from per-bin velocity, starting at 0 at the window start."""
    step = vel.astype(np.float64) * (bin_ms / 1000.0)
    return (np.cumsum(step, axis=1) - step / 2).astype(np.float32)


def _train_valid_split(n: int, valid_fraction: float, seed: int) -> np.ndarray:
    if not 0 <= valid_fraction < 1:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    split = np.full(n, "train", dtype=object)
    n_valid = int(round(n * valid_fraction))
    split[np.random.default_rng(seed).permutation(n)[:n_valid]] = "valid"
    return split

