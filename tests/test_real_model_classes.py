"""Each class of failure found on the real-model corpus (benchmarks/realmodels.py), rebuilt as a small
model inside the test: exporters' conventions, and what the simulation and the sweep must survive."""

from __future__ import annotations

import threading

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from clirun import npu_tui
from modelkit import BASE_CONFIG, amplifying_matmul, make_model, tensor, value, write_project
from onnx import TensorProto, helper

from npu_tui.core.errors import InternalError, UserError
from npu_tui.core.model.inventory import build_inventory
from npu_tui.core.model.onnx_file import load_model
from npu_tui.core.quant.compiler import Compiler
from npu_tui.core.quant.settings import Settings
from npu_tui.core.sim.analysis import Analysis
from npu_tui.core.sim.eval_data import EvalData, load_npz, model_inputs, random_data
from npu_tui.core.sim.evaluate import Evaluator
from npu_tui.core.sim.sensitivity import Cancelled

RNG = np.random.default_rng(7)
ALL = Settings(compress=True, conv2d_compress=True)


def weights(*shape: int) -> np.ndarray:
    return RNG.normal(0, 0.5, shape).astype(np.float32)


def reshape_model(batch_dim) -> onnx.ModelProto:
    """x[batch, 4] -> MatMul -> Reshape(shape initializer, int64) -> Relu -> MatMul; paddle2onnx and
    tf2onnx keep such shapes as int64 initializers."""
    return make_model(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
            helper.make_node("Reshape", ["h", "shape"], ["r"], name="reshape"),
            helper.make_node("Relu", ["r"], ["a"], name="relu"),
            helper.make_node("MatMul", ["a", "w2"], ["y"], name="fc2"),
        ],
        [value("x", [batch_dim, 4])],
        [value("y", [batch_dim, 3])],
        [tensor("w1", weights(4, 6)), tensor("shape", np.array([-1, 6], np.int64)), tensor("w2", weights(6, 3))],
    )


def test_integer_initializers_keep_their_values_in_the_simulation(tmp_path):
    config = write_project(tmp_path, reshape_model("n"), BASE_CONFIG + "INPUT_OPS:\n  x: [1, 4]\n")
    result = npu_tui("compile", str(config), "--sim", str(tmp_path / "sim.onnx"))
    assert result.returncode == 0, result.stderr
    sim = onnx.load(str(tmp_path / "sim.onnx"))
    shape = next(t for t in sim.graph.initializer if t.name == "shape")
    assert onnx.numpy_helper.to_array(shape).tolist() == [-1, 6]
    session = ort.InferenceSession(str(tmp_path / "sim.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": np.ones((2, 4), np.float32)})[0].shape == (2, 3)
    evaluated = npu_tui("eval", str(config), "--samples", "3")
    assert evaluated.returncode == 0, evaluated.stderr


@pytest.mark.parametrize("batch_dim", [-1, 0, "batch_size", "p2o.DynamicDimension.0", None])
def test_every_exporter_spelling_of_a_dynamic_batch(batch_dim):
    model = reshape_model(batch_dim)
    if batch_dim == 0:
        model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 0
    elif batch_dim is None:
        model.graph.input[0].type.tensor_type.shape.dim[0].Clear()
    spec = model_inputs(model)[0]
    assert spec.shape == (1, 4) and spec.batch_dynamic
    compiler = Compiler(build_inventory(model))
    analysis = Analysis(Evaluator(compiler, random_data([spec], 5, 0)))
    result = analysis.evaluate(compiler.compile(ALL))
    assert analysis.evaluator.batches.batched and result.samples == 5 and result.top1_agreement is not None


def rnn_state_model() -> onnx.ModelProto:
    """Silero-style: input [batch, 4], state [2, batch, 3] (batch on axis 1), a scalar sample rate."""
    nodes = [
        helper.make_node("MatMul", ["input", "w"], ["h"], name="fc"),
        helper.make_node("ReduceSum", ["state", "axes02"], ["s"], name="sum_state", keepdims=0),
        helper.make_node("Unsqueeze", ["s", "axis1"], ["s1"], name="unsq"),
        helper.make_node("Add", ["h", "s1"], ["y0"], name="add"),
        helper.make_node("Cast", ["sr"], ["srf"], name="cast_sr", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["y0", "srf"], ["y"], name="scale"),
    ]
    inits = [tensor("w", weights(4, 3)), tensor("axis1", np.array([1], np.int64)), tensor("axes02", np.array([0, 2], np.int64))]
    inputs = [value("input", ["batch", 4]), value("state", [2, "batch", 3]), value("sr", [], TensorProto.INT64)]
    return make_model(nodes, inputs, [value("y", ["batch", 3])], inits, opset=13)


def test_rnn_state_and_scalar_inputs_follow_the_data_contract(tmp_path):
    model = rnn_state_model()
    inputs = model_inputs(model)
    assert [s.shape for s in inputs] == [(1, 4), (2, 1, 3), ()]
    np.savez(
        tmp_path / "d.npz",
        input=RNG.normal(size=(6, 4)).astype(np.float32),  # (N, *S[1:]): stacked along the batch of 1
        state=RNG.normal(size=(6, 2, 1, 3)).astype(np.float32),  # (N, *S): whole inputs
        sr=np.full(6, 16000, np.int64),  # a scalar per sample
    )
    data = load_npz(tmp_path / "d.npz", inputs)
    assert data.inputs["input"].shape == (6, 1, 4) and data.inputs["sr"].shape == (6,)
    compiler = Compiler(build_inventory(model))
    analysis = Analysis(Evaluator(compiler, data))
    result = analysis.evaluate(compiler.compile(ALL))
    assert not analysis.evaluator.batches.batched  # the state's batch is not on axis 0: one sample per run
    assert result.outputs[0].comparison.sqnr_db is not None and result.samples == 6
    found = analysis.sensitivity(ALL)
    assert [s.weight for s in found] == ["w"]


def test_integer_inputs_need_data():
    with pytest.raises(UserError, match=r"model input 'sr' is int64.*pass --data"):
        random_data(model_inputs(rnn_state_model(), {"input": [1, 4], "state": [2, 1, 3]}), 4, 0)


def test_input_ops_of_the_wrong_rank_is_an_error():
    with pytest.raises(UserError, match=r"INPUT_OPS\['x'\]: \[1, 4, 1\] has 3 dimensions; the model input has 2"):
        model_inputs(reshape_model("n"), {"x": [1, 4, 1]})


def weights_everywhere() -> onnx.ModelProto:
    """A weight in an initializer, one in a Constant node, one folded from constants, one inside an
    If branch: all must be swappable without a new session."""
    then_branch = helper.make_graph(
        [helper.make_node("MatMul", ["h", "w_then"], ["t_out"], name="fc_then")],
        "then",
        [],
        [value("t_out", None)],
        [tensor("w_then", weights(3, 3))],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Identity", ["h"], ["e_out"], name="id_else")], "else", [], [value("e_out", None)]
    )
    nodes = [
        helper.make_node("MatMul", ["x", "w_init"], ["a"], name="fc_init"),
        helper.make_node("Constant", [], ["w_const"], name="const", value=tensor("v", weights(3, 3))),
        helper.make_node("MatMul", ["a", "w_const"], ["b"], name="fc_const"),
        helper.make_node("Concat", ["half1", "half2"], ["w_fold"], name="concat", axis=0),
        helper.make_node("MatMul", ["b", "w_fold"], ["h"], name="fc_fold"),
        helper.make_node("If", ["flag"], ["y"], name="branch", then_branch=then_branch, else_branch=else_branch),
    ]
    inits = [
        tensor("w_init", weights(4, 3)),
        tensor("half1", weights(1, 3)),
        tensor("half2", weights(2, 3)),
        tensor("flag", np.array(True)),
    ]
    return make_model(nodes, [value("x", ["n", 4])], [value("y", None)], inits)


def test_every_weight_swaps_without_building_a_session():
    model = weights_everywhere()
    compiler = Compiler(build_inventory(model))
    assert {w.name: w.origin for w in compiler.inventory.weights} == {
        "w_init": "initializer",
        "w_const": "constant",
        "w_fold": "folded",
        "w_then": "initializer",
    }
    data = EvalData({"x": RNG.normal(size=(8, 1, 4)).astype(np.float32)}, None, 8, "random")
    analysis = Analysis(Evaluator(compiler, data))
    base = analysis.evaluate(compiler.compile(Settings()))
    built = analysis.evaluator.sessions.built
    for name in ("w_init", "w_const", "w_fold", "w_then"):
        only = Settings(compress=True, exclude=tuple(n for n in ("w_init", "w_const", "w_fold", "w_then") if n != name))
        changed = analysis.evaluate(compiler.compile(only))
        assert changed.outputs[0].comparison.sqnr_db != base.outputs[0].comparison.sqnr_db, name
    assert analysis.evaluator.sessions.built == built
    first = analysis.sensitivity(ALL)
    after_first = analysis.evaluator.sessions.built
    second = analysis.sensitivity(replace_settings(ALL))
    assert analysis.evaluator.sessions.built == after_first  # a second sweep reuses every cut's session
    assert [s.weight for s in first] == ["w_init", "w_const", "w_fold", "w_then"]
    assert all(s.alone_sqnr_db is not None for s in first)
    assert [s.alone_sqnr_db for s in first] == [s.alone_sqnr_db for s in second]


def replace_settings(settings: Settings) -> Settings:
    from dataclasses import replace

    return replace(settings, exclude=())


def early_output_model() -> onnx.ModelProto:
    """A detector-style model whose first head is a graph output computed before later weights."""
    return make_model(
        [
            helper.make_node("MatMul", ["x", "w1"], ["head1"], name="fc1"),
            helper.make_node("Relu", ["head1"], ["r"], name="relu"),
            helper.make_node("MatMul", ["r", "w2"], ["h2"], name="fc2"),
            helper.make_node("MatMul", ["h2", "w3"], ["head2"], name="fc3"),
        ],
        [value("x", ["n", 4])],
        [value("head1", ["n", 4]), value("head2", ["n", 4])],
        [tensor("w1", weights(4, 4)), tensor("w2", weights(4, 4)), tensor("w3", weights(4, 4))],
    )


def test_sweep_past_an_early_graph_output_matches_full_runs():
    compiler = Compiler(build_inventory(early_output_model()))
    data = EvalData({"x": RNG.normal(size=(8, 1, 4)).astype(np.float32)}, None, 8, "random")
    analysis = Analysis(Evaluator(compiler, data))
    found = {s.weight: s for s in analysis.sensitivity(ALL)}
    for name in ("w1", "w2", "w3"):
        others = tuple(n for n in ("w1", "w2", "w3") if n != name)
        full = analysis.evaluate(compiler.compile(Settings(compress=True, exclude=others)))
        assert found[name].alone_sqnr_db == pytest.approx(full.worst_output_sqnr_db, abs=1e-6)


def test_the_worst_output_is_named_and_maps_get_no_top1():
    compiler = Compiler(build_inventory(early_output_model()))
    data = EvalData({"x": RNG.normal(size=(8, 1, 4)).astype(np.float32)}, None, 8, "random")
    result = Analysis(Evaluator(compiler, data)).evaluate(compiler.compile(Settings(compress=True, exclude=("w1",))))
    head1, head2 = (o.comparison.sqnr_db for o in result.outputs)
    assert head1 is not None and head2 is not None
    assert head1 > head2 + 20  # head1 reads only the excluded weight
    assert result.worst.name == "head2" and result.worst_output_sqnr_db == head2
    conv = make_model(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")],
        [value("x", ["n", 1, 4, 4])],
        [value("y", ["n", 2, 4, 4])],
        [tensor("w", weights(2, 1, 1, 1))],
    )
    compiler = Compiler(build_inventory(conv))
    data = EvalData({"x": RNG.normal(size=(4, 1, 1, 4, 4)).astype(np.float32)}, None, 4, "random")
    result = Analysis(Evaluator(compiler, data)).evaluate(compiler.compile(ALL))
    assert result.top1_agreement is None and result.classifier is None


def test_fp16_overflow_names_the_first_node():
    model = amplifying_matmul()
    compiler = Compiler(build_inventory(model))
    data = EvalData({"x": np.ones((3, 1, 2), np.float32)}, None, 3, "ones")
    result = Analysis(Evaluator(compiler, data)).evaluate(compiler.compile(Settings()))
    assert result.fp16_issue is not None and result.fp16_issue.startswith(
        "fp16 overflow: node 'amplify' (MatMul) reaches 1.2e+05"
    )


def test_a_cancelled_sweep_keeps_what_it_measured():
    compiler = Compiler(build_inventory(early_output_model()))
    data = EvalData({"x": RNG.normal(size=(8, 1, 4)).astype(np.float32)}, None, 8, "random")
    analysis = Analysis(Evaluator(compiler, data))
    stop = threading.Event()

    def progress(done: int, total: int) -> None:
        if done == 2:  # w1 measured both ways
            stop.set()

    with pytest.raises(Cancelled) as caught:
        analysis.sensitivity(ALL, progress, stop.is_set)
    assert [s.weight for s in caught.value.partial] == ["w1"]


def test_a_graph_npu_tui_breaks_is_an_internal_error(tmp_path):
    config = write_project(tmp_path, reshape_model("n"), BASE_CONFIG)
    compiler = Compiler(build_inventory(load_model(tmp_path / "model.onnx")))
    analysis = Analysis(Evaluator(compiler, EvalData({"x": np.ones((2, 1, 4), np.float32)}, None, 2, "ones")))
    broken = make_model([helper.make_node("NoSuchOp", ["x"], ["y"])], [value("x", [1])], [value("y", [1])])
    with pytest.raises(InternalError, match="onnxruntime rejects a graph npu-tui built"):
        analysis.evaluator.session(broken)
    assert config.exists()


def test_a_model_onnxruntime_cannot_run_is_the_users_problem(tmp_path):
    model = reshape_model("n")
    model.graph.node[2].op_type = "NoSuchOp"
    config = write_project(tmp_path, model, BASE_CONFIG)
    result = npu_tui("eval", str(config), "--json")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "onnxruntime cannot run the model as given" in lines[0] and "\\x0a" not in lines[0]
