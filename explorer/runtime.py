"""Where the explorer's work runs, shared by every session of a server.

`panel serve explorer/app.py` executes app.py afresh for each session, so anything that must be one
per server lives here, in an importable module: the workspace cache, the loader threads and the
per-workspace load locks. Generation has its own single thread (`state.GENERATION_POOL`). And the
'explorer' logger's way to the terminal: why a dataset cannot be opened is printed where the server
runs, not only shown in the page.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import panel as pn

from .workspace import Workspace, load_workspace

WORKSPACES_KEPT = 2  # (dataset, models) combinations held in memory per server; the least recently used goes
LOAD_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="explorer-load")  # loads and building views
_LOCKS: defaultdict[tuple, threading.Lock] = defaultdict(threading.Lock)
_LOCKS_LOCK = threading.Lock()
log = logging.getLogger("explorer")


class TerminalHandler(logging.StreamHandler):
    """ERROR records of the 'explorer' logger on the terminal running the server (the current stderr),
    unless the root logger prints them there already (as `panel serve` configures it): once either way."""

    def __init__(self):
        super().__init__(sys.stderr)
        self.setLevel(logging.ERROR)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if log.propagate and _root_prints_to_stderr():
            return
        self.stream = sys.stderr  # whatever stderr is now (not `setStream`: it flushes the old one, maybe closed)
        super().emit(record)


def _root_prints_to_stderr() -> bool:
    return any(type(h) is logging.StreamHandler and getattr(h, "stream", None) in (sys.stderr, sys.__stderr__)
               and h.level <= logging.ERROR for h in logging.getLogger().handlers)


if not any(type(h).__name__ == "TerminalHandler" for h in log.handlers):  # once per process, however often imported
    log.addHandler(TerminalHandler())


@pn.cache(max_items=WORKSPACES_KEPT, policy="LRU")
def _cached_workspace(models_dir: str, data_path: str, names: tuple[str, ...] | None = None) -> Workspace:
    return load_workspace(models_dir, data_path, names=names)


def shared_workspace(models_dir: str, data_path: str, names: tuple[str, ...] | None = None) -> Workspace:
    """The server's one copy of a workspace. Sessions asking for the same one while it loads wait for that
    load instead of starting their own; other workspaces load, or come from the cache, meanwhile."""
    key = (models_dir, data_path, names)
    with _LOCKS_LOCK:
        lock = _LOCKS[key]
    with lock:
        return _cached_workspace(models_dir, data_path, names)


def serving() -> bool:
    """Whether this runs in a server session (else: a script or test, where everything runs at once)."""
    return pn.state.curdoc is not None and pn.state.curdoc.session_context is not None


async def off_loop(pool: ThreadPoolExecutor, fn, *args):
    """``fn(*args)`` in ``pool``, awaited, with this session's context (its `pn.state.curdoc`) carried
    over: outside it, Panel would fall back to whichever document Bokeh last patched in."""
    return await asyncio.get_running_loop().run_in_executor(pool, contextvars.copy_context().run, fn, *args)
