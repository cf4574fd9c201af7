"""The closed vocabularies of the inventory and the plans. Members are strings too: JSON, text
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
