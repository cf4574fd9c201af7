"""gxnpuc's fp32 -> fp16 converter and the byte counts of SPEC section 5, on hand-computed values and on the
fp16 words gxnpuc itself stored in the fixture's model.h files."""

import re
from pathlib import Path

import gxnpuc_fixture as fx
import numpy as np
import pytest

from npu_tui.core.quant import memory
from npu_tui.core.quant.fp16 import as_fp16, cvt, cvt_value, round_fp16
from npu_tui.core.quant.layout import from_tiles, padded_size, to_tiles


def test_converter_by_hand():
    values = np.array(
        [
            1.0,
            1 + 2**-11,
            1 + 3 * 2**-11,
            -(1 + 2**-11),
            2.0**-14,
            1.5 * 2**-15,
            (1 + 2**-11) * 2**-15,
            (2 - 2**-11) * 2**-15,
            2.0**-15 * 0.999,
            65504.0,
            65519.0,
            65520.0,
            65536.0,
        ],
        np.float32,
    )
    expected = [
        0x3C00,
        0x3C01,  # a tie: away from zero (IEEE: to even, 0x3C00)
        0x3C02,
        0xBC01,
        0x0400,  # 2**-14, the smallest normal
        0x0200,  # 1.5 * 2**-15: exponent field 0, the fp32 mantissa's top bits (.5 -> 0x200)
        0x0001,  # a tie below 2**-14: rounded away as above it (the mantissa's top 10 bits alone give 0x0000)
        0x0400,  # all ten bits set and the rounding bit: carries into the smallest normal's encoding
        0x0000,  # below 2**-15: zero
        0x7BFF,
        0x7BFF,
        0x7C00,  # 65520..65535 round to inf
        0x7FFF,  # from 65536 on: 0x7fff
    ]
    assert cvt(values).tolist() == expected
    assert cvt(np.array([np.inf, -np.inf, np.nan], np.float32)).tolist() == [0x7FFF, 0xFFFF, 0x7FFF]


def test_the_fast_converter_reads_back_what_cvt_writes():
    patterns = (np.arange(1 << 22, dtype=np.uint32) * np.uint32(1021)).view(np.float32)  # all exponents, both signs
    slow = as_fp16(cvt(patterns)).astype(np.float32)
    fast = cvt_value(patterns)
    same = (slow.view(np.uint32) == fast.view(np.uint32)) | (np.isnan(slow) & np.isnan(fast))
    assert same.all()


def test_the_fast_fp16_rounding_is_numpys_cast():
    patterns = (np.arange(1 << 22, dtype=np.uint32) * np.uint32(1021)).view(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        cast = patterns.astype(np.float16).astype(np.float32)
    fast = round_fp16(patterns.copy())
    same = (cast.view(np.uint32) == fast.view(np.uint32)) | (np.isnan(cast) & np.isnan(fast))
    assert same.all()
    ties = np.array([1 + 2**-11, 1 + 3 * 2**-11, -(1 + 2**-11)], np.float32)
    assert round_fp16(ties).tolist() == [1.0, 1 + 2**-9, -1.0]  # ties to even, unlike the compiler's converter


def test_bytes_of_spec_examples():
    # "a 16x8 FC compressed takes 128 mask bytes + 128 code bytes; fp16 it takes 2,048 bytes"
    assert padded_size((16, 8)) == 1024
    assert memory.compressed_bytes(1024, 128) == 256
    assert memory.fp16_matrix_bytes((16, 8)) == 2048
    assert memory.compressed_bytes(1024, 125) == 254  # 253, even-aligned
    assert memory.fp16_bytes(36) == 72 and memory.batchnorm_bytes(4) == 16


def test_tiles_are_row_block_major_and_row_major_inside():
    w = np.arange(40 * 37, dtype=np.float32).reshape(40, 37)
    tiles = to_tiles(w)
    assert tiles.size == padded_size(w.shape) == 64 * 64
    assert tiles[:32].tolist() == w[0, :32].tolist()  # tile (0, 0), its first row
    assert tiles[1024 : 1024 + 5].tolist() == w[0, 32:37].tolist() and tiles[1024 + 5] == 0  # tile (0, 1): padded
    assert tiles[2048 : 2048 + 32].tolist() == w[32, :32].tolist()  # tile (1, 0)
    back, bias = from_tiles(tiles, w.shape)
    assert np.array_equal(back, w) and bias is None


def test_the_half_up_shortcut_is_the_fp16_addition_for_every_fp16_value():
    from npu_tui.core.quant.gxnpuc import HALF_UP

    t = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    t = t[np.isfinite(t) & (t > -1) & (t < 300)].astype(np.float32)
    with np.errstate(over="ignore"):
        rounded = np.floor((t + np.float32(0.5)).astype(np.float16).astype(np.float32))
    assert np.array_equal(np.clip(rounded, 0, 255), np.clip(np.floor(t + HALF_UP), 0, 255))
    assert rounded[t == np.float32(0.5 - 2**-12)] == 1  # the one value where the fp16 addition carries


def _weight_content(model_h: Path) -> np.ndarray:
    """model.h's weight_content array: the bytes gxnpuc stored in weight memory."""
    body = re.search(r"weight_content\[\d+\][^{]*\{(.*?)\};", model_h.read_text(), re.S)
    assert body, model_h
    return np.array([int(byte, 16) for byte in re.findall(r"0x[0-9a-fA-F]{2}", body.group(1))], np.uint8)


@pytest.mark.skipif(not fx.available(), reason="../shared/gxnpuc (the vendor compiler's outputs) is not beside the repo")
def test_cvt_stores_every_fp16_weight_and_bias_as_gxnpuc_did():
    """Every single-MatMul fixture run that stored its weight in fp16: model.h holds the weight's 32x32 tiles
    as uint16 words, then the bias; cvt must give every word (fc_tiny has the values in [2**-15, 2**-14),
    fc_ties the ties, fc_huge values up to 300)."""
    words = differ = runs = 0
    for run in fx.runs():
        if not run.ok or not run.graph.startswith("fc_") or run.config.get("FUSE_BIASADD"):
            continue
        commands = fx.commands(run)
        if len(commands) != 1 or commands[0].record.get("compress_enable", True):  # fc_two; OUTPUT_TYPE raw
            continue
        command = commands[0]
        weight = fx.weights(run.graph)[command.weight]
        stored = _weight_content(run.path / "model.h").view("<u2")
        ours = cvt(to_tiles(weight))
        if command.bias:
            ours = np.concatenate([ours, cvt(fx.weights(run.graph)[command.bias])])
        differ += int((stored[: ours.size] != ours).sum())
        words += ours.size
        runs += 1
    print(f"cvt: {words} fp16 words of {runs} runs' model.h, {differ} differ")
    assert runs >= 40 and words >= 200_000 and differ == 0
    assert cvt(np.float32(-3.1496063e-05)) == 0x8021  # fc_tiny nocompress: the rounding bit is kept
