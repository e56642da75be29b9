"""Checks shared by the loaders that read files under a user-given ``root``."""
from __future__ import annotations

from pathlib import Path

from .errors import DataError


def require_root(dataset: str, root, expected: str) -> Path:
    """``root`` as an existing directory; ValueError when not given, DataError when not there."""
    if root is None:
        raise ValueError(f"load({dataset!r}) needs root=<directory holding {expected}>; nothing is "
                         "downloaded, point root at files you already have")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(path, f"root for {dataset!r} is not an existing directory "
                              f"(expected it to hold {expected})")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(path, f"missing {what}")
    return path
