"""Models whose declared sizes lie: every case is one error line naming the tensor, before anything
the size says is allocated."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from clirun import npu_tui
from modelkit import BASE_CONFIG, make_model, tensor, value
from onnx import TensorProto, helper


def base() -> onnx.ModelProto:
    return make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        [value("x", [1, 4])],
        [value("y", [1, 4])],
        [tensor("w", np.eye(4, dtype=np.float32))],
    )


def external(folder, offset: str, length: str) -> onnx.ModelProto:
    (folder / "w.bin").write_bytes(np.eye(4, dtype=np.float32).tobytes())
    model = base()
    w = model.graph.initializer[0]
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for key, val in (("location", "w.bin"), ("offset", offset), ("length", length)):
        entry = w.external_data.add()
        entry.key, entry.value = key, val
    return model


CASES = {
    "offset_not_a_number": (lambda f: external(f, "12abc", "64"), "is not a whole number"),
    "negative_offset": (lambda f: external(f, "-8", "64"), "does not lie inside"),
    "beyond_the_file": (lambda f: external(f, "32", "64"), "does not lie inside"),
    "huge_length": (lambda f: external(f, "0", "99999999999999"), "does not lie inside"),
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
