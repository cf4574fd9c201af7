"""The selected weight's histogram: float distribution, quantization range, nudged range, clipped tails."""

from __future__ import annotations

from typing import Any

import numpy as np
from textual.app import RenderResult
from textual.binding import Binding
from textual.timer import Timer
from textual_plotext import PlotextPlot

from ..core.text import printable, shorten_middle
from ..core.workbench import Histogram, WeightResult
from .labels import why_fp16

BINS = 60
DRAW_DELAY = 0.06
RENDERED_KEPT = 64
SATURATING_MARK = "x"  # saturating bars are drawn in x as well as red: NO_COLOR must show them
LOG_NOTE = "  (log10 counts)"
TITLE_MARGIN = 8  # the y-axis ticks beside the plot area


class HistogramView(PlotextPlot):
    BINDINGS = [Binding("L", "toggle_log", "Log counts", id="histogram-log")]
    PANEL = "Weight tab: histogram"  # as the help names it: what the screen shows, not the class
    HELP = (
        "Histogram of the selected weight (fused with its BatchNorm when FUSE_BN folds it). "
        "Bars of block characters are kept, bars of x (red) saturate to the range's ends; "
        "green lines mark the range, red lines the nudged range. "
        "L switches to log counts, which shows long tails."
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log_counts = True
        self._shown: tuple[WeightResult, Histogram] | None = None
        self._pending: Timer | None = None
        self._rendered: dict[tuple, RenderResult] = {}
        self._drawn: tuple = ()

    def show(self, result: WeightResult, hist: Histogram) -> None:
        """Draw a moment later: holding j across 2,000 weights draws only where the cursor stops."""
        self._shown = (result, hist)
        if self._pending is not None:
            self._pending.stop()
        self._pending = self.set_timer(DRAW_DELAY, self._draw)

    @property
    def drawing(self) -> bool:
        """A draw is scheduled and not done yet (what a test waits on before reading the plot)."""
        return self._pending is not None

    def preview(self, result: WeightResult) -> None:
        """The same values under another range (the `m` dialog's candidate): what it would saturate."""
        if self._shown is not None and self._shown[0].weight.name == result.weight.name:
            self.show(result, self._shown[1])

    def on_resize(self) -> None:
        if self._shown is not None:
            self._draw()  # the title is cut to the width

    def on_show(self) -> None:
        """A draw made while the tab was hidden cut the title to no width: draw again at the real one."""
        if self._shown is not None:
            self._draw()

    def action_toggle_log(self) -> None:
        self.log_counts = not self.log_counts
        self._draw()

    def render(self) -> RenderResult:
        """Plots already drawn at this size are reused: flipping a weight back and forth costs nothing."""
        key = (self._drawn, self.size.width, self.size.height)  # the title is cut to the width
        if key not in self._rendered:
            if len(self._rendered) >= RENDERED_KEPT:
                self._rendered.pop(next(iter(self._rendered)))
            self._rendered[key] = super().render()
        return self._rendered[key]

    def _state(self) -> tuple:
        if self._shown is None:
            return ()
        result, _ = self._shown
        params = result.params
        return (result.weight.name, result.plan, params, self.log_counts)

    def _draw(self) -> None:
        self._pending = None
        note = LOG_NOTE if self.log_counts else ""
        room = max(self.size.width - len(note) - TITLE_MARGIN, 8)  # plotext drops a title wider than its plot area
        self._drawn = (self._state(), room)  # a plot whose title was cut to another room is another plot
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
            plt.bar(centers[~inside].tolist(), counts[~inside].tolist(), color="red", width=0.9, marker=SATURATING_MARK)
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
        plt.title(shorten_middle(printable(result.weight.name), room) + note)
        why = why_fp16(result)
        if why:  # under the axis: the title has no room for it at 80 columns
            plt.xlabel(fit_words(why, max(self.size.width - TITLE_MARGIN, 8)))
        self.refresh()


def fit_words(text: str, width: int) -> str:
    """Our own words (not a name) cut to `width` at a word's end, so what is left reads as words."""
    if len(text) <= width:
        return text
    cut = text[: width - 1].rsplit(" ", 1)[0].rstrip(",:;")
    return cut + "…"
