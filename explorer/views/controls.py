"""Sliders along the behaviour axes and PCs (released → regenerate), sampling settings, reset, download."""

from __future__ import annotations

import asyncio
import io
import math
import tempfile
from pathlib import Path

import numpy as np
import panel as pn
import param

from gnocchi_core.analysis.decoding import VARIABLES

from ..runtime import serving
from ..state import AXES, GENERATION_POOL, NavigationState
from ..workspace import default_steps, guidance_for
from .plots import VARIABLE_LABELS

PC_RANGE = 3.0  # PC sliders shift the code by up to this many standard deviations of the codes


def nice_step(span: float, ticks: int = 80) -> float:
    """A round slider step (1, 2 or 5 × 10^k) giving about ``ticks`` steps over ``span``."""
    raw = span / ticks
    exponent = 10 ** math.floor(math.log10(raw))
    return next(m * exponent for m in (1, 2, 5, 10) if m * exponent >= raw)


def slider_range(values: np.ndarray) -> tuple[float, float, float]:
    """(start, end, step) for an absolute behaviour slider: the recorded range and a quarter of it either side,
    on the step grid (so the reference trial's value is usually a step)."""
    low, high = float(np.min(values)), float(np.max(values))
    margin = max((high - low) / 4, 1.0)
    step = nice_step(high - low + 2 * margin)
    return math.floor((low - margin) / step) * step, math.ceil((high + margin) / step) * step, step


class Controls(pn.viewable.Viewer):
    """Behaviour sliders read where the reach should start and end (absolute, in cm: they start at the
    reference trial's values); PC sliders shift the code along a principal axis (s.d.)."""

    def __init__(self, state: NavigationState, **params):
        super().__init__(**params)
        self.state = state
        info = state.workspace.data.trial_info
        self.sliders = {}
        self._syncing = False
        for axis in AXES:
            if axis in VARIABLES:
                start, end, step = slider_range(info[axis].to_numpy(dtype=np.float64))
            else:
                start, end, step = -PC_RANGE, PC_RANGE, PC_RANGE / 40
            slider = pn.widgets.FloatSlider(label=VARIABLE_LABELS[axis], start=start, end=end, step=step,
                                            value=state.value(axis), width=260)
            slider.param.watch(lambda event, axis=axis: self._moved(axis, event.new), "value_throttled")
            self.sliders[axis] = slider
        self.reset_button = pn.widgets.Button(label="reset to reference", width=260)
        self.reset_button.on_click(self._reset)
        self.download = pn.widgets.FileDownload(callback=self._download, filename="generated_trials.h5",
                                                label="download generated trials (h5)", width=260)
        steps = {name: default_steps(view.model) for name, view in state.workspace.models.items()}
        own = ", ".join(f"{name} {n}" for name, n in steps.items() if n is not None) or "none"
        settings = pn.Param(state, parameters=["colour_by", "pc_x", "pc_y", "lock", "drive", "steps", "samples",
                                               "seed", "guidance", "show_spikes"],
                            widgets={"steps": {"type": pn.widgets.IntInput, "throttled": True,
                                               "placeholder": f"model default ({own})"},
                                     "samples": pn.widgets.IntInput, "seed": pn.widgets.IntInput,
                                     "guidance": {"type": pn.widgets.FloatInput, "step": 0.5,
                                                  "placeholder": "model default"}},
                            show_name=False, width=260)
        self._layout = pn.Column("### Navigate", *self.sliders.values(), self.reset_button, "### Settings", settings,
                                 self.download, width=280)
        state.param.watch(self._settings_changed, ["steps", "samples", "seed", "guidance", "reference"])
        state.param.watch(self._lock_changed, ["lock", "drive"])

    def _moved(self, axis: str, value: float) -> None:
        if not self._syncing:
            self.state.set_value(axis, value)
            self._regenerate()

    def _regenerate(self) -> None:
        if serving():
            self.state.regenerate_soon(pn.state.execute)
        else:  # a script or test: at once
            self.state.regenerate()

    def _reset(self, event=None) -> None:
        self.state.reset()
        self._show_driven()
        self._regenerate()

    def _settings_changed(self, *events) -> None:
        """Regenerate once however many settings changed together; a new reference also resets the sliders."""
        if any(event.name == "reference" for event in events):
            self._reset()
        else:
            self._regenerate()

    def _lock_changed(self, *events) -> None:
        """Relocking makes every model follow the sliders again: they all take the shown model's offsets."""
        if self.state.lock:
            shown = self.state.offsets[self.state.drive]
            for offsets in self.state.offsets.values():
                offsets.update(shown)
            self._regenerate()
        self._show_driven()

    def _show_driven(self) -> None:
        """Show the driven model's commanded values (they differ between models once unlocked). Sets the
        released value too, so the next release at any other value is a change the browser sends; this
        regenerates nothing."""
        self._syncing = True
        try:
            for axis, slider in self.sliders.items():
                value = self.state.value(axis)
                with param.edit_constant(slider):
                    slider.param.update(value=value, value_throttled=value)
        finally:
            self._syncing = False

    def download_bytes(self, request: dict) -> io.BytesIO:
        """The generated trials of ``request`` (from `_download_request`) as a dataset file."""
        from gnocchi_core.workflows import generated_trials

        ws = self.state.workspace
        view = ws.models[request["name"]]
        codes = np.repeat(request["code"][None], request["samples"], axis=0)
        trials = generated_trials(view.model, codes, seed=request["seed"], steps=request["steps"],
                                  guidance=guidance_for(view.model, request["guidance"]),
                                  decoder=ws.decoder, source=str(ws.data.provenance.source))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "generated.h5"
            trials.save(path)
            return io.BytesIO(path.read_bytes())

    def _download_request(self) -> dict:
        """The driven model's trials as on screen: its code and the settings, read on the event loop."""
        state = self.state
        name = state.driven()[0]
        return {"name": name, "code": state.codes()[name], "samples": state.samples, "seed": state.seed,
                "steps": state.steps, "guidance": state.guidance, "reference": state.reference}

    async def _download(self) -> io.BytesIO:
        """The download, built in the generation worker so no session waits on the event loop."""
        request = self._download_request()
        self.download.filename = f"generated_{request['name']}_trial{request['reference']}.h5"
        return await asyncio.get_running_loop().run_in_executor(GENERATION_POOL, self.download_bytes, request)

    def __panel__(self):
        return self._layout
