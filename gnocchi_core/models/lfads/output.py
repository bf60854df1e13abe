"""Write a trained LFADS model's outputs the way lfads-torch's posterior sampling does.

lfads-torch (`post_run/analysis.py`, `run_posterior_sampling`) copies its input data file to
`lfads_output_{session}.h5` and adds, for each split, `{split}_{name}` for every field of its
`SessionOutput`, averaged over posterior samples:

    output_params (n, bins, recon neurons)  rates in expected counts per bin
    factors (n, bins, fac_dim)   ic_mean, ic_std (n, ic_dim)   co_means, co_stds (n, bins, co_dim)
    gen_states (n, bins, gen_dim)   gen_init (n, gen_dim)   gen_inputs (n, bins, co_dim)
    con_states (n, bins, con_dim)

Here the "input file" part is what `export_lfads` writes for the dataset (`{split}_encod_data`,
`{split}_recon_data`, `{split}_inds`, ...), so neurons follow lfads-torch's recon order: held-in
first, held-out last (`recon_neuron_order` in the `gnocchi_meta` attribute maps them back).
Without a controller the co/con arrays have a last dimension of 0, as lfads-torch's would.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from ...atomic import atomic_path
from ...data.lfads_h5 import export_lfads
from ...data.trialdata import SPLITS, TrialData
from .model import OUTPUT_NAMES, LfadsModel


def write_lfads_output(model: LfadsModel, data: TrialData, path: str | os.PathLike, *,
                       samples: int | None = None, seed: int = 0) -> None:
    """Write `path` (atomically): the dataset in lfads-torch's input layout plus the model's outputs."""
    order = np.r_[np.flatnonzero(~data.heldout_neurons), np.flatnonzero(data.heldout_neurons)]
    with atomic_path(path) as tmp:
        export_lfads(data, tmp)
        with h5py.File(tmp, "a") as f:
            for split in SPLITS:
                inds = np.flatnonzero(data.trial_info["split"].to_numpy() == split)
                if len(inds) == 0:
                    continue
                outputs = model.infer(data.spikes[inds], samples=samples, seed=seed)
                outputs["output_params"] = outputs["output_params"][:, :, order]
                for name in OUTPUT_NAMES:
                    f.create_dataset(f"{split}_{name}", data=outputs[name].astype(np.float32),
                                     compression="gzip", compression_opts=4)
