"""Slider release → both model columns redrawn, measured in a real browser. Prints figures.

    python explorer/bench_latency.py [--releases 30] [--steps 10] [--samples 4] [--threads 2]

Serves the explorer in-process on the shipped assets, opens it in headless Chromium, and releases
the target-x slider one step at a time (alternating directions). Each release is timed from the
browser's key event to the repaint of the last plot the update touches (LFADS's decoded-reach
plot: views update in column order), so the figure includes the server's generation for both
models, the websocket round trip and Bokeh's redraw. Also reports the server-side generation time
and the time to the first interactive page.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from explorer.browser_testing import (launch_browser, measure_update, new_page, nudge_slider,  # noqa: E402
                                      serve_app, wait_for_bokeh_idle)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=30, help="timed slider releases (default 30)")
    parser.add_argument("--steps", type=int, default=10, help="GNOCCHI DDIM steps (the explorer's default)")
    parser.add_argument("--samples", type=int, default=4, help="trials per model (the explorer's default)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from playwright.sync_api import sync_playwright

    from explorer.app import ExplorerApp
    from explorer.workspace import ExplorerConfig
    from gnocchi_core.workflows import DEFAULT_DATA, DEFAULT_MODELS

    config = ExplorerConfig(DEFAULT_MODELS, DEFAULT_DATA)
    started = time.perf_counter()
    server, url = serve_app(lambda: ExplorerApp(config))
    try:
        with sync_playwright() as playwright:
            browser = launch_browser(playwright)
            errors: list[str] = []
            page = new_page(browser, errors, viewport=(1800, 1300))
            page.goto(url)
            wait_for_bokeh_idle(page, timeout=120_000)
            first_page = time.perf_counter() - started
            state = server.sessions[-1].state
            state.param.update(steps=args.steps, samples=args.samples)
            wait_for_bokeh_idle(page, timeout=60_000)
            browser_ms, applied_ms, server_ms = [], [], []
            for release in range(args.releases + 2):  # the first two warm up
                direction = 1 if (release // 4) % 2 == 0 else -1
                timing = measure_update(page, lambda: nudge_slider(page, "target x (cm)", direction),
                                        plot="reach-lfads", timeout=30_000)
                wait_for_bokeh_idle(page, timeout=30_000)
                if release >= 2:
                    browser_ms.append(timing.ms)
                    applied_ms.append(timing.ms_applied)
                    server_ms.append(sum(g.seconds for g in state.generations.values()) * 1000)
            browser.close()
    finally:
        server.stop()
    p50, p95 = np.percentile(browser_ms, [50, 95])
    device = next(iter(state.generations.values())).device
    print(f"explorer latency on {device} ({torch.get_num_threads()} threads), {args.samples} trials per model, "
          f"GNOCCHI {args.steps} DDIM steps, {len(browser_ms)} slider releases")
    print(f"  first page (server start → plots rendered, models loaded): {first_page:.1f} s")
    print(f"  slider release → both columns redrawn in the browser: p50 {p50:.0f} ms, p95 {p95:.0f} ms "
          f"(min {min(browser_ms):.0f}, max {max(browser_ms):.0f})")
    print(f"  of which: generation on the server (both models) median {statistics.median(server_ms):.0f} ms; "
          f"release → first server update applied in the browser median {statistics.median(applied_ms):.0f} ms")
    if errors:
        print(f"  browser console errors: {errors}")
    return {"p50_ms": float(p50), "p95_ms": float(p95), "server_ms": statistics.median(server_ms),
            "first_page_s": first_page}


if __name__ == "__main__":
    main()
