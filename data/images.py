"""Reading face image files: OpenCV decoding that refuses truncated downloads."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from deepfer.edge.capture.sources import IMAGE_EXTS as IMAGE_SUFFIXES

__all__ = ["IMAGE_SUFFIXES", "is_image", "read_image"]


def is_image(path: Path) -> bool:
    """An image file by its suffix (the suffixes the edge's image sources read)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def _truncated(data: bytes) -> bool:
    """A JPEG without its end marker or a PNG without its IEND chunk: cut short.

    OpenCV decodes such files anyway (grey below the cut, a warning on stderr), so a
    truncated download would otherwise train as a half-grey face.
    """
    tail = data[-64:].rstrip(b"\x00\r\n ")
    if data[:2] == b"\xff\xd8":
        return not tail.endswith(b"\xff\xd9")
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in tail
    return False


def read_image(path: Path) -> np.ndarray | None:
    """An image file as OpenCV decodes it (any depth and channels), or None if unreadable,
    corrupt or truncated."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if not data or _truncated(data):
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
