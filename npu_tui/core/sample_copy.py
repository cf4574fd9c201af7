"""The bundled sample's private copy, which `npu-tui` without a CONFIG opens: saving there must never
write into the package or the checkout, nor through a link npu-tui did not make.

The copy is made in a fresh private folder beside its final name and renamed there when complete, so
a folder at that name is either npu-tui's own complete copy or something npu-tui refuses to touch.
"""

from __future__ import annotations

import os
import stat
import tempfile
from importlib.resources.abc import Traversable
from pathlib import Path

from .errors import UserError
from .safe_files import atomic_write

SAMPLE_NAME = "kws_tdnn_pb"  # the TensorFlow frozen graph and gxnpuc config, as gxnpuc users have them
SAMPLE_FILES = ("config.yaml", "model.pb", "eval.npz")


def sample_home() -> Path:
    """$XDG_DATA_HOME/npu-tui/kws_tdnn_pb (default ~/.local/share/...)."""
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "npu-tui" / SAMPLE_NAME


def sample_copy(source: Path | Traversable, home: Path) -> tuple[Path, bool]:
    """The copy's config.yaml at `home`, made from `source` the first time; and whether it was made now.
    `home`'s folder and its parent are npu-tui's own: a link or a non-folder there is refused."""
    parent = home.parent
    try:
        _own_folder(parent, create=True)
        if _own_folder(home, create=False):
            _own_files(home)
            missing = [name for name in SAMPLE_FILES if not (home / name).exists()]
            for name in missing:  # a copy someone emptied: refilled in place, never through a link
                with atomic_write(home / name) as out:
                    out.write((source / name).read_bytes())
            return home / "config.yaml", bool(missing)
        _copy_whole(source, home)
    except OSError as exc:
        raise UserError(f"{home}: cannot copy the bundled sample there ({exc.strerror}); run npu-tui CONFIG.yaml") from None
    return home / "config.yaml", True


def _own_folder(path: Path, create: bool) -> bool:
    """Whether `path` is a real folder (made when `create`); a link or anything else is refused."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        if not create:
            return False
        path.mkdir(parents=True)
        return True
    if stat.S_ISLNK(mode):
        raise UserError(
            f"{path}: is a symbolic link, which npu-tui did not make; the sample is copied only into a folder of its own: "
            "remove the link, or run npu-tui CONFIG.yaml"
        )
    if not stat.S_ISDIR(mode):
        raise UserError(
            f"{path}: is not a folder; the bundled sample cannot be copied there: remove it, or run npu-tui CONFIG.yaml"
        )
    return True


def _own_files(home: Path) -> None:
    """The copy's files are npu-tui's: a link planted among them is not followed by opening or saving."""
    for name in SAMPLE_FILES:
        path = home / name
        if path.is_symlink():
            raise UserError(f"{path}: is a symbolic link, which npu-tui did not make: remove it, or run npu-tui CONFIG.yaml")


def _copy_whole(source: Path | Traversable, home: Path) -> None:
    """Every file into a private folder beside `home`, then one rename: the copy appears complete or not at all."""
    staging = Path(tempfile.mkdtemp(dir=home.parent, prefix=f".{home.name}."))
    try:
        for name in SAMPLE_FILES:
            with open(staging / name, "xb") as out:
                out.write((source / name).read_bytes())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)
        os.rename(staging, home)  # fails on a link or a non-empty folder that appeared meanwhile
    except BaseException:
        for name in SAMPLE_FILES:
            (staging / name).unlink(missing_ok=True)
        staging.rmdir()
        raise
