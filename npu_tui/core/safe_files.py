"""Files a user's mistake or a hostile folder must not turn into a hang or a lost file.

Reading: only regular files are opened (a FIFO would block, /dev/zero never ends).
Writing: the new content goes to a temporary file created exclusively in the target's folder (a
link planted at a predictable name is never followed), then is renamed over the target; a failure
leaves no partial file. Outputs never land on the user's inputs.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import UserError


def require_regular(path: Path, what: str) -> None:
    """Refuse anything but a regular file before it is opened (symlinks to files are fine)."""
    if "\0" in str(path):  # os.stat would raise ValueError: no file can have such a name
        raise UserError(f"{str(path)!r:.120}: a {what} name holding a NUL byte; give the real file name")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read {what}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{path}: is a folder; give the {what} itself")
    if not stat.S_ISREG(mode):
        raise UserError(f"{path}: is not a regular file (a FIFO, device or socket); give the {what} as a file")


def require_writable(path: Path, what: str) -> None:
    """Refuse to replace a file its owner made read-only. The atomic rename would replace it anyway
    (renaming needs only the folder's permission), and root may write anything: the mode bits are the
    user's statement, so they are read, not os.access."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise UserError(f"{path}: cannot read {what}: {exc.strerror}") from None
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not (os.geteuid() == 0 or os.access(path, os.W_OK)):
        raise UserError(
            f"{path}: is read-only (mode {stat.S_IMODE(mode):04o}); nothing saved: make it writable (chmod u+w) to save into it"
        )


@contextmanager
def atomic_write(path: Path, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Write `path` through an exclusive temporary file in its folder, renamed over it at the end."""
    path = Path(path)
    if not path.name:
        raise UserError(f"{path}: no file name to write")
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give a file name")
    descriptor, temporary = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def refuse_inputs(target: Path, protected: dict[str, Path], option: str) -> None:
    """An output may not be any of the user's inputs (the config, the model, its external data, the
    vendor's OUTPUT_FILE), reached by any path or link."""
    resolved = Path(os.path.realpath(target))
    for what, path in protected.items():
        if Path(os.path.realpath(path)) == resolved:
            raise UserError(f"{option} {target}: that is {what}; choose another path")
