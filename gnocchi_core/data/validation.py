"""Checks at the API boundary: scalars (numbers, integers, flags, names) and the arrays of a `TrialData`.

Every check returns the value in its canonical type or raises a `GnocchiValueError` subclass (a
`ValueError`; `DataError` unless the caller passes another ``error`` class) naming the field and
what was expected versus found; never a raw TypeError, KeyError or a silently converted value.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError

#: the standard per-trial columns' kinds (the values themselves are in `trialdata.TRIAL_COLUMNS`)
INTEGER_COLUMNS = ("trial_id", "condition_id")
FLOAT_COLUMNS = ("start_x", "start_y", "target_x", "target_y", "reach_angle")


# ---------------------------------------------------------------------- describing what was found
def describe(value) -> str:
    """How a message shows a value it refuses: short reprs of scalars, the kind and size of containers."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}, dtype {value.dtype}"
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return "null (None)"
    if isinstance(value, dict):
        text = f"an object {value!r}"
    elif isinstance(value, (list, tuple)) and any(isinstance(v, np.ndarray) for v in value):
        text = f"a list of {len(value)} arrays"
    elif isinstance(value, (list, tuple)):
        text = f"a list {list(value)!r}"
    elif isinstance(value, (bool, int, float, complex, str, bytes)):
        text = repr(value)
    else:
        text = f"a {type(value).__name__}"
    text = " ".join(text.split())  # one line
    return text if len(text) <= 80 else text[:77] + "..."


def sniff(path) -> str:
    """What a file that is not what it should be holds: its size and first bytes."""
    with open(path, "rb") as f:
        head = f.read(16)
    return f"{os.path.getsize(path)} bytes starting {head!r}"


# ---------------------------------------------------------------------- scalars
@dataclass(frozen=True)
class Range:
    """Bounds a number must lie within; ``None`` = unbounded on that side."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, x: float) -> bool:
        if self.low is not None and (x <= self.low if self.low_open else x < self.low):
            return False
        return not (self.high is not None and (x >= self.high if self.high_open else x > self.high))

    def text(self, integer: bool = False) -> str:
        fmt = lambda v: f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
        if self.low is not None and self.high is not None:
            if integer and not (self.low_open or self.high_open):
                return f"in {fmt(self.low)}..{fmt(self.high)}"
            return f"in {'(' if self.low_open else '['}{fmt(self.low)}, {fmt(self.high)}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '≥'} {fmt(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '≤'} {fmt(self.high)}"
        return ""


ANY = Range()
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, low_open=True)
FRACTION = Range(0, 1, high_open=True)  # [0, 1)
UNIT = Range(0, 1)  # [0, 1]
SEED = Range(0, 2**32 - 1)  # what numpy, torch and scikit-learn all accept


def at_least(n: int) -> Range:
    return Range(n)


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _fail(error, message, field, path, expected, value):
    return error(message, path=path, field=field, expected=expected, found=describe(value))


def as_integer(value, field: str, rng: Range = ANY, *, error=DataError, path=None, message: str = "",
               what: str = "an integer") -> int:
    """``value`` as an int (a float that is a whole number counts), else the error."""
    expected = f"{what} {rng.text(integer=True)}".strip()
    if not _is_real(value) or not math.isfinite(value) or float(value) != int(value):
        raise _fail(error, message, field, path, expected, value)
    value = int(value)
    if value not in rng:
        raise _fail(error, message, field, path, expected, value)
    return value


def as_number(value, field: str, rng: Range = ANY, *, error=DataError, path=None, message: str = "") -> float:
    """``value`` as a finite float, else the error."""
    expected = f"a finite number {rng.text()}".strip() if rng == ANY else f"a number {rng.text()}"
    if not _is_real(value) or not math.isfinite(value) or float(value) not in rng:
        raise _fail(error, message, field, path, expected, value)
    return float(value)


def as_bool(value, field: str, *, error=DataError, path=None, message: str = "") -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise _fail(error, message, field, path, "true or false", value)
    return bool(value)


def as_text(value, field: str, choices: tuple[str, ...] | None = None, *, error=DataError, path=None,
            message: str = "") -> str:
    """``value`` as a str, one of ``choices`` when given."""
    if not isinstance(value, str):
        raise _fail(error, message, field, path, "text" if choices is None else f"one of {choices}", value)
    if choices is not None and value not in choices:
        raise error(f"must be one of {choices}, found {value!r}", path=path, field=field)
    return value


# ---------------------------------------------------------------------- arrays
def as_array(values, field: str, *, path=None) -> np.ndarray:
    """``np.asarray(values)``, with ragged or unconvertible input a DataError."""
    try:
        return np.asarray(values)
    except (ValueError, TypeError) as err:
        raise DataError(f"cannot be read as an array ({' '.join(str(err).split())[:120]})", path=path,
                        field=field) from None


def check_real(values: np.ndarray, field: str, *, allow_nan: bool = False, path=None) -> np.ndarray:
    """Real numbers (no bools, complex, strings or objects); finite, or NaN (missing) when ``allow_nan``."""
    if values.dtype.kind not in "iuf":
        raise DataError("values must be real numbers", path=path, field=field,
                        expected="an integer or float array", found=f"dtype {values.dtype}")
    if values.dtype.kind == "f":
        bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise DataError("values must be finite" + (" (NaN marks a missing value)" if allow_nan else ""),
                            path=path, field=field, expected="finite numbers" + (" or NaN" if allow_nan else ""),
                            found=f"{int(bad.sum())} {'infinite' if allow_nan else 'NaN or inf'} values, "
                                  f"first {values[where]} at {where}")
    return values


def check_counts(spikes, field: str = "spikes", *, path=None) -> np.ndarray:
    """Non-negative whole spike counts (trials, bins, neurons), at least one of each, as int32."""
    spikes = as_array(spikes, field, path=path)
    if spikes.ndim != 3:
        raise DataError("spike counts must be 3-D", path=path, field=field,
                        expected="(trials, bins, neurons)", found=f"shape {spikes.shape}")
    if spikes.shape[0] == 0:
        raise DataError("dataset has zero trials", path=path, field=field,
                        expected="at least 1 trial", found=f"shape {spikes.shape}")
    if spikes.shape[1] == 0 or spikes.shape[2] == 0:
        raise DataError("dataset has no bins or no neurons", path=path, field=field,
                        expected="bins > 0 and neurons > 0", found=f"shape {spikes.shape}")
    if spikes.dtype.kind not in "iuf":
        raise DataError("spike counts must be numeric", path=path, field=field,
                        expected="integer counts", found=f"dtype {spikes.dtype}")
    if spikes.dtype.kind == "f":
        bad = ~np.isfinite(spikes)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise DataError("spike counts contain NaN or inf", path=path, field=field, expected="finite counts",
                            found=f"{int(bad.sum())} non-finite values, first at {where}")
        frac = spikes != np.round(spikes)
        if frac.any():
            where = tuple(int(i) for i in np.argwhere(frac)[0])
            raise DataError("spike counts must be whole numbers", path=path, field=field, expected="integer counts",
                            found=f"{int(frac.sum())} non-integer values, e.g. {spikes[where]} at {where}")
    if spikes.min() < 0:
        where = tuple(int(i) for i in np.argwhere(spikes < 0)[0])
        raise DataError("spike counts must be non-negative", path=path, field=field,
                        expected="counts >= 0", found=f"{spikes[where]} at {where}")
    if spikes.max() > np.iinfo(np.int32).max:
        raise DataError("spike counts too large", path=path, field=field, expected="< 2**31", found=str(spikes.max()))
    return spikes.astype(np.int32, copy=False)


def check_per_bin(values, name: str, n_trials: int, n_bins: int, n_last: int | None = None, *,
                  allow_nan: bool = True) -> np.ndarray:
    """A (trials, bins, dims) array of real numbers matching the spikes."""
    values = as_array(values, name)
    if values.ndim != 3:
        raise DataError("per-bin array must be 3-D", field=name,
                        expected=f"({n_trials}, {n_bins}, dims)", found=f"shape {values.shape}")
    expected = (n_trials, n_bins) if n_last is None else (n_trials, n_bins, n_last)
    if values.shape[: len(expected)] != expected:
        shape = "(" + ", ".join(map(str, expected)) + (", dims)" if n_last is None else ")")
        raise DataError("shape does not match the spikes", field=name,
                        expected=shape, found=f"shape {values.shape}")
    if not np.issubdtype(values.dtype, np.number) or values.dtype.kind == "c":
        raise DataError("values must be numeric", field=name, expected="float", found=f"dtype {values.dtype}")
    return check_real(values, name, allow_nan=allow_nan)


def check_vector(values, name: str, n: int, dtype, default) -> np.ndarray:
    """One value per neuron: booleans (or 0/1) when ``dtype`` is bool, else whole numbers."""
    if values is None:
        return np.broadcast_to(np.asarray(default, dtype=dtype), (n,)).copy()
    values = as_array(values, name)
    if values.shape != (n,):
        raise DataError("one value per neuron required", field=name,
                        expected=f"shape ({n},)", found=f"shape {values.shape}")
    if dtype is bool:
        if values.dtype != bool and not (values.dtype.kind in "iuf" and np.isin(values, (0, 1)).all()):
            raise DataError("values must be booleans", field=name, expected="true/false (or 0/1) per neuron",
                            found=f"dtype {values.dtype}" + (f", values {np.unique(values)[:5].tolist()}"
                                                            if values.dtype.kind in "iuf" else ""))
    elif values.dtype.kind not in "iu" and not (values.dtype.kind == "f" and np.isfinite(values).all()
                                              and (values == np.round(values)).all()):
        raise DataError("values must be whole numbers", field=name, expected="integers", found=f"dtype {values.dtype}")
    return values.astype(dtype)


def standard_columns(table: pd.DataFrame, n_trials: int) -> pd.DataFrame:
    """The standard per-trial columns (present, see `trialdata.TRIAL_COLUMNS`) in their types."""
    for column in INTEGER_COLUMNS:
        table[column] = _column(table[column], column, "i")
    table["heldout_condition"] = _column(table["heldout_condition"], "heldout_condition", "b")
    for column in FLOAT_COLUMNS:
        table[column] = _column(table[column], column, "f")
    return table


def _column(column: pd.Series, name: str, kind: str) -> np.ndarray:
    field = f"trial_info/{name}"
    values = column.to_numpy()
    if values.dtype == object:  # e.g. numbers and None mixed; strings stay refused
        missing = [v is None or v is pd.NA for v in values]
        odd = [v for v, m in zip(values, missing) if not (m or _is_real(v) or isinstance(v, (bool, np.bool_)))]
        if odd:
            raise DataError("values must be numbers", field=field, expected="numbers", found=describe(odd[0]))
        if kind == "b" and not any(missing) and all(isinstance(v, (bool, np.bool_)) for v in values):
            values = values.astype(bool)
        else:
            values = np.array([np.nan if m else float(v) for v, m in zip(values, missing)], dtype=np.float64)
    if kind == "b":
        if values.dtype == bool:
            return values
        if values.dtype.kind in "iuf" and np.isin(values, (0, 1)).all():
            return values.astype(bool)
        raise DataError("values must be booleans", field=field, expected="true/false (or 0/1) per trial",
                        found=f"dtype {values.dtype}")
    if values.dtype.kind not in "iuf":
        raise DataError("values must be numbers", field=field, expected="numbers", found=f"dtype {values.dtype}")
    if kind == "i":
        whole = values.dtype.kind in "iu" or (np.isfinite(values).all() and (values == np.round(values)).all())
        if not whole:
            raise DataError("values must be whole numbers (-1 for unknown)", field=field, expected="integers",
                            found=f"{values[np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))[0]]}")
        return values.astype(np.int64)
    if np.isinf(values).any():
        raise DataError("values must be finite (NaN for unknown)", field=field, expected="finite numbers or NaN",
                        found="inf")
    return values.astype(np.float64)


def check_shape(path: str | None, field: str, array: np.ndarray, expected: tuple) -> None:
    """Raise a DataError unless ``array`` has ``expected`` shape (None = any size on that axis)."""
    ok = array.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, array.shape))
    if not ok:
        shape = "(" + ", ".join("·" if e is None else str(e) for e in expected) + ")"
        raise DataError("array has the wrong shape", path=path, field=field, expected=shape,
                        found=f"shape {array.shape}")
