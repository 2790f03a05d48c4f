"""What a file given as an input is, a photo or a video: decided here for ``deepfer detect``
and ``deepfer run --source`` alike, and the picture of a file that holds one.

A file is a photo by its suffix (:data:`~deepfer.edge.capture.imagefile.PHOTO_EXTS`);
otherwise by what OpenCV's FFmpeg finds in it: two frames or more, a video; one (a still
GIF, a JPEG without a suffix, a one-frame clip), a photo, since a tracker would never see
its face twice. A file FFmpeg cannot open but OpenCV decodes as an image is a photo too.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import cv2
import numpy as np

from deepfer.edge.capture.imagefile import is_photo, load_image
from deepfer.edge.errors import InputError

#: What an input is searched as (:func:`input_kind`).
PHOTO, VIDEO, UNKNOWN = "photo", "video", "unknown"


def input_kind(path: Path) -> str:
    """``PHOTO`` or ``VIDEO`` by the module's rules; ``UNKNOWN``: missing, or nothing OpenCV
    can open (reported as a video that cannot be opened when it is read)."""
    path = Path(path)
    if is_photo(path):
        return PHOTO
    if not path.is_file():
        return UNKNOWN
    cap = cv2.VideoCapture(str(path))
    try:
        if cap.isOpened():
            frames = int(cap.grab()) + int(cap.grab())
            if frames:
                return VIDEO if frames == 2 else PHOTO
    finally:
        cap.release()
    with contextlib.suppress(cv2.error):
        if cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_8) is not None:
            return PHOTO
    return UNKNOWN


def read_picture(path: Path) -> np.ndarray:
    """The picture of a ``PHOTO`` input: a photo as :func:`load_image` reads it, another
    file's one picture as OpenCV decodes it as an image (orientation tag applied) or else as
    its first frame; an :class:`InputError` naming the file when there is none."""
    path = Path(path)
    if is_photo(path):
        return load_image(path)
    with contextlib.suppress(cv2.error):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            return image
    cap = cv2.VideoCapture(str(path))
    try:
        ok, image = cap.read()
    finally:
        cap.release()
    if not ok or image is None:
        raise InputError(f"{path}: cannot read its picture")
    return image
