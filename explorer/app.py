"""GNOCCHI Explorer: `panel serve explorer/app.py [--args --models DIR --data FILE]`.

Opens on the shipped MotorNet dataset and default models (assets/). The dataset and models are
loaded once per server (at most `runtime.WORKSPACES_KEPT` combinations); each browser session gets
its own navigation state (`session.ExplorerApp`). This file only assembles and serves: `panel
serve` runs it afresh for every session, so what the sessions share lives in `explorer.runtime`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import panel as pn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `panel serve explorer/app.py` from a clone

from explorer.session import ExplorerApp  # noqa: E402

pn.extension(sizing_mode="fixed", notifications=False)

if __name__.startswith("bokeh"):  # run by `panel serve`
    ExplorerApp().servable(title="GNOCCHI Explorer")
