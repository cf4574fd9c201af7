"""Open an ONNX file safely: clear errors for wrong files, external data kept inside the model folder."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from .errors import ModelError
from .graph import iter_tensors

QUANTIZED_OPS = frozenset(
    {
        "QLinearConv",
        "QLinearMatMul",
        "ConvInteger",
        "MatMulInteger",
        "DequantizeLinear",
        "QuantizeLinear",
        "DynamicQuantizeLinear",
        "QGemm",
        "QAttention",
        "DynamicQuantizeMatMul",
        "MatMulNBits",
    }
)


def load_model(path: str | Path) -> onnx.ModelProto:
    """Parse the model, load its external data, and refuse files that are not float ONNX models."""
    path = Path(path)
    if path.is_dir():
        raise ModelError(f"{path}: is a folder; the model must be an .onnx file")
    if not path.exists():
        raise ModelError(f"{path}: model file not found")
    if path.suffix.lower() in (".pb", ".pbtxt", ".h5", ".tflite"):
        raise ModelError(f"{path}: a TensorFlow model; npu-tui reads ONNX: export it (for example with tf2onnx)")
    model = onnx.ModelProto()
    try:
        with open(path, "rb") as handle:
            model.ParseFromString(handle.read())
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelError(f"{path}: not an ONNX model ({_short(exc)}); the file may be truncated") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model: {exc.strerror}") from None
    if model.ir_version <= 0 or not model.graph.node:
        raise ModelError(f"{path}: not an ONNX model (no graph inside); the file may be truncated or of another kind")
    _load_external_data(model, path)
    _refuse_quantized(model, path)
    return model


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    folder = path.resolve().parent
    for tensor, _ in iter_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        target = (folder / location).resolve()
        if not location or os.path.isabs(location) or not target.is_relative_to(folder):
            raise ModelError(
                f"{path}: tensor {tensor.name!r} keeps its data at {location!r}, outside the model's folder; "
                "external data must sit beside the model"
            )
        offset = int(info.get("offset", 0) or 0)
        length = int(info["length"]) if info.get("length") else -1
        try:
            with open(target, "rb") as handle:
                handle.seek(offset)
                data = handle.read(length)
        except OSError as exc:
            raise ModelError(f"{path}: tensor {tensor.name!r}: cannot read external data {location!r}: {exc.strerror}") from None
        if length >= 0 and len(data) != length:
            raise ModelError(f"{path}: tensor {tensor.name!r}: external data {location!r} is truncated")
        tensor.raw_data = data
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT


def _refuse_quantized(model: onnx.ModelProto, path: Path) -> None:
    from .graph import iter_nodes

    for ref in iter_nodes(model.graph):
        if ref.node.op_type in QUANTIZED_OPS:
            raise ModelError(
                f"{path}: the model is already quantized (node {ref.label!r} is {ref.node.op_type}); "
                "give npu-tui the float model that gxnpuc compiles"
            )
