"""Atomic file writing: a reader never sees a half-written file, an old file is never half-overwritten."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import OutputError

TMP_SUFFIX = ".tmp"
#: the name `atomic_path` gives a temporary file: ``.{name}.{random}.tmp``
_TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]+\.tmp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file lives in the destination folder so the final ``os.replace`` is a
    same-filesystem rename, which POSIX guarantees to be atomic.
    """
    final = Path(path)
    if final.is_dir():
        raise OutputError(f"{final}: is a folder; expected the path of a file to write")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=TMP_SUFFIX, dir=final.parent)
    except FileExistsError:
        raise OutputError(f"{final}: cannot write there: {_blocking(final.parent)} is a file, not a folder") from None
    except OSError as err:
        raise OutputError(f"{final}: cannot write there ({err.strerror or err})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj) -> None:
    """``obj`` as JSON (indent 1), written to ``path`` through `atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1))


def remove_orphans(folder: str | os.PathLike) -> int:
    """Delete the temporary files `atomic_path` left in ``folder`` when a kill cut its write short
    (its ``finally`` never ran); returns how many. Only call it when nothing is writing there."""
    removed = 0
    for path in Path(folder).glob(f".*{TMP_SUFFIX}"):
        if _TEMPORARY.fullmatch(path.name) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _blocking(folder: Path) -> Path:
    """The first part of ``folder`` that exists as a file (what keeps the folder from being made)."""
    for part in [*reversed(folder.parents), folder]:
        if part.exists() and not part.is_dir():
            return part
    return folder
