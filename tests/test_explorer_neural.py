"""The explorer on recordings without hand kinematics: condition-labelled (condition axes, PCs, no reach
panel, no decoder) and unlabelled (PCs only); the trial-variable helpers; and the errors a session
cannot open with, in the page and in the terminal. Tiny GNOCCHI and LFADS models are trained once per
test session on a small synthetic dataset with its kinematics removed (`neural_assets`)."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from explorer.axes import condition_axes, variable_axis
from explorer.state import NavigationState
from explorer.variables import category_names, colour_options, colour_values, navigable_columns
from explorer.workspace import (DEFAULT_SIGMA_MS, PC_AXES, ExplorerConfig, generate_for, load_workspace,
                                navigate_code)
from gnocchi_core.data.preprocessing import smoothed_rates
from gnocchi_core.data.synthetic import SynthConfig, synthesize
from gnocchi_core.data.trialdata import TrialData
from gnocchi_core.models.gnocchi import GnocchiConfig, GnocchiModel
from gnocchi_core.models.lfads import LfadsConfig, LfadsModel
from gnocchi_core.models.training import TrainConfig
from gnocchi_core.workflows import DEFAULT_DATA

REACH_COLUMNS = ["start_x", "start_y", "target_x", "target_y", "reach_angle"]
TINY_GNOCCHI = GnocchiConfig(code_dim=4, channels=16, cond_dim=32, encoder_channels=16, sample_steps=5,
                             prior_components=3, latent_dim=6, ae_channels=16, ae_epochs=5, code_dropout=0.2,
                             train=TrainConfig(epochs=8, batch_size=32, warmup_steps=5, patience=1000,
                                               checkpoint_every=100))
TINY_LFADS = LfadsConfig(ic_enc_dim=16, ci_enc_dim=8, con_dim=8, co_dim=2, ic_dim=8, gen_dim=16, fac_dim=4,
                         dropout_rate=0.1, kl_increase_steps=10, l2_increase_steps=10, posterior_samples=2,
                         prior_components=3, train=TrainConfig(epochs=8, batch_size=32, lr=1e-2, weight_decay=0.0,
                                                               warmup_steps=5, grad_clip=200.0, ema_decay=0.95,
                                                               patience=1000, checkpoint_every=100))


def neural_only(data: TrialData) -> TrialData:
    """``data`` as a recording with condition labels and no kinematics (and a condition name to colour by)."""
    info = data.trial_info.copy()
    info[REACH_COLUMNS] = np.nan
    info["condition_name"] = [f"target {k}" for k in info["condition_id"]]
    return dataclasses.replace(data, behavior={}, behavior_units={}, trial_info=info, latents=None)


def unlabelled(data: TrialData) -> TrialData:
    """``data`` with neither conditions nor kinematics."""
    info = data.trial_info.drop(columns=["condition_name"]).assign(condition_id=-1, heldout_condition=False)
    return dataclasses.replace(data, trial_info=info)


def build_neural_assets(base: Path) -> dict[str, Path]:
    """{'models', 'neural', 'unlabelled'}: tiny GNOCCHI and LFADS models trained on a condition-labelled
    recording without kinematics, and that recording with and without its labels (same shape: the models
    fit both). Built once into ``base``; a second call reuses it."""
    paths = {"models": base / "models", "neural": base / "data" / "neural.h5",
             "unlabelled": base / "data" / "unlabelled.h5"}
    if (base / "done").is_file():
        return paths
    paths["neural"].parent.mkdir(parents=True, exist_ok=True)
    data = neural_only(synthesize(SynthConfig(n_trials=100, n_neurons=30, n_heldout_neurons=4, grid=3, seed=0,
                                              window_ms=(-100.0, 300.0))))
    data.save(paths["neural"])
    unlabelled(data).save(paths["unlabelled"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        GnocchiModel(TINY_GNOCCHI, device="cpu").fit(data, paths["models"] / "gnocchi", progress=False)
        LfadsModel(TINY_LFADS, device="cpu").fit(data, paths["models"] / "lfads", progress=False)
    finally:
        torch.set_num_threads(threads)
    (base / "done").write_text("ok")
    return paths


@pytest.fixture(scope="session")
def neural_assets(tmp_path_factory) -> dict[str, Path]:
    return build_neural_assets(tmp_path_factory.getbasetemp() / "explorer_neural")


@pytest.fixture(scope="module")
def workspace(neural_assets):
    return load_workspace(neural_assets["models"], neural_assets["neural"], device="cpu")


# ---------------------------------------------------------------- trial variables and axes, on hand-made arrays
def test_colour_options_take_numeric_columns_that_vary_and_text_columns_that_group():
    info = pd.DataFrame({"trial_id": np.arange(6), "heldout_condition": [True, False] * 3,
                         "condition_id": [0, 0, 1, 1, 2, 2], "constant": 1.0, "mostly_nan": [np.nan] * 5 + [2.0],
                         "rt_ms": [np.nan, 200, 210, 250, 230, 220], "name": ["a", "b", "a", "b", "c", None],
                         "label": [f"trial {k}" for k in range(6)]})
    assert colour_options(info) == ["condition_id", "trial_id", "rt_ms", "name"]
    assert category_names(info, "name") == ["a", "b", "c"] and category_names(info, "rt_ms") is None
    np.testing.assert_array_equal(colour_values(info, "name"), [0, 1, 0, 1, 2, np.nan])
    assert navigable_columns(info, np.ones(6, bool)) == ["rt_ms"]  # identifiers and text never drive a slider


def test_condition_axes_find_the_direction_that_separates_the_conditions():
    rng = np.random.default_rng(0)
    conditions = np.repeat(np.arange(4), 50)
    codes = rng.normal(size=(200, 5)) * [3.0, 3.0, 0.2, 3.0, 3.0]  # noisy everywhere but dimension 2
    codes[:, 2] += conditions  # where the conditions differ
    axes = condition_axes(codes, conditions, 2)
    assert axes.shape == (2, 5)
    np.testing.assert_allclose(np.linalg.norm(axes, axis=1), 1.0)
    assert abs(axes[0, 2]) > 0.99 and axes[0, 2] > 0  # signed: largest component positive
    assert condition_axes(codes, np.zeros(200), 2).shape == (0, 5)  # one condition: nothing to separate


def test_a_variable_axis_is_fitted_jointly_with_the_reach_variables():
    rng = np.random.default_rng(1)
    behaviour, values = rng.normal(size=(80, 4)), rng.normal(size=80)
    true = rng.normal(size=(6, 3))
    codes = np.column_stack([behaviour, values]) @ true[:5] + true[5] + 0.01 * rng.normal(size=(80, 3))
    np.testing.assert_allclose(variable_axis(codes, behaviour, values), true[4], atol=0.02)
    assert variable_axis(codes, behaviour, 2 * behaviour[:, 0] + 1) is None  # a reach variable in disguise


# ---------------------------------------------------------------- a condition-labelled recording without kinematics
def test_neural_workspace_has_no_decoder_and_condition_axes(workspace):
    data = workspace.data
    assert workspace.decoder is None and not workspace.has_reaches and workspace.real_paths is None
    assert workspace.targets is None and workspace.conditions
    assert workspace.axes == ("cond1", "cond2", *PC_AXES) and workspace.variables == ()
    assert workspace.default_colour == "condition_id" and {"condition_name", "split"} <= set(workspace.colours)
    assert "hand_pos" in workspace.note and workspace.neuron_label == "neuron (by condition of peak rate)"
    assert sorted(workspace.neuron_order) == list(range(data.n_neurons))
    for view in workspace.models.values():
        assert view.codes.shape == (data.n_trials, view.model.code_dim) and view.axes.shape == (view.codes.shape[1], 0)
        assert view.condition_axes.shape == (2, view.model.code_dim) and (view.condition_scale > 0).all()
        np.testing.assert_allclose(np.linalg.norm(view.condition_axes, axis=1), 1.0)
        assert len(view.centroids) == data.trial_info["condition_id"].nunique()
    np.testing.assert_allclose(workspace.recorded_rates(3), smoothed_rates(data.spikes[3], data.bin_ms,
                                                                           DEFAULT_SIGMA_MS))


def test_a_condition_axis_moves_the_code_and_generation_works(workspace):
    view = workspace.models["gnocchi"]
    moved = navigate_code(view, 3, {"cond1": 2.0, "pc2": -1.0})
    expected = view.codes[3] + 2.0 * view.condition_scale[0] * view.condition_axes[0] \
        - view.pc_scale[1] * view.pc_axes[1]
    np.testing.assert_allclose(moved, expected, rtol=1e-5)
    one = navigate_code(view, 3, {"cond1": 1.0})  # one s.d. of the codes along the unit discriminant
    assert (one - view.codes[3]) @ view.condition_axes[0] == pytest.approx(view.condition_scale[0])

    state = NavigationState(workspace, samples=2)
    state.regenerate()
    baseline = state.generations["gnocchi"]
    assert baseline.decoded is None and baseline.paths is None and baseline.nearest_condition is not None
    state.set_value("cond1", 2.5)  # a shift in s.d.: the value is the offset
    state.regenerate()
    shifted = state.generations["gnocchi"]
    assert state.offsets["gnocchi"]["cond1"] == 2.5 and not np.allclose(shifted.rates, baseline.rates)
    assert shifted.rates.shape == (workspace.data.n_bins, workspace.data.n_neurons)
    assert state.moved("gnocchi") == set() and state.unintended("gnocchi") is None
    again = generate_for(workspace, view, state.reference, state.offsets["gnocchi"], steps=None, samples=2, seed=0)
    np.testing.assert_array_equal(again.samples, shifted.samples)  # fixed noise per seed, as with kinematics


def test_neural_controls_and_readout_show_what_applies(workspace):
    from explorer.views import CodeSpace, Controls
    from explorer.views.readout import Readout

    state = NavigationState(workspace, samples=2)
    controls = Controls(state)
    assert [s.label for s in controls.sliders.values()] == ["condition axis 1 (s.d.)", "condition axis 2 (s.d.)",
                                                            "PC 1 shift (s.d.)", "PC 2 shift (s.d.)"]
    assert all(s.value == 0.0 for s in controls.sliders.values()) and not controls.extra.visible
    state.regenerate()
    text = Readout(state, "gnocchi")._text()
    for words in ("nearest condition", "centroid", "reference trial: condition", "2 samples in", "DDIM steps",
                  "on cpu"):
        assert words in text, (words, text)
    assert "miss" not in text and "no sampling steps" in Readout(state, "lfads")._text()
    codes = CodeSpace(state, workspace.models["gnocchi"])
    assert codes._colourbar.title == "condition" and "start_x" not in codes.sources[False].data
    state.colour_by = "condition_name"  # a text column: coloured by category, named on the colour bar
    assert codes._colourbar.major_label_overrides[0] == "target 0"
    assert set(codes.sources[False].data["c"]) <= set(range(9))


def test_the_download_has_generated_spikes_and_no_behaviour(workspace):
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import h5py

    from explorer.views import Controls

    controls = Controls(NavigationState(workspace, samples=3))
    with ThreadPoolExecutor(1) as thread:  # its own event loop (Playwright may hold this thread's)
        payload = thread.submit(asyncio.run, controls._download()).result()
    with h5py.File(payload, "r") as f:
        assert f["spikes"].shape == (3, workspace.data.n_bins, workspace.data.n_neurons)
        assert not len(f.get("behavior", {}))  # nothing decoded: no decoder without kinematics


def test_the_app_opens_a_neural_dataset_without_a_reach_plot(neural_assets):
    import panel as pn

    from explorer.session import ExplorerApp
    from explorer.views import plot_names

    app = ExplorerApp(ExplorerConfig(neural_assets["models"], neural_assets["neural"]))
    assert not app.message.visible and app.state.workspace.decoder is None
    names = {pane.object.name for pane in app.body.select(pn.pane.Bokeh)}  # the views' figures
    assert names == set(plot_names(["gnocchi", "lfads"], reaches=False))  # codes and activity; no reach plot
    assert "hand_pos" in app.body.objects[-1].objects[0].object  # the page says why there is no reach panel
    app.dataset.value = neural_assets["unlabelled"]  # the sibling file, offered by the picker
    assert not app.message.visible and app.state.workspace.axes == PC_AXES


def test_an_unlabelled_recording_opens_with_pc_sliders_only(neural_assets):
    from explorer.views import Controls
    from explorer.views.readout import Readout

    workspace = load_workspace(neural_assets["models"], neural_assets["unlabelled"], device="cpu")
    assert workspace.axes == PC_AXES and not workspace.conditions and workspace.decoder is None
    assert workspace.neuron_label == "neuron (by PC 1 loading)" and "condition" in workspace.note
    assert "condition_id" not in workspace.colours and workspace.default_colour in workspace.colours
    state = NavigationState(workspace, samples=2)
    assert list(Controls(state).sliders) == list(PC_AXES)
    state.set_offset("pc1", 1.5)
    state.regenerate()
    generation = state.generations["gnocchi"]
    assert generation.nearest_condition is None and "nearest condition" not in Readout(state, "gnocchi")._text()


# ---------------------------------------------------------------- what a session cannot open: page and terminal
def test_a_missing_models_folder_is_shown_in_the_page_and_the_terminal(tmp_path, caplog, capsys):
    from explorer.session import ExplorerApp

    with caplog.at_level(logging.ERROR, logger="explorer"):
        app = ExplorerApp(ExplorerConfig(tmp_path / "missing", DEFAULT_DATA))  # no exception: the page says why
    assert app.message.visible and "models folder not found" in app.message.object and app.state is None
    assert app.models.options == [] and not app.busy.value
    assert any(r.levelno == logging.ERROR and r.name == "explorer" and "models folder not found" in r.getMessage()
               for r in caplog.records)
    assert "models folder not found" in capsys.readouterr().err  # printed where the server runs


def test_a_dataset_the_models_do_not_fit_is_shown_in_the_page_and_the_terminal(neural_assets, caplog, capsys):
    from explorer.session import ExplorerApp

    with caplog.at_level(logging.ERROR, logger="explorer"):
        app = ExplorerApp(ExplorerConfig(neural_assets["models"], DEFAULT_DATA))
    assert app.message.visible and "no trained model" in app.message.object
    assert "the models were trained on" in app.message.object  # the shapes that do not match
    assert [r.getMessage() for r in caplog.records if r.name == "explorer"] and \
        "no trained model" in capsys.readouterr().err


def test_the_terminal_gets_each_error_once(capsys):
    from explorer.runtime import log

    printing = logging.StreamHandler(sys.stderr)  # what `panel serve` installs on the root logger
    logging.getLogger().addHandler(printing)
    try:
        log.error("cannot open x.h5: reason")
    finally:
        logging.getLogger().removeHandler(printing)
    assert capsys.readouterr().err.count("cannot open x.h5: reason") == 1
    log.error("cannot open y.h5: reason")  # no root handler: the explorer's own prints it
    assert capsys.readouterr().err.count("cannot open y.h5: reason") == 1
