"""LFADS (Pandarinath et al. 2018) as lfads-torch builds it, behind GNOCCHI's generation interface.

A bidirectional GRU reads a trial's held-in spikes and gives the posterior over the generator's
initial condition (IC); a second bidirectional GRU feeds a controller GRU that, bin by bin, sees
it (lagged) and the previous factors and infers an input to the generator; the generator's state
goes through a kernel-normalised linear map to factors, and a linear readout gives every neuron's
Poisson log-rate, held-out neurons included (they are reconstructed but never encoded, as in the
Neural Latents Benchmark). Training maximises the Poisson likelihood under coordinated dropout
(Keshtkaran & Pandarinath 2019: inputs dropped at random are the only ones whose reconstruction
carries gradient, so the model cannot learn to copy spikes through), minus KL penalties (IC
against a learnable-mean Gaussian, inferred inputs against an AR(1) prior) and L2 penalties on
the recurrent weights, both ramped in linearly. At inference outputs are averaged over samples
of the posteriors (lfads-torch's posterior sampling).

Defaults are lfads-torch's `nlb_mc_maze_small` config where it fixes a value: IC encoder 100,
controller-input encoder 80 with lag 1, controller 80, 4 inferred inputs, IC 100, generator 100,
40 factors, coordinated dropout 0.3, state clip 5, IC prior variance 0.1 and posterior variance
floor 1e-4, AR(1) prior τ = 10 bins and innovation variance 0.1, loss scale 1e4 with gradient
clipping at 200 (so 0.02 on the unscaled loss), peak learning rate 4e-3, no weight decay, batch 64.
lfads-torch leaves the regularisers to population-based training ("sampled"; its yaml holds
dropout 0.02 and KL / L2 scales 0); here they are fixed, inside AutoLFADS's search ranges, to
values chosen by cross-validation on MC_Maze_Small *training* trials only (never the eval
trials): dropout 0.3, KL scales 1e-5 (IC and inputs), L2 1e-3 (generator, controller), ramped
over the first 300 steps, up to 800 epochs with early stopping. A model this size (~0.35 M
parameters) against 60–75 trials overfits within a few hundred steps without them.

Departures from lfads-torch. In the model, none: the recurrent loops are fused kernels with
hand-written backpropagation (kernels.py; a training step about 2× faster on CPU than lfads-torch's
cells under autograd, `python benchmarks/lfads_kernels.py`); ramps count optimisation steps, not
epochs (a step counter buffer, so resume is exact); the inferred-input KL uses the sample that
drove the generator; validation scores the posterior means (no sampling noise), and the
`valid_loss` the trainer early-stops on is the reconstruction term, what lfads-torch monitors.
In training (the shared `Trainer`): AdamW (with weight decay 0, the same update as lfads-torch's
Adam) with 50 warm-up steps and cosine decay to 5% of the peak where lfads-torch keeps 4e-3
constant (`lr_scheduler: False`), and validation, checkpoints and inference use an exponential
moving average of the weights (decay 0.99) where lfads-torch uses the raw weights; early-stopping
patience 150 epochs against its 200 after a burn-in. What each part contributes to the co-bps
difference is measured by `python benchmarks/lfads_torch/run.py`, which trains lfads-torch, our
defaults, ours with its optimiser (``{"train": {"warmup_steps": 0, "min_lr_fraction": 1.0,
"ema_decay": 0.0}}``) and ours with its optimiser and regularisation on the same split.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ...data.trialdata import TrialData
from ...data.validation import FRACTION, NON_NEGATIVE, POSITIVE, Range, as_integer, at_least
from ...errors import ArgumentError, DataError
from ..base import Generated, ModelFolder, poisson_spikes, trial_counts
from ..training import TRAIN_RULES, TrainConfig, load_weights
from ..validation import check_choice, check_codes, check_count, check_guidance, check_noise, check_seed, \
    check_steps, check_config, from_dict
from .modules import Decoder, Encoder, FanInLinear
from .priors import AutoregressivePrior, GaussianICPrior

FORMAT_VERSION = 1
BATCH = 256  # trials per forward pass when encoding / generating / sampling posteriors
OUTPUT_NAMES = ("output_params", "factors", "ic_mean", "ic_std", "co_means", "co_stds", "gen_states",
                "gen_init", "gen_inputs", "con_states")  # lfads-torch's SessionOutput fields, in order


def _default_train() -> TrainConfig:
    return TrainConfig(epochs=800, batch_size=64, lr=4e-3, weight_decay=0.0, warmup_steps=50,
                       min_lr_fraction=0.05, grad_clip=200.0, ema_decay=0.99, patience=150,
                       checkpoint_every=10)


@dataclass
class LfadsConfig:
    # architecture (lfads-torch nlb_mc_maze_small)
    ic_enc_dim: int = 100
    ci_enc_dim: int = 80  # 0 (or con_dim / co_dim 0) turns the controller off
    ci_lag: int = 1
    con_dim: int = 80
    co_dim: int = 4
    ic_dim: int = 100
    gen_dim: int = 100
    fac_dim: int = 40
    cell_clip: float = 5.0
    # priors and posteriors
    ic_prior_variance: float = 0.1
    ic_post_var_min: float = 1e-4
    co_prior_tau: float = 10.0  # bins
    co_prior_noise_variance: float = 0.1
    # regularisation
    dropout_rate: float = 0.3
    cd_rate: float = 0.3  # coordinated dropout
    kl_ic_scale: float = 1e-5
    kl_co_scale: float = 1e-5
    l2_gen_scale: float = 1e-3
    l2_con_scale: float = 1e-3
    l2_ic_enc_scale: float = 0.0
    l2_ci_enc_scale: float = 0.0
    kl_start_step: int = 0
    kl_increase_steps: int = 300
    l2_start_step: int = 0
    l2_increase_steps: int = 300
    loss_scale: float = 1e4
    # inference
    posterior_samples: int = 50
    prior_components: int = 10
    train: TrainConfig = field(default_factory=_default_train)

    @property
    def use_controller(self) -> bool:
        return self.ci_enc_dim > 0 and self.con_dim > 0 and self.co_dim > 0

    def __post_init__(self) -> None:
        check_config(self, RULES)

    @classmethod
    def from_dict(cls, params: dict, path: str | os.PathLike | None = None) -> "LfadsConfig":
        """A config from JSON-like overrides of the defaults (``train``'s: of LFADS's training defaults);
        ``path``: the file they came from, for errors."""
        return from_dict(cls, params, RULES, path=path)


#: LfadsConfig's ranges (types come from the annotations; see models/validation.py). 0 turns the controller
#: off (ci_enc_dim, con_dim or co_dim), a penalty off (its scale), posterior sampling off (posterior_samples)
RULES = {
    "ic_enc_dim": at_least(1), "ci_enc_dim": NON_NEGATIVE, "ci_lag": NON_NEGATIVE, "con_dim": NON_NEGATIVE,
    "co_dim": NON_NEGATIVE, "ic_dim": at_least(1), "gen_dim": at_least(1), "fac_dim": at_least(1),
    "cell_clip": POSITIVE, "ic_prior_variance": POSITIVE, "ic_post_var_min": NON_NEGATIVE, "co_prior_tau": POSITIVE,
    "co_prior_noise_variance": POSITIVE, "dropout_rate": FRACTION, "cd_rate": FRACTION,
    "kl_ic_scale": NON_NEGATIVE, "kl_co_scale": NON_NEGATIVE, "l2_gen_scale": NON_NEGATIVE,
    "l2_con_scale": NON_NEGATIVE, "l2_ic_enc_scale": NON_NEGATIVE, "l2_ci_enc_scale": NON_NEGATIVE,
    "kl_start_step": NON_NEGATIVE, "kl_increase_steps": NON_NEGATIVE, "l2_start_step": NON_NEGATIVE,
    "l2_increase_steps": NON_NEGATIVE, "loss_scale": POSITIVE, "posterior_samples": NON_NEGATIVE,
    "prior_components": at_least(1), "train": TRAIN_RULES,
}


def ramp(step: Tensor, start: int, increase: int) -> Tensor:
    """0 before `start`, then linear to 1 over `increase` steps (lfads-torch's formula, in steps)."""
    return torch.clamp((step.to(torch.float32) + 1 - start) / (increase + 1), 0.0, 1.0)


class LfadsNet(nn.Module):
    """Encoders, decoder, readout and priors, with the training losses. Counts are (trials, bins, neurons)."""

    def __init__(self, config: LfadsConfig, n_neurons: int, n_bins: int, heldout: np.ndarray | list[bool]):
        super().__init__()
        self.config = config
        self.n_neurons, self.n_bins = n_neurons, n_bins
        heldout = np.asarray(heldout, dtype=bool)
        if heldout.shape != (n_neurons,) or heldout.all():
            raise DataError("LFADS needs at least one held-in neuron to encode", field="heldout_neurons",
                            expected=f"{n_neurons} flags, not all true", found=f"shape {heldout.shape}, "
                                                                               f"{int(heldout.sum())} held out")
        # not a buffer: the trainer's EMA averages buffers, which would corrupt integer indices
        self.heldin_index = torch.as_tensor(np.flatnonzero(~heldout), dtype=torch.long)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))  # optimisation steps taken (ramps)
        c = config
        ci_enc_dim = c.ci_enc_dim if c.use_controller else 0
        self.encoder = Encoder(len(self.heldin_index), c.ic_enc_dim, c.ic_dim, ci_enc_dim, c.ci_lag, c.cell_clip,
                               c.dropout_rate, c.ic_post_var_min)
        self.decoder = Decoder(c.ic_dim, c.gen_dim, c.fac_dim, 2 * ci_enc_dim, c.con_dim, c.co_dim, c.cell_clip,
                               c.dropout_rate)
        self.readout = FanInLinear(c.fac_dim, n_neurons)
        self.ic_prior = GaussianICPrior(c.ic_dim, c.ic_prior_variance)
        self.co_prior = AutoregressivePrior(c.co_dim, c.co_prior_tau, c.co_prior_noise_variance) \
            if c.use_controller else None

    # ------------------------------------------------------------------ forward
    def forward(self, encod: Tensor, sample: bool, n_bins: int | None = None) -> dict[str, Tensor]:
        """Held-in counts (trials, bins, held-in) → every LFADS output, batch-major.

        ``sample``: draw the IC and inferred inputs from their posteriors (else their means).
        """
        ic_mean, ic_std, ci = self.encoder(encod)
        ic = ic_mean + ic_std * torch.randn_like(ic_mean) if sample else ic_mean
        out = self.decoder(ic, ci, n_bins or encod.shape[1], sample)
        out = {k: (v.transpose(0, 1) if v.dim() == 3 else v) for k, v in out.items()}
        out.update(ic_mean=ic_mean, ic_std=ic_std, log_rates=self.readout(out["factors"]))
        return out

    def heldin(self, counts: Tensor) -> Tensor:
        return counts.index_select(2, self._heldin_on(counts.device))

    def _heldin_on(self, device: torch.device) -> Tensor:
        if self.heldin_index.device != device:
            self.heldin_index = self.heldin_index.to(device)
        return self.heldin_index

    # ------------------------------------------------------------------ training
    def coordinated_dropout(self, counts: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder input with a random `cd_rate` of held-in entries zeroed (the rest scaled up), and the
        mask of loss entries that carry gradient: the dropped ones, and every held-out neuron."""
        encod = self.heldin(counts)
        grad_mask = torch.ones_like(counts)
        rate = self.config.cd_rate
        if not self.training or rate <= 0:
            return encod, grad_mask
        keep = torch.rand_like(encod).ge_(rate)  # 1 with probability 1 − rate
        grad_mask.index_copy_(2, self._heldin_on(counts.device), 1 - keep)
        return encod * keep / (1 - rate), grad_mask

    def losses(self, batch: list[Tensor]) -> dict[str, Tensor]:
        cfg = self.config
        counts = batch[0]
        encod, grad_mask = self.coordinated_dropout(counts)
        out = self(encod, sample=self.training)
        nll = poisson_nll(out["log_rates"], counts)
        # only dropped entries pass gradient; the others still count towards the value
        recon = (nll * grad_mask + (nll * (1 - grad_mask)).detach()).mean()
        kl_ic = self.ic_prior.kl(out["ic_mean"], out["ic_std"])
        kl_co = self.co_prior.kl(out["co_means"], out["co_stds"], out["gen_inputs"]) \
            if self.co_prior is not None else recon.new_zeros(())
        l2 = self.l2_penalty()
        terms = {"recon": recon, "kl_ic": kl_ic, "kl_co": kl_co, "l2": l2}
        if self.training:
            kl_ramp = ramp(self.step, cfg.kl_start_step, cfg.kl_increase_steps)
            l2_ramp = ramp(self.step, cfg.l2_start_step, cfg.l2_increase_steps)
            loss = cfg.loss_scale * (recon + l2_ramp * l2 + kl_ramp * (cfg.kl_ic_scale * kl_ic
                                                                     + cfg.kl_co_scale * kl_co))
            self.step += 1
            return {"loss": loss, **terms}
        # validation: the reconstruction cost lfads-torch monitors, and held-out neurons' bits per spike
        terms["loss"] = cfg.loss_scale * recon
        heldout = torch.ones(self.n_neurons, dtype=torch.bool, device=counts.device)
        heldout[self._heldin_on(counts.device)] = False
        if heldout.any():
            terms["heldout_bps"] = torch_bits_per_spike(out["log_rates"][..., heldout], counts[..., heldout])
        return terms

    def l2_penalty(self) -> Tensor:
        """lfads-torch: Σ scale · ½‖W_hh‖² over the penalised recurrent kernels, ÷ their total size."""
        cfg = self.config
        kernels = [(self.decoder.gen.weight_hh, cfg.l2_gen_scale), (self.encoder.ic_enc.weight_hh, cfg.l2_ic_enc_scale)]
        if self.decoder.use_con:
            kernels += [(self.decoder.con.weight_hh, cfg.l2_con_scale),
                        (self.encoder.ci_enc.weight_hh, cfg.l2_ci_enc_scale)]
        penalty = self.readout.weight.new_zeros(())
        size = 0
        for weight, scale in kernels:
            if scale > 0:
                penalty = penalty + scale * 0.5 * weight.pow(2).sum()
                size += weight.numel()
        return penalty / (size + 1e-8)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def posterior_average(self, counts: Tensor, samples: int, n_bins: int | None = None) -> dict[str, Tensor]:
        """Every output averaged over `samples` draws of the IC and inferred-input posteriors (no dropout);
        ``output_params`` are the rates in expected counts per bin, as lfads-torch writes them."""
        self.eval()
        encod = self.heldin(counts)
        ic_mean, ic_std, ci = self.encoder(encod)
        n, bins = len(counts), n_bins or counts.shape[1]
        reps = max(1, samples)
        ic = ic_mean.repeat(reps, 1)
        if samples > 0:
            ic = ic + ic_std.repeat(reps, 1) * torch.randn_like(ic)
        ci = ci.repeat(1, reps, 1) if ci is not None else None
        out = self.decoder(ic, ci, bins, samples > 0)
        out["output_params"] = torch.exp(self.readout(out["factors"]))
        averaged = {}
        for name, value in out.items():
            if value.dim() == 3:  # time-major (bins, reps·n, ·) → (n, bins, ·)
                value = value.view(bins, reps, n, -1).mean(1).transpose(0, 1)
            else:
                value = value.view(reps, n, -1).mean(0)
            averaged[name] = value
        averaged.update(ic_mean=ic_mean, ic_std=ic_std)
        return averaged


def poisson_nll(log_rates: Tensor, counts: Tensor) -> Tensor:
    """Exact Poisson negative log-likelihood per entry (with the log-factorial term)."""
    return torch.exp(log_rates) - counts * log_rates + log_factorial(counts)


def log_factorial(counts: Tensor) -> Tensor:
    """log(k!) of non-negative whole counts, by table look-up (`python benchmarks/lfads_kernels.py --ops`:
    1.1–1.4× faster than elementwise lgamma over a batch's counts in two runs, 2 threads)."""
    with torch.no_grad():
        top = int(counts.max()) if counts.numel() else 0
        table = torch.lgamma(torch.arange(top + 2, dtype=counts.dtype, device=counts.device))
        return table[(counts + 1).long()]


def torch_bits_per_spike(log_rates: Tensor, counts: Tensor) -> Tensor:
    """`analysis.metrics.bits_per_spike` on tensors (null: each neuron's mean over the batch)."""
    null = counts.mean((0, 1), keepdim=True).clamp_min(1e-9)
    nll_model = poisson_nll(log_rates, counts).sum()
    nll_null = poisson_nll(torch.log(null).expand_as(counts), counts).sum()
    return (nll_null - nll_model) / (counts.sum().clamp_min(1.0) * math.log(2))


class LfadsModel(ModelFolder):
    """Fit on a TrialData, then `encode` trials to IC codes and `generate` trials from codes."""

    kind = "lfads"
    label = "an LFADS model"
    config_class = LfadsConfig
    format_version = FORMAT_VERSION
    readable_formats = (FORMAT_VERSION,)
    #: rates are a deterministic function of the code (the IC); a single draw samples the IC posterior
    deterministic_generate = True

    # ------------------------------------------------------------------ shape
    @property
    def code_dim(self) -> int:
        return self.config.ic_dim

    # ------------------------------------------------------------------ training
    def fit(self, data: TrialData, out_dir: str | os.PathLike, *, resume: bool = False, progress: bool = True,
            on_epoch_end=None, max_minutes: float | None = None) -> "LfadsModel":
        """Train on the 'train' trials (held-out conditions excluded), validate on 'valid'.

        Encoders read the held-in neurons only; the readout reconstructs all of them. ``max_minutes``
        and Ctrl-C: as for `GnocchiModel.fit` (training ends at an epoch's end, the folder is finished).
        """
        out_dir = Path(out_dir)
        budget = self._budget(max_minutes)
        train, valid = self._training_splits(data)
        self.net = LfadsNet(self.config, data.n_neurons, data.n_bins, data.heldout_neurons)
        self._record_run(out_dir, {"kind": self.kind, "config": self._config_dict(), "data": self.data_info}, resume)
        return self._train_net(train, [_counts(train.spikes)], [_counts(valid.spikes)], out_dir, resume, progress,
                               on_epoch_end, budget)

    # ------------------------------------------------------------------ the interface
    @torch.no_grad()
    def encode(self, trials: TrialData | np.ndarray, *, sample: bool = False, seed: int | None = None) -> np.ndarray:
        """IC posterior means (n, ic_dim) of trials given as a TrialData or counts (n, bins, neurons);
        with ``sample``, one draw per trial from the IC posterior instead (seeded by ``seed``).

        Only the held-in neurons are read; held-out columns may hold anything.
        """
        self._require_trained()
        seed = check_seed(seed)
        counts = _counts(trial_counts(trials, self.n_bins, self.n_neurons, read=self._heldin_mask))
        self.net.eval()
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
        codes = []
        for chunk in counts.split(BATCH):
            mean, std, _ = self.net.encoder(self.net.heldin(chunk.to(self.device)), ic_only=True)
            if sample:
                mean = mean + std * torch.randn(mean.shape, generator=generator).to(self.device)
            codes.append(mean.cpu())
        return torch.cat(codes).numpy()

    @torch.no_grad()
    def generate(self, codes: np.ndarray, *, steps: int | None = None, noise: np.ndarray | None = None,
                 seed: int | None = None, spikes: bool = False, n_bins: int | None = None,
                 guidance: float | None = None) -> Generated:
        """Trials from initial conditions: rates (n, bins, neurons) in spikes/s, optionally Poisson spikes.

        The generator runs from each IC alone. With a controller, its inferred inputs are set to
        their prior mean (zero at every bin), or to ``noise`` (n, bins, co_dim) when given — e.g.
        draws from the AR(1) prior or a real trial's inferred inputs. Rates are then a deterministic
        function of the code; ``seed`` only draws the spikes. ``steps`` and ``guidance`` (sampler
        settings, in the shared interface) do not apply: LFADS has no sampler. ``n_bins`` is the number of bins to unroll
        (default: the trials' length; more extrapolates the dynamics).
        """
        self._require_trained()
        codes = check_codes(codes, self.code_dim)
        check_steps(steps), check_guidance(guidance)  # no sampler here, but the shared interface's arguments
        seed = check_seed(seed)
        n_bins = self.n_bins if n_bins is None else as_integer(n_bins, "n_bins", at_least(1), error=ArgumentError)
        co_dim = self.net.decoder.co_dim
        inputs = None
        if noise is not None:
            if co_dim == 0:
                raise ArgumentError("this model has no controller: it takes no inferred inputs", field="noise",
                                    expected="None", found="an array")
            inputs = torch.from_numpy(check_noise(noise, (len(codes), n_bins, co_dim), "trials, bins, inferred inputs"))
        self.net.eval()
        chunks = []
        for start in range(0, len(codes), BATCH):
            ic = torch.from_numpy(codes[start:start + BATCH]).to(self.device)
            chunk_inputs = None if inputs is None else inputs[start:start + BATCH].transpose(0, 1).to(self.device)
            factors = self.net.decoder.generate(ic, chunk_inputs, n_bins)
            chunks.append(torch.exp(self.net.readout(factors)).transpose(0, 1).cpu())
        rates = (torch.cat(chunks).numpy() * (1000.0 / self.bin_ms)).astype(np.float32)
        return Generated(rates=rates, codes=codes, spikes=poisson_spikes(rates, self.bin_ms, seed) if spikes else None)

    def sample_prior(self, n: int, *, seed: int | None = None, kind: str = "gaussian") -> np.ndarray:
        """ICs for unconditional generation: the learned IC prior N(mean, 0.1·I), or 'mixture' fitted
        to the training trials' IC posterior means."""
        self._require_trained()
        n, seed = check_count(n), check_seed(seed)
        if check_choice(kind, "kind", ("gaussian", "mixture"), "prior") == "gaussian":
            generator = torch.Generator().manual_seed(seed if seed is not None
                                                      else int(np.random.SeedSequence().entropy % 2**63))
            return self.net.ic_prior.sample(n, generator).numpy().astype(np.float32)
        return self.mixture.sample(n, seed).astype(np.float32)

    # ------------------------------------------------------------------ reconstruction
    def infer(self, trials: TrialData | np.ndarray, *, samples: int | None = None,
              seed: int | None = 0) -> dict[str, np.ndarray]:
        """lfads-torch's outputs for trials, averaged over posterior samples (default `posterior_samples`).

        Keys are lfads-torch's (`output_params` = rates in counts per bin, `factors`, `ic_mean`, ...),
        arrays batch-major; neurons in the dataset's order.
        """
        self._require_trained()
        counts = _counts(trial_counts(trials, self.n_bins, self.n_neurons, read=self._heldin_mask))
        samples = self.config.posterior_samples if samples is None else \
            as_integer(samples, "samples", Range(0), error=ArgumentError)
        seed = check_seed(seed)
        batch = max(1, BATCH // max(1, samples))
        devices = [self.device] if self.device.type == "cuda" else []
        parts = []
        with torch.random.fork_rng(devices=devices):
            if seed is not None:
                torch.manual_seed(seed)
            for chunk in counts.split(batch):
                out = self.net.posterior_average(chunk.to(self.device), samples)
                parts.append({name: out[name].cpu() for name in OUTPUT_NAMES})
        return {name: torch.cat([p[name] for p in parts]).numpy() for name in OUTPUT_NAMES}

    def reconstruct(self, trials: TrialData | np.ndarray, *, samples: int | None = None,
                    seed: int | None = 0) -> np.ndarray:
        """Denoised rates (n, bins, neurons) in spikes/s: posterior-averaged, held-out neurons included."""
        return self.infer(trials, samples=samples, seed=seed)["output_params"] * (1000.0 / self.bin_ms)

    # ------------------------------------------------------------------ persistence
    def _build(self, saved: dict, weights: dict, path: Path) -> None:
        self.net = LfadsNet(self.config, self.n_neurons, self.n_bins, self.data_info["heldout_neurons"]).to(self.device)
        load_weights(self.net, weights["net"], path)

    # ------------------------------------------------------------------ helpers
    @property
    def _heldin_mask(self) -> np.ndarray:
        """The neurons the encoders read (held-out columns of the trials may hold anything)."""
        return ~np.asarray(self.data_info["heldout_neurons"], dtype=bool)


def _counts(spikes: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(spikes, dtype=np.float32))
