"""`gnocchi bench cobps` / `bench train lfads`: selection never sees the scored trials, and the data
sources they accept (NLB tensors, a DANDI NWB train session, a GNOCCHI dataset)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from gnocchi_core.bench import bench_cobps, bench_train_lfads, load_heldout_split
from gnocchi_core.errors import GnocchiError
from gnocchi_core.models import load_model

from recordings import nlb_tensors, nlb_train_session_nwb

#: A tiny LFADS, as `--config` overrides.
TINY = {"ic_enc_dim": 16, "ci_enc_dim": 8, "con_dim": 8, "co_dim": 2, "ic_dim": 8, "gen_dim": 16, "fac_dim": 4,
        "posterior_samples": 4, "prior_components": 2,
        "train": {"epochs": 4, "batch_size": 16, "patience": 1000, "checkpoint_every": 2}}


def test_nlb_tensors_select_on_train_trials_and_score_the_eval_trials(tmp_path):
    path = nlb_tensors(tmp_path / "nlb.h5", n_train=40, n_eval=12)
    data, description = load_heldout_split(path)
    info = data.trial_info
    nlb_train = info["nlb_split"].to_numpy() == "train"
    assert set(info.loc[nlb_train, "split"]) == {"train", "valid"}
    assert (info.loc[~nlb_train, "split"] == "test").all() and (~nlb_train).sum() == 12
    assert (info["split"] == "valid").sum() == 8  # 20% of the 40 train trials
    assert "scored once" in description
    again, _ = load_heldout_split(path)
    assert again.trial_info["split"].equals(info["split"])  # seeded


def test_the_scored_trials_held_out_spikes_change_the_score_and_nothing_else(tmp_path):
    """Early stopping and checkpoint selection must not see the eval trials' held-out spikes: redrawing
    them leaves every trained weight and the whole training history bit-identical."""
    torch.set_num_threads(1)
    runs = []
    for name, redraw in (("a", None), ("b", 99)):
        path = nlb_tensors(tmp_path / f"{name}.h5", eval_heldout_seed=redraw)
        result = bench_cobps(path, config=TINY, out_dir=tmp_path / f"model_{name}", progress=False)
        runs.append((result, load_model(tmp_path / f"model_{name}")))
    (first, model_a), (second, model_b) = runs
    assert model_a.history == model_b.history
    for (key, a), b in zip(model_a.net.state_dict().items(), model_b.net.state_dict().values()):
        assert torch.equal(a, b), key
    assert first["lfads"] != second["lfads"]  # the score does read them
    assert first["epochs"] == 4 and first["s_per_epoch"] > 0 and np.isfinite(first["smoothing"])


def test_a_dandi_train_session_is_binned_like_nlb_tools_and_its_val_trials_are_scored(tmp_path):
    path = nlb_train_session_nwb(tmp_path / "sub-Planted_ses-small_desc-train_behavior+ecephys.nwb",
                                 n_trials=48, n_val=12)
    data, description = load_heldout_split(path)
    assert data.bin_ms == 5.0 and data.n_bins == 140 and data.t0_ms == -250.0
    assert data.heldout_neurons.sum() == 3
    split = data.trial_info["split"]
    assert (split == "test").sum() == 12 and (split == "valid").sum() == 7  # round(0.2 × 36)
    assert "'val' trials scored once" in description


def test_cli_bench_cobps_reads_an_nwb_train_session_over_seeds(tmp_path):
    path = nlb_train_session_nwb(tmp_path / "train.nwb")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    result = subprocess.run([sys.executable, "-m", "gnocchi_core.cli", "bench", "cobps", "--data", str(path),
                             "--config", str(config), "--epochs", "2", "--seeds", "0", "1"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "mean ± sd over seeds 0 1" in result.stdout and result.stdout.count("co-bps on 12 test trials") == 2


def test_bench_train_lfads_times_the_co_bps_split(tmp_path):
    path = nlb_tensors(tmp_path / "nlb.h5", n_train=40)
    timing = bench_train_lfads(path, epochs=2)
    assert timing["steps_per_epoch"] == 1 and len(timing["epoch_s"]) == 2  # 32 train trials, batch 64


def test_sources_that_cannot_be_scored_are_refused_in_one_line(tmp_path, shared_data):
    with pytest.raises(GnocchiError, match="pass the train session"):
        load_heldout_split(shared_data / "sub-Jenkins_ses-small_desc-test_ecephys.nwb")
    with pytest.raises(GnocchiError, match="one-line recipe|nlb_tools"):
        load_heldout_split(tmp_path / "missing.h5")


def test_a_dataset_without_test_trials_is_refused(tmp_path):
    from gnocchi_core.data.synthetic import SynthConfig, synthesize

    data = synthesize(SynthConfig(n_trials=60, n_neurons=8, n_heldout_neurons=2, grid=2, seed=0,
                                  split_fractions=(0.8, 0.2, 0.0)))
    data.save(tmp_path / "d.h5")
    with pytest.raises(GnocchiError, match="no 'test' trials"):
        load_heldout_split(tmp_path / "d.h5")


def test_mc_maze_small_split(shared_data):
    data, _ = load_heldout_split(shared_data / "mc_maze_small_full.h5")
    counts = data.trial_info["split"].value_counts().to_dict()
    assert counts == {"train": 60, "valid": 15, "test": 25}


def test_the_ablations_optimiser_is_lfads_torchs(tmp_path, monkeypatch):
    """`{"train": {"warmup_steps": 0, "min_lr_fraction": 1.0, "ema_decay": 0.0}}` (the lfads-torch
    ablation) means a constant learning rate and evaluated weights equal to the trained ones."""
    from gnocchi_core.data.synthetic import SynthConfig, synthesize
    from gnocchi_core.models.lfads import LfadsConfig, LfadsModel
    from gnocchi_core.models.training import Trainer, learning_rate

    overrides = {**TINY, "train": {**TINY["train"], "warmup_steps": 0, "min_lr_fraction": 1.0, "ema_decay": 0.0}}
    config = LfadsConfig.from_dict(overrides)
    assert {learning_rate(step, 100, config.train) for step in (0, 1, 50, 99)} == {config.train.lr}
    data = synthesize(SynthConfig(n_trials=40, n_neurons=8, n_heldout_neurons=2, grid=2, seed=0))
    model = LfadsModel(config, device="cpu")
    seen = []
    original = Trainer.best_module

    def spy(trainer):
        seen.append({k: (v.clone(), trainer.ema.module.state_dict()[k]) for k, v in trainer.module.state_dict().items()})
        return original(trainer)

    monkeypatch.setattr(Trainer, "best_module", spy)
    model.fit(data, tmp_path / "m", progress=False)
    for key, (raw, averaged) in seen[0].items():
        assert torch.equal(raw, averaged), key
