"""Fast recurrences for LFADS on CPU: GRU loops with hand-written backpropagation through time.

Autograd records every small op of a recurrent loop (about 30 per bin here) and replays them one
by one backwards. So each loop below is one `autograd.Function` whose forward keeps the gate
activations and whose backward runs the chain rule by hand, bin by bin, then forms every weight
gradient with one large matrix product over all bins (as cuDNN does). Input projections
(x·W_ihᵀ + b for all bins at once) stay outside the loops, as one product over all bins.
`torch.nn.GRU` cannot stand in: its cell is not lfads-torch's (reset after the recurrent product,
a recurrent bias, no clipping), and on CPU it is no faster.

Measured by ``python benchmarks/lfads_kernels.py`` (torch 2.13 CPU, 2 threads on a shared 2-core
AMD EPYC; one batch of 64 trials × 140 bins at mc_maze_small sizes, forward + backward, medians;
runs on this machine vary by about ±20 %): the two bidirectional encoders take 0.17–0.24 s here
against 0.20–0.27 s with torch.nn.GRU and 0.35–0.50 s with lfads-torch's cell stepped under
autograd; the controller / generator loop 0.08–0.10 s against 0.19–0.28 s; a whole training step
(`LfadsNet.losses` + backward) 0.27–0.39 s against 0.55–0.80 s, about 2× faster.

The loops are TorchScript-compiled when TorchScript works (`COMPILED`; if not, `NOT_COMPILED_REASON`
says why) and otherwise run eagerly, with the same maths and one RuntimeWarning at the first
recurrence. With torch 2.13 at these sizes compilation buys little: the eager loops run a
training step within ±10 % of the compiled ones (the matrix products dominate, not per-op overhead).

The cell is lfads-torch's `ClippedGRUCell` (the TF / original-LFADS variant): gates in the order
(z, r, n), reset applied *before* the recurrent product, no recurrent bias, state clipped:

    z, r = σ(gx_zr + h·W_zrᵀ);  n = tanh(gx_n + (r ⊙ h)·W_nᵀ);  h' = clip(z ⊙ h + (1 − z) ⊙ n)

`tests/test_lfads.py` checks every gradient against autograd on the same maths (float64);
`tests/test_lfads_kernels_reference.py` checks the modules that use these loops against a reference
written independently from lfads-torch's equations. One tie-break differs from autograd there: a
state exactly at ±clip is treated as clipped (gradient 0) even when its clamp did not bind.
"""

from __future__ import annotations

import warnings
from typing import List, Tuple

import torch
from torch import Tensor

NONE = torch.empty(0)  # "no tensor" for TorchScript signatures (an absent mask, noise or gradient)


# ---------------------------------------------------------------------- a GRU chain
def _gru_forward(gx: Tensor, h0: Tensor, w_hh: Tensor, clip: float, reverse: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """One chain over gx (T, B, 3H) from h0 (B, H); `reverse` reads the bins last to first.

    Returns, in time order, states (T, B, H), z|r gates (T, B, 2H) and candidates n (T, B, H).
    """
    hidden = h0.shape[1]
    steps = gx.shape[0]
    w_zr_t = w_hh[: 2 * hidden].t()
    w_n_t = w_hh[2 * hidden:].t()
    h = h0
    states: List[Tensor] = []
    gates: List[Tensor] = []
    cands: List[Tensor] = []
    for s in range(steps):
        g = gx[steps - 1 - s] if reverse else gx[s]
        zr = torch.sigmoid(torch.addmm(g[:, : 2 * hidden], h, w_zr_t))
        n = torch.tanh(torch.addmm(g[:, 2 * hidden:], zr[:, hidden:] * h, w_n_t))
        h = torch.lerp(n, h, zr[:, :hidden])
        if clip < float("inf"):
            h = torch.clamp(h, -clip, clip)
        states.append(h)
        gates.append(zr)
        cands.append(n)
    if reverse:
        states.reverse()
        gates.reverse()
        cands.reverse()
    return torch.stack(states), torch.stack(gates), torch.stack(cands)


def _gru_backward(d_states: Tensor, states: Tensor, gates: Tensor, cands: Tensor, h0: Tensor, w_hh: Tensor,
                  clip: float, reverse: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """Gradients w.r.t. gx (T, B, 3H), h0 and w_hh (3H, H) given the gradient w.r.t. every state."""
    hidden = h0.shape[1]
    steps = states.shape[0]
    w_z = w_hh[:hidden].contiguous()
    w_r = w_hh[hidden: 2 * hidden].contiguous()
    w_n = w_hh[2 * hidden:].contiguous()
    if reverse:
        prevs = torch.cat([states[1:], h0.unsqueeze(0)], 0)
    else:
        prevs = torch.cat([h0.unsqueeze(0), states[:-1]], 0)
    z = gates[:, :, :hidden]
    r = gates[:, :, hidden:]
    # every factor that does not depend on the incoming gradient, for all bins at once
    a_n = (1 - z) * (1 - cands * cands)
    q_z = (prevs - cands) * z * (1 - z)
    r_prev = r * prevs
    q_r = r_prev * (1 - r)
    keep = (states.abs() < clip).to(states.dtype)
    dh = torch.zeros_like(h0)
    d_gxs: List[Tensor] = []
    for s in range(steps - 1, -1, -1):
        t = steps - 1 - s if reverse else s
        dh = dh + d_states[t]
        if clip < float("inf"):
            dh = dh * keep[t]
        dn = dh * a_n[t]
        d_rh = torch.mm(dn, w_n)
        dz = dh * q_z[t]
        dr = d_rh * q_r[t]
        dh = torch.addmm(torch.addmm(dh * z[t] + d_rh * r[t], dz, w_z), dr, w_r)
        d_gxs.append(torch.cat([dz, dr, dn], 1))
    if not reverse:  # collected last bin first
        d_gxs.reverse()
    d_gx = torch.stack(d_gxs)
    flat = d_gx.view(steps * h0.shape[0], 3 * hidden)
    dw = torch.cat([torch.mm(flat[:, : 2 * hidden].t(), prevs.reshape(-1, hidden)),
                    torch.mm(flat[:, 2 * hidden:].t(), r_prev.reshape(-1, hidden))], 0)
    return d_gx, dh, dw


# ---------------------------------------------------------------------- controller + generator
def _decoder_forward(ci_proj: Tensor, gen0: Tensor, con0: Tensor, f0: Tensor, eps: Tensor, mask_f: Tensor,
                     mask_g: Tensor, w_cf: Tensor, w_chh: Tensor, w_co: Tensor, b_co: Tensor, w_gi: Tensor,
                     b_gi: Tensor, w_ghh: Tensor, w_fac: Tensor, clip: float) -> List[Tensor]:
    """The coupled controller → inferred input → generator → factor loop, one step per bin.

    ci_proj (T, B, 3C): controller-input projection (encoder output, dropped out, ·W + b);
    the factor of the previous bin is the rest of the controller's input. eps (T, B, CO) is
    the reparameterisation noise of the inferred inputs (empty: posterior means); mask_f /
    mask_g are the (scaled) dropout masks on factors fed back and on generator states (empty:
    none). Returns [gen, con, co_params (mean | log-variance), co, factors, con gates, con
    candidates, gen gates, gen candidates], each (T, B, ·).
    """
    n_con = con0.shape[1]
    n_gen = gen0.shape[1]
    n_co = w_gi.shape[1]
    sample = eps.numel() > 0
    drop_f = mask_f.numel() > 0
    drop_g = mask_g.numel() > 0
    w_cf_t = w_cf.t()
    w_czr_t = w_chh[: 2 * n_con].t()
    w_cn_t = w_chh[2 * n_con:].t()
    w_co_t = w_co.t()
    w_gi_t = w_gi.t()
    w_gzr_t = w_ghh[: 2 * n_gen].t()
    w_gn_t = w_ghh[2 * n_gen:].t()
    w_fac_t = w_fac.t()
    gen, con, f = gen0, con0, f0
    gens: List[Tensor] = []
    cons: List[Tensor] = []
    params: List[Tensor] = []
    cos: List[Tensor] = []
    facs: List[Tensor] = []
    czrs: List[Tensor] = []
    cns: List[Tensor] = []
    gzrs: List[Tensor] = []
    gns: List[Tensor] = []
    for t in range(ci_proj.shape[0]):
        gxc = torch.addmm(ci_proj[t], f * mask_f[t] if drop_f else f, w_cf_t)
        czr = torch.sigmoid(torch.addmm(gxc[:, : 2 * n_con], con, w_czr_t))
        cn = torch.tanh(torch.addmm(gxc[:, 2 * n_con:], czr[:, n_con:] * con, w_cn_t))
        con = torch.clamp(torch.lerp(cn, con, czr[:, :n_con]), -clip, clip)
        p = torch.addmm(b_co, con, w_co_t)
        co = torch.addcmul(p[:, :n_co], torch.exp(0.5 * p[:, n_co:]), eps[t]) if sample else p[:, :n_co]
        gxg = torch.addmm(b_gi, co, w_gi_t)
        gzr = torch.sigmoid(torch.addmm(gxg[:, : 2 * n_gen], gen, w_gzr_t))
        gn = torch.tanh(torch.addmm(gxg[:, 2 * n_gen:], gzr[:, n_gen:] * gen, w_gn_t))
        gen = torch.clamp(torch.lerp(gn, gen, gzr[:, :n_gen]), -clip, clip)
        f = torch.mm(gen * mask_g[t] if drop_g else gen, w_fac_t)
        gens.append(gen)
        cons.append(con)
        params.append(p)
        cos.append(co)
        facs.append(f)
        czrs.append(czr)
        cns.append(cn)
        gzrs.append(gzr)
        gns.append(gn)
    return [torch.stack(gens), torch.stack(cons), torch.stack(params), torch.stack(cos), torch.stack(facs),
            torch.stack(czrs), torch.stack(cns), torch.stack(gzrs), torch.stack(gns)]


def _decoder_backward(d_gen: Tensor, d_con: Tensor, d_params: Tensor, d_co: Tensor, d_fac: Tensor,
                      gens: Tensor, cons: Tensor, params: Tensor, cos: Tensor, facs: Tensor, czrs: Tensor,
                      cns: Tensor, gzrs: Tensor, gns: Tensor, gen0: Tensor, con0: Tensor, f0: Tensor, eps: Tensor,
                      mask_f: Tensor, mask_g: Tensor, w_cf: Tensor, w_chh: Tensor, w_co: Tensor, w_gi: Tensor,
                      w_ghh: Tensor, w_fac: Tensor, clip: float) -> List[Tensor]:
    """Chain rule through `_decoder_forward`, last bin first; weight gradients in bulk at the end.

    Output gradients may be empty (not needed). Returns gradients w.r.t. [ci_proj, gen0, con0, f0,
    w_cf, w_chh, w_co, b_co, w_gi, b_gi, w_ghh, w_fac].
    """
    n_con = con0.shape[1]
    n_gen = gen0.shape[1]
    n_co = w_gi.shape[1]
    steps, batch = gens.shape[0], gens.shape[1]
    sample = eps.numel() > 0
    drop_f = mask_f.numel() > 0
    drop_g = mask_g.numel() > 0
    has_d_gen = d_gen.numel() > 0
    has_d_con = d_con.numel() > 0
    has_d_params = d_params.numel() > 0
    has_d_co = d_co.numel() > 0
    has_d_fac = d_fac.numel() > 0
    w_cz = w_chh[:n_con].contiguous()
    w_cr = w_chh[n_con: 2 * n_con].contiguous()
    w_cn = w_chh[2 * n_con:].contiguous()
    w_gz = w_ghh[:n_gen].contiguous()
    w_gr = w_ghh[n_gen: 2 * n_gen].contiguous()
    w_gn = w_ghh[2 * n_gen:].contiguous()
    w_gi_t = w_gi.t().contiguous()  # (CO, 3G): a (64×3G)·(3G×CO) product is 3× faster read transposed
    prev_g = torch.cat([gen0.unsqueeze(0), gens[:-1]], 0)
    prev_c = torch.cat([con0.unsqueeze(0), cons[:-1]], 0)
    # factors independent of the incoming gradient, for all bins at once
    gz = gzrs[:, :, :n_gen]
    gr = gzrs[:, :, n_gen:]
    a_g = (1 - gz) * (1 - gns * gns)
    q_gz = (prev_g - gns) * gz * (1 - gz)
    rprev_g = gr * prev_g
    q_gr = rprev_g * (1 - gr)
    keep_g = (gens.abs() < clip).to(gens.dtype)
    cz = czrs[:, :, :n_con]
    cr = czrs[:, :, n_con:]
    a_c = (1 - cz) * (1 - cns * cns)
    q_cz = (prev_c - cns) * cz * (1 - cz)
    rprev_c = cr * prev_c
    q_cr = rprev_c * (1 - cr)
    keep_c = (cons.abs() < clip).to(cons.dtype)
    e_lv = eps * 0.5 * torch.exp(0.5 * params[:, :, n_co:]) if sample else eps
    d_gen_c = torch.zeros_like(gen0)
    d_con_c = torch.zeros_like(con0)
    d_f_c = torch.zeros_like(f0)
    d_fs: List[Tensor] = []
    d_gxgs: List[Tensor] = []
    d_ps: List[Tensor] = []
    d_gxcs: List[Tensor] = []
    for t in range(steps - 1, -1, -1):
        # factor f_t = (gen_t ⊙ mask) · W_facᵀ, read out and fed to the controller at t + 1
        d_f = d_fac[t] + d_f_c if has_d_fac else d_f_c
        d_fs.append(d_f)
        d_gf = torch.mm(d_f, w_fac)
        if drop_g:
            d_gf = d_gf * mask_g[t]
        dg = d_gen_c + d_gf
        if has_d_gen:
            dg = dg + d_gen[t]
        dg = dg * keep_g[t]
        dn = dg * a_g[t]
        d_rh = torch.mm(dn, w_gn)
        dz = dg * q_gz[t]
        dr = d_rh * q_gr[t]
        d_gen_c = torch.addmm(torch.addmm(dg * gz[t] + d_rh * gr[t], dz, w_gz), dr, w_gr)
        d_gxg = torch.cat([dz, dr, dn], 1)
        d_gxgs.append(d_gxg)
        # inferred input co_t = mean + exp(logvar / 2) ⊙ eps
        dco = torch.mm(d_gxg, w_gi_t.t())
        if has_d_co:
            dco = dco + d_co[t]
        d_p = torch.cat([dco, dco * e_lv[t]], 1) if sample else torch.cat([dco, torch.zeros_like(dco)], 1)
        if has_d_params:
            d_p = d_p + d_params[t]
        d_ps.append(d_p)
        dc = torch.addmm(d_con_c, d_p, w_co)
        if has_d_con:
            dc = dc + d_con[t]
        dc = dc * keep_c[t]
        dcn = dc * a_c[t]
        d_crh = torch.mm(dcn, w_cn)
        dcz = dc * q_cz[t]
        dcr = d_crh * q_cr[t]
        d_con_c = torch.addmm(torch.addmm(dc * cz[t] + d_crh * cr[t], dcz, w_cz), dcr, w_cr)
        d_gxc = torch.cat([dcz, dcr, dcn], 1)
        d_gxcs.append(d_gxc)
        d_f_c = torch.mm(d_gxc, w_cf)
        if drop_f:
            d_f_c = d_f_c * mask_f[t]
    d_fs.reverse()
    d_gxgs.reverse()
    d_ps.reverse()
    d_gxcs.reverse()
    flat = steps * batch
    d_f_all = torch.stack(d_fs).reshape(flat, -1)
    d_gxg_all = torch.stack(d_gxgs).reshape(flat, -1)
    d_p_all = torch.stack(d_ps).reshape(flat, -1)
    d_gxc_all = torch.stack(d_gxcs)
    dgxc = d_gxc_all.reshape(flat, -1)
    f_in = torch.cat([f0.unsqueeze(0), facs[:-1]], 0)
    if drop_f:
        f_in = f_in * mask_f
    g_out = gens * mask_g if drop_g else gens
    dw_cf = torch.mm(dgxc.t(), f_in.reshape(flat, -1))
    dw_chh = torch.cat([torch.mm(dgxc[:, : 2 * n_con].t(), prev_c.reshape(flat, -1)),
                        torch.mm(dgxc[:, 2 * n_con:].t(), rprev_c.reshape(flat, -1))], 0)
    dw_co = torch.mm(d_p_all.t(), cons.reshape(flat, -1))
    db_co = d_p_all.sum(0)
    dw_gi = torch.mm(d_gxg_all.t(), cos.reshape(flat, -1))
    db_gi = d_gxg_all.sum(0)
    dw_ghh = torch.cat([torch.mm(d_gxg_all[:, : 2 * n_gen].t(), prev_g.reshape(flat, -1)),
                        torch.mm(d_gxg_all[:, 2 * n_gen:].t(), rprev_g.reshape(flat, -1))], 0)
    dw_fac = torch.mm(d_f_all.t(), g_out.reshape(flat, -1))
    return [d_gxc_all, d_gen_c, d_con_c, d_f_c, dw_cf, dw_chh, dw_co, db_co, dw_gi, db_gi, dw_ghh, dw_fac]


#: how much slower a training step is with the loops run eagerly: benchmarks/lfads_kernels.py, torch 2.13 CPU,
#: 2 threads, batch 64 (eager / compiled 0.9–1.1 over five runs)
EAGER_SLOWDOWN = 1.0


def _compile(fn):
    """(TorchScript of fn, None) when it works, else (fn itself, the one-line reason).

    TorchScript's own deprecation chatter is silenced; a torch.jit.script that is missing, raises or
    hands back something other than a ScriptFunction all count as a failure.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.script(fn)
    except Exception as error:  # TorchScript removed, unavailable or unable to compile this torch's ops
        lines = str(error).strip().splitlines()
        return fn, f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    if not isinstance(scripted, torch.jit.ScriptFunction):
        return fn, f"torch.jit.script did not compile {fn.__name__} (it returned {type(scripted).__name__})"
    return scripted, None


_scripted = [_compile(fn) for fn in (_gru_forward, _gru_backward, _decoder_forward, _decoder_backward)]
gru_forward, gru_backward, decoder_forward, decoder_backward = (fn for fn, _ in _scripted)
#: whether the loops run TorchScript-compiled; if not, why (the first failure's message, one line)
NOT_COMPILED_REASON: str | None = next((reason for _, reason in _scripted if reason), None)
COMPILED: bool = NOT_COMPILED_REASON is None
_warned = False


def _warn_if_eager() -> None:
    """One RuntimeWarning per process, at the first recurrence run eagerly: not at import, so a process
    that imports LFADS without running it (listing or inspecting model folders) is not told."""
    global _warned
    if COMPILED or _warned:
        return
    _warned = True
    warnings.warn(f"LFADS recurrences run eagerly, without TorchScript ({NOT_COMPILED_REASON}): a training "
                  f"step measured {EAGER_SLOWDOWN:.1f}× the compiled time on CPU with torch 2.13 (python "
                  "benchmarks/lfads_kernels.py); on other builds and on GPU it may be slower", RuntimeWarning,
                  stacklevel=3)


# ---------------------------------------------------------------------- autograd wrappers
class _GRUs(torch.autograd.Function):
    """GRU chains reading the same input x (T, B, I), each through its own input projection.

    The projection is done here rather than by autograd so that each chain's input gradient
    goes straight into its weight gradient, never through one (T, B, Σ 3H) buffer.
    """

    @staticmethod
    def forward(ctx, x, clip, reverse, *chain_tensors):
        steps, batch, n_in = x.shape
        x2d = x.reshape(steps * batch, n_in)
        outputs, saved = [], [x]
        for i, rev in enumerate(reverse):
            w_ih, b_ih, h0, w_hh = chain_tensors[4 * i: 4 * i + 4]
            gx = torch.addmm(b_ih, x2d, w_ih.t()).view(steps, batch, -1)
            states, gates, cands = gru_forward(gx, h0, w_hh, clip, rev)
            outputs.append(states)
            saved += [states, gates, cands, h0, w_hh, w_ih]
        ctx.save_for_backward(*saved)
        ctx.clip, ctx.reverse = clip, reverse
        ctx.set_materialize_grads(False)
        return tuple(outputs)

    @staticmethod
    def backward(ctx, *d_outputs):
        x, *saved = ctx.saved_tensors
        steps, batch, n_in = x.shape
        x2d = x.reshape(steps * batch, n_in)
        dx = None
        grads = []
        for i, (d_states, rev) in enumerate(zip(d_outputs, ctx.reverse)):
            states, gates, cands, h0, w_hh, w_ih = saved[6 * i: 6 * i + 6]
            if d_states is None:
                d_states = torch.zeros_like(states)
            d_gx, dh0, dw_hh = gru_backward(d_states.contiguous(), states, gates, cands, h0, w_hh, ctx.clip, rev)
            d_gx = d_gx.view(steps * batch, -1)
            grads += [torch.mm(d_gx.t(), x2d), d_gx.sum(0), dh0, dw_hh]
            if ctx.needs_input_grad[0]:
                dx = torch.mm(d_gx, w_ih) if dx is None else torch.addmm(dx, d_gx, w_ih)
        return (None if dx is None else dx.view(steps, batch, n_in), None, None, *grads)


class _Decoder(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ci_proj, gen0, con0, f0, eps, mask_f, mask_g, w_cf, w_chh, w_co, b_co, w_gi, b_gi,
                w_ghh, w_fac, clip):
        out = decoder_forward(ci_proj, gen0, con0, f0, eps, mask_f, mask_g, w_cf, w_chh, w_co, b_co, w_gi,
                              b_gi, w_ghh, w_fac, clip)
        ctx.save_for_backward(*out, gen0, con0, f0, eps, mask_f, mask_g, w_cf, w_chh, w_co, w_gi, w_ghh, w_fac)
        ctx.clip = clip
        ctx.set_materialize_grads(False)
        return tuple(out[:5])

    @staticmethod
    def backward(ctx, *d_outputs):
        saved = ctx.saved_tensors
        grads = [NONE if d is None else d.contiguous() for d in d_outputs]
        grads = decoder_backward(*grads, *saved, ctx.clip)
        d_ci, d_gen0, d_con0, d_f0, dw_cf, dw_chh, dw_co, db_co, dw_gi, db_gi, dw_ghh, dw_fac = grads
        return (d_ci, d_gen0, d_con0, d_f0, None, None, None, dw_cf, dw_chh, dw_co, db_co, dw_gi, db_gi, dw_ghh,
                dw_fac, None)


def grus(x: Tensor, chains: list[tuple[Tensor, Tensor, Tensor, Tensor, bool]],
         clip: float = float("inf")) -> tuple[Tensor, ...]:
    """States (T, B, H_i), in time order, of GRU chains that all read x (T, B, I).

    ``chains``: (w_ih (3H, I), b_ih (3H,), h0 (B, H), w_hh (3H, H), reverse) per chain.
    """
    _warn_if_eager()
    tensors = [t for chain in chains for t in chain[:4]]
    reverse = tuple(bool(chain[4]) for chain in chains)
    if torch.is_grad_enabled() and any(t.requires_grad for t in [x, *tensors]):
        return _GRUs.apply(x, float(clip), reverse, *tensors)
    steps, batch, n_in = x.shape
    x2d = x.reshape(steps * batch, n_in)
    return tuple(gru_forward(torch.addmm(b_ih, x2d, w_ih.t()).view(steps, batch, -1), h0, w_hh, float(clip), rev)[0]
                 for w_ih, b_ih, h0, w_hh, rev in chains)


def decoder(ci_proj: Tensor, gen0: Tensor, con0: Tensor, f0: Tensor, eps: Tensor | None, mask_f: Tensor | None,
            mask_g: Tensor | None, w_cf: Tensor, w_chh: Tensor, w_co: Tensor, b_co: Tensor, w_gi: Tensor,
            b_gi: Tensor, w_ghh: Tensor, w_fac: Tensor, clip: float) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(gen, con, co_params, co, factors), each (T, B, ·); see `_decoder_forward` (None: no noise / mask)."""
    _warn_if_eager()
    none = ci_proj.new_empty(0)
    args = [none if t is None else t for t in (ci_proj, gen0, con0, f0, eps, mask_f, mask_g, w_cf, w_chh, w_co,
                                                b_co, w_gi, b_gi, w_ghh, w_fac)]
    if torch.is_grad_enabled() and any(t.requires_grad for t in args):
        return _Decoder.apply(*args, float(clip))
    return tuple(decoder_forward(*args, float(clip))[:5])


# ---------------------------------------------------------------------- references (tests only)
def grus_reference(x: Tensor, chains: list[tuple[Tensor, Tensor, Tensor, Tensor, bool]],
                   clip: float = float("inf")) -> tuple[Tensor, ...]:
    """The same recurrences under plain autograd: what the hand-written backward must match."""
    return tuple(_gru_forward(torch.nn.functional.linear(x, w_ih, b_ih), h0, w_hh, float(clip), rev)[0]
                 for w_ih, b_ih, h0, w_hh, rev in chains)


def decoder_reference(ci_proj, gen0, con0, f0, eps, mask_f, mask_g, *weights_and_clip) -> Tuple[Tensor, ...]:
    none = ci_proj.new_empty(0)
    eps, mask_f, mask_g = (none if t is None else t for t in (eps, mask_f, mask_g))
    return tuple(_decoder_forward(ci_proj, gen0, con0, f0, eps, mask_f, mask_g, *weights_and_clip)[:5])
