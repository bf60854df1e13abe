"""Heatmaps of activity: a model's generated trials and the reference trial's recording, on one colour scale."""

from __future__ import annotations

import numpy as np
import panel as pn

from ..state import NavigationState
from .plots import heatmap_figure, image

RATE_LABEL, SPIKE_LABEL = "rate (spikes/s)", "spikes in bin"


class Activity(pn.viewable.Viewer):
    """A model's generated activity (mean rate over the samples, neurons sorted as the workspace says), or
    Poisson spikes drawn from its first sample."""

    def __init__(self, state: NavigationState, name: str, **params):
        super().__init__(**params)
        self.state, self.model_name = state, name
        ws = state.workspace
        self._high = state.workspace.rate_ceiling
        self.figure, self.source, self._mapper, self._bar = heatmap_figure(
            f"activity-{name}", self._title(), ws.data.n_neurons, ws.data.bin_centers_ms, self._high,
            neurons=ws.neuron_label)
        state.param.watch(self._update, ["generations", "show_spikes"])
        self._update()

    def _title(self) -> str:
        generation = self.state.generations.get(self.model_name)
        if self.state.show_spikes:
            return f"{self.model_name}: Poisson spikes of sample 1"
        n = generation.samples.shape[0] if generation is not None else self.state.samples
        return f"{self.model_name}: generated rates, mean of {n} samples"

    def _image(self) -> np.ndarray | None:
        generation = self.state.generations.get(self.model_name)
        if generation is None:
            return None
        order = self.state.workspace.neuron_order
        if self.state.show_spikes:
            bin_s = self.state.workspace.data.bin_ms / 1000
            return image(np.random.default_rng(self.state.seed).poisson(generation.samples[0] * bin_s), order)
        return image(generation.rates, order)

    def _update(self, *events) -> None:
        data = self._image()
        if data is None:
            return
        self.source.data["image"] = [data]
        if any(event.name == "show_spikes" for event in events):
            self._mapper.high = 2.0 if self.state.show_spikes else self._high
            self._bar.title = SPIKE_LABEL if self.state.show_spikes else RATE_LABEL
        self.figure.title.text = self._title()

    def __panel__(self):
        return pn.pane.Bokeh(self.figure)


class ReferenceActivity(pn.viewable.Viewer):
    """The reference trial's recorded activity (smoothed as the decoder reads it, or with the default
    `workspace.DEFAULT_SIGMA_MS` without one), sorted like the generated."""

    def __init__(self, state: NavigationState, **params):
        super().__init__(**params)
        self.state = state
        ws = state.workspace
        self.figure, self.source, _, _ = heatmap_figure("reference-activity", self._title(), ws.data.n_neurons,
                                                        ws.data.bin_centers_ms, state.workspace.rate_ceiling,
                                                        neurons=ws.neuron_label)
        state.param.watch(self._update, "reference")
        self._update()

    def _title(self) -> str:
        return f"reference trial {self.state.reference}: recorded (smoothed)"

    def _update(self, event=None) -> None:
        ws = self.state.workspace
        self.source.data["image"] = [image(ws.recorded_rates(self.state.reference), ws.neuron_order)]
        self.figure.title.text = self._title()

    def __panel__(self):
        return pn.pane.Bokeh(self.figure)
