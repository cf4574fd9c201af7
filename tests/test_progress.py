"""Sweep progress goes to a terminal only, as one rewritten line with the count and time left."""

import io

from npu_tui.core.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_counts_and_clears():
    stream = Terminal()
    with Progress("sensitivity", stream) as progress:
        progress.update(1, 4)
        progress.update(4, 4)
    text = stream.getvalue()
    assert "\rsensitivity: 1/4, " in text and " s left" in text
    assert "\rsensitivity: 4/4, 0 s left" in text
    assert text.endswith("\r\x1b[K")


def test_progress_stays_out_of_pipes():
    stream = io.StringIO()
    with Progress("sensitivity", stream) as progress:
        progress.update(1, 4)
    assert stream.getvalue() == ""
