"""Face-crop preprocessing shared by training, conversion and the device.

The model contract: a model takes a raw grayscale face crop (uint8 values
0..255 as float or int) at its input size; all normalisation is inside the
model. These helpers only convert colour, crop and resize.
"""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_SIZE = 48
#: Extra border around a detected face box, as a fraction of its side.
DEFAULT_MARGIN = 0.1
#: Crops go to a model as raw pixels p (0..255); the model's first layer computes
#: (p - PIXEL_CENTRE) / PIXEL_SCALE (deepfer.train.models), exact in an int8 graph whose
#: input holds p - 128 (deepfer.convert.exact_input).
PIXEL_CENTRE = PIXEL_SCALE = 128.0


def to_gray(image: np.ndarray) -> np.ndarray:
    """Return a 2-D uint8 grayscale view of ``image`` (gray, BGR or BGRA)."""
    if image.ndim == 2:
        gray = image
    elif image.ndim == 3 and image.shape[2] == 1:
        gray = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] == 3:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 3 and image.shape[2] == 4:
        gray = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    else:
        raise ValueError(f"cannot make grayscale from an array of shape {image.shape}")
    if gray.dtype != np.uint8:
        gray = np.clip(gray, 0, 255).astype(np.uint8)
    return gray


def prepare_face(image: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """A whole-image face crop -> ``(size, size)`` uint8 grayscale.

    Used for dataset images (already face crops) and by :func:`crop_face`.
    """
    gray = to_gray(image)
    if gray.shape != (size, size):
        shrinking = gray.shape[0] > size or gray.shape[1] > size
        interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        gray = cv2.resize(gray, (size, size), interpolation=interp)
    return np.ascontiguousarray(gray)


def square_box(
    box: tuple[int, int, int, int] | np.ndarray,
    frame_shape: tuple[int, ...],
    margin: float = DEFAULT_MARGIN,
) -> tuple[int, int, int, int]:
    """Grow ``box`` (x, y, w, h) to a square with ``margin`` and clip it to the frame."""
    x, y, w, h = (float(v) for v in box)
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    height, width = frame_shape[:2]
    side = min(side, width, height)
    x0 = int(round(min(max(cx - side / 2.0, 0.0), width - side)))
    y0 = int(round(min(max(cy - side / 2.0, 0.0), height - side)))
    s = int(round(side))
    return x0, y0, max(s, 1), max(s, 1)


def crop_face(
    frame: np.ndarray,
    box: tuple[int, int, int, int] | np.ndarray,
    size: int = DEFAULT_SIZE,
    margin: float = DEFAULT_MARGIN,
) -> np.ndarray:
    """Square crop of a face box from a frame, grayscale, resized to ``size``."""
    x, y, w, h = square_box(box, frame.shape, margin)
    return prepare_face(frame[y : y + h, x : x + w], size)
