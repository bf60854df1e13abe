"""Errors users see. Each names the file, the field and what was expected versus found."""

from __future__ import annotations

from os import PathLike


class GnocchiError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero."""


class DataError(GnocchiError, ValueError):
    """A dataset file or array does not satisfy the TrialData contract."""

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike | None = None,
        field: str | None = None,
        expected: str | None = None,
        found: str | None = None,
    ):
        self.message = message
        self.path = None if path is None else str(path)
        self.field = field
        self.expected = expected
        self.found = found
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if field is not None:
            parts.append(f"field '{field}'")
        prefix = ": ".join(parts)
        text = f"{prefix}: {message}" if prefix else message
        if expected is not None or found is not None:
            text += f" (expected {expected}, found {found})"
        super().__init__(text)

    def with_path(self, path: str | PathLike) -> "DataError":
        """The same error, attributed to the file it came from."""
        return DataError(
            self.message, path=path, field=self.field, expected=self.expected, found=self.found
        )
