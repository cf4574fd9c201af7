"""What the TF reader records in the ONNX model it builds, for the inventory and the reports: the
weights' TensorFlow shapes (what `gxnpuc -w` prints) and the TF node names that reach each weight."""

from __future__ import annotations

import json

import onnx

SOURCE_KEY = "npu_tui.source"
TENSORFLOW = "tensorflow"
TF_SHAPES_KEY = "npu_tui.tf_shapes"
TF_ALIASES_KEY = "npu_tui.tf_aliases"
TF_NEVER_COMPRESSED_KEY = "npu_tui.tf_never_compressed"  # depthwise kernels and cin=1 Conv2D kernels: fp16 always
TF_STORED_INTS_KEY = "npu_tui.tf_stored_ints"  # int constants gxnpuc keeps in weight memory: name -> elements


def _props(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def is_tensorflow(model: onnx.ModelProto) -> bool:
    return _props(model).get(SOURCE_KEY) == TENSORFLOW


def _json_map(model: onnx.ModelProto, key: str) -> dict:
    text = _props(model).get(key)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def tf_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """initializer name -> its TensorFlow shape, where the reader recorded one."""
    found = _json_map(model, TF_SHAPES_KEY)
    return {
        str(k): tuple(int(d) for d in v) for k, v in found.items() if isinstance(v, list) and all(isinstance(d, int) for d in v)
    }


def tf_aliases(model: onnx.ModelProto) -> dict[str, str]:
    """TF node name (a Const, its /read Identity, an ExpandDims) -> the gxnpuc name of the weight it reaches."""
    return {str(k): str(v) for k, v in _json_map(model, TF_ALIASES_KEY).items() if isinstance(v, str)}


def stored_ints(model: onnx.ModelProto) -> dict[str, int]:
    """The int constants that survive gxnpuc's folding (an ExpandDims dim, a Split or ConcatV2 axis): gxnpuc
    stores each in weight memory like any constant, 2 bytes an element (conv1d: 2 bytes of Mem6, lstm: 4)."""
    return {str(k): int(v) for k, v in _json_map(model, TF_STORED_INTS_KEY).items() if isinstance(v, int) and v >= 0}


def never_compressed(model: onnx.ModelProto) -> frozenset[str]:
    """Kernels gxnpuc always stores as fp16 (SPEC section 5): they are constants, not weights."""
    text = _props(model).get(TF_NEVER_COMPRESSED_KEY)
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return frozenset()
    return frozenset(str(v) for v in value) if isinstance(value, list) else frozenset()


def tf_op(node: onnx.NodeProto) -> tuple[str, str | None] | None:
    """(TF op, helper role) from a node the reader built (doc_string `tf:<Op>` or `tf:<Op>:<role>`); a
    node with a role (a layout Transpose, half of a SquaredDifference) is a helper, not a TF node."""
    if not node.doc_string.startswith("tf:"):
        return None
    op, _, role = node.doc_string[3:].partition(":")
    return op, role or None
