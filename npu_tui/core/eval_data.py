"""Evaluation data (SPEC section 6): an .npz with one array per model input and optional labels,
or seeded random inputs shaped from the model and INPUT_OPS."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx.helper import tensor_dtype_to_np_dtype

from .errors import UserError

LABELS = "labels"


@dataclass(frozen=True)
class ModelInput:
    """A graph input: its name, element type and one sample's shape (None where dynamic)."""

    name: str
    dtype: np.dtype
    sample_shape: tuple[int | None, ...]
    dim_names: tuple[str, ...]


@dataclass
class EvalData:
    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    samples: int
    source: str

    def head(self, count: int) -> EvalData:
        """The first `count` samples."""
        count = min(count, self.samples)
        labels = self.labels[:count] if self.labels is not None else None
        return EvalData({k: v[:count] for k, v in self.inputs.items()}, labels, count, self.source)


def model_inputs(model: onnx.ModelProto, input_shapes: dict[str, list[int]] | None = None) -> list[ModelInput]:
    """The inputs a caller must feed: graph inputs that no initializer provides.

    The first axis is the batch; INPUT_OPS (one inference's shape, batch first) fills dynamic dims.
    """
    initializers = {t.name for t in model.graph.initializer}
    found = []
    for info in model.graph.input:
        if info.name in initializers:
            continue
        tensor_type = info.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        names = [d.dim_param or f"axis {i}" for i, d in enumerate(tensor_type.shape.dim)]
        fixed = (input_shapes or {}).get(info.name)
        if fixed is not None and len(fixed) == len(dims):
            dims = [d if d is not None else f for d, f in zip(dims, fixed)]
        dtype = np.dtype(tensor_dtype_to_np_dtype(tensor_type.elem_type))
        found.append(ModelInput(info.name, dtype, tuple(dims[1:]), tuple(names[1:])))
    return found


def load_npz(path: str | Path, inputs: list[ModelInput]) -> EvalData:
    """Read and check an .npz against the model's inputs; every problem is one clear message."""
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{path}: data file not found") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not an .npz file ({exc}); save it with numpy.savez") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UserError(f"{path}: holds a single array, not an .npz; save it with numpy.savez(name=array, ...)")
    with archive:
        try:
            arrays = {key: archive[key] for key in archive.files}
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise UserError(f"{path}: cannot read its arrays ({exc})") from None
    feeds: dict[str, np.ndarray] = {}
    samples = None
    for spec in inputs:
        if spec.name not in arrays:
            have = ", ".join(sorted(arrays)) or "nothing"
            raise UserError(f"{path}: no array named {spec.name!r} for model input {spec.name!r} (the file holds {have})")
        feeds[spec.name] = _checked(path, spec, arrays[spec.name])
        count = feeds[spec.name].shape[0]
        if samples is not None and count != samples:
            raise UserError(f"{path}: array {spec.name!r} has {count} samples, the others {samples}")
        samples = count
    labels = arrays.get(LABELS)
    if labels is not None:
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise UserError(f"{path}: labels must be one integer class index per sample, got {labels.dtype} of shape {list(labels.shape)}")
        if samples is not None and len(labels) != samples:
            raise UserError(f"{path}: {len(labels)} labels for {samples} samples; give one label per sample")
    return EvalData(feeds, labels, samples or 0, str(path))


def _checked(path: Path, spec: ModelInput, array: np.ndarray) -> np.ndarray:
    expected = ["N", *("?" if d is None else d for d in spec.sample_shape)]
    if array.ndim != len(spec.sample_shape) + 1 or any(
        d is not None and d != a for d, a in zip(spec.sample_shape, array.shape[1:])
    ):
        raise UserError(
            f"{path}: array {spec.name!r} has shape {list(array.shape)}; the model wants {expected} "
            "(samples first)"
        )
    if array.dtype.kind != spec.dtype.kind:
        raise UserError(f"{path}: array {spec.name!r} is {array.dtype}; the model input is {spec.dtype}")
    return np.ascontiguousarray(array, dtype=spec.dtype)


def random_data(inputs: list[ModelInput], samples: int, seed: int) -> EvalData:
    """Seeded standard-normal inputs (uniform 0..9 for integer inputs), for models without data."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in inputs:
        missing = [name for d, name in zip(spec.sample_shape, spec.dim_names) if d is None]
        if missing:
            example = ", ".join(["1", *("?" if d is None else str(d) for d in spec.sample_shape)])
            raise UserError(
                f"model input {spec.name!r} has a dynamic dimension ({missing[0]}); give its shape in "
                f"config.yaml as INPUT_OPS: {{{spec.name}: [{example}]}} with numbers for '?', or pass --data"
            )
        shape = (samples, *spec.sample_shape)
        if spec.dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        else:
            feeds[spec.name] = rng.integers(0, 10, shape).astype(spec.dtype)
    return EvalData(feeds, None, samples, f"random (seed {seed})")
