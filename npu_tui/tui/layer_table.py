"""All weights in one table, sortable by SQNR, sensitivity, tail ratio and size."""

from __future__ import annotations

import math

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from ..core.quant.compiler import Compilation
from ..core.sim.sensitivity import Sensitivity
from .labels import MARKS, db, plain, rated, status

SORTS = ("sqnr", "alone", "tail", "size")


def _alone(alone: Sensitivity | None, stale: bool) -> Text:
    if alone is None:
        return Text("-")
    if stale:  # `~` survives NO_COLOR; dim says the same in colour
        return Text("~" + db(alone.output_sqnr_db), style="dim")
    return rated(db(alone.output_sqnr_db), alone.output_sqnr_db)


def _key(value: float | None, worst_first: bool = True) -> float:
    if value is None:
        return math.inf
    return value if worst_first else -value


class LayerTable(DataTable):
    BINDINGS = [Binding("o", "cycle_sort", "Sort", id="table-sort")]
    PANEL = "Table tab"  # as the help names it: what the screen shows, not the class
    HELP = "Every weight. o cycles the sort: SQNR, alone (output SQNR with only this weight quantized), tail ratio, size. Enter selects."

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.sort_by = "sqnr"
        self._shown: tuple[Compilation, dict[str, Sensitivity], bool] | None = None

    def on_mount(self) -> None:
        self.add_column("", key="mark", width=1)  # the numbers before the name: a long name never hides them
        self.add_column("SQNR", key="sqnr")
        self.add_column("alone", key="sensitivity")
        self.add_column("tail", key="tail")
        self.add_column("size", key="size")
        self.add_column("weight", key="weight")

    def fill(self, compilation: Compilation, sensitivity: dict[str, Sensitivity], stale: bool = False) -> None:
        self._shown = (compilation, sensitivity, stale)
        selected = self.selected_weight()
        self.clear()
        rows = list(compilation.results.values())
        order = {
            "sqnr": lambda r: _key(r.errors.sqnr_db),
            "alone": lambda r: _key(sensitivity[r.weight.name].output_sqnr_db if r.weight.name in sensitivity else None),
            "tail": lambda r: _key(r.tail_ratio, worst_first=False),
            "size": lambda r: -r.weight.size,
        }[self.sort_by]
        for result in sorted(rows, key=order):
            mark, style = MARKS[status(result)]
            alone = sensitivity.get(result.weight.name)
            self.add_row(
                Text(mark, style=style),
                rated(db(result.errors.sqnr_db), result.errors.sqnr_db),
                _alone(alone, stale),
                "-" if result.tail_ratio is None else f"{result.tail_ratio:.2f}",
                f"{result.weight.size:,}",
                plain(result.weight.name),
                key=result.weight.name,
            )
        if selected is not None and selected in compilation.results:
            self.move_cursor(row=self.get_row_index(selected))

    def selected_weight(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def action_cycle_sort(self) -> None:
        self.sort_by = SORTS[(SORTS.index(self.sort_by) + 1) % len(SORTS)]
        if self._shown is not None:
            self.fill(*self._shown)
        self.notify(f"sorted by {self.sort_by}", timeout=2)
