"""gxnpuc 1.5.8's quantization (SPEC section 5) on hand-computed cases and as properties (the fixture test
checks it bit for bit against the compiler itself)."""

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from npu_tui.core.quant.gxnpuc import quantize as gxnpuc_quantize
from npu_tui.core.quant.metrics import error_metrics, tail_ratio
from npu_tui.core.quant.quantize import QuantParams, auto_range, dequantize, quant_params, quantize, simulate

f16 = np.float16


def stepped(lo: float, hi: float) -> QuantParams:
    """quant_params of a range that has a step (lo < hi)."""
    params = quant_params(lo, hi)
    assert params is not None
    return params


def tensor_range(w):
    return auto_range(w.min(), w.max())


def test_range_without_zero_keeps_its_clip_and_loses_the_far_end():
    # SPEC 5's example: [0.5, 1.5]. scale = fp16(1/255) = 0x1C04 = 0.0039215...; 0.5/scale = 127.50 < 0 after
    # the minus: zero point 0, offset +0. The grid is [0, 255 * scale] = [0, 1.0] while values clip to [0.5, 1.5]:
    # everything above 1.0 saturates at 1.0.
    p = stepped(0.5, 1.5)
    assert (p.scale_fp16_bits, p.zero_point, p.offset_fp16_bits) == (0x1C04, 0, 0)
    assert (p.nudged_min, p.nudged_max) == (0.0, 1.0)
    w = np.array([0.25, 0.5, 1.0, 1.25, 1.5], np.float32)
    assert quantize(w, p).tolist() == [128, 128, 255, 255, 255]  # 0.25 clips to 0.5 = code 127.5 -> 128
    assert dequantize(quantize(w, p), p).tolist() == [0.501953125, 0.501953125, 1.0, 1.0, 1.0]


def test_spec_example_range():
    # [-0.28, 0.37]: cvt gives -0.280029296875 and 0.369873046875; their fp16 difference 0.64990234375 / 255
    # = 0.0025501 (0x1939); 0.28003 / scale = 109.81 -> fp16 109.8125, + 0.5 -> floor 110; offset
    # fp16(-110 * scale) = -0.280517578125 (0xB47D)
    p = stepped(-0.28, 0.37)
    assert (p.scale_fp16_bits, p.zero_point, p.offset_fp16_bits) == (0x1939, 110, 0xB47D)
    assert (p.min, p.max) == (-0.28, 0.37)  # the range shown is the raw one
    assert p.nudged_min == -0.280517578125


def test_half_way_zero_point_rounds_half_up():
    # scale = 3.984375/255 = 1/64 exactly, zp_from_min = 1.9921875*64 = 127.5 -> 128
    p = stepped(-1.9921875, 1.9921875)
    assert p.scale == 1 / 64
    assert p.zero_point == 128
    assert p.nudged_min == -2.0 and p.nudged_max == 127 / 64


def test_range_arithmetic_is_fp16():
    # [-1, 1]: scale fp16(2/255) = 0.007843017578125; 1/scale = 127.5019 rounds in fp16 to 127.5, so the zero
    # point is 128 (float32 arithmetic, 127.49999, would give 127)
    assert quant_params(-1.0, 1.0).zero_point == 128


def test_all_positive_tensor_by_hand():
    # range (0, 3.984375): scale = 1/64 exactly, zero point 0
    w = np.array([0.5, 1.0078125, 3.984375], np.float32)
    assert tensor_range(w) == (0.0, 3.984375)
    p = stepped(*tensor_range(w))
    assert p.scale == 1 / 64 and p.zero_point == 0 and p.nudged_min == 0.0
    q = quantize(w, p)
    # 0.5*64 = 32; 1.0078125 is 1.0078125 in fp16, *64 = 64.5 -> floor(65.0) = 65; 3.984375*64 = 255
    assert q.tolist() == [32, 65, 255]
    assert dequantize(q, p).tolist() == [0.5, 1.015625, 3.984375]


def test_fp16_rounding_at_a_half_step():
    # range (0, 2): scale = fp16(2/255) = 0.007843017578125; 1.0/scale = 127.502 -> fp16 127.5, + 0.5 = 128
    p = stepped(0.0, 2.0)
    q = quantize(np.array([1.0], np.float32), p)
    assert q.tolist() == [128]
    assert float(dequantize(q, p)[0]) == float(f16(128 * np.float32(p.scale)))


def test_all_zero_tensor_has_no_step():
    """gxnpuc crashes on it (its scale is 0): there are no parameters; stored fp16 it is exact."""
    w = np.zeros((3, 4), np.float32)
    assert quant_params(*tensor_range(w)) is None
    sim = simulate(w, None)
    assert sim.dtype == np.float16 and not sim.any()
    metrics = error_metrics(w, sim)
    assert metrics.sqnr_db is None and metrics.mse == 0.0
    assert tail_ratio(w) is None


def test_saturation_to_the_raw_range():
    p = stepped(-1.0, 1.0)
    w = np.array([-5.0, 5.0, -1.0, 1.0, 0.25], np.float32)
    q = quantize(w, p)
    # -5 clips to -1: (-1 + 1.00390625) / scale = 0.498 -> code 0; 5 clips to 1: 255.5 -> 255
    assert q.tolist()[:4] == [0, 255, 0, 255]
    sim = dequantize(q, p).astype(np.float32)
    assert sim[0] == np.float32(p.nudged_min) and sim[1] == np.float32(p.nudged_max)


def test_fp16_weights_are_stored_with_the_compilers_converter():
    """Not IEEE: ties go away from zero, below 2**-15 is 0, and [2**-15, 2**-14) arrives as a subnormal."""
    w = np.array([1 + 2**-11, -(1 + 2**-11), 2.0**-16, 6.0e-5, 65536.0], np.float32)
    stored = simulate(w, None)
    assert stored[:2].tolist() == [1 + 2**-10, -(1 + 2**-10)]  # IEEE would round both ties to even, 1.0
    assert stored[2] == 0  # IEEE keeps 2**-16 as a subnormal
    assert stored[3] == np.float16(989 * 2.0**-24)  # 6e-5 = 1.966 * 2**-15: mantissa bits 0.966 * 1024 = 989, read as m * 2**-24
    assert np.isnan(stored[4])  # 0x7fff


def test_sqnr_by_hand():
    w = np.array([3.0, 4.0], np.float32)
    sim = np.array([3.0, 3.0], np.float16)
    m = error_metrics(w, sim)
    # signal 25, noise 1 -> 10*log10(25) dB
    assert m.sqnr_db == pytest.approx(10 * math.log10(25))
    assert m.mse == pytest.approx(0.5)
    assert m.max_abs_err == pytest.approx(1.0)


def test_tail_ratio_of_one_outlier():
    w = np.concatenate([np.full(9999, 0.01, np.float32), [1.0]]).astype(np.float32)
    assert tail_ratio(w) == pytest.approx(1.0 / 0.01, rel=1e-3)


finite = st.floats(-4.0, 4.0, allow_nan=False, width=32)


@st.composite
def weight_and_range(draw):
    w = draw(arrays(np.float32, st.integers(1, 64), elements=finite))
    lo = draw(st.floats(-4.0, 3.75, width=32))
    hi = float(np.float32(draw(st.floats(lo + 0.01, 4.0))))
    use_auto = draw(st.booleans())
    return w, (tensor_range(w) if use_auto else (lo, hi))


def quantizable():
    """A weight and the parameters of a range that has a step (no stored-exactly case)."""
    return weight_and_range().map(lambda case: (case[0], quant_params(*case[1]))).filter(lambda case: case[1] is not None)


def _half_ulp16(x: float) -> float:
    """The most one rounding to fp16 moves x, subnormals included."""
    return max(abs(x) * 2.0**-11, 2.0**-25)


def _fp16_slack(p):
    # fp16(q*fp16(scale) + fp16(nudged_min)): the stored scale, the stored bias and the result each round once
    big = max(abs(p.nudged_min), abs(p.nudged_max))
    return 255 * _half_ulp16(p.scale) + _half_ulp16(p.nudged_min) + _half_ulp16(big)


@settings(max_examples=300, deadline=None)
@given(quantizable())
def test_in_range_values_within_half_a_step_and_fp16_rounding(case):
    """Inside both the range and the grid: half a step, plus the one-step-in-eight the fp16 arithmetic
    of (x - offset) / scale can add near 255, plus the converter's own rounding of x."""
    w, p = case
    sim = simulate(w, p).astype(np.float64)
    inside = (w >= max(p.min, p.nudged_min)) & (w <= min(p.max, p.nudged_max))
    err = np.abs(sim[inside] - w[inside].astype(np.float64))
    slack = np.array([_half_ulp16(float(x)) for x in w[inside]]) + 2.0**-14 + _fp16_slack(p)
    assert np.all(err <= p.scale * 0.69 + slack)


@settings(max_examples=300, deadline=None)
@given(quantizable())
def test_zero_sits_on_the_grid(case):
    """0 inside the range maps to the zero point, whose value is exactly 0 on the chip."""
    w, p = case
    q = quantize(np.zeros(1, np.float32), p)
    if p.min <= 0.0 <= p.max and 0.0 >= p.nudged_min:
        assert q[0] == p.zero_point
        assert float(dequantize(q, p)[0]) == 0.0


@settings(max_examples=300, deadline=None)
@given(quantizable())
def test_out_of_range_values_saturate_to_the_codes_of_the_range_ends(case):
    w, p = case
    q = quantize(w, p)
    ends = quantize(np.array([p.min, p.max], np.float32), p)
    assert np.all(q[w <= np.float32(p.min)] == ends[0])
    assert np.all(q[w >= np.float32(p.max)] == ends[1])


@settings(max_examples=200, deadline=None)
@given(quantizable())
def test_simulate_is_quantize_then_dequantize(case):
    w, p = case
    np.testing.assert_array_equal(simulate(w, p), dequantize(quantize(w, p), p))


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.integers(1, 64), elements=finite))
@example(np.array([0.00099388], np.float32))  # scale 3.9e-6 stored as the subnormal 65 * 2**-24: 1.5 steps short
def test_automatic_range_of_a_padded_weight_holds_zero_and_clips_nothing(w):
    """Nothing is clipped by more than one step where the scale is a normal fp16; below 2**-14 (a range
    under 255 * 2**-14) the stored scale keeps only a few bits and gxnpuc's 255 steps fall short of the
    range's far end: zero stays inside and every code is a byte."""
    lo, hi = tensor_range(w)
    assert lo <= 0.0 <= hi
    p = quant_params(lo, hi)
    if p is None:  # no step: the converter makes both ends the same fp16 (all below 2**-15 in size)
        assert np.all(np.abs(w) < 2.0**-14)
        return
    q = quantize(w, p)
    assert p.nudged_min <= 0.0 <= p.nudged_max
    assert q.min() >= 0 and q.max() <= 255
    if p.scale >= 2.0**-14:
        assert p.nudged_min - p.scale <= w.min() and w.max() <= p.nudged_max + p.scale


@pytest.mark.parametrize("n", [10, 1000, 300_000, 1_000_003])
def test_tail_ratio_equals_numpy_percentile(n):
    w = np.random.default_rng(n).standard_t(3, n).astype(np.float32)
    magnitude = np.abs(w)
    expected = float(magnitude.max()) / float(np.percentile(magnitude, 99.9))
    assert tail_ratio(w) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_a_weight_holding_inf_or_nan_has_no_tail_ratio(bad):
    w = np.full(4000, 0.5, np.float32)
    w[:10] = bad  # enough to reach the 99.9th percentile
    with np.errstate(all="raise"):
        assert tail_ratio(w) is None


def test_the_quantizers_running_error_sums_give_the_metrics_of_its_output():
    """The quantizer sums the error while it makes the codes; the figures equal measuring its output afterwards,
    and a hand computation in float64."""
    w = np.random.default_rng(7).standard_t(4, (700, 300)).astype(np.float32) * 0.05  # 210,000: several chunks
    quant = gxnpuc_quantize(w)
    fused = quant.errors.metrics(w.size, quant.saturated)
    assert fused == error_metrics(w, quant.dequantized, quant.saturated)
    err = w.astype(np.float64) - quant.dequantized.astype(np.float64)
    assert fused.mse == pytest.approx(float(np.mean(err**2)), rel=1e-5)
    assert fused.sqnr_db == pytest.approx(10 * math.log10(float(np.sum(w.astype(np.float64) ** 2) / np.sum(err**2))), abs=1e-4)
    assert fused.max_abs_err == float(np.abs(err).max())


def test_tail_ratio_from_a_known_extent_equals_the_measured_one():
    w = np.random.default_rng(8).standard_t(3, 500_000).astype(np.float32)
    assert tail_ratio(w, (float(w.min()), float(w.max()))) == tail_ratio(w)
