"""Pieces every report figure is drawn with: bare Agg figures, bars with "n/a" marks, footnotes giving
why a metric is undefined, target markers and PCA axes. `figures.py` composes them into the figures."""

from __future__ import annotations

import math
import textwrap

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..data.trialdata import TrialData
from .evaluation import ModelEvaluation

PANEL = 4.0  # inches per panel
NA = "n/a"
LIGHT = 0.4  # alpha of the secondary ("lighter") bar of a pair
NAV_CMAP = "viridis"



def variable_label(variable: str) -> str:
    return variable.replace("_", " ")


def metric_value(ev: ModelEvaluation, key: str) -> float | None:
    """The metric as a finite float, or None when it is undefined (None, missing or not finite)."""
    value = ev.metrics.get(key)
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def metric_text(ev: ModelEvaluation, key: str, unit: str = "", digits: int = 2) -> str:
    """The metric formatted, with `` unit`` when given; "n/a" (no unit) when it is undefined."""
    value = metric_value(ev, key)
    return NA if value is None else f"{value:.{digits}f}" + (f" {unit}" if unit else "")


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def footnote(fig: Figure, evaluations: list[ModelEvaluation], keys: list[str], max_lines: int = 8) -> None:
    """Below the panels, why each of ``keys`` shown as n/a is undefined (keys sharing a reason grouped)."""
    notes = []
    for ev in evaluations:
        reasons: dict[str, list[str]] = {}
        for key in keys:
            if metric_value(ev, key) is None:
                reasons.setdefault(ev.why.get(key, "not computed"), []).append(variable_label(key))
        notes += [f"{ev.name}, {', '.join(names)}: {reason}" for reason, names in reasons.items()]
    if not notes:
        return
    width_in, height_in = fig.get_size_inches()
    chars = max(40, int(width_in * 15))
    lines = []
    for note in [f"{NA} = undefined:"] + notes:
        lines += textwrap.wrap(note, chars, subsequent_indent="    ")
    if len(lines) > max_lines:
        lines = lines[:max_lines - 1] + ["… (every reason is in report.md)"]
    extra = len(lines) * 0.14 + 0.1  # inches added below the panels, which keep their size
    fig.set_size_inches(width_in, height_in + extra)
    fraction = extra / (height_in + extra)
    fig.get_layout_engine().set(rect=(0, fraction, 1, 1 - fraction))
    fig.text(0.01, fraction - 0.04 / (height_in + extra), "\n".join(lines), va="top", ha="left", fontsize=7,
             color="dimgrey")


def draw_bars(ax, evaluations: list[ModelEvaluation], series: list[tuple[str, str, str, float]]) -> None:
    """One group per model, one bar per ``(metric key, legend label, colour, alpha)``, values written
    on the bars; an undefined metric gets no bar but a grey "n/a" where it would stand."""
    width = 0.8 / len(series)
    x = np.arange(len(evaluations))
    handles = []
    for k, (key, label, colour, alpha) in enumerate(series):
        where = x + (k - (len(series) - 1) / 2) * width
        values = [metric_value(ev, key) for ev in evaluations]
        shown = [i for i, value in enumerate(values) if value is not None]
        if shown:
            bars = ax.bar(where[shown], [values[i] for i in shown], width, color=colour, alpha=alpha,
                          edgecolor=colour, linewidth=0.8)
            ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
        for i, value in enumerate(values):
            if value is None:
                ax.text(where[i], 0, NA, ha="center", va="bottom", rotation=90, fontsize=7, color="dimgrey")
        handles.append(Patch(facecolor=colour, alpha=alpha, edgecolor=colour, label=label))
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(x, [ev.name for ev in evaluations])
    ax.set_xlim(-0.6, len(evaluations) - 0.4)
    ax.margins(y=0.15)
    ax.legend(handles=handles, fontsize=7)


def draw_targets(ax, data: TrialData, what: str) -> list:
    """The target grid as grey crosses, held-out targets as red open circles, on an equal-aspect
    workspace whose axes are labelled "``what`` x/y (cm)". Returns the legend handles."""
    info = data.trial_info
    grid = np.unique(info[["target_x", "target_y"]].to_numpy(float), axis=0)
    held = np.unique(info.loc[info["heldout_condition"].astype(bool), ["target_x", "target_y"]].to_numpy(float), axis=0)
    handles = [ax.scatter(*grid.T, marker="x", c="grey", s=30, label="grid targets", zorder=1)]
    if len(held):
        handles.append(ax.scatter(*held.T, marker="o", facecolors="none", edgecolors="red", s=120,
                                  label="held-out targets", zorder=1))
    ax.set_aspect("equal", adjustable="datalim")
    ax.set(xlabel=f"{what} x (cm)", ylabel=f"{what} y (cm)")
    return handles


def empty_panel(ax, message: str, ticks: bool = True) -> None:
    """``message`` in grey in the middle of ``ax``; ``ticks=False`` removes its ticks (not on shared axes)."""
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="dimgrey")
    if not ticks:
        ax.set_xticks([])
        ax.set_yticks([])


# ---------------------------------------------------------------------- figures

def top3(ev: ModelEvaluation) -> tuple[np.ndarray, np.ndarray]:
    """The codes' top-3 principal components (n, 3) and explained-variance ratios (3,), zeros beyond a
    code of fewer than 3 dimensions."""
    pcs, variance = np.zeros((len(ev.pcs), 3)), np.zeros(3)
    pcs[:, :min(3, ev.pcs.shape[1])] = ev.pcs[:, :3]
    variance[:min(3, len(ev.pc_variance))] = ev.pc_variance[:3]
    return pcs, variance


def pc_labels(ax, variance: np.ndarray) -> None:
    for axis, k in zip("xyz", range(3)):
        getattr(ax, f"set_{axis}label")(f"PC{k + 1}, code units ({100 * variance[k]:.0f}% var.)", fontsize=7)
    ax.tick_params(labelsize=6)
