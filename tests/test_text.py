"""How long exporter names are cut at 80 columns: keeping the end that tells them apart."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from npu_tui.core.text import NameCutter, shorten, telling_end

TF = [f"conv2d_{i}/Conv2D_weights_fused_bn" for i in range(12)]
PADDLE = [f"p2o.pd_op.full_int_array.{i}.0" for i in range(40, 52)]


def test_the_telling_end_of_each_exporter():
    assert telling_end(TF) == "start"
    assert telling_end(PADDLE) == "end"
    assert telling_end(["a", "b"]) == "middle"


def test_cut_names_stay_apart():
    assert shorten(TF[7], 12, "start") == "conv2d_7/Co…"
    assert shorten(PADDLE[3], 12, "end") == "…_array.43.0"
    assert len({shorten(n, 12, telling_end(TF)) for n in TF}) == len(TF)
    assert len({shorten(n, 12, telling_end(PADDLE)) for n in PADDLE}) == len(PADDLE)


@given(st.text(min_size=0, max_size=80), st.integers(min_value=2, max_value=60), st.sampled_from(["start", "end", "middle"]))
def test_a_cut_name_fits_and_a_short_one_is_untouched(name, width, keep):
    cut = shorten(name, width, keep)
    assert len(cut) <= max(width, 2)
    if len(name) <= width:
        assert cut == name


def test_the_start_all_names_share_goes_first():
    full = [f"model/conv2d_{i}/Conv2D_weights_fused_bn" for i in range(20)]
    cut = NameCutter(full)
    assert cut(full[16], 14) == "…16/Conv2D_we…"  # not "model/conv2d…", which all twenty would read
    assert len({cut(n, 14) for n in full}) == len(full)
    assert cut("short", 14) == "short"
    paddle = NameCutter(PADDLE)
    assert paddle(PADDLE[2], 8) == "…ay.42.0"  # the shared "p2o.pd_op.full_int_array." goes first; the room left shows its end


def test_sensitivity_report_uses_the_width_there_is():
    """`eval --sensitivity`: names as long as the terminal allows, and told apart at 80 columns."""
    from npu_tui.core.eval_report import evaluation_lines
    from npu_tui.core.sim.evaluate import Evaluation
    from npu_tui.core.sim.sensitivity import Sensitivity

    names = [f"backbone/stage{s}/block{b}/conv/depthwise/weight_quantized" for s in (2, 3, 4) for b in (1, 5)]
    found = [Sensitivity(n, 30.0 + i, None, 1.0, 100) for i, n in enumerate(names)]
    evaluation = Evaluation(8, None, None, None, [])
    wide = evaluation_lines(evaluation, found, "random", width=200)
    assert all(any(line.startswith(n + " ") for line in wide) for n in names)
    narrow = evaluation_lines(evaluation, found, "random", width=80)
    rows = narrow[narrow.index(next(line for line in narrow if line.startswith("weight"))) + 1 :]
    assert len(rows) == len(names) and all(len(row) <= 80 for row in rows)
    assert len({row.split()[0] for row in rows}) == len(names)  # every row tells its weight apart


def test_cut_names_use_the_width_left_beyond_their_telling_part():
    names = [f"onnx::Conv_weight_quantized_{i}" for i in range(300, 340)]
    cut = NameCutter(names)
    assert cut(names[0], 15) == "…_quantized_300" and len({cut(n, 15) for n in names}) == len(names)
