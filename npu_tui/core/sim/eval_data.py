"""Evaluation data (SPEC section 6): an .npz with one array per model input and optional labels,
or seeded random inputs shaped from the model and INPUT_OPS.

The contract: for an input with per-inference shape S (INPUT_OPS, else the model), an array is
either (N, *S), N whole inputs, or, when S starts with a batch of 1, (N, *S[1:]) stacked along it.
Both are held as (N, *S) here, so a sample is always `array[i]`, one inference's input.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import onnx
from onnx.helper import tensor_dtype_to_np_dtype

from ..errors import UserError
from ..safe_files import require_regular

LABELS = "labels"
RANDOM_BYTES_MAX = 2**32
RANDOM_CHUNK = 1 << 20  # values drawn at a time (8 MB of float64)
NPZ_BYTES_MAX = 2**33
READ_CHUNK = 16 << 20


@dataclass(frozen=True)
class ModelInput:
    """A graph input: its element type and one inference's shape S (None where dynamic).

    `batch_dynamic` says the model leaves its first axis open (symbolic, -1, 0 or missing), so
    samples may be run together along it.
    """

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...] | None
    dim_names: tuple[str, ...]
    batch_dynamic: bool

    def expected(self) -> str:
        """The accepted array shapes, for messages."""
        if self.shape is None:
            return "[N, ...]"
        whole = ["N", *("?" if d is None else d for d in self.shape)]
        if self.shape and self.shape[0] in (1, None):
            stacked = ["N", *("?" if d is None else d for d in self.shape[1:])]
            return f"{whole} or {stacked}"
        return str(whole)


@dataclass
class EvalData:
    """Arrays held as (N, *S) per input; `source` says where they came from, for reports."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    samples: int
    source: str

    def head(self, count: int) -> EvalData:
        """The first `count` samples."""
        count = min(count, self.samples)
        labels = self.labels[:count] if self.labels is not None else None
        return EvalData({k: v[:count] for k, v in self.inputs.items()}, labels, count, self.source)


def _dim(d: onnx.TensorShapeProto.Dimension) -> int | None:
    """A fixed size, or None for a symbolic, -1, 0 or missing one: exporters use all four for 'any'."""
    return d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None


def model_inputs(model: onnx.ModelProto, input_shapes: dict[str, list[int]] | None = None) -> list[ModelInput]:
    """The inputs a caller must feed: graph inputs that no initializer provides.

    INPUT_OPS gives one inference's shape and fills the model's open dimensions. Without it, an open
    dimension whose name is some input's first-axis name (the batch, as in `state [2, batch, 128]`)
    is 1; any other stays open.
    """
    initializers = {t.name for t in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in initializers]
    batch_names = {
        i.type.tensor_type.shape.dim[0].dim_param
        for i in graph_inputs
        if i.type.tensor_type.shape.dim and i.type.tensor_type.shape.dim[0].dim_param
    }
    found = []
    for info in graph_inputs:
        tensor_type = info.type.tensor_type
        dims_proto = list(tensor_type.shape.dim)
        dims = [_dim(d) for d in dims_proto]
        names = [d.dim_param or f"axis {i}" for i, d in enumerate(dims_proto)]
        batch_dynamic = bool(dims) and dims[0] is None
        fixed = (input_shapes or {}).get(info.name)
        if fixed is not None and tensor_type.HasField("shape") and len(fixed) != len(dims):
            raise UserError(
                f"INPUT_OPS[{info.name!r}]: {list(fixed)} has {len(fixed)} dimensions; the model input has "
                f"{len(dims)} ({[d or '?' for d in dims]})"
            )
        if fixed is not None:
            clash = [(d, f) for d, f in zip(dims, fixed) if d is not None and d != f]
            if clash:
                raise UserError(
                    f"INPUT_OPS[{info.name!r}]: {list(fixed)} does not match the model's fixed size "
                    f"{clash[0][0]} (model shape {[d or '?' for d in dims]})"
                )
            dims = list(fixed)
        else:
            dims = [
                1 if d is None and (i == 0 or p.dim_param in batch_names) else d for i, (d, p) in enumerate(zip(dims, dims_proto))
            ]
        try:
            dtype = np.dtype(tensor_dtype_to_np_dtype(tensor_type.elem_type))
        except (KeyError, TypeError, ValueError):
            raise UserError(
                f"model input {info.name!r} has element type {tensor_type.elem_type}, which npu-tui cannot feed"
            ) from None
        unknown_rank = not tensor_type.HasField("shape") and fixed is None
        found.append(ModelInput(info.name, dtype, None if unknown_rank else tuple(dims), tuple(names), batch_dynamic))
    return found


def load_npz(path: str | Path, inputs: list[ModelInput], samples: int | None = None) -> EvalData:
    """Read and check an .npz against the model's inputs; every problem is one clear message. Only
    the arrays the model reads (and the labels) are read, and of each only the first `samples`
    samples: a 4 MB file can declare gigabytes, and --samples 4 must not allocate them."""
    path = Path(path)
    require_regular(path, "data file")
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{path}: data file not found") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not an .npz file ({exc}); save it with numpy.savez") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UserError(f"{path}: holds a single array, not an .npz; save it with numpy.savez(name=array, ...)")
    with archive:
        headers = _check_headers(path, archive)
        wanted = [spec.name for spec in inputs if spec.name in headers] + ([LABELS] if LABELS in headers else [])
        arrays = {key: _read_member(path, archive.zip, key, headers[key], samples) for key in wanted}
    feeds: dict[str, np.ndarray] = {}
    declared = None  # samples each array holds, as its header says (the arrays read may be fewer)
    for spec in inputs:
        if spec.name not in arrays:
            have = ", ".join(sorted(headers)) or "nothing"
            raise UserError(f"{path}: no array named {spec.name!r} for model input {spec.name!r} (the file holds {have})")
        feeds[spec.name] = _checked(path, spec, arrays[spec.name])
        count = headers[spec.name].shape[0] if headers[spec.name].shape else 1
        if declared is not None and count != declared:
            raise UserError(f"{path}: array {spec.name!r} has {count} samples, the others {declared}")
        declared = count
    labels = arrays.get(LABELS)
    if labels is not None:
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise UserError(
                f"{path}: labels must be one integer class index per sample, got {labels.dtype} of shape {list(headers[LABELS].shape)}"
            )
        if declared is not None and headers[LABELS].shape[0] != declared:
            raise UserError(f"{path}: {headers[LABELS].shape[0]} labels for {declared} samples; give one label per sample")
    if declared == 0:
        raise UserError(f"{path}: the arrays hold no samples; give at least one")
    count = next(iter(feeds.values())).shape[0] if feeds else 0
    return EvalData(feeds, labels, count, str(path))


@dataclass(frozen=True)
class _Header:
    """What a member's .npy header declares, and the member it belongs to."""

    member: zipfile.ZipInfo
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype


def _check_headers(path: Path, archive: np.lib.npyio.NpzFile) -> dict[str, _Header]:
    """Each array's header is read and its size checked against the bytes stored for it before the
    array is: a compressed member can claim gigabytes."""
    zipped = archive.zip
    headers: dict[str, _Header] = {}
    if zipped is None:
        return headers
    for info in zipped.infolist():
        name = info.filename.removesuffix(".npy")
        try:
            with zipped.open(info) as handle:
                version = np.lib.format.read_magic(handle)
                reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = reader(handle)
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise UserError(f"{path}: array {name!r} has no valid .npy header ({exc})") from None
        if dtype.hasobject:
            raise UserError(f"{path}: array {name!r} holds Python objects; save numbers only")
        size = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if size > NPZ_BYTES_MAX or size > info.file_size:
            raise UserError(
                f"{path}: array {name!r} claims shape {list(shape)} ({size:,} bytes) but stores {info.file_size:,}; "
                "the file is damaged or not what it says"
            )
        headers[name] = _Header(info, tuple(shape), bool(fortran), dtype)
    return headers


def _read_member(path: Path, zipped: zipfile.ZipFile | None, name: str, header: _Header, samples: int | None) -> np.ndarray:
    """The member's first `samples` samples (all without a limit), read straight from its stream into
    an array of that size: nothing beyond them is decompressed or allocated."""
    assert zipped is not None  # a header was read from it
    shape = header.shape
    keep = shape[0] if samples is None or not shape else min(samples, shape[0])
    read_shape = shape if header.fortran or not shape else (keep, *shape[1:])  # Fortran order: samples are not contiguous
    array = np.empty(read_shape, header.dtype, order="F" if header.fortran else "C")
    try:
        with zipped.open(header.member) as handle:
            version = np.lib.format.read_magic(handle)
            (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(handle)
            wanted = array.nbytes
            got = _read_into(handle, array.reshape(-1, order="A").view(np.uint8).data)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{path}: cannot read array {name!r} ({exc})") from None
    if got != wanted:
        raise UserError(
            f"{path}: array {name!r} stores {got:,} bytes where its header declares {wanted:,}; the file is truncated"
        )
    if header.dtype.byteorder == ">":
        array = array.astype(header.dtype.newbyteorder("="))
    return array[:keep] if header.fortran and shape else array


def _read_into(handle: IO[bytes], buffer: memoryview) -> int:
    """Fill `buffer` from the stream a chunk at a time (no second copy of the whole); the bytes read."""
    done = 0
    while done < len(buffer):
        chunk = handle.read(min(READ_CHUNK, len(buffer) - done))
        if not chunk:
            break
        buffer[done : done + len(chunk)] = chunk
        done += len(chunk)
    return done


def _fits(shape: tuple[int, ...], wanted: tuple[int | None, ...]) -> bool:
    return len(shape) == len(wanted) and all(w is None or w == s for s, w in zip(shape, wanted))


def _checked(path: Path, spec: ModelInput, array: np.ndarray) -> np.ndarray:
    """The array as (N, *S): whole inputs as given, a stacked batch of 1 with that axis put back."""
    if spec.shape is None and array.ndim >= 1:
        shaped = array
    elif spec.shape is None:
        raise UserError(f"{path}: array {spec.name!r} is a scalar; give one value per sample (shape [N, ...])")
    elif array.ndim >= 1 and _fits(array.shape[1:], spec.shape):
        shaped = array
    elif array.ndim >= 1 and spec.shape and spec.shape[0] in (1, None) and _fits(array.shape[1:], spec.shape[1:]):
        shaped = array.reshape(array.shape[0], 1, *array.shape[1:])
    else:
        raise UserError(
            f"{path}: array {spec.name!r} has shape {list(array.shape)}; the model wants {spec.expected()} (samples first)"
        )
    if array.dtype.kind != spec.dtype.kind and not (spec.dtype.kind == "f" and array.dtype.kind in "iu"):
        raise UserError(f"{path}: array {spec.name!r} is {array.dtype}; the model input is {spec.dtype}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise UserError(f"{path}: array {spec.name!r} holds {bad} NaN or infinite values; give finite inputs")
    return np.ascontiguousarray(shaped, dtype=spec.dtype)


def random_data(inputs: list[ModelInput], samples: int, seed: int) -> EvalData:
    """Seeded standard-normal inputs (random bits for bool inputs), for models without data.

    An integer input has no range npu-tui could know (a sample rate, token ids, a length), so it
    needs --data.
    """
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in inputs:
        if spec.shape is None:
            raise UserError(
                f"model input {spec.name!r} declares no shape; give one inference's shape in config.yaml "
                f"as INPUT_OPS: {{{spec.name}: [1, ...]}}, or pass --data"
            )
        missing = [name for d, name in zip(spec.shape, spec.dim_names) if d is None]
        if missing:
            example = ", ".join("?" if d is None else str(d) for d in spec.shape)
            raise UserError(
                f"model input {spec.name!r} has a dynamic dimension ({missing[0]}); give its shape in "
                f"config.yaml as INPUT_OPS: {{{spec.name}: [{example}]}} with numbers for '?', or pass --data"
            )
        shape = (samples, *(d for d in spec.shape if d is not None))  # every dimension is known here
        size = int(np.prod(shape, dtype=np.float64)) * max(spec.dtype.itemsize, 1)
        if size > RANDOM_BYTES_MAX:
            raise UserError(
                f"model input {spec.name!r}: {samples} random samples of shape {list(spec.shape)} would take "
                f"{size / 2**30:.1f} GiB; use fewer --samples or a smaller INPUT_OPS shape"
            )
        if spec.dtype.kind not in "fb":
            raise UserError(
                f"model input {spec.name!r} is {spec.dtype}; random values would not mean anything to it "
                "(a length, an id, a sample rate): pass --data with an .npz that holds it"
            )
        try:
            feeds[spec.name] = _random_array(rng, shape, spec.dtype)
        except MemoryError:
            raise UserError(
                f"model input {spec.name!r}: {samples} random samples of shape {list(spec.shape)} ({size / 2**30:.1f} GiB) "
                "do not fit in this machine's free memory; use fewer --samples"
            ) from None
    return EvalData(feeds, None, samples, f"random (seed {seed})")


def _random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """The array in its final dtype, filled a few megabytes at a time: the values are those of one
    float64 draw (the same for a seed whatever the size), without that draw's copy of the whole."""
    out = np.empty(shape, dtype)
    flat = out.reshape(-1)
    for start in range(0, flat.size, RANDOM_CHUNK):
        count = min(RANDOM_CHUNK, flat.size - start)
        flat[start : start + count] = rng.standard_normal(count) if dtype.kind == "f" else rng.integers(0, 2, count)
    return out
