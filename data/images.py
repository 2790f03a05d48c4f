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
    """An image file as OpenCV decodes it (any depth; gray or BGR, alpha dropped), turned
    upright by its EXIF orientation tag as the device's photo reader turns it, or None if
    unreadable, corrupt or truncated."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    # OpenCV decodes a file cut short anyway (grey below the cut): a truncated download
    # would otherwise train as a half-grey face
    if not data or cut_short(data):
        return None
    # not IMREAD_UNCHANGED: it ignores the orientation tag, and a phone photo stored
    # sideways would train sideways (the alpha channel it keeps is dropped to gray anyway)
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags)
