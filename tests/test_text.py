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
    assert paddle(PADDLE[2], 8) == "…42.0"  # the shared "p2o.pd_op.full_int_array." says nothing
