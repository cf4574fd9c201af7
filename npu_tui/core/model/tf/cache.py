"""Converted pbs kept on disk, so that opening a .pb again does not repeat the conversion.

The cache file is $XDG_CACHE_HOME/npu-tui/tf-<key>.onnx (~/.cache when XDG_CACHE_HOME is unset), where
the key hashes the pb's md5, INPUT_OPS, OUTPUT_OPS, FUSE_BN, npu-tui's version and a digest of the
reader's source; the key is also
written inside the model and checked on reading, so a renamed, truncated or foreign file is never
trusted: it is converted again. A cache that cannot be written (a read-only home) only costs time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from ...safe_files import atomic_write
from .to_onnx import read_pb

CACHE_KEY = "npu_tui.tf_cache_key"
KEPT_CONVERSIONS = 64  # the newest ones; older conversions are removed when a new one is written
_reader_digest: str | None = None


def reader_version() -> str:
    """A digest of the reader's own source: a conversion made by other code is never reused."""
    global _reader_digest
    if _reader_digest is None:
        digest = hashlib.sha256()
        for source in sorted(Path(__file__).parent.glob("*.py")) + [Path(__file__).with_name("grus_ops.txt")]:
            digest.update(source.name.encode() + b"\0" + source.read_bytes())
        _reader_digest = digest.hexdigest()[:16]
    return _reader_digest


def cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "npu-tui"


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(md5: str, input_shapes: dict[str, list[int]], output_names: list[str] | None, fuse_bn: bool) -> str:
    from .... import __version__

    about = {
        "md5": md5,
        "inputs": input_shapes,
        "outputs": output_names,
        "fuse_bn": fuse_bn,
        "reader": reader_version(),
        "npu_tui": __version__,
    }
    return hashlib.sha256(json.dumps(about, sort_keys=True).encode()).hexdigest()[:32]


def load_pb(
    path: Path, input_shapes: dict[str, list[int]], output_names: list[str] | None = None, fuse_bn: bool = False
) -> onnx.ModelProto:
    """read_pb, through the cache."""
    key = cache_key(file_md5(path), input_shapes, output_names, fuse_bn)
    target = cache_folder() / f"tf-{key}.onnx"
    cached = _read_cached(target, key)
    if cached is not None:
        return cached
    model = read_pb(path, input_shapes, output_names, fuse_bn)
    entry = model.metadata_props.add()
    entry.key, entry.value = CACHE_KEY, key
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target) as handle:
            handle.write(model.SerializeToString())
        _forget_old(target.parent)
    except OSError:
        pass
    return model


def _forget_old(folder: Path) -> None:
    entries = sorted(folder.glob("tf-*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
    for entry in entries[KEPT_CONVERSIONS:]:
        entry.unlink(missing_ok=True)


def _read_cached(target: Path, key: str) -> onnx.ModelProto | None:
    try:
        if not target.is_file():
            return None
        model = onnx.ModelProto()
        model.ParseFromString(target.read_bytes())
    except (OSError, DecodeError, RuntimeError, ValueError):
        return None
    if {p.key: p.value for p in model.metadata_props}.get(CACHE_KEY) != key or not model.graph.node:
        return None
    return model
