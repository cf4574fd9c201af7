"""Write a model whose large initializers are given as numpy arrays, one tensor in memory at a time.

A protobuf message is the concatenation of its fields, so the graph is written as its small
structural part followed by one initializer field per array: a 1 GB model never exists twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np
import onnx
from onnx.helper import tensor_dtype_to_np_dtype

from ..errors import InternalError
from ..safe_files import atomic_write
from .wire import GRAPH_INITIALIZER, LENGTH_DELIMITED, MODEL_GRAPH, TENSOR_RAW_DATA
from .wire import encode_varint as varint

MODEL_GRAPH_TAG = varint(MODEL_GRAPH << 3 | LENGTH_DELIMITED)
GRAPH_INITIALIZER_TAG = varint(GRAPH_INITIALIZER << 3 | LENGTH_DELIMITED)
TENSOR_RAW_DATA_TAG = varint(TENSOR_RAW_DATA << 3 | LENGTH_DELIMITED)
WRITE_CHUNK = 1 << 18  # elements converted per write


def write_model(model: onnx.ModelProto, arrays: dict[str, np.ndarray], path: str | Path) -> None:
    """Save `model`, taking the data of each main-graph initializer named in `arrays` from there."""
    path = Path(path)
    graph = onnx.GraphProto()
    graph.CopyFrom(model.graph)
    streamed = [t for t in graph.initializer if t.name in arrays]
    kept = [t for t in graph.initializer if t.name not in arrays]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    header = onnx.ModelProto()
    header.CopyFrom(model)
    header.ClearField("graph")
    graph_bytes = graph.SerializeToString()
    entries = []
    for tensor in streamed:
        dtype = np.dtype(tensor_dtype_to_np_dtype(tensor.data_type))
        head = onnx.TensorProto(name=tensor.name, dims=tensor.dims, data_type=tensor.data_type).SerializeToString()
        size = arrays[tensor.name].size
        if size != int(np.prod(tensor.dims)):  # the file would parse, and hold a tensor whose data does not fit it
            raise InternalError(f"{tensor.name!r}: {size} values for an initializer of shape {list(tensor.dims)}")
        nbytes = size * dtype.itemsize
        length = len(head) + len(TENSOR_RAW_DATA_TAG) + len(varint(nbytes)) + nbytes
        entries.append((tensor.name, dtype, head, nbytes, length))
    graph_length = len(graph_bytes) + sum(1 + len(varint(e[4])) + e[4] for e in entries)
    with atomic_write(path) as handle:
        handle.write(header.SerializeToString())
        handle.write(MODEL_GRAPH_TAG + varint(graph_length))
        handle.write(graph_bytes)
        for name, dtype, head, nbytes, length in entries:
            handle.write(GRAPH_INITIALIZER_TAG + varint(length) + head + TENSOR_RAW_DATA_TAG + varint(nbytes))
            _write_data(handle, arrays[name], dtype.newbyteorder("<"))


def _write_data(handle: IO[bytes], values: np.ndarray, dtype: np.dtype) -> None:
    """The values as raw little-endian `dtype`, converted a chunk at a time into one reused buffer: a
    whole converted copy per tensor would cost its size in fresh pages again for every tensor.
    Written as bytes: bfloat16 and the float8 types (ml_dtypes) have no buffer format of their own."""
    flat = values.reshape(-1)
    if flat.dtype == dtype and flat.flags.c_contiguous:
        handle.write(flat.view(np.uint8).data)
        return
    buffer = np.empty(min(flat.size, WRITE_CHUNK), dtype)
    for start in range(0, flat.size, WRITE_CHUNK):
        part = flat[start : start + WRITE_CHUNK]
        out = buffer[: part.size]
        np.copyto(out, part, casting="unsafe")
        handle.write(out.view(np.uint8).data)
