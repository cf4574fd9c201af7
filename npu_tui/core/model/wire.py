"""Split an ONNX file into its small structure and the byte ranges of its initializers' raw data.

Parsing a whole ModelProto holds every weight twice (file bytes and message) and protobuf never gives
the memory back. Reading the wire format directly, the structure is parsed alone and each weight is
later read straight from the file into its numpy array.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass

MODEL_GRAPH = 7
GRAPH_INITIALIZER = 5
TENSOR_RAW_DATA = 9
LENGTH_DELIMITED = 2
Buffer = bytes | bytearray | memoryview | mmap.mmap  # a model file's bytes, read or mapped


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


@dataclass(frozen=True)
class Blob:
    """Where one initializer's raw data sits in the model file."""

    offset: int
    length: int


def read_varint(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    """One varint at `pos` (and where the next field starts); WireError when it runs past `end`."""
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buf: Buffer, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """(field number, wire type, field start, value start, value end) for each field in [start, end)."""
    pos = start
    while pos < end:
        field_start = pos
        key, pos = read_varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire_type == 0:
            _, pos = read_varint(buf, pos, end)
            yield number, wire_type, field_start, field_start, pos
            continue
        if wire_type == 1:
            value_start, pos = pos, pos + 8
        elif wire_type == 5:
            value_start, pos = pos, pos + 4
        elif wire_type == LENGTH_DELIMITED:
            length, value_start = read_varint(buf, pos, end)
            pos = value_start + length
        else:
            raise WireError(f"unsupported wire type {wire_type}")
        if pos > end:
            raise WireError("field runs past the end of its message")
        yield number, wire_type, field_start, value_start, pos


def _delimited(number: int, payload: bytes) -> bytes:
    return encode_varint(number << 3 | LENGTH_DELIMITED) + encode_varint(len(payload)) + payload


def split_model(buf: Buffer) -> tuple[bytes, list[Blob | None]]:
    """The model's bytes without main-graph initializer raw data, and a Blob per initializer in order."""
    out = bytearray()
    blobs: list[Blob | None] = []
    for number, wire_type, field_start, start, end in _fields(buf, 0, len(buf)):
        if number == MODEL_GRAPH and wire_type == LENGTH_DELIMITED:
            out += _delimited(MODEL_GRAPH, _split_graph(buf, start, end, blobs))
        else:
            out += buf[field_start:end]
    return bytes(out), blobs


def _split_graph(buf: Buffer, start: int, end: int, blobs: list[Blob | None]) -> bytes:
    out = bytearray()
    for number, wire_type, field_start, value_start, value_end in _fields(buf, start, end):
        if number != GRAPH_INITIALIZER or wire_type != LENGTH_DELIMITED:
            out += buf[field_start:value_end]
            continue
        tensor = bytearray()
        blob = None
        for t_number, t_wire, t_start, t_value_start, t_end in _fields(buf, value_start, value_end):
            if t_number == TENSOR_RAW_DATA and t_wire == LENGTH_DELIMITED:
                blob = Blob(t_value_start, t_end - t_value_start)
            else:
                tensor += buf[t_start:t_end]
        blobs.append(blob)
        out += _delimited(GRAPH_INITIALIZER, bytes(tensor))
    return bytes(out)
