"""One camera frame: the grayscale plane faces are looked for in, and the colour image of
the same camera frame.

``gray`` may be smaller than the frame (picamera2's lores stream): ``scale`` maps its
pixels to frame pixels. Boxes the pipeline reports are always in frame pixels.

A frame the capture loop was told nobody will look at (between two detections, see
``FrameReader(pixels=...)``) is read without its pixels: :meth:`Frame.skipped` keeps its size
and times, and asking it for pixels raises :class:`~deepfer.edge.errors.SourceError`.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from deepfer.edge.config.sections import ROTATIONS
from deepfer.edge.errors import SourceError
from deepfer.edge.preprocess import to_gray

_ROTATE_CODES = {
    90: cv2.ROTATE_90_CLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_COUNTERCLOCKWISE,
}


def rotate_image(image: np.ndarray, degrees: int) -> np.ndarray:
    """``image`` turned ``degrees`` clockwise (one of :data:`ROTATIONS`); 0: the same array."""
    if degrees not in ROTATIONS:
        raise ValueError(f"rotation {degrees!r}: must be one of {', '.join(map(str, ROTATIONS))}")
    return image if degrees == 0 else cv2.rotate(image, _ROTATE_CODES[degrees])


class Frame:
    """``gray`` (where faces are looked for) and ``image`` (BGR, for crops, drawing and the
    preview) of one camera frame; ``size`` is the frame's (width, height).

    Give ``gray``, ``image`` or both. A frame made from a colour image alone converts it to
    grayscale only when ``gray`` is first asked for: frames the pipeline carries between
    detections are never converted.
    """

    __slots__ = ("_gray", "size", "index", "t", "ts", "image")

    @classmethod
    def skipped(cls, size: tuple[int, int]) -> Frame:
        """A frame read without its pixels (grabbed, not decoded): size and times only."""
        frame = cls.__new__(cls)
        frame._gray = frame.image = None
        frame.size = (int(size[0]), int(size[1]))
        frame.index, frame.t, frame.ts = 0, 0.0, 0.0
        return frame

    def __init__(
        self,
        gray: np.ndarray | None = None,
        size: tuple[int, int] | None = None,
        index: int = 0,
        t: float = 0.0,  # stream time, seconds (position in a file; since start for a camera)
        ts: float = 0.0,  # wall clock, time.time()
        image: np.ndarray | None = None,  # BGR of the same camera frame; None: made from gray
    ):
        if gray is None and image is None:
            raise ValueError("a Frame needs its grayscale plane, its colour image or both")
        self._gray = gray
        self.image = image
        if size is None:
            plane = image if image is not None else gray
            size = (plane.shape[1], plane.shape[0])
        self.size = size
        self.index, self.t, self.ts = index, t, ts

    @property
    def has_pixels(self) -> bool:
        return self._gray is not None or self.image is not None

    @property
    def gray(self) -> np.ndarray:
        if self._gray is None:
            self._gray = to_gray(self._pixels())
        return self._gray

    def _pixels(self) -> np.ndarray:
        if self.image is None:
            raise SourceError(
                f"frame {self.index} (t={self.t:.3f}) was read without its pixels: the capture "
                "loop was told nothing would look at it (FrameReader pixels=)"
            )
        return self.image

    @property
    def scale(self) -> tuple[float, float]:
        """Frame pixels per ``gray`` pixel, (x, y)."""
        if self._gray is None:  # made from the colour frame: same size
            return 1.0, 1.0
        return self.size[0] / self._gray.shape[1], self.size[1] / self._gray.shape[0]

    def bgr(self) -> np.ndarray:
        """The colour frame (a grey-only frame is converted once, when first asked)."""
        if self.image is None:
            self.image = cv2.cvtColor(self.gray, cv2.COLOR_GRAY2BGR)  # raises if none
        return self.image

    def crop_plane(self) -> np.ndarray:
        """Grayscale at frame resolution, for face crops."""
        gray = self.gray
        if (gray.shape[1], gray.shape[0]) == self.size:
            return gray
        return to_gray(self.bgr())

    def rotated(self, degrees: int) -> Frame:
        """This frame turned ``degrees`` clockwise: both planes, and the size (a quarter turn
        swaps width and height); a frame without pixels stays without them."""
        if degrees == 0:
            return self
        w, h = self.size
        size = (h, w) if degrees in (90, 270) else (w, h)
        if not self.has_pixels:
            frame = Frame.skipped(size)
        else:
            gray = None if self._gray is None else rotate_image(self._gray, degrees)
            image = None if self.image is None else rotate_image(self.image, degrees)
            frame = Frame(gray=gray, size=size, image=image)
        frame.index, frame.t, frame.ts = self.index, self.t, self.ts
        return frame

    def __repr__(self) -> str:
        return f"<Frame {self.index} t={self.t:.3f} {self.size[0]}x{self.size[1]}>"


def frame_from_image(image: np.ndarray, index: int = 0, t: float = 0.0) -> Frame:
    """A Frame from a BGR (or gray/BGRA) image; a colour image's grayscale plane is made when
    first needed."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return Frame(size=(image.shape[1], image.shape[0]), index=index, t=t, ts=time.time(),
                     image=image)  # fmt: skip
    gray = to_gray(image)
    return Frame(gray=gray, size=(gray.shape[1], gray.shape[0]), index=index, t=t, ts=time.time())
