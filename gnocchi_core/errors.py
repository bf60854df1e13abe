"""Errors users see. Each names the file, the field and what was expected versus found."""

from __future__ import annotations

from os import PathLike


class GnocchiError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero."""


class GnocchiValueError(GnocchiError, ValueError):
    """A bad value at the API boundary: names the file (when there is one), the field, and what was
    expected versus found. Subclasses say what kind of value it was."""

    noun = "field"  # how the message names ``field``

    def __init__(
        self,
        message: str = "",
        *,
        path: str | PathLike | None = None,
        field: str | None = None,
        expected: str | None = None,
        found=None,
    ):
        self.message = message
        self.path = None if path is None else str(path)
        self.field = field
        self.expected = expected
        self.found = found
        super().__init__(self._text())

    def _text(self) -> str:
        head = f"{self.noun} '{self.field}'" if self.field is not None else ""
        body = self.message
        if self.expected is not None or self.found is not None:
            detail = f"expected {self.expected}, found {self.found}"
            body = f"{body}: {detail}" if body else detail
        text = f"{head}{' ' if body.startswith('must ') else ': '}{body}" if head and body else head or body
        return f"{self.path}: {text}" if self.path is not None else text

    def with_path(self, path: str | PathLike | None, field: str | None = None):
        """The same error, attributed to the file it came from (and, given, to another field name)."""
        return type(self)(self.message, path=path if path is not None else self.path,
                          field=self.field if field is None else field, expected=self.expected, found=self.found)


class DataError(GnocchiValueError):
    """A dataset file or array does not satisfy the TrialData contract."""

    def _text(self) -> str:
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if self.field is not None:
            parts.append(f"field '{self.field}'")
        prefix = ": ".join(parts)
        text = f"{prefix}: {self.message}" if prefix else self.message
        if self.expected is not None or self.found is not None:
            text += f" (expected {self.expected}, found {self.found})"
        return text


class ConfigError(GnocchiValueError):
    """A model or training config (`GnocchiConfig`, `LfadsConfig`, `TrainConfig`, a ``--config`` JSON file)
    has an unknown field or a value of the wrong type or out of range."""

    noun = "config field"


class ModelFileError(GnocchiValueError):
    """A model folder's file (``config.json``, ``model.pt``, ``decoder.json``) is missing, unreadable or
    does not hold what a model needs."""


class ArgumentError(GnocchiValueError):
    """A model call's argument (``steps``, ``seed``, ``guidance``, ``n``, ...) is of the wrong type or out of
    range."""

    noun = "argument"


class OutputError(GnocchiError, OSError):
    """An output cannot be written where asked (a folder where a file belongs, no permission, an input in
    the way): the message names the path and what to do instead."""


def one_line(err: BaseException) -> str:
    """An error's message on one line, as the CLI prints it: a file error as "path: why", a multi-line
    message from a library joined with ' / '."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    return " / ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
