"""Ground truth of a MotorNet dataset regenerated from its policy, so the shipped file stays small.

The shipped default dataset stores spikes and behaviour only (`gnocchi data simulate
--no-ground-truth`): its rates and latents (about 85 MB uncompressed at 1500 trials, noisy and
nearly incompressible) are a deterministic function of the policy and the simulation config that
the file records in its provenance. `regenerate_ground_truth` runs that simulation again (about
20 s on one CPU core) and checks it reproduces the stored spikes before trusting its rates.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import GnocchiError
from .trialdata import TrialData

#: the share of non-zero spike counts that must match for the regenerated rates to count as this file's
#: truth (the same machine reproduces every count; another CPU's floating point may flip a rare draw)
MIN_MATCH = 0.999


def simulation_config(data: TrialData) -> dict | None:
    """The `MotorNetSimConfig` fields a MotorNet dataset was simulated with, or None for other data."""
    from .motornet_sim import SOURCE

    description = data.provenance.description or ""
    if data.provenance.source != SOURCE or "Config: " not in description:
        return None
    return json.JSONDecoder().raw_decode(description.split("Config: ", 1)[1])[0]


def regenerate_ground_truth(data: TrialData, policy_path: str | os.PathLike) -> TrialData:
    """``data`` with ``rates`` and ``latents`` re-simulated from the policy at ``policy_path``.

    Raises GnocchiError when ``data`` is not a MotorNet simulation or the policy does not
    reproduce its spikes (a different policy, or edited data).
    """
    from .motornet_sim import MotorNetSimConfig, load_policy, simulate

    fields = simulation_config(data)
    if fields is None:
        raise GnocchiError("ground truth can only be regenerated for a MotorNet simulation "
                           f"(this dataset's source is {data.provenance.source!r})")
    config = MotorNetSimConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    policy, task, meta = load_policy(policy_path)
    fresh = simulate(config, policy, task, meta.get("training"))
    if fresh.spikes.shape != data.spikes.shape:
        raise GnocchiError(f"{policy_path}: re-simulating gives spikes of shape {fresh.spikes.shape}, the dataset "
                           f"has {data.spikes.shape}")
    spiking = (fresh.spikes > 0) | (data.spikes > 0)  # zeros dominate and would hide a mismatch
    match = float(np.mean(fresh.spikes[spiking] == data.spikes[spiking]))
    if match < MIN_MATCH:
        raise GnocchiError(f"{policy_path}: re-simulating reproduces only {100 * match:.2f}% of the dataset's "
                           f"non-zero spike counts (need {100 * MIN_MATCH:g}%): not the policy this dataset was "
                           f"made with")
    data.rates, data.latents = fresh.rates, fresh.latents
    return data


def with_ground_truth(data: TrialData, data_path: str | os.PathLike, *, verbose: bool = True) -> TrialData:
    """``data`` unchanged when it has rates or is not a MotorNet simulation; else with rates regenerated
    from the ``policy.pt`` beside ``data_path`` (when there is one)."""
    if data.rates is not None or simulation_config(data) is None:
        return data
    policy = Path(data_path).parent / "policy.pt"
    if not policy.is_file():
        return data
    if verbose:
        print(f"regenerating ground-truth rates from {policy} (about 20 s)")
    return regenerate_ground_truth(data, policy)
