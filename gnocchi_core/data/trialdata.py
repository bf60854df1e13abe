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
from .validation import (POSITIVE, as_number, as_text, check_counts, check_per_bin, check_shape,  # noqa: F401
                         check_vector, describe, standard_columns)

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
        self.spikes = check_counts(self.spikes)
        n_trials, n_bins, n_neurons = self.spikes.shape
        self.bin_ms = as_number(self.bin_ms, "bin_ms", POSITIVE, message="bin width must be a positive number of ms")
        self.t0_ms = as_number(self.t0_ms, "t0_ms", message="time of the first bin must be a finite number of ms")
        self.align_event = as_text(self.align_event, "align_event", message="must be the name of an event")
        self.trial_info = _standard_trial_info(self.trial_info, n_trials)
        self.heldout_neurons = check_vector(self.heldout_neurons, "heldout_neurons", n_neurons, bool, default=False)
        self.neuron_ids = check_vector(self.neuron_ids, "neuron_ids", n_neurons, np.int64, default=np.arange(n_neurons))
        for name, mapping in (("behavior", self.behavior), ("behavior_units", self.behavior_units)):
            if not isinstance(mapping, dict) or not all(isinstance(k, str) for k in mapping):
                raise DataError("must map names to values", field=name, expected="a dict with str keys",
                                found=describe(mapping))
        self.behavior = {name: check_per_bin(values, f"behavior/{name}", n_trials, n_bins)
                         for name, values in self.behavior.items()}
        unknown_units = set(self.behavior_units) - set(self.behavior)
        if unknown_units:
            raise DataError("units given for behaviour that is not present", field="behavior_units",
                            expected=f"a subset of {sorted(self.behavior)}", found=sorted(unknown_units))
        for name, unit in self.behavior_units.items():
            as_text(unit, f"behavior_units/{name}", message="a unit must be text, e.g. 'cm'")
        if self.rates is not None:
            self.rates = check_per_bin(self.rates, "rates", n_trials, n_bins, n_neurons, allow_nan=False)
            if np.any(self.rates < 0):
                raise DataError("rates must be non-negative", field="rates",
                                expected=">= 0", found=f"min {np.nanmin(self.rates):.3g}")
        if self.latents is not None:
            self.latents = check_per_bin(self.latents, "latents", n_trials, n_bins)
        if not isinstance(self.provenance, Provenance):
            raise DataError("must be a Provenance", field="provenance", expected="Provenance(...)",
                            found=describe(self.provenance))

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
    except (TypeError, ValueError) as err:  # a value h5py cannot decode (an unsupported dtype)
        raise DataError(f"holds a value that cannot be read ({type(err).__name__}: {err})", path=path) from None


def _read(f: h5py.File) -> TrialData:
    fmt = _attr(f, "format")
    if not isinstance(fmt, str) or fmt != FILE_FORMAT:
        raise DataError("not a GNOCCHI dataset (use `gnocchi data import` for NWB / NLB / lfads files)",
                        field="format", expected=repr(FILE_FORMAT), found=describe(fmt))
    version = _attr(f, "schema_version", -1)
    if not (isinstance(version, (int, np.integer)) and not isinstance(version, (bool, np.bool_))) \
            or version != SCHEMA_VERSION:
        raise DataError("unsupported schema version", field="schema_version",
                        expected=str(SCHEMA_VERSION), found=describe(version))
    for key in ("spikes", "trial_info", "heldout_neurons"):
        if key not in f:
            raise DataError("required field is missing", field=key)
    for key in ("bin_ms", "t0_ms"):
        if key not in f.attrs:
            raise DataError("required attribute is missing", field=key)
    info_group, behavior_group = _group(f, "trial_info"), _group(f, "behavior", required=False)
    columns = _attr(info_group, "columns", None)
    columns = list(info_group.keys()) if columns is None else columns
    if not (isinstance(columns, (list, np.ndarray)) and np.ndim(columns) == 1
            and all(isinstance(c, (str, bytes)) for c in columns)):
        raise DataError("must list the column names", field="trial_info/columns", expected="a list of names",
                        found=describe(columns))
    table = {c: _read_dataset(info_group, c, "trial_info/") for c in (_text(c) for c in columns)}
    for c, values in table.items():
        if values.ndim != 1 or len(values) != len(next(iter(table.values()))):
            raise DataError("a column must hold one value per trial", field=f"trial_info/{c}",
                            expected=f"shape ({len(next(iter(table.values())))},)", found=f"shape {values.shape}")
    behavior, units = {}, {}
    for name, dset in behavior_group.items():
        behavior[name] = _read_dataset(behavior_group, name, "behavior/")
        if _attr(dset, "units", ""):
            units[name] = _attr(dset, "units")
    return TrialData(
        spikes=_read_dataset(f, "spikes"),
        bin_ms=_attr(f, "bin_ms"),
        t0_ms=_attr(f, "t0_ms"),
        align_event=_attr(f, "align_event", "move_onset"),
        trial_info=pd.DataFrame({c: _column_from_h5(v) for c, v in table.items()}),
        behavior=behavior,
        behavior_units=units,
        heldout_neurons=_read_dataset(f, "heldout_neurons"),
        neuron_ids=_read_dataset(f, "neuron_ids") if "neuron_ids" in f else None,
        rates=_read_dataset(f, "rates") if "rates" in f else None,
        latents=_read_dataset(f, "latents") if "latents" in f else None,
        provenance=Provenance(**{k: str(_attr(f["provenance"], k, ""))
                                 for k in Provenance.__dataclass_fields__}) if "provenance" in f else Provenance(),
    )


def _attr(obj, name: str, default=None):
    """An HDF5 attribute, byte strings decoded, 0-d arrays as scalars."""
    value = obj.attrs.get(name, default)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    return _text(value) if isinstance(value, bytes) else value


def _text(value):
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _group(f: h5py.File, name: str, required: bool = True) -> h5py.Group | dict:
    if name not in f:
        if required:
            raise DataError("required field is missing", field=name)
        return {}
    if not isinstance(f[name], h5py.Group):
        raise DataError("expected a group of arrays, found an array", field=name)
    return f[name]


# ---------------------------------------------------------------------- validation helpers
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
    table = standard_columns(table, n_trials)
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

