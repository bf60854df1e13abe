"""`write_figures` writes every report figure as a real PNG, for two models or one."""

from __future__ import annotations

import numpy as np
import pytest

from gnocchi_core.analysis.figures import write_figures
from gnocchi_core.analysis.report import NAVIGATED, ModelEvaluation
from gnocchi_core.data.synthetic import SynthConfig, synthesize

FIGURES = ["codes_pca.png", "code_snr.png", "r2_neurons.png", "navigation.png", "unintended_orthogonality.png"]


@pytest.fixture(scope="module")
def data():
    return synthesize(SynthConfig(n_trials=60, n_neurons=12, n_heldout_neurons=3, grid=3, seed=0,
                                  heldout_targets=(4, 8)))


def fake_evaluation(name, data, seed, with_heldout=True):
    """Random arrays with the shapes `evaluate_model` gives."""
    rng = np.random.default_rng(seed)
    n, latents, steps = data.n_trials, 6, 5
    metrics = {"code_snr_target_x": rng.uniform(0, 5), "code_snr_target_y": rng.uniform(0, 5),
               "r2_generated": rng.uniform(0, 1), "axis_cos_target_x_target_y": rng.uniform(-1, 1)}
    navigation = {}
    for variable in NAVIGATED:
        metrics[f"nav_slope_{variable}"] = rng.uniform(0, 1)
        metrics[f"unintended_{variable}"] = rng.uniform(0, 1)
        navigation[variable] = {"deltas": np.linspace(-4, 4, steps),
                                "positions": rng.normal(scale=3, size=(steps, data.n_bins, 2)).cumsum(1) / 5}
    heldout = {}
    held = data.trial_info["heldout_condition"].to_numpy(bool)
    if with_heldout:
        true = data.trial_info.loc[held, ["target_x", "target_y"]].to_numpy()
        heldout = {"true": true, "predicted": true + rng.normal(scale=1, size=true.shape)}
        metrics["heldout_target_error_cm"] = float(np.linalg.norm(heldout["predicted"] - true, axis=1).mean())
    return ModelEvaluation(name, name, metrics, rng.normal(size=(n, latents)), rng.normal(size=(n, 3)),
                           np.array([0.4, 0.2, 0.1]), rng.normal(size=(latents, 4)),
                           rng.uniform(-2, 1, data.n_neurons), navigation, heldout)


def check_pngs(paths, names):
    assert [p.name for p in paths] == names
    for path in paths:
        content = path.read_bytes()
        assert content.startswith(b"\x89PNG"), path
        assert len(content) > 5000, path


def test_two_models_write_every_figure(data, tmp_path):
    assert data.trial_info["heldout_condition"].any()
    evaluations = [fake_evaluation("gnocchi", data, 0), fake_evaluation("lfads", data, 1)]
    paths = write_figures(evaluations, data, tmp_path / "figures")
    check_pngs(paths, FIGURES + ["heldout_targets.png"])
    assert not list((tmp_path / "figures").glob(".*.tmp"))  # no temporary files left behind


def test_one_model_without_heldout_skips_that_figure(data, tmp_path):
    paths = write_figures([fake_evaluation("gnocchi", data, 0, with_heldout=False)], data, tmp_path)
    check_pngs(paths, FIGURES)
    assert not (tmp_path / "heldout_targets.png").exists()
