"""What every `gnocchi` command module shares: how a command is declared (a wrapped description
and an epilog of example lines), the one `--device` option, the version and the command line
recorded in a dataset's provenance."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import textwrap
from pathlib import Path

EXIT_USER_ERROR = 2
PYPROJECT_VERSION = "0.1.0"  # the fallback when the distribution is not installed (a bare checkout)
HELP_WIDTH = 78


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (the command, what is wrong, where to look) and exit 2."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def package_version() -> str:
    """The installed gnocchi-explorer version, else the one pyproject.toml declares."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gnocchi-explorer")
    except PackageNotFoundError:
        return PYPROJECT_VERSION


def command_line() -> str:
    """This process's command as a user would type it again: stored as a dataset's provenance."""
    return "gnocchi " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def wrap(text: str) -> str:
    """Fill each blank-line-separated paragraph to the help width. RawDescriptionHelpFormatter
    (which keeps the example lines of an epilog as written) does not wrap descriptions itself."""
    paragraphs = textwrap.dedent(text).strip().split("\n\n")
    return "\n\n".join(textwrap.fill(" ".join(p.split()), HELP_WIDTH) for p in paragraphs)


def epilog(examples: list[str]) -> str:
    """The 'examples:' section of a help page: runnable commands, a long one continued with
    backslashes before its options so that it still pastes into a shell as one command."""
    return "examples:\n" + "\n".join(_example(line) for line in examples)


def _example(command: str) -> str:
    """One example, indented, broken only between options (never inside an option's values)."""
    chunks: list[str] = []  # the command and its positionals, then each option with its values
    for word in shlex.split(command):
        is_option = word.startswith("-") and not word[1:2].isdigit()  # "-250" is a value
        if chunks and not is_option:
            chunks[-1] += " " + shlex.quote(word)
        else:
            chunks.append(shlex.quote(word))
    lines = ["  " + chunks[0]]
    for chunk in chunks[1:]:
        if len(lines[-1]) + len(chunk) + 3 > HELP_WIDTH:  # room for " chunk \\"
            lines[-1] += " \\"
            lines.append("      " + chunk)
        else:
            lines[-1] += " " + chunk
    return "\n".join(lines)


def add_command(subparsers, name: str, *, help: str, description: str, examples: list[str],
                run=None) -> argparse.ArgumentParser:
    """A command (or group) with a description and examples that keep their lines in `--help`.
    ``run``: its handler, called with the parsed arguments."""
    parser = subparsers.add_parser(name, help=help, description=wrap(description), epilog=epilog(examples),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    if run is not None:
        parser.set_defaults(run=run)
    return parser


def add_group(subparsers, name: str, *, help: str, description: str, examples: list[str],
              title: str, metavar: str):
    """A group of commands (`gnocchi data ...`): alone, it prints its help. Returns the group's
    own subparsers, for its commands' `register` functions."""
    group = add_command(subparsers, name, help=help, description=description, examples=examples)
    group.set_defaults(run=lambda args: group.print_help())
    return group.add_subparsers(title=title, metavar=metavar)


def add_device(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """The `--device` option: 'auto' picks CUDA when present; commands whose numbers depend on the
    device (benchmarks, the reproducible asset build) default to 'cpu'."""
    if default == "auto":
        text = "auto (CUDA when present; the default), cpu or cuda[:N]"
    else:
        text = f"{default} (the default), cuda[:N] or auto (CUDA when present)"
    parser.add_argument("--device", default=default, help=text)


# ---------------------------------------------------------------------- outputs: never an input, never by accident
def add_force(parser: argparse.ArgumentParser, what: str = "an existing output file") -> None:
    parser.add_argument("--force", action="store_true", help=f"replace {what}")


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)


def refuse_inputs(outputs: dict[str, str | None], inputs: dict[str, object]) -> None:
    """Raise when an output path (option → path) is one of the inputs (option → path or paths), or two
    outputs are the same path: a command never writes over what it reads."""
    from ..errors import OutputError

    given = {name: Path(p) for name, p in outputs.items() if p}
    for name, out in given.items():
        for source, value in inputs.items():
            for path in value if isinstance(value, (list, tuple)) else [value]:
                if path and _same(out, Path(path)):
                    raise OutputError(f"{out}: {name} is an input of this command ({source}); write to another path")
    names = list(given)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            if _same(given[first], given[second]):
                raise OutputError(f"{given[first]}: {first} and {second} are the same file")


def new_file(path: str, force: bool, option: str = "--out") -> None:
    """An output file may be written: not a folder, and not an existing file unless ``force``."""
    from ..errors import OutputError

    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{path}: is a folder; {option} names the file to write")
    if target.exists() and not force:
        raise OutputError(f"{path}: exists; pass --force to replace it")


def new_folder(path: str, option: str = "--out") -> None:
    """An output folder may be written: it is a folder or does not exist yet."""
    from ..errors import OutputError

    if Path(path).exists() and not Path(path).is_dir():
        raise OutputError(f"{path}: is a file; {option} names a folder")


def config_overrides(args) -> dict:
    """Config fields from --config (a JSON object), with --epochs and --seed applied on top."""
    overrides = {}
    if args.config:
        from ..errors import ConfigError, GnocchiError
        from ..models.base import read_json

        overrides = read_json(args.config, ConfigError)
        if not isinstance(overrides, dict):
            raise GnocchiError(f"{args.config}: expected a JSON object of config fields, found a "
                               f"{type(overrides).__name__}")
        if not isinstance(overrides.get("train", {}), dict):
            raise GnocchiError(f"{args.config}: field 'train' must be an object of training settings, found "
                               f"{overrides['train']!r}")
    train_overrides = overrides.setdefault("train", {})
    if args.epochs is not None:
        train_overrides["epochs"] = args.epochs
    if getattr(args, "seed", None) is not None:
        train_overrides["seed"] = args.seed
    return overrides
