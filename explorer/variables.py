"""Trial variables as the explorer reads them: what the codes can be coloured by, which columns are
continuous enough to navigate along, and how each is labelled.

Pure functions of the `trial_info` table (plain pandas / numpy), tested without a browser.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gnocchi_core.analysis.decoding import VARIABLES

REACH_FIRST = ("target_x", "target_y", "start_x", "start_y", "reach_angle", "condition_id")  # colour order
NOT_COLOURS = ("heldout_condition",)  # held-out-condition trials are drawn as crosses, never coloured
IDENTIFIERS = ("trial_id", "condition_id", "heldout_condition", "split")
MAX_CATEGORIES = 50  # a text column with more distinct values (e.g. a per-trial label) colours nothing useful
MIN_DISTINCT = 3  # a column navigated along takes at least this many distinct values
LABELS = {"start_x": "start x (cm)", "start_y": "start y (cm)", "target_x": "target x (cm)",
          "target_y": "target y (cm)", "reach_angle": "reach angle (rad)", "condition_id": "condition",
          "trial_id": "trial"}


def label(name: str) -> str:
    """How a trial variable or a navigation axis is named on screen."""
    if name in LABELS:
        return LABELS[name]
    if name.startswith("pc") and name[2:].isdigit():
        return f"PC {name[2:]} shift (s.d.)"
    if name.startswith("cond") and name[4:].isdigit():
        return f"condition axis {name[4:]} (s.d.)"
    return name


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _categories(column: pd.Series, n_trials: int) -> list[str] | None:
    """The sorted distinct values of a text column that groups trials (2..`MAX_CATEGORIES`, fewer than the
    trials), else None."""
    if _numeric(column):
        return None
    values = column.dropna().astype(str)
    distinct = sorted(set(values))
    return distinct if 2 <= len(distinct) <= min(MAX_CATEGORIES, max(n_trials - 1, 2)) else None


def colour_options(info: pd.DataFrame) -> list[str]:
    """Every column the codes can be coloured by: numeric with two or more distinct finite values, or text
    that groups trials (a condition name, the split), as integer codes; the reach variables first."""
    found = []
    for name in info.columns:
        if name in NOT_COLOURS:
            continue
        column = info[name]
        if _numeric(column):
            values = column.to_numpy(dtype=np.float64)
            if len(np.unique(values[np.isfinite(values)])) >= 2:
                found.append(name)
        elif _categories(column, len(info)) is not None:
            found.append(name)
    return sorted(found, key=lambda n: (REACH_FIRST.index(n) if n in REACH_FIRST else len(REACH_FIRST)))


def colour_values(info: pd.DataFrame, name: str) -> np.ndarray:
    """One float per trial to colour by: the values, or a text column's category index (NaN where missing)."""
    column = info[name]
    if _numeric(column):
        return column.to_numpy(dtype=np.float64)
    names = category_names(info, name) or []
    index = {value: k for k, value in enumerate(names)}
    return np.array([index.get(str(v), np.nan) if pd.notna(v) else np.nan for v in column], dtype=np.float64)


def category_names(info: pd.DataFrame, name: str) -> list[str] | None:
    """The category each integer code of a text column stands for (None for a numeric column)."""
    return _categories(info[name], len(info))


def navigable_columns(info: pd.DataFrame, rows: np.ndarray) -> list[str]:
    """Trial variables other than the reach variables that a slider can move along: numeric (not boolean,
    not an identifier such as ``*_id`` / ``*_index``), with `MIN_DISTINCT` or more distinct finite values on
    the ``rows`` the axes are fitted on."""
    found = []
    for name in info.columns:
        column = info[name]
        if (name in VARIABLES or name in IDENTIFIERS or name.endswith(("_id", "_index"))
                or not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
            continue
        values = column.to_numpy(dtype=np.float64)[rows]
        if len(np.unique(values[np.isfinite(values)])) >= MIN_DISTINCT:
            found.append(name)
    return found
