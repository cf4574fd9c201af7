"""Names from a model are untrusted: make them safe to print on a terminal or use in a file name."""

from __future__ import annotations

import os
import re

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
MAX_FILE_STEM = 80


def printable(name: str) -> str:
    """Control characters (escape sequences included) and bidi overrides shown as \\xNN or \\uNNNN
    instead of acted on."""
    return _CONTROL.sub(_escape, name)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def file_stem(name: str) -> str:
    """A file-name-safe stem: only letters, digits, dot, dash and underscore, never hidden or empty."""
    stem = _UNSAFE_FILE_CHARS.sub("_", name).strip("._") or "weight"
    return stem[:MAX_FILE_STEM]


_NOT_GXNPUC_FILE_CHARS = re.compile(r"[^0-9a-zA-Z_]")
MAX_GXNPUC_STEM = 200


def gxnpuc_stem(name: str) -> str:
    """gxnpuc -s's file stem for a weight: every character outside [0-9a-zA-Z_] becomes '_'
    (`fc/weights/read/_1__cf__1` -> `fc_weights_read__1__cf__1`)."""
    return _NOT_GXNPUC_FILE_CHARS.sub("_", name)


def one_line(text: str) -> str:
    """A message from a library (onnxruntime's span several lines) as one line, no trailing newline."""
    return " ".join(part.strip() for part in str(text).strip().splitlines() if part.strip())


def shorten_middle(name: str, width: int) -> str:
    """A long name cut in the middle: exporters put the distinguishing part at either end."""
    if len(name) <= width:
        return name
    keep = max(width - 1, 1)
    return name[: keep // 2] + "…" + name[len(name) - (keep - keep // 2) :]


def telling_end(names: list[str], probe: int = 10) -> str:
    """Which end of these names tells them apart: "start" (tf2onnx: conv2d_17/Conv2D_weights...),
    "end" (paddle2onnx: p2o.pd_op.full_int_array.61.0) or "middle" when neither does better."""
    heads = len({n[:probe] for n in names})
    tails = len({n[-probe:] for n in names})
    return "start" if heads > tails else "end" if tails > heads else "middle"


def shorten(name: str, width: int, keep: str = "middle") -> str:
    """`name` in `width` characters, cut where it tells least: keeping its start, its end, or both."""
    if len(name) <= width:
        return name
    if keep == "start":
        return name[: max(width - 1, 1)] + "…"
    if keep == "end":
        return "…" + name[len(name) - max(width - 1, 1) :]
    return shorten_middle(name, width)


class NameCutter:
    """Cuts one list's names to a width: the start every name shares says nothing and goes first
    (`model/conv2d_16/...` -> `…_16/...`), then the end that tells the rest apart is kept."""

    def __init__(self, names: list[str]) -> None:
        names = list(names)
        shared = os.path.commonprefix(names) if len(names) > 1 else ""
        self.shared = shared if len(shared) > 1 else ""
        self.keep = telling_end([n[len(self.shared) :] for n in names]) if names else "middle"

    def __call__(self, name: str, width: int) -> str:
        if len(name) <= width:
            return name
        if self.keep == "end" or not self.shared or not name.startswith(self.shared):
            return shorten(name, width, self.keep)
        rest = name[len(self.shared) :]
        if len(rest) + 1 <= width:
            return "…" + rest
        return "…" + shorten(rest, max(width - 1, 2), self.keep)
