"""Paths from settings and the command line: ``~`` expanded without ever raising."""

from __future__ import annotations

import os
from pathlib import Path


def user_path(path: str | os.PathLike) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded; an unknown user (``~0``) leaves it
    as written, so the caller reports the missing file by the name the user gave
    (``Path.expanduser`` raises RuntimeError there)."""
    return Path(os.path.expanduser(os.fspath(path)))
