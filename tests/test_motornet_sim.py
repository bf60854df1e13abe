"""The MotorNet arm simulation: shapes, held-out targets, alignment, Poisson spikes, checkpoints, the shipped asset.

Simulation tests need the ``motornet`` package and skip, saying so, without it. They use a tiny
policy trained for two iterations (for plumbing) or the shipped trained policy (for anything that
needs real reaches); the shipped-asset test only reads files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from gnocchi_core import load_dataset
from gnocchi_core.cli import main
from gnocchi_core.data.motornet_sim import (
    ArmTaskConfig,
    MotorNetSimConfig,
    TrainConfig,
    load_policy,
    read_metrics,
    save_policy,
    simulate,
    train_policy,
)
from gnocchi_core.data.synthetic import default_heldout_targets

from conftest import assert_same_data

ASSET = Path(__file__).resolve().parents[1] / "assets" / "motornet_reach"
try:
    import motornet  # noqa: F401

    HAVE_MOTORNET = True
except ImportError:
    HAVE_MOTORNET = False
needs_motornet = pytest.mark.skipif(
    not HAVE_MOTORNET, reason="motornet is not installed (pip install -e '.[simulate]'), so the arm cannot be simulated")

TINY = MotorNetSimConfig(grid=3, trials_per_condition=2, n_neurons=6, n_heldout_neurons=2, seed=1)


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    """A 16-unit policy after two training iterations, saved: enough to exercise the plumbing."""
    torch.set_num_threads(1)
    task = ArmTaskConfig(n_units=16)
    policy, record = train_policy(task, TrainConfig(iterations=2, batch_size=4, seed=3), progress=False)
    path = tmp_path_factory.mktemp("policy") / "policy.pt"
    save_policy(policy, task, path, record)
    return policy, task, path


@pytest.fixture(scope="module")
def reaches():
    """Four trials per grid target from the shipped, trained policy."""
    torch.set_num_threads(1)
    policy, task, meta = load_policy(ASSET / "policy.pt")
    return simulate(MotorNetSimConfig(trials_per_condition=4, seed=5), policy, task, meta["training"])


# ---------------------------------------------------------------------- plumbing
@needs_motornet
def test_pipeline_shapes_and_labels(tiny_policy):
    policy, task, _ = tiny_policy
    data = simulate(TINY, policy, task)
    assert data.spikes.shape == (18, 70, 8)
    assert (data.bin_ms, data.window_ms) == (10.0, (-200.0, 500.0))
    assert data.rates.shape == data.spikes.shape and data.latents.shape == (18, 70, 16)
    assert {k: v.shape[-1] for k, v in data.behavior.items()} == {"hand_pos": 2, "hand_vel": 2, "muscle_act": 6}
    assert data.behavior_units == {"hand_pos": "cm", "hand_vel": "cm/s", "muscle_act": "activation (0-1)"}
    assert data.heldout_neurons.sum() == 2
    assert len(set(data.neuron_ids)) == 8 and data.neuron_ids.max() < 16
    # each neuron's rate is an increasing function of its unit's activity (neuron_ids = unit index)
    for j, unit in enumerate(data.neuron_ids):
        assert stats.spearmanr(data.rates[..., j].ravel(), data.latents[..., unit].ravel())[0] > 0.999
    info = data.trial_info
    for column in ("start_x", "start_y", "target_x", "target_y", "reach_angle", "go_cue_bin",
                   "movement_onset_bin", "target_on_bin", "endpoint_error_cm"):
        assert info[column].notna().all(), column
    assert sorted(np.bincount(info["condition_id"])) == [2] * 9
    assert np.all(np.linalg.norm(info[["target_x", "target_y"]].to_numpy()
                                 - info[["start_x", "start_y"]].to_numpy(), axis=1) >= TINY.min_reach_cm)
    neuron_means = data.rates.mean(axis=(0, 1))
    assert np.all((neuron_means >= 10 - 1e-3) & (neuron_means <= 40 + 1e-3))


@needs_motornet
def test_checkpoint_round_trip_gives_identical_simulations(tiny_policy):
    policy, task, path = tiny_policy
    state = torch.load(path, weights_only=True)
    assert set(state) == set(policy.state_dict())
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["task"]["n_units"] == 16 and meta["training"]["iterations"] == 2
    loaded, loaded_task, _ = load_policy(path)
    assert loaded_task == task
    assert_same_data(simulate(TINY, policy, task), simulate(TINY, loaded, loaded_task))
    other = simulate(MotorNetSimConfig(**{**TINY.__dict__, "seed": 2}), loaded, loaded_task)
    assert not np.array_equal(other.spikes, simulate(TINY, loaded, loaded_task).spikes)


def test_configs_reject_bad_values():
    with pytest.raises(ValueError, match="grid"):
        MotorNetSimConfig(grid=1)
    with pytest.raises(ValueError, match="heldout_targets"):
        MotorNetSimConfig(grid=3, heldout_targets=(9,))
    with pytest.raises(ValueError, match="window_ms"):
        MotorNetSimConfig(window_ms=(-205.0, 500.0))
    with pytest.raises(ValueError, match="workspace_half_cm"):
        ArmTaskConfig(workspace_half_cm=40.0)  # beyond the arm's reach
    with pytest.raises(ValueError, match="n_neurons"):
        MotorNetSimConfig(n_neurons=120, n_heldout_neurons=20).check_fits(ArmTaskConfig())


@needs_motornet
def test_cli_loads_a_policy_or_trains_one(tmp_path, tiny_policy, monkeypatch):
    _, _, policy_path = tiny_policy
    out = tmp_path / "sim.h5"
    argv = ["data", "simulate", "--out", str(out), "--grid", "3", "--trials-per-condition", "2",
            "--neurons", "5", "--heldout-neurons", "1", "--held-out", "0", "8", "--seed", "4",
            "--policy", str(policy_path), "--float16"]
    monkeypatch.setattr("sys.argv", ["gnocchi", *argv])
    assert main(argv) == 0
    data = load_dataset(out)
    assert (data.n_trials, data.n_neurons, int(data.heldout_neurons.sum())) == (18, 6, 1)
    assert data.rates.dtype == np.float16 and data.latents.dtype == np.float16
    assert sorted(data.trial_info.loc[data.trial_info["heldout_condition"], "condition_id"]) == [0, 0, 8, 8]
    assert data.provenance.command == "gnocchi " + " ".join(argv)
    assert out.with_suffix(".png").stat().st_size > 10_000

    trained = tmp_path / "new" / "sim.h5"
    assert main(["data", "simulate", "--out", str(trained), "--grid", "2", "--trials-per-condition", "1",
                 "--neurons", "3", "--heldout-neurons", "0", "--train-iterations", "1"]) == 0
    _, task, meta = load_policy(trained.parent / "policy.pt")
    assert task == ArmTaskConfig() and meta["training"]["iterations"] == 1
    assert "median_endpoint_error_cm" in meta["training"]


def test_cli_rejects_too_many_neurons_in_one_line(tmp_path, capsys):
    out = tmp_path / "x.h5"
    assert main(["data", "simulate", "--out", str(out), "--neurons", "200", "--policy",
                 str(ASSET / "policy.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "n_neurons" in err and not out.exists()


# ---------------------------------------------------------------------- with the trained policy
@needs_motornet
def test_heldout_targets_only_in_test_split(reaches):
    info = reaches.trial_info
    heldout = set(default_heldout_targets(5))
    assert len(heldout) == 3
    np.testing.assert_array_equal(info["heldout_condition"], info["condition_id"].isin(heldout))
    assert (info.loc[info["heldout_condition"], "split"] == "test").all()
    assert not set(info.loc[info["split"] != "test", "condition_id"]) & heldout
    assert set(info["split"]) == {"train", "valid", "test"}


@needs_motornet
def test_trials_are_aligned_to_movement_onset(reaches):
    speed = np.linalg.norm(reaches.behavior["hand_vel"], axis=-1)
    onset = 20  # -200 ms at 10 ms bins
    threshold = 0.15 * speed.max(axis=1)
    assert np.all(speed[:, onset - 1] < threshold) and np.all(speed[:, onset] >= threshold)
    assert np.mean(speed[:, :onset] < threshold[:, None]) > 0.98  # still before onset
    info = reaches.trial_info
    rt = info["movement_onset_bin"] - info["go_cue_bin"]
    assert rt.min() > 0 and 5 <= rt.median() <= 40  # 50-400 ms reaction times
    hand = reaches.behavior["hand_pos"]
    start = info[["start_x", "start_y"]].to_numpy()
    assert np.median(np.linalg.norm(hand[:, 0] - start, axis=1)) < 1.0  # the window starts at the start


@needs_motornet
def test_spikes_are_poisson_draws_from_the_rates(reaches):
    expected = reaches.rates.astype(float) * reaches.bin_ms / 1000
    counts = reaches.spikes.astype(float)
    n = counts.size
    z = (counts.sum() - expected.sum()) / np.sqrt(expected.sum())
    assert abs(z) < 4
    pearson = np.sum((counts - expected) ** 2 / expected) / n  # 1 for Poisson, > 1 if overdispersed
    assert abs(pearson - 1) < 8 * np.sqrt(2 / n) + 0.01
    # where the rate is high, counts are high: spikes follow the rates, not just their mean
    high = expected > np.quantile(expected, 0.9)
    low = expected < np.quantile(expected, 0.1)
    assert counts[high].mean() > 3 * counts[low].mean()


@needs_motornet
def test_trained_policy_reaches_grid_targets(reaches):
    metrics = read_metrics(reaches)
    assert metrics["median_endpoint_error_cm"] < 1.0 and metrics["success_rate"] > 0.8
    assert 10 <= metrics["mean_rate_hz"] <= 40


# ---------------------------------------------------------------------- the shipped dataset
def test_shipped_asset_loads_with_held_out_conditions_and_accurate_reaches():
    data = load_dataset(ASSET / "motornet_reach.h5")
    info = data.trial_info
    assert info["condition_id"].nunique() == 25 and data.n_bins == 70 and data.bin_ms == 10.0
    heldout = set(default_heldout_targets(5))
    assert set(info.loc[info["heldout_condition"], "condition_id"]) == heldout
    assert not set(info.loc[~info["heldout_condition"], "condition_id"]) & heldout
    assert (info.loc[info["heldout_condition"], "split"] == "test").all()
    metrics = read_metrics(data)
    assert metrics["median_endpoint_error_cm"] < 1.0 and metrics["tuned_fraction"] > 0.5
    assert np.median(info["endpoint_error_cm"]) < 1.0
    assert data.provenance.source.startswith("MotorNet") and data.provenance.licence == "CC0-1.0"
    assert "Codol" in data.provenance.citation and "McCart" in data.provenance.citation
    assert data.provenance.command.startswith("gnocchi data simulate")
    assert (ASSET / "motornet_reach.png").is_file() and (ASSET / "policy.json").is_file()
    assert (ASSET / "motornet_reach.h5").stat().st_size < 10e6
