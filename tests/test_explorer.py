"""The explorer's view models, without a browser, on the shipped dataset and default models."""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
import param
import pytest

from explorer.state import NavigationState
from explorer.workspace import (ExplorerConfig, compatible_models, dataset_choices, generate_for, load_workspace,
                                navigate_code)
from gnocchi_core.errors import GnocchiError
from gnocchi_core.workflows import DEFAULT_DATA, DEFAULT_MODELS


@pytest.fixture(scope="module")
def workspace():
    return load_workspace(DEFAULT_MODELS, DEFAULT_DATA, device="cpu")


def test_config_from_arguments_then_environment_then_defaults(tmp_path):
    assert ExplorerConfig.from_sources([], {}).models_dir == DEFAULT_MODELS.resolve()
    env = ExplorerConfig.from_sources([], {"GNOCCHI_MODELS": str(tmp_path), "GNOCCHI_DATA": "x.h5"})
    assert env.models_dir == tmp_path and env.data_path.name == "x.h5"
    args = ExplorerConfig.from_sources(["--models", str(tmp_path / "m"), "--data", "d.h5"], {"GNOCCHI_DATA": "x.h5"})
    assert args.models_dir == tmp_path / "m" and args.data_path.name == "d.h5"


def test_workspace_holds_the_default_models(workspace):
    data = workspace.data
    assert set(workspace.models) == {"gnocchi", "lfads", "lfads_ic"}  # GNOCCHI against both LFADS variants
    for view in workspace.models.values():
        assert view.codes.shape == (data.n_trials, view.model.code_dim) and view.axes.shape == (view.codes.shape[1], 4)
        np.testing.assert_allclose(view.project(view.codes), view.pcs, atol=1e-4)
    assert sorted(workspace.neuron_order) == list(range(data.n_neurons))
    assert len(workspace.targets) == 25 and workspace.targets["heldout"].sum() == 3


def test_workspace_errors_name_the_problem(tmp_path):
    with pytest.raises(GnocchiError, match="models folder not found"):
        load_workspace(tmp_path / "missing", DEFAULT_DATA)
    with pytest.raises(GnocchiError, match="no trained model folders"):
        load_workspace(tmp_path, DEFAULT_DATA)


def test_navigation_moves_the_code_along_the_axis(workspace):
    view = workspace.models["gnocchi"]
    moved = navigate_code(view, 3, {"target_x": 2.0, "pc1": 1.0})
    expected = view.codes[3] + 2.0 * view.axes[:, 2] + view.pc_scale[0] * view.pc_axes[0]
    np.testing.assert_allclose(moved, expected, rtol=1e-5)
    with pytest.raises(GnocchiError, match="unknown navigation axis"):
        navigate_code(view, 3, {"elbow": 1.0})


def test_target_x_slider_moves_gnocchis_decoded_endpoint_in_the_commanded_direction(workspace):
    state = NavigationState(workspace, samples=4, steps=10)
    state.regenerate()
    before = state.generations["gnocchi"].decoded[2]
    state.set_offset("target_x", 4.0)
    state.regenerate()
    after = state.generations["gnocchi"]
    assert after.decoded[2] > before + 1.0, (before, after.decoded[2])
    assert after.commanded[2] == pytest.approx(workspace.data.trial_info["target_x"].iloc[state.reference] + 4.0)
    assert state.unintended("gnocchi") >= 0 and after.rates.shape == (workspace.data.n_bins, workspace.data.n_neurons)
    # fixed initial noise: the same request gives the same sample, so dragging changes the sample smoothly
    again = generate_for(workspace, workspace.models["gnocchi"], state.reference, state.offsets["gnocchi"],
                         steps=10, samples=4, seed=0)
    np.testing.assert_array_equal(again.samples, after.samples)


def test_guidance_setting_changes_gnocchis_samples_and_leaves_lfads_alone(workspace):
    state = NavigationState(workspace, samples=2, steps=5)
    state.regenerate()
    plain = {name: g.samples for name, g in state.generations.items()}
    state.guidance = 3.0
    state.regenerate()
    assert not np.allclose(state.generations["gnocchi"].samples, plain["gnocchi"])
    np.testing.assert_array_equal(state.generations["lfads"].samples, plain["lfads"])
    assert state.baselines["gnocchi"].guidance == 3.0  # the reference is regenerated at the new scale too
    assert state.generations["lfads"].guidance is None  # and LFADS has no such setting
    # the model's own default scale (1) is what an empty setting gives
    np.testing.assert_array_equal(generate_for(workspace, workspace.models["gnocchi"], state.reference, {},
                                               steps=5, samples=2, seed=0, guidance=1.0).samples,
                                  generate_for(workspace, workspace.models["gnocchi"], state.reference, {},
                                               steps=5, samples=2, seed=0).samples)


def test_lock_drives_both_models_and_unlocked_only_the_chosen_one(workspace):
    state = NavigationState(workspace)
    state.set_offset("target_y", 2.0)
    assert state.offsets["gnocchi"]["target_y"] == state.offsets["lfads"]["target_y"] == 2.0
    state.lock, state.drive = False, "lfads"
    state.set_offset("target_y", -3.0)
    assert state.offsets["gnocchi"]["target_y"] == 2.0 and state.offsets["lfads"]["target_y"] == -3.0
    state.reset()
    assert not any(v for offsets in state.offsets.values() for v in offsets.values())


def test_a_stale_request_is_dropped(workspace):
    state = NavigationState(workspace, samples=2)

    async def two_requests():
        state.set_offset("target_x", -4.0)
        first = asyncio.ensure_future(state.regenerate_async())
        await asyncio.sleep(0)
        state.set_offset("target_x", 4.0)
        await asyncio.gather(first, state.regenerate_async())

    applied = []
    state.param.watch(lambda event: applied.append(event.new["gnocchi"].commanded[2]), "generations")
    with ThreadPoolExecutor(1) as thread:  # its own event loop (Playwright may hold this thread's)
        thread.submit(asyncio.run, two_requests()).result()
    start = workspace.data.trial_info["target_x"].iloc[state.reference]
    assert applied == [pytest.approx(start + 4.0)] and not state.busy


def test_download_writes_the_generated_trials_off_the_event_loop(workspace):
    from explorer.views import Controls

    state = NavigationState(workspace, samples=3)
    controls = Controls(state)
    with ThreadPoolExecutor(1) as thread:  # its own event loop (Playwright may hold this thread's)
        payload = thread.submit(asyncio.run, controls._download()).result()
    assert isinstance(payload, io.BytesIO) and controls.download.filename.startswith("generated_gnocchi_trial")
    with h5py.File(payload, "r") as f:
        assert f["spikes"].shape == (3, workspace.data.n_bins, workspace.data.n_neurons)


def test_sliders_read_absolute_values_starting_at_the_reference(workspace):
    from explorer.views import Controls

    state = NavigationState(workspace, samples=2)
    controls = Controls(state)
    info = workspace.data.trial_info.iloc[state.reference]
    for axis in ("target_x", "target_y", "start_x", "start_y"):
        slider = controls.sliders[axis]
        assert slider.value == pytest.approx(info[axis]) and slider.start < info[axis] < slider.end
    assert controls.sliders["pc1"].value == 0.0  # PCs stay shifts in s.d.
    state.set_value("target_x", info["target_x"] + 4.0)  # "where the reach should end"
    assert state.offsets["gnocchi"]["target_x"] == pytest.approx(4.0)
    assert state.value("target_x") == pytest.approx(info["target_x"] + 4.0)
    state.lock, state.drive = False, "lfads"  # unlocked: the sliders show the driven model's values
    state.set_value("target_x", info["target_x"] - 2.0)
    state.drive = "gnocchi"
    assert controls.sliders["target_x"].value == pytest.approx(info["target_x"] + 4.0)
    state.drive = "lfads"
    assert controls.sliders["target_x"].value == pytest.approx(info["target_x"] - 2.0)
    state.lock = True  # relocked: every model follows the sliders shown
    assert state.offsets["gnocchi"]["target_x"] == state.offsets["lfads"]["target_x"] == pytest.approx(-2.0)
    other = int(np.flatnonzero(workspace.data.trial_info["target_x"] != info["target_x"])[0])
    state.reference = other  # a new reference: sliders jump to its values, offsets to zero
    assert controls.sliders["target_x"].value == pytest.approx(workspace.data.trial_info["target_x"].iloc[other])
    assert state.offsets["gnocchi"]["target_x"] == 0.0 and state.generations["gnocchi"].commanded[2] == \
        pytest.approx(workspace.data.trial_info["target_x"].iloc[other])


def test_other_trial_variables_drive_an_extra_slider_in_their_own_units(workspace):
    """Beside the reach sliders, any other continuous trial variable: its axis fitted jointly with the reach
    variables on the training trials, its slider absolute in the column's own values."""
    from explorer.state import AXES
    from explorer.views import Controls
    from gnocchi_core.analysis.decoding import VARIABLES
    from gnocchi_core.analysis.metrics import behaviour_axes

    info = workspace.data.trial_info
    assert {"reach_angle", "reaction_time_ms"} <= set(workspace.variables)
    assert not set(workspace.variables) & {"trial_id", "condition_id", "target_index", "split", *VARIABLES}
    view = workspace.models["gnocchi"]
    train = workspace.data.heldin_conditions("train")
    design = info[[*VARIABLES, "reaction_time_ms"]].to_numpy(dtype=np.float64)[train]
    np.testing.assert_allclose(view.variable_axes["reaction_time_ms"],
                               behaviour_axes(view.codes[train], design)[0][:, -1])
    np.testing.assert_allclose(view.axes, behaviour_axes(view.codes[train], design[:, :4])[0])  # reach axes as ever

    state = NavigationState(workspace, samples=2, steps=5)
    controls = Controls(state)
    slider = controls.extra_slider
    assert state.extra == "none" and not slider.visible and list(controls.sliders) == list(AXES)  # default layout
    state.extra = "reaction_time_ms"
    reaction = info["reaction_time_ms"].iloc[state.reference]
    assert slider.visible and slider.label == "reaction_time_ms" and slider.value == pytest.approx(reaction)
    assert slider.start < reaction < slider.end
    with param.edit_constant(slider):  # what a browser release does
        slider.value_throttled = reaction + 30.0
    assert state.offsets["gnocchi"]["reaction_time_ms"] == pytest.approx(30.0)
    np.testing.assert_allclose(state.generations["gnocchi"].code,
                               view.codes[state.reference] + 30.0 * view.variable_axes["reaction_time_ms"], rtol=1e-5)
    state.extra = "reach_angle"  # one extra variable at a time: the previous one is back at the reference
    assert state.offsets["gnocchi"]["reaction_time_ms"] == 0.0 and slider.label == "reach angle (rad)"
    assert slider.value == pytest.approx(info["reach_angle"].iloc[state.reference]) and state.shown_is_current()


def test_a_release_where_the_last_one_was_still_regenerates_after_a_reset(workspace):
    """Reset moves the handles back; releasing again at the earlier spot is a new command, not a repeat."""
    from explorer.views import Controls

    state = NavigationState(workspace, samples=2)
    controls = Controls(state)
    slider = controls.sliders["target_x"]
    start = slider.value
    with param.edit_constant(slider):  # what a browser release does
        slider.value_throttled = start + 4.0
    assert state.offsets["gnocchi"]["target_x"] == pytest.approx(4.0)
    controls._reset()
    assert slider.value_throttled == pytest.approx(start) and state.offsets["gnocchi"]["target_x"] == 0.0
    with param.edit_constant(slider):
        slider.value_throttled = start + 4.0
    assert state.offsets["gnocchi"]["target_x"] == pytest.approx(4.0)
    assert state.generations["gnocchi"].commanded[2] == pytest.approx(start + 4.0)


def test_a_click_away_from_every_trial_keeps_the_reference(workspace):
    from types import SimpleNamespace

    from explorer.views import CodeSpace

    state = NavigationState(workspace)
    view = workspace.models["gnocchi"]
    codes = CodeSpace(state, view)
    reference = state.reference
    codes._clicked(SimpleNamespace(x=float(view.pcs[:, 0].max()) * 3, y=0.0))  # on the colour bar, say
    assert state.reference == reference
    trial = int(np.argmax(view.pcs[:, 0]))
    codes._clicked(SimpleNamespace(x=float(view.pcs[trial, 0]), y=float(view.pcs[trial, 1])))
    assert state.reference == trial


def test_slider_range_is_a_round_grid_around_the_recorded_values():
    from explorer.views.controls import nice_step, slider_range

    assert [nice_step(s) for s in (24, 15, 0.8)] == [0.5, 0.2, 0.01]
    start, end, step = slider_range(np.array([-8.0, 0.0, 8.0]))
    assert (start, end, step) == (-12.0, 12.0, 0.5)
    assert slider_range(np.array([2.0, 2.0]))[:2] == (1.0, 3.0)  # a constant variable still gets a range


def test_readout_uses_the_mean_reach_and_names_every_number(workspace):
    from explorer.views.readout import Readout

    state = NavigationState(workspace, samples=4)
    state.set_offset("target_x", 4.0)
    state.regenerate()
    generation = state.generations["gnocchi"]
    np.testing.assert_allclose(generation.mean_path, generation.paths.mean(axis=0))
    assert generation.steps == workspace.models["gnocchi"].model.config.sample_steps  # the model's default
    assert generation.steps is not None and state.generations["lfads"].steps is None
    text = Readout(state, "gnocchi")._text()
    for words in ("mean reach of 4 samples ends at", "commanded target", "miss", "unintended movement",
                  "start x, start y, target y", f"{generation.steps} DDIM steps", "guidance 1", "on cpu"):
        assert words in text, (words, text)
    assert "no sampling steps" in Readout(state, "lfads")._text()


def test_picker_offers_configured_datasets_and_only_matching_models(tmp_path):
    from explorer.session import ExplorerApp
    from gnocchi_core.data.synthetic import SynthConfig, synthesize

    data_dir, models_dir = tmp_path / "data", tmp_path / "models"
    data_dir.mkdir()
    models_dir.mkdir()
    (data_dir / "reach.h5").symlink_to(DEFAULT_DATA)
    synthesize(SynthConfig(n_trials=30, n_neurons=10, n_heldout_neurons=2, grid=3, seed=0)).save(data_dir / "other.h5")
    (data_dir / "notes.h5").write_bytes(b"not hdf5")
    for name in ("gnocchi", "lfads"):
        (models_dir / name).symlink_to(DEFAULT_MODELS / name)
    assert [p.name for p in dataset_choices(data_dir / "reach.h5")] == ["reach.h5", "other.h5"]
    assert compatible_models(models_dir, data_dir / "reach.h5") == ["gnocchi", "lfads"]
    assert compatible_models(models_dir, data_dir / "other.h5") == []

    app = ExplorerApp(ExplorerConfig(models_dir, data_dir / "reach.h5"))
    assert app.models.value == ["gnocchi", "lfads"] and set(app.state.workspace.models) == {"gnocchi", "lfads"}
    app.models.value = ["lfads"]
    assert set(app.state.workspace.models) == {"lfads"}
    app.dataset.value = data_dir / "other.h5"  # no model was trained on it: say so, keep the page
    assert app.message.visible and "no trained model" in app.message.object


def test_settings_changed_together_regenerate_once(workspace, monkeypatch):
    from explorer.views import Controls

    state = NavigationState(workspace)
    controls = Controls(state)
    requests = []
    monkeypatch.setattr(state, "regenerate", lambda: requests.append(1))
    state.param.update(samples=2, steps=5, seed=3)  # param hands the watcher all three events at once
    state.param.update(lock=False, drive="lfads")
    assert len(requests) == 1 and controls.sliders["target_x"].value == pytest.approx(state.value("target_x"))


def test_the_server_keeps_at_most_two_workspaces():
    from explorer.runtime import WORKSPACES_KEPT, shared_workspace

    assert WORKSPACES_KEPT == 2
    first = shared_workspace(str(DEFAULT_MODELS), str(DEFAULT_DATA), ("lfads",))
    assert shared_workspace(str(DEFAULT_MODELS), str(DEFAULT_DATA), ("lfads",)) is first  # cached
    shared_workspace(str(DEFAULT_MODELS), str(DEFAULT_DATA), ("lfads_ic",))
    shared_workspace(str(DEFAULT_MODELS), str(DEFAULT_DATA), ("lfads", "lfads_ic"))  # a third: the oldest goes
    assert shared_workspace(str(DEFAULT_MODELS), str(DEFAULT_DATA), ("lfads",)) is not first


def test_every_marker_is_named_in_a_legend(workspace):
    from explorer.views import CodeSpace, Reaches

    state = NavigationState(workspace)
    state.regenerate()

    def labels(view):
        return {item.label.value for item in view.legend.items}

    codes = CodeSpace(state, workspace.models["gnocchi"])
    assert labels(codes) == {"trial, coloured by target x (cm)", "held-out condition", "reference trial",
                             "navigated code"}
    state.colour_by = "condition_id"
    assert "trial, coloured by condition" in labels(codes) and codes._colourbar.title == "condition"
    reaches = Reaches(state, "gnocchi")
    assert labels(reaches) == {"target", "held-out target", "recorded reach (reference)", "generated samples",
                               "mean generated reach", "end of the mean reach", "commanded target"}
    assert all(item.renderers for item in reaches.legend.items)  # each label draws its marker


def test_setting_widgets_are_bounded_in_the_browser(workspace):
    """The settings' number fields carry their parameter's bounds, which the browser clamps to before sending
    (a seed of 1e20 never reaches the server)."""
    import panel as pn

    from explorer.views.controls import Controls

    state = NavigationState(workspace)
    state.regenerate()
    settings = next(o for o in Controls(state)._layout.objects if isinstance(o, pn.Param))
    for name in ("steps", "samples", "seed", "guidance"):
        widget, bounds = settings._widgets[name], state.param[name].bounds
        assert (widget.start, widget.end) == bounds, name
    assert settings._widgets["seed"].end == 2**32 - 1
