"""Models whose declared sizes lie: every case is one error line naming the tensor, before anything
the size says is allocated."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from clirun import npu_tui
from modelkit import BASE_CONFIG, make_model, tensor, value, write_project
from onnx import TensorProto, helper


def base() -> onnx.ModelProto:
    return make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        [value("x", [1, 4])],
        [value("y", [1, 4])],
        [tensor("w", np.eye(4, dtype=np.float32))],
    )


def external(folder, offset: str, length: str, location: str = "w.bin") -> onnx.ModelProto:
    (folder / "w.bin").write_bytes(np.eye(4, dtype=np.float32).tobytes())
    model = base()
    w = model.graph.initializer[0]
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for key, val in (("location", location), ("offset", offset), ("length", length)):
        entry = w.external_data.add()
        entry.key, entry.value = key, val
    return model


CASES = {
    "offset_not_a_number": (lambda f: external(f, "12abc", "64"), "is not a whole number"),
    "negative_offset": (lambda f: external(f, "-8", "64"), "does not lie inside"),
    "beyond_the_file": (lambda f: external(f, "32", "64"), "does not lie inside"),
    "huge_length": (lambda f: external(f, "0", "99999999999999"), "does not lie inside"),
    "nul_in_location": (
        lambda f: external(f, "0", "64", "w.bin\x00.txt"),
        "keeps its data at 'w.bin\\x00.txt', a name holding a NUL byte",
    ),
}


def with_dims(dims: list[int], raw: bytes) -> onnx.ModelProto:
    model = base()
    w = model.graph.initializer[0]
    del w.dims[:]
    w.dims.extend(dims)
    w.raw_data = raw
    return model


def undefined_type() -> onnx.ModelProto:
    model = base()
    model.graph.initializer[0].data_type = 0
    return model


def duplicate_names() -> onnx.ModelProto:
    model = base()
    model.graph.initializer.append(tensor("w", np.ones((4, 4), np.float32)))
    return model


CASES.update(
    {
        "negative_dims": (lambda f: with_dims([-4, 4], np.eye(4, dtype=np.float32).tobytes()), "negative dimension"),
        "absurd_dims": (lambda f: with_dims([1 << 20, 1 << 20, 1 << 10], b"\0" * 64), "is not a real weight"),
        "dims_larger_than_data": (lambda f: with_dims([40, 4], np.eye(4, dtype=np.float32).tobytes()), "its shape needs"),
        "undefined_type": (lambda f: undefined_type(), "not a known ONNX type"),
        "duplicate_initializers": (lambda f: duplicate_names(), "two initializers are named 'w'"),
    }
)


@pytest.mark.parametrize("case", sorted(CASES))
def test_sizes_a_model_declares_are_checked(tmp_path, case):
    make, expected = CASES[case]
    model = make(tmp_path)
    (tmp_path / "model.onnx").write_bytes(model.SerializeToString())
    (tmp_path / "config.yaml").write_text(BASE_CONFIG)
    result = npu_tui("compile", str(tmp_path / "config.yaml"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines


def nan_in_a_dead_unit() -> onnx.ModelProto:
    """conv_bn_fc whose fc.weight holds NaN in an output unit the graph slices away: the float model's
    outputs are finite, and the weight cannot be quantized."""
    from modelkit import conv_bn_fc

    model = conv_bn_fc(np.random.default_rng(0))
    fc = next(t for t in model.graph.initializer if t.name == "fc.weight")
    weight = onnx.numpy_helper.to_array(fc).copy()
    weight[:, 4] = np.nan
    fc.CopyFrom(tensor("fc.weight", weight))
    model.graph.node[-1].output[0] = "y_full"
    model.graph.initializer.extend(
        [tensor("starts", np.array([0])), tensor("ends", np.array([4])), tensor("axes", np.array([1]))]
    )
    model.graph.node.append(helper.make_node("Slice", ["y_full", "starts", "ends", "axes"], ["y"], name="live_units"))
    model.graph.output[0].CopyFrom(value("y", [1, 4]))
    return model


def test_an_excluded_weight_holding_nan_blocks_neither_the_sweep_nor_fix(tmp_path):
    import json

    from modelkit import write_project

    config = write_project(tmp_path, nan_in_a_dead_unit(), BASE_CONFIG + "EXCLUDE_COMPRESS_OPS: [fc]\n")
    result = npu_tui("eval", str(config), "--sensitivity", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["weight"]: row for row in json.loads(result.stdout)["sensitivity"]}
    assert list(rows) == ["conv1.weight"]  # fc.weight cannot be quantized (gxnpuc would crash on its NaN): no "alone" run
    assert rows["conv1.weight"]["alone_sqnr_db"] > 20  # the others are measured
    assert "values beyond" not in result.stderr  # NaN is not an overflow
    fixed = npu_tui("fix", str(config), "--min-sqnr", "60", "--json")
    assert fixed.returncode in (0, 3), fixed.stderr
    doc = json.loads(fixed.stdout)
    assert doc["settings"]["EXCLUDE_COMPRESS_OPS"] and "fc.weight" not in json.dumps(doc["changes"])


def old_opset(opset: int) -> onnx.ModelProto:
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        [value("x", [1, 4])],
        [value("y", [1, 4])],
        [tensor("w", np.eye(4, dtype=np.float32))],
        opset=opset,
    )
    model.ir_version = 3
    return model


@pytest.mark.parametrize("command", [("compile", "--sim", "{folder}/sim.onnx"), ("eval",)], ids=["compile_sim", "eval"])
def test_an_opset_older_than_6_is_refused_where_a_graph_is_built(tmp_path, command):
    config = write_project(tmp_path, old_opset(5), BASE_CONFIG)
    result = npu_tui(command[0], str(config), *[a.format(folder=tmp_path) for a in command[1:]])
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert "opset 5" in result.stderr and "onnx.version_converter" in result.stderr
    assert npu_tui("compile", str(config)).returncode == 0  # the weights alone can still be compiled
    assert not (tmp_path / "sim.onnx").exists()


def test_compile_sim_writes_a_bfloat16_model(tmp_path):
    weight = np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32)
    bf16 = helper.make_tensor(
        "wb", TensorProto.BFLOAT16, [4, 4], vals=(weight.view(np.uint32) >> 16).astype(np.uint16).tobytes(), raw=True
    )
    model = make_model(
        [
            helper.make_node("Cast", ["wb"], ["wf"], to=TensorProto.FLOAT, name="to_float"),
            helper.make_node("MatMul", ["x", "wf"], ["y"], name="fc"),
        ],
        [value("x", [1, 4])],
        [value("y", [1, 4])],
        [bf16],
    )
    config = write_project(tmp_path, model, BASE_CONFIG)
    result = npu_tui("compile", str(config), "--sim", str(tmp_path / "sim.onnx"))
    assert result.returncode == 0, result.stderr
    import onnxruntime as ort

    sim = ort.InferenceSession(str(tmp_path / "sim.onnx"), providers=["CPUExecutionProvider"])
    rows = np.concatenate([sim.run(None, {"x": row[None]})[0] for row in np.eye(4, dtype=np.float32)])
    as_bf16 = ((weight.view(np.uint32) >> 16) << 16).view(np.float32)
    assert np.abs(rows - as_bf16).max() < 0.02 * np.abs(as_bf16).max()  # the int8 weight, read back through bfloat16
