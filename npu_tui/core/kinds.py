"""The closed vocabularies of the inventory, the plans and the fix search. Members are strings too: JSON, text
reports and comparisons with the SPEC's words keep working, and a typo is an AttributeError."""

from __future__ import annotations

from enum import Enum


class Named(str, Enum):
    def __str__(self) -> str:  # the word itself, on every Python version
        return str(self.value)


class WeightKind(Named):
    FC = "fc"  # MatMul, Gemm and the RNN families: COMPRESS
    CONV = "conv"  # Conv, ConvTranspose: CONV2D_COMPRESS


class Origin(Named):
    INITIALIZER = "initializer"
    CONSTANT = "constant"  # a Constant node's value
    FOLDED = "folded"  # computed from constants (a Transpose of an initializer, say)


class Reason(Named):
    """Why a weight stays fp16."""

    COMPRESS_OFF = "compress_off"
    CONV2D_COMPRESS_OFF = "conv2d_compress_off"
    EXCLUDED = "excluded"
    DEPTHWISE_NEVER_COMPRESSED = "depthwise_never_compressed"  # gxnpuc stores depthwise kernels fp16 always
    ONE_INPUT_CHANNEL_NEVER_COMPRESSED = "one_input_channel_never_compressed"  # so is a Conv2D with cin 1


class TargetKind(Named):
    """What a fix target (`--max-drop`, `--min-agreement`, `--min-sqnr`, the fix screen) asks for."""

    MAX_DROP = "max_drop"  # points of accuracy lost against float, at most
    MIN_AGREEMENT = "min_agreement"  # % top-1 agreement with float, at least
    MIN_SQNR = "min_sqnr"  # dB, the worst output's SQNR, at least


class FixAction(Named):
    """One change the fix search makes to a config."""

    EXCLUDE = "exclude"  # EXCLUDE_COMPRESS_OPS: the weight kept fp16
    RANGE = "range"  # WEIGHT_MIN_MAX
    KEEP_BN = "keep_bn"  # EXCLUDE_FUSE_BN_OPS: its BatchNorm left unfolded
    SWITCHES = "switches"  # COMPRESS, CONV2D_COMPRESS, FUSE_BN
