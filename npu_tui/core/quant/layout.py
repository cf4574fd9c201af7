"""The order gxnpuc 1.5.8 lays a weight out in the chip's weight memory (SPEC section 5).

A MatMul weight W[in, out] is zero-padded to multiples of 32 in both dimensions and cut into 32x32
tiles, row-block major (all tiles of the first 32 input rows, left to right, then the next 32), each
tile row-major. A Conv2D kernel HWIO is one [cin, cout] matrix per tap (kh, kw), taps in row-major
order, each tiled the same way; a conv1d kernel [k, cin, cout] is the same with one tap row. So every
weight here is "taps x [rows, cols]": its last two axes are the matrix, the leading ones the taps.

With FUSE_BIASADD the bias is one more row of the weight array, zero-padded to the padded column count:
row 32 of the first row block of the first tap, so each tile of that block is 33 rows tall (what the
fixture's origin_weight_len, 32 * ceil(out / 32) more elements, and its codes show).
"""

from __future__ import annotations

import math

import numpy as np

TILE = 32


def _padded(n: int) -> int:
    return -(-n // TILE) * TILE


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(taps, rows, cols) of a weight of this shape; a 1-D weight is one row."""
    if len(shape) == 0:
        return 1, 1, 1
    if len(shape) == 1:
        return 1, 1, int(shape[0])
    return math.prod(shape[:-2]), int(shape[-2]), int(shape[-1])


def padded_size(shape: tuple[int, ...], bias_row: bool = False) -> int:
    """Elements the chip stores for the weight: every tap padded to 32x32 tiles, plus the bias row."""
    taps, rows, cols = matrix_shape(shape)
    return taps * _padded(rows) * _padded(cols) + (_padded(cols) if bias_row else 0)


def _tile_grid(rows: int, cols: int) -> tuple[int, int]:
    return _padded(rows) // TILE, _padded(cols) // TILE


def to_tiles(w: np.ndarray, bias: np.ndarray | None = None, fill: float = 0) -> np.ndarray:
    """The weight (and the FUSE_BIASADD bias) in tile order, padded with `fill`: a 1-D array of padded_size."""
    taps, rows, cols = matrix_shape(w.shape)
    row_blocks, col_blocks = _tile_grid(rows, cols)
    grid = np.full((taps, row_blocks * TILE, col_blocks * TILE), fill, dtype=w.dtype)
    grid[:, :rows, :cols] = w.reshape(taps, rows, cols)
    tiles = grid.reshape(taps, row_blocks, TILE, col_blocks, TILE).transpose(0, 1, 3, 2, 4)
    if bias is None:
        return tiles.reshape(-1)
    row = np.full(col_blocks * TILE, fill, dtype=w.dtype)
    row[:cols] = bias.reshape(-1)
    first = np.concatenate([tiles[0, 0], row.reshape(col_blocks, 1, TILE)], axis=1)
    return np.concatenate([first.reshape(-1), tiles[0, 1:].reshape(-1), tiles[1:].reshape(-1)])


def from_tiles(tiles: np.ndarray, shape: tuple[int, ...], bias_row: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Undo to_tiles: the values in the weight's own shape, and the bias's `cols` values (or None)."""
    taps, rows, cols = matrix_shape(shape)
    row_blocks, col_blocks = _tile_grid(rows, cols)
    bias = None
    if bias_row:
        head = col_blocks * (TILE + 1) * TILE
        first = tiles[:head].reshape(col_blocks, TILE + 1, TILE)
        bias = first[:, TILE].reshape(-1)[:cols].copy()
        tiles = np.concatenate([first[:, :TILE].reshape(-1), tiles[head:]])
    grid = tiles.reshape(taps, row_blocks, col_blocks, TILE, TILE).transpose(0, 1, 3, 2, 4)
    w = grid.reshape(taps, row_blocks * TILE, col_blocks * TILE)[:, :rows, :cols].reshape(shape)
    return np.ascontiguousarray(w), bias
