"""The dashboard's components, one `pn.viewable.Viewer` each, all reading one `NavigationState`.

Plots are HoloViews `DynamicMap`s fed by `Pipe` streams: a new generation pushes data into the
pipes and Bokeh updates the existing glyphs in place (no plot is rebuilt).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import holoviews as hv
import numpy as np
import panel as pn

from .state import AXES, NavigationState
from .workspace import ModelView, guidance_for

PLOT = {"width": 380, "height": 300, "toolbar": None, "default_tools": []}
VARIABLE_LABELS = {"start_x": "start x (cm)", "start_y": "start y (cm)", "target_x": "target x (cm)",
                   "target_y": "target y (cm)", "pc1": "PC 1 (s.d.)", "pc2": "PC 2 (s.d.)"}


class CodeSpace(pn.viewable.Viewer):
    """A model's codes in PCA space, coloured by behaviour; click a trial to make it the reference."""

    def __init__(self, state: NavigationState, view: ModelView, **params):
        super().__init__(**params)
        self.state, self.view = state, view
        info = state.workspace.data.trial_info
        self._table = info[["trial_id", "split", "condition_id", "heldout_condition", "start_x", "start_y",
                            "target_x", "target_y", "reach_angle"]].copy()
        streams = [state.param.colour_by, state.param.pc_x, state.param.pc_y]
        heldin = hv.DynamicMap(lambda colour_by, pc_x, pc_y: self._points(colour_by, pc_x, pc_y, False), streams=streams)
        heldout = hv.DynamicMap(lambda colour_by, pc_x, pc_y: self._points(colour_by, pc_x, pc_y, True), streams=streams)
        # one Tap per DynamicMap of plain Points: HoloViews does not attach streams to overlay-valued maps
        self.taps = [hv.streams.Tap(source=points, x=None, y=None) for points in (heldin, heldout)]
        for tap in self.taps:
            tap.add_subscriber(self._clicked)
        self._marker = hv.streams.Pipe(data=self._marker_data())
        marker = hv.DynamicMap(lambda data: hv.Points(data, ["x", "y"]), streams=[self._marker]).opts(
            color="black", marker="star", size=18, line_color="white", apply_ranges=False)
        reference = hv.DynamicMap(self._reference_point, streams=[state.param.reference, state.param.pc_x,
                                                                    state.param.pc_y])
        self._plot = (heldin * heldout * reference * marker).opts(title=f"{view.name}: codes",
                                                                  backend_opts={"plot.name": f"codes-{view.name}"})
        state.param.watch(lambda event: self._marker.send(self._marker_data()), ["generations", "pc_x", "pc_y"])

    def _pc(self, label: str) -> int:
        return int(label[2:]) - 1

    def _points(self, colour_by, pc_x, pc_y, heldout: bool):
        """Held-in trials coloured by ``colour_by``; held-out-condition trials as black crosses."""
        table = self._table.assign(x=self.view.pcs[:, self._pc(pc_x)], y=self.view.pcs[:, self._pc(pc_y)])
        table = table[table["heldout_condition"].to_numpy(bool) == heldout]
        vdims = [colour_by] + [c for c in self._table.columns if c != colour_by]
        points = hv.Points(table, ["x", "y"], vdims)
        if heldout:
            return points.opts(color="black", size=7, marker="x", tools=["hover"])
        return points.opts(color=colour_by, cmap="coolwarm", colorbar=True, size=6, tools=["hover"],
                           xlabel=pc_x, ylabel=pc_y, clabel=colour_by, **PLOT)

    def _reference_point(self, reference, pc_x, pc_y):
        pcs = self.view.pcs[reference]
        return hv.Points([(pcs[self._pc(pc_x)], pcs[self._pc(pc_y)])]).opts(
            fill_alpha=0, line_color="black", line_width=2, size=16, apply_ranges=False)

    def _marker_data(self) -> dict:
        code = self.state.codes()[self.view.name]
        pcs = self.view.project(code)[0]
        return {"x": [pcs[self._pc(self.state.pc_x)]], "y": [pcs[self._pc(self.state.pc_y)]]}

    def _clicked(self, x=None, y=None) -> None:
        if x is None or y is None:
            return
        px, py = self.view.pcs[:, self._pc(self.state.pc_x)], self.view.pcs[:, self._pc(self.state.pc_y)]
        spread = np.array([np.ptp(px) or 1.0, np.ptp(py) or 1.0])
        distance = np.hypot((px - x) / spread[0], (py - y) / spread[1])
        self.state.reference = int(np.argmin(distance))

    def __panel__(self):
        return pn.pane.HoloViews(self._plot, linked_axes=False)


HEATMAP = {"cmap": "viridis", "colorbar": True, "clabel": "spikes/s", "xlabel": "time from movement onset (ms)",
           "ylabel": "neuron (by preferred target)", **PLOT}


def heatmap(rates: np.ndarray, times: np.ndarray) -> hv.Image:
    """(neurons, bins) rates as an image, first neuron at the bottom."""
    return hv.Image(np.flipud(rates), bounds=(times[0], -0.5, times[-1], rates.shape[0] - 0.5),
                    kdims=["time (ms)", "neuron"], vdims=["rate"])


class Activity(pn.viewable.Viewer):
    """Generated activity (neurons sorted by preferred target) of one model, as a heatmap."""

    def __init__(self, state: NavigationState, name: str, **params):
        super().__init__(**params)
        self.state, self.model_name = state, name
        ws = state.workspace
        self._times = ws.data.bin_centers_ms
        self._pipe = hv.streams.Pipe(data=self._image_data())
        self._plot = hv.DynamicMap(lambda data: heatmap(data, self._times), streams=[self._pipe]).opts(
            title=f"{name}: generated", backend_opts={"plot.name": f"activity-{name}"}, **HEATMAP)
        state.param.watch(lambda event: self._pipe.send(self._image_data()), ["generations", "show_spikes"])

    def _image_data(self) -> np.ndarray:
        generation = self.state.generations.get(self.model_name)
        order = self.state.workspace.neuron_order
        if generation is None:
            return np.zeros((len(order), len(self._times)))
        if self.state.show_spikes:
            bin_s = self.state.workspace.data.bin_ms / 1000
            spikes = np.random.default_rng(self.state.seed).poisson(generation.samples[0] * bin_s)
            return spikes[:, order].T / bin_s
        return generation.rates[:, order].T

    def __panel__(self):
        return pn.pane.HoloViews(self._plot)


class ReferenceActivity(pn.viewable.Viewer):
    """The reference trial's recorded activity (smoothed), sorted like the generated heatmaps."""

    def __init__(self, state: NavigationState, **params):
        super().__init__(**params)
        self.state = state
        ws = state.workspace
        self._plot = hv.DynamicMap(
            lambda reference: heatmap(ws.smoothed[reference][:, ws.neuron_order].T, ws.data.bin_centers_ms),
            streams=[state.param.reference]).opts(title="reference trial: recorded (smoothed)",
                                                  backend_opts={"plot.name": "reference-activity"}, **HEATMAP)

    def __panel__(self):
        return pn.pane.HoloViews(self._plot)


class Reaches(pn.viewable.Viewer):
    """Decoded reaches of one model's generated trials on the workspace, with the target grid."""

    def __init__(self, state: NavigationState, name: str, **params):
        super().__init__(**params)
        self.state, self.model_name = state, name
        ws = state.workspace
        targets = ws.targets
        grid = hv.Points(targets, ["target_x", "target_y"]).opts(color="grey", marker="x", size=10)
        heldout = hv.Points(targets[targets["heldout"]], ["target_x", "target_y"]).opts(
            fill_alpha=0, line_color="red", size=16, line_width=2)
        # one stream for both layers: a single refresh of the overlay per generation
        self._pipe = hv.streams.Pipe(data=self._data())
        paths = hv.DynamicMap(lambda data: hv.Path(data["paths"], ["x", "y"]), streams=[self._pipe]).opts(
            color="#1f77b4", alpha=0.7, line_width=2, apply_ranges=False)
        ends = hv.DynamicMap(lambda data: hv.Points(data["ends"], ["x", "y"], ["kind"]), streams=[self._pipe]).opts(
            color="kind", cmap={"decoded": "#1f77b4", "commanded": "red"}, marker="diamond", size=12,
            apply_ranges=False)
        real = hv.DynamicMap(lambda reference: hv.Path([ws.real_paths[reference]]), streams=[state.param.reference])
        lim = float(np.abs(targets[["target_x", "target_y"]].to_numpy()).max()) * 1.25
        self._plot = (grid * heldout * real.opts(color="black", line_dash="dashed", line_width=2, apply_ranges=False) * paths * ends).opts(
            hv.opts.Overlay(title=f"{name}: decoded reach", xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal",
                            backend_opts={"plot.name": f"reach-{name}"},
                            xlabel="x (cm)", ylabel="y (cm)", **{k: v for k, v in PLOT.items() if k != "height"},
                            height=PLOT["height"], show_legend=False))
        state.param.watch(self._update, ["generations"])

    def _data(self) -> dict:
        generation = self.state.generations.get(self.model_name)
        if generation is None:
            return {"paths": np.zeros((0, 2)), "ends": {"x": [], "y": [], "kind": []}}
        decoded, commanded = generation.decoded, generation.commanded
        gaps = np.full((len(generation.paths), 1, 2), np.nan)  # one NaN-separated line: far cheaper to update
        return {"paths": np.concatenate([generation.paths, gaps], axis=1).reshape(-1, 2)[:-1],
                "ends": {"x": [decoded[2], commanded[2]], "y": [decoded[3], commanded[3]],
                         "kind": ["decoded", "commanded"]}}

    def _update(self, event=None) -> None:
        self._pipe.send(self._data())

    def __panel__(self):
        return pn.pane.HoloViews(self._plot)


class Readout(pn.viewable.Viewer):
    """Decoded vs commanded target, unintended movement, and how long the generation took, on what."""

    def __init__(self, state: NavigationState, name: str, **params):
        super().__init__(**params)
        self.state, self.model_name = state, name
        self._pane = pn.pane.Markdown(self._text(), css_classes=["readout"], name=f"readout-{name}")
        state.param.watch(lambda event: setattr(self._pane, "object", self._text()), ["generations"])

    def _text(self) -> str:
        generation = self.state.generations.get(self.model_name)
        if generation is None:
            return f"**{self.model_name}**: generating…"
        d, c = generation.decoded, generation.commanded
        return (f"**{self.model_name}** — decoded target ({d[2]:+.1f}, {d[3]:+.1f}) cm vs commanded ({c[2]:+.1f}, {c[3]:+.1f}); "
                f"error {generation.target_error_cm:.1f} cm; unintended movement {self.state.unintended(self.model_name):.1f} cm  \n"
                f"{generation.samples.shape[0]} trials in {generation.seconds * 1000:.0f} ms on {generation.device}")

    def __panel__(self):
        return self._pane


class Controls(pn.viewable.Viewer):
    """Sliders along the behaviour axes and PCs (released → regenerate), sampling settings, reset, download."""

    def __init__(self, state: NavigationState, **params):
        super().__init__(**params)
        self.state = state
        info = state.workspace.data.trial_info
        span = float(max(np.ptp(info["target_x"]), np.ptp(info["target_y"]), 1.0))
        self.sliders = {}
        for axis in AXES:
            bound = 3.0 if axis.startswith("pc") else span / 2
            slider = pn.widgets.FloatSlider(label=VARIABLE_LABELS[axis], start=-bound, end=bound,
                                            step=bound / 40, value=0.0, width=260)
            slider.param.watch(lambda event, axis=axis: self._moved(axis, event.new), "value_throttled")
            self.sliders[axis] = slider
        self.reset_button = pn.widgets.Button(label="reset to reference", width=260)
        self.reset_button.on_click(self._reset)
        self.download = pn.widgets.FileDownload(callback=self._download, filename="generated_trials.h5",
                                                label="download generated trials (h5)", width=260)
        settings = pn.Param(state, parameters=["colour_by", "pc_x", "pc_y", "lock", "drive", "steps", "samples",
                                               "seed", "guidance", "show_spikes"],
                            widgets={"steps": {"type": pn.widgets.IntInput, "throttled": True},
                                     "samples": pn.widgets.IntInput, "seed": pn.widgets.IntInput,
                                     "guidance": {"type": pn.widgets.FloatInput, "step": 0.5}},
                            show_name=False, width=260)
        self._layout = pn.Column("### Navigate", *self.sliders.values(), self.reset_button, "### Settings", settings,
                                 self.download, width=280)
        state.param.watch(self._settings_changed, ["steps", "samples", "seed", "guidance", "reference"])
        state.param.watch(self._drive_changed, ["lock", "drive"])

    def _moved(self, axis: str, value: float) -> None:
        self.state.set_offset(axis, value)
        pn.state.execute(self.state.regenerate_async)

    def _reset(self, event=None) -> None:
        self.state.reset()
        for slider in self.sliders.values():
            slider.param.update(value=0.0)
        pn.state.execute(self.state.regenerate_async)

    def _settings_changed(self, event) -> None:
        if event.name == "reference":
            self._reset()
        else:
            pn.state.execute(self.state.regenerate_async)

    def _drive_changed(self, event) -> None:
        """Show the driven model's offsets on the sliders (they differ once unlocked)."""
        offsets = self.state.offsets[self.state.driven()[0]]
        for axis, slider in self.sliders.items():
            slider.param.update(value=offsets[axis])

    def _download(self) -> io.BytesIO:
        """The driven model's generated trials at the current code (the ones on screen), as a dataset."""
        from gnocchi_core.workflows import generated_trials

        state, ws = self.state, self.state.workspace
        name = state.driven()[0]
        view = ws.models[name]
        code = state.codes()[name]
        trials = generated_trials(view.model, np.repeat(code[None], state.samples, axis=0), seed=state.seed,
                                  steps=state.steps, guidance=guidance_for(view.model, state.guidance),
                                  decoder=ws.decoder, source=str(ws.data.provenance.source))
        self.download.filename = f"generated_{name}_trial{state.reference}.h5"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "generated.h5"
            trials.save(path)
            return io.BytesIO(path.read_bytes())

    def __panel__(self):
        return self._layout
