"""Read and write lfads-torch input files, so a dataset can go straight to lfads-torch and back.

lfads-torch (`lfads_torch/datamodules.py`) loads every root dataset of the file and needs
`{train,valid}_encod_data` and `{train,valid}_recon_data` (plus `test_*` when present): encod =
the held-in neurons the encoders see, recon = all neurons with the held-out ones last. Optional
keys it understands: `{split}_behavior` (a batch key), `{split}_truth` with `conversion_factor`
(truth / conversion_factor = expected counts per bin).

Because lfads-torch reads *all* root datasets, we keep the file flat (no groups). Our extra
information lives in root attributes (`gnocchi_meta`, `gnocchi_trial_info`, JSON) and in
`{split}_inds` (each trial's position in the original dataset) and `{split}_latents`, so that
TrialData → lfads file → TrialData is exact. Files written by others lack those and import with
the information they have: the bin width must then be given.
"""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pandas as pd

from ..atomic import atomic_path
from ..errors import DataError
from .trialdata import SPLITS, Provenance, TrialData, check_shape


def export_lfads(data: TrialData, path: str | os.PathLike) -> None:
    """Write `data` in lfads-torch's layout (one block per split present)."""
    present = [s for s in SPLITS if (data.trial_info["split"] == s).any()]
    for required in ("train", "valid"):
        if required not in present:
            raise DataError(f"lfads-torch needs '{required}' trials and the dataset has none",
                            field="trial_info/split", expected="train and valid trials",
                            found=f"splits {present}")
    order = np.r_[np.flatnonzero(~data.heldout_neurons), np.flatnonzero(data.heldout_neurons)]
    n_encod = int((~data.heldout_neurons).sum())
    fields = list(data.behavior)
    meta = {
        "bin_ms": data.bin_ms, "t0_ms": data.t0_ms, "align_event": data.align_event,
        "recon_neuron_order": order.tolist(), "neuron_ids": data.neuron_ids.tolist(),
        "behavior_fields": [[name, int(data.behavior[name].shape[-1])] for name in fields],
        "behavior_units": data.behavior_units, "provenance": vars(data.provenance),
    }
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["gnocchi_meta"] = json.dumps(meta)
        f.attrs["gnocchi_trial_info"] = json.dumps(
            {c: data.trial_info[c].tolist() for c in data.trial_info.columns})
        if data.rates is not None:
            f.create_dataset("conversion_factor", data=1000.0 / data.bin_ms)
        for split in present:
            inds = np.flatnonzero(data.trial_info["split"].to_numpy() == split)
            recon = data.spikes[inds][:, :, order].astype(np.float32)
            _dataset(f, f"{split}_encod_data", recon[:, :, :n_encod])
            _dataset(f, f"{split}_recon_data", recon)
            _dataset(f, f"{split}_inds", inds)
            if fields:
                _dataset(f, f"{split}_behavior",
                         np.concatenate([data.behavior[name][inds] for name in fields], axis=-1))
            if data.rates is not None:
                _dataset(f, f"{split}_truth", data.rates[inds][:, :, order])
            if data.latents is not None:
                _dataset(f, f"{split}_latents", data.latents[inds])


def import_lfads(path: str | os.PathLike, *, bin_ms: float | None = None, t0_ms: float = 0.0) -> TrialData:
    """Read an lfads-torch input file. `bin_ms` is needed unless we wrote the file ourselves."""
    path = os.fspath(path)
    if not h5py.is_hdf5(path):
        raise DataError("not an HDF5 file", path=path)
    with h5py.File(path, "r") as f:
        arrays = {k: v[()] for k, v in f.items() if isinstance(v, h5py.Dataset)}
        meta = json.loads(f.attrs["gnocchi_meta"]) if "gnocchi_meta" in f.attrs else None
        table = json.loads(f.attrs["gnocchi_trial_info"]) if "gnocchi_trial_info" in f.attrs else None
    for key in ("train_encod_data", "train_recon_data", "valid_encod_data", "valid_recon_data"):
        if key not in arrays:
            raise DataError("not an lfads-torch input file: required array missing", path=path, field=key)
    present = [s for s in SPLITS if f"{s}_recon_data" in arrays]
    recon = {s: arrays[f"{s}_recon_data"] for s in present}
    n_encod = arrays["train_encod_data"].shape[-1]
    n_recon, n_bins = recon["train"].shape[-1], arrays["train_encod_data"].shape[1]
    for s in present:
        check_shape(path, f"{s}_recon_data", recon[s], (None, None, n_recon))
        check_shape(path, f"{s}_encod_data", arrays.get(f"{s}_encod_data", recon[s][:, :, :n_encod]),
               (recon[s].shape[0], n_bins, n_encod))
        if recon[s].shape[1] < n_bins:
            raise DataError("recon data has fewer bins than encod data", path=path, field=f"{s}_recon_data",
                            expected=f">= {n_bins} bins", found=f"{recon[s].shape[1]} bins")
    n_bins = recon["train"].shape[1]  # recon may carry forward-prediction bins: keep them
    if meta is None and bin_ms is None:
        raise DataError("lfads-torch files do not record the bin width: pass --bin-ms", path=path, field="bin_ms")

    # Trials in their original order when the file says it, else train, valid, test.
    inds = np.concatenate([arrays.get(f"{s}_inds", np.full(len(recon[s]), -1)) for s in present])
    order = np.argsort(inds, kind="stable") if (inds >= 0).all() else np.arange(len(inds))
    split = np.concatenate([[s] * len(recon[s]) for s in present])[order]

    def gather(key: str, dims: int | None = None):
        if not all(f"{s}_{key}" in arrays for s in present):
            return None
        stacked = np.concatenate([arrays[f"{s}_{key}"] for s in present])[order]
        check_shape(path, f"*_{key}", stacked, (len(order), n_bins, dims))
        return stacked

    neuron_order = np.asarray(meta["recon_neuron_order"]) if meta else np.arange(n_recon)
    unpermute = np.argsort(neuron_order)
    spikes = np.concatenate([recon[s] for s in present])[order][:, :, unpermute]
    heldout = (np.arange(n_recon) >= n_encod)[unpermute]
    behavior_block = gather("behavior")
    bin_ms = meta["bin_ms"] if meta else bin_ms
    truth = gather("truth", n_recon)
    if truth is not None:  # truth / conversion_factor = expected counts per bin
        scale = 1000.0 / bin_ms / float(arrays.get("conversion_factor", 1000.0 / bin_ms))
        truth = truth[:, :, unpermute] * scale if scale != 1.0 else truth[:, :, unpermute]

    info = pd.DataFrame(table) if table is not None else pd.DataFrame({"split": split})
    kwargs = dict(
        spikes=spikes, trial_info=info, heldout_neurons=heldout, latents=gather("latents"), rates=truth,
        behavior=_split_behavior(behavior_block, meta),
    )
    if meta:
        kwargs.update(bin_ms=meta["bin_ms"], t0_ms=meta["t0_ms"], align_event=meta["align_event"],
                      neuron_ids=meta["neuron_ids"], behavior_units=meta["behavior_units"],
                      provenance=Provenance(**meta["provenance"]))
    else:
        kwargs.update(bin_ms=bin_ms, t0_ms=t0_ms, provenance=Provenance(
            source=os.path.basename(path),
            description=f"lfads-torch input file; held-out neurons = the last {n_recon - n_encod} recon neurons"))
    try:
        return TrialData(**kwargs)
    except DataError as err:
        raise err.with_path(path) from None


def _split_behavior(block: np.ndarray | None, meta: dict | None) -> dict[str, np.ndarray]:
    if block is None:
        return {}
    if not meta:
        return {"behavior": block}
    bounds = np.cumsum([0] + [dims for _, dims in meta["behavior_fields"]])
    return {name: block[..., a:b] for (name, _), a, b in zip(meta["behavior_fields"], bounds[:-1], bounds[1:])}


def _dataset(f: h5py.File, name: str, values: np.ndarray) -> None:
    f.create_dataset(name, data=values, compression="gzip", compression_opts=4)
