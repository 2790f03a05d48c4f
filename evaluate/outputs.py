"""Whether the files and folders a command will write can be written, checked before the work.

:func:`deepfer.edge.paths.unwritable` says why a file cannot be made from what the paths are
(a folder in the way, a file where a folder would have to be); these helpers also try the
folder that would hold it (a file made and removed at once), which catches what permissions
do not show: ``/proc``, a read-only mount, running as root. ``deepfer evaluate``,
``deepfer benchmark`` and ``deepfer convert`` (which imports from here, the lower layer)
call :func:`check_outputs` before loading models or data.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from deepfer.edge.paths import unwritable, user_path


def _nearest_existing(path: Path) -> Path:
    for above in (path, *path.parents):
        if above.exists():
            return above
    return Path(".")


def _probe(folder: Path) -> str | None:
    """Why nothing can be written in the existing ``folder``, or None (a file is made and
    removed)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".deepfer-write-check-", dir=folder)
    except OSError as exc:
        return f"cannot write in {folder} ({exc.strerror or exc})"
    os.close(fd)
    os.unlink(name)
    return None


def file_problem(path: str | os.PathLike) -> str | None:
    """Why a file cannot be written at ``path`` (its folders made as needed), or None."""
    why = unwritable(path)
    if why:
        return why
    path = user_path(path)
    if path.exists() and not path.is_file():
        return "is not a regular file"
    if path.is_file() and not os.access(path, os.W_OK):
        return "the file is read-only"
    return _probe(_nearest_existing(path.parent))


def folder_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be (made into) a folder that files are written in, or None."""
    path = user_path(path)
    if path.exists() and not path.is_dir():
        return "is a file, not a folder"
    above = _nearest_existing(path)
    if not above.is_dir():
        return f"cannot be made: {above} is a file, not a folder"
    return _probe(above)


def check_outputs(outputs: Iterable[tuple[str, object, str]], error: type[Exception]) -> None:
    """Raise ``error`` naming the first output that cannot be written.

    ``outputs``: ``(what, path, kind)`` with ``what`` the option or description shown first
    (``--markdown``), ``kind`` ``"file"`` or ``"folder"``; a ``None`` path is skipped.
    """
    for what, path, kind in outputs:
        if path is None or path == "":
            continue
        why = folder_problem(path) if kind == "folder" else file_problem(path)
        if why:
            raise error(f"{what} {path}: {why}".strip())
