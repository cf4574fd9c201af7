"""The check of a written --sim model: npu-tui's own bug is an internal error, the user's model's a warning,
and the check judges the graph with its weights as inputs so a 100 MB simulation is not parsed twice."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from modelkit import make_model, tensor, value
from onnx import helper

from npu_tui.core.errors import InternalError
from npu_tui.core.model.inventory import build_inventory
from npu_tui.core.quant.compiler import Compiler
from npu_tui.core.quant.settings import Settings
from npu_tui.core.sim.sim_check import WEIGHT_INPUT_ELEMENTS, check_simulation
from npu_tui.core.sim.simulation import SimModel, build_simulation

ALL_ON = Settings(compress=True, conv2d_compress=True)


def big_and_small(extra_nodes: tuple[onnx.NodeProto, ...] = (), domain: str | None = None) -> onnx.ModelProto:
    """x[1,64] @ big[64,64] @ small[64,2]: one weight at the input threshold, one far below it."""
    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("MatMul", ["x", "big"], ["h"], name="fc1"),
        helper.make_node("MatMul", ["h", "small"], ["y" if not extra_nodes else "y0"], name="fc2"),
        *extra_nodes,
    ]
    model = make_model(
        nodes,
        [value("x", [1, 64])],
        [value("y", [1, 2])],
        [
            tensor("big", rng.normal(0, 0.1, (64, 64)).astype(np.float32)),
            tensor("small", rng.normal(0, 0.1, (64, 2)).astype(np.float32)),
        ],
    )
    if domain:
        model.opset_import.append(helper.make_opsetid(domain, 1))
    return model


def simulation(model: onnx.ModelProto) -> SimModel:
    compiler = Compiler(build_inventory(model))
    return build_simulation(compiler, compiler.compile(ALL_ON))


def test_the_weightless_graph_computes_the_simulation_when_fed_its_weights():
    sim = simulation(big_and_small())
    assert sim.arrays["big"].size == WEIGHT_INPUT_ELEMENTS
    weightless = sim.weights_as_inputs(WEIGHT_INPUT_ELEMENTS)
    assert [i.name for i in weightless.graph.input] == ["x", "big"]
    assert list(weightless.graph.input[1].type.tensor_type.shape.dim[0:2]) == list(
        onnx.helper.make_tensor_value_info("big", onnx.TensorProto.FLOAT, [64, 64]).type.tensor_type.shape.dim
    )
    assert [t.name for t in weightless.graph.initializer] == ["small"]
    x = np.random.default_rng(0).normal(size=(1, 64)).astype(np.float32)
    fed = ort.InferenceSession(weightless.SerializeToString(), providers=["CPUExecutionProvider"])
    whole = ort.InferenceSession(sim.to_proto().SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(
        fed.run(None, {"x": x, "big": sim.arrays["big"].astype(np.float32)})[0], whole.run(None, {"x": x})[0]
    )


def test_a_simulation_only_npu_tui_broke_is_an_internal_error_and_is_removed(tmp_path: Path):
    model = big_and_small()
    original = tmp_path / "model.onnx"
    onnx.save(model, str(original))
    sim = simulation(model)
    sim.model.graph.node[0].op_type = "MatMulThatDoesNotExist"
    written = tmp_path / "sim.onnx"
    sim.save(written)
    with pytest.raises(InternalError, match="refuses the simulation npu-tui built, though it accepts the model"):
        check_simulation(sim, written, original)
    assert not written.exists()


def test_a_model_onnxruntime_refuses_as_given_gives_a_warning_and_keeps_the_file(tmp_path: Path):
    custom = helper.make_node("Unknown", ["y0"], ["y"], name="vendor_op", domain="com.example")
    model = big_and_small((custom,), domain="com.example")
    original = tmp_path / "model.onnx"
    onnx.save(model, str(original))
    sim = simulation(model)
    written = tmp_path / "sim.onnx"
    sim.save(written)
    warnings = check_simulation(sim, written, original)
    assert len(warnings) == 1
    assert warnings[0].startswith(f"--sim {written}: onnxruntime refuses the model as given, and so the simulation: ")
    assert written.exists()


def test_a_simulation_that_passes_as_a_graph_is_not_read_back(tmp_path: Path):
    """The weightless check settles it: the 100 MB file is never parsed again (here it is not even there)."""
    sim = simulation(big_and_small())
    assert check_simulation(sim, tmp_path / "never_written.onnx", tmp_path / "model.onnx") == []


def test_values_that_do_not_fit_their_tensor_are_refused_before_anything_is_written(tmp_path: Path):
    """What the weightless check cannot see, the writer refuses: data of another size than the shape."""
    sim = simulation(big_and_small())
    sim.arrays["big"] = sim.arrays["big"][:32]
    with pytest.raises(InternalError, match=r"'big': 2048 values for an initializer of shape \[64, 64\]"):
        sim.save(tmp_path / "sim.onnx")
    assert not (tmp_path / "sim.onnx").exists()
