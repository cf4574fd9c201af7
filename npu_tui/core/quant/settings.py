"""The quantization switches a compile depends on, separate from the file they came from."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .fp16 import FP16_MAX

# The one map from the vendor's YAML keys to Settings fields: the config reader, the writer, the
# name checks and the switches dialog all go through these, so a key cannot mean two things.
SWITCH_FIELDS = {"COMPRESS": "compress", "CONV2D_COMPRESS": "conv2d_compress", "FUSE_BN": "fuse_bn"}
NAME_LIST_FIELDS = {
    "EXCLUDE_COMPRESS_OPS": "exclude",
    "EXCLUDE_CONV2D_COMPRESS_OPS": "exclude_conv2d",
    "EXCLUDE_FUSE_BN_OPS": "exclude_fuse_bn",
}
RANGES_KEY = "WEIGHT_MIN_MAX"  # -> weight_min_max


def range_problem(lo: float, hi: float) -> str | None:
    """What is wrong with a WEIGHT_MIN_MAX range, or None: the one check the config reader and the
    `m` dialog share, so the dialog never applies a range that saving would refuse. The bounds are
    shown as given (an int stays an int)."""
    for bound in (lo, hi):
        if not math.isfinite(bound):
            return f"bound {bound} is not a finite number"
        if abs(bound) > FP16_MAX:
            return f"bound {bound:g} is beyond fp16 (±{FP16_MAX:g}); the NPU stores the range's minimum and scale as fp16"
    if not lo < hi:
        crash = " (gxnpuc 1.5.8 crashes on an empty range)" if lo == hi else ""
        return f"min {lo} is not less than max {hi}{crash}"
    return None


@dataclass(frozen=True)
class Settings:
    """What the vendor config says about quantization; the workbench edits copies of this."""

    compress: bool = False
    conv2d_compress: bool = False
    fuse_bn: bool = False
    exclude: tuple[str, ...] = ()
    exclude_conv2d: tuple[str, ...] = ()
    exclude_fuse_bn: tuple[str, ...] = ()
    weight_min_max: dict[str, tuple[float, float]] = field(default_factory=dict)
    fp16_activations: bool = True
    fuse_biasadd: bool = False  # FUSE_BIASADD, read but not managed: each bias joins its weight's quantized block

    def key(self) -> tuple:
        """A hashable identity (the ranges are a dict): equal settings, equal keys."""
        return (
            self.compress,
            self.conv2d_compress,
            self.fuse_bn,
            self.exclude,
            self.exclude_conv2d,
            self.exclude_fuse_bn,
            tuple(sorted(self.weight_min_max.items())),
            self.fp16_activations,
            self.fuse_biasadd,
        )
