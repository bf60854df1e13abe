"""Hyper-parameter sweeps on Ray Tune, from a laptop to a cluster: `run_sweep` (and `gnocchi sweep`).

A sweep trains ``trials`` models of one kind on one dataset, each with hyper-parameters drawn from a
search space (`space`: a JSON object of config overrides whose values may be search domains), under
a scheduler: ASHA (asynchronous successive halving: stops the trials that score worst at epoch
milestones; the default for GNOCCHI), population-based training (PBT: every
``train.checkpoint_every`` epochs the worst quarter of the trials continue from the best quarter's
weights with perturbed hyper-parameters, as AutoLFADS does; the default for LFADS) or none (every
trial trains to its epoch budget: a plain random search). The objective is
the validation score the model reports each epoch: LFADS's held-out neurons' bits per spike on the
valid trials when the data holds neurons out (else its validation loss), GNOCCHI's validation loss;
``metric`` names another validation value the model records each epoch (`runner.METRICS`).

Without an address a local Ray runtime starts in-process; with one (``ray start --head`` on one
machine, ``ray start --address HEAD:6379`` on the others) the trials spread over the cluster, each
with ``cpus_per_trial`` / ``gpus_per_trial`` (its model on CUDA when it has a GPU, torch threads =
its CPUs). On several machines the output folder must be on a file system they all mount.

The output folder holds::

    sweep.json         the sweep's settings (a resume must match them)
    trials/trial_N/    one normal model folder per trial (`load_model` opens it) with sweep_trial.json:
                       its score, epochs, seconds, parameters and runs
    ray/sweep/         Ray Tune's experiment state (what --resume restores)
    results.csv        one row per trial: trial, score, best_epoch, epochs, seconds, stopped, the searched
                       parameters, folder
    best/              a copy of the best trial's model folder

A trial's score is the objective at the epoch its saved weights come from (the lowest validation
loss, as `gnocchi train` keeps). A killed sweep continues with ``resume=True``: finished trials are
kept, the others continue from their folders' ``last.pt``.
"""

from .runner import METRICS, SCHEDULERS, Objective, SweepResult, require_ray, run_sweep
from .space import DOMAINS, PERTURBABLE, Domain, SearchSpace, parse_space, read_space

__all__ = ["DOMAINS", "METRICS", "PERTURBABLE", "SCHEDULERS", "Domain", "Objective", "SearchSpace", "SweepResult",
           "parse_space", "read_space", "require_ray", "run_sweep"]
