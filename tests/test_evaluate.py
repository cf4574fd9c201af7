"""The evaluation engine: numbers against a closed-form case, sessions reused, sensitivity ranking."""

import math
from dataclasses import replace

import numpy as np
import pytest
from modelkit import make_model, tensor, value
from onnx import helper

from npu_tui.core.errors import UserError
from npu_tui.core.model.inventory import build_inventory
from npu_tui.core.quant.compiler import Compiler, fp16_weight_bytes
from npu_tui.core.quant.settings import Settings
from npu_tui.core.sim.analysis import Analysis
from npu_tui.core.sim.eval_data import EvalData, model_inputs, random_data
from npu_tui.core.sim.evaluate import Evaluator, compare

# range (0, 3.984375): scale 1/64, zero point 0. Only 0.5078125 = 32.5/64 is off the grid: it becomes 33/64.
W = np.array([[0.5078125, 1.0], [2.0, 3.984375]], np.float32)
W_NPU = np.array([[0.515625, 1.0], [2.0, 3.984375]], np.float32)


def single_matmul():
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        [value("x", ["n", 2])],
        [value("y", ["n", 2])],
        [tensor("w", W)],
    )
    return Compiler(build_inventory(model))


def identity_data(labels=None):
    # feeding the identity matrix makes each output row one row of the weight
    return EvalData({"x": np.eye(2, dtype=np.float32)[:, None, :]}, labels, 2, "identity")


def test_output_metrics_of_a_single_matmul_in_closed_form():
    compiler = single_matmul()
    analysis = Analysis(Evaluator(compiler, identity_data(np.array([1, 1]))))
    result = analysis.evaluate(compiler.compile(Settings(compress=True)))
    signal = float(np.sum(W.astype(np.float64) ** 2))
    noise = (1 / 128) ** 2
    out = result.outputs[0].comparison
    assert out.sqnr_db == pytest.approx(10 * math.log10(signal / noise), rel=1e-9)
    assert out.max_abs_err == 1 / 128
    row0 = float(W[0] @ W_NPU[0]) / (np.linalg.norm(W[0]) * np.linalg.norm(W_NPU[0]))
    assert out.cosine == pytest.approx((row0 + 1.0) / 2, rel=1e-9)
    assert result.accuracy_float == 1.0 and result.accuracy_npu == 1.0 and result.top1_agreement == 1.0


def test_nothing_quantized_and_fp16_exact_weights_is_exact():
    compiler = single_matmul()
    result = Analysis(Evaluator(compiler, identity_data())).evaluate(compiler.compile(Settings()))
    # every weight value is an fp16 number, so fp16 storage changes nothing
    assert result.outputs[0].comparison.sqnr_db is None
    assert result.accuracy_float is None and result.accuracy_npu is None


def test_compare_by_hand():
    c = compare(np.array([[3.0, 4.0]]), np.array([[3.0, 3.0]]))
    assert c.sqnr_db == pytest.approx(10 * math.log10(25))
    assert c.cosine == pytest.approx(21 / (5 * math.sqrt(18)))
    assert c.max_abs_err == 1.0


def test_recompiling_reuses_the_session(kws):
    project, analysis = kws
    settings = project.config.settings
    first = analysis.evaluate(project.compile(settings))
    built = analysis.evaluator.sessions.built
    excluded = analysis.evaluate(project.compile(replace(settings, exclude=("tdnn1.affine",))))
    clipped = analysis.evaluate(project.compile(replace(settings, compress=False)))
    ranged = analysis.evaluate(project.compile(replace(settings, weight_min_max={"tdnn1.affine": (-19.2, 14.7)})))
    assert analysis.evaluator.sessions.built == built
    assert ranged.accuracy_npu > 0.95
    assert first.accuracy_npu < excluded.accuracy_npu
    assert clipped.accuracy_npu != first.accuracy_npu


def test_layers_are_compared_in_graph_order(kws):
    project, analysis = kws
    result = analysis.evaluate(project.compile(), layers=True)
    assert [d.output for d in result.layers][:3] == ["tdnn1.out", "tdnn1.relu", "tdnn2.out"]
    first = result.layers[0].accumulated
    assert first.sqnr_db == pytest.approx(3.17, abs=0.05) and first.cosine < 0.5  # tdnn1's long tail, quantized as gxnpuc does


def test_sensitivity_ranks_the_long_tailed_weight_first(kws):
    project, analysis = kws
    calls = []
    found = analysis.sensitivity(project.config.settings, progress=lambda d, t: calls.append((d, t)))
    ranked = sorted(found, key=lambda s: s.alone_sqnr_db)
    assert ranked[0].weight == "tdnn1.affine"
    assert ranked[0].accuracy < 0.5 and all(s.accuracy > 0.95 for s in ranked[1:])
    best_gain = max(found, key=lambda s: s.exclude_gain_db)
    assert best_gain.weight == "tdnn1.affine" and best_gain.exclude_gain_db > 30
    compiled = project.compile().results
    # fp16: 2 bytes per padded element; compressed: a mask bit per padded element and a byte per stored code.
    # tdnn1.affine (Conv [32, 8, 3]) is 3 taps of [8 in, 32 out], each padded to one 32x32 tile
    tdnn1 = compiled["tdnn1.affine"].quant
    stored = 3 * 1024 // 8 + tdnn1.codes_stored
    assert {s.weight: s.fp16_cost_bytes for s in found}["tdnn1.affine"] == 2 * 3 * 1024 - (stored + stored % 2)
    assert all(
        s.fp16_cost_bytes == fp16_weight_bytes(compiled[s.weight].weight) - compiled[s.weight].weight_memory_bytes for s in found
    )
    assert calls[-1] == (8, 8)


def test_dynamic_dimension_without_shape_is_a_clear_error():
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        [value("x", ["n", "seq", 2])],
        [value("y", None)],
        [tensor("w", W)],
    )
    inputs = model_inputs(model)
    with pytest.raises(UserError, match=r"model input 'x' has a dynamic dimension \(seq\).*INPUT_OPS: \{x: \[1, \?, 2\]\}"):
        random_data(inputs, 4, 0)
    fixed = model_inputs(model, {"x": [1, 5, 2]})
    assert random_data(fixed, 4, 0).inputs["x"].shape == (4, 1, 5, 2)


def test_a_lean_session_without_weights_hands_back_onnxruntime_buffers_and_an_arena_session_copies():
    """The float layers' lean session gives its outputs as they are (a copy held every layer twice
    at once); an arena session's are copied, since its own buffers would keep the whole arena alive
    for as long as the reference is kept."""
    from npu_tui.core.sim.runtime import BoundSession, SessionFactory

    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        [value("x", ["n", 2])],
        [value("y", ["n", 2])],
        [tensor("w", W)],
    )
    x = np.array([[1.0, 2.0]], np.float32)
    factory = SessionFactory()
    lean = BoundSession(factory.build(model, lean=True), ["y"], {}).run({"x": x})[0]
    arena = BoundSession(factory.build(model), ["y"], {}).run({"x": x})[0]
    assert not lean.flags.owndata and arena.flags.owndata
    np.testing.assert_array_equal(lean, x @ W)
    np.testing.assert_array_equal(arena, x @ W)


def _brute_force(compiler, analysis, settings):
    """'Only this weight quantized', one full run each."""
    from npu_tui.core.kinds import Reason
    from npu_tui.core.quant.plan import plan_weights

    base = plan_weights(compiler.inventory, settings)
    nothing = {n: replace(p, quantized=False, reason=Reason.EXCLUDED) for n, p in base.items()}
    found = {}
    for name in base:
        alone = dict(nothing)
        alone[name] = replace(base[name], quantized=True, reason=None)
        found[name] = analysis.evaluate(compiler.compile_plans(settings, alone))
    return found


@pytest.mark.parametrize("sample", ["kws", "cnn"])
def test_sensitivity_from_a_cut_equals_full_runs(sample, request):
    project, analysis = request.getfixturevalue(sample)
    settings = project.config.settings
    expected = _brute_force(project.compiler, analysis, settings)
    for s in analysis.sensitivity(settings):
        assert s.alone_sqnr_db == pytest.approx(expected[s.weight].worst_output_sqnr_db, abs=0.05)
        assert s.accuracy == pytest.approx(expected[s.weight].accuracy_npu, abs=0.002)


def test_sensitivity_cut_with_a_skip_connection():
    """Two tensors cross the cut before fc2: the residual `x` and `h`."""
    rng = np.random.default_rng(0)
    model = make_model(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
            helper.make_node("Relu", ["h"], ["r"], name="relu"),
            helper.make_node("MatMul", ["r", "w2"], ["m"], name="fc2"),
            helper.make_node("Add", ["m", "x"], ["y"], name="skip"),
        ],
        [value("x", ["n", 4])],
        [value("y", ["n", 4])],
        [tensor("w1", rng.normal(size=(4, 4)).astype(np.float32)), tensor("w2", rng.normal(size=(4, 4)).astype(np.float32))],
    )
    compiler = Compiler(build_inventory(model))
    data = EvalData({"x": rng.normal(size=(16, 1, 4)).astype(np.float32)}, None, 16, "random")
    analysis = Analysis(Evaluator(compiler, data))
    settings = Settings(compress=True)
    expected = _brute_force(compiler, analysis, settings)
    built = analysis.evaluator.sessions.built
    for s in analysis.sensitivity(settings):
        assert s.alone_sqnr_db == pytest.approx(expected[s.weight].worst_output_sqnr_db, abs=0.05)
    # the run to the cut before fc2 and the run from it; fc1 reads the input alone, so its what-if runs
    # go through the graph's own session, not a second copy of the whole graph
    assert analysis.evaluator.sessions.built == built + 2


def test_sensitivity_of_a_weight_held_in_a_constant_node():
    rng = np.random.default_rng(1)
    w2 = rng.normal(size=(4, 4)).astype(np.float32)
    model = make_model(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
            helper.make_node("Constant", [], ["w2"], value=tensor("v", w2)),
            helper.make_node("MatMul", ["h", "w2"], ["y"], name="fc2"),
        ],
        [value("x", ["n", 4])],
        [value("y", ["n", 4])],
        [tensor("w1", rng.normal(size=(4, 4)).astype(np.float32))],
    )
    compiler = Compiler(build_inventory(model))
    analysis = Analysis(Evaluator(compiler, EvalData({"x": rng.normal(size=(16, 1, 4)).astype(np.float32)}, None, 16, "random")))
    settings = Settings(compress=True)
    expected = _brute_force(compiler, analysis, settings)
    found = {s.weight: s for s in analysis.sensitivity(settings)}
    assert set(found) == {"w1", "w2"}
    for name, s in found.items():
        assert s.alone_sqnr_db == pytest.approx(expected[name].worst_output_sqnr_db, abs=0.05)


def test_an_excluded_weight_shows_what_excluding_it_gained(kws):
    project, analysis = kws
    settings = replace(project.config.settings, exclude=("tdnn1.affine",))
    found = {s.weight: s for s in analysis.sensitivity(settings)}
    plain = {s.weight: s for s in analysis.sensitivity(project.config.settings)}
    # excluding it from the shipped config gains about 44 dB; quantizing it back from the fixed one loses the same
    assert found["tdnn1.affine"].exclude_gain_db > 30
    assert found["tdnn1.affine"].exclude_gain_db == pytest.approx(plain["tdnn1.affine"].exclude_gain_db, abs=0.5)


def test_an_evaluation_started_during_a_sweep_runs_between_two_of_its_runs(kws):
    import threading

    project, analysis = kws
    settings = project.config.settings
    alone = analysis.sensitivity(settings)
    compilation = project.compile(settings)
    expected = analysis.evaluate(compilation).worst_output_sqnr_db
    done = threading.Event()
    found: list = []

    def evaluate() -> None:
        found.append(analysis.evaluate(compilation).worst_output_sqnr_db)
        done.set()

    def first_run_measured(step: int, total: int) -> None:
        if step == 1:  # the sweep thread waits here, between two runs, for the other thread's evaluation
            threading.Thread(target=evaluate, daemon=True).start()
            assert done.wait(120), "the evaluation started during the sweep did not finish within 120 s: the sweep holds the lock"

    during = analysis.sensitivity(settings, progress=first_run_measured)
    assert found == [expected]
    assert during == alone  # neither run disturbed the other's bound weights


def test_sessions_stop_spinning_soon_after_a_run():
    """A sweep holds many sessions, each with idle workers: they must not spin on the cores the next one needs."""
    from npu_tui.core.sim.runtime import SessionFactory

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", 1, [1])],
        [helper.make_tensor_value_info("y", 1, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = SessionFactory().build(model).get_session_options()
    assert options.get_session_config_entry("session.intra_op.spin_duration_us") == "200"


def test_tensors_compared_run_by_run_get_the_numbers_of_their_joined_runs_to_the_bit():
    """The layer analysis compares each run's layers and lets them go: the numbers are those of the
    joined arrays exactly. Runs of 32, 32 and 6 samples; a small tensor, a large one, one that becomes
    large (LARGE_TENSOR) only in its third run, one the NPU's fp16 holds (fp16 values), and one of
    32 rows in every run, stacked with the 4-value one in the first two runs, not in the last."""
    from npu_tui.core.sim.evaluate import LARGE_TENSOR, RunByRun, compare_many
    from npu_tui.core.sim.runtime import Batches

    rng = np.random.default_rng(5)
    batches = Batches(samples=70, batched=True, size=32)
    per_sample = {"small": (3, 5), "large": (3000,), "late": (1000,), "half": (40, 50), "four": (4,), "fixed": None}
    assert 64 * 1000 < LARGE_TENSOR <= 70 * 1000 and 32 * 3000 >= LARGE_TENSOR
    runs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in per_sample}
    measured = RunByRun(batches)
    for part in batches.slices():
        for name, shape in per_sample.items():
            f = rng.normal(size=(32, 4) if shape is None else (part.stop - part.start, *shape)).astype(np.float32)
            n = (f + rng.normal(0, 0.01, f.shape)).astype(np.float16 if name == "half" else np.float32)
            runs[name].append((f, n))
            measured.add(name, f, n)
    names = list(per_sample)
    joined = [(batches.join([f for f, _ in runs[n]]), batches.join([x for _, x in runs[n]])) for n in names]
    assert measured.comparisons(names) == compare_many(joined)
    assert len({c.sqnr_db for c in compare_many(joined)}) == len(names)
