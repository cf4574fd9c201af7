"""Open a model file safely and cheaply: an ONNX file, or a TensorFlow frozen GraphDef converted to ONNX.
Clear errors for wrong files, external data kept inside the model's folder, and an ONNX file's weight
bytes left in the file until the inventory reads them into arrays."""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx.helper import tensor_dtype_to_np_dtype

from ..errors import ModelError, UserError
from ..safe_files import require_regular
from .graph import iter_graphs, iter_nodes, iter_tensors
from .wire import Blob, WireError, split_model

MAX_ELEMENTS = 1 << 33  # 8 G elements: far beyond any weight an NPU holds, still checked before allocating
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


@dataclass(frozen=True)
class DataRef:
    """Where a tensor's bytes are: a range of the model file or of an external data file."""

    file: Path
    blob: Blob


@dataclass
class LoadedModel:
    """The model's structure, with the raw data of main-graph initializers still on disk."""

    path: Path
    model: onnx.ModelProto
    data: dict[str, DataRef] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # what gxnpuc will refuse once an ONNX model is a TF graph

    def read(self, tensor: onnx.TensorProto) -> np.ndarray:
        """The tensor's values, read from disk when its data was left there."""
        ref = self.data.get(tensor.name)
        if ref is not None:
            return _read_ref(self.path, tensor, ref)
        _dtype(self.path, tensor)
        _count(self.path, tensor)
        try:
            return onnx.numpy_helper.to_array(tensor)
        except (ValueError, TypeError) as exc:  # data that does not fill its declared shape
            raise ModelError(
                f"{self.path}: tensor {tensor.name!r}: its data does not match its shape {list(tensor.dims)} ({_short(exc)})"
            ) from None


def _dtype(path: Path, tensor: onnx.TensorProto) -> np.dtype:
    try:
        return np.dtype(tensor_dtype_to_np_dtype(tensor.data_type)).newbyteorder("<")
    except (KeyError, TypeError, ValueError):
        raise ModelError(
            f"{path}: tensor {tensor.name!r} has element type {tensor.data_type}, which is not a known ONNX type"
        ) from None


def _count(path: Path, tensor: onnx.TensorProto) -> int:
    """Its element count, checked before anything is allocated for it."""
    if any(d < 0 for d in tensor.dims):
        raise ModelError(f"{path}: tensor {tensor.name!r} declares a negative dimension in {list(tensor.dims)}")
    count = 1
    for d in tensor.dims:
        count *= int(d)
    if count > MAX_ELEMENTS:
        raise ModelError(
            f"{path}: tensor {tensor.name!r} declares {count:,} elements ({list(tensor.dims)}); that is not a real weight"
        )
    return count


def _read_ref(path: Path, tensor: onnx.TensorProto, ref: DataRef) -> np.ndarray:
    dtype = _dtype(path, tensor)
    count = _count(path, tensor)
    if ref.blob.length != count * dtype.itemsize:
        raise ModelError(
            f"{path}: tensor {tensor.name!r} holds {ref.blob.length} bytes; its shape needs {count * dtype.itemsize}"
        )
    array = np.empty(count, dtype)
    with open(ref.file, "rb") as handle:
        handle.seek(ref.blob.offset)
        if handle.readinto(array.view(np.uint8).data) != ref.blob.length:  # bytes: ml_dtypes types have no buffer format
            raise ModelError(f"{path}: tensor {tensor.name!r}: data in {ref.file.name} is truncated")
    return array.reshape(tuple(tensor.dims))


def require_regular_model(path: Path) -> None:
    try:
        require_regular(path, "model file")
    except UserError as exc:
        raise ModelError(str(exc)) from None


def load_model(
    path: str | Path, input_shapes: dict[str, list[int]] | None = None, output_names: list[str] | None = None
) -> LoadedModel:
    """Parse the model's structure and refuse files that are not float models: a TensorFlow frozen
    GraphDef (told by its bytes, whatever its name) is converted to ONNX first (INPUT_OPS and OUTPUT_OPS
    fix its inputs and outputs; what gxnpuc refuses in it is refused), an ONNX file is read as it is,
    what gxnpuc would refuse in its TensorFlow form only warned of (onnx_checks.py): gxnpuc never reads it."""
    path = Path(path)
    require_regular_model(path)
    if path.suffix.lower() in (".pbtxt", ".h5", ".tflite", ".keras"):
        raise ModelError(f"{path}: a {path.suffix} model; npu-tui reads what gxnpuc reads, a frozen GraphDef (.pb), or ONNX")
    if is_graphdef(path):
        from .tf.cache import load_pb

        model = load_pb(path, dict(input_shapes or {}), list(output_names) if output_names else None)
        open_unsized_dims(model)
        return LoadedModel(path, model)
    try:
        skeleton, blobs = _read_structure(path)
        model = onnx.ModelProto()
        model.ParseFromString(skeleton)
    except (WireError, DecodeError, RuntimeError, ValueError) as exc:
        if path.suffix.lower() == ".pb":
            raise ModelError(
                f"{path}: not a TensorFlow frozen GraphDef (nor an ONNX model); the file may be truncated or of another kind"
            ) from None
        raise ModelError(f"{path}: not an ONNX model ({_short(exc)}); the file may be truncated") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model: {exc.strerror}") from None
    if model.ir_version <= 0 or not model.graph.node:
        raise ModelError(f"{path}: not an ONNX model (no graph inside); the file may be truncated or of another kind")
    loaded = LoadedModel(path, model)
    for tensor, blob in zip(model.graph.initializer, blobs):
        if blob is not None:
            loaded.data[tensor.name] = DataRef(path, blob)
    _refuse_duplicates(model, path)
    _external_data(loaded)
    _refuse_quantized(model, path)
    from .onnx_checks import onnx_warnings

    loaded.warnings = onnx_warnings(path, model, input_shapes)
    open_unsized_dims(model)
    return loaded


def is_graphdef(path: Path) -> bool:
    """A TensorFlow frozen GraphDef, told by its bytes (an ONNX file fails at its first field)."""
    from .tf.graphdef import looks_like_graphdef

    require_regular_model(path)
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                return path.suffix.lower() == ".pb"
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                return looks_like_graphdef(mapped)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model: {exc.strerror}") from None


def open_unsized_dims(model: onnx.ModelProto) -> None:
    """Exporters write 'any size' as a symbol, as -1 or as 0; onnxruntime takes only the symbol (it
    holds 0 to mean zero), so the graphs npu-tui builds say it that way."""
    for graph, _ in iter_graphs(model.graph):
        for info in [*graph.input, *graph.output, *graph.value_info]:
            if not info.type.HasField("tensor_type"):
                continue
            for index, dim in enumerate(info.type.tensor_type.shape.dim):
                if dim.HasField("dim_value") and dim.dim_value <= 0:
                    dim.dim_param = f"{info.name}_dim{index}"


def _read_structure(path: Path) -> tuple[bytes, list[Blob | None]]:
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            raise WireError("the file is empty")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return split_model(mapped)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _external_data(loaded: LoadedModel) -> None:
    """Point main-graph initializers at their external files; load the few others into the message."""
    folder = loaded.path.resolve().parent
    main = {id(t) for t in loaded.model.graph.initializer}
    for tensor, _ in iter_tensors(loaded.model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        if "\0" in location:  # no file can have such a name; the operating system refuses to look
            raise ModelError(
                f"{loaded.path}: tensor {tensor.name!r} keeps its data at {location!r:.80}, a name holding a NUL byte; "
                "the model file is damaged: export it again"
            )
        target = (folder / location).resolve()
        if not location or os.path.isabs(location) or not target.is_relative_to(folder):
            raise ModelError(
                f"{loaded.path}: tensor {tensor.name!r} keeps its data at {location!r}, outside the model's folder; "
                "external data must sit beside the model"
            )
        try:
            require_regular(target, f"external data of tensor {tensor.name!r}")
        except UserError as exc:
            raise ModelError(f"{loaded.path}: {exc}") from None
        size = target.stat().st_size
        try:
            offset = int(info.get("offset", 0) or 0)
            length = int(info["length"]) if info.get("length") else size - offset
        except ValueError:
            raise ModelError(
                f"{loaded.path}: tensor {tensor.name!r}: external data offset {info.get('offset')!r:.40} or length "
                f"{info.get('length')!r:.40} is not a whole number"
            ) from None
        if offset < 0 or length < 0 or offset + length > size:
            raise ModelError(
                f"{loaded.path}: tensor {tensor.name!r}: external data at offset {offset} length {length} does not lie "
                f"inside {location!r} ({size} bytes)"
            )
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
        ref = DataRef(target, Blob(offset, length))
        if id(tensor) in main:
            loaded.data[tensor.name] = ref
        else:
            tensor.raw_data = _read_ref(loaded.path, tensor, ref).tobytes()


def _refuse_duplicates(model: onnx.ModelProto, path: Path) -> None:
    for graph, scope in iter_graphs(model.graph):
        seen: set[str] = set()
        for tensor in graph.initializer:
            if tensor.name in seen:
                raise ModelError(
                    f"{path}: two initializers are named {tensor.name!r}{' in ' + scope if scope else ''}; names must be unique"
                )
            seen.add(tensor.name)


def _refuse_quantized(model: onnx.ModelProto, path: Path) -> None:
    for ref in iter_nodes(model.graph):
        if ref.node.op_type in QUANTIZED_OPS:
            raise ModelError(
                f"{path}: the model is already quantized (node {ref.label!r} is {ref.node.op_type}); "
                "give npu-tui the float model that gxnpuc compiles"
            )
