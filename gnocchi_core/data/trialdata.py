"""`TrialData`: the one record every part of GNOCCHI Explorer reads and writes.

A dataset is a stack of trials aligned to one event (movement onset by default), binned at
``bin_ms``. Spikes are non-negative integer counts, shape (trials, bins, neurons). Per-bin
behaviour lives in ``behavior`` (name -> (trials, bins, dims)); per-trial labels in the
``trial_info`` table, whose standard columns every dataset has (unknown values are NaN / -1).

On disk it is one HDF5 file (h5py, gzip) with a ``schema_version`` attribute::

    /                attrs: format, schema_version, bin_ms, t0_ms, align_event
    /spikes          (trials, bins, neurons) smallest unsigned int that fits
    /heldout_neurons (neurons,) bool          /neuron_ids (neurons,) int64
    /behavior/<name> (trials, bins, dims)     attrs: units
    /trial_info/<column> (trials,)
    /rates, /latents optional ground truth (rates in spikes/s)
    /provenance      attrs: source, licence, citation, description, command
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
import h5py
import numpy as np
import pandas as pd

from ..atomic import atomic_path
from ..errors import DataError

SCHEMA_VERSION = 1
FILE_FORMAT = "gnocchi-trialdata"
SPLITS = ("train", "valid", "test")

#: Standard per-trial columns and the value that means "unknown".
TRIAL_COLUMNS: dict[str, object] = {
    "trial_id": None,  # filled with 0..n-1
    "split": "train",
    "condition_id": -1,
    "heldout_condition": False,
    "start_x": np.nan,
    "start_y": np.nan,
    "target_x": np.nan,
    "target_y": np.nan,
    "reach_angle": np.nan,
}


@dataclass
class Provenance:
    """Where a dataset came from, so every file can be cited and regenerated."""

    source: str = ""
    licence: str = ""
    citation: str = ""
    description: str = ""
    command: str = ""
    derived: str = ""  # what the importer derived rather than read (labels, conditions, splits)


@dataclass
class TrialData:
    """Binned, aligned trials of spike counts with behaviour and labels."""

    spikes: np.ndarray
    bin_ms: float
    t0_ms: float
    trial_info: pd.DataFrame
    behavior: dict[str, np.ndarray] = field(default_factory=dict)
    heldout_neurons: np.ndarray | None = None
    rates: np.ndarray | None = None
    latents: np.ndarray | None = None
    neuron_ids: np.ndarray | None = None
    behavior_units: dict[str, str] = field(default_factory=dict)
    align_event: str = "move_onset"
    provenance: Provenance = field(default_factory=Provenance)

    def __post_init__(self) -> None:
        self.spikes = _check_counts(self.spikes)
        n_trials, n_bins, n_neurons = self.spikes.shape
        if not (np.isfinite(self.bin_ms) and self.bin_ms > 0):
            raise DataError("bin width must be a positive number of ms", field="bin_ms",
                            expected="> 0", found=repr(self.bin_ms))
        self.bin_ms = float(self.bin_ms)
        self.t0_ms = float(self.t0_ms)
        self.trial_info = _standard_trial_info(self.trial_info, n_trials)
        self.heldout_neurons = _check_vector(
            self.heldout_neurons, "heldout_neurons", n_neurons, bool, default=False
        )
        self.neuron_ids = _check_vector(
            self.neuron_ids, "neuron_ids", n_neurons, np.int64, default=np.arange(n_neurons)
        )
        self.behavior = {
            name: _check_per_bin(values, f"behavior/{name}", n_trials, n_bins)
            for name, values in self.behavior.items()
        }
        unknown_units = set(self.behavior_units) - set(self.behavior)
        if unknown_units:
            raise DataError("units given for behaviour that is not present", field="behavior_units",
                            expected=f"a subset of {sorted(self.behavior)}", found=sorted(unknown_units))
        if self.rates is not None:
            self.rates = _check_per_bin(self.rates, "rates", n_trials, n_bins, n_neurons)
            if np.any(self.rates < 0):
                raise DataError("rates must be non-negative", field="rates",
                                expected=">= 0", found=f"min {np.nanmin(self.rates):.3g}")
        if self.latents is not None:
            self.latents = _check_per_bin(self.latents, "latents", n_trials, n_bins)

    # ------------------------------------------------------------------ from your own arrays
    @classmethod
    def from_arrays(cls, spikes, *, bin_ms: float, **options) -> "TrialData":
        """Trials already cut: (trials, bins, units) counts or 0/1 trains; see `arrays.from_arrays`."""
        from .arrays import from_arrays

        return from_arrays(spikes, bin_ms=bin_ms, **options)

    @classmethod
    def from_continuous(cls, spikes, *, bin_ms: float, **options) -> "TrialData":
        """A continuous (time, units) recording cut into reaches; see `arrays.from_continuous`."""
        from .arrays import from_continuous

        return from_continuous(spikes, bin_ms=bin_ms, **options)

    # ------------------------------------------------------------------ shape and time
    @property
    def n_trials(self) -> int:
        return self.spikes.shape[0]

    @property
    def n_bins(self) -> int:
        return self.spikes.shape[1]

    @property
    def n_neurons(self) -> int:
        return self.spikes.shape[2]

    @property
    def bin_edges_ms(self) -> np.ndarray:
        """Bin edges in ms relative to the alignment event (n_bins + 1 values)."""
        return self.t0_ms + self.bin_ms * np.arange(self.n_bins + 1)

    @property
    def bin_centers_ms(self) -> np.ndarray:
        return self.bin_edges_ms[:-1] + self.bin_ms / 2

    @property
    def window_ms(self) -> tuple[float, float]:
        edges = self.bin_edges_ms
        return float(edges[0]), float(edges[-1])

    def mean_rate_hz(self) -> float:
        """Mean firing rate over all trials, bins and neurons, in spikes/s."""
        return float(self.spikes.mean() * 1000.0 / self.bin_ms)

    # ------------------------------------------------------------------ subsetting
    def subset(self, trials=None, neurons=None) -> "TrialData":
        """A new TrialData restricted to ``trials`` and/or ``neurons`` (bool masks or indices)."""
        t = _as_index(trials, self.n_trials, "trials")
        n = _as_index(neurons, self.n_neurons, "neurons")
        return dataclasses.replace(
            self,
            spikes=self.spikes[t][:, :, n],
            trial_info=self.trial_info.iloc[t].reset_index(drop=True),
            behavior={k: v[t] for k, v in self.behavior.items()},
            heldout_neurons=self.heldout_neurons[n],
            neuron_ids=self.neuron_ids[n],
            rates=None if self.rates is None else self.rates[t][:, :, n],
            latents=None if self.latents is None else self.latents[t],
            behavior_units=dict(self.behavior_units),
            provenance=dataclasses.replace(self.provenance),
        )

    def split(self, *names: str) -> "TrialData":
        """The trials whose split is one of ``names`` (train / valid / test)."""
        unknown = set(names) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown split {sorted(unknown)}; choose from {SPLITS}")
        return self.subset(trials=self.trial_info["split"].isin(names).to_numpy())

    def heldin_conditions(self, *splits: str) -> np.ndarray:
        """Mask of the trials in ``splits`` whose condition is not held out (what models may train on)."""
        info = self.trial_info
        return (info["split"].isin(splits) & ~info["heldout_condition"]).to_numpy()

    def heldin(self) -> "TrialData":
        """Only the held-in neurons (what an encoder may see)."""
        return self.subset(neurons=~self.heldout_neurons)

    # ------------------------------------------------------------------ io
    def save(self, path: str | os.PathLike) -> None:
        """Write one gzip'd HDF5 file atomically (temp file + rename)."""
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.attrs.update(format=FILE_FORMAT, schema_version=SCHEMA_VERSION, bin_ms=self.bin_ms,
                           t0_ms=self.t0_ms, align_event=self.align_event)
            _write(f, "spikes", self.spikes.astype(_smallest_uint(self.spikes)))
            _write(f, "heldout_neurons", self.heldout_neurons)
            _write(f, "neuron_ids", self.neuron_ids)
            behavior = f.create_group("behavior")
            for name, values in self.behavior.items():
                _write(behavior, name, values)
                behavior[name].attrs["units"] = self.behavior_units.get(name, "")
            info = f.create_group("trial_info")
            info.attrs["columns"] = list(self.trial_info.columns)
            for column in self.trial_info.columns:
                _write(info, column, _column_to_h5(self.trial_info[column], column))
            for name in ("rates", "latents"):
                values = getattr(self, name)
                if values is not None:
                    _write(f, name, values)
            f.create_group("provenance").attrs.update(dataclasses.asdict(self.provenance))


def load_dataset(path: str | os.PathLike) -> TrialData:
    """Read a TrialData HDF5 file, validating every field; errors name the file and field."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError("file not found", path=path)
    if os.path.isdir(path):
        raise DataError("is a folder, expected a dataset file", path=path)
    if not h5py.is_hdf5(path):
        raise DataError("not an HDF5 file", path=path)
    try:
        with h5py.File(path, "r") as f:
            return _read(f)
    except DataError as err:
        raise err.with_path(path) from None
    except (OSError, KeyError, RuntimeError) as err:
        raise DataError(f"cannot be read (truncated or corrupt HDF5: {err})", path=path) from None


def _read(f: h5py.File) -> TrialData:
    fmt = f.attrs.get("format")
    if fmt != FILE_FORMAT:
        raise DataError("not a GNOCCHI dataset (use `gnocchi data import` for NWB / NLB / lfads files)",
                        field="format", expected=repr(FILE_FORMAT), found=repr(fmt))
    version = int(f.attrs.get("schema_version", -1))
    if version != SCHEMA_VERSION:
        raise DataError("unsupported schema version", field="schema_version",
                        expected=str(SCHEMA_VERSION), found=str(version))
    for key in ("spikes", "trial_info", "heldout_neurons"):
        if key not in f:
            raise DataError("required field is missing", field=key)
    for key in ("bin_ms", "t0_ms"):
        if key not in f.attrs:
            raise DataError("required attribute is missing", field=key)
    info_group = f["trial_info"]
    columns = [str(c) for c in info_group.attrs.get("columns", list(info_group.keys()))]
    trial_info = pd.DataFrame({c: _column_from_h5(_read_dataset(info_group, c, "trial_info/")) for c in columns})
    behavior, units = {}, {}
    for name, dset in f.get("behavior", {}).items():
        behavior[name] = _read_dataset(f["behavior"], name, "behavior/")
        if dset.attrs.get("units", ""):
            units[name] = str(dset.attrs["units"])
    return TrialData(
        spikes=_read_dataset(f, "spikes"),
        bin_ms=float(f.attrs["bin_ms"]),
        t0_ms=float(f.attrs["t0_ms"]),
        align_event=str(f.attrs.get("align_event", "move_onset")),
        trial_info=trial_info,
        behavior=behavior,
        behavior_units=units,
        heldout_neurons=_read_dataset(f, "heldout_neurons"),
        neuron_ids=_read_dataset(f, "neuron_ids") if "neuron_ids" in f else None,
        rates=_read_dataset(f, "rates") if "rates" in f else None,
        latents=_read_dataset(f, "latents") if "latents" in f else None,
        provenance=Provenance(**{k: str(f["provenance"].attrs.get(k, ""))
                                 for k in Provenance.__dataclass_fields__}) if "provenance" in f else Provenance(),
    )


# ---------------------------------------------------------------------- validation helpers
def _check_counts(spikes) -> np.ndarray:
    spikes = np.asarray(spikes)
    if spikes.ndim != 3:
        raise DataError("spike counts must be 3-D", field="spikes",
                        expected="(trials, bins, neurons)", found=f"shape {spikes.shape}")
    if spikes.shape[0] == 0:
        raise DataError("dataset has zero trials", field="spikes",
                        expected="at least 1 trial", found=f"shape {spikes.shape}")
    if spikes.shape[1] == 0 or spikes.shape[2] == 0:
        raise DataError("dataset has no bins or no neurons", field="spikes",
                        expected="bins > 0 and neurons > 0", found=f"shape {spikes.shape}")
    if spikes.dtype == bool or not (np.issubdtype(spikes.dtype, np.number)):
        raise DataError("spike counts must be numeric", field="spikes",
                        expected="integer counts", found=f"dtype {spikes.dtype}")
    if np.issubdtype(spikes.dtype, np.floating):
        bad = ~np.isfinite(spikes)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise DataError("spike counts contain NaN or inf", field="spikes",
                            expected="finite counts", found=f"{int(bad.sum())} non-finite values, first at {where}")
        frac = spikes != np.round(spikes)
        if frac.any():
            where = tuple(int(i) for i in np.argwhere(frac)[0])
            raise DataError("spike counts must be whole numbers", field="spikes",
                            expected="integer counts",
                            found=f"{int(frac.sum())} non-integer values, e.g. {spikes[where]} at {where}")
    if spikes.size and spikes.min() < 0:
        where = tuple(int(i) for i in np.argwhere(spikes < 0)[0])
        raise DataError("spike counts must be non-negative", field="spikes",
                        expected="counts >= 0", found=f"{spikes[where]} at {where}")
    if spikes.size and spikes.max() > np.iinfo(np.int32).max:
        raise DataError("spike counts too large", field="spikes", expected="< 2**31", found=str(spikes.max()))
    return spikes.astype(np.int32, copy=False)


def _check_per_bin(values, name: str, n_trials: int, n_bins: int, n_last: int | None = None) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 3:
        raise DataError("per-bin array must be 3-D", field=name,
                        expected=f"({n_trials}, {n_bins}, dims)", found=f"shape {values.shape}")
    expected = (n_trials, n_bins) if n_last is None else (n_trials, n_bins, n_last)
    if values.shape[: len(expected)] != expected:
        shape = "(" + ", ".join(map(str, expected)) + (", dims)" if n_last is None else ")")
        raise DataError("shape does not match the spikes", field=name,
                        expected=shape, found=f"shape {values.shape}")
    if not np.issubdtype(values.dtype, np.number):
        raise DataError("values must be numeric", field=name, expected="float", found=f"dtype {values.dtype}")
    return values


def _check_vector(values, name: str, n: int, dtype, default) -> np.ndarray:
    if values is None:
        return np.broadcast_to(np.asarray(default, dtype=dtype), (n,)).copy()
    values = np.asarray(values)
    if values.shape != (n,):
        raise DataError("one value per neuron required", field=name,
                        expected=f"shape ({n},)", found=f"shape {values.shape}")
    return values.astype(dtype)


def _standard_trial_info(table, n_trials: int) -> pd.DataFrame:
    if table is None:
        table = pd.DataFrame(index=range(n_trials))
    table = pd.DataFrame(table).reset_index(drop=True)
    if len(table) != n_trials:
        raise DataError("one row per trial required", field="trial_info",
                        expected=f"{n_trials} rows", found=f"{len(table)} rows")
    for column, default in TRIAL_COLUMNS.items():
        if column not in table:
            table[column] = np.arange(n_trials) if column == "trial_id" else default
    table["split"] = table["split"].astype(str)
    bad = ~table["split"].isin(SPLITS)
    if bad.any():
        raise DataError("unknown split name", field="trial_info/split",
                        expected=f"one of {SPLITS}", found=repr(sorted(set(table['split'][bad]))))
    table["trial_id"] = table["trial_id"].astype(np.int64)
    table["condition_id"] = table["condition_id"].astype(np.int64)
    table["heldout_condition"] = table["heldout_condition"].astype(bool)
    for column in ("start_x", "start_y", "target_x", "target_y", "reach_angle"):
        table[column] = table[column].astype(np.float64)
    ordered = list(TRIAL_COLUMNS) + [c for c in table.columns if c not in TRIAL_COLUMNS]
    return table[ordered]


def _as_index(selection, n: int, name: str) -> np.ndarray:
    if selection is None:
        return np.arange(n)
    selection = np.asarray(selection)
    if selection.dtype == bool:
        if selection.shape != (n,):
            raise ValueError(f"{name} mask has shape {selection.shape}, expected ({n},)")
        return np.flatnonzero(selection)
    if selection.ndim != 1 or not np.issubdtype(selection.dtype, np.integer):
        raise ValueError(f"{name} must be a bool mask or 1-D integer indices, got {selection.dtype} {selection.shape}")
    if selection.size and (selection.max() >= n or selection.min() < -n):
        raise IndexError(f"{name} index out of range for {n} {name}")
    return selection


def check_shape(path: str | None, field: str, array: np.ndarray, expected: tuple) -> None:
    """Raise a DataError unless ``array`` has ``expected`` shape (None = any size on that axis)."""
    ok = array.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, array.shape))
    if not ok:
        shape = "(" + ", ".join("·" if e is None else str(e) for e in expected) + ")"
        raise DataError("array has the wrong shape", path=path, field=field, expected=shape,
                        found=f"shape {array.shape}")


# ---------------------------------------------------------------------- h5 helpers
def _write(group: h5py.Group, name: str, values: np.ndarray) -> None:
    values = np.asarray(values)
    compress = {"compression": "gzip", "compression_opts": 4, "shuffle": True} if values.ndim and values.size > 64 else {}
    group.create_dataset(name, data=values, **compress)


def _read_dataset(group: h5py.Group, name: str, prefix: str = "") -> np.ndarray:
    if name not in group:
        raise DataError("required field is missing", field=prefix + name)
    item = group[name]
    if not isinstance(item, h5py.Dataset):
        raise DataError("expected an array, found a group", field=prefix + name)
    return item[()]


def _smallest_uint(spikes: np.ndarray):
    top = int(spikes.max()) if spikes.size else 0
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return dtype
    return np.uint64


def _column_to_h5(column: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return column.to_numpy()
    if pd.api.types.is_string_dtype(column) or column.dtype == object:
        try:
            return np.array([str(v) for v in column], dtype=h5py.string_dtype())
        except Exception as err:  # pragma: no cover - defensive
            raise DataError(f"cannot store column: {err}", field=f"trial_info/{name}") from None
    raise DataError("unsupported column type", field=f"trial_info/{name}",
                    expected="numbers, booleans or strings", found=str(column.dtype))


def _column_from_h5(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "OS":
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)
    return values

