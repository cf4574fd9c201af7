"""All weights in one table, sortable by SQNR, sensitivity, tail ratio and size."""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from ..core.numbers import worst_first
from ..core.text import NameCutter, printable
from ..core.workbench import Compilation, Sensitivity
from .labels import MARKS, MIN_NAME, db, rated, status

SORTS = ("sqnr", "alone", "tail", "size")


def _alone(alone: Sensitivity | None, stale: bool, alarms: bool) -> Text:
    if alone is None:
        return Text("-")
    if stale:  # `~` survives NO_COLOR; dim says the same in colour
        return Text("~" + db(alone.alone_sqnr_db), style="dim")
    return rated(db(alone.alone_sqnr_db), alone.alone_sqnr_db, alarms)


def _largest_first(value: float | None) -> float:
    """Sort key for a ratio, largest first; not measured (None) last."""
    return math.inf if value is None else -value


class WeightTable(DataTable):
    BINDINGS = [
        Binding("o", "cycle_sort", "Sort", id="table-sort"),
        Binding("j", "cursor_down", "Down", show=False, id="table-down"),
        Binding("k", "cursor_up", "Up", show=False, id="table-up"),
    ]
    PANEL = "Table tab"  # as the help names it: what the screen shows, not the class
    HELP = (
        "Every weight. j/k or arrows move; x, m and r act on the highlighted row; o cycles the sort: SQNR, alone "
        "(output SQNR with only this weight quantized), tail ratio, size. Enter selects, Esc goes back."
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.sort_by = "sqnr"
        self._shown: tuple[Compilation, dict[str, Sensitivity], bool, bool] | None = None

    def on_mount(self) -> None:
        self.add_column("  SQNR", key="sqnr")  # mark and numbers before the name: a long name never hides them
        self.add_column("alone", key="sensitivity")
        self.add_column("tail", key="tail")
        self.add_column("size", key="size")
        self.add_column("weight", key="weight")

    def fill(
        self,
        compilation: Compilation,
        sensitivity: dict[str, Sensitivity],
        stale: bool = False,
        alarms: bool = True,
        selected: str | None = None,
    ) -> None:
        """The rows, the cursor on `selected` (the screen's weight), else on the weight it was on;
        `alarms`: whether under 20 dB gets `!` (Workbench.alarms)."""
        self._shown = (compilation, sensitivity, stale, alarms)
        selected = selected or self.selected_weight()
        self.clear()
        rows = list(compilation.results.values())
        order = {
            "sqnr": lambda r: worst_first(r.errors.sqnr_db),
            "alone": lambda r: worst_first(sensitivity[r.weight.name].alone_sqnr_db if r.weight.name in sensitivity else None),
            "tail": lambda r: _largest_first(r.tail_ratio),
            "size": lambda r: -r.weight.size,
        }[self.sort_by]
        cells = []
        for result in sorted(rows, key=order):
            mark, style = MARKS[status(result)]
            cells.append(
                (
                    Text.assemble((mark, style), " ", rated(db(result.errors.sqnr_db), result.errors.sqnr_db, alarms)),
                    _alone(sensitivity.get(result.weight.name), stale, alarms),
                    Text("-" if result.tail_ratio is None else f"{result.tail_ratio:.2f}"),
                    Text(f"{result.weight.size:,}"),
                    result.weight.name,
                )
            )
        names = [printable(name) for *_, name in cells]
        room, cut = self._name_room(cells, names), NameCutter(names)
        for (*numbers, name), shown_name in zip(cells, names):
            self.add_row(*numbers, Text(cut(shown_name, room)), key=name)
        if selected is not None and selected in compilation.results:
            self.move_cursor(row=self.get_row_index(selected))

    def _name_room(self, cells: list[tuple], names: list[str]) -> int:
        """The weight column takes the width the numbers leave (the whole name when it fits), so a
        long name is cut to what is seen, by a NameCutter that keeps the rows told apart."""
        longest = max((len(n) for n in names), default=0)
        width = self.scrollable_content_region.width
        *others, column = self.columns.values()  # the weight column is the last
        if not width:  # before the first layout: on_resize fills again
            room = longest
        else:
            used = 2 * self.cell_padding  # the name column's own padding
            for index, other in enumerate(others):
                content = max([other.content_width, other.label.cell_len, *(row[index].cell_len for row in cells)])
                used += (content if other.auto_width else other.width) + 2 * self.cell_padding
            room = max(min(longest, width - used), MIN_NAME)
        column.auto_width, column.width = False, max(room, column.label.cell_len)
        return room

    def on_resize(self) -> None:
        """Names are cut to the width: a new width cuts them again."""
        self._refill()

    def watch_show_vertical_scrollbar(self) -> None:
        """The scrollbar takes two columns without a resize: cut again once the layout has settled."""
        self.call_after_refresh(self._refill)

    def _refill(self) -> None:
        if self._shown is not None:
            self.fill(*self._shown, selected=self.selected_weight())

    def selected_weight(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def action_cycle_sort(self) -> None:
        self.sort_by = SORTS[(SORTS.index(self.sort_by) + 1) % len(SORTS)]
        self._refill()
        self.notify(f"sorted by {self.sort_by}", timeout=2)
