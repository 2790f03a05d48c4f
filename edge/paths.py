"""Paths from settings and the command line (``~`` expanded without ever raising; whether an
output file can be written), and the one way a file is hashed (sidecars, detector files,
teachers)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def user_path(path: str | os.PathLike) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded; an unknown user (``~0``) leaves it
    as written, so the caller reports the missing file by the name the user gave
    (``Path.expanduser`` raises RuntimeError there)."""
    return Path(os.path.expanduser(os.fspath(path)))


def unwritable(path: str | os.PathLike) -> str | None:
    """Why a file cannot be written at ``path`` (a folder there, or a file where a folder
    above it would have to be made), or None: checked before a run, so that its output is not
    lost at the end."""
    path = user_path(path)
    if path.is_dir():
        return "is a folder; give a file name"
    for above in path.parents:
        if above.exists():
            if not above.is_dir():
                return f"cannot be made: {above} is a file, not a folder"
            if not os.access(above, os.W_OK | os.X_OK):
                return f"cannot be made: no permission to write in {above}"
            return None
    return None


def file_sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
