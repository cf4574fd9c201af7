"""Read a TensorFlow frozen GraphDef without TensorFlow.

Decision (issue 17): npu-tui has no TensorFlow dependency. The message classes for the subset of
tensorflow/core/framework/{graph,node_def,attr_value,tensor,tensor_shape,types}.proto that a frozen graph
uses are built at import time from a hand-written descriptor (descriptor_pb2 + message_factory), with
TensorFlow's real field numbers, so parsing runs in the protobuf runtime onnx already brings (its C
implementation). DataType fields are declared int32 (an enum is a varint on the wire, so the bytes are
the same) so that an unknown dtype stays a number we can name in a message instead of vanishing.
The graph is then converted onto an onnx.ModelProto (to_onnx.py) for the existing ONNX pipeline.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from ...errors import ModelError, UserError
from ...safe_files import require_regular
from ...text import printable
from ..wire import WireError, read_varint

MAX_ELEMENTS = 1 << 25  # 32 M elements (128 MB of float32): far beyond any GX8002 tensor, checked before allocating
MAX_FILE_BYTES = 2 << 30  # protobuf's own limit for one message

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_TYPES = {
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
    "bool": _F.TYPE_BOOL,
}
_PACKAGE = "npu_tui.tensorflow"

# message name -> [(field name, number, type or message name, repeated, oneof index or None)]
_MESSAGES: dict[str, list[tuple[str, int, str, bool, int | None]]] = {
    "TensorShapeProto.Dim": [("size", 1, "int64", False, None), ("name", 2, "string", False, None)],
    "TensorShapeProto": [("dim", 2, "TensorShapeProto.Dim", True, None), ("unknown_rank", 3, "bool", False, None)],
    "TensorProto": [
        ("dtype", 1, "int32", False, None),
        ("tensor_shape", 2, "TensorShapeProto", False, None),
        ("version_number", 3, "int32", False, None),
        ("tensor_content", 4, "bytes", False, None),
        ("float_val", 5, "float", True, None),
        ("double_val", 6, "double", True, None),
        ("int_val", 7, "int32", True, None),
        ("string_val", 8, "bytes", True, None),
        ("scomplex_val", 9, "float", True, None),
        ("int64_val", 10, "int64", True, None),
        ("bool_val", 11, "bool", True, None),
        ("dcomplex_val", 12, "double", True, None),
        ("half_val", 13, "int32", True, None),
        ("uint32_val", 16, "uint32", True, None),
        ("uint64_val", 17, "uint64", True, None),
    ],
    "AttrValue.ListValue": [
        ("s", 2, "bytes", True, None),
        ("i", 3, "int64", True, None),
        ("f", 4, "float", True, None),
        ("b", 5, "bool", True, None),
        ("type", 6, "int32", True, None),
        ("shape", 7, "TensorShapeProto", True, None),
        ("tensor", 8, "TensorProto", True, None),
        ("func", 9, "NameAttrList", True, None),
    ],
    "AttrValue": [
        ("list", 1, "AttrValue.ListValue", False, 0),
        ("s", 2, "bytes", False, 0),
        ("i", 3, "int64", False, 0),
        ("f", 4, "float", False, 0),
        ("b", 5, "bool", False, 0),
        ("type", 6, "int32", False, 0),
        ("shape", 7, "TensorShapeProto", False, 0),
        ("tensor", 8, "TensorProto", False, 0),
        ("placeholder", 9, "string", False, 0),
        ("func", 10, "NameAttrList", False, 0),
    ],
    "NameAttrList.AttrEntry": [("key", 1, "string", False, None), ("value", 2, "AttrValue", False, None)],
    "NameAttrList": [("name", 1, "string", False, None), ("attr", 2, "NameAttrList.AttrEntry", True, None)],
    "NodeDef.AttrEntry": [("key", 1, "string", False, None), ("value", 2, "AttrValue", False, None)],
    "NodeDef": [
        ("name", 1, "string", False, None),
        ("op", 2, "string", False, None),
        ("input", 3, "string", True, None),
        ("device", 4, "string", False, None),
        ("attr", 5, "NodeDef.AttrEntry", True, None),
    ],
    "VersionDef": [
        ("producer", 1, "int32", False, None),
        ("min_consumer", 2, "int32", False, None),
        ("bad_consumers", 3, "int32", True, None),
    ],
    "GraphDef": [
        ("node", 1, "NodeDef", True, None),
        ("version", 3, "int32", False, None),
        ("versions", 4, "VersionDef", False, None),
    ],
}
_MAP_ENTRIES = frozenset({"NodeDef.AttrEntry", "NameAttrList.AttrEntry"})
_ONEOFS = {"AttrValue": ["value"]}


def _descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The hand-written FileDescriptorProto: nested messages sit inside their parents, as in TF's files."""
    proto = descriptor_pb2.FileDescriptorProto(name="npu_tui/tensorflow_graph.proto", package=_PACKAGE, syntax="proto3")
    built: dict[str, descriptor_pb2.DescriptorProto] = {}
    for full in sorted(_MESSAGES, key=lambda n: n.count(".")):
        parent, _, short = full.rpartition(".")
        message = built[parent].nested_type.add(name=short) if parent else proto.message_type.add(name=short)
        built[full] = message
        if full in _MAP_ENTRIES:
            message.options.map_entry = True
        for oneof in _ONEOFS.get(full, []):
            message.oneof_decl.add(name=oneof)
        for name, number, kind, repeated, oneof_index in _MESSAGES[full]:
            field = message.field.add(name=name, number=number, label=_REPEATED if repeated else _OPTIONAL)
            if kind in _TYPES:
                field.type = _TYPES[kind]
            else:
                field.type = _F.TYPE_MESSAGE
                field.type_name = f".{_PACKAGE}.{kind}"
            if oneof_index is not None:
                field.oneof_index = oneof_index
    return proto


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_descriptor())
GraphDef: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.GraphDef"))
NodeDef: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.NodeDef"))
AttrValue: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.AttrValue"))
TensorProto: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.TensorProto"))
TensorShapeProto: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.TensorShapeProto"))

# types.proto DataType -> (numpy dtype, the TensorProto field that holds typed values)
DTYPES: dict[int, tuple[np.dtype, str]] = {
    1: (np.dtype(np.float32), "float_val"),
    2: (np.dtype(np.float64), "double_val"),
    3: (np.dtype(np.int32), "int_val"),
    4: (np.dtype(np.uint8), "int_val"),
    5: (np.dtype(np.int16), "int_val"),
    6: (np.dtype(np.int8), "int_val"),
    9: (np.dtype(np.int64), "int64_val"),
    10: (np.dtype(np.bool_), "bool_val"),
    17: (np.dtype(np.uint16), "int_val"),
    19: (np.dtype(np.float16), "half_val"),
    22: (np.dtype(np.uint32), "uint32_val"),
    23: (np.dtype(np.uint64), "uint64_val"),
}
DTYPE_NAMES = {
    0: "DT_INVALID", 1: "DT_FLOAT", 2: "DT_DOUBLE", 3: "DT_INT32", 4: "DT_UINT8", 5: "DT_INT16", 6: "DT_INT8", 7: "DT_STRING",
    8: "DT_COMPLEX64", 9: "DT_INT64", 10: "DT_BOOL", 14: "DT_BFLOAT16", 17: "DT_UINT16", 18: "DT_COMPLEX128", 19: "DT_HALF",
    20: "DT_RESOURCE", 21: "DT_VARIANT", 22: "DT_UINT32", 23: "DT_UINT64",
}  # fmt: skip
DT_FLOAT = 1
DT_INT32 = 3
REF_OFFSET = 100  # DT_FLOAT_REF = 101: a variable's reference type, the same values


_GRAPHDEF_WIRE = {1: 2, 2: 2, 3: 0, 4: 2}  # node, library, version, versions: their wire types


def looks_like_graphdef(data: bytes | memoryview | mmap.mmap) -> bool:
    """True when every top-level field is one GraphDef has, with its wire type. An ONNX ModelProto starts
    with ir_version (field 1 as a varint) and so fails at once; so does text, a zip or an image."""
    pos, end, seen_node = 0, len(data), False
    try:
        while pos < end:
            key, pos = read_varint(data, pos, end)
            number, wire = key >> 3, key & 7
            if _GRAPHDEF_WIRE.get(number) != wire:
                return False
            if wire == 0:
                _, pos = read_varint(data, pos, end)
                continue
            length, pos = read_varint(data, pos, end)
            if pos + length > end:
                return False
            pos += length
            seen_node = seen_node or number == 1
    except WireError:
        return False
    return seen_node


def read_graphdef(path: str | Path) -> Any:
    """Parse a frozen GraphDef, refusing what is not one with a one-line ModelError naming the file."""
    path = Path(path)
    try:
        require_regular(path, "model file")
    except UserError as exc:
        raise ModelError(str(exc)) from None
    try:
        size = os.stat(path).st_size
        if size > MAX_FILE_BYTES:
            raise ModelError(f"{path}: {size:,} bytes is more than one protobuf message can hold (2 GB); not a frozen GraphDef")
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model: {exc.strerror}") from None
    return parse_graphdef(data, path)


def parse_graphdef(data: bytes, path: Path) -> Any:
    if not data:
        raise ModelError(f"{path}: the file is empty; PB_FILE must be a TensorFlow frozen graph (.pb)")
    if not looks_like_graphdef(data):
        raise ModelError(
            f"{path}: not a TensorFlow frozen GraphDef (the bytes do not have its layout); the file may be truncated or of another kind"
        )
    graph = GraphDef()
    try:
        graph.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelError(
            f"{path}: not a TensorFlow frozen GraphDef ({str(exc).splitlines()[0] if str(exc) else 'cannot parse'}); the file may be truncated"
        ) from None
    seen: set[str] = set()
    for node in graph.node:
        if not node.name or not node.op:
            raise ModelError(
                f"{path}: a node without {'a name' if not node.name else 'an op'} ({printable(node.name or node.op)!r}); not a valid GraphDef"
            )
        if node.name in seen:
            raise ModelError(f"{path}: two nodes are named {printable(node.name)!r}; names must be unique in a GraphDef")
        seen.add(node.name)
    return graph


def dtype_name(dtype: int) -> str:
    base = dtype - REF_OFFSET if dtype > REF_OFFSET else dtype
    return DTYPE_NAMES.get(base, f"DataType {dtype}")


def numpy_dtype(dtype: int, path: Path, node: str) -> np.dtype:
    """The numpy type of a TF DataType (reference types as their value type), or a ModelError."""
    base = dtype - REF_OFFSET if dtype > REF_OFFSET else dtype
    if base not in DTYPES:
        raise ModelError(
            f"{path}: node {printable(node)!r} has element type {dtype_name(dtype)}, which npu-tui cannot read (GRUS models are float32 with int32/int64 shapes)"
        )
    return DTYPES[base][0]


def shape_of(shape: Any, path: Path, node: str) -> list[int] | None:
    """A TensorShapeProto as a list (-1 for an unknown size), or None for an unknown rank."""
    if shape.unknown_rank:
        return None
    dims = [int(d.size) for d in shape.dim]
    if any(d < -1 for d in dims):
        raise ModelError(
            f"{path}: node {printable(node)!r} declares dimension {min(dims)} in {dims}; sizes are >= 0 (or -1 for unknown)"
        )
    return dims


def tensor_value(tensor: Any, path: Path, node: str) -> np.ndarray:
    """A TensorProto's values: tensor_content when present, else the typed field, with TensorFlow's own
    rule (no values: zeros; fewer values than the shape holds: the last one repeated)."""
    dtype = numpy_dtype(tensor.dtype, path, node)
    shape = shape_of(tensor.tensor_shape, path, node)
    if shape is None or any(d < 0 for d in shape):
        raise ModelError(f"{path}: constant {printable(node)!r} has no fully known shape; a frozen graph's constants have one")
    count = 1
    for d in shape:
        count *= d
    if count > MAX_ELEMENTS:
        raise ModelError(
            f"{path}: constant {printable(node)!r} declares {count:,} elements ({shape}); that is not a real GX8002 tensor"
        )
    if tensor.tensor_content:
        content = tensor.tensor_content
        if len(content) != count * dtype.itemsize:
            raise ModelError(
                f"{path}: constant {printable(node)!r} holds {len(content):,} bytes in tensor_content; its shape {shape} of "
                f"{dtype_name(tensor.dtype)} needs {count * dtype.itemsize:,}"
            )
        return np.frombuffer(content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    field = DTYPES[tensor.dtype - REF_OFFSET if tensor.dtype > REF_OFFSET else tensor.dtype][1]
    values = getattr(tensor, field)
    if dtype == np.float16:
        flat = np.asarray(values, dtype=np.uint16).view(np.float16) if len(values) else np.zeros(0, np.float16)
    else:
        flat = np.asarray(values, dtype=dtype) if len(values) else np.zeros(0, dtype)
    if flat.size >= count:
        return flat[:count].reshape(shape)
    if flat.size == 0:
        return np.zeros(shape, dtype)
    return np.concatenate([flat, np.full(count - flat.size, flat[-1], dtype)]).reshape(shape)
