"""Pictures handed over from Python (``EmotionRecognizer``): a path, a numpy array or a PIL
image, as the uint8 grayscale or BGR image the pipeline takes, or an :class:`InputError`
saying what was given and what to give instead.

The rules, one per kind of array, so that no picture is read at the wrong scale in silence:

* ``uint8``: as it is (0..255).
* ``uint16`` (a 16-bit PNG read with ``cv2.IMREAD_UNCHANGED``, a 16-bit camera): its top 8
  bits, as ``cv2.imread`` turns a 16-bit PNG into 8 bits.
* floats: 0..1 (as ``cv2.imshow``, scikit-image and matplotlib take them), scaled by 255; one
  with values outside 0..1 (a 0..255 float array) or not numbers is refused.
* other integers: when every value lies in 0..255 (``np.array`` of a list gives int64);
  others are refused, and so is ``bool`` (a mask, not a picture).
* shapes ``(h, w)`` gray, ``(h, w, 1)``, ``(h, w, 3)`` BGR and ``(h, w, 4)`` BGRA (RGB and
  RGBA with ``rgb=True``); any strides or memory order.
* a PIL image is converted from its own mode (RGB, RGBA, L, 16-bit...): ``rgb`` does not apply.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from deepfer.edge.capture.imagefile import is_photo, load_image
from deepfer.edge.capture.inputs import PHOTO, VIDEO, input_kind, read_picture
from deepfer.edge.errors import InputError

#: What a picture may be, for the messages.
KINDS = (
    "a file path, a PIL image or an image array (h, w) gray, (h, w, 3) BGR or (h, w, 4) BGRA "
    "of uint8 (0..255), uint16 or float (0..1)"
)
#: A float picture may go this far outside 0..1 (resampling overshoot) and is clipped.
FLOAT_SLACK = 0.01


def as_picture(picture, rgb: bool = False, what: str = "a picture") -> np.ndarray:
    """``picture`` (a path, a PIL image or an array) as a uint8 image: ``(h, w)`` gray or
    ``(h, w, 3)`` BGR; ``rgb``: an array's colour channels are RGB(A). :class:`InputError`
    (beginning with ``what``) for anything else."""
    if isinstance(picture, (str, os.PathLike)):
        return _from_file(Path(picture))
    if picture is None:
        raise InputError(
            f"{what} is None (a camera read that failed? "
            "cv2.VideoCapture.read() gives (False, None) when there is no frame)"
        )
    if isinstance(picture, (bytes, bytearray, memoryview)):
        raise InputError(
            f"{what} is {type(picture).__name__}: give a path as str, or decode the file's bytes "
            "first: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)"
        )
    if _is_pil(picture):
        return _from_pil(picture)
    try:
        image = np.asarray(picture)
    except Exception as exc:  # (an object numpy cannot read as an array)
        raise InputError(f"{what} must be {KINDS}; got {type(picture).__name__} ({exc})") from None
    return _as_uint8_image(image, rgb, what, type(picture).__name__)


def _as_uint8_image(image: np.ndarray, rgb: bool, what: str, kind: str) -> np.ndarray:
    if image.dtype == object or image.dtype.kind not in "biuf":
        raise InputError(f"{what} must be {KINDS}; got {kind} of {image.dtype} {image.shape}")
    shape = image.shape
    if image.ndim == 3 and shape[0] in (1, 3, 4) and shape[2] not in (1, 3, 4):
        raise InputError(
            f"{what} has its channels first {shape}: give them last, (h, w, {shape[0]}): "
            "image.transpose(1, 2, 0)"
        )
    if image.ndim == 4 and shape[0] == 1:
        raise InputError(f"{what} is a batch of one {shape}: give one picture, image[0]")
    if image.ndim not in (2, 3) or (image.ndim == 3 and shape[2] not in (1, 3, 4)):
        raise InputError(f"{what} must be {KINDS}; got {image.dtype} {shape}")
    if image.size == 0:
        raise InputError(f"{what} is empty: {image.dtype} {shape}")
    image = _uint8(image, what)
    if image.ndim == 3 and shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2BGR if rgb else cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and rgb:
        return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return image


def _uint8(image: np.ndarray, what: str) -> np.ndarray:
    """The pixels as uint8 by the module's rules."""
    kind = image.dtype.kind
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return eight_bits(image)
    if kind == "b":
        raise InputError(
            f"{what}: a bool array (a mask?) is not a picture: give uint8, e.g. "
            "(mask * 255).astype(np.uint8)"
        )
    low, high = image.min(), image.max()
    if kind == "f":
        if not (np.isfinite(low) and np.isfinite(high)):
            raise InputError(f"{what}: {image.dtype} values that are not numbers (NaN or infinity)")
        if low < -FLOAT_SLACK or high > 1 + FLOAT_SLACK:
            raise InputError(
                f"{what}: {image.dtype} values {low:.4g}..{high:.4g}, but float "
                "pictures are taken as 0..1 (as cv2.imshow takes them); for one that holds "
                "0..255, give image.astype(np.uint8)"
            )
        return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    if low < 0 or high > 255:
        raise InputError(
            f"{what}: {image.dtype} values {low}..{high}, but pictures are uint8 (0..255), "
            "uint16 or float (0..1)"
        )
    return image.astype(np.uint8)


def eight_bits(image: np.ndarray) -> np.ndarray:
    """A ``uint16`` picture as ``uint8``: its top 8 bits, as ``cv2.imread`` turns a 16-bit PNG
    into 8 bits (the one rule: training data is read by it too, ``data/fer2013.py``)."""
    return (image >> 8).astype(np.uint8)


def _from_file(path: Path) -> np.ndarray:
    """A picture file as ``deepfer detect`` reads it; a video is said to be one. A leading
    ``~`` is not expanded (as ``cv2.imread``, PIL and pathlib do not): a missing one says so."""
    try:
        return load_image(path)
    except InputError as exc:
        if str(path).startswith("~") and not path.exists():
            raise InputError(
                f"{exc}; a path's leading ~ is not expanded in Python (as cv2.imread and PIL "
                "do not): give Path(...).expanduser()"
            ) from None
        kind = input_kind(path)  # (only when it is no image: it opens the file as a video)
        if kind == VIDEO:
            raise InputError(
                f"{path}: a video, not a picture: give its frames (cv2.VideoCapture) to "
                "EmotionRecognizer(video=True, fps=...), or run `deepfer detect` on it"
            ) from None
        if kind == PHOTO and not is_photo(path):  # (one frame: a still GIF, a short clip)
            return read_picture(path)
        raise


def _is_pil(picture) -> bool:
    # (PIL is not imported here: a picture from it means it is imported already)
    return type(picture).__module__.startswith("PIL.") and hasattr(picture, "convert")


def _from_pil(image) -> np.ndarray:
    """A PIL image (RGB by its nature) as uint8 gray or BGR."""
    mode = image.mode
    if mode.startswith("I;16"):  # 16 bits a pixel, grey: by the uint16 rule
        return _uint8(np.asarray(image).astype(np.uint16, copy=False), "a PIL image")
    if mode in ("L", "1", "LA", "La"):
        return np.asarray(image.convert("L"))
    rgb = image if mode == "RGB" else image.convert("RGB")
    return cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR)
