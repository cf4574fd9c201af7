"""Run the real `npu-tui` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def npu_tui(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`env` is added to this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "npu_tui", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env} if env else None,
    )
