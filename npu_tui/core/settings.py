"""The quantization switches a compile depends on, separate from the file they came from."""

from __future__ import annotations

from dataclasses import dataclass, field


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

    def key(self) -> tuple:
        """A hashable identity (the ranges are a dict): equal settings, equal keys."""
        return (
            self.compress, self.conv2d_compress, self.fuse_bn, self.exclude, self.exclude_conv2d,
            self.exclude_fuse_bn, tuple(sorted(self.weight_min_max.items())), self.fp16_activations,
        )
