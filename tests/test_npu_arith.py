"""The NPU's fp16 arithmetic on small graphs whose answers are worked out by hand (NPU_ARITHMETIC.md)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from npu_tui.core.errors import ModelError
from npu_tui.core.quant.fp16 import compiler_fp16
from npu_tui.core.sim.npu import arith, tables
from npu_tui.core.sim.npu.interpreter import run_exact, simulate_exact

F16 = np.float16


def graph(nodes, inputs, outputs, initializers=()) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(np.asarray(v), n) for n, v in initializers],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_ties_in_the_arithmetic_go_to_even():
    assert arith.add(F16(2048), F16(1)) == 2048 and arith.add(F16(2050), F16(1)) == 2052
    assert arith.sub(F16(2050), F16(1)) == 2048 and arith.sub(F16(-2048), F16(1)) == -2048


def test_a_column_of_64_values_of_2100_overflows_where_float32_gives_the_sum():
    x = np.full((1, 64), 2100, F16)
    half = np.full((64, 1), 0.5, F16)
    assert np.isinf(arith.matmul(x, half)[0, 0])  # blocks 33600 each: 67200 > 65504 at the block add
    assert (x.astype(np.float32) @ half.astype(np.float32))[0, 0] == 67200
    signs = np.concatenate([np.ones(32), -np.ones(32)]).astype(F16)[:, None]
    zero_sum = arith.matmul(x, signs)  # block partials +inf and -inf: NaN
    assert np.isnan(zero_sum[0, 0]) and arith.fp32_output(zero_sum)[0, 0] == -np.inf  # x86's NaN has the sign bit
    assert arith.matmul(x, np.full((64, 1), 1 / 64, F16))[0, 0] == 2104  # 2100 exactly in float32


def test_a_running_fp16_sum_stagnates_within_a_block_and_blocks_are_added():
    x = np.ones((1, 64), F16)
    w = np.ones((64, 1), F16)
    w[0, 0] = 2048
    # block 0: 2048 + 31 * 1 stays 2048; block 1: 32; 2048 + 32 = 2080
    assert arith.matmul(x, w)[0, 0] == 2080
    assert arith.matmul(x, w, bias_first=np.array([1], F16))[0, 0] == 2080  # the bias is lost in the first chain


def test_fused_bias_starts_the_chain_a_separate_bias_is_added_last():
    w = np.array([[2048], [1]], F16)
    m = graph(
        [helper.make_node("MatMul", ["x", "w"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["y"], doc_string="tf:BiasAdd")],
        [("x", [1, 2])],
        ["y"],
        [("w", w), ("b", np.array([1], np.float16))],
    )
    feeds = {"x": np.ones((1, 1, 2), np.float32)}
    # fused: 1 + 2048 = 2049 -> 2048, + 1 -> 2048 ; separate: 2048 + 1 = 2049 -> 2048, + 1 -> 2048 as well
    assert simulate_exact(m, feeds, ["y"], fuse_biasadd=True)["y"][0, 0, 0] == 2048
    w2 = np.array([[1], [2048]], F16)
    m.graph.initializer[0].CopyFrom(numpy_helper.from_array(w2, "w"))
    # fused: b=1 then +1 = 2, + 2048 = 2050 ; separate: 1 + 2048 = 2049 -> 2048, + 1 -> 2048
    assert simulate_exact(m, feeds, ["y"], fuse_biasadd=True)["y"][0, 0, 0] == 2050
    assert simulate_exact(m, feeds, ["y"], fuse_biasadd=False)["y"][0, 0, 0] == 2048


def test_scalar_first_sub_and_div_are_computed_swapped_and_named():
    m = graph(
        [
            helper.make_node("Sub", ["one", "x"], ["r"], name="gate/sub", doc_string="tf:Sub"),
            helper.make_node("Div", ["two", "x"], ["q"], name="gate/div", doc_string="tf:RealDiv"),
            helper.make_node("Sub", ["vec", "x"], ["v"], name="vec/sub", doc_string="tf:Sub"),
        ],
        [("x", [1, 2])],
        ["r", "q", "v"],
        [("one", np.array(1.0, np.float32)), ("two", np.array([2.0], np.float32)), ("vec", np.array([1.0, 1.0], np.float32))],
    )
    run = run_exact(m, {"x": np.array([[[0.25, 4.0]]], np.float32)}, ["r", "q", "v"])
    np.testing.assert_array_equal(run.values["r"], [[[-0.75, 3.0]]])  # x - 1, not 1 - x
    np.testing.assert_array_equal(run.values["q"], [[[0.125, 2.0]]])  # x / 2, not 2 / x
    np.testing.assert_array_equal(run.values["v"], [[[0.75, -3.0]]])  # a vector constant keeps its order
    assert [(d.node, d.kind) for d in run.diagnostics] == [("gate/sub", "scalar_first"), ("gate/div", "scalar_first")]
    assert "x - c" in run.diagnostics[0].message


def test_the_first_overflowing_chain_is_named():
    m = graph(
        [helper.make_node("MatMul", ["x", "w"], ["a"], name="fc1"), helper.make_node("MatMul", ["a", "w2"], ["y"], name="fc2")],
        [("x", [1, 64])],
        ["y"],
        [("w", np.full((64, 1), 0.5, np.float16)), ("w2", np.ones((1, 1), np.float16))],
    )
    run = run_exact(m, {"x": np.full((3, 1, 64), 2100, np.float32)}, ["y"])
    assert [(d.node, d.kind) for d in run.diagnostics] == [("fc1", "chain_overflow")]


def test_fp32_outputs_flush_subnormals_and_turn_nan_into_signed_inf():
    bits = np.array([0x0001, 0x8001, 0x0400, 0x7C00, 0x7E00, 0xFE00, 0x3C00, 0x8000], np.uint16)
    out = arith.fp32_output(bits.view(F16))
    assert out.view(np.uint32).tolist() == [0, 0x80000000, 0x38800000, 0x7F800000, 0x7F800000, 0xFF800000, 0x3F800000, 0x80000000]


def test_fp16_outputs_keep_the_raw_bits():
    m = graph([helper.make_node("Mul", ["x", "c"], ["y"])], [("x", [1, 1])], ["y"], [("c", np.array([2.0**-10], np.float16))])
    out = simulate_exact(m, {"x": np.array([[[2.0**-10]]], np.float32)}, ["y"], fp16_outputs=["y"])["y"]
    assert out.dtype == np.float16 and out.view(np.uint16)[0, 0, 0] == 0x0010  # 2^-20, a subnormal kept
    assert simulate_exact(m, {"x": np.array([[[2.0**-10]]], np.float32)}, ["y"])["y"][0, 0, 0] == 0


def test_the_compilers_converter_rounds_ties_away_and_encodes_tiny_values_oddly():
    values = np.array([1 + 2**-11, -(1 + 2**-11), 3.5e-5, 2**-16, 65519, 65536, np.inf], np.float32)
    assert compiler_fp16(values).view(np.uint16).tolist() == [0x3C01, 0xBC01, 0x0096, 0, 0x7BFF, 0x7FFF, 0x7FFF]
    assert np.float32(1 + 2**-11).astype(F16).view(np.uint16) == 0x3C00  # IEEE: to even


def test_ln_table_is_coarse_near_one_and_exp_saturates():
    assert float(tables.ln(np.array([1 - 2**-11], F16))[0]) == -(2.0**-10)  # ln(0.99951) = -0.000977
    assert tables.ln(np.array([0.0, -0.0], F16)).tolist() == [-np.inf, -np.inf]
    assert np.isnan(tables.ln(np.array([-1.0], F16))[0])
    x = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(F16)
    positive = x[np.isfinite(x) & (x > 0)]
    error = np.abs(tables.ln(positive).astype(np.float64) - np.log(positive.astype(np.float64)))
    assert round(float(error.max()), 4) == 0.0086  # "ln has absolute error <= 0.0086"
    assert tables.exp(np.array([11.1, 20.0, np.inf], F16)).tolist() == [65504, 65504, np.inf]


def test_conv_adds_taps_row_major_each_tap_its_32_channel_blocks():
    # one output pixel, 1x2 taps, 33 input channels: chains (tap0, ch0-31), (tap0, ch32), (tap1, ch0-31), (tap1, ch32)
    x = np.ones((1, 1, 2, 33), F16)
    w = np.zeros((1, 2, 33, 1), F16)
    w[0, 0, 0, 0] = 2048
    w[0, 0, 1:32, 0] = 1  # stagnates: tap 0 block 0 = 2048
    w[0, 0, 32, 0] = 1  # tap 0 block 1 = 1: 2048 + 1 -> 2048
    w[0, 1, :32, 0] = 1  # tap 1 block 0 = 32 -> 2080
    assert arith.conv2d(x, w, (1, 1), (0, 0, 0, 0))[0, 0, 0, 0] == 2080


def test_depthwise_bias_comes_first_and_padding_taps_add_nothing():
    m = graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], group=2),
            helper.make_node("Add", ["c", "b"], ["y"], doc_string="tf:BiasAdd"),
        ],
        [("x", [1, 2, 1, 2])],
        ["y"],
        [("w", np.array([[[[1, 1]]], [[[1, 1]]]], np.float16)), ("b", np.array([2048, 0], np.float16))],
    )
    out = simulate_exact(m, {"x": np.array([[[[[1, 1]], [[3, 4]]]]], np.float32)}, ["y"])["y"]
    np.testing.assert_array_equal(out[0, 0, :, 0, 0], [2048, 7])  # 2048 + 1 + 1 stays 2048 (bias last: 2 + 2048 = 2050)


def test_mean_is_a_chain_and_a_real_division():
    x = np.array([[2048, 1, 1, 1]], F16)
    assert arith.reduce_mean(x, (1,), F16(4))[0, 0] == 512  # 2048 + 1 + 1 + 1 stays 2048
    mean = arith.reduce_mean(np.array([[1, 2, 2]], F16), (1,), F16(3))[0, 0]
    assert mean == F16(1.667) and arith.mul(F16(5), arith.div(F16(1), F16(3))) == F16(1.666)  # s / 3, not s * fp16(1/3)


def test_max_pool_keeps_a_nan_only_in_the_running_maximum():
    x = np.array([np.nan, 1.0, 2.0, 0.5], F16).reshape(1, 2, 2, 1)
    assert arith.max_pool(x, (2, 2), (2, 2))[0, 0, 0, 0] == 2  # max(x, m) = x if x > m else m drops the NaN


def test_data_movement_is_exact_and_follows_onnx():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1, 4, 6)).astype(np.float16)
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    m = graph(
        [
            helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
            helper.make_node("Reshape", ["t", "shape"], ["r"]),
            helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["s"]),
            helper.make_node("Split", ["x", "sizes"], ["a", "b"], axis=1),
            helper.make_node("Concat", ["b", "a", "c"], ["cat"], axis=1),
            helper.make_node("Pad", ["x", "pads"], ["p"]),
            helper.make_node("Unsqueeze", ["x", "ax0"], ["u"]),
            helper.make_node("Squeeze", ["u", "ax0"], ["q"]),
            helper.make_node("Flatten", ["x"], ["f"], axis=1),
            helper.make_node("Gather", ["x", "idx"], ["g"], axis=2),
        ],
        [("x", [1, 4, 6])],
        ["r", "s", "cat", "p", "q", "f", "g"],
        [
            ("shape", i64(1, -1)),
            ("starts", i64(1, -1)),
            ("ends", i64(3, -7)),
            ("axes", i64(1, 2)),
            ("steps", i64(1, -2)),
            ("sizes", i64(1, 3)),
            ("c", np.ones((1, 2, 6), np.float32)),
            ("pads", i64(0, 1, 0, 0, 0, 2)),
            ("ax0", i64(0)),
            ("idx", i64(5, 0)),
        ],
    )
    v = run_exact(m, {"x": x}, ["r", "s", "cat", "p", "q", "f", "g"]).values
    np.testing.assert_array_equal(v["r"], np.transpose(x, (0, 1, 3, 2)).reshape(3, 1, 24))
    np.testing.assert_array_equal(v["s"], x[:, :, 1:3, ::-2])
    np.testing.assert_array_equal(v["cat"], np.concatenate([x[:, :, 1:], x[:, :, :1], np.ones((3, 1, 2, 6), np.float16)], axis=2))
    np.testing.assert_array_equal(v["p"], np.pad(x, ((0, 0), (0, 0), (1, 0), (0, 2))))
    np.testing.assert_array_equal(v["q"], x)
    np.testing.assert_array_equal(v["f"], x.reshape(3, 1, 24))
    np.testing.assert_array_equal(v["g"], x[:, :, :, [5, 0]])


def test_gemm_and_conv_biases_are_separate_adds_unless_fuse_biasadd():
    w = np.array([[1.0], [2048.0]], np.float16)  # x = [1, 1]: the chain 0 + 1 + 2048 = 2049 -> 2048
    gemm = graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
        [("x", [1, 2])],
        ["y"],
        [("w", w.T), ("b", np.array([1.0], np.float16))],
    )
    feeds = {"x": np.ones((1, 1, 2), np.float32)}
    assert simulate_exact(gemm, feeds, ["y"])["y"][0, 0, 0] == 2048  # 2048 + 1 -> 2048 (ties to even)
    assert simulate_exact(gemm, feeds, ["y"], fuse_biasadd=True)["y"][0, 0, 0] == 2050  # 1 + 1 = 2, + 2048
    conv = graph(
        [helper.make_node("Conv", ["x", "k", "b"], ["y"])],
        [("x", [1, 2, 1])],
        ["y"],
        [("k", w.reshape(1, 2, 1)), ("b", np.array([1.0], np.float16))],
    )
    assert simulate_exact(conv, {"x": np.ones((1, 1, 2, 1), np.float32)}, ["y"])["y"].ravel().tolist() == [2048]
    assert simulate_exact(conv, {"x": np.ones((1, 1, 2, 1), np.float32)}, ["y"], fuse_biasadd=True)["y"].ravel().tolist() == [
        2050
    ]


def test_reduce_mean_and_average_pool_on_onnx_graphs():
    x = np.array([2048, 1, 1, 1, 1, 1, 5, 6], np.float32).reshape(1, 1, 1, 2, 4)
    m = graph(
        [
            helper.make_node("ReduceMean", ["x"], ["mean"], axes=[-1], keepdims=0),
            helper.make_node("AveragePool", ["x"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        ],
        [("x", [1, 1, 2, 4])],
        ["mean", "pool"],
    )
    m.opset_import[0].version = 13
    v = simulate_exact(m, {"x": x}, ["mean", "pool"])
    assert v["mean"].shape == (1, 1, 1, 2) and v["mean"].ravel().tolist() == [512, 3.25]  # 2048 + 1 + 1 + 1 stays 2048
    assert v["pool"].ravel().tolist() == [512, 3.25]  # windows (2048, 1, 1, 1) and (1, 1, 5, 6), row-major chains


def test_an_op_the_npu_does_not_run_is_a_model_error_naming_the_node():
    m = graph([helper.make_node("Softmax", ["x"], ["y"], name="head/softmax")], [("x", [1, 4])], ["y"])
    with pytest.raises(ModelError, match="head/softmax.*Softmax is not an op the GRUS NPU runs"):
        simulate_exact(m, {"x": np.zeros((1, 1, 4), np.float32)}, ["y"])


def test_an_op_the_npu_does_not_run_is_refused_before_anything_runs():
    """Refused up front, not at its turn after seconds of arithmetic: here the data is missing too, and
    the unknown op, two nodes on, is what the refusal names."""
    m = graph(
        [helper.make_node("Relu", ["x"], ["r"], name="first"), helper.make_node("Softmax", ["r"], ["y"], name="head/softmax")],
        [("x", [1, 4])],
        ["y"],
    )
    with pytest.raises(ModelError, match="head/softmax.*Softmax is not an op the GRUS NPU runs"):
        simulate_exact(m, {}, ["y"])


def _ulp_classes(got: np.ndarray, exact: np.ndarray) -> tuple[int, int, int, int]:
    """(0 ulp, 1 ulp, more, max ulp) of fp32 outputs against the correctly rounded fp16 value with the
    same output rule, over finite outputs (NPU_ARITHMETIC.md section 5)."""
    g = arith.fp32_output(got)
    with np.errstate(all="ignore"):
        w = arith.fp32_output(exact.astype(np.float16))
    finite = np.isfinite(g) & np.isfinite(w)

    def ordered(v: np.ndarray) -> np.ndarray:
        b = v[finite].astype(np.float16).view(np.uint16).astype(np.int64)
        return np.where(b & 0x8000, -(b & 0x7FFF), b)

    d = np.abs(ordered(g) - ordered(w))
    return int((d == 0).sum()), int((d == 1).sum()), int((d > 1).sum()), int(d.max())


def test_sqrt_and_pow_over_every_fp16_input_err_as_the_c_models_do():
    # section 5's counts for all 65,536 inputs: they go through LN at every input, subnormals included
    from npu_tui.core.sim.npu.interpreter import power, sqrt

    x = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(F16)
    wide = x.astype(np.float64)
    with np.errstate(all="ignore"):
        assert _ulp_classes(sqrt(x), np.sqrt(wide)) == (10010, 10829, 10906, 8)
        assert _ulp_classes(power(x, F16(2.5)), wide**2.5) == (10953, 2817, 8063, 22)


def test_held_weights_are_taken_bit_for_bit_float32_constants_as_the_compiler_converts_them():
    from npu_tui.core.sim.npu.interpreter import with_held_weights

    tiny = np.float32(3.5e-5)  # in [2^-15, 2^-14): the compiler stores 0x0096 = 8.9e-6
    m = graph([helper.make_node("Mul", ["x", "w"], ["y"])], [("x", [1, 1])], ["y"], [("w", np.array([tiny], np.float32))])
    one = {"x": np.ones((1, 1, 1), np.float32)}
    assert simulate_exact(m, one, ["y"], fp16_outputs=["y"])["y"].view(np.uint16).item() == 0x0096
    held = with_held_weights(m, {"w": np.array([tiny]).astype(np.float16)})  # IEEE: the subnormal 0x024b
    assert simulate_exact(held, one, ["y"], fp16_outputs=["y"])["y"].view(np.uint16).item() == 0x024B


def test_a_last_axis_split_gxnpuc_miscompiles_is_refused_a_gate_split_runs():
    def split(shape):
        m = graph(
            [helper.make_node("Split", ["x"], ["a", "b"], axis=-1, name="gates")],
            [("x", shape)],
            ["a", "b"],
        )
        m.opset_import[0].version = 13
        return run_exact(m, {"x": np.zeros((2, *shape), np.float32)}, ["a", "b"]).values

    assert split([1, 6])["a"].shape == (2, 1, 3)  # [1, N]: the LSTM/GRU gate split, compiled right
    with pytest.raises(ModelError, match="gates.*last axis of a \\[1, 4, 6\\] tensor; gxnpuc 1.5.8 miscompiles it"):
        split([1, 4, 6])


def test_inputs_convert_by_ieee_rounding_or_as_the_sdks_test_mnist_does():
    m = graph([helper.make_node("Identity", ["x"], ["y"])], [("x", [1, 3])], ["y"])
    x = np.array([[[3.5e-5, 1 + 2**-11, 70000.0]]], np.float32)
    run = run_exact(m, {"x": x}, ["y"])
    assert [(d.node, d.kind) for d in run.diagnostics] == [("x", "input_overflow")] and "1 values beyond" in run.diagnostics[
        0
    ].message
    ieee = run.values["y"].view(np.uint16).ravel().tolist()
    vendor = simulate_exact(m, {"x": x}, ["y"], fp16_outputs=["y"], vendor_inputs=True)["y"].view(np.uint16).ravel().tolist()
    assert ieee == [0x024B, 0x3C00, 0x7C00] and vendor == [0x0096, 0x3C01, 0x7FFF]  # 3.5e-5 arrives as 8.9e-6


def test_a_dilated_conv_reads_its_taps_spread_out():
    x = np.arange(5, dtype=np.float32).reshape(1, 1, 1, 5)  # one sample, NCW
    m = graph(
        [helper.make_node("Conv", ["x", "k"], ["y"], dilations=[2])],
        [("x", [1, 1, 5])],
        ["y"],
        [("k", np.array([[[1, 10, 100]]], np.float16))],
    )
    out = simulate_exact(m, {"x": x}, ["y"])["y"]
    assert out.ravel().tolist() == [0 + 20 + 400]  # taps at 0, 2, 4


def test_a_chain_step_rounds_every_product_and_sum_of_fp16_values_as_ieee_binary16():
    """The matmul/conv chains run each step in onnxruntime; every fp16 value (subnormals, ±0, inf,
    NaN) times a few multipliers, and added to a few partial sums, gives numpy's IEEE binary16 result
    bit for bit: ties to even, subnormals kept, overflow to inf at 65520."""
    every = np.arange(1 << 16, dtype=np.uint16).view(F16).astype(np.float32)
    xs = np.repeat(every, 8).reshape(-1, 8, 1)  # [R, L=8, 1]: one chain per row, eight terms
    ws = np.array([1.0, -0.5, 3.0, 2.0**-10, -1.0, 0.75, 2049.0, -0.0], F16).astype(np.float32).reshape(1, 8, 1)
    got = arith._chains(xs.transpose(1, 2, 0), ws, None)[0].astype(F16)  # terms [L, M, R] -> [N, R]
    p = np.zeros(xs.shape[0], np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(8):
            product = (xs[:, k, 0] * ws[0, k, 0]).astype(F16).astype(np.float32)
            p = (p + product).astype(F16).astype(np.float32)
    want = p.astype(F16)
    same = (got.view(np.uint16) == want.view(np.uint16)) | (np.isnan(got) & np.isnan(want))
    assert same.all(), f"{int((~same).sum())} of {same.size} chains differ, first at input {np.flatnonzero(~same)[0]}"
    assert arith._chains(np.full((2, 1, 1), 65504, np.float32), np.full((1, 2, 1), 0.5, np.float32), None)[0, 0] == 65504
    assert np.isinf(arith._chains(np.array([65504, 16], np.float32).reshape(2, 1, 1), np.ones((1, 2, 1), np.float32), None)[0, 0])


EVERY_FP16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(F16)


def same_bits(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Bit for bit, a NaN matching any NaN of the same sign (payloads are the hardware's)."""
    got16, want16 = got.view(np.uint16), want.view(np.uint16)
    nan = np.isnan(got) & np.isnan(want) & ((got16 >> 15) == (want16 >> 15))
    return (got16 == want16) | nan


@pytest.mark.parametrize("name, op", [("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("div", np.divide)])
def test_every_fp16_value_combined_with_a_few_others_rounds_as_ieee_binary16(name, op):
    """add/sub/mul/div (onnxruntime kernels) against numpy's float32 operation rounded by numpy: every
    fp16 value (subnormals, ±0, ±inf, NaN) against operands broadcast along the last axis."""
    others = np.array([1.0, -0.5, 3.0, 2.0**-14, -(2.0**-24), 65504, -0.0, np.inf, 2049, 0.0], F16)
    a = EVERY_FP16.reshape(-1, 1)
    got = getattr(arith, name)(a, others)
    with np.errstate(all="ignore"):
        want = op(a.astype(np.float32), others.astype(np.float32)).astype(F16)
    assert got.dtype == F16 and got.shape == want.shape
    same = same_bits(got, want)
    assert same.all(), f"{int((~same).sum())} differ, e.g. {a[~same.any(axis=1)][:3].ravel()}"


def test_rounding_to_fp16_keeps_subnormals_ties_to_even_and_overflows_at_65520():
    wide = np.array([65519.996, 65520, -65520, 2.0**-25, 3 * 2.0**-25, 2.0**-24 * 1.5, 1 + 2.0**-11, -np.inf], np.float32)
    assert arith.h(wide).view(np.uint16).tolist() == [0x7BFF, 0x7C00, 0xFC00, 0x0000, 0x0002, 0x0002, 0x3C00, 0xFC00]
    assert np.isnan(arith.h(np.array([np.nan], np.float32))).all()
    rng = np.random.default_rng(3)
    values = (rng.standard_normal(200_000) * 10.0 ** rng.uniform(-8, 5, 200_000)).astype(np.float32)
    with np.errstate(over="ignore"):
        want = values.astype(F16)
    assert same_bits(arith.h(values), want).all()


def test_relu_and_relu6_read_from_the_bits_give_the_rule_for_every_fp16_value():
    x = EVERY_FP16.reshape(1, 1, -1)
    wide = x.astype(np.float32)
    with np.errstate(invalid="ignore"):
        plain = np.where(wide > 0, wide, 0).astype(F16)
        capped = np.where(wide > 0, np.where(wide > 6, 6, wide), 0).astype(F16)
    for op, want in (("Relu", plain), ("Clip", capped)):
        extra = [("lo", np.array(0, np.float32)), ("hi", np.array(6, np.float32))] if op == "Clip" else []
        node = helper.make_node(op, ["x", *(n for n, _ in extra)], ["y"])
        got = run_exact(graph([node], [("x", [1, 1 << 16])], ["y"], extra), {"x": x}, ["y"]).values["y"]
        assert got.view(np.uint16).tolist() == want.view(np.uint16).tolist(), op  # NaN and -0 give +0


def test_several_chains_are_added_in_order_after_each_runs_its_terms():
    """Three 2-term chains per row, then acc = P0, acc = h(P1 + acc), acc = h(P2 + acc): the order shows
    where a sum stagnates (2048 + 1 + 1 stays 2048; 1 + 1 + 2048 is 2050)."""
    terms = np.array([[2048, 1, 1], [0, 0, 0]], np.float32)[:, :, None]  # [L=2, M=3, R=1]: x_k of chain m
    ws = np.ones((3, 2, 1), np.float32)
    assert arith._chains(terms, ws, None)[0, 0] == 2048
    assert arith._chains(terms[:, ::-1].copy(), ws, None)[0, 0] == 2050
    assert arith._chains(terms, ws, np.array([2.0], np.float32))[0, 0] == 2052  # the start begins chain 0


def conv_by_hand(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """dec_conv2d's order with numpy's own rounding: taps row-major, 32-channel blocks, each a chain."""
    h = lambda v: v.astype(F16).astype(np.float32)  # noqa: E731
    xp = np.pad(x.astype(np.float32), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw, cin, _ = w.shape
    out_h, out_w = (xp.shape[1] - kh) // stride + 1, (xp.shape[2] - kw) // stride + 1
    acc = None
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(kh):
            for j in range(kw):
                view = xp[:, i : i + stride * (out_h - 1) + 1 : stride, j : j + stride * (out_w - 1) + 1 : stride]
                for b in range(0, cin, 32):
                    p = np.zeros((*view.shape[:3], w.shape[3]), np.float32)
                    for c in range(b, min(b + 32, cin)):
                        p = h(p + h(view[..., c, None] * w[i, j, c].astype(np.float32)))
                    acc = p if acc is None else h(p + acc)
    return acc.astype(F16)


@pytest.mark.parametrize("stride", [1, 2])
def test_a_conv_gives_the_same_words_however_its_rows_are_cut_into_calls(stride, monkeypatch):
    """40 input channels (a full and a partial block), padding, a stride: the chains by hand, and the
    same words with calls of whole samples (the default) or of a few output rows of one sample."""
    rng = np.random.default_rng(stride)
    x = (rng.standard_normal((3, 7, 6, 40)) * 4).astype(F16)
    w = rng.standard_normal((3, 3, 40, 5)).astype(F16)
    want = conv_by_hand(x, w, stride, 1)
    whole = arith.conv2d(x, w, (stride, stride), (1, 1, 1, 1))
    monkeypatch.setattr(arith, "CHUNK_ELEMENTS", 3 * 18 * 5)  # 3 rows per call: less than one output row
    cut = arith.conv2d(x, w, (stride, stride), (1, 1, 1, 1))
    assert whole.view(np.uint16).tolist() == want.view(np.uint16).tolist() == cut.view(np.uint16).tolist()


@pytest.mark.parametrize("per_call", [256, 3, 1])
def test_a_long_dot_product_continues_its_running_sum_across_calls(per_call, monkeypatch):
    """K = 300: ten 32-row blocks (the last of 12), their partials added in order, by hand; the same
    words when a call runs only 3 or 1 of the chains and the next continues the sum."""
    monkeypatch.setattr(arith, "CALL_CHAINS", per_call)
    rng = np.random.default_rng(per_call)
    x = (rng.standard_normal((4, 300)) * 8).astype(F16)
    w = rng.standard_normal((300, 3)).astype(F16)
    h = lambda v: v.astype(F16).astype(np.float32)  # noqa: E731
    acc = None
    with np.errstate(over="ignore"):
        for b in range(0, 300, 32):
            p = np.zeros((4, 3), np.float32)
            for k in range(b, min(b + 32, 300)):
                p = h(p + h(x[:, k, None].astype(np.float32) * w[k].astype(np.float32)))
            acc = p if acc is None else h(p + acc)
    assert arith.matmul(x, w).view(np.uint16).tolist() == acc.astype(F16).view(np.uint16).tolist()
