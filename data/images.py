"""Reading face image files: OpenCV decoding that refuses truncated downloads."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from deepfer.edge.capture.imagefile import IMAGE_EXTS as IMAGE_SUFFIXES
from deepfer.edge.capture.imagefile import cut_short

__all__ = ["IMAGE_SUFFIXES", "is_image", "read_image"]


def is_image(path: Path) -> bool:
    """An image file by its suffix (the suffixes the edge's image sources read)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: Path) -> np.ndarray | None:
    """An image file as OpenCV decodes it (any depth and channels), or None if unreadable,
    corrupt or truncated."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    # OpenCV decodes a file cut short anyway (grey below the cut): a truncated download
    # would otherwise train as a half-grey face
    if not data or cut_short(data):
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
