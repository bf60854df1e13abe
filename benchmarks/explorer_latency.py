"""Slider release → plots repainted, in headless Chromium: the explorer beside a tiny reference Panel app.

    python benchmarks/explorer_latency.py [--releases 30] [--sessions 8] [--rounds 5]
                                          [--samples N] [--steps N] [--threads N] [--json OUT.json]

One process, so both apps share the machine's noise: (1) a reference app, a FloatSlider whose
``value_throttled`` gives three small Bokeh line plots new data in one ``pn.io.hold()``; (2) the
explorer, one session: first page (server start → every plot painted and the first generation
drawn), then ``--releases`` releases of the ``target x (cm)`` slider after 2 warm-up ones; (3) the
explorer with ``--sessions`` pages (a browser context each) whose keydowns fire at one instant,
1 warm-up round and ``--rounds`` timed rounds; (4) the first page of both apps under ``panel serve``
in a process of its own, as a user starts them (process start → listening → every plot painted).
Needs the shipped assets and /usr/bin/chromium.

A release is one arrow-key keydown on the slider handle (noUiSlider fires ``change`` per key, so
each sends ``value_throttled``), timed in the page (``performance.now()``) from the ``keydown`` to
the last repaint, after the first server-originated document change (``ev.sync === false`` in
``Bokeh.documents[0].on_change``), of every plot the update touches (``codes-``, ``activity-``,
``reach-{model}``). Repaints come from each plot view's ``repainted`` signal (views found with
``Bokeh.index.query``, looked up again after server changes: the explorer may build its views after
the page loads); without that signal, "server change + two animation frames". Also reported: when
each plot first repainted after the last change to its own glyphs' data (new data on screen, before
any later layout-only repaint). Between releases the page must be quiet: no server change for
150 ms and ``app.state.busy`` false. ERROR records of the bokeh/tornado/panel/asyncio loggers and
browser console/page errors are reported.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from paint_probe import (CHROMIUM, CHROMIUM_ARGS, open_page, press_and_time, press_at_once,  # noqa: E402
                         slider_handle, wait_ready)

SLIDER, WARMUP, REFERENCE_PLOTS = "target x (cm)", 2, ["ref-a", "ref-b", "ref-c"]
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f} s] {msg}", flush=True)


def reference_app():
    """Three small line plots; releasing the slider gives each new data, in one hold."""
    import panel as pn
    from bokeh.plotting import figure

    x = np.linspace(0, 10, 200)
    figs = [figure(name=name, width=300, height=220, toolbar_location=None) for name in REFERENCE_PLOTS]
    sources = [f.line(x, np.sin(x)).data_source for f in figs]
    slider = pn.widgets.FloatSlider(name=SLIDER, start=-10, end=10, step=0.25, value=0.0, width=260)

    def update(event):
        with pn.io.hold():
            for k, source in enumerate(sources):
                source.data = {"x": x, "y": np.sin(x * (k + 1) + event.new)}
    slider.param.watch(update, "value_throttled")
    return pn.Column(slider, pn.Row(*[pn.pane.Bokeh(f) for f in figs]))


def capture_server_errors() -> list[str]:
    """ERROR records of the server's loggers (exceptions in callbacks and message handling) as strings."""
    records: list[str] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: records.append(f"{record.name}: {record.getMessage()[:200]}" + (
        f" -> {record.exc_info[0].__name__}: {record.exc_info[1]}" if record.exc_info else ""))
    for name in ("bokeh", "tornado", "panel", "asyncio"):
        logging.getLogger(name).addHandler(handler)
    return records


def serve(make, made: list):
    """Serve ``make`` in a background thread; each session's (object, document) is appended to ``made``."""
    import panel as pn
    from panel.io.server import serve as panel_serve
    from panel.io.state import state

    def factory():
        obj = make()
        made.append((obj, pn.state.curdoc))
        return obj
    sid = uuid.uuid4().hex
    thread = panel_serve({"app": factory}, port=0, address="127.0.0.1", threaded=True, show=False, start=True,
                         verbose=False, websocket_origin=["127.0.0.1", "localhost"], liveness=True, server_id=sid)
    deadline = time.monotonic() + 30
    while sid not in state._servers and time.monotonic() < deadline:
        time.sleep(0.01)
    base = f"http://127.0.0.1:{state._servers[sid][0].port}"          # port=0: the OS picked it
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an http_proxy
    while True:
        try:
            with opener.open(f"{base}/liveness", timeout=2):
                return thread, f"{base}/app"
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def served_first_page(browser, script: Path, names: list[str], errors: list) -> tuple[float, float]:
    """``panel serve SCRIPT`` in its own process, as a user starts it: seconds from the process start to the
    server listening, and from listening to ``names`` all painted (the explorer's appear with its first
    generation). The browser is already running, so its own start-up is not counted."""
    import socket
    import subprocess
    import tempfile

    with socket.socket() as probe:  # a free port (panel serve cannot print the one it would pick for 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryFile("w+") as out:  # a file, not a pipe: nothing blocks however much it logs
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", str(script), "--port", str(port),
                                 "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}"],
                                stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            return _first_page(browser, proc, out, started, names, errors)
        finally:
            proc.terminate()
            proc.wait()


def _first_page(browser, proc, out, started: float, names: list[str], errors: list) -> tuple[float, float]:
    while True:
        out.seek(0)
        found = re.search(r"running at: (http://\S+)", out.read())
        if found:
            listening = time.perf_counter()
            break
        if proc.poll() is not None:
            out.seek(0)
            raise RuntimeError(f"panel serve exited with {proc.returncode}: {out.read()[-500:]}")
        time.sleep(0.01)
    page = open_page(browser, found.group(1), errors)
    drawn = wait_ready(page, lambda: names)[1]
    page.context.close()
    return listening - started, drawn - listening


def explorer_names(apps):
    """The explorer's plot names once every app in ``apps`` has its first generation, else None."""
    from explorer.views import plot_names  # not at import: `panel serve` of the reference app loads no explorer
    states = [getattr(app, "state", None) for app, _ in apps]
    if not states or any(s is None or not s.generations or s.busy for s in states):
        return None
    return plot_names(states[0].workspace.models)


def key_for(i: int) -> str:
    return "ArrowRight" if (i // 4) % 2 == 0 else "ArrowLeft"   # never runs into the slider's end


def summary(xs) -> dict:
    return {"n": len(xs), "p50": statistics.median(xs), "p95": float(np.percentile(xs, 95)),
            "min": min(xs), "max": max(xs)}


def summarise(rows: list[dict]) -> dict:
    out = {k: summary([r[k] for r in rows]) for k in ("end_ms", "first_ms", "last_change_ms", "once_ms", "drawn_ms")}
    out.update(first_change=statistics.mode([r["first_kind"] for r in rows]),
               last_change=statistics.mode([r["last_kind"] for r in rows]),
               missing=sorted({m for r in rows for m in r["missing"]}))
    return out


def release_series(page, n: int, busy, names, generation_ms=None) -> dict:
    """``n`` timed releases (after ``WARMUP``), one at a time, waiting for quiet in between."""
    rows, gen = [], []
    for i in range(n + WARMUP):
        slider_handle(page, SLIDER).focus()
        rows += press_and_time([page], lambda: page.keyboard.press(key_for(i)), busy, names)
        gen += [generation_ms()] if generation_ms else []
    return dict(summarise(rows[WARMUP:]), **({"generation_ms": summary(gen[WARMUP:])} if gen else {}))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=30, help="timed releases, one session (default 30)")
    parser.add_argument("--sessions", type=int, default=8, help="pages at once (default 8; 0 skips)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds with all pages (default 5)")
    parser.add_argument("--samples", type=int, help="set app.state.samples (default: the explorer's)")
    parser.add_argument("--steps", type=int, help="set app.state.steps (default: the explorer's)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    import torch
    from panel.io.state import set_curdoc
    from playwright.sync_api import sync_playwright

    from explorer.session import ExplorerApp
    from explorer.views import plot_names
    from explorer.workspace import ExplorerConfig
    from gnocchi_core.workflows import DEFAULT_DATA, DEFAULT_MODELS

    if args.threads:
        torch.set_num_threads(args.threads)
    errors, server_errors = [], capture_server_errors()
    settings = {k: v for k, v in (("samples", args.samples), ("steps", args.steps)) if v is not None}
    res: dict = {"threads": torch.get_num_threads()}

    def configure(apps, pages):
        """Apply --samples/--steps on each session's own event loop, then wait for the redraw."""
        for app, doc in apps if settings else []:
            def apply(app=app, doc=doc):
                with set_curdoc(doc):
                    for name, value in settings.items():  # one at a time, as from the settings widgets
                        setattr(app.state, name, value)
            doc.add_next_tick_callback(apply)  # the one thread-safe Document method
        while any(getattr(a.state, k) != v for a, _ in apps for k, v in settings.items()):
            pages[0].wait_for_timeout(20)
        for page in pages if settings else []:
            wait_ready(page, lambda: explorer_names(apps))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        log("reference app: serving")
        start = time.perf_counter()
        thread, url = serve(reference_app, [])
        page = open_page(browser, url, errors)
        res["reference_first_page_s"] = wait_ready(page, lambda: REFERENCE_PLOTS)[1] - start
        log(f"reference app: first page {res['reference_first_page_s']:.2f} s; {args.releases} releases")
        res["reference"] = release_series(page, args.releases, lambda: False, REFERENCE_PLOTS)
        page.context.close()
        thread.stop()
        log("reference app and explorer under `panel serve`: first page")
        res["served_reference"] = served_first_page(browser, Path(__file__), REFERENCE_PLOTS, errors)
        res["served_explorer"] = served_first_page(browser, ROOT / "explorer" / "app.py",
                                                  plot_names(["gnocchi", "lfads", "lfads_ic"]), errors)  # the defaults

        log("explorer: serving")
        apps: list = []
        start = time.perf_counter()
        thread, url = serve(lambda: ExplorerApp(ExplorerConfig(DEFAULT_MODELS, DEFAULT_DATA)), apps)
        try:
            page = open_page(browser, url, errors)
            seen, drawn = wait_ready(page, lambda: explorer_names(apps))
            res["explorer_first_page_s"], res["explorer_server_ready_s"] = drawn - start, seen - start
            state = apps[0][0].state
            res["workspace_load_s"] = getattr(state.workspace, "load_seconds", None)
            res["defaults"] = {"samples": state.samples, "steps": state.steps}
            names = [n for n in explorer_names(apps) if n != "reference-activity"]  # a release leaves it alone
            log(f"explorer: first page {res['explorer_first_page_s']:.2f} s; defaults {res['defaults']}"
                + (f", setting {settings}" if settings else ""))
            configure(apps, [page])
            res["settings"] = {"samples": state.samples, "steps": state.steps}
            res["device"] = next(iter(state.generations.values())).device
            log(f"explorer, 1 session: {args.releases} releases (+{WARMUP} warm-up)")
            res["explorer"] = release_series(
                page, args.releases, lambda: state.busy, names,
                generation_ms=lambda: 1000 * sum(g.seconds for g in state.generations.values()))
            page.context.close()

            if args.sessions:
                log(f"explorer, {args.sessions} sessions: opening pages")
                first = len(apps)
                pages = [open_page(browser, url, errors) for _ in range(args.sessions)]
                multi = apps[first:]
                for p in pages:
                    wait_ready(p, lambda: explorer_names(multi))
                configure(multi, pages)
                log(f"explorer, {args.sessions} sessions: 1 warm-up + {args.rounds} rounds")
                rows, spreads, gen = [], [], []
                for r in range(args.rounds + 1):
                    got = press_and_time(pages, lambda: press_at_once(pages, SLIDER, key_for(r)),
                                         lambda: any(a.state.busy for a, _ in multi), names, 120)
                    if r:
                        rows += got
                        spreads.append(max(g["wall"] for g in got) - min(g["wall"] for g in got))
                        gen += [1000 * sum(g.seconds for g in a.state.generations.values()) for a, _ in multi]
                res["multi"] = dict(summarise(rows), key_spread_ms=summary(spreads), generation_ms=summary(gen))
                for p in pages:
                    p.context.close()
        finally:
            thread.stop()
            browser.close()
    res["server_errors"], res["browser_errors"] = server_errors, errors
    report(res, args, len(names))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
        print(f"wrote {args.json}")
    return res


def fmt(s: dict) -> str:
    return f"p50 {s['p50']:4.0f} ms   p95 {s['p95']:4.0f}   min {s['min']:4.0f}   max {s['max']:4.0f}   (n {s['n']})"


def breakdown(s: dict) -> str:
    p50 = {k: f"{v['p50']:.0f} ms" for k, v in s.items() if k.endswith("_ms")}
    return (f"keydown → first server change {p50['first_ms']} ({s['first_change']}), → last server change "
            f"{p50['last_change_ms']} ({s['last_change']}), → every plot painted once {p50['once_ms']}, → every "
            f"plot painted after its last data change {p50['drawn_ms']}, → last repaint {p50['end_ms']}"
            + (f"; generation on the server (all models, per session) {p50['generation_ms']}" if "generation_ms" in s
               else ""))


def report(res: dict, args, n_plots: int) -> None:
    ref, one, load = res["reference"], res["explorer"], res["workspace_load_s"]
    print(f"\n== slider release → plots repainted, headless Chromium; explorer on {res['device']}, "
          f"{res['threads']} torch threads ==\n"
          f"explorer settings {res['settings']} (its defaults: {res['defaults']})\n"
          "first page, server start → all plots painted (explorer: and its first generation drawn):\n"
          f"  reference {res['reference_first_page_s']:.2f} s   explorer {res['explorer_first_page_s']:.2f} s "
          f"(first generation on the server at {res['explorer_server_ready_s']:.2f} s"
          + (f", workspace load {load:.2f} s)" if load is not None else ")") + "\n"
          "first page under `panel serve` (process start → listening; listening → all plots painted):\n"
          f"  reference {res['served_reference'][0]:.2f} s; {res['served_reference'][1]:.2f} s   explorer "
          f"{res['served_explorer'][0]:.2f} s; {res['served_explorer'][1]:.2f} s\n"
          f"1 session, keydown → last repaint ({args.releases} releases after {WARMUP} warm-up):\n"
          f"  reference app (3 plots)  {fmt(ref['end_ms'])}\n"
          f"  explorer ({n_plots} plots)       {fmt(one['end_ms'])}\n"
          f"  medians, reference: {breakdown(ref)}\n"
          f"  medians, explorer:  {breakdown(one)}")
    if "multi" in res:
        m = res["multi"]
        print(f"{args.sessions} explorer sessions at once, keydown → that page's last repaint ({args.rounds} rounds "
              f"after 1 warm-up; keydowns spread over p50 {m['key_spread_ms']['p50']:.0f} ms):\n"
              f"  explorer                 {fmt(m['end_ms'])}\n  medians: {breakdown(m)}")
    missing = sorted(set(one["missing"]) | set(res.get("multi", {}).get("missing", [])))
    print(f"plots not repainted, or with no data change, on some release: {missing or 'none'}")
    for what, errs in (("server errors logged", res["server_errors"]), ("browser errors", res["browser_errors"])):
        print(f"{what}: {len(errs)}" + "".join(f"\n  {e}" for e in errs[:10]))


if __name__ == "__main__":
    main()
elif __name__.startswith("bokeh"):  # `panel serve benchmarks/explorer_latency.py`: the reference app alone
    reference_app().servable()
