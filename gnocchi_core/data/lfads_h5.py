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
from .trialdata import SPLITS, Provenance, TrialData, check_shape, load_dataset
from .validation import POSITIVE, as_integer, as_number, as_text, at_least, describe


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


def is_lfads_input(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an lfads-torch input file (HDF5 holding ``train_encod_data``)."""
    if not (os.path.isfile(path) and h5py.is_hdf5(path)):
        return False
    with h5py.File(path, "r") as f:
        return "train_encod_data" in f


def load_training_data(path: str | os.PathLike, bin_ms: float | None = None) -> TrialData:
    """What a model trains on: an lfads-torch input file (`import_lfads`, ``bin_ms`` for files gnocchi did
    not write) or a GNOCCHI dataset (`load_dataset`)."""
    return import_lfads(path, bin_ms=bin_ms) if is_lfads_input(path) else load_dataset(path)


def import_lfads(path: str | os.PathLike, *, bin_ms: float | None = None, t0_ms: float = 0.0) -> TrialData:
    """Read an lfads-torch input file. `bin_ms` is needed unless we wrote the file ourselves.

    Every failure is a DataError naming the file and the array or metadata field at fault."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError("file not found" if not os.path.exists(path) else "is a folder, expected a file", path=path)
    if not h5py.is_hdf5(path):
        raise DataError("not an HDF5 file", path=path)
    try:
        with h5py.File(path, "r") as f:
            arrays = {k: v[()] for k, v in f.items() if isinstance(v, h5py.Dataset)}
            meta, table = _json_attr(f, "gnocchi_meta"), _json_attr(f, "gnocchi_trial_info")
        return _from_arrays(path, arrays, _check_meta(meta), table, bin_ms, t0_ms)
    except DataError as err:
        raise err.with_path(path) from None
    except (OSError, RuntimeError, KeyError) as err:
        raise DataError(f"cannot be read (truncated or corrupt HDF5: {err})", path=path) from None


def _from_arrays(path: str, arrays: dict, meta: dict | None, table: dict | None, bin_ms, t0_ms) -> TrialData:
    for key in ("train_encod_data", "train_recon_data", "valid_encod_data", "valid_recon_data"):
        if key not in arrays:
            raise DataError("not an lfads-torch input file: required array missing", path=path, field=key)
    present = [s for s in SPLITS if f"{s}_recon_data" in arrays]
    recon = {s: arrays[f"{s}_recon_data"] for s in present}
    check_shape(path, "train_encod_data", arrays["train_encod_data"], (None, None, None))
    check_shape(path, "train_recon_data", recon["train"], (None, None, None))
    n_encod = arrays["train_encod_data"].shape[-1]
    n_recon, n_bins = recon["train"].shape[-1], arrays["train_encod_data"].shape[1]
    for s in present:
        check_shape(path, f"{s}_recon_data", recon[s], (None, None, n_recon))
        check_shape(path, f"{s}_encod_data", arrays.get(f"{s}_encod_data", recon[s][:, :, :n_encod]),
                    (recon[s].shape[0], n_bins, n_encod))
        if recon[s].shape[1] < n_bins:
            raise DataError("recon data has fewer bins than encod data", path=path, field=f"{s}_recon_data",
                            expected=f">= {n_bins} bins", found=f"{recon[s].shape[1]} bins")
    if n_encod > n_recon:
        raise DataError("encod data has more neurons than recon data", path=path, field="train_encod_data",
                        expected=f"<= {n_recon} neurons", found=f"{n_encod} neurons")
    n_bins = recon["train"].shape[1]  # recon may carry forward-prediction bins: keep them
    if meta is None and bin_ms is None:
        raise DataError("lfads-torch files do not record the bin width: pass --bin-ms", path=path, field="bin_ms")
    bin_ms = meta["bin_ms"] if meta else as_number(bin_ms, "bin_ms", POSITIVE, message="bin width must be positive")

    # Trials in their original order when the file says it, else train, valid, test.
    for s in present:
        if f"{s}_inds" in arrays:
            check_shape(path, f"{s}_inds", arrays[f"{s}_inds"], (len(recon[s]),))
    inds = np.concatenate([arrays.get(f"{s}_inds", np.full(len(recon[s]), -1)) for s in present])
    if inds.dtype.kind not in "iu":
        raise DataError("trial indices must be integers", path=path, field="*_inds", found=f"dtype {inds.dtype}")
    order = np.argsort(inds, kind="stable") if (inds >= 0).all() else np.arange(len(inds))
    split = np.concatenate([[s] * len(recon[s]) for s in present])[order]

    def gather(key: str, dims: int | None = None):
        if not all(f"{s}_{key}" in arrays for s in present):
            return None
        for s in present:
            check_shape(path, f"{s}_{key}", arrays[f"{s}_{key}"], (len(recon[s]), n_bins, dims))
        return np.concatenate([arrays[f"{s}_{key}"] for s in present])[order]

    neuron_order = np.asarray(meta["recon_neuron_order"]) if meta else np.arange(n_recon)
    if sorted(neuron_order.tolist()) != list(range(n_recon)):
        raise DataError("must be an ordering of the recon neurons", path=path, field="gnocchi_meta/recon_neuron_order",
                        expected=f"a permutation of 0..{n_recon - 1}", found=f"{len(neuron_order)} values")
    unpermute = np.argsort(neuron_order)
    spikes = np.concatenate([recon[s] for s in present])[order][:, :, unpermute]
    heldout = (np.arange(n_recon) >= n_encod)[unpermute]
    behavior_block = gather("behavior")
    truth = gather("truth", n_recon)
    if truth is not None:  # truth / conversion_factor = expected counts per bin
        factor = arrays.get("conversion_factor", 1000.0 / bin_ms)
        factor = as_number(factor[()] if isinstance(factor, np.ndarray) and factor.ndim == 0 else factor,
                           "conversion_factor", POSITIVE, path=path, message="must be a positive number")
        scale = 1000.0 / bin_ms / factor
        truth = truth[:, :, unpermute] * scale if scale != 1.0 else truth[:, :, unpermute]

    info = _trial_table(table, len(inds)) if table is not None else pd.DataFrame({"split": split})
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
    return TrialData(**kwargs)


def _json_attr(f: h5py.File, name: str):
    """A root attribute holding JSON, parsed (None when absent)."""
    if name not in f.attrs:
        return None
    raw = f.attrs[name]
    raw = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    if not isinstance(raw, str):
        raise DataError("attribute must be a JSON string", field=name, expected="JSON text", found=describe(raw))
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise DataError(f"attribute is not valid JSON ({err})", field=name) from None


#: gnocchi_meta's fields: (check, expected) — what `export_lfads` writes
_META = {
    "bin_ms": lambda v: as_number(v, "gnocchi_meta/bin_ms", POSITIVE, message="bin width must be positive"),
    "t0_ms": lambda v: as_number(v, "gnocchi_meta/t0_ms", message="must be a finite number of ms"),
    "align_event": lambda v: as_text(v, "gnocchi_meta/align_event", message="must be an event name"),
    "recon_neuron_order": lambda v: _int_list(v, "gnocchi_meta/recon_neuron_order"),
    "neuron_ids": lambda v: _int_list(v, "gnocchi_meta/neuron_ids"),
    "behavior_fields": lambda v: _behavior_fields(v),
    "behavior_units": lambda v: _str_dict(v, "gnocchi_meta/behavior_units"),
    "provenance": lambda v: _str_dict(v, "gnocchi_meta/provenance", allowed=tuple(Provenance.__dataclass_fields__)),
}


def _check_meta(meta) -> dict | None:
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise DataError("must be a JSON object", field="gnocchi_meta", expected="an object", found=describe(meta))
    missing = [k for k in _META if k not in meta]
    if missing:
        raise DataError("metadata field missing", field=f"gnocchi_meta/{missing[0]}",
                        expected=f"fields {list(_META)}", found=f"fields {sorted(meta)}")
    return {key: check(meta[key]) for key, check in _META.items()}


def _int_list(value, field: str) -> list[int]:
    if not isinstance(value, list):
        raise DataError("must be a list of integers", field=field, expected="a list", found=describe(value))
    return [as_integer(v, field, message="must be a list of integers") for v in value]


def _str_dict(value, field: str, allowed: tuple[str, ...] | None = None) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise DataError("must be an object of text values", field=field, expected="an object of str",
                        found=describe(value))
    unknown = sorted(set(value) - set(allowed)) if allowed is not None else []
    if unknown:
        raise DataError("unknown keys", field=field, expected=f"keys among {list(allowed)}", found=unknown)
    return value


def _behavior_fields(value) -> list[tuple[str, int]]:
    field = "gnocchi_meta/behavior_fields"
    ok = isinstance(value, list) and all(isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) for v in value)
    if not ok:
        raise DataError("must list [name, dims] pairs", field=field, expected="[[name, dims], ...]",
                        found=describe(value))
    return [(name, as_integer(dims, field, at_least(1), message=f"dims of '{name}'")) for name, dims in value]


def _trial_table(table, n_trials: int) -> pd.DataFrame:
    field = "gnocchi_trial_info"
    if not isinstance(table, dict) or not all(isinstance(v, list) for v in table.values()):
        raise DataError("must be a JSON object of columns (lists)", field=field, expected="{column: [values]}",
                        found=describe(table))
    for column, values in table.items():
        if len(values) != n_trials:
            raise DataError("one value per trial required", field=f"{field}/{column}",
                            expected=f"{n_trials} values", found=f"{len(values)} values")
    return pd.DataFrame(table, index=range(n_trials))


def _split_behavior(block: np.ndarray | None, meta: dict | None) -> dict[str, np.ndarray]:
    if block is None:
        return {}
    if not meta:
        return {"behavior": block}
    bounds = np.cumsum([0] + [dims for _, dims in meta["behavior_fields"]])
    if bounds[-1] != block.shape[-1]:
        raise DataError("behaviour fields do not add up to the behaviour arrays", field="gnocchi_meta/behavior_fields",
                        expected=f"{block.shape[-1]} dims in all", found=f"{int(bounds[-1])}")
    return {name: block[..., a:b] for (name, _), a, b in zip(meta["behavior_fields"], bounds[:-1], bounds[1:])}


def _dataset(f: h5py.File, name: str, values: np.ndarray) -> None:
    f.create_dataset(name, data=values, compression="gzip", compression_opts=4)
