"""Paths from settings and the command line (``~`` expanded without ever raising), and the one
way a file is hashed (sidecars, detector files, teachers)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def user_path(path: str | os.PathLike) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded; an unknown user (``~0``) leaves it
    as written, so the caller reports the missing file by the name the user gave
    (``Path.expanduser`` raises RuntimeError there)."""
    return Path(os.path.expanduser(os.fspath(path)))


def file_sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
