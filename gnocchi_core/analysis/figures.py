"""The report's PNG figures, mirroring the GNOCCHI paper's (McCart et al.), so a run can be judged by eye.

`write_figures` draws, with models side by side (`evaluation.ModelEvaluation`s):

- ``codes_pca.png``: codes of every trial on their top-3 principal axes, coloured by target x / y (Fig 2);
- ``code_snr.png``: code SNR per target coordinate, along the discriminant direction (dark) and the
  behaviour axis (light);
- ``r2_neurons.png``: histogram per model of the per-neuron R² of condition-averaged generated vs true
  rates (silent neurons, whose R² is NaN, left out);
- ``navigation.png``: per model and target coordinate, the hand paths decoded while the code is stepped
  along that target's axis, coloured by the commanded target, and below each, the decoded target
  against the commanded one with the identity line (Fig 3);
- ``unintended_orthogonality.png``: leakage and unintended movement during navigation; |cos| between
  the target axes on whitened codes beside the |cos| expected for random axes;
- ``heldout_targets.png``: targets of held-out conditions predicted from codes (when any model has them).

The neural evaluation (``scope`` 'neural': condition labels, no kinematics) draws only what applies:
``codes_pca.png`` coloured by condition, ``code_snr.png`` of ``code_snr_condition`` and ``r2_neurons.png``.

A metric may be None (undefined): its title shows "n/a", its bar is left out (an "n/a" mark stands in
its place), and the figure's footnote gives the reason from ``ModelEvaluation.why``.

Figures are built as bare `matplotlib.figure.Figure`s rendered by Agg, never through pyplot, so
drawing touches no global matplotlib state (backend, open-figure registry) and needs no display.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from ..atomic import atomic_path
from ..data.trialdata import TrialData
from .decoding import VARIABLES
from .evaluation import NAVIGATED, ModelEvaluation
from .figure_parts import (LIGHT, NA, NAV_CMAP, PANEL, draw_bars, draw_targets, empty_panel, footnote, metric_text,
                           metric_value, new_figure, pc_labels, top3, variable_label)

def write_figures(evaluations: list[ModelEvaluation], data: TrialData, out_dir: str | os.PathLike) -> list[Path]:
    """Write the figures of the module docstring into ``out_dir``; return their paths.

    ``heldout_targets.png`` is skipped when no model has held-out-condition predictions, the
    navigation and orthogonality figures when no model was navigated (a recording without a grid or
    without kinematics).
    """
    neural = any(ev.scope == "neural" for ev in evaluations)
    builders = {"codes_pca.png": _codes_by_condition if neural else _codes_pca, "code_snr.png": _code_snr,
                "r2_neurons.png": _r2_neurons}
    if any(ev.navigation for ev in evaluations):
        builders.update({"navigation.png": _navigation, "unintended_orthogonality.png": _unintended_orthogonality})
    if any(ev.heldout for ev in evaluations):
        builders["heldout_targets.png"] = _heldout_targets
    paths = []
    for name, build in builders.items():
        fig = build(evaluations, data)  # constrained layout: laid out when saved
        path = Path(out_dir) / name
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------- helpers

def _codes_pca(evaluations: list[ModelEvaluation], data: TrialData) -> Figure:
    held = data.trial_info["heldout_condition"].to_numpy(bool)
    n = len(evaluations)
    fig = new_figure(PANEL * n + 0.5, 2 * PANEL + 0.8)
    for col, ev in enumerate(evaluations):
        pcs, variance = top3(ev)
        for row, variable in enumerate(NAVIGATED):
            ax = fig.add_subplot(2, n, row * n + col + 1, projection="3d")
            values = data.trial_info[variable].to_numpy(float)
            limit = np.nanmax(np.abs(values)) or 1.0
            points = ax.scatter(*pcs[~held].T, c=values[~held], cmap="coolwarm", vmin=-limit, vmax=limit, s=8)
            if held.any():
                ax.scatter(*pcs[held].T, c="black", marker="x", s=14, label="held-out targets' trials")
                ax.legend(loc="upper left", fontsize=7)
            fig.colorbar(points, ax=ax, shrink=0.6, pad=0.12, label=f"trial's {variable_label(variable)} (cm)")
            ax.set_title(f"{ev.name}: coloured by {variable_label(variable)}", fontsize=10)
            pc_labels(ax, variance)
    fig.suptitle("Codes on their top 3 principal axes: a smooth colour gradient = the code orders the targets "
                 "(x and y gradients in different directions = disentangled)", fontsize=10)
    return fig


def _codes_by_condition(evaluations: list[ModelEvaluation], data: TrialData) -> Figure:
    """Codes on their top-3 principal axes, one panel per model, coloured by condition (neural evaluation)."""
    info = data.trial_info
    held = info["heldout_condition"].to_numpy(bool)
    labels, index = np.unique(info["condition_id"].to_numpy(), return_inverse=True)
    cmap = "tab10" if len(labels) <= 10 else "tab20" if len(labels) <= 20 else "turbo"
    colours = ScalarMappable(Normalize(-0.5, len(labels) - 0.5), cmap)
    fig = new_figure(PANEL * len(evaluations) + 0.8, PANEL + 0.8)
    for col, ev in enumerate(evaluations):
        pcs, variance = top3(ev)
        ax = fig.add_subplot(1, len(evaluations), col + 1, projection="3d")
        ax.scatter(*pcs[~held].T, c=colours.to_rgba(index[~held]), s=8)
        if held.any():
            ax.scatter(*pcs[held].T, c="black", marker="x", s=14, label="held-out conditions' trials")
            ax.legend(loc="upper left", fontsize=7)
        ax.set_title(f"{ev.name}: coloured by condition", fontsize=10)
        pc_labels(ax, variance)
    bar = fig.colorbar(colours, ax=fig.axes, shrink=0.6, label="trial's condition (condition_id)")
    ticks = np.arange(len(labels)) if len(labels) <= 20 else np.linspace(0, len(labels) - 1, 5).round().astype(int)
    bar.set_ticks(ticks, labels=[str(labels[t]) for t in ticks])
    fig.suptitle("Codes on their top 3 principal axes: separate clusters per colour = the code separates the "
                 "conditions", fontsize=10)
    return fig


def _paired(dark: str, dark_label: str, light: str, light_label: str) -> list[tuple]:
    """Bar series per navigated variable: metric ``dark``_variable solid, ``light``_variable lighter."""
    series = []
    for variable, colour in zip(NAVIGATED, ("tab:blue", "tab:orange")):
        series += [(f"{dark}_{variable}", f"{variable_label(variable)}{dark_label}", colour, 1.0),
                   (f"{light}_{variable}", f"{variable_label(variable)}{light_label}", colour, LIGHT)]
    return series


def _code_snr(evaluations: list[ModelEvaluation], data: TrialData) -> Figure:
    fig = new_figure(max(PANEL + 2, 2.6 * len(evaluations)), PANEL + 0.6)
    ax = fig.add_subplot()
    what = "condition" if any(ev.scope == "neural" for ev in evaluations) else "target"
    series = [("code_snr_condition", "by condition, first discriminant", "tab:green", 1.0)] if what == "condition" \
        else _paired("code_snr", ", discriminant direction", "code_snr_axis", ", behaviour axis")
    draw_bars(ax, evaluations, series)
    ax.set_ylabel(f"code SNR (between-{what} ÷ within-{what}\nvariance of the projected codes; no unit)")
    ax.set_xlabel("model")
    ax.set_title(f"Code SNR of the {what}s (held-in valid + test trials)\nhigher = {what}s better separated "
                 "in the codes", fontsize=10)
    footnote(fig, evaluations, [key for key, *_ in series])
    return fig


def _r2_neurons(evaluations: list[ModelEvaluation], data: TrialData) -> Figure:
    n = len(evaluations)
    fig = new_figure(max(PANEL + 0.5, 3.3 * n), PANEL + 0.8)
    bins = np.linspace(-1, 1, 21)
    axes = fig.subplots(1, n, sharex=True, sharey=True, squeeze=False)[0]
    for ax, ev in zip(axes, evaluations):
        r2 = np.asarray(ev.r2_neurons, dtype=np.float64)
        finite = r2[np.isfinite(r2)]
        silent = len(r2) - len(finite)
        ax.hist(np.clip(finite, -1, 1), bins=bins, color="tab:green", edgecolor="white")
        mean, ceiling = metric_value(ev, "r2_generated"), metric_value(ev, "r2_truth_ceiling")
        if mean is not None and -1 <= mean <= 1:
            ax.axvline(mean, color="black", ls="--", lw=1, label="mean R²")
        if ceiling is not None and -1 <= ceiling <= 1:
            ax.axvline(ceiling, color="grey", ls=":", lw=1.5, label="truth ceiling (mean)")
        if not len(finite):
            empty_panel(ax, "no neuron with a defined R²")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper left")
        ax.set_title(f"{ev.name}: mean R² {metric_text(ev, 'r2_generated')}\n{len(finite)} neurons"
                     + (f" ({silent} silent, left out)" if silent else ""), fontsize=9)
        ax.set_xlabel("R², clipped to [-1, 1] (no unit)", fontsize=8)
    axes[0].set_ylabel("neurons (count)")
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    truth = "true" if data.rates is not None else "recorded (smoothed spikes)"
    fig.suptitle(f"Per-neuron R² of condition-averaged generated vs {truth} rates\n1 = exact, 0 = no better than the "
                 "neuron's mean rate, < 0 = worse", fontsize=10)
    footnote(fig, evaluations, ["r2_generated"])
    return fig


def _navigation(evaluations: list[ModelEvaluation], data: TrialData) -> Figure:
    """Per navigated variable, a row of hand-path panels (one per model) and under each a small panel of
    decoded against commanded target."""
    n = len(evaluations)
    fig = new_figure((PANEL + 0.4) * n + 1.2, 2 * (PANEL + 2.8) + 0.6)
    grid = fig.add_gridspec(2 * len(NAVIGATED), n, height_ratios=[PANEL, 2.6] * len(NAVIGATED))
    legend_paths = legend_identity = None
    for row, variable in enumerate(NAVIGATED):
        k = VARIABLES.index(variable)
        navs = [ev.navigation.get(variable) for ev in evaluations]
        positions = np.concatenate([np.asarray(nav["positions"], float) for nav in navs if nav is not None] or [[0.0]])
        low, high = np.nanmin(positions), np.nanmax(positions)
        colours = ScalarMappable(Normalize(low, high if high > low else low + 1), NAV_CMAP)
        path_axes = []
        for col, (ev, nav) in enumerate(zip(evaluations, navs)):
            ax = fig.add_subplot(grid[2 * row, col])
            small = fig.add_subplot(grid[2 * row + 1, col])
            path_axes.append(ax)
            handles = draw_targets(ax, data, "decoded hand")
            ax.set_title(f"{ev.name}: code stepped along the {variable_label(variable)} axis", fontsize=9)
            if nav is None or not len(nav["positions"]):
                empty_panel(small, "no navigation", ticks=False)
                continue
            commanded = np.asarray(nav["positions"], float)
            paths = np.asarray(nav["paths"], float)
            rgba = colours.to_rgba(commanded)
            ax.add_collection(LineCollection(paths, colors=rgba, lw=1.5))
            handles.append(ax.scatter(*paths[:, -1].T, c=rgba, s=28, edgecolors="black", linewidths=0.6, zorder=2,
                                      label="decoded endpoint"))
            ax.autoscale_view()
            legend_paths = legend_paths or (ax, handles)
            legend_identity = legend_identity or small
            _decoded_vs_commanded(small, ev, variable, commanded, np.asarray(nav["variables"], float)[..., k], rgba)
        fig.colorbar(colours, ax=path_axes, shrink=0.8, label=f"commanded {variable_label(variable)} (cm)")
    if legend_paths is not None:
        legend_paths[0].legend(handles=legend_paths[1], fontsize=6, loc="best")
    if legend_identity is not None:
        legend_identity.legend(fontsize=6, loc="upper left")
    fig.suptitle("Navigation: each test code stepped along one target axis, the reach decoded from the generated "
                 "activity\nideal = endpoints land on the commanded target; below, points on the dashed identity "
                 "line (slope 1 = moved exactly as commanded)", fontsize=10)
    footnote(fig, evaluations, [f"{what}_{variable}" for variable in NAVIGATED for what in ("nav_slope", "leakage")])
    return fig


def _decoded_vs_commanded(ax, ev: ModelEvaluation, variable: str, commanded: np.ndarray, decoded: np.ndarray,
                          rgba: np.ndarray) -> None:
    """Mean over references of the decoded ``variable`` (steps, references) against the commanded
    position (steps,), ± s.d. over references, with the identity line."""
    decoded = decoded.reshape(len(commanded), -1)
    valid = np.isfinite(decoded)
    count = valid.sum(axis=1)
    with np.errstate(all="ignore"):  # steps where nothing was decoded: NaN, without a warning
        mean = np.where(valid, decoded, 0).sum(axis=1) / count
        spread = np.sqrt(np.where(valid, (decoded - mean[:, None]) ** 2, 0).sum(axis=1) / count)
    finite = np.isfinite(mean)
    values = np.concatenate([commanded, mean[finite]])
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    pad = 0.08 * (high - low) or 1.0
    ax.plot([low - pad, high + pad], [low - pad, high + pad], "k--", lw=1, label="identity (exact)", zorder=1)
    if finite.any():
        ax.plot(commanded[finite], mean[finite], "-", color="grey", lw=0.8, zorder=2)
        ax.errorbar(commanded[finite], mean[finite], yerr=spread[finite], fmt="none", ecolor="grey", elinewidth=0.8,
                    capsize=2, zorder=2)
        ax.scatter(commanded[finite], mean[finite], c=rgba[finite], s=22, edgecolors="black", linewidths=0.5,
                   zorder=3, label="mean ± s.d. over references")
    else:
        ax.text(0.5, 0.5, "nothing decoded", ha="center", va="center", transform=ax.transAxes, fontsize=8,
                color="dimgrey")
    ax.set(xlim=(low - pad, high + pad), ylim=(low - pad, high + pad))
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(f"commanded {variable_label(variable)} (cm)", fontsize=8)
    ax.set_ylabel(f"decoded {variable_label(variable)} (cm)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(f"slope {metric_text(ev, f'nav_slope_{variable}')} (1 = exact)\n"
                 f"leakage {metric_text(ev, f'leakage_{variable}', 'cm/cm')} (0 = none)", fontsize=8)


def _unintended_orthogonality(evaluations: list[ModelEvaluation], data: TrialData) -> Figure:
    n = len(evaluations)
    fig = new_figure(max(PANEL + 3, 2.6 * n) + max(PANEL + 1, 1.8 * n), PANEL + 1)
    grid = fig.add_gridspec(1, 2, width_ratios=[max(PANEL + 3, 2.6 * n), max(PANEL + 1, 1.8 * n)])
    left, right = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])

    series = _paired("leakage", ": leakage, per cm achieved", "unintended", ": per cm commanded")
    draw_bars(left, evaluations, series)
    left.set_ylabel("unintended movement of the other start/target\ncoordinates (cm per cm of the navigated target)")
    left.set_xlabel("model")
    left.set_title("Unintended movement while navigating\n0 = only the commanded target moved", fontsize=10)

    x = np.arange(n)
    cosines = [metric_value(ev, "axis_cos_whitened_target_x_target_y") for ev in evaluations]
    randoms = [metric_value(ev, "axis_cos_random_expected") for ev in evaluations]
    shown = [i for i, c in enumerate(cosines) if c is not None]
    if shown:
        bars = right.bar(x[shown] - 0.15, [cosines[i] for i in shown], 0.3, color="tab:purple")
        right.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    for i, cosine in enumerate(cosines):
        if cosine is None:
            right.text(x[i] - 0.15, 0, NA, ha="center", va="bottom", rotation=90, fontsize=7, color="dimgrey")
    for i, random in enumerate(randoms):
        if random is None:
            right.text(x[i] + 0.15, 0, NA, ha="center", va="bottom", rotation=90, fontsize=7, color="dimgrey")
        else:
            right.plot([x[i] + 0.02, x[i] + 0.28], [random, random], color="black", lw=2.5, solid_capstyle="butt")
            right.annotate(f"{random:.2f}", (x[i] + 0.15, random), xytext=(0, 2), textcoords="offset points",
                           ha="center", va="bottom", fontsize=7)
    right.set_xticks(x, [ev.name for ev in evaluations])
    right.set(xlim=(-0.6, n - 0.4), ylim=(0, 1.12), xlabel="model",
              ylabel="|cos| between the two axes, no unit\n(0 = orthogonal, 1 = parallel)")
    right.legend(handles=[Patch(color="tab:purple", label="target x vs target y axes (whitened codes)"),
                          Line2D([], [], color="black", lw=2.5, label="expected for two random axes\n"
                                                                       "in that code dimension")],
                 fontsize=7, loc="upper left")
    right.set_title("Orthogonality of the target axes\nbar below its dash = more orthogonal than chance", fontsize=10)
    footnote(fig, evaluations, [key for key, *_ in series]
              + ["axis_cos_whitened_target_x_target_y", "axis_cos_random_expected"])
    return fig


def _heldout_targets(evaluations: list[ModelEvaluation], data: TrialData) -> Figure:
    n = len(evaluations)
    fig = new_figure((PANEL + 0.3) * n, PANEL + 1.2)
    legend = None
    for col, ev in enumerate(evaluations):
        ax = fig.add_subplot(1, n, col + 1)
        handles = draw_targets(ax, data, "target")
        if not ev.heldout:
            ax.set_title(f"{ev.name}: no held-out predictions", fontsize=10)
            continue
        true, predicted = np.asarray(ev.heldout["true"], float), np.asarray(ev.heldout["predicted"], float)
        _, which = np.unique(true, axis=0, return_inverse=True)
        colours = [f"C{i % 10}" for i in np.ravel(which)]
        ax.add_collection(LineCollection(np.stack([predicted, true], axis=1), colors=colours, lw=0.6, alpha=0.6))
        handles.append(ax.scatter(*predicted.T, c=colours, s=10, zorder=2, label="predicted (colour = true target)"))
        ax.autoscale_view()
        legend = legend or (ax, handles)
        ax.set_title(f"{ev.name}: mean error {metric_text(ev, 'heldout_target_error_cm', 'cm')}\n"
                     f"({metric_text(ev, 'heldout_target_error_frac_grid', 'grid spacings')})", fontsize=10)
    if legend is not None:
        legend[0].legend(handles=legend[1], fontsize=7, loc="best")
    fig.suptitle("Held-out targets predicted from the codes of their trials (linear map fitted on held-in trials)\n"
                 "each line joins a prediction to its true target; shorter = better", fontsize=10)
    footnote(fig, evaluations, ["heldout_target_error_cm", "heldout_target_error_frac_grid"])
    return fig
