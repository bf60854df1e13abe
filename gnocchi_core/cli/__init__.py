"""The `gnocchi` command. Each command group lives in its own module beside its handlers and adds
itself with ``register(commands)``; this module builds the top-level parser and turns errors in
user input into one line on stderr and exit status 2 (no traceback)."""

from __future__ import annotations

import argparse
import sys

from ..errors import GnocchiError, one_line
from . import assets, bench, data, evaluate, explore, generate, sweep, train
from .common import EXIT_USER_ERROR, Parser, epilog, package_version, wrap
from .data import summarize

__all__ = ["main", "summarize"]

# the order of `gnocchi --help`
MODULES = (data, train, sweep, explore, bench, evaluate, generate, assets)


def main(argv: list[str] | None = None) -> int:
    """Run one `gnocchi` command; returns the exit status (0, 2 for a user error, 130 on Ctrl-C)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        status = args.run(args)
    except (GnocchiError, ValueError) as err:
        print(f"gnocchi: error: {one_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as err:  # a file that cannot be read or written: its path and why, no traceback
        where = f"{err.filename}: " if err.filename else ""
        print(f"gnocchi: error: {where}{err.strerror or one_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("gnocchi: interrupted", file=sys.stderr)
        return 130
    return status if isinstance(status, int) else 0


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree: the top-level parser, then each module's commands."""
    parser = Parser(
        prog="gnocchi", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=wrap("GNOCCHI Explorer: generative models of neural population activity. Make or import a "
                         "dataset, train GNOCCHI (code-conditioned diffusion) and LFADS on it, evaluate and "
                         "compare them, and generate trials along behaviour axes. Run `gnocchi COMMAND --help` "
                         "for each command; paths in the examples are relative to the repository root."),
        epilog=epilog(["gnocchi data synth --out demo.h5",
                       "gnocchi train gnocchi --data demo.h5 --out models/gnocchi_demo --max-minutes 5",
                       "gnocchi evaluate --data demo.h5 --model models/gnocchi_demo --out report_demo/",
                       "gnocchi explore demo.h5 --models models",
                       "gnocchi generate --model models/gnocchi_demo --navigate target_x --data demo.h5 "
                       "--out walk.h5"]))
    parser.add_argument("--version", action="version", version=f"gnocchi {package_version()}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in MODULES:
        module.register(commands)
    return parser
