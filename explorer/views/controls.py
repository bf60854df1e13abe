"""Sliders along the workspace's axes (released → regenerate), sampling settings, reset, download.

The sliders are the workspace's (`Workspace.axes`): reach variables and PCs with kinematics, condition
axes and PCs without, PCs alone for unlabelled trials; with kinematics an *extra variable* picker adds
one slider along any other continuous trial variable, in its own units."""

from __future__ import annotations

import asyncio
import io
import math
import tempfile
from pathlib import Path

import numpy as np
import panel as pn
import param

from ..runtime import serving
from ..state import GENERATION_POOL, NO_VARIABLE, NavigationState
from ..variables import label
from ..workspace import default_steps, guidance_for

PC_RANGE = 3.0  # PC and condition-axis sliders shift the code by up to this many standard deviations of the codes


def nice_step(span: float, ticks: int = 80) -> float:
    """A round slider step (1, 2 or 5 × 10^k) giving about ``ticks`` steps over ``span``."""
    raw = span / ticks
    exponent = 10 ** math.floor(math.log10(raw))
    return next(m * exponent for m in (1, 2, 5, 10) if m * exponent >= raw)


def slider_range(values: np.ndarray, min_margin: float = 1.0) -> tuple[float, float, float]:
    """(start, end, step) for an absolute slider: the recorded range (of the finite values) and a quarter of it
    either side, at least ``min_margin`` (1 cm for the reach variables), on the step grid (so the reference
    trial's value is usually a step)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    low, high = float(np.min(values)), float(np.max(values))
    margin = max((high - low) / 4, min_margin) or 1.0
    step = nice_step(high - low + 2 * margin)
    return math.floor((low - margin) / step) * step, math.ceil((high + margin) / step) * step, step


class Controls(pn.viewable.Viewer):
    """Reach sliders read where the reach should start and end (absolute, in cm: they start at the
    reference trial's values), the extra variable's slider its value; PC and condition-axis sliders shift
    the code along a principal or discriminant axis (s.d.)."""

    def __init__(self, state: NavigationState, **params):
        super().__init__(**params)
        self.state = state
        self.sliders = {}
        self._syncing = False
        for axis in state.workspace.axes:
            slider = pn.widgets.FloatSlider(label=label(axis), value=state.value(axis), width=260,
                                            **self._range(axis))
            slider.param.watch(lambda event, axis=axis: self._moved(axis, event.new), "value_throttled")
            self.sliders[axis] = slider
        self.extra = pn.widgets.Select.from_param(state.param.extra, name="extra variable", width=260,
                                                  visible=bool(state.workspace.variables))
        self.extra_slider = pn.widgets.FloatSlider(label="extra variable", start=0.0, end=1.0, step=0.1,
                                                   width=260, visible=False)
        self.extra_slider.param.watch(lambda event: self._moved(self.state.extra, event.new), "value_throttled")
        self._show_extra()
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
        self._layout = pn.Column("### Navigate", *self.sliders.values(), self.extra, self.extra_slider,
                                 self.reset_button, "### Settings", settings, self.download, width=280)
        state.param.watch(self._settings_changed, ["steps", "samples", "seed", "guidance", "reference"])
        state.param.watch(self._lock_changed, ["lock", "drive"])
        state.param.watch(self._extra_changed, "extra")

    def _range(self, axis: str) -> dict:
        """A slider's start, end and step: the recorded range for an absolute axis, ±`PC_RANGE` s.d. for a shift."""
        if not self.state.workspace.absolute(axis):
            return {"start": -PC_RANGE, "end": PC_RANGE, "step": PC_RANGE / 40}
        values = self.state.workspace.data.trial_info[axis].to_numpy(dtype=np.float64)
        start, end, step = slider_range(values, 1.0 if axis in self.state.workspace.axes else 0.0)
        return {"start": start, "end": end, "step": step}

    def _show_extra(self) -> None:
        """The extra slider follows the chosen variable: its name, range and the driven model's value."""
        axis = self.state.extra
        self.extra_slider.visible = axis != NO_VARIABLE
        if axis == NO_VARIABLE:
            return
        value = self.state.value(axis)
        self._syncing = True
        try:
            with param.edit_constant(self.extra_slider):
                self.extra_slider.param.update(label=label(axis), **self._range(axis), value=value,
                                               value_throttled=value)
        finally:
            self._syncing = False

    def _extra_changed(self, event) -> None:
        """Another extra variable: the previous one is back at the reference (`NavigationState`); regenerate
        only if that changes what is shown."""
        self._show_extra()
        if not self.state.shown_is_current():
            self._regenerate()

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
        self._show_extra()

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
