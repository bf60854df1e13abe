"""The paint-timing probe behind `explorer_latency.py`: JS injected into each page, and the Playwright
calls that read it. A benchmark helper, not a test harness and not part of the package.

Times are the page's `performance.now()`: keydowns on `window`; server-originated document changes
(`ev.sync === false` in `Bokeh.documents[0].on_change`); and each named plot's repaints, from its
view's `repainted` signal (views found with `Bokeh.index.query`; without that signal, "server change
+ two animation frames").
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

QUIET_MS = 150  # a page is quiet when no server change came for this long

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
# Added with add_init_script, so it is in the page from the start; hooks into Bokeh once it has a document.
PROBE_JS = r"""(() => {
  const L = window.__lat = {keys: [], changes: [], kinds: [], ids: [], paints: {}, seen: {}, sources: {},
                            views: new WeakSet(), fallback: new Set(), doc: null, pending: false};
  const record = (name, t) => (L.paints[name] ??= []).push(t);
  window.addEventListener('keydown', () => L.keys.push(performance.now()), true);
  L.connect = () => {
    if (!(window.Bokeh && Bokeh.index && Bokeh.documents && Bokeh.documents.length)) return false;
    if (L.doc !== Bokeh.documents[0]) {
      L.doc = Bokeh.documents[0];
      L.doc.on_change((ev) => {
        if (ev.sync !== false) return;                          // only changes that came from the server
        const model = ev.model ?? ev.column_source;
        L.changes.push(performance.now());
        L.ids.push(model ? model.id : null);
        L.kinds.push(model ? `${model.type}.${ev.attr ?? ev.constructor.name}` : ev.constructor.name);
        if (!L.pending) L.pending = setTimeout(() => { L.pending = false; L.connect(); }, 0);  // new views?
        if (L.fallback.size) requestAnimationFrame(() => requestAnimationFrame(() => {
          for (const n of L.fallback) record(n, performance.now()); }));
      });
    }
    const Plot = Bokeh.Models.get('Plot');
    for (const v of Bokeh.index.query(v => v.model instanceof Plot && v.model.name != null)) {
      if (L.views.has(v)) continue;
      const name = v.model.name;
      L.views.add(v);
      L.sources[name] = new Set(v.model.renderers.map(r => r.data_source?.id));   // its glyphs' data
      if (v.has_finished()) L.seen[name] ??= performance.now();      // painted before we found it
      if (v.repainted && v.repainted.connect) v.repainted.connect(() => record(name, performance.now()));
      else L.fallback.add(name);
    }
    return true;
  };
  L.timer = setInterval(L.connect, 20);                       // until the page is first ready
})();"""

READY_JS = r"""([names, quiet]) => {
  const L = window.__lat, now = performance.now();
  if (!L.connect() || !L.doc.is_idle || now - (L.changes.at(-1) ?? 0) < quiet) return null;
  const drawn = names.map(n => Math.max(L.seen[n] ?? -1, ...(L.paints[n] ?? [])));
  if (drawn.some(t => t < 0)) return null;
  clearInterval(L.timer);
  return {drawn: Math.max(...drawn), now};
}"""

RESULT_JS = r"""([k, names, quiet]) => {
  const L = window.__lat, key = L.keys[k], now = performance.now();
  const i = key == null ? -1 : L.changes.findIndex(t => t >= key);
  if (i < 0 || now - L.changes.at(-1) < quiet) return null;
  const first = L.changes[i], paints = names.map(n => (L.paints[n] ?? []).filter(t => t >= first));
  const last = paints.map(ts => Math.max(-1, ...ts));
  const data = names.map((n, p) => {     // first repaint after the last change to the plot's glyphs' data
    const j = L.ids.findLastIndex((id, j) => j >= i && L.sources[n]?.has(id));
    return j < 0 ? -1 : (paints[p].find(t => t >= L.changes[j]) ?? -1); });
  return {key, first, last_change: L.changes.at(-1), end: Math.max(...last), drawn: Math.max(...data),
          once: Math.max(...paints.map(ts => ts.length ? ts[0] : -1)), first_kind: L.kinds[i],
          last_kind: L.kinds.at(-1), wall: performance.timeOrigin + key, now,
          missing: names.filter((n, p) => last[p] < 0 || data[p] < 0)};
}"""



def open_page(browser, url: str, errors: list):
    """A page in its own context, with the probe, that talks to nothing but localhost."""
    def local(u):
        return urlsplit(u).scheme in ("data", "blob", "about") or urlsplit(u).hostname in ("127.0.0.1", "localhost")

    def console(msg):  # console errors, minus SwiftShader chatter and the external requests aborted here
        if msg.type == "error" and "GL Driver" not in msg.text and local((msg.location or {}).get("url") or url):
            errors.append(f"console: {msg.text}")
    ctx = browser.new_context(viewport={"width": 1800, "height": 1300})
    ctx.route("**/*", lambda route: route.continue_() if local(route.request.url) else route.abort())
    ctx.add_init_script(PROBE_JS)
    page = ctx.new_page()
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", console)
    page.goto(url, timeout=180_000)
    return page


def wait_ready(page, names_of, timeout: float = 180) -> tuple[float, float]:
    """Poll until the plots ``names_of()`` lists (None while the app is not ready) are all painted and the
    page is quiet; return the perf_counter times ``names_of()`` was first seen and of the last paint."""
    deadline, seen = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        names = names_of()
        seen = seen or (names and time.perf_counter())
        got = names and page.evaluate(READY_JS, [names, QUIET_MS])
        if got:
            return seen, time.perf_counter() - (got["now"] - got["drawn"]) / 1000
        page.wait_for_timeout(30)
    raise TimeoutError(f"page not ready within {timeout} s")


def slider_handle(page, label: str):
    title = page.locator(".bk-slider-title", has_text=re.compile(r"^\s*" + re.escape(label)))
    return page.locator(".bk-input-group", has=title).locator(".noUi-handle").first



def press_at_once(pages, label: str, key: str) -> None:
    """A keydown on every page's slider handle at one wall-clock instant (a timer in each page);
    Playwright presses one after another land ~30 ms apart each on this machine."""
    handles = [slider_handle(p, label).element_handle() for p in pages]
    at = time.time() * 1000 + 50 + 30 * len(pages)
    for h in handles:
        h.evaluate("(h, [key, at]) => setTimeout(() => h.dispatchEvent(new KeyboardEvent('keydown', "
                   "{key, bubbles: true, composed: true, cancelable: true})), at - Date.now())", [key, at])


def press_and_time(pages, press, busy, names, timeout: float = 60) -> list[dict]:
    """Call ``press()`` (one keydown per page), wait until every page's update is painted and quiet;
    return one timing dict per page (ms from its keydown, in that page's clock)."""
    counts = [p.evaluate("() => { __lat.connect(); return __lat.keys.length; }") for p in pages]
    press()
    results: list = [None] * len(pages)
    deadline = time.monotonic() + timeout
    while None in results:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no quiet repaint within {timeout} s: {results}")
        pages[0].wait_for_timeout(30)
        for i, page in enumerate(pages):
            if results[i] is None and not busy():
                r = page.evaluate(RESULT_JS, [counts[i], names, QUIET_MS])
                if r and (not r["missing"] or r["now"] - r["last_change"] > 3000):  # give up on those after 3 s
                    results[i] = r
    return [dict(r, **{f"{k}_ms": r[k] - r["key"] for k in ("end", "first", "last_change", "once", "drawn")})
            for r in results]
