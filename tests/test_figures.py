"""`write_figures` writes every report figure as a real PNG: three models, one, and models whose
metrics are undefined (None) or whose per-neuron R² has NaN (silent neurons)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gnocchi_core.analysis import figures
from gnocchi_core.analysis.decoding import VARIABLES
from gnocchi_core.analysis.evaluation import NAVIGATED, ModelEvaluation
from gnocchi_core.analysis.figures import write_figures
from gnocchi_core.data.synthetic import SynthConfig, synthesize

FIGURES = ["codes_pca.png", "code_snr.png", "r2_neurons.png", "navigation.png", "unintended_orthogonality.png"]
METRICS = (["code_snr_target_x", "code_snr_target_y", "code_snr_axis_target_x", "code_snr_axis_target_y",
            "r2_generated", "r2_truth_ceiling", "axis_cos_whitened_target_x_target_y", "axis_cos_random_expected",
            "heldout_target_error_cm", "heldout_target_error_frac_grid"]
           + [f"{what}_{variable}" for variable in NAVIGATED for what in ("nav_slope", "unintended", "leakage")])


@pytest.fixture(scope="module")
def data():
    return synthesize(SynthConfig(n_trials=60, n_neurons=12, n_heldout_neurons=3, grid=3, seed=0,
                                  heldout_targets=(4, 8)))


def fake_evaluation(name, data, seed, with_heldout=True, undefined=(), silent=0, steps=5, references=4):
    """Constructed arrays with the shapes `evaluate_model` gives; the metrics in ``undefined`` are None
    (with a reason), the first ``silent`` neurons' R² NaN."""
    rng = np.random.default_rng(seed)
    n, latents = data.n_trials, 6
    metrics = {key: float(rng.uniform(0.05, 0.9)) for key in METRICS}
    metrics["code_snr_target_x"] = 12.5  # bars of very different heights
    metrics["nav_slope_target_y"] = -0.3  # a negative bar
    why = {}
    for key in undefined:
        metrics[key], why[key] = None, f"{key} is undefined in this test"
    behaviour = data.trial_info[list(VARIABLES)].to_numpy(float)
    navigation = {}
    for variable in NAVIGATED:
        k = VARIABLES.index(variable)
        positions = np.linspace(behaviour[:, k].min(), behaviour[:, k].max(), steps)
        start = rng.normal(scale=0.5, size=(references, 2))
        variables = np.empty((steps, references, 4))
        variables[..., :2] = start[None] + rng.normal(scale=0.2, size=(steps, references, 2))
        variables[..., 2:] = rng.normal(scale=4, size=(references, 2))[None]
        variables[..., k] = 0.8 * positions[:, None] + rng.normal(scale=0.5, size=(steps, references))
        ends = variables[..., 2:].mean(axis=1)  # (steps, 2)
        fraction = np.linspace(0, 1, data.n_bins)[None, :, None]
        paths = start.mean(axis=0)[None, None] + fraction * (ends[:, None] - start.mean(axis=0)[None, None])
        navigation[variable] = {"positions": positions, "paths": paths, "variables": variables}
    heldout = {}
    if with_heldout:
        held = data.trial_info["heldout_condition"].to_numpy(bool)
        true = data.trial_info.loc[held, ["target_x", "target_y"]].to_numpy(float)
        heldout = {"true": true, "predicted": true + rng.normal(scale=1, size=true.shape)}
    r2 = rng.uniform(-2, 1, data.n_neurons)
    r2[:silent] = np.nan
    return ModelEvaluation(name, name, metrics, why, rng.normal(size=(n, latents)), rng.normal(size=(n, 3)),
                           np.array([0.4, 0.2, 0.1]), rng.normal(size=(latents, 4)), r2, navigation, heldout)


def check_pngs(paths, names):
    assert [p.name for p in paths] == names
    for path in paths:
        content = path.read_bytes()
        assert content.startswith(b"\x89PNG"), path
        assert len(content) > 5000, path


def write_quietly(evaluations, data, out_dir):
    """`write_figures` with every warning an error (layout failures, missing glyphs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return write_figures(evaluations, data, out_dir)


def test_three_models_write_every_figure(data, tmp_path):
    assert data.trial_info["heldout_condition"].any()
    evaluations = [fake_evaluation("gnocchi", data, 0),
                   fake_evaluation("lfads", data, 1, silent=3,
                                   undefined=["code_snr_axis_target_y", "leakage_target_x", "nav_slope_target_y",
                                              "axis_cos_random_expected", "r2_truth_ceiling"]),
                   fake_evaluation("lfads_ic", data, 2, with_heldout=False,
                                   undefined=["heldout_target_error_cm", "heldout_target_error_frac_grid"])]
    paths = write_quietly(evaluations, data, tmp_path / "figures")
    check_pngs(paths, FIGURES + ["heldout_targets.png"])
    assert not list((tmp_path / "figures").glob(".*.tmp"))  # no temporary files left behind


def test_one_model_without_heldout_skips_that_figure(data, tmp_path):
    paths = write_quietly([fake_evaluation("gnocchi", data, 0, with_heldout=False)], data, tmp_path)
    check_pngs(paths, FIGURES)
    assert not (tmp_path / "heldout_targets.png").exists()


def test_every_metric_undefined_and_every_neuron_silent(data, tmp_path):
    """None everywhere, NaN everywhere: figures are still written, nothing raises."""
    broken = fake_evaluation("lfads", data, 1, undefined=METRICS, silent=data.n_neurons)
    broken.navigation["target_x"]["variables"][:] = np.nan  # nothing decoded
    del broken.navigation["target_y"]  # no traversal at all
    paths = write_quietly([fake_evaluation("gnocchi", data, 0), broken], data, tmp_path)
    check_pngs(paths, FIGURES + ["heldout_targets.png"])


def texts(fig):
    """Every title and text drawn in the figure."""
    found = [t.get_text() for t in fig.findobj(lambda artist: hasattr(artist, "get_text"))]
    return found + [ax.get_title() for ax in fig.axes]


def test_undefined_metrics_read_na_with_their_reason(data):
    ev = fake_evaluation("lfads", data, 1, undefined=["nav_slope_target_x", "leakage_target_x", "code_snr_target_y"])
    navigation = figures._navigation([ev], data)
    titles = [ax.get_title() for ax in navigation.axes]
    assert any("slope n/a" in t and "leakage n/a" in t for t in titles), titles
    assert any("nav_slope_target_x is undefined in this test" in t for t in texts(navigation))  # the footnote
    snr = figures._code_snr([ev], data)
    assert "n/a" in texts(snr)  # the missing bar's stand-in
    assert any("code_snr_target_y is undefined in this test" in t for t in texts(snr))


def test_r2_histograms_show_every_model_without_nan(data):
    evaluations = [fake_evaluation(name, data, seed, silent=2 * seed)
                   for seed, name in enumerate(["gnocchi", "lfads", "lfads_ic"])]
    fig = figures._r2_neurons(evaluations, data)
    assert len(fig.axes) == 3
    for ax, ev in zip(fig.axes, evaluations):
        counts = sum(patch.get_height() for patch in ax.patches)
        assert counts == np.isfinite(ev.r2_neurons).sum()
        assert ev.name in ax.get_title() and f"{ev.metrics['r2_generated']:.2f}" in ax.get_title()
