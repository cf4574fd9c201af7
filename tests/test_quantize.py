"""The quantization formula of SPEC section 5 on hand-computed cases and as properties."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from npu_tui.core.quant.metrics import error_metrics, tail_ratio
from npu_tui.core.quant.quantize import auto_range, dequantize, quant_params, quantize, simulate

f16 = np.float16


def tensor_range(w):
    return auto_range(w.min(), w.max())


def test_range_without_zero_is_nudged_to_contain_it():
    # [0.1, 0.5]: scale = 0.4/255, zp_from_min = -0.1/scale = -63.75 < 0 -> zero point 0
    p = quant_params(0.1, 0.5)
    assert p.zero_point == 0
    assert p.scale == pytest.approx(0.4 / 255, rel=1e-6)
    assert p.nudged_min == 0.0
    assert p.nudged_max == pytest.approx(0.4, rel=1e-6)


def test_spec_example_range():
    # [-0.28, 0.37]: scale = 0.65/255, zp_from_min = 0.28*255/0.65 = 109.846 -> 110
    p = quant_params(-0.28, 0.37)
    scale = 0.65 / 255
    assert p.zero_point == 110
    assert p.nudged_min == pytest.approx(-110 * scale, rel=1e-6)
    assert p.nudged_max == pytest.approx(145 * scale, rel=1e-6)


def test_half_way_zero_point_rounds_away_from_zero():
    # scale = 3.984375/255 = 1/64 exactly, zp_from_min = 1.9921875*64 = 127.5 -> 128
    p = quant_params(-1.9921875, 1.9921875)
    assert p.scale == 1 / 64
    assert p.zero_point == 128
    assert p.nudged_min == -2.0 and p.nudged_max == 127 / 64


def test_range_arithmetic_is_float32_like_fakequant():
    # [-1, 1]: in float32, scale rounds up and zp_from_min is 127.49999 -> 127 (float64 would say 127.5 -> 128)
    assert quant_params(-1.0, 1.0).zero_point == 127


def test_all_positive_tensor_by_hand():
    # range (0, 3.984375): scale = 1/64 exactly, zero point 0
    w = np.array([0.5, 1.0078125, 3.984375], np.float32)
    assert tensor_range(w) == (0.0, 3.984375)
    p = quant_params(*tensor_range(w))
    assert p.scale == 1 / 64 and p.zero_point == 0 and p.nudged_min == 0.0
    q = quantize(w, p)
    # 0.5*64 = 32; 1.0078125*64 = 64.5 -> floor(65.0) = 65; 3.984375*64 = 255
    assert q.tolist() == [32, 65, 255]
    assert dequantize(q, p).tolist() == [0.5, 1.015625, 3.984375]


def test_float32_rounding_at_a_half_step():
    # range (0, 2): in float32 1.0/scale = 127.49999, so 1.0 lands on 127 (its dequantized value is below 1.0)
    p = quant_params(0.0, 2.0)
    q = quantize(np.array([1.0], np.float32), p)
    assert q.tolist() == [127]
    assert float(dequantize(q, p)[0]) == float(f16(127 * np.float32(f16(2 / 255))))


def test_all_zero_tensor_is_stored_exactly():
    w = np.zeros((3, 4), np.float32)
    assert quant_params(*tensor_range(w)) is None
    sim = simulate(w, None)
    assert sim.dtype == np.float16 and not sim.any()
    metrics = error_metrics(w, sim)
    assert metrics.sqnr_db is None and metrics.mse == 0.0
    assert tail_ratio(w) is None


def test_saturation_to_nudged_bounds():
    p = quant_params(-1.0, 1.0)
    w = np.array([-5.0, 5.0, 0.25], np.float32)
    q = quantize(w, p)
    assert q[0] == 0 and q[1] == 255
    sim = dequantize(q, p).astype(np.float32)
    s16, b16 = np.float32(f16(p.scale)), np.float32(f16(p.nudged_min))
    assert sim[0] == np.float32(f16(b16))
    assert sim[1] == np.float32(f16(255 * s16 + b16))


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
def test_in_range_values_within_half_a_step(case):
    w, p = case
    sim = simulate(w, p).astype(np.float64)
    inside = (w >= p.nudged_min) & (w <= p.nudged_max)
    err = np.abs(sim[inside] - w[inside].astype(np.float64))
    assert np.all(err <= p.scale / 2 * (1 + 1e-5) + _fp16_slack(p))


@settings(max_examples=300, deadline=None)
@given(quantizable())
def test_zero_sits_on_the_grid(case):
    """0 maps exactly to the zero point; after SPEC's fp16 storage of scale and bias it is off by rounding only."""
    w, p = case
    zero = np.zeros(1, np.float32)
    q = quantize(zero, p)
    if 0.0 >= p.nudged_min:
        assert q[0] == p.zero_point
        assert float(np.float32(p.zero_point) * np.float32(p.scale) + np.float32(p.nudged_min)) == pytest.approx(0.0, abs=1e-6 * p.scale)
        assert abs(float(dequantize(q, p)[0])) <= _fp16_slack(p)


@settings(max_examples=300, deadline=None)
@given(quantizable())
def test_out_of_range_values_saturate_to_nudged_bounds(case):
    w, p = case
    q = quantize(w, p)
    assert np.all(q[w <= p.nudged_min] == 0)
    assert np.all(q[w >= p.nudged_max] == 255)
    bounds = dequantize(np.array([0, 255], np.uint8), p).astype(np.float32)
    sim = simulate(w, p).astype(np.float32)
    assert np.all(sim[w < p.nudged_min] == bounds[0])
    assert np.all(sim[w > p.nudged_max] == bounds[1])


@settings(max_examples=200, deadline=None)
@given(quantizable())
def test_simulate_is_quantize_then_dequantize(case):
    w, p = case
    np.testing.assert_array_equal(simulate(w, p), dequantize(quantize(w, p), p))


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.integers(1, 64), elements=finite))
def test_automatic_range_always_holds_zero_and_clips_nothing_beyond_half_a_step(w):
    lo, hi = tensor_range(w)
    assert lo <= 0.0 <= hi
    p = quant_params(lo, hi)
    if p is None:  # no step: all zeros, or a range of float32 subnormals, stored as fp16 (zero)
        assert np.all(np.abs(w) < 1e-37)
        return
    assert p.nudged_min <= 0.0 <= p.nudged_max
    assert p.nudged_min - p.scale / 2 <= w.min() and w.max() <= p.nudged_max + p.scale / 2 * (1 + 1e-5)


@pytest.mark.parametrize("n", [10, 1000, 300_000, 1_000_003])
def test_tail_ratio_equals_numpy_percentile(n):
    w = np.random.default_rng(n).standard_t(3, n).astype(np.float32)
    magnitude = np.abs(w)
    expected = float(magnitude.max()) / float(np.percentile(magnitude, 99.9))
    assert tail_ratio(w) == pytest.approx(expected, rel=1e-6)
