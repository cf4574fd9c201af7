"""Run the real `npu-tui` command in a subprocess, as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def npu_tui(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "npu_tui", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
