"""One validation path for every config (`GnocchiConfig`, `LfadsConfig`, `TrainConfig`) and for the
arguments of the model calls (`encode`, `generate`, `sample_prior`).

A config's field types come from its dataclass annotations (int, float, bool, str, tuple[float, ...],
a nested config); its ranges from a ``RULES`` dict beside it, one entry per field. `from_dict` builds a
config from JSON (unknown fields, wrong types and values out of range are a `ConfigError` naming the
dotted field, e.g. ``train.batch_size``, and the file when given); `check_config` is what a config's
``__post_init__`` runs, so a config built in Python is held to the same rules.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass

import numpy as np

from ..data.validation import ANY, SEED, Range, as_array, as_bool, as_integer, as_number, as_text, describe
from ..errors import ArgumentError, ConfigError, DataError


@dataclass(frozen=True)
class Even:
    """An even integer in ``range`` (sin/cos channel pairs, half-split embeddings)."""

    range: Range = ANY


#: a field's rule: a Range (numbers, integers, a tuple's items), choices (text), Even, or None (any value of its type)
Rule = typing.Union[Range, tuple, Even, None]


# ---------------------------------------------------------------------- configs
def from_dict(cls, params, rules: dict[str, Rule], *, path=None, prefix: str = ""):
    """``cls`` built from a JSON object of field overrides; nested configs (``train``) are JSON objects
    overriding the field's default config."""
    if not isinstance(params, dict):  # (a nested config is checked by the caller, which names its field)
        raise ConfigError("not a config", path=path, expected=f"a JSON object of {cls.__name__} fields",
                          found=describe(params))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in params:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"unknown field; {hint}known fields: {', '.join(fields)}", path=path,
                              field=f"{prefix}{key}")
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in params.items():
        kind = hints[key]
        if dataclasses.is_dataclass(kind) and not isinstance(value, kind):
            if not isinstance(value, dict):
                raise ConfigError(field=f"{prefix}{key}", path=path, expected=f"an object of {kind.__name__} fields",
                                  found=describe(value))
            factory = fields[key].default_factory
            default = kind() if factory is dataclasses.MISSING else factory()  # the model's own (LFADS trains differently)
            value = from_dict(kind, dataclasses.asdict(default) | value, rules[key], path=path, prefix=f"{prefix}{key}.")
        values[key] = _coerce(value, kind, rules.get(key), f"{prefix}{key}", path)
    try:
        return cls(**values)
    except ConfigError as err:  # a check across fields, made by __post_init__
        raise err.with_path(path, field=None if err.field is None else prefix + err.field) from None


def check_config(config, rules: dict[str, Rule]) -> None:
    """Every field of ``config`` of its annotated type and within its rule, canonicalised in place (an
    integral float becomes an int, a list a tuple); a ConfigError otherwise."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        if f.name not in rules:
            raise ConfigError(f"no validation rule for the field (a bug in {type(config).__name__}.RULES)",
                              field=f.name)
        kind = hints[f.name]
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, kind):
                raise ConfigError(field=f.name, expected=f"a {kind.__name__}", found=describe(value))
            continue
        object.__setattr__(config, f.name, _coerce(value, kind, rules[f.name], f.name, None))


def _coerce(value, kind, rule: Rule, field: str, path):
    """``value`` as ``kind`` within ``rule``, or a ConfigError."""
    common = dict(error=ConfigError, path=path)
    if dataclasses.is_dataclass(kind):
        return value
    if kind is bool:
        return as_bool(value, field, **common)
    if kind is int:
        if isinstance(rule, Even):
            number = as_integer(value, field, rule.range, what="an even integer", **common)
            if number % 2:
                raise ConfigError(field=field, path=path, expected=f"an even integer {rule.range.text(True)}",
                                  found=describe(value))
            return number
        return as_integer(value, field, rule or ANY, **common)
    if kind is float:
        return as_number(value, field, rule or ANY, **common)
    if kind is str:
        return as_text(value, field, rule if isinstance(rule, tuple) else None, **common)
    if typing.get_origin(kind) is tuple:
        expected = f"a non-empty list of numbers {(rule or ANY).text()}".strip()
        if not isinstance(value, (list, tuple)) or not value:
            raise ConfigError(field=field, path=path, expected=expected, found=describe(value))
        for item in value:
            if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, float)) or not math.isfinite(item) \
                    or float(item) not in (rule or ANY):
                raise ConfigError(field=field, path=path, expected=expected, found=describe(list(value)))
        return tuple(float(v) for v in value)
    raise TypeError(f"no validation for {field}: {kind}")  # pragma: no cover - a new annotation kind


# ---------------------------------------------------------------------- call arguments
def check_seed(seed, name: str = "seed") -> int | None:
    """None, or an integer in 0..2**32-1 (what numpy, torch and scikit-learn all take)."""
    return None if seed is None else as_integer(seed, name, SEED, error=ArgumentError)


def check_count(n, name: str = "n") -> int:
    """A number of trials or codes to make: an integer ≥ 1."""
    return as_integer(n, name, Range(1), error=ArgumentError)


def check_steps(steps, most: int | None = None) -> int | None:
    """None (the model's default), or sampling steps in 1..``most``."""
    return None if steps is None else as_integer(steps, "steps", Range(1, most), error=ArgumentError)


def check_guidance(guidance) -> float | None:
    """None (the model's default), or a finite guidance scale ≥ 0 (1 = none)."""
    return None if guidance is None else as_number(guidance, "guidance", Range(0), error=ArgumentError)


def check_choice(value, name: str, choices: tuple[str, ...], what: str) -> str:
    """``value``, one of ``choices`` (``what``: how the message calls it, e.g. 'prior')."""
    if not isinstance(value, str) or value not in choices:
        raise ArgumentError(f"unknown {what} {value!r}: choose {' or '.join(repr(c) for c in choices)}", field=name)
    return value


def check_codes(codes, code_dim: int) -> np.ndarray:
    """Codes as a float32 (n, code_dim) array (one 1-D code becomes one row): finite, at least one."""
    array = as_array(codes, "codes")
    if array.dtype.kind not in "iuf":
        raise DataError("codes must be real numbers", field="codes", expected="a float array",
                        found=f"dtype {array.dtype}")
    if array.ndim == 2 and len(array) == 0:
        raise DataError("no codes given", field="codes", expected=f"at least one code, shape (n ≥ 1, {code_dim})",
                        found=f"shape {array.shape}")
    if array.ndim not in (1, 2) or array.shape[-1] != code_dim:
        raise DataError(f"codes must have {code_dim} dimensions", field="codes",
                        expected=f"shape (n ≥ 1, {code_dim}) or ({code_dim},)", found=f"shape {array.shape}")
    array = np.atleast_2d(array.astype(np.float32))
    bad = ~np.isfinite(array)
    if bad.any():
        raise DataError("codes must be finite", field="codes", expected="finite numbers",
                        found=f"{int(bad.sum())} NaN or inf values, first in code {int(np.argwhere(bad)[0][0])}")
    return array


def check_noise(noise, shape: tuple[int, ...], what: str) -> np.ndarray:
    """An explicit noise (or input) array of ``shape``: finite real numbers, as float32."""
    array = as_array(noise, "noise")
    if array.dtype.kind not in "iuf" or tuple(array.shape) != tuple(shape):
        raise DataError(f"noise must have shape {shape} ({what})", field="noise", expected=f"a float array {shape}",
                        found=f"shape {tuple(array.shape)}, dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise DataError("noise must be finite", field="noise", expected="finite numbers", found="NaN or inf")
    return array.astype(np.float32)
