"""The shipped MotorNet dataset: its scale, its splits, its ground truth regenerated from the policy,
and the behaviour decoder the evaluation reads every reach through."""

from __future__ import annotations

import numpy as np
import pytest

from gnocchi_core.analysis.decoding import BehaviourDecoder
from gnocchi_core.analysis.evaluation import decoder_endpoint_errors
from gnocchi_core.data import load_dataset
from gnocchi_core.data import motornet_sim as sim
from gnocchi_core.data.motornet_truth import regenerate_ground_truth, simulation_config, with_ground_truth
from gnocchi_core.errors import GnocchiError
from gnocchi_core.workflows import DEFAULT_DATA

POLICY = DEFAULT_DATA.parent / "policy.pt"


@pytest.fixture(scope="module")
def shipped():
    return with_ground_truth(load_dataset(DEFAULT_DATA), DEFAULT_DATA, verbose=False)


def test_shipped_dataset_is_at_scale_with_stratified_splits():
    data = load_dataset(DEFAULT_DATA)
    info = data.trial_info
    assert data.n_trials >= 1500 and data.rates is None  # the truth is regenerated, not stored
    heldin = ~info["heldout_condition"].to_numpy(bool)
    counts = info[heldin].groupby("condition_id")["split"].value_counts().unstack(fill_value=0)
    assert counts["test"].min() >= 15 and counts["valid"].min() >= 1 and counts["train"].min() >= 1
    assert set(info.loc[~heldin, "split"]) == {"test"}
    assert info.groupby("condition_id").size().min() >= 60


def test_ground_truth_regenerates_exactly_from_the_policy(shipped):
    assert shipped.rates.shape == shipped.spikes.shape and shipped.latents.shape[:2] == shipped.spikes.shape[:2]
    # re-drawing the spikes from the regenerated rates with the simulation's own spike stream gives the
    # stored counts back (the rates are kept as float32, so a rare draw at a rounding edge may differ)
    config = sim.MotorNetSimConfig(**{k: tuple(v) if isinstance(v, list) else v
                                      for k, v in simulation_config(shipped).items()})
    spike_rng = np.random.default_rng(config.seed).spawn(3)[2]
    redrawn = spike_rng.poisson(shipped.rates.astype(np.float64) * shipped.bin_ms / 1000.0)
    assert np.mean(redrawn != shipped.spikes) < 1e-5
    # the rates explain the stored spikes: mean counts match the Poisson means per neuron
    expected = shipped.rates.mean(axis=(0, 1)) * shipped.bin_ms / 1000
    np.testing.assert_allclose(shipped.spikes.mean(axis=(0, 1)), expected, rtol=0.05)


def test_regeneration_refuses_data_the_policy_did_not_make(tmp_path):
    policy, task, meta = sim.load_policy(POLICY)
    small = sim.simulate(sim.MotorNetSimConfig(trials_per_condition=1, seed=3), policy, task, meta["training"])
    small.rates = small.latents = None
    regenerate_ground_truth(small, POLICY)  # its own policy reproduces it
    small.rates = None
    small.spikes = np.random.default_rng(0).permutation(small.spikes)
    with pytest.raises(GnocchiError, match="reproduces only"):
        regenerate_ground_truth(small, POLICY)
    other = load_dataset(DEFAULT_DATA).subset(trials=np.arange(5))
    other.provenance.source = "somewhere else"
    with pytest.raises(GnocchiError, match="MotorNet simulation"):
        regenerate_ground_truth(other, POLICY)


def test_decoder_fitted_on_rates_reads_the_endpoint_within_half_a_centimetre(shipped):
    train = shipped.subset(trials=shipped.heldin_conditions("train"))
    test = np.flatnonzero(shipped.heldin_conditions("test"))
    from_rates = BehaviourDecoder.fit(train)
    assert from_rates.source == "rates"
    errors = decoder_endpoint_errors(from_rates, shipped, test)
    assert np.median(errors) <= 0.5, np.median(errors)
    # a decoder fitted on single-trial smoothed spikes reads the same noise-free rates far worse
    from_spikes = BehaviourDecoder.fit(train, source="spikes")
    assert np.median(decoder_endpoint_errors(from_spikes, shipped, test)) > 2 * np.median(errors)
