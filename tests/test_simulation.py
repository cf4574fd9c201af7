"""FUSE_BN against a direct computation, and the NPU simulation model of SPEC section 6."""

from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from modelkit import conv_bn_fc, make_model, tensor, value
from onnx import helper, numpy_helper
from test_inventory import lstm_from_constants

from npu_tui.core.model.inventory import build_inventory
from npu_tui.core.quant.compiler import Compiler
from npu_tui.core.quant.fusion import fuse_bn
from npu_tui.core.quant.settings import Settings
from npu_tui.core.sim.simulation import build_simulation

ALL_ON = Settings(compress=True, conv2d_compress=True)


def run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_fuse_bn_matches_conv_then_batchnorm():
    rng = np.random.default_rng(1)
    model = conv_bn_fc(rng)
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    w, b = fuse_bn(
        arrays["conv1.weight"],
        arrays["conv1.bias"],
        arrays["bn1.scale"],
        arrays["bn1.bias"],
        arrays["bn1.mean"],
        arrays["bn1.var"],
        1e-5,
    )
    # the formula, one channel at a time
    for k in range(4):
        factor = arrays["bn1.scale"][k] / np.sqrt(arrays["bn1.var"][k] + 1e-5)
        np.testing.assert_allclose(w[k], arrays["conv1.weight"][k] * factor, rtol=1e-6)
        np.testing.assert_allclose(
            b[k], (arrays["conv1.bias"][k] - arrays["bn1.mean"][k]) * factor + arrays["bn1.bias"][k], rtol=1e-5
        )
    # and what onnxruntime computes with the BN node
    x = rng.normal(size=(1, 3, 6)).astype(np.float32)
    conv_bn = make_model(list(model.graph.node[:2]), [value("x", [1, 3, 6])], [value("b1", None)], model.graph.initializer[:6])
    fused = make_model(
        [helper.make_node("Conv", ["x", "w", "b"], ["b1"], pads=[1, 1])],
        [value("x", [1, 3, 6])],
        [value("b1", None)],
        [tensor("w", w), tensor("b", b)],
    )
    np.testing.assert_allclose(run(fused, {"x": x})[0], run(conv_bn, {"x": x})[0], rtol=1e-4, atol=1e-4)


def test_fused_weight_without_conv_bias_gets_a_new_bias_name():
    rng = np.random.default_rng(2)
    model = conv_bn_fc(rng)
    conv = model.graph.node[0]
    del conv.input[2]
    compiler = Compiler(build_inventory(model))
    compilation = compiler.compile(Settings(fuse_bn=True))
    sim = build_simulation(compiler, compilation).to_proto()
    conv = sim.graph.node[0]
    assert conv.op_type == "Conv" and conv.input[2] == "conv1.fused_bias"
    assert "BatchNormalization" not in [n.op_type for n in sim.graph.node]


def test_simulation_keeps_names_and_holds_the_npu_values():
    rng = np.random.default_rng(3)
    model = conv_bn_fc(rng)
    compiler = Compiler(build_inventory(model))
    compilation = compiler.compile(replace(ALL_ON, fuse_bn=True))
    sim = build_simulation(compiler, compilation).to_proto()
    inits = {t.name: numpy_helper.to_array(t) for t in sim.graph.initializer}
    assert set(inits) == {"conv1.weight", "conv1.bias", "fc.weight"}
    for name in ("conv1.weight", "fc.weight"):
        np.testing.assert_array_equal(inits[name], compilation.results[name].simulated.astype(np.float32))
    np.testing.assert_array_equal(inits["conv1.bias"], compilation.results["conv1.weight"].fused_bias.astype(np.float32))
    conv = next(n for n in sim.graph.node if n.op_type == "Conv")
    assert conv.output[0] == "b1__npu_f32"
    outputs = run(sim, {"x": rng.normal(size=(1, 3, 6)).astype(np.float32)})
    assert outputs[0].shape == (1, 5)
    np.testing.assert_array_equal(outputs[0], outputs[0].astype(np.float16).astype(np.float32))


def test_fp16_activation_rounding_can_be_turned_off():
    rng = np.random.default_rng(4)
    model = conv_bn_fc(rng)
    compiler = Compiler(build_inventory(onnx.ModelProto.FromString(model.SerializeToString())))
    compilation = compiler.compile(Settings())
    rounded = build_simulation(compiler, compilation, fp16_activations=True).to_proto()
    plain = build_simulation(compiler, compilation, fp16_activations=False).to_proto()
    assert [n.op_type for n in plain.graph.node] == ["Conv", "BatchNormalization", "Relu", "Flatten", "MatMul"]
    # Conv, BatchNormalization and MatMul are rounded; Relu and Flatten only move fp16 values
    assert sum(n.op_type == "Cast" for n in rounded.graph.node) == 2 * 3
    # with nothing quantized and fp32 activations, the only difference from float is fp16 weight storage
    x = rng.normal(size=(1, 3, 6)).astype(np.float32)
    np.testing.assert_allclose(run(plain, {"x": x})[0], run(model, {"x": x})[0], rtol=2e-3, atol=2e-3)


def test_folded_weights_become_constants_named_by_the_tensor_feeding_the_lstm():
    model, _, _ = lstm_from_constants()
    compiler = Compiler(build_inventory(model))
    compilation = compiler.compile(ALL_ON)
    sim = build_simulation(compiler, compilation).to_proto()
    names = {t.name for t in sim.graph.initializer}
    assert {"lstm.W", "lstm.R"} <= names and "r.all" not in names
    assert [n.op_type for n in sim.graph.node if n.op_type != "Cast"] == ["LSTM"]
    lstm_w = next(t for t in sim.graph.initializer if t.name == "lstm.W")
    np.testing.assert_array_equal(numpy_helper.to_array(lstm_w), compilation.results["lstm.W"].simulated.astype(np.float32))
    assert run(sim, {"x": np.ones((2, 1, 3), np.float32)})[0].shape == (2, 1, 1, 4)


def test_streamed_save_equals_the_in_memory_model(tmp_path):
    rng = np.random.default_rng(5)
    model = conv_bn_fc(rng)
    compiler = Compiler(build_inventory(model))
    sim = build_simulation(compiler, compiler.compile(ALL_ON))
    sim.save(tmp_path / "sim.onnx")
    saved = onnx.load(str(tmp_path / "sim.onnx"))
    onnx.checker.check_model(saved)
    expected = sim.to_proto()
    assert saved.graph.node == expected.graph.node
    for a, b in zip(saved.graph.initializer, expected.graph.initializer):
        assert a.name == b.name
        np.testing.assert_array_equal(numpy_helper.to_array(a), numpy_helper.to_array(b))


def test_a_weight_larger_than_one_write_is_saved_whole(tmp_path):
    """The writer converts a chunk at a time: a weight spanning several chunks comes back value for value."""
    w = np.random.default_rng(6).normal(0, 0.1, (600, 500)).astype(np.float32)
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        [value("x", [1, 600])],
        [value("y", [1, 500])],
        [tensor("w", w)],
    )
    compiler = Compiler(build_inventory(model))
    sim = build_simulation(compiler, compiler.compile(ALL_ON))
    sim.save(tmp_path / "sim.onnx")
    saved = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "sim.onnx")).graph.initializer}
    np.testing.assert_array_equal(saved["w"], sim.arrays["w"].astype(np.float32))
    assert saved["w"].dtype == np.float32


def test_nan_in_a_weight_to_quantize_is_an_error_naming_it():
    from npu_tui.core.errors import ModelError

    model = conv_bn_fc(np.random.default_rng(6))
    fc = next(t for t in model.graph.initializer if t.name == "fc.weight")
    values = numpy_helper.to_array(fc).copy()
    values[0, 0] = np.nan
    fc.CopyFrom(tensor("fc.weight", values))
    compiler = Compiler(build_inventory(model))
    with pytest.raises(ModelError, match="'fc.weight' holds NaN or Inf"):
        compiler.compile(ALL_ON)
    compiler.compile(Settings(conv2d_compress=True))


def _round_everything(model: onnx.ModelProto) -> onnx.ModelProto:
    """The plain reading of SPEC section 6: a Cast pair after every node, and the input rounded too."""
    rounded = onnx.ModelProto()
    rounded.CopyFrom(model)
    nodes = []
    for node in rounded.graph.node:
        nodes.append(node)
        out = node.output[0]
        node.output[0] = out + "_raw"
        nodes.append(helper.make_node("Cast", [out + "_raw"], [out + "_h"], to=onnx.TensorProto.FLOAT16))
        nodes.append(helper.make_node("Cast", [out + "_h"], [out], to=onnx.TensorProto.FLOAT))
    del rounded.graph.node[:]
    rounded.graph.node.extend(nodes)
    return rounded


def test_skipping_rounding_after_value_preserving_ops_changes_no_value():
    rng = np.random.default_rng(9)
    w = rng.normal(size=(4, 3, 3)).astype(np.float32)
    m = rng.normal(size=(8, 5)).astype(np.float32)
    nodes = [
        helper.make_node("Reshape", ["x", "shape_in"], ["xr"], name="reshape_in"),  # reads the unrounded input
        helper.make_node("Conv", ["xr", "w"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2], strides=[2]),
        helper.make_node("Transpose", ["p"], ["t"], name="transpose", perm=[0, 2, 1]),
        helper.make_node("Reshape", ["t", "shape"], ["f"], name="flatten"),
        helper.make_node("Clip", ["f", "lo", "hi"], ["k"], name="clip"),
        helper.make_node("MatMul", ["k", "m"], ["y"], name="fc"),
    ]
    inits = [
        tensor("w", w),
        tensor("m", m),
        tensor("shape_in", np.array([1, 3, 6], np.int64)),
        tensor("shape", np.array([1, 8], np.int64)),
        tensor("lo", np.array(-0.3, np.float32)),
        tensor("hi", np.array(0.7, np.float32)),
    ]
    model = make_model(nodes, [value("x", [1, 18])], [value("y", [1, 5])], inits)
    compiler = Compiler(build_inventory(onnx.ModelProto.FromString(model.SerializeToString())))
    sim = build_simulation(compiler, compiler.compile(Settings()), fp16_activations=True).to_proto()
    rounded_ops = [n.name for n in sim.graph.node if n.op_type != "Cast" and n.output[0].endswith("__npu_f32")]
    assert rounded_ops == ["reshape_in", "conv", "fc"]
    reference = _round_everything(build_simulation(compiler, compiler.compile(Settings()), fp16_activations=False).to_proto())
    for _ in range(20):
        x = rng.normal(size=(1, 18)).astype(np.float32)
        np.testing.assert_array_equal(run(sim, {"x": x})[0], run(reference, {"x": x})[0])
