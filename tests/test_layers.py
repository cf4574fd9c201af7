"""Per-layer error (SPEC section 7): accumulated and isolated numbers against a direct numpy
computation, and where the samples' problems show."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from modelkit import amplifying_matmul, make_model, tensor, value
from onnx import helper

from npu_tui.core.model.inventory import build_inventory
from npu_tui.core.quant.compiler import Compiler
from npu_tui.core.quant.settings import Settings
from npu_tui.core.sim.analysis import Analysis
from npu_tui.core.sim.eval_data import EvalData
from npu_tui.core.sim.evaluate import Evaluator, compare

RNG = np.random.default_rng(12)
W1 = RNG.normal(0, 0.5, (4, 6)).astype(np.float32)
W2 = RNG.normal(0, 0.5, (6, 5)).astype(np.float32)
W2[0, 0] = 9.0  # a long tail: W2 quantizes badly
W3 = RNG.normal(0, 0.5, (5, 3)).astype(np.float32)
X = RNG.normal(size=(32, 4)).astype(np.float32)


def three_layers():
    model = make_model(
        [
            helper.make_node("MatMul", ["x", "w1"], ["a"], name="fc1"),
            helper.make_node("MatMul", ["a", "w2"], ["b"], name="fc2"),
            helper.make_node("MatMul", ["b", "w3"], ["y"], name="fc3"),
        ],
        [value("x", ["n", 4])],
        [value("y", ["n", 3])],
        [tensor("w1", W1), tensor("w2", W2), tensor("w3", W3)],
    )
    compiler = Compiler(build_inventory(model))
    return compiler, Analysis(Evaluator(compiler, EvalData({"x": X[:, None, :]}, None, len(X), "random")))


def f16(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float16).astype(np.float32)


def test_three_layers_against_numpy():
    compiler, analysis = three_layers()
    compilation = compiler.compile(Settings(compress=True))
    npu = {n: r.simulated.astype(np.float32) for n, r in compilation.results.items()}
    a, b, y = X @ W1, X @ W1 @ W2, X @ W1 @ W2 @ W3
    # the NPU: fp16 weights as held, every activation rounded to fp16 (the input is fed as given)
    na = f16(X @ npu["w1"])
    nb = f16(na @ npu["w2"])
    ny = f16(nb @ npu["w3"])
    # isolated: float inputs in, the node's own weight as the NPU holds it, output rounded
    ia, ib, iy = f16(X @ npu["w1"]), f16(a @ npu["w2"]), f16(b @ npu["w3"])
    layers = analysis.evaluate(compilation, layers=True).layers
    assert [(layer.node, layer.weight) for layer in layers] == [("fc1", "w1"), ("fc2", "w2"), ("fc3", "w3")]
    for layer, ref, acc, iso in zip(layers, (a, b, y), (na, nb, ny), (ia, ib, iy)):
        assert layer.accumulated.sqnr_db == pytest.approx(compare(ref, acc).sqnr_db, abs=1e-3)
        assert layer.isolated.sqnr_db == pytest.approx(compare(ref, iso).sqnr_db, abs=1e-3)
        assert layer.isolated.cosine == pytest.approx(compare(ref, iso).cosine, abs=1e-6)
    worst = min(layers, key=lambda layer: layer.isolated.sqnr_db)
    assert worst.node == "fc2"
    assert layers[1].drop_db == pytest.approx(layers[0].accumulated.sqnr_db - layers[1].accumulated.sqnr_db)


def test_large_data_is_measured_on_the_first_samples_that_fit(monkeypatch):
    """On big data only the first samples that fit the layer budget are measured, and the numbers are
    those of exactly these samples."""
    from npu_tui.core.eval_report import evaluation_json, evaluation_lines
    from npu_tui.core.sim import layers as layers_module

    per_sample = (6 + 5 + 3) * 4  # a, b and y of one sample, in bytes
    monkeypatch.setattr(layers_module, "LAYER_BYTES", 7 * per_sample + 3)
    compiler, analysis = three_layers()
    compilation = compiler.compile(Settings(compress=True))
    evaluation = analysis.evaluate(compilation, layers=True)
    assert evaluation.layer_samples == 7 and evaluation.samples == 32
    npu = {n: r.simulated.astype(np.float32) for n, r in compilation.results.items()}
    x = X[:7]
    acc = f16(f16(x @ npu["w1"]) @ npu["w2"])
    assert evaluation.layers[1].accumulated.sqnr_db == pytest.approx(compare(x @ W1 @ W2, acc).sqnr_db, abs=1e-3)
    assert evaluation.layers[1].isolated.sqnr_db == pytest.approx(compare(x @ W1 @ W2, f16(x @ W1 @ npu["w2"])).sqnr_db, abs=1e-3)
    assert evaluation_json(evaluation, None)["layer_samples"] == 7
    assert "layers measured on the first 7 of 32 samples (as many as fit the layer budget)" in evaluation_lines(
        evaluation, None, "random"
    )


def test_at_least_four_samples_while_they_fit_four_budgets(monkeypatch):
    from npu_tui.core.sim import layers as layers_module

    per_sample = (6 + 5 + 3) * 4
    compiler, analysis = three_layers()
    monkeypatch.setattr(layers_module, "LAYER_BYTES", 2 * per_sample)  # two fit; four fit in four budgets
    assert analysis.evaluate(compiler.compile(Settings(compress=True)), layers=True).layer_samples == 4


def test_only_quantized_weights_get_an_isolated_number_and_nothing_is_rebuilt():
    compiler, analysis = three_layers()
    analysis.evaluate(compiler.compile(Settings(compress=True)), layers=True)
    built = analysis.evaluator.sessions.built
    layers = analysis.evaluate(compiler.compile(Settings(compress=True, exclude=("w2",))), layers=True).layers
    assert analysis.evaluator.sessions.built == built
    assert layers[1].weight == "w2" and layers[1].isolated is None
    assert layers[0].isolated is not None and layers[2].isolated is not None


def test_a_settings_change_recomputes_only_what_it_changes(monkeypatch):
    from npu_tui.core.sim.layers import LayerAnalysis

    runs: list[list[str]] = []
    original = LayerAnalysis._stale

    def counted(chunks, compilation):
        stale = original(chunks, compilation)
        runs.extend(sorted(w for _, w in chunk.entries.values()) for chunk in stale)
        return stale

    monkeypatch.setattr(LayerAnalysis, "_stale", staticmethod(counted))
    compiler, analysis = three_layers()
    first = analysis.evaluate(compiler.compile(Settings(compress=True)), layers=True).layers
    assert sorted(w for run in runs for w in run) == ["w1", "w2", "w3"]
    runs.clear()
    changed = Settings(compress=True, weight_min_max={"w2": (-1.0, 1.0)})
    layers = analysis.evaluate(compiler.compile(changed), layers=True).layers
    assert runs == [["w2"]]  # w1's and w3's isolated numbers cannot have changed
    _, fresh = three_layers()
    expected = fresh.evaluate(compiler.compile(changed), layers=True).layers
    assert [layer.isolated.sqnr_db for layer in layers] == pytest.approx([layer.isolated.sqnr_db for layer in expected])
    assert [layer.accumulated.sqnr_db for layer in layers] == pytest.approx([layer.accumulated.sqnr_db for layer in expected])
    assert layers[0].accumulated is first[0].accumulated  # fc1 comes before w2's reader: not compared again
    assert layers[1].accumulated != first[1].accumulated


def test_kws_error_starts_at_tdnn1(kws):
    project, analysis = kws
    layers = analysis.evaluate(project.compile(), layers=True).layers
    biggest_drop = max(layers, key=lambda layer: layer.drop_db)
    lowest_isolated = min((layer for layer in layers if layer.isolated), key=lambda layer: layer.isolated.sqnr_db)
    assert biggest_drop.weight == lowest_isolated.weight == "tdnn1.affine"
    assert biggest_drop.marked and lowest_isolated.isolated.sqnr_db == pytest.approx(3.17, abs=0.05)


def test_cnn_bn_error_starts_at_the_fused_convolution(cnn):
    """conv1 is a plain Conv that gxnpuc compresses: with FUSE_BN its folded weight (the edge filters blown
    up 330-550x) is where the error starts; with FUSE_BN false conv1 alone is fine."""
    project, analysis = cnn
    settings = replace(project.config.settings, fuse_bn=True)
    layers = analysis.evaluate(project.compile(settings), layers=True).layers
    fused = layers[0]
    assert fused.node == "conv1+bn1" and fused.op_type == "Conv+BatchNormalization" and fused.weight == "conv1.weight"
    assert max(layers, key=lambda layer: layer.drop_db) is fused
    assert min((layer for layer in layers if layer.isolated), key=lambda layer: layer.isolated.sqnr_db) is fused
    assert fused.isolated.sqnr_db < 0
    unfused = analysis.evaluate(project.compile(replace(settings, fuse_bn=False)), layers=True).layers
    assert [layer.node for layer in unfused][:2] == ["conv1", "bn1"]
    assert unfused[0].isolated.sqnr_db > 30


def test_the_layer_analysis_stops_when_asked():
    from npu_tui.core.sim.sensitivity import Cancelled

    compiler, analysis = three_layers()
    steps = []

    def stop() -> bool:
        steps.append(1)
        return len(steps) > 2  # after the first float run and the NPU graph's build, before any run is measured

    with pytest.raises(Cancelled):
        analysis.layer_analysis().layers(compiler.compile(Settings(compress=True)), True, stop)
    assert len(steps) == 3


def test_a_transposed_weight_is_compared_again_when_the_weight_changes():
    """The Transpose that reads w2 comes before the MatMul holding it: it is where w2's change starts."""
    model = make_model(
        [
            helper.make_node("MatMul", ["x", "w1"], ["a"], name="fc1"),
            helper.make_node("Transpose", ["w2t"], ["w2"], name="t", perm=[1, 0]),
            helper.make_node("MatMul", ["a", "w2"], ["y"], name="fc2"),
        ],
        [value("x", ["n", 4])],
        [value("y", ["n", 5])],
        [tensor("w1", W1), tensor("w2t", W2.T.copy())],
    )
    compiler = Compiler(build_inventory(model))
    data = EvalData({"x": X[:, None, :]}, None, len(X), "random")
    analysis = Analysis(Evaluator(compiler, data))
    name = next(w.name for w in compiler.inventory.weights if w.name != "w1")
    analysis.evaluate(compiler.compile(Settings(compress=True)), layers=True)
    changed = Settings(compress=True, weight_min_max={name: (-0.5, 0.5)})
    layers = analysis.evaluate(compiler.compile(changed), layers=True).layers
    expected = Analysis(Evaluator(compiler, data)).evaluate(compiler.compile(changed), layers=True).layers
    assert [layer.node for layer in layers] == [layer.node for layer in expected]
    assert [layer.accumulated.sqnr_db for layer in layers] == pytest.approx([layer.accumulated.sqnr_db for layer in expected])


def amplified(x: np.ndarray):
    """x @ 60000s: an fp16 overflow wherever a sample's row sums past 1.09 (65504 / 60000)."""
    model = amplifying_matmul()
    compiler = Compiler(build_inventory(model))
    return compiler, Analysis(Evaluator(compiler, EvalData({"x": x}, None, len(x), "random")))


def test_the_fp16_diagnosis_reads_every_layer_sample_and_keeps_none():
    """eval names the node that overflows from the float layers run by run, keeping none of them
    (PP-OCRv4 det's are 165 MB a sample): here only the last of three samples, run one by one,
    overflows. Its session is kept, the values are not: a second diagnosis runs it again and builds
    nothing."""
    x = np.full((3, 1, 2), 0.5, np.float32)
    x[2] = 1.0  # 2 x 60000 = 1.2e5 in the third sample alone
    compiler, analysis = amplified(x)
    analysis.evaluator.batches = replace(analysis.evaluator.batches, size=1)
    result = analysis.evaluate(compiler.compile(Settings()))
    assert result.fp16_issue is not None and result.fp16_issue.startswith(
        "fp16 overflow: node 'amplify' (MatMul) reaches 1.2e+05"
    )
    built = analysis.evaluator.sessions.built
    assert analysis.fp16_culprit() == result.fp16_issue
    assert analysis.evaluator.sessions.built == built


def two_convs(samples: int):
    """x[1,1,128,128] -> Conv(4, 3x3) -> Relu -> Conv(4, 3x3): each layer 65,536 values a sample."""
    rng = np.random.default_rng(3)
    model = make_model(
        [
            helper.make_node("Conv", ["x", "k1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
            helper.make_node("Conv", ["r1", "k2"], ["y"], name="conv2", pads=[1, 1, 1, 1]),
        ],
        [value("x", [1, 1, 128, 128])],
        [value("y", [1, 4, 128, 128])],
        [
            tensor("k1", rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32)),
            tensor("k2", rng.normal(0, 0.3, (4, 4, 3, 3)).astype(np.float32)),
        ],
    )
    compiler = Compiler(build_inventory(model))
    x = rng.normal(size=(samples, 1, 1, 128, 128)).astype(np.float32)
    return compiler, Analysis(Evaluator(compiler, EvalData({"x": x}, None, samples, "random")))


def test_no_run_of_layer_values_outlives_its_run(monkeypatch):
    """On data whose float layers pass KEPT_BYTES the layer analysis holds one run's layers at a time,
    not every sample's: when a run starts, no float or NPU layer of an earlier run is alive (here six
    runs of one sample), and after the analysis none is, while the numbers are those of all six."""
    import gc
    import weakref

    from npu_tui.core.sim import layers as layers_module
    from npu_tui.core.sim.evaluate import LARGE_TENSOR

    monkeypatch.setattr(layers_module, "KEPT_BYTES", 0)  # the float layers of big data (small ones are kept)
    compiler, analysis = two_convs(6)
    compilation = compiler.compile(Settings(compress=True, conv2d_compress=True))
    analysis.evaluate(compilation)
    made: list[tuple[int, weakref.ref]] = []  # (run, a layer array it returned)
    leftovers: list[int] = []
    original = Evaluator.run_slice

    def watched(self, bound, part, state=None, swaps=None):
        gc.collect()
        leftovers.extend(run for run, ref in made if run != part.start and ref() is not None)
        values = original(self, bound, part, state, swaps)
        made.extend((part.start, weakref.ref(v)) for v in values.values() if v.size >= LARGE_TENSOR)
        return values

    monkeypatch.setattr(Evaluator, "run_slice", watched)
    layers = analysis.layer_analysis().layers(compilation, True)
    gc.collect()
    assert len({run for run, _ in made}) == 6 and len(made) >= 6 * 3
    assert leftovers == []
    assert [run for run, ref in made if ref() is not None] == []
    monkeypatch.undo()
    assert analysis.layer_analysis().samples == 6 and [layer.node for layer in layers] == ["conv1", "relu1", "conv2"]
    assert layers[-1].isolated is not None  # the isolated copies ran too
    evaluator = analysis.evaluator
    reference, npu = evaluator.reference()["y"], evaluator.run_npu(compilation)["y"]
    whole, first = compare(reference, npu), compare(reference[:1], npu[:1])  # all six samples at once; the first
    assert layers[-1].accumulated.sqnr_db == pytest.approx(whole.sqnr_db, abs=1e-3)
    assert first.sqnr_db is not None and whole.sqnr_db is not None and abs(first.sqnr_db - whole.sqnr_db) > 0.01


@pytest.mark.parametrize(("kept_bytes", "second"), [(None, 0), (0, 6)])
def test_the_float_layers_are_kept_between_analyses_while_they_fit(monkeypatch, kept_bytes, second):
    """Six samples' float layers (4.7 MB) fit KEPT_BYTES: a settings change runs only the NPU side
    again. Beyond it the float model runs again, run by run (six runs of one sample)."""
    from npu_tui.core.sim import layers as layers_module

    if kept_bytes is not None:
        monkeypatch.setattr(layers_module, "KEPT_BYTES", kept_bytes)
    compiler, analysis = two_convs(6)
    layer_analysis = analysis.layer_analysis()
    float_runs: list[int] = []
    original = Evaluator.run_slice

    def counted(self, bound, part, state=None, swaps=None):
        if bound is layer_analysis._float_bound:
            float_runs.append(part.start)
        return original(self, bound, part, state, swaps)

    monkeypatch.setattr(Evaluator, "run_slice", counted)
    first = layer_analysis.layers(compiler.compile(Settings(compress=True, conv2d_compress=True)), True)
    assert float_runs == [0, 0, 1, 2, 3, 4, 5]  # the first sample alone, to learn its cost; then the six
    float_runs.clear()
    changed = layer_analysis.layers(compiler.compile(Settings(compress=True, conv2d_compress=True, exclude=("k2",))), True)
    assert len(float_runs) == second
    assert changed[0].accumulated == first[0].accumulated and changed[-1].accumulated != first[-1].accumulated
    assert first[-1].isolated is not None and changed[-1].isolated is None
