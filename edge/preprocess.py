"""Face-crop preprocessing shared by training, conversion and the device.

The model contract: a model takes a raw grayscale face crop (uint8 values
0..255 as float or int) at its input size; all normalisation is inside the
model. These helpers convert colour, crop and resize, and (the device's crops only) bring a
face lit far outside what the training faces show back into their range
(:func:`normalise_light`).
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
#: The light of FER2013's faces: 5th and 95th percentiles of each Training face's mean grey
#: level and of its standard deviation (all 28,709; ``benchmarks/probe_photometric.py``).
TRAINING_MEAN_RANGE = (73.7, 183.7)
TRAINING_STD_RANGE = (32.6, 77.2)


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
    box: tuple[int, int, int, int] | np.ndarray, margin: float = DEFAULT_MARGIN
) -> tuple[int, int, int, int]:
    """``box`` (x, y, w, h) grown to a square with ``margin`` on the same centre (int pixels;
    it may reach beyond the frame: :func:`crop_face` pads there)."""
    x, y, w, h = (float(v) for v in box[:4])
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    s = max(int(round(side)), 1)
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), s, s


def crop_face(
    frame: np.ndarray,
    box: tuple[int, int, int, int] | np.ndarray,
    size: int = DEFAULT_SIZE,
    margin: float = DEFAULT_MARGIN,
    angle: float = 0.0,
) -> np.ndarray:
    """Square crop of a face box from a frame, grayscale, resized to ``size``.

    The square keeps the face centred at its size, as FER2013 framed its faces. Where it
    reaches beyond the frame (a face at the edge of the view, or closer to the camera than
    the frame is wide), the frame's border pixels are repeated outwards to fill it: moving
    the square inwards instead puts the face off-centre, which cost 3-30 points of accuracy
    on faces cut by 20-30% (``benchmarks/probe_edge_crops.py``).

    ``angle`` (degrees, image coordinates with y down, as ``atan2(dy, dx)`` of the line
    between the eyes): the square is turned by it about its centre, so a tilted face comes
    out level; 0 crops the square as it stands."""
    x, y, w, h = square_box(box, margin)
    if not angle:
        return prepare_face(_square(frame, x, y, w), size)
    # a square around the crop large enough to hold it turned, turned about its centre at
    # the frame's own scale (the resize to ``size`` stays prepare_face's), then cut out
    r = int(np.ceil(w * (abs(np.cos(np.radians(angle))) + abs(np.sin(np.radians(angle)))))) + 2
    rx, ry = x + (w - r) // 2, y + (w - r) // 2
    region = _square(frame, rx, ry, r)
    c = (x + w / 2.0 - rx, y + w / 2.0 - ry)
    turn = cv2.getRotationMatrix2D(c, float(angle), 1.0)
    turn[:, 2] += (w / 2.0 - c[0], w / 2.0 - c[1])
    level = cv2.warpAffine(
        region, turn, (w, w), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return prepare_face(level, size)


def _square(frame: np.ndarray, x: int, y: int, side: int) -> np.ndarray:
    """The ``side`` square at ``(x, y)`` of ``frame``, its parts beyond the frame filled by
    repeating the frame's border (at least one pixel of the frame, so a stray box never
    fails)."""
    height, width = frame.shape[:2]
    x0, y0 = min(max(x, 0), width - 1), min(max(y, 0), height - 1)
    x1, y1 = max(min(x + side, width), x0 + 1), max(min(y + side, height), y0 + 1)
    part = frame[y0:y1, x0:x1]
    pads = (max(0, y0 - y), max(0, y + side - y1), max(0, x0 - x), max(0, x + side - x1))
    if any(pads):
        part = cv2.copyMakeBorder(part, *pads, cv2.BORDER_REPLICATE)
    return part


def normalise_light(
    face: np.ndarray,
    mean_range: tuple[float, float] = TRAINING_MEAN_RANGE,
    std_range: tuple[float, float] = TRAINING_STD_RANGE,
) -> np.ndarray:
    """A uint8 face crop whose brightness (mean grey level) or contrast (standard deviation)
    lies outside the range of nine in ten training faces, brought just inside it by one
    linear change of its grey levels; a face inside both ranges is returned as it is (the
    same array).

    A dim room or an underexposed camera gives faces far darker than FER2013's: the model
    read nearly every face at 4% of its brightness as angry. On the validation slice this
    took the default model from 34.8% to 69.9% on faces at 10% brightness, from 68.2% to
    70.0% at 40% and from 68.7% to 70.2% at half contrast, with the faces as they are
    unchanged at 71.76% (standardising every face instead cost 0.8 points there;
    ``benchmarks/probe_photometric.py``, docs/edge.md).
    """
    x = face.astype(np.float32)
    mean, std = float(x.mean()), float(x.std())
    target_mean = min(max(mean, mean_range[0]), mean_range[1])
    target_std = min(max(std, std_range[0]), std_range[1])
    if target_mean == mean and target_std == std:
        return face
    out = (x - mean) / max(std, 1.0) * target_std + target_mean
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
