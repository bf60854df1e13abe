"""Browser-test harness for the Panel dashboard: serve in-process, drive headless Chromium, time redraws.

A plain helper module (not collected by pytest). Typical use::

    from explorer.browser_testing import serve_app, launch_browser, new_page, wait_for_bokeh_idle, ...

    server, url = serve_app(lambda: MyApp())        # factory is called once per browser session
    browser = launch_browser(playwright)            # playwright: the pytest-playwright fixture or sync_playwright().start()
    errors: list[str] = []
    page = new_page(browser, errors)                # console errors + page errors land in `errors`
    page.goto(url); wait_for_bokeh_idle(page)
    ms = measure_update_ms(page, lambda: nudge_slider(page, "Frequency", 1), plot="curve")
    server.stop()

Everything here was checked against panel 1.9.4 / bokeh 3.9.2 / holoviews 1.23.2 / playwright 1.65 with
Debian's /usr/bin/chromium. Notes on *why* each piece works the way it does are in the docstrings.

Timing model (``measure_update`` / ``measure_update_ms``)
--------------------------------------------------------
Chain of events for "user releases a slider -> plot redrawn":

1. Browser input event (keydown on the noUiSlider handle, or pointerup after a drag).  noUiSlider fires its
   ``change`` event, BokehJS sets ``value_throttled`` and sends a PATCH-DOC over the websocket.
2. Server: Panel updates ``value_throttled`` -> user callbacks -> HoloViews re-renders the DynamicMap and sets
   the ColumnDataSource data -> Bokeh sends a PATCH-DOC back.
3. Browser: ``Document.apply_json_patch`` applies every server event with ``sync=false``; each one fires the
   document's ``on_change`` callbacks *synchronously*.  The glyph views update and call
   ``PlotView.request_paint`` which is throttled through ``requestAnimationFrame``.
4. In the next animation frame ``PlotView._actual_paint`` draws the canvas and then emits the
   ``PlotView.repainted`` signal (still inside the rAF callback; the compositor presents that frame right after).

The probe injected by :func:`install_probe` records (all in ``performance.now()`` milliseconds):

* ``t_mark``   - just before the Python ``action`` is called (one CDP round trip before the input);
* ``t_input``  - first ``keydown``/``pointerup``/``mouseup`` captured on ``window`` after ``t_mark``;
* ``t_applied``- first server-originated document change (``event.sync === false``) after which
  ``predicate_js`` is true (evaluated inside the ``on_change`` callback, so before any paint);
* ``t_paint``  - first completed ``PlotView._actual_paint`` (= ``repainted`` emission) of the target plot
  view after ``t_applied`` (canvas pixels are final; this is the headline number).  If the predicate only
  becomes true at a paint (e.g. the figure was replaced and its new view is built asynchronously),
  ``t_applied == t_paint``;
* ``t_frame``  - the next ``requestAnimationFrame`` after ``t_paint`` (upper bound on "on screen"; adds up to
  one frame, ~16.7 ms, of vsync quantisation).

``measure_update_ms`` returns ``t_paint - t_input`` (falls back to ``t_mark`` if no input event was seen).
For updates that do not repaint a Bokeh plot (Markdown, widgets) pass ``plot=False``; then ``t_paint`` is the
first animation frame after ``t_applied`` (DOM updates are applied synchronously with the patch).

Validated: adding ``time.sleep(0.3)`` to the server callback moves the measured p50 from ~75 ms to ~375 ms;
``t_input <= t_applied <= t_paint <= t_frame`` always holds.  Where the time goes for a trivial update on
this 2-core box (p50): keydown -> patch applied ~67 ms, of which 50 ms is Panel's fixed server-side
debounce of widget property changes (``Syncable._debounce = 50``; ``pn.widgets.FloatSlider._debounce = 0``
brings it to ~36 ms) and ~10 ms the HoloViews re-render; applied -> painted ~8-10 ms (waiting for the
next animation frame); painted -> next frame ~+12 ms.

Rejected alternatives: a MutationObserver on the ``<canvas>`` never fires (canvas pixels are not DOM
mutations, and Bokeh keeps the same canvas element); polling DOM attributes only works for HTML panes;
comparing screenshots is slow (~50-100 ms per shot) and racy.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

CHROMIUM_PATH = os.environ.get("GNOCCHI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

# Console messages that are noise, not app errors.  Only console *errors* are collected by new_page, so
# the usual Panel/Bokeh chatter ("[bokeh 3.9.2] setting log level", "Websocket connection 0 is now open",
# "Bokeh items were rendered successfully", "document idle at N ms") and Chromium's SwiftShader WebGL
# warnings ("GL Driver Message ... GPU stall due to ReadPixels", type=warning) never reach the list.
# Aborted external requests show up as "Failed to load resource: net::ERR_FAILED" console errors whose
# location is the external URL; new_page drops exactly those (they are listed in page.blocked_requests),
# so a blocked Google font is not an error but a failing *local* resource still is.
IGNORED_CONSOLE_ERRORS = (
    re.compile(r"GL Driver Message"),
)


# --------------------------------------------------------------------------------------------------------
# 1. Serving
# --------------------------------------------------------------------------------------------------------

@dataclass
class AppServer:
    """A Panel/Bokeh server running on its own IOLoop in a background thread.  ``stop()`` is idempotent."""

    thread: Any  # panel.io.threads.StoppableThread
    server_id: str
    port: int
    url: str
    sessions: list = field(default_factory=list)  # objects returned by the factory, one per session

    @property
    def bokeh_server(self):
        from panel.io.state import state
        entry = state._servers.get(self.server_id)
        return entry[0] if entry else None

    def stop(self, timeout: float = 10.0) -> None:
        from panel.io.state import state
        if self.thread.is_alive():
            try:
                self.thread.stop()   # cancels the loop's tasks, stops the loop; the thread then stops the server
            except RuntimeError:     # "Thread already stopping"
                pass
            self.thread.join(timeout)
        state._servers.pop(self.server_id, None)
        state._threads.pop(self.server_id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def serve_app(factory: Callable[[], Any], port: int = 0, *, path: str = "app", title: str = "test",
              timeout: float = 20.0, **kwargs) -> tuple[AppServer, str]:
    """Serve ``factory`` at ``http://127.0.0.1:<port>/<path>`` in a background thread; return ``(server, url)``.

    * ``factory`` is called once per browser session (Panel calls a served function for every new document),
      so every page gets its own app instance.  The objects it returns are appended to ``server.sessions``
      in session-creation order; to map a page to its instance, show an id in the app (see the tests).
    * ``port=0`` lets the OS pick a free port (no race between "find a free port" and "bind");
      ``server.port`` is the real one.  Bound to 127.0.0.1 only; the websocket origin allow-list is
      ``127.0.0.1`` / ``localhost`` on any port (no ``'*'``, which makes Bokeh log a warning).
    * Works from pytest: the server has its own tornado IOLoop in its own thread, so it does not touch the
      main thread's event loop that Playwright's sync API (greenlet) uses.
    * Blocks until ``/liveness`` answers, so the URL can be opened straight away.
    """
    from panel.io.server import serve
    from panel.io.state import state

    server_id = uuid.uuid4().hex
    handle_sessions: list = []

    def per_session():
        obj = factory()
        handle_sessions.append(obj)
        return obj

    kwargs.setdefault("websocket_origin", ["127.0.0.1", "localhost"])
    thread = serve({path: per_session}, port=port, address="127.0.0.1", threaded=True, show=False,
                   start=True, verbose=False, title=title, server_id=server_id, liveness=True, **kwargs)
    deadline = time.monotonic() + timeout
    while server_id not in state._servers:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("Panel server thread did not start")
        time.sleep(0.01)
    real_port = state._servers[server_id][0].port
    base = f"http://127.0.0.1:{real_port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an http_proxy
    while True:
        try:
            with opener.open(f"{base}/liveness", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            thread.stop()
            raise RuntimeError(f"{base}/liveness did not answer within {timeout}s")
        time.sleep(0.02)
    server = AppServer(thread=thread, server_id=server_id, port=real_port, url=f"{base}/{path}",
                       sessions=handle_sessions)
    return server, server.url


def stop(server: AppServer) -> None:
    """Stop a server returned by :func:`serve_app` (idempotent)."""
    server.stop()


# --------------------------------------------------------------------------------------------------------
# 2. Browser and pages
# --------------------------------------------------------------------------------------------------------

def launch_browser(playwright, **kwargs):
    """Chromium from /usr/bin/chromium with the flags this machine needs (no bundled browser download)."""
    return playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=list(CHROMIUM_ARGS),
                                      headless=True, **kwargs)


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return parts.hostname in LOCAL_HOSTS


def new_page(browser, console_errors: list | None = None, *, viewport=(1280, 900), ignore=IGNORED_CONSOLE_ERRORS,
             context_kwargs: dict | None = None):
    """A page in a fresh context (own cookies/storage) that never talks to anything but localhost.

    * Console messages of type ``error`` and uncaught page errors (``pageerror``) are appended to
      ``console_errors`` as strings (``"console: ..."`` / ``"pageerror: ..."``), minus the ``ignore`` patterns.
    * Every request whose host is not 127.0.0.1/localhost (``data:``/``blob:`` allowed) is aborted; the URLs
      are kept in ``page.blocked_requests`` so a test can assert e.g. that a template asked for Google fonts.
    * ``page.console_messages`` keeps every console message as ``(type, text)`` for debugging.
    * Closing the page's context is up to the caller (``page.context.close()``).
    """
    errors = console_errors if console_errors is not None else []
    ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, **(context_kwargs or {}))
    page = ctx.new_page()
    page.blocked_requests = []
    page.console_messages = []

    def on_console(msg):
        page.console_messages.append((msg.type, msg.text))
        if msg.type != "error" or any(p.search(msg.text) for p in ignore):
            return
        # a request we aborted logs "Failed to load resource: net::ERR_FAILED" with the resource as location
        src = (msg.location or {}).get("url", "")
        if msg.text.startswith("Failed to load resource") and src and not _is_local(src):
            return
        errors.append(f"console: {msg.text}" + (f" ({src})" if src else ""))

    def on_route(route):
        url = route.request.url
        if _is_local(url):
            route.continue_()
        else:
            page.blocked_requests.append(url)
            route.abort()

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    ctx.route("**/*", on_route)
    return page


def wait_until(fn: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02, page=None):
    """Poll a Python predicate (e.g. server-side state) until truthy; returns its value.

    Pass ``page`` to poll with ``page.wait_for_timeout`` so Playwright keeps dispatching page events
    (console handlers etc.) while we wait; plain ``time.sleep`` blocks them in the sync API.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s: {fn}")
        if page is not None:
            page.wait_for_timeout(interval * 1000)
        else:
            time.sleep(interval)


# --------------------------------------------------------------------------------------------------------
# 3. Knowing when Bokeh is done
# --------------------------------------------------------------------------------------------------------

# Injected once per page.  window.__bkprobe keeps timestamps (performance.now()) of input events,
# server-originated document changes and plot repaints; `find_plot` resolves a plot spec (bokeh model
# name, index among plot views, or a DOM element) to its PlotView.
# Repaints are caught by wrapping PlotView.prototype._actual_paint (the class is
# Bokeh.Models.get('Plot').prototype.default_view; Figure/GMap views inherit from it), so plot views created
# later by a patch (e.g. a DynamicMap returning a new element type) are covered too.  The timestamp is taken
# when the original returns, i.e. at the same point PlotView.repainted is emitted.
_PROBE_JS = r"""
() => {
  if (window.__bkprobe && window.__bkprobe.doc === Bokeh.documents[0]) return true;
  const doc = Bokeh.documents[0];
  const P = {doc, inputs: [], changes: [], paints: [], waiters: []};
  P.plot_views = () => [...Bokeh.index.query(v => v.frame != null && v.canvas_view != null && '_actual_paint' in v)];
  P.find_plot = (spec) => {
    const views = P.plot_views();
    if (spec == null) return views[0] ?? null;
    if (typeof spec === 'number') return views[spec] ?? null;
    if (typeof spec === 'string') return views.find(v => v.model.name === spec) ?? null;
    // DOM element: the plot whose host element is, contains, or is contained in it - across shadow roots
    const within = (outer, node) => { for (let n = node; n; n = n.parentNode || n.host) if (n === outer) return true; return false; };
    return views.find(v => within(v.el, spec)) ?? views.find(v => within(spec, v.el)) ?? null;
  };
  const PlotView = Bokeh.Models.get('Plot').prototype.default_view;
  if (!PlotView.prototype.__bkprobe_wrapped) {
    const orig = PlotView.prototype._actual_paint;
    PlotView.prototype._actual_paint = function (...args) {
      const r = orig.apply(this, args);
      const probe = window.__bkprobe;
      if (probe) {
        const t = performance.now();
        probe.paints.push({t, view: this});
        for (const w of [...probe.waiters]) w(t, this);
      }
      return r;
    };
    PlotView.prototype.__bkprobe_wrapped = true;
  }
  for (const type of ['keydown', 'pointerup', 'mouseup', 'pointerdown'])
    window.addEventListener(type, (e) => window.__bkprobe.inputs.push({t: performance.now(), type}), true);
  doc.on_change((ev) => {
    if (ev.sync !== false) return;  // only patches coming from the server
    const t = performance.now();
    P.changes.push({t, kind: ev.constructor.__name__, model: ev.model ? ev.model.type : null, attr: ev.attr ?? null});
    for (const w of [...P.waiters]) w(null, null);
  }, false);
  window.__bkprobe = P;
  return true;
}
"""

_READY_JS = r"""
() => {
  if (!(window.Bokeh && Bokeh.documents && Bokeh.documents.length > 0)) return false;
  const doc = Bokeh.documents[0];
  if (!doc.is_idle) return false;
  const roots = Bokeh.index.roots;
  if (roots.length === 0) return false;
  return roots.every(v => typeof v.has_finished !== 'function' || v.has_finished());
}
"""


def install_probe(page) -> None:
    """Inject the timing probe into the page's current Bokeh document (idempotent)."""
    page.evaluate(_PROBE_JS)


def wait_for_bokeh_idle(page, timeout: float = 10_000, quiet_ms: float = 100) -> None:
    """Wait until the Bokeh document is rendered and no server update has arrived for ``quiet_ms``.

    Criteria, all checked in the page:
    * ``Bokeh.documents[0]`` exists and ``doc.is_idle`` (every root view reported idle - this is what
      logs "document idle at N ms");
    * every root view's ``has_finished()`` is true (recursive over layouts/plots);
    * no server-originated document change, no input event, and not the call itself within the last
      ``quiet_ms`` (so it always waits at least ``quiet_ms``), and no plot paint pending
      (``PlotView._needs_paint`` false); then two animation frames.
    ``timeout`` is in milliseconds, like Playwright.  Use it after ``page.goto`` and to let the page settle
    after an interaction.  It is a quiet-period heuristic: the browser cannot see work still running on the
    server, so if a callback can take longer than ``quiet_ms`` before its first patch, either raise
    ``quiet_ms`` or wait deterministically - :func:`wait_until` on server-side state, or
    :func:`measure_update` with a ``predicate_js`` on the expected data.  (Panel delays processing of widget
    property changes by ``Syncable._debounce`` = 50 ms, so the first patch never comes before ~55-60 ms.)
    """
    page.wait_for_function(_READY_JS, timeout=timeout)
    install_probe(page)
    t_call = page.evaluate("() => performance.now()")
    # NB: wait_for_function does not await a Promise returned by the predicate (it is just truthy), so the
    # predicate must be synchronous; the trailing animation frames are awaited with evaluate().
    page.wait_for_function(
        """([quiet, t_call]) => {
            const P = window.__bkprobe; const now = performance.now();
            const last = Math.max(t_call, ...P.changes.map(c => c.t), ...P.inputs.map(i => i.t));
            const pending = P.plot_views().some(v => v._needs_paint);
            return now - last >= quiet && !pending && Bokeh.documents[0].is_idle;
        }""",
        arg=[quiet_ms, t_call], timeout=timeout, polling=max(10, int(quiet_ms / 4)))
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


_MEASURE_JS = r"""
async ({t_mark, predicate, plot, timeout}) => {
  const P = window.__bkprobe;
  for (const k of ['inputs', 'changes', 'paints']) P[k] = P[k].filter(e => e.t >= t_mark - 5000);  // bounded
  const pred = predicate == null ? null : new Function('doc', 'Bokeh', 'probe', 'return (' + predicate + ');');
  const check = () => { try { return pred == null ? true : !!pred(P.doc, Bokeh, P); } catch (e) { return false; } };
  const changes_since = () => P.changes.filter(c => c.t >= t_mark);
  const input = P.inputs.find(i => i.t >= t_mark && i.type !== 'pointerdown');
  const want_plot = plot !== false;
  const spec = plot === '__element__' ? window.__bkprobe_target : plot;
  // resolved at paint time: a patch may replace the figure (new PlotView) with one of the same name
  const is_target = (v) => P.find_plot(spec) === v;
  if (want_plot && P.find_plot(spec) == null) return {reason: 'no plot view for ' + JSON.stringify(plot)};
  return await new Promise((resolve) => {
    let t_applied = null, t_paint = null, done = false, timer = null;
    const finish = (reason) => {
      if (done) return; done = true;
      P.waiters = P.waiters.filter(w => w !== waiter);
      clearTimeout(timer);
      const cs = changes_since();
      const res = {reason, t_mark, t_input: input ? input.t : null, input_type: input ? input.type : null,
                   t_applied, t_paint, t_frame: null, n_changes: cs.length,
                   changed: cs.slice(0, 20).map(c => `${c.kind}:${c.model}.${c.attr}`)};
      if (reason !== 'ok') { resolve(res); return; }
      requestAnimationFrame(() => { res.t_frame = performance.now(); resolve(res); });
    };
    const applied = (t) => {
      t_applied = t;
      if (!want_plot) { requestAnimationFrame(() => { t_paint = performance.now(); finish('ok'); }); return; }
      const p = P.paints.find(p => p.t >= t && is_target(p.view));   // we may be late: paint already done
      if (p) { t_paint = p.t; finish('ok'); }
    };
    const waiter = (paint_t, view) => {
      if (done) return;
      if (t_applied == null) {
        if (changes_since().length === 0 || !check()) return;
        if (paint_t == null) { applied(performance.now()); return; }   // called from doc.on_change
        t_applied = paint_t;                                             // predicate became true at a paint
        if (want_plot && is_target(view)) { t_paint = paint_t; finish('ok'); }
        else if (!want_plot) applied(paint_t);
      } else if (want_plot && paint_t != null && t_paint == null && is_target(view)) {
        t_paint = paint_t; finish('ok');
      }
    };
    P.waiters.push(waiter);
    timer = setTimeout(() => finish(t_applied == null ? 'timeout waiting for the change' : 'timeout waiting for the repaint'), timeout);
    const cs = changes_since();          // changes that landed while Python was still dispatching the action
    if (cs.length && check()) applied(cs[cs.length - 1].t);
    const poll = () => {                 // DOM-based predicates are not tied to a document event
      if (done || t_applied != null) return;
      if (changes_since().length && check()) applied(performance.now()); else requestAnimationFrame(poll);
    };
    requestAnimationFrame(poll);
  });
}
"""


@dataclass
class UpdateTiming:
    """Result of :func:`measure_update`; all ``t_*`` are page ``performance.now()`` milliseconds."""
    t_mark: float
    t_input: float | None
    input_type: str | None
    t_applied: float
    t_paint: float
    t_frame: float
    n_changes: int
    changed: list

    @property
    def start(self) -> float:
        return self.t_input if self.t_input is not None else self.t_mark

    @property
    def ms(self) -> float:
        """input event -> target plot repainted (the headline number)."""
        return self.t_paint - self.start

    @property
    def ms_applied(self) -> float:
        """input event -> server patch applied in the browser document."""
        return self.t_applied - self.start

    @property
    def ms_frame(self) -> float:
        """input event -> the animation frame after the repaint."""
        return self.t_frame - self.start


def measure_update(page, action: Callable[[], Any], predicate_js: str | None = None, *,
                   plot: str | int | Any | None | bool = None, timeout: float = 10_000) -> UpdateTiming:
    """Run ``action()`` (Playwright input) and time it until the server's answer is drawn in the browser.

    ``predicate_js`` is a JS *expression* over ``doc`` (``Bokeh.documents[0]``), ``Bokeh`` and ``probe``
    (``window.__bkprobe``), tested each time a server patch event is applied (and once per animation frame);
    exceptions count as false.  The first server change after which it is true defines ``t_applied``.
    ``None`` = the first server change after the action.  Build it with :func:`cds_column_js` /
    :func:`plot_model_js`, e.g. ``f"{cds_column_js('curve', 'y')}[10] > 0.5"``, or test Markdown/HTML text
    with ``"[...doc.all_models].some(m => typeof m.text === 'string' && m.text.includes('#3'))"``.
    (``ColumnDataSource.data`` is a plain object of typed arrays in BokehJS 3.9, not a ``Map``.)

    ``plot`` picks the PlotView whose next repaint ends the measurement: the Bokeh model ``name`` (set with
    ``.opts(backend_opts={"plot.name": "curve"})`` in HoloViews), an index into the page's plot views, or a
    Playwright ``Locator``/``ElementHandle`` inside the plot.  ``None`` = the first plot in the page.
    ``False`` = no plot (HTML/Markdown updates): end at the next animation frame.

    Raises ``TimeoutError`` with the probe's diagnostics if nothing happened within ``timeout`` ms.
    """
    install_probe(page)
    plot_arg = plot
    if plot is not None and not isinstance(plot, (str, int, bool)):
        handle = plot.element_handle() if hasattr(plot, "element_handle") else plot
        page.evaluate("(el) => { window.__bkprobe_target = el; }", handle)
        plot_arg = "__element__"
    t_mark = page.evaluate("() => performance.now()")
    action()
    res = page.evaluate(_MEASURE_JS, {"t_mark": t_mark, "predicate": predicate_js,
                             "plot": plot_arg, "timeout": timeout})
    if res["reason"] != "ok":
        raise TimeoutError(f"measure_update: {res['reason']}; probe: {json.dumps(res)}")
    res.pop("reason")
    return UpdateTiming(**res)


def plot_model_js(plot: str | int | None = None) -> str:
    """JS expression (for ``predicate_js``) for the Bokeh model of a *live* plot view, by model name or index.

    Prefer this to ``doc.get_model_by_name(name)``: when a pane's figure is replaced, the old figure can stay
    in the document, and ``get_model_by_name`` then throws "Multiple models are named ...".
    """
    return f"probe.find_plot({json.dumps(plot)}).model"


def cds_column_js(plot: str | int | None, column: str, renderer: int = 0) -> str:
    """JS expression (for ``predicate_js``) for column ``column`` of the data source of glyph renderer
    ``renderer`` of a live plot (model name or index).  Handles ``data`` being a plain object (BokehJS 3.9)
    or a ``Map``."""
    return (f"((d) => d instanceof Map ? d.get({column!r}) : d[{column!r}])"
            f"({plot_model_js(plot)}.renderers[{renderer}].data_source.data)")


def eval_predicate(page, predicate_js: str):
    """Evaluate a ``predicate_js`` expression (see :func:`measure_update`) in the page now; returns its value."""
    install_probe(page)
    return page.evaluate("(src) => new Function('doc', 'Bokeh', 'probe', 'return (' + src + ');')"
                         "(Bokeh.documents[0], Bokeh, window.__bkprobe)", predicate_js)


def measure_update_ms(page, action: Callable[[], Any], predicate_js: str | None = None, **kwargs) -> float:
    """Milliseconds from the input event of ``action`` to the repaint of the plot (see module docstring)."""
    return measure_update(page, action, predicate_js, **kwargs).ms


def summarize(samples: Iterable[float]) -> dict:
    """p50 / p90 / min / max / n of a list of millisecond samples."""
    xs = sorted(samples)
    if not xs:
        return {"n": 0}
    q = lambda p: xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]  # noqa: E731
    return {"n": len(xs), "p50": statistics.median(xs), "p90": q(0.9), "min": xs[0], "max": xs[-1]}


# --------------------------------------------------------------------------------------------------------
# 4. Sliders
# --------------------------------------------------------------------------------------------------------

def slider_handle(page, name_or_locator):
    """The noUiSlider handle of a Panel/Bokeh slider, by its label text (``name``) or a Locator.

    Panel's FloatSlider renders as a Bokeh Slider: ``.bk-input-group`` > ``.bk-slider-title`` ("Name: value")
    and a noUiSlider whose ``.noUi-handle`` (role=slider, tabindex=0, aria-valuenow) takes keyboard focus.
    Playwright CSS locators pierce Panel's open shadow roots, so no special selector syntax is needed.
    """
    if not isinstance(name_or_locator, str):
        loc = name_or_locator
        return loc if "noUi-handle" in str(loc) else loc.locator(".noUi-handle").first
    title = page.locator(".bk-slider-title", has_text=re.compile(r"^\s*" + re.escape(name_or_locator) + r"\s*:"))
    group = page.locator(".bk-input-group", has=title)
    return group.locator(".noUi-handle").first


def nudge_slider(page, name_or_locator, steps: int = 1, *, key_delay_ms: float = 0) -> None:
    """Move a slider by ``steps`` (negative = left) with the keyboard: focus the handle, press Arrow keys.

    Each key press makes noUiSlider fire ``slide`` *and* ``change``, so Bokeh sets ``value`` and
    ``value_throttled`` together, i.e. every press is a "release" and reaches the server as one
    ``{'value': v, 'value_throttled': v}`` event.  One press moves by the widget's ``step``.
    """
    handle = slider_handle(page, name_or_locator)
    handle.focus()
    key = "ArrowRight" if steps >= 0 else "ArrowLeft"
    for _ in range(abs(steps)):
        handle.press(key, delay=key_delay_ms)


def drag_slider(page, name_or_locator, fraction: float, *, n_moves: int = 5) -> None:
    """Drag a slider handle to ``fraction`` (0..1) of its track with the mouse and release.

    Intermediate moves update only ``value``; ``value_throttled`` is sent once, on mouse up.
    """
    handle = slider_handle(page, name_or_locator)
    handle.scroll_into_view_if_needed()
    hb = handle.bounding_box()
    track = handle.evaluate_handle("h => h.closest('.noUi-base') || h.parentElement.parentElement")
    tb = track.as_element().bounding_box()
    x0, y = hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2
    x1 = tb["x"] + fraction * tb["width"]
    page.mouse.move(x0, y)
    page.mouse.down()
    page.mouse.move(x1, y, steps=n_moves)
    page.mouse.up()


# --------------------------------------------------------------------------------------------------------
# 5. Clicking data points
# --------------------------------------------------------------------------------------------------------

_DATA_TO_PAGE_JS = r"""
({spec, x, y}) => {
  const P = window.__bkprobe;
  const v = P.find_plot(spec === '__element__' ? window.__bkprobe_target : spec);
  if (v == null) return null;
  v.el.scrollIntoView({block: 'center'});
  const sx = v.frame.x_scale.compute(x), sy = v.frame.y_scale.compute(y);   // canvas pixels
  const r = v.canvas_view.el.getBoundingClientRect();                        // canvas box in the viewport
  const fb = v.frame.bbox;
  const inside = sx >= fb.left && sx <= fb.right && sy >= fb.top && sy <= fb.bottom;
  return {px: r.left + sx, py: r.top + sy, sx, sy, inside,
          frame: {left: fb.left, top: fb.top, width: fb.width, height: fb.height}};
}
"""


def data_to_page(page, x: float, y: float, plot: str | int | Any | None = None) -> dict:
    """Viewport pixel coordinates of data point ``(x, y)`` in a Bokeh plot (see :func:`click_data_point`)."""
    install_probe(page)
    spec = plot
    if plot is not None and not isinstance(plot, (str, int)):
        handle = plot.element_handle() if hasattr(plot, "element_handle") else plot
        page.evaluate("(el) => { window.__bkprobe_target = el; }", handle)
        spec = "__element__"
    pos = page.evaluate(_DATA_TO_PAGE_JS, {"spec": spec, "x": x, "y": y})
    if pos is None:
        raise LookupError(f"no Bokeh plot view matches {plot!r}")
    if not pos["inside"]:
        raise ValueError(f"data point ({x}, {y}) is outside the plot frame: {pos}")
    return pos


def click_data_point(page, x: float, y: float, plot: str | int | Any | None = None, *,
                     min_interval_ms: float = 350) -> dict:
    """Click data coordinates ``(x, y)`` of a plot so Bokeh's Tap event / TapTool fire as for a real click.

    Uses the plot's own scales in the page (``PlotView.frame.x_scale.compute(x)`` -> canvas pixels,
    plus the canvas element's ``getBoundingClientRect()``), so axes, padding, toolbar position, ranges set
    by HoloViews and the page layout are all accounted for; no need to pass ``x_range``/``y_range``.
    A HoloViews ``streams.Tap`` gets the click position (~data coords, within a pixel) and
    ``streams.Selection1D`` (needs ``tools=['tap']``) gets the index of the glyph hit.
    ``plot``: Bokeh model name, index, or a Locator (see :func:`measure_update`).  Returns the position dict.
    Waits so that consecutive clicks are >= ``min_interval_ms`` apart (else Bokeh reports a double tap).
    """
    pos = data_to_page(page, x, y, plot)
    # Bokeh turns a second tap within UIGestures.doubletap_threshold (300 ms) into a *doubletap*: TapTool
    # (gesture='tap') then does not select (Selection1D unchanged) although HoloViews' Tap stream still fires.
    since = page.evaluate("() => performance.now() - Math.max(-1e9, ...__bkprobe.inputs"
                          ".filter(i => i.type === 'pointerup').map(i => i.t))")
    if since < min_interval_ms:
        page.wait_for_timeout(min_interval_ms - since)
    page.mouse.click(pos["px"], pos["py"])
    return pos
