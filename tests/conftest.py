"""Shared fixtures: the real recordings beside the repo and small hand-made datasets."""

from __future__ import annotations

import os
from pathlib import Path

# One thread per test process, and per process a test starts: on 2 shared cores, torch's and the BLAS
# libraries' own thread pools oversubscribe the machine as soon as anything else runs (a 2-minute suite
# took 38). Set before numpy / torch are imported; tests about threading set their own.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    if not os.environ.get(_variable):  # unset or empty
        os.environ[_variable] = "1"

import numpy as np
import pandas as pd
import pytest

from gnocchi_core import Provenance, TrialData

import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

torch.set_num_threads(1)
threadpool_limits(1)  # BLAS pools already loaded (a plugin may import numpy before this file)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MC_MAZE_SMALL = SHARED_DATA / "mc_maze_small"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real recordings in ../shared/data; skip (with the reason) only when the folder is absent."""
    if not MC_MAZE_SMALL.is_dir():
        pytest.skip(f"real recordings not found at {MC_MAZE_SMALL} (the ../shared/data folder beside the repo)")
    return MC_MAZE_SMALL


def make_trialdata(n_trials=12, n_bins=20, n_neurons=6, seed=0, with_truth=True) -> TrialData:
    """A small dataset exercising every field of the contract."""
    rng = np.random.default_rng(seed)
    rates = rng.uniform(5, 40, (n_trials, n_bins, n_neurons)).astype(np.float32)
    info = pd.DataFrame({
        "split": np.array(["train", "valid", "test"])[np.arange(n_trials) % 3],
        "condition_id": np.arange(n_trials) % 4,
        "heldout_condition": np.arange(n_trials) % 4 == 3,
        "start_x": rng.normal(size=n_trials), "start_y": rng.normal(size=n_trials),
        "target_x": rng.normal(size=n_trials), "target_y": rng.normal(size=n_trials),
        "reach_angle": rng.uniform(-np.pi, np.pi, n_trials),
        "go_cue_bin": rng.integers(0, 5, n_trials),
        "label": [f"trial {i}" for i in range(n_trials)],
    })
    return TrialData(
        spikes=rng.poisson(rates * 0.01),
        bin_ms=10.0,
        t0_ms=-50.0,
        trial_info=info,
        behavior={"hand_pos": rng.normal(size=(n_trials, n_bins, 2)).astype(np.float32),
                  "hand_vel": rng.normal(size=(n_trials, n_bins, 2))},
        behavior_units={"hand_pos": "cm", "hand_vel": "cm/s"},
        heldout_neurons=np.arange(n_neurons) % 3 == 1,
        neuron_ids=np.arange(n_neurons) + 100,
        rates=rates if with_truth else None,
        latents=rng.normal(size=(n_trials, n_bins, 3)) if with_truth else None,
        provenance=Provenance(source="unit test", licence="CC0-1.0", citation="none",
                              description="hand-made", command="pytest"),
    )


def assert_same_data(a: TrialData, b: TrialData) -> None:
    """Every field equal, exactly."""
    np.testing.assert_array_equal(a.spikes, b.spikes)
    assert (a.bin_ms, a.t0_ms, a.align_event) == (b.bin_ms, b.t0_ms, b.align_event)
    pd.testing.assert_frame_equal(a.trial_info, b.trial_info, check_dtype=False)
    assert list(a.behavior) == list(b.behavior)
    for name in a.behavior:
        np.testing.assert_array_equal(a.behavior[name], b.behavior[name])
    assert a.behavior_units == b.behavior_units
    np.testing.assert_array_equal(a.heldout_neurons, b.heldout_neurons)
    np.testing.assert_array_equal(a.neuron_ids, b.neuron_ids)
    for name in ("rates", "latents"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)
    assert a.provenance == b.provenance


# ---------------------------------------------------------------- browser tests (pytest-playwright)
CHROMIUM = "/usr/bin/chromium"  # Debian's Chromium: `playwright install` cannot download a browser here


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright launches Debian's Chromium with the flags a closed, GPU-less machine needs."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (the README's test command installs Debian's chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "headless": True,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--disable-sync"]}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1800, "height": 1300}}
