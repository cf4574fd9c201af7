"""The selected weight's histogram: float distribution, quantization range, nudged range, clipped tails."""

from __future__ import annotations

import numpy as np
from textual.binding import Binding
from textual_plotext import PlotextPlot

from ..core.compiler import WeightResult
from ..core.histogram import Histogram
from ..core.text import printable

BINS = 60


class HistogramView(PlotextPlot):
    BINDINGS = [Binding("L", "toggle_log", "Log counts", id="histogram-log")]
    HELP = (
        "Histogram of the selected weight (fused with its BatchNorm when FUSE_BN folds it). "
        "Blue bars are kept, red bars saturate; green lines mark the range, red lines the nudged range. "
        "L switches to log counts, which shows long tails."
    )

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.log_counts = True
        self._shown: tuple[WeightResult, Histogram] | None = None

    def show(self, result: WeightResult, hist: Histogram) -> None:
        self._shown = (result, hist)
        self._draw()

    def action_toggle_log(self) -> None:
        self.log_counts = not self.log_counts
        self._draw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if self._shown is None:
            self.refresh()
            return
        result, hist = self._shown
        centers = (hist.edges[:-1] + hist.edges[1:]) / 2
        counts = np.log10(1 + hist.counts) if self.log_counts else hist.counts.astype(float)
        params = result.params
        inside = np.ones(len(centers), bool)
        if params is not None:
            inside = (centers >= params.nudged_min) & (centers <= params.nudged_max)
        if inside.any():
            plt.bar(centers[inside].tolist(), counts[inside].tolist(), color="blue", width=0.9)
        if (~inside).any():
            plt.bar(centers[~inside].tolist(), counts[~inside].tolist(), color="red", width=0.9)
        if result.plan.quantized:
            for x in result.range:
                plt.vline(x, "green")
            for x in (params.nudged_min, params.nudged_max) if params else ():
                plt.vline(x, "red")
        lo, hi = float(hist.edges[0]), float(hist.edges[-1])
        if result.plan.quantized:
            lo, hi = min(lo, result.range[0]), max(hi, result.range[1])
        plt.xlim(lo, hi)
        plt.xticks([lo, (lo + hi) / 2, hi], [f"{lo:.3g}", f"{(lo + hi) / 2:.3g}", f"{hi:.3g}"])
        plt.title(printable(result.weight.name) + ("  (log10 counts)" if self.log_counts else ""))
        self.refresh()
