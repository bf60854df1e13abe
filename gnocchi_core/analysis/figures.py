"""The report's PNG figures, mirroring the GNOCCHI paper's (McCart et al.), so a run can be judged by eye.

`write_figures` draws codes in PCA space coloured by target (Fig 2), code SNR, per-neuron R² of
generated vs true activity, navigation along the target axes, unintended movement and axis
orthogonality, and held-out-target prediction, with models side by side.

Figures are built as bare `matplotlib.figure.Figure`s rendered by Agg, never through pyplot, so
drawing touches no global matplotlib state (backend, open-figure registry) and needs no display.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ..atomic import atomic_path
from ..data.trialdata import TrialData
from .report import NAVIGATED

if TYPE_CHECKING:
    from .report import ModelEvaluation

ORTHOGONALITY_GOAL = 0.2  # |cos| between the target axes below which they count as disentangled
PANEL = 4.0  # inches per panel


def write_figures(evaluations: list[ModelEvaluation], data: TrialData, out_dir: str | os.PathLike) -> list[Path]:
    """Write the figures of the module docstring into ``out_dir``; return their paths.

    ``heldout_targets.png`` is skipped when no model has held-out-condition predictions.
    """
    builders = {"codes_pca.png": _codes_pca, "code_snr.png": _code_snr, "r2_neurons.png": _r2_neurons,
                "navigation.png": _navigation, "unintended_orthogonality.png": _unintended_orthogonality}
    if any(ev.heldout for ev in evaluations):
        builders["heldout_targets.png"] = _heldout_targets
    paths = []
    for name, build in builders.items():
        fig = build(evaluations, data)
        fig.tight_layout()
        path = Path(out_dir) / name
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        paths.append(path)
    return paths


def _label(variable: str) -> str:
    return variable.replace("_", " ")


def _codes_pca(evaluations: list[ModelEvaluation], data: TrialData) -> Figure:
    held = data.trial_info["heldout_condition"].to_numpy(bool)
    fig = Figure(figsize=(PANEL * len(evaluations), 2 * PANEL))
    for col, ev in enumerate(evaluations):
        for row, variable in enumerate(NAVIGATED):
            ax = fig.add_subplot(2, len(evaluations), row * len(evaluations) + col + 1, projection="3d")
            values = data.trial_info[variable].to_numpy(float)
            limit = np.abs(values).max() or 1.0
            pcs = ev.pcs[:, :3]
            points = ax.scatter(*pcs[~held].T, c=values[~held], cmap="coolwarm", vmin=-limit, vmax=limit, s=8)
            if held.any():
                ax.scatter(*pcs[held].T, c="black", s=8, label="held-out condition")
                ax.legend(loc="upper left", fontsize=7)
            fig.colorbar(points, ax=ax, shrink=0.6, pad=0.2, label=f"{_label(variable)} (cm)")
            ax.set_title(f"{ev.name}: {_label(variable)}")
            for axis, k in zip("xyz", range(3)):
                getattr(ax, f"set_{axis}label")(f"PC{k + 1} ({100 * ev.pc_variance[k]:.0f}%)", fontsize=8)
            ax.tick_params(labelsize=6)
    return fig


def _grouped_bars(ax, evaluations: list[ModelEvaluation], keys: list[str]) -> None:
    """One group of bars per model, one bar per metric key, values written on the bars."""
    width = 0.8 / len(keys)
    x = np.arange(len(evaluations))
    for k, key in enumerate(keys):
        bars = ax.bar(x + (k - (len(keys) - 1) / 2) * width, [ev.metrics[key] for ev in evaluations], width,
                      label=_label(key))
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, [ev.name for ev in evaluations])
    ax.legend(fontsize=8)


def _code_snr(evaluations: list[ModelEvaluation], data: TrialData) -> Figure:
    fig = Figure(figsize=(max(PANEL, 2 * len(evaluations)), PANEL))
    ax = fig.add_subplot()
    _grouped_bars(ax, evaluations, ["code_snr_target_x", "code_snr_target_y"])
    ax.set_ylabel("code SNR along the target axis")
    ax.set_title("Code SNR (held-in test trials)")
    return fig


def _r2_neurons(evaluations: list[ModelEvaluation], data: TrialData) -> Figure:
    fig = Figure(figsize=(PANEL + 0.5, PANEL + 0.5))
    ax = fig.add_subplot()
    shown = evaluations[:2]
    r2 = [np.clip(ev.r2_neurons, -1, 1) for ev in shown]
    if len(shown) == 2:
        ax.scatter(r2[0], r2[1], s=12, alpha=0.7)
        ax.plot([-1, 1], [-1, 1], "k--", lw=1)
        ax.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), aspect="equal",
               xlabel=f"{shown[0].name} R² (clipped to [-1, 1])", ylabel=f"{shown[1].name} R² (clipped to [-1, 1])")
    else:
        ax.hist(r2[0], bins=20, range=(-1, 1))
        ax.set(xlabel=f"{shown[0].name} R² (clipped to [-1, 1])", ylabel="neurons")
    means = ", ".join(f"{ev.name} {ev.metrics['r2_generated']:.2f}" for ev in shown)
    ax.set_title(f"Per-neuron condition-averaged R²\nmean: {means}", fontsize=10)
    return fig


def _draw_targets(ax, data: TrialData) -> None:
    """The target grid as grey crosses, held-out targets as red open circles, on an equal-aspect workspace."""
    info = data.trial_info
    grid = np.unique(info[["target_x", "target_y"]].to_numpy(float), axis=0)
    held = np.unique(info.loc[info["heldout_condition"].astype(bool), ["target_x", "target_y"]].to_numpy(float), axis=0)
    ax.scatter(*grid.T, marker="x", c="grey", s=30, label="targets", zorder=1)
    if len(held):
        ax.scatter(*held.T, marker="o", facecolors="none", edgecolors="red", s=120, label="held-out targets", zorder=1)
    ax.set_aspect("equal")
    ax.set(xlabel="x (cm)", ylabel="y (cm)")


def _navigation(evaluations: list[ModelEvaluation], data: TrialData) -> Figure:
    fig = Figure(figsize=((PANEL + 1) * len(evaluations), 2 * PANEL))
    for col, ev in enumerate(evaluations):
        for row, variable in enumerate(NAVIGATED):
            ax = fig.add_subplot(2, len(evaluations), row * len(evaluations) + col + 1)
            _draw_targets(ax, data)
            nav = ev.navigation[variable]
            colours = ScalarMappable(Normalize(nav["deltas"].min(), nav["deltas"].max()), "viridis")
            ax.add_collection(LineCollection(nav["positions"], colors=colours.to_rgba(nav["deltas"]), lw=1.5))
            ax.scatter(*nav["positions"][:, -1].T, c=colours.to_rgba(nav["deltas"]), s=25, edgecolors="k",
                       linewidths=0.5, zorder=2)
            ax.autoscale_view()
            fig.colorbar(colours, ax=ax, label=f"δ {_label(variable)} (cm)")
            ax.set_title(f"{ev.name}: navigate {_label(variable)}\nslope {ev.metrics[f'nav_slope_{variable}']:.2f}, "
                         f"unintended {ev.metrics[f'unintended_{variable}']:.2f} cm/cm", fontsize=10)
    fig.axes[0].legend(fontsize=7, loc="upper left")
    return fig


def _unintended_orthogonality(evaluations: list[ModelEvaluation], data: TrialData) -> Figure:
    fig = Figure(figsize=(2 * max(PANEL, 2 * len(evaluations)), PANEL))
    left, right = fig.subplots(1, 2)
    _grouped_bars(left, evaluations, ["unintended_target_x", "unintended_target_y"])
    left.set(ylabel="unintended movement (cm per cm commanded)", title="Unintended movement during navigation")
    cosines = [abs(ev.metrics["axis_cos_target_x_target_y"]) for ev in evaluations]
    right.bar_label(right.bar([ev.name for ev in evaluations], cosines, color="tab:purple"), fmt="%.2f", fontsize=7)
    right.axhline(ORTHOGONALITY_GOAL, ls="--", c="k", lw=1, label=f"goal ({ORTHOGONALITY_GOAL})")
    right.set(ylabel="|cos| between target-x and target-y axes", title="Orthogonality of the target axes")
    right.legend(fontsize=8)
    return fig


def _heldout_targets(evaluations: list[ModelEvaluation], data: TrialData) -> Figure:
    fig = Figure(figsize=((PANEL + 0.5) * len(evaluations), PANEL + 0.5))
    for col, ev in enumerate(evaluations):
        ax = fig.add_subplot(1, len(evaluations), col + 1)
        _draw_targets(ax, data)
        if not ev.heldout:
            ax.set_title(f"{ev.name}: no held-out predictions", fontsize=10)
            continue
        true, predicted = ev.heldout["true"], ev.heldout["predicted"]
        _, which = np.unique(true, axis=0, return_inverse=True)
        colours = [f"C{i % 10}" for i in which.ravel()]
        ax.add_collection(LineCollection(np.stack([predicted, true], axis=1), colors=colours, lw=0.6, alpha=0.6))
        ax.scatter(*predicted.T, c=colours, s=10, zorder=2, label="predicted")
        ax.autoscale_view()
        ax.set_title(f"{ev.name}: held-out target error {ev.metrics['heldout_target_error_cm']:.2f} cm", fontsize=10)
    fig.axes[0].legend(fontsize=7, loc="upper left")
    return fig
