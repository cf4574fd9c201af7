"""The weight tree: weights grouped by name scope, each leaf a status mark, its name and its SQNR.

Leaves are created once; a change relabels them in place, so a toggle never rebuilds the tree.
"""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from ..core.text import NameCutter
from ..core.workbench import Compilation, Sensitivity
from .labels import plain, weight_label

SCOPE_SPLIT = re.compile(r"[/.]")


class WeightTree(Tree[str]):
    """Leaves hold weight names as data; groups hold None."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="tree-down"),
        Binding("k", "cursor_up", "Up", show=False, id="tree-up"),
        Binding("h", "fold", "Fold", show=False, id="tree-fold"),
        Binding("l", "unfold", "Unfold", show=False, id="tree-unfold"),
    ]
    PANEL = "Weights (left)"  # as the help names it: what the screen shows, not the class
    HELP = (
        "Weights grouped by name scope: status mark, the weight's own SQNR, after an evaluation 'a:' its "
        "alone number (the model output's SQNR with only that weight quantized; low = this weight hurts), "
        "then the name (cut in the middle; the full name is the tooltip and in the details). "
        "j/k or arrows move, h/l fold and unfold a group."
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(Text("weights"), **kwargs)
        self.show_root = False
        self.guide_depth = 2
        self.leaves: dict[str, TreeNode[str]] = {}
        self.shown: dict[str, str] = {}
        self.drawn: dict[str, tuple[int, int, bool, bool, bool, int]] = {}
        self.indent: dict[str, int] = {}  # cells of guides before a leaf
        self.cut = NameCutter([])  # how names are cut to the tree's width
        self.last: tuple[Compilation, dict[str, Sensitivity], frozenset[str], bool, bool] | None = None

    def build(
        self,
        compilation: Compilation,
        names: list[str],
        sensitivity: dict[str, Sensitivity] | None = None,
        fixed: frozenset[str] = frozenset(),
        stale: bool = False,
        alarms: bool = True,
    ) -> None:
        """(Re)create the leaves for `names`, in model order."""
        self.clear()
        self.leaves, self.shown, self.drawn, self.indent = {}, {}, {}, {}
        groups: dict[tuple[str, ...], TreeNode[str]] = {(): self.root}
        counts: dict[tuple[str, ...], int] = {}
        parts = {name: tuple(SCOPE_SPLIT.split(name)[:-1]) for name in names}
        for scope in parts.values():
            for depth in range(1, len(scope) + 1):
                counts[scope[:depth]] = counts.get(scope[:depth], 0) + 1
        for name in names:
            parent: tuple[str, ...] = ()
            for depth in range(1, len(parts[name]) + 1):
                prefix = parts[name][:depth]
                if counts[prefix] < 2:
                    break
                if prefix not in groups:
                    groups[prefix] = groups[parent].add(plain(prefix[-1] or "."), expand=True)
                parent = prefix
            self.shown[name] = _within(name, parent)
            self.indent[name] = self.guide_depth * len(parent)  # one guide per group above the leaf
            self.leaves[name] = groups[parent].add_leaf(Text(name), data=name)
        self.cut = NameCutter(list(self.shown.values()))
        self.root.expand()
        self.relabel(compilation, sensitivity or {}, fixed, stale, alarms)

    def relabel(
        self,
        compilation: Compilation,
        sensitivity: dict[str, Sensitivity],
        fixed: frozenset[str] = frozenset(),
        stale: bool = False,
        alarms: bool = True,
    ) -> None:
        """Set the labels whose weight result, sensitivity or fix mark changed since they were drawn.

        A stale flip changes every label: they are written in place and the visible lines repainted
        once, instead of `set_label`'s one scheduled repaint per leaf (2,000 callbacks, 80 ms).
        """
        self.last = (compilation, sensitivity, fixed, stale, alarms)
        changed = False
        width = self.scrollable_content_region.width or None  # unknown before the first layout
        for name, node in self.leaves.items():
            result, alone = compilation.results[name], sensitivity.get(name)
            room = None if width is None else width - self.indent[name]
            key = (id(result), id(alone), name in fixed, stale, alarms, room or 0)
            if self.drawn.get(name) == key:
                continue
            self.drawn[name] = key
            label = weight_label(
                result,
                self.shown[name],
                alone.alone_sqnr_db if alone else None,
                alone is not None,
                name in fixed,
                stale,
                room,
                self.cut,
                alarms,
            )
            node._label = self.process_label(label)  # Textual is pinned: the line cache is keyed on _updates
            node._updates += 1
            changed = True
        if changed:
            self.refresh()

    def on_resize(self) -> None:
        """Names are cut to the width: a new width cuts them again."""
        self._recut()

    def watch_show_vertical_scrollbar(self) -> None:
        """The scrollbar comes and goes with the number of rows (a filter, Esc) without a resize, and
        takes two columns: the names are cut again, once the layout has settled."""
        self.call_after_refresh(self._recut)

    def _recut(self) -> None:
        if self.last is not None:
            self.relabel(*self.last)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        """The full name as the tooltip: a label may be cut at 80 columns (plain text, escapes spelled out)."""
        self.tooltip = plain(event.node.data) if event.node.data is not None else None

    def select_weight(self, name: str) -> None:
        """The cursor on the weight at once, also in a tree just built: its lines, and so the node's line,
        are laid out on first use, which reading `last_line` is (else the cursor lands on the first line)."""
        node = self.leaves.get(name)
        laid_out = self.last_line >= 0
        if node is not None and laid_out:
            self.move_cursor(node)

    def action_fold(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.allow_expand and node.is_expanded:
            node.collapse()
        elif node.parent is not None and node.parent is not self.root:
            self.move_cursor(node.parent)
            node.parent.collapse()

    def action_unfold(self) -> None:
        node = self.cursor_node
        if node is not None and node.allow_expand:
            node.expand()


def _within(name: str, scope: tuple[str, ...]) -> str:
    """The part of a weight's name below its group, or the whole name at the top."""
    depth = len(scope)
    if not depth:
        return name
    pieces = re.split(r"([/.])", name)
    return "".join(pieces[2 * depth :]) or name
