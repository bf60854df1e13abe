"""The LFADS kernels against an independent reference written from lfads-torch's equations.

`tests/test_lfads.py` checks the hand-written backward passes against autograd of the *same*
forward code, so an error in that forward (gate order, reset placement, clipping, which weight
rows feed which gate) would pass there. Here the reference is written afresh from lfads-torch's
`ClippedGRUCell` (modules/recurrent.py), `BidirectionalClippedGRU` + `Encoder` (encoder.py) and
`DecoderCell` + `Decoder` (decoder.py), one step at a time under plain autograd, with
lfads-torch's parameter layout (nn.GRUCell's `weight_ih` (3H, I), `bias_ih`, `weight_hh` (3H, H)
and a `bias_hh` that exists but is zero and frozen; rows in the order z, r, n). Our modules'
weights are copied into it, so what is tested is the real wiring: input projections, gate
slicing, weight layout, initial states, dropout placement, the controller-input lag, the
inferred-input sample and the factors fed back, for outputs and for the gradients w.r.t. the
inputs, the initial states and every weight and bias, in float64 (tight) and float32 (looser).

On clipping: a clipped GRU state obeys |h'| ≤ max(|h|, max|n|) < max(|h|, 1), so no input,
however large, makes lfads-torch's clip (5) bind; it binds only where an initial state lies
beyond it (|h0| or |gen_init| > clip) or where clip < 1. The clipped cases below use both.

The file also holds lfads-torch-style drop-in replacements for `kernels.grus` / `kernels.decoder`
(`reference_grus`, `reference_decoder`): a whole LfadsNet training step is checked with them, and
`benchmarks/lfads_kernels.py` times them.
"""

from __future__ import annotations

import importlib
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnocchi_core.models.lfads import LfadsConfig, LfadsNet, kernels, modules
from gnocchi_core.models.lfads.modules import Decoder, Encoder

# outputs, gradients
TOLERANCES = {torch.float64: (dict(rtol=1e-11, atol=1e-12), dict(rtol=1e-9, atol=1e-10)),
              torch.float32: (dict(rtol=1e-4, atol=1e-5), dict(rtol=1e-3, atol=1e-4))}


# ---------------------------------------------------------------------- the reference, from lfads-torch's equations
def clipped_gru_step(projected: Tensor, h: Tensor, weight_hh: Tensor, bias_hh: Tensor, clip: float) -> Tensor:
    """One step of lfads-torch's ClippedGRUCell given its input product `projected` = x·W_ihᵀ + b_ih.

        x_z | x_r | x_n = projected;     W_hh = [W_hz; W_hr; W_hn],  b_hh likewise
        z = σ(x_z + h·W_hzᵀ + b_hz)       r = σ(x_r + h·W_hrᵀ + b_hr)
        n = tanh(x_n + (r ⊙ h)·W_hnᵀ + b_hn)        (the reset multiplies h *before* the product)
        h' = clamp(z ⊙ h + (1 − z) ⊙ n, −clip, clip)
    """
    hidden = h.shape[1]
    x_z, x_r, x_n = projected[:, :hidden], projected[:, hidden:2 * hidden], projected[:, 2 * hidden:]
    w_hz, w_hr, w_hn = weight_hh[:hidden], weight_hh[hidden:2 * hidden], weight_hh[2 * hidden:]
    b_hz, b_hr, b_hn = bias_hh[:hidden], bias_hh[hidden:2 * hidden], bias_hh[2 * hidden:]
    z = torch.sigmoid(x_z + F.linear(h, w_hz, b_hz))
    r = torch.sigmoid(x_r + F.linear(h, w_hr, b_hr))
    n = torch.tanh(x_n + F.linear(r * h, w_hn, b_hn))
    return torch.clamp(z * h + (1 - z) * n, -clip, clip)


class ReferenceCell(nn.Module):
    """lfads-torch's ClippedGRUCell with nn.GRUCell's parameters: `bias_hh` is there, zero and frozen."""

    def __init__(self, weight_ih: Tensor, bias_ih: Tensor, weight_hh: Tensor, clip: float):
        super().__init__()
        self.clip = clip
        self.weight_ih = nn.Parameter(weight_ih.detach().clone())
        self.bias_ih = nn.Parameter(bias_ih.detach().clone())
        self.weight_hh = nn.Parameter(weight_hh.detach().clone())
        self.bias_hh = nn.Parameter(torch.zeros_like(self.bias_ih), requires_grad=False)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        return clipped_gru_step(F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh,
                                self.clip)


def run_cell(cell: ReferenceCell, x: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
    """lfads-torch's ClippedGRU: x (B, T, I) batch-first → states (B, T, H), last state."""
    h, states = h0, []
    for t in range(x.shape[1]):
        h = cell(x[:, t], h)
        states.append(h)
    return torch.stack(states, 1), h


def run_bidirectional(fwd: ReferenceCell, bwd: ReferenceCell, x: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
    """lfads-torch's BidirectionalClippedGRU: the backward cell reads the flipped sequence; its
    outputs are flipped back. → outputs (B, T, 2H), h_n (2, B, H)."""
    out_f, hn_f = run_cell(fwd, x, h0[0])
    out_b, hn_b = run_cell(bwd, torch.flip(x, [1]), h0[1])
    return torch.cat([out_f, torch.flip(out_b, [1])], 2), torch.stack([hn_f, hn_b])


def _param(t: Tensor) -> nn.Parameter:
    return nn.Parameter(t.detach().clone())


class ReferenceEncoder(nn.Module):
    """lfads-torch's Encoder (ic_enc_seq_len 0, recon_seq_len = encod_seq_len) holding copies of our weights."""

    def __init__(self, ours: Encoder):
        super().__init__()
        clip = ours.clip
        self.ic_dim, self.lag, self.var_min = ours.ic_dim, ours.ci_lag, ours.ic_post_var_min
        e = ours.ic_enc
        self.ic_fwd = ReferenceCell(e.weight_ih[0], e.bias_ih[0], e.weight_hh[0], clip)
        self.ic_bwd = ReferenceCell(e.weight_ih[1], e.bias_ih[1], e.weight_hh[1], clip)
        self.ic_enc_h0 = _param(e.h0)  # (2, 1, H), as lfads-torch's
        self.ic_linear = nn.Linear(ours.ic_linear.in_features, ours.ic_linear.out_features)
        self.ic_linear.weight, self.ic_linear.bias = _param(ours.ic_linear.weight), _param(ours.ic_linear.bias)
        c = ours.ci_enc
        self.ci_fwd = ReferenceCell(c.weight_ih[0], c.bias_ih[0], c.weight_hh[0], clip)
        self.ci_bwd = ReferenceCell(c.weight_ih[1], c.bias_ih[1], c.weight_hh[1], clip)
        self.ci_enc_h0 = _param(c.h0)
        self.ci_enc_dim = c.hidden_size

    def forward(self, data: Tensor, mask_data: Tensor | None, mask_hn: Tensor | None):
        batch, steps = data.shape[:2]
        data_drop = data if mask_data is None else data * mask_data  # both encoders read the same dropped data
        _, h_n = run_bidirectional(self.ic_fwd, self.ic_bwd, data_drop, self.ic_enc_h0.tile(1, batch, 1))
        h_n = torch.cat([h_n[0], h_n[1]], 1)
        ic_params = self.ic_linear(h_n if mask_hn is None else h_n * mask_hn)
        ic_mean, ic_logvar = ic_params[:, :self.ic_dim], ic_params[:, self.ic_dim:]
        ic_std = torch.sqrt(torch.exp(ic_logvar) + self.var_min)
        ci, _ = run_bidirectional(self.ci_fwd, self.ci_bwd, data_drop, self.ci_enc_h0.tile(1, batch, 1))
        ci_fwd, ci_bwd = ci[..., :self.ci_enc_dim], ci[..., self.ci_enc_dim:]
        # the lag: forward states padded at the start, backward ones at the end, then cut to length
        ci_fwd = F.pad(ci_fwd, (0, 0, self.lag, 0, 0, 0))[:, :steps]
        ci_bwd = F.pad(ci_bwd, (0, 0, 0, self.lag, 0, 0))[:, -steps:]
        return ic_mean, ic_std, torch.cat([ci_fwd, ci_bwd], 2)

    def pairs(self, ours: Encoder) -> list[tuple[str, Tensor, int | None, Tensor]]:
        """(name, our parameter, the index of the part that is the reference's (a direction) or None,
        the reference's parameter) for every trained tensor."""
        out = []
        for tag, enc, cells, h0 in (("ic", ours.ic_enc, (self.ic_fwd, self.ic_bwd), self.ic_enc_h0),
                                    ("ci", ours.ci_enc, (self.ci_fwd, self.ci_bwd), self.ci_enc_h0)):
            for d, cell in enumerate(cells):
                for name in ("weight_ih", "bias_ih", "weight_hh"):
                    out.append((f"{tag}_enc.{name}[{d}]", getattr(enc, name), d, getattr(cell, name)))
            out.append((f"{tag}_enc.h0", enc.h0, None, h0))
        out += [("ic_linear.weight", ours.ic_linear.weight, None, self.ic_linear.weight),
                ("ic_linear.bias", ours.ic_linear.bias, None, self.ic_linear.bias)]
        return out


class ReferenceDecoder(nn.Module):
    """lfads-torch's Decoder + DecoderCell (no external inputs), holding copies of our weights; batch-first."""

    def __init__(self, ours: Decoder):
        super().__init__()
        clip = ours.clip
        self.co_dim = ours.co_dim
        self.ic_to_g0 = nn.Linear(ours.ic_to_g0.in_features, ours.gen_dim)
        self.ic_to_g0.weight, self.ic_to_g0.bias = _param(ours.ic_to_g0.weight), _param(ours.ic_to_g0.bias)
        self.gen_cell = ReferenceCell(ours.gen.weight_ih, ours.gen.bias_ih, ours.gen.weight_hh, clip)
        self.fac_weight = _param(ours.fac.weight)  # KernelNormalizedLinear, no bias
        self.use_con = ours.use_con
        if self.use_con:
            self.con_cell = ReferenceCell(ours.con.weight_ih, ours.con.bias_ih, ours.con.weight_hh, clip)
            self.co_linear = nn.Linear(ours.co_linear.in_features, ours.co_linear.out_features)
            self.co_linear.weight, self.co_linear.bias = _param(ours.co_linear.weight), _param(ours.co_linear.bias)
            self.con_h0 = _param(ours.con_h0)

    def fac_linear(self, x: Tensor) -> Tensor:
        return F.linear(x, F.normalize(self.fac_weight, p=2, dim=1))

    def forward(self, ic: Tensor, ci: Tensor, n_bins: int, eps: Tensor | None, mask_g0: Tensor | None,
                mask_con: Tensor | None, mask_gen: Tensor | None) -> dict[str, Tensor]:
        """ci (B, T, ·); eps (B, T, CO) the posterior sample's noise (None: the posterior means);
        masks: dropout on gen_init (initial factor only), on the controller input [ci, factor], on the
        generator state (before the factors). Returns lfads-torch's outputs, batch-first."""
        batch = ic.shape[0]
        gen_init = self.ic_to_g0(ic)
        gen = gen_init
        factor = self.fac_linear(gen_init if mask_g0 is None else gen_init * mask_g0)
        con = self.con_h0.tile(batch, 1) if self.use_con else None
        out = {k: [] for k in ("gen_states", "con_states", "co_means", "co_stds", "gen_inputs", "factors")}
        for t in range(n_bins):
            if self.use_con:
                con_input = torch.cat([ci[:, t], factor], 1)  # the previous bin's factor
                con = self.con_cell(con_input if mask_con is None else con_input * mask_con[:, t], con)
                co_params = self.co_linear(con)
                co_mean, co_logvar = co_params[:, :self.co_dim], co_params[:, self.co_dim:]
                co_std = torch.sqrt(torch.exp(co_logvar))
                gen_input = co_mean if eps is None else co_mean + co_std * eps[:, t]  # Normal(mean, std).rsample()
                out["con_states"].append(con)
                out["co_means"].append(co_mean)
                out["co_stds"].append(co_std)
                out["gen_inputs"].append(gen_input)
            else:
                gen_input = ic.new_zeros((batch, 0))
            gen = self.gen_cell(gen_input, gen)
            factor = self.fac_linear(gen if mask_gen is None else gen * mask_gen[:, t])
            out["gen_states"].append(gen)
            out["factors"].append(factor)
        out = {k: torch.stack(v, 1) for k, v in out.items() if v}
        out["gen_init"] = gen_init
        return out

    def pairs(self, ours: Decoder) -> list[tuple[str, Tensor, int | None, Tensor]]:
        out = [("ic_to_g0.weight", ours.ic_to_g0.weight, None, self.ic_to_g0.weight),
               ("ic_to_g0.bias", ours.ic_to_g0.bias, None, self.ic_to_g0.bias),
               ("fac.weight", ours.fac.weight, None, self.fac_weight)]
        cells = [("gen", ours.gen, self.gen_cell)]
        if self.use_con:
            cells.append(("con", ours.con, self.con_cell))
            out += [("co_linear.weight", ours.co_linear.weight, None, self.co_linear.weight),
                    ("co_linear.bias", ours.co_linear.bias, None, self.co_linear.bias),
                    ("con_h0", ours.con_h0, None, self.con_h0)]
        for tag, mine, cell in cells:
            for name in ("weight_ih", "bias_ih", "weight_hh"):
                out.append((f"{tag}.{name}", getattr(mine, name), None, getattr(cell, name)))
        return out


# ---------------------------------------------------------------------- drop-in replacements for the kernels
def reference_grus(x: Tensor, chains, clip: float = float("inf")) -> tuple[Tensor, ...]:
    """`kernels.grus`'s contract (x (T, B, I); chains (w_ih, b_ih, h0, w_hh, reverse)), run as lfads-torch
    runs its ClippedGRU: one cell call per bin under plain autograd, a backward chain on the flipped input."""
    outs = []
    for w_ih, b_ih, h0, w_hh, reverse in chains:
        b_hh = torch.zeros_like(b_ih)
        seq = torch.flip(x, [0]) if reverse else x
        h, states = h0, []
        for t in range(seq.shape[0]):
            h = clipped_gru_step(F.linear(seq[t], w_ih, b_ih), h, w_hh, b_hh, clip)
            states.append(h)
        states = torch.stack(states)
        outs.append(torch.flip(states, [0]) if reverse else states)
    return tuple(outs)


def reference_decoder(ci_proj, gen0, con0, f0, eps, mask_f, mask_g, w_cf, w_chh, w_co, b_co, w_gi, b_gi, w_ghh,
                      w_fac, clip):
    """`kernels.decoder`'s contract run as lfads-torch's DecoderCell runs, one bin at a time under autograd."""
    n_co = w_gi.shape[1]
    b_chh, b_ghh = w_chh.new_zeros(w_chh.shape[0]), w_ghh.new_zeros(w_ghh.shape[0])
    gen, con, f = gen0, con0, f0
    outs = [[], [], [], [], []]
    for t in range(ci_proj.shape[0]):
        f_in = f if mask_f is None else f * mask_f[t]
        con = clipped_gru_step(ci_proj[t] + F.linear(f_in, w_cf), con, w_chh, b_chh, clip)
        params = F.linear(con, w_co, b_co)
        mean, std = params[:, :n_co], torch.sqrt(torch.exp(params[:, n_co:]))
        co = mean if eps is None else mean + std * eps[t]
        gen = clipped_gru_step(F.linear(co, w_gi, b_gi), gen, w_ghh, b_ghh, clip)
        f = F.linear(gen if mask_g is None else gen * mask_g[t], w_fac)
        for out, value in zip(outs, (gen, con, params, co, f)):
            out.append(value)
    return tuple(torch.stack(o) for o in outs)


# ---------------------------------------------------------------------- helpers
class FixedNoise:
    """Stands in for modules.dropout / dropout_mask / torch.randn: given masks and noise, found by shape."""

    def __init__(self, masks: dict[tuple[int, ...], Tensor], eps: Tensor | None = None):
        self.masks, self.eps, self.used = masks, eps, []

    def dropout(self, x, rate, active):
        if not active or rate <= 0:
            return x
        self.used.append(tuple(x.shape))
        return x * self.masks[tuple(x.shape)]

    def dropout_mask(self, shape, rate, active, like):
        if not active or rate <= 0:
            return None
        self.used.append(tuple(shape))
        return self.masks[tuple(shape)]

    def randn(self, *shape, **kwargs):
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        assert self.eps is not None and shape == tuple(self.eps.shape), shape
        self.used.append("eps")
        return self.eps.clone()


def _mask(shape, dtype, rate=0.3):
    return (torch.rand(shape, dtype=dtype) >= rate).to(dtype) / (1 - rate)


def _compare_grads(pairs, ours_grads, ref_grads, tol):
    for (name, _, index, _), a, b in zip(pairs, ours_grads, ref_grads):
        a = a if index is None else a[index]
        torch.testing.assert_close(a, b, **tol, msg=lambda m, name=name: f"{name}: {m}")


def _weighted_sum(outputs: list[Tensor], weights: list[Tensor]) -> Tensor:
    return sum((o * w).sum() for o, w in zip(outputs, weights))


def _assert_clip(states: Tensor, clip: float, binds: bool) -> None:
    at_clip = (states.abs() == clip).to(states.dtype).mean().item()
    if binds:
        assert at_clip > 0.02, f"the clip should bind somewhere (at ±clip: {at_clip:.3f})"
    else:
        assert states.abs().max() < clip


# (clip, scale of the learned initial states, whether the clip binds)
CLIP_CASES = [(5.0, 0.5, False), (0.5, 0.5, True), (5.0, 8.0, True)]


# ---------------------------------------------------------------------- (a) the encoders
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("clip, h0_scale, binds", CLIP_CASES, ids=["unclipped", "clip<1", "h0>clip"])
@pytest.mark.parametrize("dropout", [0.0, 0.3], ids=["nodrop", "drop"])
def test_encoders_match_lfads_torch(dtype, clip, h0_scale, binds, dropout, monkeypatch):
    """Both bidirectional encoders as `Encoder` runs them (one `kernels.grus` call over four chains)."""
    torch.manual_seed(0)
    batch, steps, n_in, ic_enc, ci_enc, ic_dim, lag = 4, 9, 6, 5, 3, 4, 1
    ours = Encoder(n_in, ic_enc, ic_dim, ci_enc, lag, clip, dropout, 1e-4).to(dtype).train()
    with torch.no_grad():
        for h0 in (ours.ic_enc.h0, ours.ci_enc.h0):
            h0.normal_(0, h0_scale)
        for enc in (ours.ic_enc, ours.ci_enc):  # lfads-torch's initial biases, perturbed so each entry matters
            enc.bias_ih.add_(0.3 * torch.randn_like(enc.bias_ih))
    ref = ReferenceEncoder(ours)
    data = (2.0 * torch.randn(batch, steps, n_in, dtype=dtype)).requires_grad_()
    masks = {shape: _mask(shape, dtype) for shape in ((batch, steps, n_in), (batch, 2 * ic_enc))}
    noise = FixedNoise(masks)
    monkeypatch.setattr(modules, "dropout", noise.dropout)

    mine = ours(data)
    theirs = ref(data, *(masks.values() if dropout > 0 else (None, None)))
    assert noise.used == (list(masks) if dropout > 0 else [])  # the data once, then the final IC-encoder state
    out_tol, grad_tol = TOLERANCES[dtype]
    for name, a, b in zip(("ic_mean", "ic_std", "ci"), mine, theirs):
        torch.testing.assert_close(a, b.transpose(0, 1) if name == "ci" else b, **out_tol, msg=name)
    # the clip binds (or not) as intended: look at the encoder states themselves
    states = run_bidirectional(ref.ci_fwd, ref.ci_bwd, data.detach(), ref.ci_enc_h0.detach().tile(1, batch, 1))[0]
    _assert_clip(states, clip, binds)

    weights = [torch.randn_like(t) for t in theirs]
    pairs = ref.pairs(ours)
    g_mine = torch.autograd.grad(_weighted_sum([mine[0], mine[1], mine[2].transpose(0, 1)], weights),
                                 [data] + [p for _, p, _, _ in pairs])
    g_ref = torch.autograd.grad(_weighted_sum(list(theirs), weights), [data] + [p for _, _, _, p in pairs])
    torch.testing.assert_close(g_mine[0], g_ref[0], **grad_tol, msg="data")
    _compare_grads(pairs, g_mine[1:], g_ref[1:], grad_tol)
    assert all(cell.bias_hh.grad is None and not cell.bias_hh.any()
               for cell in (ref.ic_fwd, ref.ic_bwd, ref.ci_fwd, ref.ci_bwd))


def test_lfads_torch_initialisation():
    """init_gru_cell_: input bias 1 for z and r, 0 for n; weights ~ N(0, 1/fan) with fan = input + hidden
    for the encoders (is_encoder) and input, hidden for the decoder's cells; zero initial states."""
    torch.manual_seed(0)
    enc = Encoder(107, 100, 100, 80, 1, 5.0, 0.0, 1e-4)
    dec = Decoder(100, 100, 40, 160, 80, 4, 5.0, 0.0)
    for gru in (enc.ic_enc, enc.ci_enc):
        h = gru.hidden_size
        assert (gru.bias_ih[:, :2 * h] == 1).all() and (gru.bias_ih[:, 2 * h:] == 0).all()
        assert not gru.h0.any()
        for w in (gru.weight_ih, gru.weight_hh):
            assert w.std().item() == pytest.approx((107 + h) ** -0.5, rel=0.03)
    for cell, n_in in ((dec.gen, 4), (dec.con, 200)):
        h = cell.hidden_size
        assert (cell.bias_ih[:2 * h] == 1).all() and (cell.bias_ih[2 * h:] == 0).all()
        assert cell.weight_ih.std().item() == pytest.approx(n_in ** -0.5, rel=0.05)
        assert cell.weight_hh.std().item() == pytest.approx(h ** -0.5, rel=0.03)
    assert not dec.con_h0.any()


# ---------------------------------------------------------------------- (b) the decoder loop
DECODER_CASES = [  # (clip, scale of the IC → gen_init, sample the inferred inputs, training (dropout), binds)
    (5.0, 1.0, True, True, False),
    (0.5, 1.0, True, True, True),
    (5.0, 6.0, True, True, True),
    (5.0, 1.0, False, False, False),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("clip, ic_scale, sample, training, binds", DECODER_CASES,
                         ids=["unclipped", "clip<1", "g0>clip", "means-eval"])
def test_decoder_matches_lfads_torch(dtype, clip, ic_scale, sample, training, binds, monkeypatch):
    """Controller (ci + previous factor) → inferred-input sample → generator → factors, as `Decoder` runs it."""
    torch.manual_seed(1)
    batch, steps, n_ci, ic_dim, gen, fac, con, co = 3, 7, 8, 4, 7, 5, 6, 2
    ours = Decoder(ic_dim, gen, fac, n_ci, con, co, clip, 0.3).to(dtype).train(training)
    with torch.no_grad():
        ours.con_h0.normal_(0, 0.5)
        ours.co_linear.bias.normal_(0, 0.5)
        ours.ic_to_g0.bias.normal_(0, 0.5)
        for cell in (ours.gen, ours.con):
            cell.bias_ih.add_(0.3 * torch.randn_like(cell.bias_ih))
    ref = ReferenceDecoder(ours)
    ic = (ic_scale * 2.0 * torch.randn(batch, ic_dim, dtype=dtype)).requires_grad_()
    ci = torch.randn(batch, steps, n_ci, dtype=dtype).requires_grad_()  # batch-first, as lfads-torch's
    eps = torch.randn(batch, steps, co, dtype=dtype)
    mask_g0, mask_con, mask_gen = _mask((batch, gen), dtype), _mask((batch, steps, n_ci + fac), dtype), \
        _mask((batch, steps, gen), dtype)
    tm = lambda t: t.transpose(0, 1).contiguous()  # noqa: E731  (batch-first → our time-major)
    noise = FixedNoise({(steps, batch, n_ci): tm(mask_con[..., :n_ci]), (batch, gen): mask_g0,
                        (steps, batch, fac): tm(mask_con[..., n_ci:]), (steps, batch, gen): tm(mask_gen)},
                       tm(eps) if sample else None)
    with monkeypatch.context() as m:
        m.setattr(modules, "dropout", noise.dropout)
        m.setattr(modules, "dropout_mask", noise.dropout_mask)
        m.setattr(torch, "randn", noise.randn)
        mine = ours(ic, tm(ci), steps, sample)
    if training:  # every mask lfads-torch applies, each once
        assert sorted(map(str, noise.used)) == sorted(map(str, list(noise.masks) + (["eps"] if sample else [])))
    theirs = ref(ic, ci, steps, eps if sample else None, *((mask_g0, mask_con, mask_gen) if training else
                                                           (None, None, None)))
    names = ["gen_states", "con_states", "co_means", "co_stds", "gen_inputs", "factors", "gen_init"]
    assert set(mine) == set(names)
    mine = [mine[k] if k == "gen_init" else mine[k].transpose(0, 1) for k in names]
    theirs = [theirs[k] for k in names]
    out_tol, grad_tol = TOLERANCES[dtype]
    for name, a, b in zip(names, mine, theirs):
        torch.testing.assert_close(a, b, **out_tol, msg=name)
    _assert_clip(theirs[0], clip, binds)  # the generator's states
    if not binds:
        _assert_clip(theirs[1], clip, False)

    weights = [torch.randn_like(t) for t in theirs]
    pairs = ref.pairs(ours)
    g_mine = torch.autograd.grad(_weighted_sum(mine, weights), [ic, ci] + [p for _, p, _, _ in pairs])
    g_ref = torch.autograd.grad(_weighted_sum(theirs, weights), [ic, ci] + [p for _, _, _, p in pairs])
    torch.testing.assert_close(g_mine[0], g_ref[0], **grad_tol, msg="ic")
    torch.testing.assert_close(g_mine[1], g_ref[1], **grad_tol, msg="ci")
    _compare_grads(pairs, g_mine[2:], g_ref[2:], grad_tol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_generator_without_controller_and_generate_match_lfads_torch(dtype, monkeypatch):
    """No controller: a generator whose only input is its bias (one `kernels.grus` chain); and
    `Decoder.generate`, the generator driven by given inputs (the forward-only path)."""
    torch.manual_seed(2)
    batch, steps, ic_dim, gen, fac = 3, 6, 4, 7, 5
    ours = Decoder(ic_dim, gen, fac, 0, 0, 0, 5.0, 0.3).to(dtype).train()
    ref = ReferenceDecoder(ours)
    ic = (12.0 * torch.randn(batch, ic_dim, dtype=dtype)).requires_grad_()  # some gen_init beyond the clip
    mask_gen = _mask((batch, steps, gen), dtype)
    noise = FixedNoise({(steps, batch, gen): mask_gen.transpose(0, 1).contiguous()})
    with monkeypatch.context() as m:
        m.setattr(modules, "dropout_mask", noise.dropout_mask)
        mine = ours(ic, None, steps, True)
    theirs = ref(ic, None, steps, None, None, None, mask_gen)
    out_tol, grad_tol = TOLERANCES[dtype]
    for name in ("gen_states", "factors"):
        torch.testing.assert_close(mine[name].transpose(0, 1), theirs[name], **out_tol, msg=name)
    _assert_clip(theirs["gen_states"], 5.0, True)
    weights = [torch.randn_like(theirs[k]) for k in ("gen_states", "factors")]
    pairs = ref.pairs(ours)
    g_mine = torch.autograd.grad(_weighted_sum([mine["gen_states"].transpose(0, 1), mine["factors"].transpose(0, 1)],
                                               weights), [ic] + [p for _, p, _, _ in pairs])
    g_ref = torch.autograd.grad(_weighted_sum([theirs["gen_states"], theirs["factors"]], weights),
                                [ic] + [p for _, _, _, p in pairs])
    torch.testing.assert_close(g_mine[0], g_ref[0], **grad_tol, msg="ic")
    _compare_grads(pairs, g_mine[1:], g_ref[1:], grad_tol)

    # generate: the generator fed the given inferred inputs, no dropout
    driven = Decoder(ic_dim, gen, fac, 6, 5, 2, 5.0, 0.3).to(dtype)
    inputs = torch.randn(steps, batch, 2, dtype=dtype)
    factors = driven.generate(ic.detach(), inputs, steps)
    cell = ReferenceCell(driven.gen.weight_ih, driven.gen.bias_ih, driven.gen.weight_hh, 5.0)
    states, _ = run_cell(cell, inputs.transpose(0, 1), driven.ic_to_g0(ic.detach()))
    expected = F.linear(states, F.normalize(driven.fac.weight, p=2, dim=1))
    torch.testing.assert_close(factors.transpose(0, 1), expected.detach(), **out_tol)


# ---------------------------------------------------------------------- the whole training step
def test_training_step_matches_lfads_torch_style_recurrences(monkeypatch):
    """LfadsNet.losses + backward with our kernels and with `reference_grus` / `reference_decoder` in
    their place: the same loss and the same gradient for every parameter (float64, same noise)."""
    config = LfadsConfig(ic_enc_dim=6, ci_enc_dim=4, con_dim=5, co_dim=2, ic_dim=4, gen_dim=7, fac_dim=3,
                         dropout_rate=0.2)
    heldout = [False] * 5 + [True] * 2
    torch.manual_seed(3)
    net = LfadsNet(config, 7, 8, heldout).double().train()
    counts = torch.poisson(torch.full((4, 8, 7), 1.5, dtype=torch.float64))

    def step():
        torch.manual_seed(4)
        net.zero_grad()
        terms = net.losses([counts])
        terms["loss"].backward()
        return {k: v.detach() for k, v in terms.items()}, {k: p.grad.clone() for k, p in net.named_parameters()}

    fast_terms, fast_grads = step()
    net.step.zero_()
    monkeypatch.setattr(kernels, "grus", reference_grus)
    monkeypatch.setattr(kernels, "decoder", reference_decoder)
    slow_terms, slow_grads = step()
    for k in fast_terms:
        torch.testing.assert_close(fast_terms[k], slow_terms[k], rtol=1e-11, atol=1e-12, msg=k)
    assert set(fast_grads) == set(slow_grads) and len(fast_grads) > 15
    for k in fast_grads:
        torch.testing.assert_close(fast_grads[k], slow_grads[k], rtol=1e-9, atol=1e-9, msg=k)


# ---------------------------------------------------------------------- a documented tie-break at ±clip
def test_gradient_at_a_state_exactly_at_the_clip_is_cut():
    """At a state *exactly* at ±clip whose clamp did not bind (here h0 = clip and a saturated update
    gate, z = 1 exactly, so h' = h0 = clip before clamping), torch.clamp's autograd passes the gradient
    (its derivative is 1 on the closed interval) while our kernels, which see only clamped states,
    treat the state as clipped and pass 0. Both are valid subgradients; the case needs z to round
    to exactly 1 (or an exact tie), so it is measure-zero in float64 and rare in float32."""
    h0 = torch.full((1, 1), 5.0, dtype=torch.float64, requires_grad=True)
    w_ih = torch.zeros(3, 1, dtype=torch.float64)
    b_ih = torch.tensor([50.0, 0.0, 0.0], dtype=torch.float64)  # σ(50) == 1.0 in float64
    w_hh = torch.zeros(3, 1, dtype=torch.float64)
    x = torch.zeros(1, 1, 1, dtype=torch.float64)
    chain = [(w_ih, b_ih, h0, w_hh, False)]
    (ours,) = kernels.grus(x, chain, 5.0)
    (theirs,) = reference_grus(x, chain, 5.0)
    assert ours.item() == theirs.item() == 5.0
    assert torch.autograd.grad(theirs.sum(), h0)[0].item() == 1.0  # lfads-torch (autograd through clamp)
    assert torch.autograd.grad(ours.sum(), h0)[0].item() == 0.0  # ours: |h| < clip is false → cut


# ---------------------------------------------------------------------- the eager fallback
def _kernel_calls(dtype=torch.float64):
    """A GRU chain pair and a decoder loop, outputs and gradients, with fixed inputs."""
    torch.manual_seed(5)
    g = lambda *s: torch.randn(*s, dtype=dtype, requires_grad=True)  # noqa: E731
    x = g(6, 3, 4)
    chains = [(g(9, 4), g(9), g(3, 3), g(9, 3), False), (g(6, 4), g(6), g(3, 2), g(6, 2), True)]
    leaves = [x] + [t for c in chains for t in c[:4]]
    states = kernels.grus(x, chains, 0.8)
    grads = torch.autograd.grad(sum(s.pow(2).sum() for s in states), leaves)
    dec_in = [g(6, 3, 12), g(3, 5), g(3, 4), g(3, 2)]
    dec_w = [g(12, 2), g(12, 4), g(4, 4), g(4), g(15, 2), g(15), g(15, 5), g(2, 5)]
    eps = torch.randn(6, 3, 2, dtype=dtype)
    out = kernels.decoder(*dec_in, eps, None, None, *dec_w, 0.8)
    d_grads = torch.autograd.grad(sum(o.pow(2).sum() for o in out), dec_in + dec_w)
    return [t.detach() for t in (*states, *grads, *out, *d_grads)]


def test_eager_fallback_warns_once_and_gives_the_same_numbers(monkeypatch):
    assert kernels.COMPILED and kernels.NOT_COMPILED_REASON is None  # TorchScript works with this torch
    compiled = _kernel_calls()

    def broken(fn):
        raise RuntimeError("TorchScript is gone\n(and a long traceback-like second line)")

    # `_compile` itself: the plain function back, and why
    monkeypatch.setattr(torch.jit, "script", broken)
    fn, reason = kernels._compile(kernels._gru_forward)
    assert fn is kernels._gru_forward and reason == "RuntimeError: TorchScript is gone"
    with monkeypatch.context() as m:
        m.delattr(torch.jit, "script")
        fn, reason = kernels._compile(kernels._gru_forward)
        assert fn is kernels._gru_forward and reason.startswith("AttributeError")
    with monkeypatch.context() as m:  # a torch.jit.script that hands the function back unscripted
        m.setattr(torch.jit, "script", lambda fn: fn)
        fn, reason = kernels._compile(kernels._gru_forward)
        assert fn is kernels._gru_forward and "did not compile" in reason

    # the module loaded without TorchScript: warns at first use, once, and computes the same
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing at import
            importlib.reload(kernels)
        assert not kernels.COMPILED and kernels.NOT_COMPILED_REASON == "RuntimeError: TorchScript is gone"
        assert kernels.gru_forward is kernels._gru_forward
        with pytest.warns(RuntimeWarning) as caught:
            eager = _kernel_calls()
        assert len(caught) == 1
        message = str(caught[0].message)
        assert message.startswith("LFADS recurrences run eagerly, without TorchScript")
        assert f"{kernels.EAGER_SLOWDOWN:.1f}× the compiled time" in message
        assert "RuntimeError: TorchScript is gone" in message and "\n" not in message
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # only once per process
            _kernel_calls()
        for a, b in zip(eager, compiled):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    finally:
        monkeypatch.undo()
        importlib.reload(kernels)
    assert kernels.COMPILED and isinstance(kernels.gru_forward, torch.jit.ScriptFunction)
