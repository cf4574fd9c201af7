"""Progress of a long sweep on a terminal: count done and time left, on one rewritten line."""

from __future__ import annotations

import time
from typing import TextIO


class Progress:
    """Writes only when the stream is a terminal, so logs and pipes stay clean."""

    def __init__(self, label: str, stream: TextIO) -> None:
        self.label = label
        self.stream = stream
        self.active = stream.isatty()
        self.start = time.monotonic()

    def update(self, done: int, total: int) -> None:
        if not self.active or total <= 0:
            return
        elapsed = time.monotonic() - self.start
        left = elapsed / done * (total - done) if done else 0.0
        self.stream.write(f"\r{self.label}: {done}/{total}, {left:.0f} s left ")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.active:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
