"""Which tensors are weights (SPEC section 3), on small models built here."""

import numpy as np
import onnx
import pytest
from modelkit import make_model, tensor, value
from onnx import TensorProto, helper

from npu_tui.core.errors import ModelError
from npu_tui.core.model.inventory import build_inventory
from npu_tui.core.model.onnx_file import load_model

rng = np.random.default_rng(7)


def randn(*shape):
    return rng.normal(0, 0.1, shape).astype(np.float32)


def weights(model):
    return {w.name: w for w in build_inventory(model).weights}


def test_matmul_and_gemm_b_are_fc_weights_and_biases_are_not():
    model = make_model(
        [
            helper.make_node("Gemm", ["x", "g.w", "g.b"], ["h"], name="gemm", transB=1),
            helper.make_node("MatMul", ["h", "m.w"], ["y"], name="mm"),
        ],
        [value("x", [2, 3])],
        [value("y", [2, 5])],
        [tensor("g.w", randn(4, 3)), tensor("g.b", randn(4)), tensor("m.w", randn(4, 5))],
    )
    found = weights(model)
    assert list(found) == ["g.w", "m.w"]
    assert found["g.w"].kind == "fc" and found["g.w"].nodes == ["gemm"] and found["g.w"].op_types == ["Gemm"]
    assert found["m.w"].shape == (4, 5) and found["m.w"].size == 20


def test_matmul_of_two_activations_has_no_weight():
    model = make_model(
        [
            helper.make_node("Relu", ["x"], ["a"]),
            helper.make_node("MatMul", ["x", "a"], ["y"], name="mm"),
        ],
        [value("x", [3, 3])],
        [value("y", [3, 3])],
    )
    assert weights(model) == {}


def test_conv_of_any_rank_and_conv_transpose_are_conv_weights():
    model = make_model(
        [
            helper.make_node("Conv", ["x", "c1.w"], ["a"], name="conv1d"),
            helper.make_node("ConvTranspose", ["a", "ct.w"], ["b"], name="deconv"),
            helper.make_node("Unsqueeze", ["b", "axes"], ["c"]),
            helper.make_node("Conv", ["c", "c2.w"], ["y"], name="conv2d"),
        ],
        [value("x", [1, 2, 8])],
        [value("y", None)],
        [
            tensor("c1.w", randn(4, 2, 3)),
            tensor("ct.w", randn(4, 2, 3)),
            tensor("axes", np.array([2])),
            tensor("c2.w", randn(3, 2, 1, 1)),
        ],
    )
    found = weights(model)
    assert {n: w.kind for n, w in found.items()} == {"c1.w": "conv", "ct.w": "conv", "c2.w": "conv"}
    assert found["c2.w"].shape == (3, 2, 1, 1)


def test_weight_reached_through_pass_through_ops_keeps_the_constant_name():
    raw = randn(5, 2, 2).astype(np.float16)
    model = make_model(
        [
            helper.make_node("Cast", ["w.raw"], ["w.f32"], to=TensorProto.FLOAT),
            helper.make_node("Identity", ["w.f32"], ["w.id"]),
            helper.make_node("Reshape", ["w.id", "shape"], ["w.flat"]),
            helper.make_node("Unsqueeze", ["w.flat", "axes"], ["w.u"]),
            helper.make_node("Squeeze", ["w.u", "axes"], ["w.s"]),
            helper.make_node("Transpose", ["w.s"], ["w.t"], perm=[1, 0]),
            helper.make_node("MatMul", ["x", "w.t"], ["y"], name="fc"),
        ],
        [value("x", [1, 4])],
        [value("y", [1, 5])],
        [tensor("w.raw", raw), tensor("shape", np.array([5, 4])), tensor("axes", np.array([0]))],
    )
    inventory = build_inventory(model)
    assert [w.name for w in inventory.weights] == ["w.raw"]
    assert inventory.weights[0].origin == "initializer"
    np.testing.assert_array_equal(inventory.arrays["w.raw"], raw.astype(np.float32))


def test_constant_node_value_counts_like_an_initializer():
    w = randn(3, 2)
    model = make_model(
        [
            helper.make_node("Constant", [], ["const.w"], value=tensor("v", w)),
            helper.make_node("MatMul", ["x", "const.w"], ["y"], name="fc"),
        ],
        [value("x", [1, 3])],
        [value("y", [1, 2])],
    )
    inventory = build_inventory(model)
    assert [(w.name, w.origin) for w in inventory.weights] == [("const.w", "constant")]
    np.testing.assert_array_equal(inventory.arrays["const.w"], w)


def test_weights_inside_if_subgraphs():
    then_graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "outer.w"], ["t"], name="then_fc")], "then", [], [value("t", [1, 2])]
    )
    else_graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "inner.w"], ["e"], name="else_fc")],
        "else",
        [],
        [value("e", [1, 2])],
        [tensor("inner.w", randn(3, 2))],
    )
    model = make_model(
        [helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_graph, else_branch=else_graph)],
        [value("x", [1, 3]), value("cond", [], TensorProto.BOOL)],
        [value("y", [1, 2])],
        [tensor("outer.w", randn(3, 2))],
    )
    found = weights(model)
    assert set(found) == {"outer.w", "inner.w"}
    assert found["inner.w"].nodes == ["else_fc"] and found["inner.w"].scope.startswith("branch/")


def lstm_from_constants():
    """An exported-LSTM pattern: W concatenated from two Constants, R sliced from one."""
    w_parts = [randn(1, 8, 3), randn(1, 8, 3)]
    r_all = randn(1, 20, 4)
    nodes = [
        helper.make_node("Constant", [], ["w.a"], value=tensor("a", w_parts[0])),
        helper.make_node("Constant", [], ["w.b"], value=tensor("b", w_parts[1])),
        helper.make_node("Concat", ["w.a", "w.b"], ["lstm.W"], axis=1),
        helper.make_node("Slice", ["r.all", "starts", "ends", "axes"], ["lstm.R"]),
        helper.make_node("LSTM", ["x", "lstm.W", "lstm.R"], ["y"], name="lstm", hidden_size=4),
    ]
    inits = [
        tensor("r.all", r_all),
        tensor("starts", np.array([0])),
        tensor("ends", np.array([16])),
        tensor("axes", np.array([1])),
    ]
    model = make_model(nodes, [value("x", [2, 1, 3])], [value("y", None)], inits)
    return model, np.concatenate(w_parts, axis=1), r_all[:, :16]


def test_weights_computed_from_constants_are_folded_and_say_where_from():
    model, w, r = lstm_from_constants()
    inventory = build_inventory(model)
    found = {x.name: x for x in inventory.weights}
    assert set(found) == {"lstm.W", "lstm.R"}
    assert found["lstm.W"].origin == "folded" and found["lstm.W"].folded_from == ("w.a", "w.b")
    assert found["lstm.R"].folded_from == ("r.all",)
    assert found["lstm.W"].kind == "fc" and found["lstm.W"].shape == (1, 16, 3)
    np.testing.assert_array_equal(inventory.arrays["lstm.W"], w)
    np.testing.assert_array_equal(inventory.arrays["lstm.R"], r)


def test_a_shared_weight_is_listed_once():
    model = make_model(
        [
            helper.make_node("MatMul", ["x", "shared.w"], ["a"], name="fc1"),
            helper.make_node("MatMul", ["a", "shared.w"], ["y"], name="fc2"),
        ],
        [value("x", [1, 3])],
        [value("y", [1, 3])],
        [tensor("shared.w", randn(3, 3))],
    )
    found = weights(model)
    assert list(found) == ["shared.w"] and found["shared.w"].nodes == ["fc1", "fc2"]


def test_conv_followed_by_batchnorm_is_a_fusion_site(rng_model=None):
    from modelkit import conv_bn_fc

    found = weights(conv_bn_fc(np.random.default_rng(0)))
    assert found["conv1.weight"].bn is not None
    assert found["conv1.weight"].bn.labels == ("conv1", "bn1") and found["conv1.weight"].bn.bias == "conv1.bias"
    assert found["fc.weight"].bn is None


def test_quantized_model_is_refused(tmp_path):
    model = make_model(
        [helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["w"]), helper.make_node("MatMul", ["x", "w"], ["y"])],
        [value("x", [1, 3])],
        [value("y", [1, 3])],
        [tensor("wq", np.zeros((3, 3), np.uint8)), tensor("s", np.float32(0.1)), tensor("z", np.uint8(0))],
    )
    onnx.save(model, str(tmp_path / "q.onnx"))
    with pytest.raises(ModelError, match="already quantized.*DequantizeLinear"):
        load_model(tmp_path / "q.onnx")


def _external_model(tmp_path, location):
    w = randn(64, 4)
    model = make_model(
        [helper.make_node("MatMul", ["x", "big.w"], ["y"], name="fc")],
        [value("x", [1, 64])],
        [value("y", [1, 4])],
        [tensor("big.w", w)],
    )
    onnx.external_data_helper.convert_model_to_external_data(model, location="weights.bin", size_threshold=0)
    onnx.save(model, str(tmp_path / "model.onnx"))
    reloaded = onnx.load(str(tmp_path / "model.onnx"), load_external_data=False)
    for entry in reloaded.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    onnx.save(reloaded, str(tmp_path / "model.onnx"))
    return w


def test_external_data_beside_the_model_is_read(tmp_path):
    w = _external_model(tmp_path, "weights.bin")
    inventory = build_inventory(load_model(tmp_path / "model.onnx"))
    np.testing.assert_array_equal(inventory.arrays["big.w"], w)


def test_external_data_outside_the_model_folder_is_refused(tmp_path):
    (tmp_path / "inner").mkdir()
    _external_model(tmp_path / "inner", "../weights.bin")
    (tmp_path / "weights.bin").write_bytes(b"\0" * 1024)
    with pytest.raises(ModelError, match="outside the model's folder"):
        load_model(tmp_path / "inner" / "model.onnx")
