"""One camera frame: the grayscale plane faces are looked for in, and the colour image of
the same camera frame.

``gray`` may be smaller than the frame (picamera2's lores stream): ``scale`` maps its
pixels to frame pixels. Boxes the pipeline reports are always in frame pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from deepfer.edge.preprocess import to_gray


@dataclass(eq=False)
class Frame:
    """``gray`` (where faces are looked for) and ``image`` (BGR, for crops, drawing and the
    preview) of one camera frame; ``size`` is the frame's (width, height)."""

    gray: np.ndarray
    size: tuple[int, int]  # frame (width, height)
    index: int = 0
    t: float = 0.0  # stream time, seconds (position in a file; since start for a camera)
    ts: float = 0.0  # wall clock, time.time()
    image: np.ndarray | None = None  # BGR of the same camera frame; None: made from gray

    @property
    def scale(self) -> tuple[float, float]:
        """Frame pixels per ``gray`` pixel, (x, y)."""
        return self.size[0] / self.gray.shape[1], self.size[1] / self.gray.shape[0]

    def bgr(self) -> np.ndarray:
        """The colour frame (a grey-only frame is converted once, when first asked)."""
        if self.image is None:
            self.image = cv2.cvtColor(self.gray, cv2.COLOR_GRAY2BGR)
        return self.image

    def crop_plane(self) -> np.ndarray:
        """Grayscale at frame resolution, for face crops."""
        if (self.gray.shape[1], self.gray.shape[0]) == self.size:
            return self.gray
        return to_gray(self.bgr())


def frame_from_image(image: np.ndarray, index: int = 0, t: float = 0.0) -> Frame:
    """A Frame from a BGR (or gray/BGRA) image."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    gray = to_gray(image)
    bgr = image if image.ndim == 3 else None
    return Frame(
        gray=gray, size=(gray.shape[1], gray.shape[0]), index=index, t=t, ts=time.time(), image=bgr
    )
