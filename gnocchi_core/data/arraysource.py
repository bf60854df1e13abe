"""The arrays of a MATLAB (.mat, v5 to v7.3) or NumPy (.npz) file, by key: ``name``, ``struct.field`` or
``structarray.field`` (one array per element, e.g. per trial). MATLAB's 1×1 wrappers are removed,
v7.3 files (HDF5) are read with h5py and transposed back to MATLAB's axis order."""

from __future__ import annotations

import zipfile
from pathlib import Path

import h5py
import numpy as np

from ..errors import DataError
from .validation import describe, sniff


class ArraySource:
    """The arrays of one file, by key (``name``, ``struct.field``, ``structarray.field``)."""

    def __init__(self, path: Path, fmt: str):
        self.path, self.fmt = path, fmt
        if not path.is_file():
            raise DataError("file not found")
        if fmt == "npz":
            if not zipfile.is_zipfile(path):
                raise DataError("not a NumPy .npz file", expected="a zip of .npy arrays (numpy.savez)",
                                found=sniff(path))
            try:
                self.top = dict(np.load(path, allow_pickle=False))
            except ValueError as err:  # object arrays need pickle, which is refused
                raise DataError(f"cannot be read without pickle ({err}); save plain numeric arrays") from None
            except (OSError, EOFError) as err:
                raise DataError(f"not a NumPy .npz file ({err})") from None
        elif fmt == "mat":
            self.top = _load_mat(path)
        else:
            raise DataError("unknown array format", field="--format", expected="mat or npz", found=repr(fmt))

    def get(self, key: str):
        parts = key.split(".")
        if parts[0] not in self.top:
            raise DataError("not in the file", field=key, expected="one of its variables",
                            found=", ".join(sorted(k for k in self.top if not k.startswith("__"))))
        value = self.top[parts[0]]
        for depth, name in enumerate(parts[1:], 1):
            value = _field(value, name, ".".join(parts[:depth]))
        return _unwrap(value)


def _field(value, name: str, where: str):
    """Field ``name`` of a struct (one value) or of every element of a struct array (a list)."""
    if isinstance(value, dict):
        if name not in value:
            raise DataError("struct has no such field", field=f"{where}.{name}", expected="one of its fields",
                            found=", ".join(sorted(value)))
        return value[name]
    if isinstance(value, list):
        return [_field(v, name, where) for v in value]
    array = np.asarray(value)
    if array.dtype.names is None:
        raise DataError("not a struct", field=where, expected=f"a struct with field '{name}'", found=describe(array))
    if name not in array.dtype.names:
        raise DataError("struct has no such field", field=f"{where}.{name}", expected="one of its fields",
                        found=", ".join(array.dtype.names))
    items = [_unwrap(v) for v in array[name].ravel(order="F")]
    return items[0] if len(items) == 1 else items


def _unwrap(value):
    """MATLAB's 1×1 object wrappers removed; object arrays of arrays become lists (one per trial)."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        items = [_unwrap(v) for v in value.ravel(order="F")]
        return items[0] if len(items) == 1 else items
    return value


def _load_mat(path: Path) -> dict:
    import scipy.io

    if h5py.is_hdf5(path):
        return _load_mat73(path)
    try:
        return scipy.io.loadmat(path)
    except Exception as err:  # scipy raises its own MatReadError, ValueError, TypeError, … for what it cannot parse
        raise DataError(f"not a readable MATLAB file ({type(err).__name__}: {err})") from None


def _load_mat73(path: Path) -> dict:
    """MATLAB v7.3 (HDF5): arrays transposed back to MATLAB's order, chars as strings, structs as dicts,
    struct arrays (object references) as lists."""
    with h5py.File(path, "r") as f:
        return {name: _h5_value(f, item) for name, item in f.items() if not name.startswith("#")}


def _h5_value(f: h5py.File, item):
    if isinstance(item, h5py.Group):
        return {k: _h5_value(f, v) for k, v in item.items()}
    data = item[()]
    if item.dtype.kind == "O" or h5py.check_dtype(ref=item.dtype) is not None:
        return [_h5_value(f, f[ref]) for ref in np.asarray(data).ravel(order="F")]
    if item.attrs.get("MATLAB_class", b"") in (b"char", "char"):
        return "".join(map(chr, np.asarray(data).ravel()))
    return np.asarray(data).T

