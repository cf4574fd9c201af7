"""eval's, fix's and the workbench's model-level numbers come from the exact NPU simulation (core/sim/npu),
the same arrays `npu-tui simulate` writes; where they cannot, the fast one, said so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from clirun import npu_tui
from conftest import SAMPLES
from onnx import TensorProto, helper, numpy_helper

from npu_tui.core.config.project import open_project
from npu_tui.core.opening import DataChoice, project_data
from npu_tui.core.sim import evaluate
from npu_tui.core.sim.evaluate import Evaluator

KWS = SAMPLES / "kws_tdnn" / "config.yaml"
CMODEL = Path(__file__).resolve().parents[2] / "shared" / "gxnpuc" / "cmodel"
needs_cmodel = pytest.mark.skipif(not CMODEL.is_dir(), reason=f"the C model cases are not at {CMODEL}")


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    ref, got = ref.astype(np.float64), got.astype(np.float64)
    return float(10 * np.log10((ref**2).sum() / ((ref - got) ** 2).sum()))


def test_eval_on_kws_reports_the_numbers_of_what_simulate_writes(tmp_path):
    chip, flt = tmp_path / "chip.npz", tmp_path / "float.npz"
    for out, extra in ((chip, ()), (flt, ("--float",))):
        assert npu_tui("simulate", str(KWS), "--samples", "64", "--out", str(out), *extra).returncode == 0
    got, ref = np.load(chip)["logits"], np.load(flt)["logits"]
    doc = json.loads(npu_tui("eval", str(KWS), "--samples", "64", "--json").stdout)
    assert doc["simulation"] == "exact" and doc["simulation_note"] is None
    assert doc["output_sqnr_db"] == pytest.approx(sqnr_db(ref, got), abs=1e-6)
    assert doc["top1_agreement"] == pytest.approx(float(np.mean(ref.argmax(1) == got.argmax(1))))
    labels = np.load(SAMPLES / "kws_tdnn" / "eval.npz")["labels"][:64]
    assert doc["accuracy_npu"] == pytest.approx(float(np.mean(got.argmax(1) == labels)))
    text = npu_tui("eval", str(KWS), "--samples", "64").stdout
    assert "simulation: exact (the chip's own fp16 arithmetic, bit for bit)" in text


def test_the_fast_simulation_is_another_number_and_says_why_when_it_stands_in(monkeypatch):
    project = open_project(KWS)
    evaluator = Evaluator(project.compiler, project_data(project, DataChoice(None, 64, 0)), project.config.output_names)
    compilation = project.compile()
    exact, fast = evaluator.evaluate(compilation, exact=True), evaluator.evaluate(compilation)
    assert (exact.simulation, fast.simulation) == ("exact", "fast") and exact.worst_output_sqnr_db != fast.worst_output_sqnr_db
    no_fp16 = evaluator.evaluate(compilation, fp16_activations=False, exact=True)
    assert no_fp16.simulation == "fast" and "--no-fp16-activations" in (no_fp16.simulation_note or "")
    monkeypatch.setattr(evaluate, "EXACT_SECONDS", 0.0)  # as if the model were large: by elements, not a clock
    slow = Evaluator(project.compiler, evaluator.data, project.config.output_names).evaluate(compilation, exact=True)
    assert slow.simulation == "fast" and "an exact run would take about" in (slow.simulation_note or "")
    assert slow.worst_output_sqnr_db == fast.worst_output_sqnr_db


def cmodel_data(case: str, folder: Path) -> Path:
    """The case's inputs as eval data (one array per input, samples first)."""
    meta = json.loads((CMODEL / case / "meta.json").read_text())
    x = np.load(CMODEL / case / "inputs.npy")
    arrays = {f["name"]: x[:, f["offset"] : f["offset"] + f["size"]].reshape(len(x), *f["shape"]) for f in meta["inputs"]}
    path = folder / f"{case}.npz"
    np.savez(path, **arrays)
    return path


@needs_cmodel
def test_eval_on_the_mnist_pb_is_the_c_models_output_against_tensorflow(tmp_path):
    data = cmodel_data("mnist", tmp_path)
    doc = json.loads(npu_tui("eval", str(CMODEL / "mnist" / "config.yaml"), "--data", str(data), "--json").stdout)
    board = np.load(CMODEL / "mnist" / "cmodel_out.npy").reshape(16, 10)  # what the vendor's C model returned
    chip, flt = tmp_path / "chip.npz", tmp_path / "float.npz"
    for out, extra in ((chip, ()), (flt, ("--float",))):
        assert (
            npu_tui("simulate", str(CMODEL / "mnist" / "config.yaml"), "--data", str(data), "--out", str(out), *extra).returncode
            == 0
        )
    ref = np.load(flt)["result"].reshape(16, 10)
    assert np.array_equal(np.load(chip)["result"].reshape(16, 10), board)
    assert doc["simulation"] == "exact"
    assert doc["output_sqnr_db"] == pytest.approx(sqnr_db(ref, board), abs=1e-6)
    assert doc["top1_agreement"] == pytest.approx(float(np.mean(ref.argmax(1) == board.argmax(1))))


@needs_cmodel
def test_the_gru_gate_is_a_warning_in_compile_and_eval(tmp_path):
    config = CMODEL / "gru" / "config.yaml"
    compiled = npu_tui("compile", str(config))
    assert compiled.returncode == 0, compiled.stderr
    said = [line for line in compiled.stdout.splitlines() if "gxnpuc compiles it as x - c" in line]
    assert said and said[0].startswith("warning: Sub ") and "c = 1 first" in said[0]
    doc = json.loads(npu_tui("eval", str(config), "--data", str(cmodel_data("gru", tmp_path)), "--json").stdout)
    assert doc["simulation"] == "exact"
    assert [w for w in doc["chip_warnings"] if "gxnpuc compiles it as x - c" in w] == [said[0].removeprefix("warning: ")]


@needs_cmodel
def test_an_fp16_chain_overflow_is_evals_fp16_diagnosis(tmp_path):
    config = CMODEL / "fc_ovf" / "config.yaml"
    doc = json.loads(npu_tui("eval", str(config), "--data", str(cmodel_data("fc_ovf", tmp_path)), "--json").stdout)
    assert doc["simulation"] == "exact"
    assert (
        doc["fp16_issue"].startswith("fp16 overflow on the chip: MatMul ") and "fp16 accumulation overflows" in doc["fp16_issue"]
    )


def test_fixs_before_and_after_are_exact(tmp_path):
    doc = json.loads(npu_tui("fix", str(KWS), "--samples", "32", "--min-sqnr", "-50", "--json").stdout)
    assert (doc["simulation"], doc["search_simulation"]) == ("exact", "fast") and doc["met"]
    evaluated = json.loads(npu_tui("eval", str(KWS), "--samples", "32", "--json").stdout)
    assert doc["before"]["metric"] == pytest.approx(evaluated["output_sqnr_db"], abs=1e-9)
    assert doc["after"]["metric"] == pytest.approx(evaluated["output_sqnr_db"], abs=1e-9)  # the config already met it


def onnx_project(tmp_path: Path, node: onnx.NodeProto, shape: list[int]) -> Path:
    w = numpy_helper.from_array(np.ones((shape[-1], shape[-1]), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"), node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in node.output],
        [w],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "m.onnx"))
    (tmp_path / "config.yaml").write_text(f"CORENAME: GRUS\nONNX_FILE: m.onnx\nINPUT_OPS:\n  x: {shape}\nCOMPRESS: true\n")
    return tmp_path / "config.yaml"


SOFTMAX_WARNING = (
    "gxnpuc will refuse this model once it is a TensorFlow graph: node 'head' (Softmax): Softmax is not an op GRUS runs;"
    " gxnpuc refuses tf.nn.softmax"
)


def test_an_onnx_model_ending_in_softmax_compiles_and_evaluates_with_a_warning(tmp_path):
    """gxnpuc never reads the ONNX file: the user debugs its quantization before converting it, so the
    Softmax is said once, and the fast simulation (which runs it) stands in for the exact one."""
    config = onnx_project(tmp_path, helper.make_node("Softmax", ["h"], ["y"], name="head"), [1, 4])
    compiled = npu_tui("compile", str(config))
    assert compiled.returncode == 0, compiled.stderr
    said = [line for line in compiled.stderr.splitlines() if "gxnpuc will refuse" in line]
    assert len(said) == 1 and said[0].startswith("warning: ") and SOFTMAX_WARNING in said[0]
    listed = json.loads(npu_tui("compile", str(config), "--json").stdout)["warnings"]
    assert [w["code"] for w in listed if SOFTMAX_WARNING in w["message"]] == ["gxnpuc_refuses"]
    evaluated = npu_tui("eval", str(config), "--samples", "8", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert SOFTMAX_WARNING in evaluated.stderr
    doc = json.loads(evaluated.stdout)
    assert [w["code"] for w in doc["warnings"] if SOFTMAX_WARNING in w["message"]] == ["gxnpuc_refuses"]
    assert doc["simulation"] == "fast"
    assert doc["simulation_note"].startswith("the exact simulation cannot run this model: node 'head'")
    assert "Softmax is not an op the GRUS NPU runs" in doc["simulation_note"]
    assert doc["outputs"][0]["cosine"] > 0.99  # the fast simulation computed the Softmax


def test_an_onnx_last_axis_split_is_a_warning_unless_the_leading_dims_are_1(tmp_path):
    split = helper.make_node("Split", ["h"], ["a", "b"], axis=-1, name="gates")
    result = npu_tui("compile", str(onnx_project(tmp_path, split, [1, 3, 4])))
    assert result.returncode == 0, result.stderr
    assert (
        "once it is a TensorFlow graph: node 'gates' (Split): a split of the last axis of shape [1, 3, 4]: gxnpuc miscompiles it"
        in result.stderr
    )
    shutil.rmtree(tmp_path / "ok", ignore_errors=True)
    (tmp_path / "ok").mkdir()
    ok = npu_tui("compile", str(onnx_project(tmp_path / "ok", split, [1, 4])))
    assert ok.returncode == 0 and "gxnpuc will refuse" not in ok.stderr


def test_one_warning_line_per_kind_of_problem(tmp_path):
    """Two Softmax nodes are one line that counts the second; the Split its own line."""
    nodes = [
        helper.make_node("Split", ["h"], ["a", "b"], axis=-1, name="gates"),
        helper.make_node("Softmax", ["a"], ["y"], name="head"),
        helper.make_node("Softmax", ["b"], ["z"], name="head2"),
    ]
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"), *nodes],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("y", "z")],
        [w],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "m.onnx"))
    (tmp_path / "config.yaml").write_text("CORENAME: GRUS\nONNX_FILE: m.onnx\nINPUT_OPS:\n  x: [1, 3, 4]\nCOMPRESS: true\n")
    result = npu_tui("compile", str(tmp_path / "config.yaml"))
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "gxnpuc will refuse" in line]
    assert len(said) == 2
    assert "node 'gates' (Split)" in said[0] and "more" not in said[0]
    assert "node 'head' (Softmax)" in said[1] and said[1].endswith("(and 1 more: `npu-tui compile --check` lists them)")
    checked = npu_tui("compile", str(tmp_path / "config.yaml"), "--check")
    assert checked.returncode == 2 and len(checked.stdout.splitlines()) == 4  # the headline and every problem


def test_compile_check_lists_an_onnx_models_refusals_and_fails(tmp_path):
    config = onnx_project(tmp_path, helper.make_node("Softmax", ["h"], ["y"], name="head"), [1, 4])
    result = npu_tui("compile", str(config), "--check")
    assert result.returncode == 2
    assert result.stdout.splitlines()[1].strip().startswith("node 'head' (Softmax): Softmax is not an op GRUS runs")
    doc = json.loads(npu_tui("compile", str(config), "--check", "--json").stdout)
    assert doc["refused"] is True and len(doc["problems"]) == 1


def test_the_workbench_summary_numbers_are_exact():
    from npu_tui.core.workbench import Workbench

    project = open_project(KWS)
    data = project_data(project, DataChoice(None, 64, 0))
    evaluation = Workbench(project, data).evaluate()
    expected = Evaluator(project.compiler, data, project.config.output_names).evaluate(project.compile(), exact=True)
    assert evaluation is not None and evaluation.simulation == "exact" and evaluation.simulation_note is None
    assert evaluation.worst_output_sqnr_db == expected.worst_output_sqnr_db and evaluation.accuracy_npu == expected.accuracy_npu


def test_a_pow_of_a_value_that_can_be_negative_is_a_chip_warning(tmp_path):
    """A LayerNorm's Pow(x - mean, 2): the chip's exp(ln(x) * 2) is NaN for x < 0 (openwakeword's
    hey_marvin went from 55.9 dB fast to -23 dB exact this way)."""
    from modelkit import BASE_CONFIG, make_model, value, write_project

    nodes = [
        helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(np.array(2.0, np.float32))),
        helper.make_node("Pow", ["x", "two"], ["y"], name="square"),
    ]
    config = write_project(tmp_path, make_model(nodes, [value("x", ["n", 4])], [value("y", ["n", 4])], []), BASE_CONFIG)
    compiled = npu_tui("compile", str(config))
    assert compiled.returncode == 0, compiled.stderr
    said = [line for line in compiled.stdout.splitlines() if "exp(ln(x) * c)" in line]
    assert said == [
        "warning: Pow 'square': the chip computes x^c as exp(ln(x) * c) (c = 2), which is NaN wherever x < 0; for c = 2 write x * x"
    ]


def test_eval_says_every_warning_compile_says_in_both_simulations(tmp_path):
    """The exact run finds a scalar-first Sub itself but not a Pow's negative base: eval still lists both,
    as compile does, whichever simulation measured."""
    from modelkit import chip_warning_model

    config = chip_warning_model(tmp_path)
    compiled = [line for line in npu_tui("compile", str(config)).stdout.splitlines() if line.startswith("warning: ")]
    assert [w.split(":")[1] for w in compiled] == [" Sub '[bold]gate[/bold]'", " Pow 'square'"]
    for extra in ((), ("--no-fp16-activations",)):
        result = npu_tui("eval", str(config), *extra)
        assert result.returncode == 0, result.stderr
        assert ("exact" if not extra else "fast") in result.stdout
        assert [line for line in result.stdout.splitlines() if line.startswith("warning: ")] == compiled


def test_a_constant_in_the_converters_odd_band_reaches_the_exact_run_as_the_chip_holds_it(tmp_path):
    """gxnpuc stores 4e-5 (in [2**-15, 2**-14)) with exponent field 0: the chip reads 318 * 2**-24. The
    exact run takes the simulation's fp16 values bit for bit; converting them again would flush it to 0.
    (Times 1024, so that the fp32 output, which flushes subnormals, shows it.)"""
    from modelkit import BASE_CONFIG, make_model, tensor, value, write_project

    from npu_tui.core.quant.fp16 import as_fp16, cvt

    nodes = [
        helper.make_node("MatMul", ["x", "fc.weight"], ["h"], name="fc"),
        helper.make_node("Add", ["h", "tiny"], ["a"], name="add"),
        helper.make_node("Mul", ["a", "k"], ["y"], name="scale"),
    ]
    inits = [
        tensor("fc.weight", np.eye(4, dtype=np.float32)),
        tensor("tiny", np.full(4, 4e-5, np.float32)),
        tensor("k", np.array(1024.0, np.float32)),
    ]
    config = write_project(tmp_path, make_model(nodes, [value("x", [1, 4])], [value("y", [1, 4])], inits), BASE_CONFIG)
    np.savez(tmp_path / "data.npz", x=np.zeros((2, 1, 4), np.float32))
    project = open_project(config)
    evaluator = Evaluator(project.compiler, project_data(project, DataChoice(tmp_path / "data.npz", None, 0)), ["y"])
    chip, why = evaluator.run_exact(project.compile())
    assert chip is not None, why
    held = as_fp16(cvt(np.float32(4e-5)))
    assert held == np.float16(318 * 2.0**-24)
    assert chip.arrays["y"].reshape(-1).tolist() == [318 * 2.0**-14] * 8
    result = npu_tui("simulate", str(config), "--data", str(tmp_path / "data.npz"), "--out", str(tmp_path / "out.npz"))
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "out.npz")["y"].reshape(-1).tolist() == [318 * 2.0**-14] * 8  # npu-tui simulate: the same
