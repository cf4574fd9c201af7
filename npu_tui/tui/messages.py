"""Messages the evaluation worker posts to the app; each names its worker so that a replaced run's
late messages are recognised and dropped."""

from __future__ import annotations

import threading

from textual.message import Message
from textual.notifications import SeverityLevel
from textual.worker import Worker


class RunMessage(Message):
    def __init__(self, worker: Worker[None]) -> None:
        super().__init__()
        self.worker = worker


class EvaluationDone(RunMessage):
    """The model-level numbers are computed; `shown` is set once they are on the screen, and only
    then does the worker go on to the layers and the sweep."""

    def __init__(self, worker: Worker[None], shown: threading.Event) -> None:
        super().__init__(worker)
        self.shown = shown


class LayersDone(RunMessage):
    """The per-layer numbers are computed (after the model numbers, before the sweep)."""


class SweepProgress(RunMessage):
    def __init__(self, worker: Worker[None], done: int, total: int, seconds_left: float) -> None:
        super().__init__(worker)
        self.done, self.total, self.seconds_left = done, total, seconds_left


class RunFinished(RunMessage):
    """The run ended: completed (text None), stopped, or failed with a message for the user."""

    def __init__(self, worker: Worker[None], text: str | None, severity: SeverityLevel | None) -> None:
        super().__init__(worker)
        self.text, self.severity = text, severity
