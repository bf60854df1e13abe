"""`gnocchi evaluate`: the paper's metrics and figures for trained models on one dataset, and the
table of them that `evaluate` and `build-assets` print."""

from __future__ import annotations

from pathlib import Path

from ..errors import GnocchiError
from .common import add_command, add_device, new_folder, refuse_inputs

MODELS = "assets/models"
DATA = "assets/motornet_reach/motornet_reach.h5"


def register(commands) -> None:
    """Add the `evaluate` command to the top-level subparsers."""
    evaluate = add_command(
        commands, "evaluate", help="the paper's metrics and figures for one or more trained models on a dataset",
        run=_evaluate,
        description="Code SNR, generated-vs-truth R², latent navigation (slope, unintended movement), axis "
                    "orthogonality, held-out-target error and velocity R², side by side; writes report.json, "
                    "report.md and PNG figures to --out.",
        examples=[f"gnocchi evaluate --data {DATA} --model {MODELS}/gnocchi --model {MODELS}/lfads_ic "
                  f"--model {MODELS}/lfads --out report/",
                  "gnocchi evaluate --data demo.h5 --model models/gnocchi_demo --name gnocchi --out report_demo/ "
                  "--samples 4"])
    evaluate.add_argument("--data", required=True, help="the dataset the models were trained on (.h5)")
    evaluate.add_argument("--model", required=True, action="append", help="model folder (repeat for several)")
    evaluate.add_argument("--name", action="append", help="display name per --model (default: folder names)")
    evaluate.add_argument("--out", required=True, help="report folder to write")
    evaluate.add_argument("--samples", type=int, default=8,
                          help="diffusion samples averaged into each conditional mean (default 8)")
    evaluate.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    add_device(evaluate)


def _evaluate(args) -> None:
    from ..workflows import evaluate_folders

    refuse_inputs({"--out": args.out}, {"--data": args.data, "--model": args.model})
    new_folder(args.out)
    if args.samples < 1:
        raise GnocchiError(f"--samples {args.samples}: expected at least 1 sample per conditional mean")
    if (Path(args.out) / "report.json").exists():
        print(f"replacing the report in {args.out}")
    report = evaluate_folders(args.data, args.model, args.out, names=args.name, samples=args.samples,
                              seed=args.seed, device=args.device)
    _print_report(report)
    print(f"report: {Path(args.out) / 'report.md'}")


def _print_report(report: dict) -> None:
    """One row per metric any model has, one column per model: the headline of each entry."""
    from ..analysis.report import ROWS, format_entry

    names = list(report["models"])
    keys = [key for key, _, _ in ROWS if any(key in report["models"][n] for n in names)]
    print(f"{'metric':<38}" + "".join(f"{n:>24}" for n in names))
    for key in keys:
        cells = [report["models"][n].get(key) for n in names]
        print(f"{key:<38}" + "".join(f"{'–' if c is None else _short(format_entry(c)):>24}" for c in cells))


def _short(text: str) -> str:
    return text.split(" (")[0] if not text.startswith("n/a") else "n/a"
