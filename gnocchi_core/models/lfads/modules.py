"""LFADS building blocks, after lfads-torch (Sedler & Pandarinath): the encoders, the decoder (controller +
generator + factors) and the linear layers with lfads-torch's initialisation.

Tensors inside the recurrences are time-major (bins, trials, ·); the loops themselves live in
`kernels.py` (hand-written BPTT). Every GRU is lfads-torch's clipped cell: gates (z, r, n),
reset before the recurrent product, no recurrent bias, input bias initialised to 1 for the
z and r gates and 0 for the candidate, weights ~ N(0, 1/fan-in).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import kernels


def init_variance_scaling_(weight: Tensor, fan: int) -> None:
    if weight.numel():
        nn.init.normal_(weight, std=1.0 / math.sqrt(fan))


def init_gru_bias_(bias: Tensor, hidden: int) -> None:
    """lfads-torch: 1 for the update and reset gates, 0 for the candidate."""
    with torch.no_grad():
        bias.fill_(1.0)
        bias[..., 2 * hidden:] = 0.0


class FanInLinear(nn.Linear):
    """The readout: weights ~ N(0, 1/in_features), zero bias."""

    def reset_parameters(self) -> None:
        init_variance_scaling_(self.weight, self.in_features)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class KernelNormalizedLinear(nn.Linear):
    """Generator state → factors through rows normalised to unit L2 norm (scale lives in the readout)."""

    def reset_parameters(self) -> None:
        init_variance_scaling_(self.weight, self.in_features)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def normalized_weight(self) -> Tensor:
        return F.normalize(self.weight, p=2.0, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.normalized_weight(), self.bias)


class GRUCellWeights(nn.Module):
    """Parameters of one clipped GRU cell (the generator's or the controller's)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        init_variance_scaling_(self.weight_ih, input_size)
        init_variance_scaling_(self.weight_hh, hidden_size)
        init_gru_bias_(self.bias_ih, hidden_size)


class BidirectionalGRU(nn.Module):
    """Parameters of a forward and a backward clipped GRU over the same sequence, with learnable
    initial states. `Encoder` runs them, with the other encoder's, in one `kernels.grus` call."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(2, 3 * hidden_size, input_size))
        self.bias_ih = nn.Parameter(torch.empty(2, 3 * hidden_size))
        self.weight_hh = nn.Parameter(torch.empty(2, 3 * hidden_size, hidden_size))
        self.h0 = nn.Parameter(torch.zeros(2, 1, hidden_size))
        # lfads-torch scales an encoder's weights by (input + hidden) size
        init_variance_scaling_(self.weight_ih, input_size + hidden_size)
        init_variance_scaling_(self.weight_hh, input_size + hidden_size)
        init_gru_bias_(self.bias_ih, hidden_size)

    def chains(self, batch: int) -> list[tuple[Tensor, Tensor, Tensor, Tensor, bool]]:
        """What `kernels.grus` runs: the forward chain, then the backward one."""
        return [(self.weight_ih[d], self.bias_ih[d], self.h0[d].expand(batch, -1), self.weight_hh[d], d == 1)
                for d in range(2)]


class Encoder(nn.Module):
    """Held-in spikes → IC posterior (mean, std) and the lagged controller-input sequence."""

    def __init__(self, n_inputs: int, ic_enc_dim: int, ic_dim: int, ci_enc_dim: int, ci_lag: int, clip: float,
                 dropout: float, ic_post_var_min: float):
        super().__init__()
        self.ic_dim, self.ci_lag, self.ic_post_var_min = ic_dim, ci_lag, ic_post_var_min
        self.clip, self.dropout_rate = clip, dropout
        self.ic_enc = BidirectionalGRU(n_inputs, ic_enc_dim)
        self.ic_linear = nn.Linear(2 * ic_enc_dim, 2 * ic_dim)
        init_variance_scaling_(self.ic_linear.weight, 2 * ic_enc_dim)
        nn.init.zeros_(self.ic_linear.bias)
        self.ci_enc = BidirectionalGRU(n_inputs, ci_enc_dim) if ci_enc_dim > 0 else None

    def forward(self, x: Tensor, ic_only: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
        """x (trials, bins, held-in neurons) → ic_mean, ic_std (trials, ic_dim), ci (bins, trials, 2·ci_enc_dim);
        ``ic_only`` skips the controller-input encoder (ci None): all that encoding a trial to its code needs."""
        batch = x.shape[0]
        x = dropout(x, self.dropout_rate, self.training)
        grus = [self.ic_enc] + ([self.ci_enc] if self.ci_enc is not None and not ic_only else [])
        states = kernels.grus(x.transpose(0, 1).contiguous(), [c for g in grus for c in g.chains(batch)], self.clip)
        h_n = torch.cat([states[0][-1], states[1][0]], 1)  # each direction's last step
        ic_params = self.ic_linear(dropout(h_n, self.dropout_rate, self.training))
        ic_mean, ic_logvar = torch.split(ic_params, self.ic_dim, dim=1)
        ic_std = torch.sqrt(torch.exp(ic_logvar) + self.ic_post_var_min)
        if self.ci_enc is None or ic_only:
            return ic_mean, ic_std, None
        fwd, bwd = states[2], states[3]
        lag = self.ci_lag
        if lag > 0:  # the controller sees the forward encoder `lag` bins late, the backward one `lag` bins early
            fwd = F.pad(fwd, (0, 0, 0, 0, lag, 0))[: fwd.shape[0]]
            bwd = F.pad(bwd, (0, 0, 0, 0, 0, lag))[lag:]
        return ic_mean, ic_std, torch.cat([fwd, bwd], 2)


def dropout(x: Tensor, rate: float, active: bool) -> Tensor:
    """Inverted dropout. Same maths as `nn.Dropout`, from uniform draws: about 3× faster than its
    Bernoulli sampling on CPU for the ~5 M entries dropped per batch (`python
    benchmarks/lfads_kernels.py --ops`: 2.8–3.3× in two runs, 2 threads)."""
    if not active or rate <= 0:
        return x
    return x * dropout_mask(x.shape, rate, True, x)


def dropout_mask(shape: tuple[int, ...], rate: float, active: bool, like: Tensor) -> Tensor | None:
    """An inverted-dropout mask (0 or 1/(1 − rate)), or None when inactive."""
    if not active or rate <= 0:
        return None
    return torch.rand(shape, dtype=like.dtype, device=like.device).ge_(rate).mul_(1.0 / (1 - rate))


class Decoder(nn.Module):
    """IC → generator initial state; controller + inferred inputs + generator → factors, bin by bin."""

    def __init__(self, ic_dim: int, gen_dim: int, fac_dim: int, ci_dim: int, con_dim: int, co_dim: int,
                 clip: float, dropout: float):
        super().__init__()
        self.use_con = ci_dim > 0 and con_dim > 0 and co_dim > 0
        self.gen_dim, self.fac_dim, self.clip, self.dropout_rate = gen_dim, fac_dim, clip, dropout
        self.co_dim = co_dim if self.use_con else 0
        self.ic_to_g0 = nn.Linear(ic_dim, gen_dim)
        init_variance_scaling_(self.ic_to_g0.weight, ic_dim)
        nn.init.zeros_(self.ic_to_g0.bias)
        self.gen = GRUCellWeights(self.co_dim, gen_dim)
        self.fac = KernelNormalizedLinear(gen_dim, fac_dim, bias=False)
        if self.use_con:
            self.con_dim = con_dim
            self.con_h0 = nn.Parameter(torch.zeros(1, con_dim))
            self.con = GRUCellWeights(ci_dim + fac_dim, con_dim)
            self.co_linear = nn.Linear(con_dim, 2 * co_dim)
            init_variance_scaling_(self.co_linear.weight, con_dim)
            nn.init.zeros_(self.co_linear.bias)

    def forward(self, ic: Tensor, ci: Tensor | None, n_bins: int, sample: bool) -> dict[str, Tensor]:
        """Unroll from the IC sample `ic` (trials, ic_dim); time-major outputs (bins, trials, ·).

        ``sample``: draw the inferred inputs from their posterior (else use its mean).
        """
        batch = ic.shape[0]
        gen_init = self.ic_to_g0(ic)
        mask_g = dropout_mask((n_bins, batch, self.gen_dim), self.dropout_rate, self.training, ic)
        w_fac = self.fac.normalized_weight()
        if not self.use_con:  # a generator without inputs: its input projection is the bias alone
            gen = kernels.grus(ic.new_zeros((n_bins, batch, 0)),
                               [(self.gen.weight_ih, self.gen.bias_ih, gen_init, self.gen.weight_hh, False)],
                               self.clip)[0]
            empty = ic.new_zeros((n_bins, batch, 0))
            return {"gen_states": gen, "gen_init": gen_init,
                    "factors": F.linear(gen if mask_g is None else gen * mask_g, w_fac),
                    "con_states": empty, "co_means": empty, "co_stds": empty, "gen_inputs": empty}
        n_ci = ci.shape[2]
        active = self.training
        ci_proj = F.linear(dropout(ci, self.dropout_rate, active), self.con.weight_ih[:, :n_ci], self.con.bias_ih)
        f0 = self.fac(dropout(gen_init, self.dropout_rate, active))
        eps = torch.randn((n_bins, batch, self.co_dim), dtype=ic.dtype, device=ic.device) if sample else None
        mask_f = dropout_mask((n_bins, batch, self.fac_dim), self.dropout_rate, self.training, ic)
        gen, con, co_params, co, factors = kernels.decoder(
            ci_proj, gen_init, self.con_h0.expand(batch, -1), f0, eps, mask_f, mask_g,
            self.con.weight_ih[:, n_ci:], self.con.weight_hh, self.co_linear.weight, self.co_linear.bias,
            self.gen.weight_ih, self.gen.bias_ih, self.gen.weight_hh, w_fac, self.clip)
        co_mean, co_logvar = torch.split(co_params, self.co_dim, dim=2)
        return {"gen_states": gen, "gen_init": gen_init, "factors": factors, "con_states": con,
                "co_means": co_mean, "co_stds": torch.exp(0.5 * co_logvar), "gen_inputs": co}

    @torch.no_grad()
    def generate(self, ic: Tensor, inputs: Tensor | None, n_bins: int) -> Tensor:
        """Factors (bins, trials, fac_dim) from the generator alone, driven by `inputs` (bins, trials, co_dim)
        or, with none given, by the inferred inputs' prior mean (zero)."""
        batch = ic.shape[0]
        if inputs is None:
            inputs = ic.new_zeros((n_bins, batch, self.co_dim))
        chain = (self.gen.weight_ih, self.gen.bias_ih, self.ic_to_g0(ic), self.gen.weight_hh, False)
        gen = kernels.grus(inputs, [chain], self.clip)[0]
        return self.fac(gen)
