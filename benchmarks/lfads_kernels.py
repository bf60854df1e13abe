"""How fast LFADS's recurrences are on CPU: the hand-written-BPTT kernels (kernels.py), compiled and
eager, against plain autograd, for one batch at lfads-torch's mc_maze_small sizes.

Batch 64 trials × 140 bins, 107 held-in (142 in all) neurons; IC encoder 100, controller-input
encoder 80, generator 100, controller 80, 4 inferred inputs, 40 factors, IC 100 (LfadsConfig's
defaults). Each row is forward + backward, timed ``--repeats`` times (interleaved) after ``--warmup`` runs
that are not counted; it prints the median, the min–max, and the speed-up over the row marked
"reference" of its group, measured in the same run:

* encoders: the two bidirectional encoders (4 GRU chains over the same input): our kernels,
  compiled and eager; torch.nn.GRU (two bidirectional layers; a stock GRU, not lfads-torch's
  clipped cell, but the same sizes); the reference: lfads-torch's ClippedGRUCell one bin at a time
  under autograd (tests/test_lfads_kernels_reference.py's `reference_grus`);
* decoder: the controller → inferred input → generator → factor loop (`kernels.decoder`), with
  sampling noise and dropout masks, against the same reference's `reference_decoder`;
* training step: `LfadsNet.losses` + backward, the whole model, with the kernels compiled, eager,
  with their own forward under plain autograd (`kernels.grus_reference` / `decoder_reference`), and
  with the lfads-torch-style reference loops in their place.

With ``--ops``, only two element-wise choices instead, each against the stock op it replaces: the
dropout mask from uniform draws (`modules.dropout_mask`) against `torch.nn.functional.dropout`
(Bernoulli draws), over one batch's 64 × 140 × 107 inputs plus the 64 × 140 × 100 / 80 encoder states
and 64 × 140 × 100 generator states it drops; log(k!) by table look-up (`model.log_factorial`)
against `torch.lgamma(k + 1)` over one batch's 64 × 140 × 142 counts.

    python benchmarks/lfads_kernels.py [--threads 2] [--repeats 7] [--warmup 2] [--ops]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402

from gnocchi_core.models.lfads import LfadsConfig, LfadsNet, kernels  # noqa: E402
from gnocchi_core.models.lfads.modules import Encoder  # noqa: E402
from test_lfads_kernels_reference import reference_decoder, reference_grus  # noqa: E402

BATCH, BINS, HELD_IN, NEURONS = 64, 140, 107, 142


@contextlib.contextmanager
def eager_kernels():
    """The same autograd Functions with their loops run as plain Python (what the fallback runs)."""
    names = ("gru_forward", "gru_backward", "decoder_forward", "decoder_backward")
    saved = {n: getattr(kernels, n) for n in names}
    for n in names:
        setattr(kernels, n, getattr(kernels, "_" + n))
    try:
        yield
    finally:
        for n, fn in saved.items():
            setattr(kernels, n, fn)


@contextlib.contextmanager
def replaced(grus, decoder):
    """`kernels.grus` / `kernels.decoder` swapped for other implementations of the same contract."""
    saved = kernels.grus, kernels.decoder
    kernels.grus, kernels.decoder = grus, decoder
    try:
        yield
    finally:
        kernels.grus, kernels.decoder = saved


def timed(variants: list[tuple[str, object, object]], repeats: int, warmup: int) -> list[tuple[str, list[float]]]:
    """Times each (name, step, context) with its context entered; repeats are interleaved (variant 1, 2, …,
    then again), so that a load that comes and goes on a shared machine falls on every variant alike."""
    for _, fn, context in variants:
        with context():
            for _ in range(warmup):
                fn()
    times = {name: [] for name, _, _ in variants}
    for _ in range(repeats):
        for name, fn, context in variants:
            with context():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return list(times.items())


def report(title: str, rows: list[tuple[str, list[float]]], reference: str) -> dict[str, float]:
    medians = {name: statistics.median(t) for name, t in rows}
    print(f"\n{title}")
    print(f"  {'':44s} {'median':>8s}  {'min–max':>15s}  {'speed-up vs reference':>22s}")
    for name, t in rows:
        speedup = medians[reference] / medians[name]
        print(f"  {name:44s} {medians[name]:7.4f} s  {min(t):6.4f}–{max(t):6.4f} s  {speedup:19.1f}×")
    return medians


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--ops", action="store_true", help="time the element-wise ops only")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = LfadsConfig()
    print(f"LFADS recurrences, one batch of {BATCH} trials × {BINS} bins, {HELD_IN} held-in of {NEURONS} neurons; "
          f"encoders {config.ic_enc_dim} / {config.ci_enc_dim}, generator {config.gen_dim}, controller "
          f"{config.con_dim}, {config.co_dim} inferred inputs, {config.fac_dim} factors")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, TorchScript compiled: {kernels.COMPILED}; "
          f"{args.repeats} interleaved repeats after {args.warmup} warm-up runs, forward + backward each; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs at the start")
    run = lambda variants: timed(variants, args.repeats, args.warmup)  # noqa: E731
    if args.ops:
        element_wise_ops(run, config)
        return

    # ---------------------------------------------------------------- the two bidirectional encoders
    counts = torch.poisson(torch.full((BATCH, BINS, NEURONS), 0.3))
    x = counts[:, :, :HELD_IN].transpose(0, 1).contiguous().requires_grad_()  # time-major, as Encoder runs them
    enc = Encoder(HELD_IN, config.ic_enc_dim, config.ic_dim, config.ci_enc_dim, config.ci_lag, config.cell_clip,
                  0.0, config.ic_post_var_min)
    chains = enc.ic_enc.chains(BATCH) + enc.ci_enc.chains(BATCH)
    weights = [torch.randn(BINS, BATCH, c[2].shape[1]) for c in chains]

    def encoders(grus):
        def step():
            states = grus(x, chains, config.cell_clip)
            sum((s * w).sum() for s, w in zip(states, weights)).backward()
        return step

    stock = [torch.nn.GRU(HELD_IN, h, bidirectional=True) for h in (config.ic_enc_dim, config.ci_enc_dim)]
    stock_w = [torch.randn(BINS, BATCH, 2 * g.hidden_size) for g in stock]

    def nn_gru():
        sum((g(x)[0] * w).sum() for g, w in zip(stock, stock_w)).backward()

    rows = run([("compiled kernels", encoders(kernels.grus), contextlib.nullcontext),
                ("same kernels, eager (the fallback)", encoders(kernels.grus), eager_kernels),
                ("torch.nn.GRU (2 bidirectional layers)", nn_gru, contextlib.nullcontext),
                ("reference: lfads-torch cell under autograd", encoders(reference_grus), contextlib.nullcontext)])
    enc_t = report("encoders: 2 bidirectional clipped GRUs (4 chains)", rows,
                   "reference: lfads-torch cell under autograd")

    # ---------------------------------------------------------------- the decoder loop
    g = lambda *s, k=0.3: (k * torch.randn(*s)).requires_grad_()  # noqa: E731
    con, gen, co, fac = config.con_dim, config.gen_dim, config.co_dim, config.fac_dim
    mask = lambda *s: (torch.rand(*s) >= config.dropout_rate).float() / (1 - config.dropout_rate)  # noqa: E731
    dec_args = [g(BINS, BATCH, 3 * con), g(BATCH, gen, k=1.0), g(BATCH, con), g(BATCH, fac),
                torch.randn(BINS, BATCH, co), mask(BINS, BATCH, fac), mask(BINS, BATCH, gen),
                g(3 * con, fac), g(3 * con, con), g(2 * co, con), g(2 * co), g(3 * gen, co), g(3 * gen),
                g(3 * gen, gen), g(fac, gen), config.cell_clip]
    dec_w = [torch.randn(BINS, BATCH, n) for n in (2 * co, co, fac)]

    def decoder(fn):
        def step():
            out = fn(*dec_args)
            sum((o * w).sum() for o, w in zip(out[2:], dec_w)).backward()  # what the losses read
        return step

    rows = run([("compiled kernels", decoder(kernels.decoder), contextlib.nullcontext),
                ("same kernels, eager (the fallback)", decoder(kernels.decoder), eager_kernels),
                ("reference: lfads-torch cells under autograd", decoder(reference_decoder), contextlib.nullcontext)])
    dec_t = report("decoder: controller + inferred inputs + generator + factors", rows,
                   "reference: lfads-torch cells under autograd")

    # ---------------------------------------------------------------- one training step of the whole model
    heldout = [False] * HELD_IN + [True] * (NEURONS - HELD_IN)
    net = LfadsNet(config, NEURONS, BINS, heldout).train()

    def training_step():
        net.zero_grad(set_to_none=True)
        net.losses([counts])["loss"].backward()

    rows = run([("compiled kernels", training_step, contextlib.nullcontext),
                ("same kernels, eager (the fallback)", training_step, eager_kernels),
                ("kernels' own forward under plain autograd", training_step,
                 lambda: replaced(kernels.grus_reference, kernels.decoder_reference)),
                ("reference: lfads-torch cells under autograd", training_step,
                 lambda: replaced(reference_grus, reference_decoder))])
    step_t = report("training step: LfadsNet.losses + backward", rows, "reference: lfads-torch cells under autograd")

    print("\nsummary")
    print(f"  training step, compiled vs lfads-torch-style autograd: "
          f"{step_t['reference: lfads-torch cells under autograd'] / step_t['compiled kernels']:.1f}× faster")
    print(f"  training step, eager fallback vs compiled:            "
          f"{step_t['same kernels, eager (the fallback)'] / step_t['compiled kernels']:.1f}× the time "
          f"(kernels.EAGER_SLOWDOWN, the warning's figure)")
    print(f"  encoders: compiled {enc_t['compiled kernels']:.3f} s, torch.nn.GRU "
          f"{enc_t['torch.nn.GRU (2 bidirectional layers)']:.3f} s; "
          f"decoder: compiled {dec_t['compiled kernels']:.3f} s")
    print(f"  load average {os.getloadavg()[0]:.2f} at the end (≈ {args.threads} is this script alone)")


def element_wise_ops(run, config: LfadsConfig) -> None:
    """Dropout masks and log(k!) against the stock ops they replace (see the module docstring)."""
    from gnocchi_core.models.lfads.model import log_factorial
    from gnocchi_core.models.lfads.modules import dropout_mask

    rate = config.dropout_rate
    shapes = [(BATCH, BINS, HELD_IN), (BATCH, BINS, 2 * config.ic_enc_dim), (BATCH, BINS, 2 * config.ci_enc_dim),
              (BATCH, BINS, config.gen_dim)]
    inputs = [torch.randn(shape) for shape in shapes]
    n = sum(x.numel() for x in inputs)

    def ours():
        for x in inputs:
            x * dropout_mask(x.shape, rate, True, x)

    def stock():
        for x in inputs:
            torch.nn.functional.dropout(x, rate, training=True)

    rows = run([("uniform-draw mask (modules.dropout_mask)", ours, contextlib.nullcontext),
                ("reference: torch.nn.functional.dropout", stock, contextlib.nullcontext)])
    report(f"dropout at rate {rate} over {n / 1e6:.1f} M entries", rows, "reference: torch.nn.functional.dropout")

    counts = torch.poisson(torch.full((BATCH, BINS, NEURONS), 0.3))
    rows = run([("table look-up (model.log_factorial)", lambda: log_factorial(counts), contextlib.nullcontext),
                ("reference: torch.lgamma(k + 1)", lambda: torch.lgamma(counts + 1), contextlib.nullcontext)])
    report(f"log(k!) over {counts.numel() / 1e6:.1f} M counts", rows, "reference: torch.lgamma(k + 1)")


if __name__ == "__main__":
    main()
