"""The layer view: accumulated SQNR along the network as a line, isolated SQNR where a weight is
read as points, and the layers in a table below. Where the line falls is where the error comes from."""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable
from textual_plotext import PlotextPlot

from ..core.numbers import db_clamped
from ..core.text import NameCutter, printable
from ..core.workbench import Layer
from .labels import rated, short_db

SORTS = ("graph order", "accumulated", "isolated")
NAME_WIDTH = 12
TICKS = 5


class LayerChart(PlotextPlot):
    PANEL = "Layers tab: chart"  # as the help names it: what the screen shows, not the class
    HELP = (
        "Accumulated SQNR of each layer (the NPU from the input up to it, against float) as a line, and "
        "isolated SQNR (that layer alone, float inputs in, its weight as the NPU holds it) as points. "
        "A layer where the line falls and its point is low creates the error; exact plots at 100 dB. "
        "On large data the layers are measured on the first samples only; the title says how many."
    )
    note = ""

    def draw(self, layers: list[Layer], selected: int | None, stale: bool) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if layers:
            xs = [layer.index for layer in layers]
            plt.plot(xs, [db_clamped(layer.accumulated.sqnr_db) for layer in layers], label="accumulated", marker="braille")
            reads = [(layer.index, layer.isolated.sqnr_db) for layer in layers if layer.isolated is not None]
            if reads:
                plt.scatter([i for i, _ in reads], [db_clamped(s) for _, s in reads], label="isolated", marker="x")
            if selected is not None:
                plt.vline(selected, "yellow")
            step = max(1, round(len(xs) / TICKS))
            plt.xticks([float(x) for x in xs[::step]])
        plt.title("SQNR dB per layer" + self.note + ", fast sim" + ("  (stale: ctrl+r)" if stale else ""))
        self.refresh()


class LayerTable(DataTable):
    BINDINGS = [
        Binding("o", "cycle_sort", "Sort layers", id="layers-sort"),
        Binding("j", "cursor_down", "Down", show=False, id="layers-down"),
        Binding("k", "cursor_up", "Up", show=False, id="layers-up"),
    ]
    PANEL = "Layers tab: rows"  # as the help names it: what the screen shows, not the class
    HELP = (
        "One row per layer: v marks the largest drops of accumulated SQNR, ~ stale numbers. "
        "j/k or arrows move; o cycles the sort (graph order, accumulated, isolated); Enter selects the layer's weight, Esc goes back."
    )

    class WeightChosen(Message):
        def __init__(self, weight: str) -> None:
            super().__init__()
            self.weight = weight

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.sort_by = SORTS[0]
        self.shown_layers: list[Layer] = []
        self.stale = False
        self.alarms = True

    def on_mount(self) -> None:
        self.add_column("  #", key="index")
        self.add_column("acc dB", key="accumulated")
        self.add_column("iso dB", key="isolated")
        self.add_column("layer", key="layer")
        self.add_column("weight", key="weight")
        self.add_column("op", key="op")

    def fill(self, layers: list[Layer], stale: bool, alarms: bool = True) -> None:
        """`alarms`: whether under 20 dB gets `!` (Workbench.alarms); stale numbers never do."""
        self.shown_layers, self.stale, self.alarms = layers, stale, alarms
        current = self.current()
        self.clear()
        order = {
            "graph order": lambda layer: layer.index,
            "accumulated": lambda layer: db_clamped(layer.accumulated.sqnr_db),
            "isolated": lambda layer: db_clamped(layer.isolated.sqnr_db) if layer.isolated else math.inf,
        }[self.sort_by]
        dim = "dim" if stale else ""
        cut_node = NameCutter([printable(layer.node) for layer in layers])  # cut where the names say least
        cut_weight = NameCutter([printable(layer.weight) for layer in layers if layer.weight])
        for layer in sorted(layers, key=order):
            mark = ("v" if layer.marked else " ") + ("~" if stale else " ")
            iso = layer.isolated.sqnr_db if layer.isolated else None
            number = Text(mark, style="bold red" if layer.marked and alarms else "")
            number.append(str(layer.index), style=dim)
            self.add_row(
                number,
                Text(short_db(layer.accumulated.sqnr_db), style=dim)
                if dim
                else rated(short_db(layer.accumulated.sqnr_db), layer.accumulated.sqnr_db, alarms),
                Text(short_db(iso) if layer.isolated else "-", style=dim)
                if dim or not layer.isolated
                else rated(short_db(iso), iso, alarms),
                Text(cut_node(printable(layer.node), NAME_WIDTH), style=dim),
                Text(cut_weight(printable(layer.weight), NAME_WIDTH) if layer.weight else "-", style=dim),
                Text(layer.op_type, style=dim),
                key=str(layer.index),
            )
        if current is not None:
            self.show_layer(current)

    def current(self) -> int | None:
        if not self.row_count:
            return None
        return int(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value or 0)

    def show_layer(self, index: int) -> None:
        if self.row_count and any(layer.index == index for layer in self.shown_layers):
            self.move_cursor(row=self.get_row_index(str(index)))

    def action_cycle_sort(self) -> None:
        self.sort_by = SORTS[(SORTS.index(self.sort_by) + 1) % len(SORTS)]
        self.fill(self.shown_layers, self.stale, self.alarms)
        self.notify(f"layers sorted by {self.sort_by}", timeout=2)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        layer = self.shown_layers[int(event.row_key.value or 0)]
        if layer.weight is None:
            self.notify("this layer reads no weight", timeout=2)
            return
        self.post_message(self.WeightChosen(layer.weight))


class LayerView(Vertical):
    """Chart above, rows below; the chart follows the row under the cursor."""

    HELP = LayerChart.HELP

    def compose(self) -> ComposeResult:
        yield LayerChart(id="layer-chart")
        yield LayerTable(id="layer-rows")

    def show(self, layers: list[Layer] | None, stale: bool, samples: int = 0, of: int = 0, alarms: bool = True) -> None:
        """`samples` of `of`: the layer numbers may come from the first samples only (a memory budget)."""
        self.query_one(LayerChart).note = f" ({samples}/{of} samples)" if 0 < samples < of else ""
        rows = self.query_one(LayerTable)
        if layers is None:
            self.query_one(LayerChart).draw([], None, stale)
            rows.fill([], stale)
            return
        rows.fill(layers, stale, alarms)
        self.query_one(LayerChart).draw(layers, rows.current(), stale)

    def show_weight(self, weight: str) -> bool:
        """Put the cursor on the first layer that reads `weight`; False when none does."""
        rows = self.query_one(LayerTable)
        found = next((layer for layer in rows.shown_layers if layer.weight == weight), None)
        if found is None:
            return False
        rows.show_layer(found.index)
        self.query_one(LayerChart).draw(rows.shown_layers, found.index, rows.stale)
        return True

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        rows = self.query_one(LayerTable)
        if event.row_key is not None and event.row_key.value is not None and rows.shown_layers:
            self.query_one(LayerChart).draw(rows.shown_layers, int(event.row_key.value), rows.stale)
