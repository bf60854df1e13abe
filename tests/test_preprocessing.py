"""Preprocessing for continuous models: each step's inverse, and the fitted pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gnocchi_core.data import preprocessing as pp


@pytest.fixture
def counts():
    rng = np.random.default_rng(0)
    return rng.poisson(rng.uniform(0.05, 0.6, (1, 1, 7)), size=(9, 50, 7))


def test_step_inverses_hold(counts):
    rate = pp.counts_to_rate(counts, 5.0)
    np.testing.assert_allclose(pp.rate_to_counts(rate, 5.0), counts, rtol=1e-12)
    np.testing.assert_allclose(pp.sqrt_inverse(pp.sqrt_forward(rate)), rate, rtol=1e-6, atol=1e-9)
    mean, std = rate.mean((0, 1)), rate.std((0, 1))
    np.testing.assert_allclose(pp.standardize_inverse(pp.standardize_forward(rate, mean, std), mean, std),
                               rate, rtol=1e-6, atol=1e-9)


def test_smoothing_keeps_constant_signals_and_total_spikes():
    constant = np.full((2, 40, 3), 7.0)
    np.testing.assert_allclose(pp.gaussian_smooth(constant, 25.0, 5.0), constant, rtol=1e-12)
    impulse = np.zeros((1, 81, 1))
    impulse[0, 40, 0] = 1.0
    smoothed = pp.gaussian_smooth(impulse, 20.0, 5.0)[0, :, 0]
    assert smoothed.sum() == pytest.approx(1.0)
    # σ = 20 ms = 4 bins: the spread of the smoothed impulse is the kernel's σ
    assert np.sqrt((smoothed * (np.arange(81) - 40) ** 2).sum()) == pytest.approx(4.0, rel=1e-3)
    np.testing.assert_array_equal(pp.gaussian_smooth(impulse, 0.0, 5.0), impulse)


def test_pipeline_standardises_and_inverts_to_smoothed_rates(counts):
    prep = pp.Preprocessing(sigma_ms=20.0, sqrt=True, standardize=True).fit(counts, bin_ms=5.0)
    z = prep.transform(counts)
    assert z.shape == counts.shape
    np.testing.assert_allclose(z.mean((0, 1)), 0.0, atol=1e-9)
    np.testing.assert_allclose(z.std((0, 1)), 1.0, atol=1e-9)
    np.testing.assert_allclose(prep.inverse_transform(z), prep.smoothed_rates(counts), rtol=1e-6, atol=1e-9)
    # without sqrt as well
    plain = pp.Preprocessing(sigma_ms=20.0, sqrt=False).fit(counts, 5.0)
    np.testing.assert_allclose(plain.inverse_transform(plain.transform(counts)),
                               plain.smoothed_rates(counts), rtol=1e-6, atol=1e-9)


def test_inverse_never_gives_negative_rates(counts):
    prep = pp.Preprocessing().fit(counts, 5.0)
    assert (prep.inverse_transform(np.full(counts.shape, -50.0)) >= 0).all()


def test_parameters_survive_json(counts):
    prep = pp.Preprocessing(sigma_ms=30.0, sqrt=False).fit(counts, 5.0)
    again = pp.Preprocessing.from_dict(json.loads(json.dumps(prep.to_dict())))
    np.testing.assert_array_equal(again.transform(counts), prep.transform(counts))
    assert (again.sigma_ms, again.sqrt, again.bin_ms) == (30.0, False, 5.0)


def test_unfitted_pipeline_says_so(counts):
    with pytest.raises(RuntimeError, match="not fitted"):
        pp.Preprocessing().transform(counts)
