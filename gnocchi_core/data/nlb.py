"""Import Neural Latents Benchmark tensor files (as `nlb_tools.make_*_input_tensors` write them).

Such a file holds `train_spikes_heldin`, `train_spikes_heldout`, `train_behavior` (hand velocity
in mm/s) and `eval_spikes_heldin` / `eval_spikes_heldout`, already binned and aligned to movement
onset. Held-in and held-out neurons are joined (held-out last, marked in the mask).

Behaviour is stored in GNOCCHI's units: ``hand_vel`` in cm/s (NLB's mm/s ÷ 10) and ``hand_pos``
in cm, integrated from velocity relative to the window start (the files carry no position).
Eval trials have no behaviour and get NaN behaviour. nlb_tools cuts the behaviour ``lag`` ms
later than the spikes (80 ms for MC_Maze); it is stored as cut, and the lag is used to find
movement onset in the hand path.

The files carry no trial labels either, so they are derived from the hand path of every trial
with behaviour (the NLB 'train' trials): ``start_x/start_y`` = hand position in the behaviour bin
that contains movement onset (t = 0), ``target_x/target_y`` = mean hand position over the last 10
bins, ``reach_angle`` = angle of target − start, and ``condition_id`` = k-means cluster of the
reach endpoints (target − start), numbered by increasing angle of the cluster centre. Trials
without behaviour keep NaN labels and condition_id −1; no condition is held out.

Splits: the NLB train trials are split train/valid (stratified by the derived condition), the
eval trials become test. With ``labelled_test_fraction > 0`` a stratified share of the labelled
trials becomes test instead, and the unlabelled eval trials are dropped (TrialData's splits are
only train/valid/test, and an evaluation needs labels on every test trial).
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import pandas as pd

from ..errors import DataError
from .kinematics import integrate_velocity
from .labels import _check_fractions, cluster_conditions, random_split, reach_labels, stratified_split
from .trialdata import Provenance, TrialData, check_shape

NLB_CITATION = (
    "Pei et al. 2021, Neural Latents Benchmark '21 (arXiv:2109.04463); "
    "Churchland et al. 2012, Nature 487:51-56 (MC_Maze)"
)

#: NLB stores hand velocity in mm/s; GNOCCHI stores cm/s and cm.
MM_PER_CM = 10.0


def import_nlb(
    path: str | os.PathLike,
    *,
    bin_ms: float = 5.0,
    t0_ms: float = -250.0,
    valid_fraction: float = 0.2,
    labelled_test_fraction: float = 0.0,
    n_conditions: int = 8,
    behavior_lag_ms: float = 80.0,
    seed: int = 0,
) -> TrialData:
    """Read an NLB tensor file. `bin_ms`/`t0_ms` default to NLB's MC_Maze settings (5 ms, −250 ms).

    ``valid_fraction`` and ``labelled_test_fraction`` are shares of the NLB train trials (the
    labelled ones): that many go to valid and to test, stratified by derived condition, the rest
    train. With ``labelled_test_fraction == 0`` (the default) the NLB eval trials are the test
    trials (unlabelled); with it > 0 they are dropped. ``n_conditions``: k-means clusters of the
    reach endpoints (fewer if there are fewer distinct endpoints). ``behavior_lag_ms``: how much
    later than the spike bins the behaviour bins are (nlb_tools' ``lag``: 80 ms for the MC_Maze
    sets, 120 MC_RTT, −40 Area2_Bump; 0 if the file was made without one); it locates movement
    onset in the hand path, the behaviour itself is stored as the file has it. ``seed`` seeds
    both the splits and the clustering.
    """
    _check_fractions(valid_fraction, labelled_test_fraction)
    if isinstance(n_conditions, bool) or int(n_conditions) != n_conditions or n_conditions < 1:
        raise ValueError(f"n_conditions must be a positive integer, got {n_conditions!r}")
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
        vel_mm_s = np.concatenate([
            b.astype(np.float32) if b is not None else np.full((hi.shape[0], n_bins, vel_dims), np.nan, np.float32)
            for _, hi, _, b in parts
        ])
        vel = (vel_mm_s / np.float32(MM_PER_CM)).astype(np.float32)
        behavior = {"hand_pos": integrate_velocity(vel, bin_ms), "hand_vel": vel}  # the order a saved file has

    n_train = parts[0][1].shape[0]
    n_total = spikes.shape[0]
    nlb_split = np.array(["train"] * n_train + ["eval"] * (n_total - n_train), dtype=object)
    notes = [f"NLB tensors from {os.path.basename(path)}; held-in {n_heldin} + held-out {n_heldout} neurons"]
    if behavior:
        notes.append("hand_vel converted from NLB's mm/s to cm/s (÷10); hand_pos (cm) integrated from hand_vel, "
                     "relative to the window start (the file has no absolute position)")
        if behavior_lag_ms:
            notes.append(f"behaviour bins as in the file: {behavior_lag_ms:g} ms later than the spike bins "
                         f"(nlb_tools' lag), i.e. behaviour bin k covers t0_ms + {behavior_lag_ms:g} + k × bin_ms")
    info = pd.DataFrame({"nlb_split": nlb_split, "heldout_condition": np.zeros(n_total, bool)})

    labelled = np.zeros(n_total, bool)
    condition = np.full(n_total, -1, np.int64)
    if behavior:
        try:
            labels, label_note = reach_labels(behavior["hand_pos"], bin_ms=bin_ms, t0_ms=t0_ms + behavior_lag_ms)
        except ValueError as err:  # e.g. MC_RTT tensors, aligned to trial start: no onset in the window
            labels, label_note = np.full((n_total, 5), np.nan), None
            notes.append(f"no trial labels derived: {err}")
        labelled = np.isfinite(labels).all(axis=1)
        for k, column in enumerate(("start_x", "start_y", "target_x", "target_y", "reach_angle")):
            info[column] = np.where(labelled, labels[:, k], np.nan)
        if labelled.any():
            endpoints = labels[labelled, 2:4] - labels[labelled, 0:2]
            condition[labelled], cluster_note = cluster_conditions(endpoints, n_conditions, seed)
            notes.append(f"labels derived from the hand path: {label_note}; {cluster_note}; "
                         f"{int((~labelled).sum())} trials without (finite) behaviour keep NaN labels and "
                         "condition_id -1; heldout_condition False")
        elif label_note:
            notes.append("no trial labels derived: no trial has a finite hand path")
    info["condition_id"] = condition

    if labelled_test_fraction > 0 and not labelled.any():
        raise ValueError("labelled_test_fraction > 0 needs labelled trials, and none could be derived "
                         "(no train_behavior, or no movement onset in its window)")
    split = np.full(n_total, "test", dtype=object)
    if labelled.any():
        split[:n_train] = stratified_split(condition[:n_train], valid_fraction, labelled_test_fraction, seed)
        strata = "stratified by derived condition"
    else:
        split[:n_train] = random_split(n_train, valid_fraction, 0.0, seed)
        strata = "not stratified (no derived conditions)"
    info.insert(0, "split", split)
    keep = np.ones(n_total, bool)
    if labelled_test_fraction > 0:
        notes.append(f"NLB train trials split train/valid/test with valid_fraction={valid_fraction}, "
                     f"labelled_test_fraction={labelled_test_fraction}, seed={seed}, {strata}")
        keep = nlb_split == "train"
        if not keep.all():
            notes.append(f"{int((~keep).sum())} NLB eval trials dropped: test is now labelled NLB train trials, "
                         "the eval trials have no behaviour (no labels) and the only splits are train/valid/test")
    else:
        notes.append(f"NLB train trials split train/valid with valid_fraction={valid_fraction}, seed={seed}, "
                     f"{strata}; NLB eval trials → test (unlabelled)")
    if dropped_eval:
        notes.append("eval trials dropped: the file has no eval_spikes_heldout")
    forward = [k for k in arrays if k.endswith("_forward")]
    if forward:
        notes.append(f"forward-prediction arrays not imported: {', '.join(sorted(forward))}")
    if not keep.all():
        spikes, info = spikes[keep], info[keep].reset_index(drop=True)
        behavior = {name: values[keep] for name, values in behavior.items()}
    try:
        return TrialData(
            spikes=spikes, bin_ms=bin_ms, t0_ms=t0_ms, trial_info=info, behavior=behavior,
            behavior_units={"hand_vel": "cm/s", "hand_pos": "cm"} if behavior else {},
            heldout_neurons=np.r_[np.zeros(n_heldin, bool), np.ones(n_heldout, bool)],
            provenance=Provenance(source=os.path.basename(path), licence="CC-BY-4.0",
                                  citation=NLB_CITATION, description="; ".join(notes)),
        )
    except DataError as err:
        raise err.with_path(path) from None


