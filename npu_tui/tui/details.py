"""Everything npu-tui knows about the selected weight, as plain aligned lines."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from ..core.numbers import optional_text
from ..core.workbench import Sensitivity, WeightResult
from .labels import MARKS, STATE_WORDS, db, plain, rated, status

NUMBERS = [
    ("sqnr_db", "the weight's own error: 10 log10(sum w^2 / sum (w - w as the NPU holds it)^2); under 20 dB is marked !"),
    ("alone", "the model output's SQNR (worst output) with only this weight quantized, after ctrl+r"),
    ("exclude", "what excluding it (EXCLUDE_COMPRESS_OPS, kept fp16) gains in output SQNR, and its bytes"),
    ("range", "the float range int8 covers: the weight's min/max, or WEIGHT_MIN_MAX"),
    ("nudged", "the range moved so that 0.0 is exactly an int8 step (the zero point is an integer)"),
    ("scale", "the float value of one int8 step; zero point: the int8 code of 0.0"),
    ("mse", "mean squared error of the weight as held; max_abs_err: its largest single error"),
    ("clipped", "share of values outside the nudged range: they saturate to its ends"),
    ("tail_ratio", "max |w| / 99.9th percentile of |w|: far above 1, a few outliers stretch the range"),
    ("accumulated", "layers: the NPU from the input up to this layer, against float"),
    ("isolated", "layers: this layer alone, float inputs in, its weight as the NPU holds it"),
    ("drop", "layers: how far below its inputs' SQNR a layer falls; v marks the largest"),
]

LABEL_CELLS = 11  # a row's label, right-aligned, and the space after it
MIN_HANGING = 20  # narrower than this, a warning wraps as the other rows do


def _g(value: float | None) -> str:
    return optional_text(value, ".6g")


class WeightDetails(Widget):
    """As tall as its lines, inside a fixed-height scrolling panel: only the panel lays out again."""

    PANEL = "Weight tab: details"  # as the help names it: what the screen shows, not the class
    HELP = (
        "Shape, nodes, range, scale and error metrics of the selected weight, its sensitivity and its fp16 cost; "
        "under its SQNR what compile warns of for it (fp16 overflow, a range without 0, saturation, an ignored name). "
        "Tab focuses the panel; arrows and PgUp/PgDn scroll it when it is longer than the screen."
    )

    def show(
        self,
        result: WeightResult,
        sensitivity: Sensitivity | None,
        stale: bool,
        swept: bool = True,
        fix_note: str | None = None,
        alarms: bool = True,
        fp16_cost: int = 0,
        warnings: tuple[str, ...] = (),
    ) -> None:
        """`swept` is False while a sweep has not measured every weight (running, or stopped); `alarms`
        whether under 20 dB gets `!` (Workbench.alarms; stale alone numbers never do); `fp16_cost` is what
        keeping the weight fp16 costs over compressing it, in weight-memory bytes; `warnings` what compile
        warns of for this weight (Workbench.weight_warnings), shown under its SQNR, its name not repeated."""
        weight, plan, params, errors = result.weight, result.plan, result.params, result.errors
        state = status(result)
        rows: list[tuple[str, str | Text]] = [
            ("name", plain(weight.name)),
            (
                "state",
                Text(
                    f"{MARKS[state][0]} {STATE_WORDS.get(state, state)}" + (f" ({plan.reason})" if plan.reason else ""),
                    style=MARKS[state][1],
                ),
            ),
            ("sqnr_db", rated(db(errors.sqnr_db), errors.sqnr_db, alarms)),
            *[("warning", plain(w.removeprefix(f"{weight.name}: "))) for w in warnings],
        ]
        if fix_note:
            rows.append(("changed", fix_note))
        if sensitivity is not None:
            suffix = " (stale)" if stale else ""
            acc = "" if sensitivity.accuracy is None else f", accuracy {sensitivity.accuracy:.2%}"
            gain = "-" if sensitivity.exclude_gain_db is None else f"{sensitivity.exclude_gain_db:+.2f} dB"
            alone = Text("output ")
            alone.append_text(rated(db(sensitivity.alone_sqnr_db), sensitivity.alone_sqnr_db, alarms and not stale))
            alone.append(f"{acc}{suffix}")
            rows.append(("alone", alone))
            rows.append(("exclude", f"gain {gain}, costs +{sensitivity.fp16_cost_bytes:,} bytes{suffix}"))
        else:
            if not swept:
                rows.append(("alone", "not measured: the sweep stopped or has not reached it (ctrl+r)"))
            rows.append(("fp16 cost", f"+{fp16_cost:,} bytes to keep it fp16"))
        rows += [
            ("range", f"[{_g(result.range[0])}, {_g(result.range[1])}]" + (" from WEIGHT_MIN_MAX" if plan.range else "")),
            ("nudged", f"[{_g(params.nudged_min)}, {_g(params.nudged_max)}]" if params else "-"),
            ("scale", f"{_g(params.scale if params else None)}  zero point {params.zero_point if params else '-'}"),
            ("mse", f"{errors.mse:.4g}  max_abs_err {errors.max_abs_err:.4g}"),
            ("clipped", f"{errors.clipped_fraction:.3%}  tail_ratio {_g(result.tail_ratio)}"),
            ("kind", f"{weight.kind}  shape {list(weight.shown_shape)}  {weight.size:,} values"),
            ("nodes", plain(", ".join(f"{n} ({o})" for n, o in zip(weight.nodes, weight.op_types)))),
            *(
                [("tf nodes", plain(", ".join(weight.tf_names) + " (gxnpuc honours only the name above)"))]
                if weight.tf_names
                else []
            ),
            ("fused BN", "yes" if plan.fused else ("possible" if weight.bn is not None else "no")),
        ]
        self._rows = [(label, value if isinstance(value, Text) else Text(value)) for label, value in rows]
        self.refresh(layout=True)

    def render(self) -> Text:
        """The rows under their labels; a warning's lines wrap under its first, clear of the labels."""
        width = self.size.width - LABEL_CELLS
        text = Text()
        for label, value in getattr(self, "_rows", []):
            text.append(f"{label:>{LABEL_CELLS - 1}} ", style="bold")
            if label == "warning" and width >= MIN_HANGING:
                value = Text("\n" + " " * LABEL_CELLS).join(value.wrap(self.app.console, width))
            text.append_text(value)
            text.append("\n")
        return text
