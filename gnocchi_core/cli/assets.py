"""`gnocchi build-assets`: rebuild the shipped dataset, models and reports from scratch
(gnocchi_core.assets does the work; this module parses and prints the summary)."""

from __future__ import annotations

from .common import add_command, add_device
from .evaluate import _print_report


def register(commands) -> None:
    """Add the `build-assets` command to the top-level subparsers."""
    assets = add_command(
        commands, "build-assets",
        help="simulate the default dataset, train every seed of the default models, write the reports",
        run=_build_assets,
        description="Writes into --out: motornet_reach/ (the MotorNet dataset, simulated from the shipped policy), "
                    "models/{gnocchi,lfads,lfads_ic}/ (seed 0) and models/seeds/ (the other seeds), models/report/ "
                    "(every seed on the test trials) and, when MC_Maze_Small is found, models/maze/ and "
                    "models/report_maze/. Each model trains in its own process with --threads torch threads, so "
                    "weights are bit-identical on the same machine. A killed build resumes; finished parts are "
                    "kept. `--out assets` refreshes the shipped assets.",
        examples=["gnocchi build-assets --out fresh/",
                  "gnocchi build-assets --out fresh/ --no-maze --jobs 4",
                  "gnocchi build-assets --out assets"])
    assets.add_argument("--out", default="gnocchi-assets",
                        help="folder to write (default ./gnocchi-assets; pass 'assets' to refresh the shipped ones)")
    assets.add_argument("--jobs", type=int, default=2, help="models trained at once (default 2)")
    assets.add_argument("--threads", type=int, default=1, help="torch threads per model (default 1)")
    assets.add_argument("--maze", default=None,
                        help="MC_Maze_Small NLB tensor file (default: ../shared/data/mc_maze_small/"
                             "mc_maze_small_full.h5 beside the repository, when present)")
    assets.add_argument("--no-maze", action="store_true", help="skip the MC_Maze_Small report")
    add_device(assets, "cpu")


def _build_assets(args) -> None:
    from ..assets import build_assets

    result = build_assets(args.out, jobs=args.jobs, threads=args.threads, device=args.device,
                          maze="" if args.no_maze else args.maze, progress=True)
    _print_report(result["report"])
    print("timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in result["timings"].items()))
