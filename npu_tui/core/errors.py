"""Errors a user can cause: the CLI turns them into one `error:` line and exit status 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A bad config, model, data file or argument; the message is the whole story."""


class ConfigError(UserError):
    """Something in config.yaml is wrong."""


class ModelError(UserError):
    """The model (ONNX, or a TensorFlow frozen graph) cannot be read or compiled."""


def closest(name: str, known: Iterable[str], n: int = 3) -> str:
    """A ' (did you mean ...?)' suffix naming the closest known names, or ''."""
    matches = difflib.get_close_matches(name, list(known), n=n, cutoff=0.4)
    if not matches:
        return ""
    return " (did you mean " + ", ".join(repr(m) for m in matches) + "?)"


class InternalError(Exception):
    """npu-tui got something wrong (a graph it built that onnxruntime refuses): exit status 1."""
