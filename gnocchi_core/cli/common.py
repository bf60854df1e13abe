"""What every `gnocchi` command module shares: how a command is declared (a wrapped description
and an epilog of example lines), the one `--device` option, the version and the command line
recorded in a dataset's provenance."""

from __future__ import annotations

import argparse
import shlex
import sys
import textwrap

EXIT_USER_ERROR = 2
PYPROJECT_VERSION = "0.1.0"  # the fallback when the distribution is not installed (a bare checkout)
HELP_WIDTH = 78


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
