"""The bundled samples' TensorFlow frozen versions (sample_models/*_pb, written by make_tf_samples.py
without TensorFlow) compute what the ONNX samples compute, and gxnpuc names their weights."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from clirun import npu_tui
from conftest import SAMPLES

from npu_tui.core.config.project import open_project
from npu_tui.core.model.tf.to_onnx import read_pb
from npu_tui.core.report import weight_lines


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "tf-cache"))


@pytest.mark.parametrize("sample, input_name, shape", [("kws_tdnn", "features", [1, 8, 8]), ("cnn_bn", "image", [1, 8, 8, 2])])
def test_the_pb_sample_computes_what_the_onnx_sample_computes(sample, input_name, shape):
    onnx_session = ort.InferenceSession(onnx.load(str(SAMPLES / sample / "model.onnx")).SerializeToString())
    pb_session = ort.InferenceSession(
        read_pb(SAMPLES / f"{sample}_pb" / "model.pb", {input_name: shape}, ["logits"]).SerializeToString()
    )
    onnx_inputs = np.load(SAMPLES / sample / "eval.npz")[input_name][:64]
    pb_inputs = np.load(SAMPLES / f"{sample}_pb" / "eval.npz")[input_name][:64]
    expected = np.concatenate([onnx_session.run(None, {input_name: x[None]})[0] for x in onnx_inputs])
    got = np.concatenate([pb_session.run(None, {input_name: x[None]})[0] for x in pb_inputs])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_gxnpuc_names_the_kws_pb_weights_as_the_vendor_document_does():
    project = open_project(SAMPLES / "kws_tdnn_pb" / "config.yaml")
    assert weight_lines(project.compile()) == [
        "tdnn1.affine/conv1d/ExpandDims_1/_5__cf__5: [1, 3, 8, 32]",
        "tdnn2.affine/conv1d/ExpandDims_1/_7__cf__7: [1, 3, 32, 32]",
        "prefinal-l/kernel/read/_3__cf__3: [128, 64]",
        "output/kernel/read/_1__cf__1: [64, 10]",
    ]


def test_cnn_bn_pb_folds_its_v1_batch_norms_as_the_onnx_sample_folds_its_own():
    pb = open_project(SAMPLES / "cnn_bn_pb" / "config.yaml")
    assert [w.name for w in pb.inventory.weights if w.bn is not None] == [
        "conv1/kernel/read/_8__cf__8",
        "conv2/kernel/read/_9__cf__9",
    ]
    compilation = pb.compile()
    assert all(r.plan.fused for r in compilation.results.values() if r.weight.bn is not None)


@pytest.mark.parametrize(
    "sample, names, int_values",
    [
        ("kws_tdnn", {"tdnn1.affine": "tdnn1.affine/conv1d/ExpandDims_1/_5__cf__5"}, 4),
        ("cnn_bn", {"conv1.weight": "conv1/kernel/read/_8__cf__8"}, 2),
    ],
)
def test_the_readme_tables_hold_through_pb_file(sample, names, int_values):
    """Every step of the README's vendor loop gives the same accuracy on the pb twin, its weights named as
    gxnpuc names them, and the same bytes plus the graph's own int constants (ExpandDims dims, Reshape
    shapes), which gxnpuc stores at 2 bytes a value and an ONNX model does not have."""
    from conftest import open_sample
    from test_samples import CNN_FLOAT, CNN_LOOP, KWS_FLOAT, KWS_LOOP, loop_numbers

    steps, float_accuracy = (KWS_LOOP, KWS_FLOAT) if sample == "kws_tdnn" else (CNN_LOOP, CNN_FLOAT)
    expected = [(acc, size + 2 * int_values) for _, acc, size in steps]
    assert loop_numbers(open_sample(f"{sample}_pb"), steps, names) == (float_accuracy, expected)


def test_eval_on_the_pb_sample_matches_the_onnx_sample():
    results = []
    for folder in ("kws_tdnn", "kws_tdnn_pb"):
        result = npu_tui("eval", "--samples", "100", "--json", str(SAMPLES / folder / "config.yaml"))
        assert result.returncode == 0, result.stderr
        results.append(result.stdout)

    onnx_doc, pb_doc = (json.loads(r) for r in results)
    assert pb_doc["accuracy_float"] == onnx_doc["accuracy_float"] and pb_doc["accuracy_npu"] == onnx_doc["accuracy_npu"]
    assert pb_doc["output_sqnr_db"] == pytest.approx(onnx_doc["output_sqnr_db"], abs=0.01)


def test_fix_write_and_sim_on_a_pb_keep_pb_file(tmp_path):
    import shutil

    for item in (SAMPLES / "kws_tdnn_pb").iterdir():
        shutil.copy(item, tmp_path / item.name)
    before = (tmp_path / "config.yaml").read_text()
    result = npu_tui("fix", "--min-agreement", "95", "--write", str(tmp_path / "config.yaml"))
    assert result.returncode == 0, result.stderr
    after = (tmp_path / "config.yaml").read_text()
    assert after.startswith(before)  # every line the user had, PB_FILE included, then what fix adds
    assert "tdnn1.affine/conv1d/ExpandDims_1/_5__cf__5" in after[len(before) :]
    written = open_project(tmp_path / "config.yaml")  # the fix writes weights' own (-w) names: none gxnpuc ignores
    names = [*written.config.settings.exclude, *written.config.settings.exclude_conv2d, *written.config.settings.weight_min_max]
    assert names and set(names) <= {w.name for w in written.inventory.weights}
    assert not any("ignores" in w for w in written.config.warnings)
    result = npu_tui("compile", "--sim", str(tmp_path / "sim.onnx"), str(tmp_path / "config.yaml"))
    assert result.returncode == 0, result.stderr
    sim = onnx.load(str(tmp_path / "sim.onnx"))
    assert {"features"} == {i.name for i in sim.graph.input} and [o.name for o in sim.graph.output] == ["logits"]


def test_the_layer_view_shows_the_tf_graph_not_the_layout_transposes():
    result = npu_tui("eval", "--layers", "--samples", "10", "--json", str(SAMPLES / "cnn_bn_pb" / "config.yaml"))
    assert result.returncode == 0, result.stderr
    layers = json.loads(result.stdout)["layers"]
    assert [(layer["node"], layer["op_type"]) for layer in layers] == [
        ("conv1/Conv2D+bn1/FusedBatchNorm", "Conv2D+FusedBatchNorm"),
        ("relu1", "Relu"),
        ("pool1/AvgPool", "AvgPool"),
        ("conv2/Conv2D+bn2/FusedBatchNorm", "Conv2D+FusedBatchNorm"),
        ("relu2", "Relu"),
        ("pool2/AvgPool", "AvgPool"),
        ("flatten/Reshape", "Reshape"),
        ("fc/MatMul", "MatMul"),
        ("fc/BiasAdd", "BiasAdd"),
        ("logits", "Identity"),
    ]
    assert layers[1]["drop_db"] < 5  # relu1 is compared with conv1+bn1, its real input, not with a Transpose
