"""Write a frozen GraphDef from numpy, with the same descriptor the reader uses: how the bundled samples'
.pb files are made without TensorFlow, and how tests build the graphs gxnpuc would see."""

from __future__ import annotations

from typing import Any

import numpy as np

from .graphdef import DT_FLOAT, GraphDef

TYPE_ATTRS = frozenset({"T", "dtype", "DstT", "SrcT", "Tidx", "out_type", "Tpaddings", "Tshape", "Tperm", "Index"})
DTYPE_OF = {np.dtype(np.float32): 1, np.dtype(np.int32): 3, np.dtype(np.int64): 9, np.dtype(np.float16): 19}


class GraphWriter:
    """Nodes in the order they are added, as TF's freeze_graph writes them."""

    def __init__(self) -> None:
        self.graph = GraphDef()
        self.graph.versions.producer = 134  # TF 1.15's GraphDef version

    def node(self, name: str, op: str, inputs: list[str] | tuple[str, ...] = (), **attrs: Any) -> str:
        node = self.graph.node.add(name=name, op=op)
        node.input.extend(inputs)
        if op not in ("Const", "Placeholder") and "T" not in attrs:
            attrs["T"] = DT_FLOAT
        for key, value in attrs.items():
            _set_attr(node.attr[key], key, value)
        return name

    def placeholder(self, name: str, shape: list[int]) -> str:
        return self.node(name, "Placeholder", dtype=DT_FLOAT, shape=("shape", shape))

    def const(self, name: str, value: np.ndarray | float | int | list) -> str:
        array = np.asarray(value)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        if array.dtype == np.int64 and not isinstance(value, np.ndarray):
            array = array.astype(np.int32)
        return self.node(name, "Const", dtype=DTYPE_OF[array.dtype], value=array)

    def variable(self, name: str, value: np.ndarray) -> str:
        """A frozen variable: its Const and the `<name>/read` Identity that every reader goes through."""
        self.const(name, value)
        return self.node(f"{name}/read", "Identity", [name])

    def serialize(self) -> bytes:
        return self.graph.SerializeToString()


def _set_attr(attr: Any, key: str, value: Any) -> None:
    if isinstance(value, tuple) and value[0] == "shape":
        attr.shape.SetInParent()
        for d in value[1]:
            attr.shape.dim.add(size=int(d))
    elif isinstance(value, np.ndarray):
        _fill_tensor(attr.tensor, value)
    elif key in TYPE_ATTRS:
        attr.type = int(value)
    elif isinstance(value, bool):
        attr.b = value
    elif isinstance(value, int):
        attr.i = value
    elif isinstance(value, float):
        attr.f = value
    elif isinstance(value, str):
        attr.s = value.encode()
    elif isinstance(value, list):
        attr.list.SetInParent()
        if all(isinstance(v, int) for v in value):
            attr.list.i.extend(value)
        else:
            attr.list.f.extend(float(v) for v in value)
    else:
        raise TypeError(f"attribute {key}: {type(value).__name__} is not written")


def _fill_tensor(tensor: Any, array: np.ndarray) -> None:
    tensor.dtype = DTYPE_OF[array.dtype]
    tensor.tensor_shape.SetInParent()
    for d in array.shape:
        tensor.tensor_shape.dim.add(size=int(d))
    if array.size == 1 and array.dtype == np.int32:
        tensor.int_val.append(int(array.reshape(-1)[0]))  # how TF writes a scalar int: the typed field
    else:
        tensor.tensor_content = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
