"""Names from a model are untrusted: make them safe to print on a terminal or use in a file name."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
MAX_FILE_STEM = 80


def printable(name: str) -> str:
    """Control characters (escape sequences included) shown as \\xNN instead of acted on."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", name)


def file_stem(name: str) -> str:
    """A file-name-safe stem: only letters, digits, dot, dash and underscore, never hidden or empty."""
    stem = _UNSAFE_FILE_CHARS.sub("_", name).strip("._") or "weight"
    return stem[:MAX_FILE_STEM]
