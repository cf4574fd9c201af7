"""The TensorFlow frozen-graph reader against the vendor compiler's own output (../shared/gxnpuc):
gxnpuc's -w names and shapes in its order for every run that compiled, its -s file names, TF 1.15's
float outputs for every C-model case, the vendor mnist example's digits, and what it refuses."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml
from clirun import npu_tui

from npu_tui.core.config.project import open_project
from npu_tui.core.errors import ConfigError, ModelError
from npu_tui.core.report import weight_lines

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "gxnpuc"
needs_fixture = pytest.mark.skipif(
    not FIXTURE.is_dir(), reason="../shared/gxnpuc (what gxnpuc 1.5.8 printed) is not beside the repo"
)


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "tf-cache"))


def compiled_runs() -> list[Path]:
    if not FIXTURE.is_dir():
        return []
    runs = []
    for run in sorted(FIXTURE.glob("runs/*/*/")):
        rc = (run / "rc").read_text().strip() if (run / "rc").is_file() else "1"
        if rc == "0" and "Compile OK." in (run / "stdout.txt").read_text():
            runs.append(run)
    return runs


def open_with_absolute_pb(run: Path, folder: Path, **changes):
    """The run's config, copied into `folder` with PB_FILE made absolute and `changes` applied (None: the
    key left out), opened."""
    data = yaml.safe_load((run / "config.yaml").read_text())
    data["PB_FILE"] = str((run / data["PB_FILE"]).resolve())
    data.update(changes)
    data = {key: value for key, value in data.items() if value is not None}
    (folder / "config.yaml").write_text(yaml.safe_dump(data))
    return open_project(folder / "config.yaml")


# The compiled runs whose config npu-tui refuses on purpose (SPEC section 2: gxnpuc accepts them silently
# and the user never learns the setting did nothing), with the key it would have to drop to read it as gxnpuc.
STRICTER = {
    "bad_conv2d_compress_str": ("CONV2D_COMPRESS", "is not a bool"),
    "bad_fusebn_str": ("FUSE_BN", "is not a bool"),
    "bad_exclude_str": ("EXCLUDE_COMPRESS_OPS", "is not a list"),
    "bad_exclude_unknown": ("EXCLUDE_COMPRESS_OPS", "no weight or node named 'no/such/op'"),
    "bad_mm_unknown_name": ("WEIGHT_MIN_MAX", "no weight or node named 'no/such/weight'"),
}


@needs_fixture
def test_w_lines_are_gxnpucs_for_every_run_that_compiled(tmp_path):
    """Every run gxnpuc compiled, its config as written: npu-tui prints gxnpuc's FUSED_BN_OPS and -w lines.
    A TF node name gxnpuc ignores is kept and does nothing there too (a warning says so); the configs
    npu-tui refuses on purpose are compared with the one key gxnpuc ignored left out."""
    runs = compiled_runs()
    assert len(runs) == 418  # 32 graphs under up to 40 variants
    mismatched, warned = [], 0
    for run in runs:
        output = (run / "stdout.txt").read_text()
        expected = output[: output.index("Memory allocation info:")].splitlines()  # FUSED_BN_OPS, then the -w lines
        if run.name in STRICTER:
            key, message = STRICTER[run.name]
            with pytest.raises(ConfigError, match=re.escape(message)):
                open_with_absolute_pb(run, tmp_path)
            project = open_with_absolute_pb(run, tmp_path, **{key: None})
        else:
            project = open_with_absolute_pb(run, tmp_path)
        warned += any("ignores" in w for w in project.config.warnings)
        got = weight_lines(project.compile())
        if got != expected:
            mismatched.append((str(run.relative_to(FIXTURE)), expected, got))
    print(
        f"-w listings: {len(runs) - len(mismatched)} of {len(runs)} compiled runs equal gxnpuc's; {warned} warn of an ignored name"
    )
    assert mismatched == []
    assert warned == 76  # op names, Const and /read names, depthwise ops; 2 more runs name nothing (STRICTER)


@needs_fixture
def test_every_weight_holds_its_variables_values():
    """The folded weight of each fixture graph is its trained variable (weights.npz), value for value."""
    from npu_tui.core.model.inventory import build_inventory
    from npu_tui.core.model.tf.to_onnx import read_pb

    manifest = json.loads((FIXTURE / "models" / "manifest.json").read_text())
    checked = 0
    for graph, meta in manifest.items():
        inventory = build_inventory(read_pb(FIXTURE / "models" / graph / "model.pb", meta["inputs"], meta["outputs"]))
        trained = np.load(FIXTURE / "models" / graph / "weights.npz")
        for weight in inventory.weights:
            variable = next(n for n in weight.tf_names if n in meta["weights"])
            value = inventory.arrays[weight.name]
            tf_layout = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value  # ONNX's OIHW back to HWIO
            assert weight.tf_shape is not None and list(tf_layout.shape) == list(weight.tf_shape)
            np.testing.assert_array_equal(tf_layout.reshape(meta["weights"][variable]), trained[variable.replace("/", "__")])
            checked += 1
    assert checked == 30  # 32 graphs: 3 depthwise ones have none (fp16 always), fc_two has two


@needs_fixture
def test_a_tf_node_name_is_kept_does_nothing_and_warns_with_the_name_gxnpuc_honours(tmp_path):
    run = FIXTURE / "runs" / "conv1d" / "compress"
    honoured = "tdnn1.affine/conv1d/ExpandDims_1/_1__cf__1"
    for written in ("tdnn1.affine/kernel", "tdnn1.affine/kernel/read", "tdnn1.affine/conv1d/ExpandDims_1", "tdnn1.affine/conv1d"):
        for key, value in (("EXCLUDE_COMPRESS_OPS", [written]), ("WEIGHT_MIN_MAX", {written: [-0.5, 0.5]})):
            project = open_with_absolute_pb(run, tmp_path, **{key: value})
            label = key if key == "EXCLUDE_COMPRESS_OPS" else f"{key}[{written!r}]"
            assert project.config.warnings == [
                f"{tmp_path / 'config.yaml'}:{_line_of(tmp_path / 'config.yaml', written)}: {label}: "
                f"gxnpuc 1.5.8 ignores {written!r} silently (it matches only -w names): write {honoured!r}"
            ]
            plan = project.compile().plans[honoured]
            assert plan.quantized and plan.range is None  # as gxnpuc: still compressed, its range its own
            assert written in project.config.data[key]  # kept in the config: a saved config still says it


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@needs_fixture
def test_the_ignored_name_warning_reaches_compiles_stderr_and_json(tmp_path):
    run = FIXTURE / "runs" / "fc_lin" / "compress_exclude"
    assert "fc/MatMul" in (run / "config.yaml").read_text()
    data = yaml.safe_load((run / "config.yaml").read_text())
    data["PB_FILE"] = str((run / data["PB_FILE"]).resolve())
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    warning = "EXCLUDE_COMPRESS_OPS: gxnpuc 1.5.8 ignores 'fc/MatMul' silently (it matches only -w names): write 'fc/weights/read/_1__cf__1'"
    result = npu_tui("compile", "-w", str(tmp_path / "config.yaml"))
    assert result.returncode == 0 and warning in result.stderr
    assert (
        result.stdout.splitlines()[0] == (run / "stdout.txt").read_text().splitlines()[0] == "fc/weights/read/_1__cf__1: [16, 8]"
    )
    document = json.loads(npu_tui("compile", "--json", str(tmp_path / "config.yaml")).stdout)
    assert any(w["code"] == "config" and warning in w["message"] for w in document["warnings"])


@needs_fixture
def test_vendor_mnist_prints_its_one_weight_and_reads_its_digits():
    config = FIXTURE / "vendor_mnist" / "config.yaml"
    result = npu_tui("compile", "-w", str(config))
    assert result.returncode == 0, result.stderr
    vendor = (FIXTURE / "vendor_mnist" / "gxnpuc-w.stdout.txt").read_text().splitlines()[0]
    assert result.stdout.splitlines()[0] == vendor == "Variable/read/_0__cf__0: [784, 10]"
    from npu_tui.core.model.tf.to_onnx import read_pb

    model = read_pb(FIXTURE / "vendor_mnist" / "generated_pb" / "mnist_with_ckpt.pb", {"input_x": [1, 784]}, ["result"])
    session = ort.InferenceSession(model.SerializeToString())
    images = [np.fromfile(FIXTURE / "vendor_mnist" / "images" / f"image{i}", dtype=np.float32).reshape(1, 784) for i in range(6)]
    digits = [int(np.argmax(session.run(None, {"input_x": image})[0])) for image in images]
    assert digits == [7, 2, 1, 0, 4, 1]


@needs_fixture
@pytest.mark.parametrize("graph", ["fc_lin", "conv1d"])
def test_save_hist_writes_gxnpucs_file_names(tmp_path, graph):
    run = FIXTURE / "runs" / graph / "compress"
    result = npu_tui("compile", "-s", "--hist-dir", str(tmp_path / "jpgs"), str(run / "config.yaml"))
    assert result.returncode == 0, result.stderr
    vendor = sorted(p.name for p in (run / "npu_jpgs").iterdir())
    assert sorted(p.name for p in (tmp_path / "jpgs").iterdir()) == sorted([*vendor, "index.json"])


def cmodel_cases() -> list[str]:
    return sorted(p.name for p in (FIXTURE / "cmodel").iterdir() if (p / "model.pb").is_file()) if FIXTURE.is_dir() else []


EXP_OVERFLOW = 88.3762626647949  # TF's Eigen exp returns inf from here on (2^n with n = round(x / ln 2) = 128)


@needs_fixture
@pytest.mark.parametrize("case", cmodel_cases())
def test_float_outputs_are_tensorflows(case):
    from npu_tui.core.model.tf.to_onnx import read_pb

    folder = FIXTURE / "cmodel" / case
    meta = json.loads((folder / "meta.json").read_text())
    model = read_pb(folder / "model.pb", meta["config"]["INPUT_OPS"], meta["config"]["OUTPUT_OPS"])
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString())
    inputs, reference = np.load(folder / "inputs.npy"), np.load(folder / "float_out.npy")
    names = [f["name"] for f in meta["outputs"]]
    rows = []
    for row in inputs:
        feed = {f["name"]: row[f["offset"] : f["offset"] + f["size"]].reshape(f["shape"]) for f in meta["inputs"]}
        rows.append(np.concatenate([out.reshape(-1) for out in session.run(names, feed)]))
    got = np.stack(rows)
    for field in meta["outputs"]:
        part = slice(field["offset"], field["offset"] + field["size"])
        ours, tf = got[:, part], reference[:, part]
        differ = np.isfinite(ours) != np.isfinite(tf)
        if differ.any():  # only Exp just below float32's overflow, where TF's exp already says inf
            assert field["name"] == "o_exp" and inputs.shape == ours.shape and (inputs[differ] > EXP_OVERFLOW).all()
        both = np.isfinite(ours) & np.isfinite(tf)
        assert np.array_equal(np.isnan(ours), np.isnan(tf))
        scale = np.abs(tf[both]).max()
        assert np.abs(ours[both] - tf[both]).max() <= 1e-5 * scale, field["name"]


@needs_fixture
def test_bn_v1_folds_under_fuse_bn_and_v3_never(tmp_path):
    def fused(graph: str, variant: str) -> bool:
        result = npu_tui("compile", "--json", str(FIXTURE / "runs" / graph / variant / "config.yaml"))
        assert result.returncode == 0, result.stderr
        return any(w["fused_bn"] for w in json.loads(result.stdout)["weights"])

    assert "FUSED_BN_OPS" in (FIXTURE / "runs" / "conv_bn_v1" / "fusebn_compress" / "stdout.txt").read_text()
    assert fused("conv_bn_v1", "fusebn_compress") and not fused("conv_bn_v1", "nofusebn_compress")
    assert "FUSED_BN_OPS" not in (FIXTURE / "runs" / "conv_bn" / "fusebn_compress" / "stdout.txt").read_text()
    assert not fused("conv_bn", "fusebn_compress") and not fused("conv_bias_bn", "fusebn_compress")


@needs_fixture
def test_fuse_bn_in_the_reader_computes_what_the_unfolded_graph_computes():
    from npu_tui.core.model.tf.to_onnx import read_pb

    pb = FIXTURE / "models" / "conv_bn_v1" / "model.pb"
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 2)).astype(np.float32)
    outputs = []
    for fuse in (False, True):
        model = read_pb(pb, {"input": [1, 8, 8, 2]}, ["output"], fuse_bn=fuse)
        assert ("BatchNormalization" in [n.op_type for n in model.graph.node]) is not fuse
        outputs.append(ort.InferenceSession(model.SerializeToString()).run(None, {"input": x})[0])
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-5 * np.abs(outputs[0]).max())


@needs_fixture
@pytest.mark.parametrize(
    "variant, expected",
    [
        ("bad_input_op", "INPUT_OPS names 'nosuch', but the graph has no node of that name"),
        ("bad_output_op", "OUTPUT_OPS names 'nosuch', but the graph has no node of that name"),
        ("bad_pb_missing", "config.yaml:2: PB_FILE: '/nonexistent.pb' not found (looked for /nonexistent.pb)"),
    ],
)
def test_what_gxnpuc_refuses_is_one_error_line(variant, expected):
    result = npu_tui("compile", str(FIXTURE / "runs" / "fc_lin" / variant / "config.yaml"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and expected in result.stderr


@needs_fixture
def test_eval_and_check_run_on_a_pb(tmp_path):
    config = FIXTURE / "runs" / "lstm" / "compress" / "config.yaml"
    result = npu_tui("eval", "--json", "--samples", "8", str(config))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["samples"] == 8 if "samples" in document else True
    result = npu_tui("compile", "--check", str(config))
    assert result.returncode == 0 and "every op is in the GRUS list" in result.stdout


@needs_fixture
def test_a_second_open_reuses_the_conversion_and_never_trusts_a_bad_cache(monkeypatch, tmp_path):
    import npu_tui.core.model.tf.cache as cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []
    real = cache.read_pb

    def counted(*a, **k):
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr(cache, "read_pb", counted)
    config = FIXTURE / "runs" / "fc_two" / "compress" / "config.yaml"
    first = weight_lines(open_project(config).compile())
    second = weight_lines(open_project(config).compile())
    assert first == second == ["fc1/weights/read/_0__cf__0: [16, 8]", "fc2/weights/read/_1__cf__1: [8, 4]"]
    assert len(calls) == 1
    for entry in (tmp_path / "npu-tui").iterdir():
        entry.write_bytes(entry.read_bytes()[:100])  # truncated: parsed or not, its key no longer checks out
    assert weight_lines(open_project(config).compile()) == first
    assert len(calls) == 2
    other = dict(yaml.safe_load(config.read_text()), INPUT_OPS={"input": [2, 16]})
    other["PB_FILE"] = str((config.parent / other["PB_FILE"]).resolve())
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(other))
    open_project(tmp_path / "config.yaml")
    assert len(calls) == 3  # INPUT_OPS is part of the key


# ---------------------------------------------------------------- graphs built here


def writer():
    from npu_tui.core.model.tf.writer import GraphWriter

    return GraphWriter()


def save(tmp_path: Path, graph, outputs: list[str], inputs: dict[str, list[int]]) -> Path:
    pb = tmp_path / "model.pb"
    pb.write_bytes(graph.serialize())
    lines = [
        "CORENAME: GRUS",
        "PB_FILE: model.pb",
        "OUTPUT_FILE: model.h",
        "COMPRESS: true",
        "CONV2D_COMPRESS: true",
        "INPUT_OPS:",
    ]
    lines += [f"  {name}: {shape}" for name, shape in inputs.items()]
    lines.append(f"OUTPUT_OPS: [{', '.join(outputs)}]")
    (tmp_path / "config.yaml").write_text("\n".join(lines) + "\n")
    return pb


def run_pb(pb: Path, inputs: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
    from npu_tui.core.model.tf.to_onnx import read_pb

    model = read_pb(pb, {k: list(v.shape) for k, v in inputs.items()}, outputs)
    return ort.InferenceSession(model.SerializeToString()).run(outputs, inputs)


def conv_reference(x: np.ndarray, k: np.ndarray, stride: int, dilation: int, padding: str) -> np.ndarray:
    """NHWC x HWIO, TF's SAME (the odd pixel after) or VALID: one matrix product per tap."""
    kh, kw = k.shape[:2]
    h, w = x.shape[1:3]
    if padding == "SAME":
        out = [-(-h // stride), -(-w // stride)]
        total = [max((out[i] - 1) * stride + (k.shape[i] - 1) * dilation + 1 - (h, w)[i], 0) for i in range(2)]
        x = np.pad(x, [(0, 0), (total[0] // 2, total[0] - total[0] // 2), (total[1] // 2, total[1] - total[1] // 2), (0, 0)])
    oh = (x.shape[1] - (kh - 1) * dilation - 1) // stride + 1
    ow = (x.shape[2] - (kw - 1) * dilation - 1) // stride + 1
    y = np.zeros((x.shape[0], oh, ow, k.shape[3]), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = x[
                :,
                i * dilation : i * dilation + (oh - 1) * stride + 1 : stride,
                j * dilation : j * dilation + (ow - 1) * stride + 1 : stride,
            ]
            y += patch @ k[i, j]
    return y.astype(np.float32)


@pytest.mark.parametrize("padding, stride", [("SAME", 1), ("SAME", 2), ("VALID", 2)])
def test_conv2d_padding_and_strides_are_tfs(tmp_path, padding, stride):
    rng = np.random.default_rng(1)
    x, k = rng.normal(size=(1, 7, 6, 3)).astype(np.float32), rng.normal(size=(3, 2, 3, 5)).astype(np.float32)
    g = writer()
    g.placeholder("x", [1, 7, 6, 3])
    g.variable("conv/kernel", k)
    g.node(
        "conv/Conv2D",
        "Conv2D",
        ["x", "conv/kernel/read"],
        strides=[1, stride, stride, 1],
        padding=padding,
        data_format="NHWC",
        dilations=[1, 1, 1, 1],
    )
    pb = save(tmp_path, g, ["conv/Conv2D"], {"x": [1, 7, 6, 3]})
    (got,) = run_pb(pb, {"x": x}, ["conv/Conv2D"])
    np.testing.assert_allclose(got, conv_reference(x, k, stride, 1, padding), rtol=1e-5, atol=1e-5)
    result = npu_tui("compile", "-w", str(tmp_path / "config.yaml"))
    assert result.stdout.splitlines()[0] == "conv/kernel/read/_0__cf__0: [3, 2, 3, 5]"


def test_a_dilated_conv_through_space_to_batch_is_one_dilated_conv(tmp_path):
    """What TF 1.15 writes for tf.nn.conv2d(..., dilations=2, padding='SAME') on 8x8 with a 3x3 kernel."""
    rng = np.random.default_rng(2)
    x, k = rng.normal(size=(1, 8, 8, 2)).astype(np.float32), rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    g = writer()
    g.placeholder("x", [1, 8, 8, 2])
    g.variable("k", k)
    g.const("block", np.array([2, 2], np.int32))
    g.const("paddings", np.array([[2, 2], [2, 2]], np.int32))
    g.const("crops", np.array([[0, 0], [0, 0]], np.int32))
    g.node("s2b", "SpaceToBatchND", ["x", "block", "paddings"], Tpaddings=3)
    g.node("conv", "Conv2D", ["s2b", "k/read"], strides=[1, 1, 1, 1], padding="VALID", data_format="NHWC", dilations=[1, 1, 1, 1])
    g.node("b2s", "BatchToSpaceND", ["conv", "block", "crops"])
    pb = save(tmp_path, g, ["b2s"], {"x": [1, 8, 8, 2]})
    (got,) = run_pb(pb, {"x": x}, ["b2s"])
    np.testing.assert_allclose(got, conv_reference(x, k, 1, 2, "SAME"), rtol=1e-5, atol=1e-5)


def test_shape_ops_follow_tfs_rules(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 4, 6)).astype(np.float32)
    g = writer()
    g.placeholder("x", [1, 4, 6])
    for name, value in {
        "b": [0, 1, 5],
        "e": [1, 4, -7],
        "s": [1, 1, -2],
        "perm": [0, 2, 1],
        "pads": [[0, 0], [1, 2], [0, 1]],
        "axes": [1],
    }.items():
        g.const(name, np.array(value, np.int32))
    g.node(
        "ss",
        "StridedSlice",
        ["x", "b", "e", "s"],
        Index=3,
        begin_mask=2,
        end_mask=0,
        ellipsis_mask=0,
        new_axis_mask=0,
        shrink_axis_mask=1,
    )
    g.node("t", "Transpose", ["x", "perm"])
    g.node("pad", "Pad", ["x", "pads"])
    g.node("mean", "Mean", ["x", "axes"], keep_dims=True)
    g.node("pack", "Pack", ["ss", "ss"], axis=-1, N=2)
    outs = ["ss", "t", "pad", "mean", "pack"]
    pb = save(tmp_path, g, outs, {"x": [1, 4, 6]})
    got = dict(zip(outs, run_pb(pb, {"x": x}, outs)))
    np.testing.assert_array_equal(got["ss"], x[0, :, 5:-7:-2])
    np.testing.assert_array_equal(got["t"], x.transpose(0, 2, 1))
    np.testing.assert_array_equal(got["pad"], np.pad(x, [(0, 0), (1, 2), (0, 1)]))
    np.testing.assert_allclose(got["mean"], x.mean(axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(got["pack"], np.stack([x[0, :, 5:-7:-2]] * 2, axis=-1))


def test_check_lists_every_problem_naming_each_node(tmp_path):
    g = writer()
    g.placeholder("x", [1, 32, 32, 4])
    g.node("pool", "AvgPool", ["x"], ksize=[1, 16, 16, 1], strides=[1, 16, 16, 1], padding="VALID", data_format="NHWC")
    g.node("maxpool", "MaxPool", ["x"], ksize=[1, 2, 2, 1], strides=[1, 1, 1, 1], padding="VALID", data_format="NHWC")
    g.variable("dw/kernel", np.ones((13, 13, 4, 1), np.float32))
    g.node("dw", "DepthwiseConv2dNative", ["x", "dw/kernel/read"], strides=[1, 1, 1, 1], padding="SAME", data_format="NHWC")
    g.const("perm", np.array([0, 2, 1, 3], np.int32))
    g.node("t", "Transpose", ["x", "perm"])
    g.const("shape", np.array([1, 4096], np.int32))
    g.node("flat", "Reshape", ["x", "shape"])
    g.variable("fc/weights", np.ones((4096, 32), np.float32))
    g.node("fc/MatMul", "MatMul", ["flat", "fc/weights/read"], transpose_a=False, transpose_b=False)
    g.node("prob", "Softmax", ["fc/MatMul"])
    g.const("dim", np.array(-1, np.int32))
    g.node("split", "Split", ["dim", "x"], num_split=2)
    save(tmp_path, g, ["pool", "maxpool", "dw", "t", "prob", "split"], {"x": [1, 32, 32, 4]})
    result = npu_tui("compile", "--check", str(tmp_path / "config.yaml"))
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert lines[0].startswith("gxnpuc will refuse this model")
    expected = [
        "node 'pool' (AvgPool): window 16x16; H and W must be 1-15",
        "node 'maxpool' (MaxPool): window 2x2 with stride 1x1",
        "node 'dw' (DepthwiseConv2dNative): padding SAME",
        "node 'dw' (DepthwiseConv2dNative): kernel 13x13",
        "node 't' (Transpose): perm [0, 2, 1, 3] on shape [1, 32, 32, 4] is not a 2-D transpose",
        "node 'fc/MatMul' (MatMul): weight [4096, 32] pads to 131,072 elements",
        "node 'prob' (Softmax): Softmax is not an op GRUS runs",
        "node 'split' (Split): a split of the last axis of shape [1, 32, 32, 4]",
    ]
    assert len(lines) == 1 + len(expected)
    for line, start in zip(lines[1:], expected):
        assert line.strip().startswith(start), line
    plain = npu_tui("compile", str(tmp_path / "config.yaml"))
    assert plain.returncode == 2 and "gxnpuc will refuse this model: node 'pool'" in plain.stderr and "and 7 more" in plain.stderr


def hostile(tmp_path: Path, name: str, content: bytes) -> str:
    (tmp_path / name).write_bytes(content)
    from npu_tui.core.model.onnx_file import load_model

    with pytest.raises(ModelError) as caught:
        load_model(tmp_path / name, {"x": [1, 4]}, None)
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / name) in message
    return message


def big_const(dims: list[int], content: bytes = b"", dtype: int = 1) -> bytes:
    from npu_tui.core.model.tf.graphdef import GraphDef

    graph = GraphDef()
    node = graph.node.add(name="w", op="Const")
    tensor = node.attr["value"].tensor
    tensor.dtype = dtype
    for d in dims:
        tensor.tensor_shape.dim.add(size=d)
    tensor.tensor_content = content
    node.attr["dtype"].type = dtype
    x = graph.node.add(name="x", op="Placeholder")
    x.attr["dtype"].type = 1
    graph.node.add(name="y", op="MatMul", input=["x", "w"])
    return graph.SerializeToString()


def test_hostile_pbs_are_one_line_errors_without_huge_allocations(tmp_path):
    good = big_const([4, 2], np.ones(8, np.float32).tobytes())
    assert "the file is empty" in hostile(tmp_path, "empty.pb", b"")
    assert "not a TensorFlow frozen GraphDef" in hostile(tmp_path, "random.pb", np.random.default_rng(0).bytes(4096))
    assert "not a TensorFlow frozen GraphDef" in hostile(tmp_path, "cut.pb", good[: len(good) - 7])
    assert "declares 1,000,000,000,000 elements" in hostile(tmp_path, "huge.pb", big_const([1_000_000, 1_000_000]))
    assert "holds 4 bytes in tensor_content; its shape [4, 2] of DT_FLOAT needs 32" in hostile(
        tmp_path, "short.pb", big_const([4, 2], b"\0" * 4)
    )
    assert "element type DataType 77" in hostile(tmp_path, "dtype.pb", big_const([2], b"\0" * 8, dtype=77))
    assert "a .pbtxt model" in hostile(tmp_path, "model.pbtxt", b'node { name: "x" op: "Placeholder" }')


def test_broken_graphs_name_the_node(tmp_path):
    g = writer()
    g.placeholder("x", [1, 4])
    g.node("a", "Relu", ["b"])
    g.node("b", "Relu", ["a"])
    g.node("y", "AddV2", ["x", "a"])
    assert "node 'a' lies on a cycle" in hostile(tmp_path, "cycle.pb", g.serialize())
    g = writer()
    g.placeholder("x", [1, 4])
    g.node("y", "Relu", ["nowhere:1"])
    assert "node 'y' (Relu) reads 'nowhere', which is not a node of the graph" in hostile(tmp_path, "dangling.pb", g.serialize())
    g = writer()
    g.node("x", "Placeholder", dtype=1, shape=("shape", [-1, 4]))
    g.node("y", "Relu", ["x"])
    (tmp_path / "dynamic.pb").write_bytes(g.serialize())
    from npu_tui.core.model.onnx_file import load_model

    with pytest.raises(ModelError, match=re.escape("input 'x' has shape [-1, 4]; give its shape in INPUT_OPS (x: [1, ...])")):
        load_model(tmp_path / "dynamic.pb")
    with pytest.raises(ModelError, match=re.escape("INPUT_OPS gives it the shape [1, 100000, 100000], 10,000,000,000 elements")):
        load_model(tmp_path / "dynamic.pb", {"x": [1, 100000, 100000]})


def test_a_single_typed_value_fills_the_whole_shape_as_tf_does():
    from npu_tui.core.model.tf.graphdef import TensorProto, tensor_value

    tensor = TensorProto(dtype=1)
    for d in (2, 3):
        tensor.tensor_shape.dim.add(size=d)
    tensor.float_val.extend([0.5])
    np.testing.assert_array_equal(tensor_value(tensor, Path("m.pb"), "c"), np.full((2, 3), 0.5, np.float32))
    tensor.float_val.extend([1.5])
    np.testing.assert_array_equal(tensor_value(tensor, Path("m.pb"), "c"), [[0.5, 1.5, 1.5], [1.5, 1.5, 1.5]])
    del tensor.float_val[:]
    np.testing.assert_array_equal(tensor_value(tensor, Path("m.pb"), "c"), np.zeros((2, 3), np.float32))


@needs_fixture
def test_the_grus_table_is_the_vendors():
    from npu_tui.core.model.tf.checks import TABLE

    vendor = (FIXTURE / "gxnpuc-L.txt").read_text(encoding="utf-8")
    assert vendor.endswith(TABLE.read_text(encoding="utf-8")) and "| GRUS_OPS" in TABLE.read_text(encoding="utf-8")


@needs_fixture
def test_a_saved_config_keeps_pb_file_and_every_key(tmp_path):
    from npu_tui.core.config.writer import save_config

    shutil.copy(FIXTURE / "vendor_mnist" / "generated_pb" / "mnist_with_ckpt.pb", tmp_path / "mnist.pb")
    text = (FIXTURE / "vendor_mnist" / "config.yaml").read_text().replace("./generated_pb/mnist_with_ckpt.pb", "mnist.pb")
    (tmp_path / "config.yaml").write_text(text)
    project = open_project(tmp_path / "config.yaml")
    save_config(tmp_path / "config.yaml", replace(project.config.settings, exclude=("Variable/read/_0__cf__0",)))
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    before = yaml.safe_load(text)
    assert saved == {**before, "EXCLUDE_COMPRESS_OPS": ["Variable/read/_0__cf__0"]}
    assert "ONNX_FILE" not in saved and saved["PB_FILE"] == "mnist.pb"
    assert weight_lines(open_project(tmp_path / "config.yaml").compile()) == []


def test_pb_file_may_name_an_onnx_model_whatever_its_suffix(tmp_path):
    """The bytes decide: an ONNX model given as PB_FILE (even named model.pb) is read as ONNX."""
    from modelkit import BASE_CONFIG, conv_bn_fc, write_project

    for name in ("model.onnx", "model.pb"):
        folder = tmp_path / name.replace(".", "_")
        config = write_project(
            folder, conv_bn_fc(np.random.default_rng(0)), BASE_CONFIG.replace("ONNX_FILE: model.onnx", f"PB_FILE: {name}"), name
        )
        assert [w.name for w in open_project(config).inventory.weights] == ["conv1.weight", "fc.weight"]


def test_constant_subgraphs_fold_away_as_gxnpuc_folds_them(tmp_path):
    """Fill/Range/Tile computed from constants are folded (and numbered) before gxnpuc checks ops; the
    same Tile on an activation is an op GRUS does not run."""
    g = writer()
    g.placeholder("x", [1, 6])
    g.const("dims", np.array([6, 4], np.int32))
    g.const("half", np.array(0.5, np.float32))
    g.node("w", "Fill", ["dims", "half"], index_type=3)
    g.const("reps", np.array([1, 2], np.int32))
    g.node("tiled", "Tile", ["x", "reps"], Tmultiples=3)
    g.node("fc", "MatMul", ["x", "w"], transpose_a=False, transpose_b=False)
    save(tmp_path, g, ["fc"], {"x": [1, 6]})
    result = npu_tui("compile", "-w", str(tmp_path / "config.yaml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "w/_0__cf__0: [6, 4]"
    (got,) = run_pb(tmp_path / "model.pb", {"x": np.ones((1, 6), np.float32)}, ["fc"])
    np.testing.assert_array_equal(got, np.full((1, 4), 3.0, np.float32))
    save(tmp_path, g, ["tiled"], {"x": [1, 6]})
    result = npu_tui("compile", "--check", str(tmp_path / "config.yaml"))
    assert result.returncode == 2 and "node 'tiled' (Tile): Tile is not an op GRUS runs" in result.stdout
