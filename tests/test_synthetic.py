"""The synthetic reaching generator: layout, kinematics, Poisson spiking, tuning, determinism, io."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gnocchi_core.data.synthetic import (
    SynthConfig,
    default_heldout_targets,
    grid_targets,
    synthesize,
)
from gnocchi_core.data.trialdata import load_dataset


@pytest.fixture(scope="module")
def data():
    return synthesize(SynthConfig())


def _starts(d):
    return d.trial_info[["start_x", "start_y"]].to_numpy()


def _targets(d):
    return d.trial_info[["target_x", "target_y"]].to_numpy()


# ---------------------------------------------------------------------- layout
def test_grid_targets_are_centred_row_major_and_evenly_spaced():
    targets = grid_targets(5, 4.0)
    assert targets.shape == (25, 2)
    np.testing.assert_allclose(targets.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(targets[1] - targets[0], [4.0, 0.0])  # next column: +x
    np.testing.assert_allclose(targets[5] - targets[0], [0.0, 4.0])  # next row: +y
    np.testing.assert_allclose(np.unique(targets[:, 0]), [-8, -4, 0, 4, 8])
    assert len(np.unique(targets, axis=0)) == 25


@pytest.mark.parametrize("grid", [4, 5, 6, 9])
def test_default_heldout_targets_are_three_spread_interior_targets(grid):
    picks = default_heldout_targets(grid)
    assert len(set(picks)) == 3
    rows, cols = np.divmod(np.array(picks), grid)
    assert np.all((rows >= 1) & (rows <= grid - 2) & (cols >= 1) & (cols <= grid - 2))
    points = grid_targets(grid, 1.0)[list(picks)]
    assert abs(np.linalg.det(np.c_[points, np.ones(3)])) > 0.1  # not collinear


def test_default_heldout_targets_on_small_grids():
    assert default_heldout_targets(2) == ()
    assert default_heldout_targets(3) == (4,)


def test_requested_heldout_targets_are_exactly_the_heldout_conditions():
    d = synthesize(SynthConfig(n_trials=200, heldout_targets=(0, 12, 24)))
    info = d.trial_info
    assert set(info.loc[info.heldout_condition, "target_index"]) == {0, 12, 24}
    assert (info.heldout_condition == info.target_index.isin([0, 12, 24])).all()
    assert (info.loc[info.heldout_condition, "split"] == "test").all()
    assert not set(info.loc[~info.heldout_condition, "target_index"]) & {0, 12, 24}
    np.testing.assert_allclose(_targets(d), grid_targets(5, 4.0)[info.target_index])
    assert (info.condition_id == info.target_index).all()


def test_default_config_holds_out_the_default_targets(data):
    info = data.trial_info
    assert set(info.loc[info.heldout_condition, "target_index"]) == set(default_heldout_targets(5))


def test_conditions_are_balanced_and_splits_follow_fractions(data):
    counts = data.trial_info.target_index.value_counts()
    assert len(counts) == 25 and counts.max() - counts.min() <= 1
    heldin = data.trial_info[~data.trial_info.heldout_condition]
    fractions = heldin.split.value_counts(normalize=True)
    np.testing.assert_allclose(fractions[["train", "valid", "test"]], [0.7, 0.15, 0.15], atol=0.01)
    assert set(heldin.loc[heldin.split == "train", "target_index"]) == set(heldin.target_index)


def test_shapes_window_and_heldout_neurons(data):
    assert data.spikes.shape == (500, 70, 100)
    assert np.issubdtype(data.spikes.dtype, np.integer) and data.spikes.min() >= 0
    assert data.rates.shape == (500, 70, 100) and data.rates.dtype == np.float32
    assert data.latents.shape == (500, 70, 8)
    for name in ("hand_pos", "hand_vel"):
        assert data.behavior[name].shape == (500, 70, 2)
    assert data.behavior_units == {"hand_pos": "cm", "hand_vel": "cm/s"}
    assert data.t0_ms == -200.0 and data.bin_ms == 10.0 and data.window_ms == (-200.0, 500.0)
    assert data.heldout_neurons.sum() == 20
    angle = np.arctan2(*(_targets(data) - _starts(data)).T[::-1])
    np.testing.assert_allclose(data.trial_info.reach_angle, angle)
    assert np.all(np.abs(_starts(data)) <= 3.0)
    assert data.provenance.licence == "CC0-1.0" and data.provenance.command == ""
    assert '"grid": 5' in data.provenance.description


# ---------------------------------------------------------------------- kinematics
def test_hand_moves_from_start_to_target(data):
    pos = data.behavior["hand_pos"]
    np.testing.assert_allclose(pos[:, 0], _starts(data), atol=1e-12)
    np.testing.assert_allclose(pos[:, -1], _targets(data), atol=1e-3)


def test_velocity_is_the_derivative_of_position_in_cm_per_s(data):
    pos, vel = data.behavior["hand_pos"], data.behavior["hand_vel"]
    numeric = np.gradient(pos, data.bin_ms / 1000, axis=1)
    scale = np.abs(vel).max()
    assert np.abs(numeric - vel).max() < 0.05 * scale


def test_speed_profile_is_bell_shaped(data):
    speed = np.linalg.norm(data.behavior["hand_vel"], axis=-1)
    t = data.bin_centers_ms
    duration = data.trial_info.reach_duration_ms.to_numpy()
    assert np.all(speed[:, t < 0] < 1e-9)
    moving = speed > 0
    peak_t = t[speed.argmax(axis=1)]
    assert np.all(np.abs(peak_t - duration / 2) <= data.bin_ms)
    for trial in range(0, data.n_trials, 25):
        steps = np.sign(np.diff(speed[trial, moving[trial]]))
        assert np.count_nonzero(np.diff(steps)) == 1, f"trial {trial}: speed is not single-peaked"


# ---------------------------------------------------------------------- rates and spikes
def test_mean_rate_matches_request_with_a_realistic_spread(data):
    assert abs(float(data.rates.mean()) - 20.0) < 0.01
    assert abs(data.mean_rate_hz() - 20.0) < 0.5
    per_neuron = data.rates.mean(axis=(0, 1))
    assert per_neuron.min() > 3.0 and per_neuron.max() < 70.0
    assert np.percentile(per_neuron, 90) / np.percentile(per_neuron, 10) > 4.0
    faster = synthesize(SynthConfig(n_trials=50, mean_rate_hz=40.0))
    assert abs(float(faster.rates.mean()) - 40.0) < 0.01


def test_spikes_are_poisson_draws_from_the_rates(data):
    expected = data.rates.astype(np.float64) * data.bin_ms / 1000
    counts = data.spikes
    z_total = (counts.sum() - expected.sum()) / np.sqrt(expected.sum())
    assert abs(z_total) < 4
    per_neuron = (counts.sum(axis=(0, 1)) - expected.sum(axis=(0, 1))) / np.sqrt(expected.sum(axis=(0, 1)))
    assert np.abs(per_neuron).max() < 4.5
    # Pearson dispersion: mean (k - λ)²/λ is 1 for Poisson, with variance (2 + 1/λ)/N.
    dispersion = np.mean((counts - expected) ** 2 / expected)
    sd = np.sqrt(np.mean(2 + 1 / expected) / expected.size)
    assert abs(dispersion - 1) < 5 * sd


# ---------------------------------------------------------------------- tuning
def test_rates_are_tuned_to_target(data):
    t = data.bin_centers_ms
    movement = data.spikes[:, (t >= 0) & (t < 350)].mean(axis=1)
    target = data.trial_info.target_index.to_numpy()
    groups = [movement[target == k] for k in np.unique(target)]
    p = np.array([stats.f_oneway(*[g[:, n] for g in groups]).pvalue for n in range(data.n_neurons)])
    assert np.mean(p < 0.01) > 0.6


def _within_target_r2(counts, starts, target):
    """Mean R² of a linear fit of each neuron's count on start position, one fit per target."""
    r2 = []
    for k in np.unique(target):
        rows = target == k
        design = np.c_[np.ones(rows.sum()), starts[rows]]
        y = counts[rows]
        beta = np.linalg.lstsq(design, y, rcond=None)[0]
        r2.append(1 - (y - design @ beta).var(axis=0) / y.var(axis=0))
    return float(np.mean(r2))


def test_rates_depend_on_start_with_target_fixed(data):
    counts = data.spikes.mean(axis=1)
    starts, target = _starts(data), data.trial_info.target_index.to_numpy()
    observed = _within_target_r2(counts, starts, target)
    rng = np.random.default_rng(0)
    shuffled = [_within_target_r2(counts, starts[rng.permutation(len(starts))], target) for _ in range(20)]
    assert observed > max(shuffled)
    assert observed > 1.5 * np.mean(shuffled)


def test_preparatory_latents_are_not_a_linear_function_of_behaviour(data):
    design = np.c_[np.ones(data.n_trials), _starts(data), _targets(data)]
    prep = data.latents[:, 0]
    beta = np.linalg.lstsq(design, prep, rcond=None)[0]
    r2 = 1 - (prep - design @ beta).var(axis=0) / prep.var(axis=0)
    assert r2.mean() > 0.3  # smooth, mostly-monotone tuning ...
    assert r2.max() < 0.95  # ... but not a linear map


def test_movement_drives_the_latents_beyond_the_preparatory_state(data):
    # Undriven linear dynamics would make mid-reach latents an exact affine map of the
    # preparatory state; the velocity input must add variance that map cannot explain.
    design = np.c_[np.ones(data.n_trials), data.latents[:, 0]]
    mid_reach = data.latents[:, np.argmin(np.abs(data.bin_centers_ms - 250))]
    beta = np.linalg.lstsq(design, mid_reach, rcond=None)[0]
    r2 = 1 - (mid_reach - design @ beta).var(axis=0) / mid_reach.var(axis=0)
    assert r2.mean() < 0.95
    assert np.abs(mid_reach - data.latents[:, 0]).mean() > 0.3  # and the state has moved


def test_latents_rotate_and_decay_once_the_hand_stops(data):
    # After the reach there is no input, so one step is x' = A x + c; A's eigenvalues are the
    # dynamics': damped (|λ| < 1) rotations at 1–3 Hz.
    after = data.bin_centers_ms[None, :] > data.trial_info.reach_duration_ms.to_numpy()[:, None]
    pairs = after[:, :-1]
    now, nxt = data.latents[:, :-1][pairs], data.latents[:, 1:][pairs]
    step = np.linalg.lstsq(np.c_[now, np.ones(len(now))], nxt, rcond=None)[0][:-1].T
    eig = np.linalg.eigvals(step)
    freq_hz = np.abs(np.angle(eig)) / (2 * np.pi * data.bin_ms / 1000)
    assert np.all(np.abs(eig) < 1)
    assert np.all((freq_hz > 0.9) & (freq_hz < 3.1))


# ---------------------------------------------------------------------- determinism and io
def _arrays(d):
    return [d.spikes, d.rates, d.latents, d.heldout_neurons, *d.behavior.values()]


def test_same_seed_is_identical_and_different_seed_differs(data):
    again = synthesize(SynthConfig())
    for a, b in zip(_arrays(data), _arrays(again)):
        np.testing.assert_array_equal(a, b)
    pd.testing.assert_frame_equal(data.trial_info, again.trial_info)
    other = synthesize(SynthConfig(seed=1))
    assert not np.array_equal(data.spikes, other.spikes)
    assert not np.array_equal(data.rates, other.rates)
    assert not np.array_equal(_starts(data), _starts(other))


def test_round_trips_through_the_file_format(data, tmp_path):
    path = tmp_path / "synthetic.h5"
    data.save(path)
    loaded = load_dataset(path)
    for a, b in zip(_arrays(data), _arrays(loaded)):
        np.testing.assert_array_equal(a, b)
    pd.testing.assert_frame_equal(data.trial_info, loaded.trial_info, check_dtype=False)
    assert loaded.behavior_units == data.behavior_units
    assert loaded.provenance == data.provenance
    assert (loaded.bin_ms, loaded.t0_ms) == (data.bin_ms, data.t0_ms)
    config = json.loads(loaded.provenance.description.split("Config: ", 1)[1])
    assert config["seed"] == 0 and config["grid"] == 5


# ---------------------------------------------------------------------- configs
@pytest.mark.parametrize("overrides", [
    {"grid": 2},
    {"grid": 3, "n_latents": 5},
    {"n_latents": 1, "n_neurons": 3, "n_heldout_neurons": 0},
    {"start_spread_cm": 0.0},
    {"window_ms": (0.0, 600.0), "bin_ms": 20.0},
    {"heldout_targets": ()},
])
def test_unusual_but_valid_configs_generate(overrides):
    config = SynthConfig(n_trials=40, **overrides)
    d = synthesize(config)
    assert d.n_bins == config.n_bins and d.latents.shape[-1] == config.n_latents
    assert np.all(np.isfinite(d.rates)) and np.all(np.isfinite(d.latents))
    assert d.trial_info.heldout_condition.sum() == sum(
        d.trial_info.target_index.isin(config.resolved_heldout_targets()))


@pytest.mark.parametrize("overrides, field", [
    ({"grid": 1}, "grid"),
    ({"grid_spacing_cm": 0.0}, "grid_spacing_cm"),
    ({"n_trials": 0}, "n_trials"),
    ({"n_heldout_neurons": 120}, "n_heldout_neurons"),
    ({"n_heldout_neurons": 100}, "n_heldout_neurons"),
    ({"n_latents": 0}, "n_latents"),
    ({"bin_ms": -1.0}, "bin_ms"),
    ({"window_ms": (-200.0, 505.0)}, "window_ms"),
    ({"window_ms": (500.0, -200.0)}, "window_ms"),
    ({"reach_ms": 0.0}, "reach_ms"),
    ({"start_spread_cm": -1.0}, "start_spread_cm"),
    ({"heldout_targets": (25,)}, "heldout_targets"),
    ({"heldout_targets": (-1,)}, "heldout_targets"),
    ({"heldout_targets": (3, 3)}, "heldout_targets"),
    ({"heldout_targets": tuple(range(25))}, "heldout_targets"),
    ({"mean_rate_hz": 0.0}, "mean_rate_hz"),
    ({"split_fractions": (0.5, 0.2, 0.2)}, "split_fractions"),
    ({"split_fractions": (1.2, -0.1, -0.1)}, "split_fractions"),
])
def test_invalid_configs_raise_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=f"SynthConfig.{field}:"):
        SynthConfig(**overrides)


def test_config_is_immutable_and_replace_revalidates():
    config = SynthConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3
    with pytest.raises(ValueError, match="grid"):
        dataclasses.replace(config, grid=1)


def test_neuron_model_does_not_depend_on_trial_count():
    small, large = synthesize(SynthConfig(n_trials=30)), synthesize(SynthConfig(n_trials=60))
    np.testing.assert_array_equal(small.heldout_neurons, large.heldout_neurons)
