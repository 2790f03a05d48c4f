"""OpenCV 4.x's Haar cascade (Viola-Jones, ``cv2.data.haarcascades``) on a scaled-down frame.

:meth:`HaarDetector.find_near` looks only around a known face, over a narrow band of
sizes: the pipeline uses it between full searches to follow tracked faces for a fraction
of the cost. Haar gives no scores: overlapping boxes are merged larger first.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from deepfer.edge.boxes import NO_BOXES, scale_boxes
from deepfer.edge.detectors.base import Detector, Found, scaled
from deepfer.edge.detectors.yunet import YUNET_HINT
from deepfer.edge.errors import DetectorError
from deepfer.edge.paths import user_path


class HaarDetector(Detector):
    """OpenCV's Viola-Jones cascade on a scaled-down frame."""

    name = "haar"
    # measured by benchmarks/measure_crop_mapping.py: Haar's box with the 10% margin frames a
    # face more loosely than FER2013 did (re-detected PublicTest accuracy -5.1 -> -0.6 points)
    crop = (0.851, 0.0, 0.0)
    supports_near = True

    #: Around a known face: searched region = face box grown by this fraction on each side,
    #: scaled so that the face is about NEAR_SIDE pixels; sizes NEAR_BAND of it are tried.
    NEAR_PAD = 0.3
    NEAR_SIDE = 26
    NEAR_BAND = (0.8, 1.3)
    NEAR_SCALE_FACTOR = 1.08
    #: Scale step of the periodic search for new faces while others are tracked.
    COARSE_SCALE_FACTOR = 1.2

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        detect_width: int = 320,
        scale_factor: float = 1.1,
        min_neighbors: int = 4,
    ):
        if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
            raise DetectorError(
                f"OpenCV {cv2.__version__} has no Haar cascades (OpenCV 5 moved them out of "
                f"the main module): use the YuNet detector instead: {YUNET_HINT}; or install "
                "opencv-python-headless<5"
            )
        path = user_path(cascade)
        if not path.is_file():
            path = Path(cv2.data.haarcascades) / cascade
        if not path.is_file():
            raise DetectorError(
                f"detector.cascade = {cascade!r}: no such file, neither as a path nor in "
                f"{cv2.data.haarcascades}"
            )
        self.classifier = cv2.CascadeClassifier(str(path))
        if self.classifier.empty():
            raise DetectorError(f"{path}: not a valid Haar cascade file")
        self.path = path
        window = self.classifier.getOriginalWindowSize()
        self.window = max(int(window[0]), int(window[1])) or 24
        self.detect_width = detect_width
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def find(self, gray: np.ndarray, min_size: int = 0, coarse: bool = False) -> Found:
        small, s = scaled(gray, self.detect_width)
        side = max(self.window, int(round(min_size * s)))
        if side > min(small.shape[:2]):
            return Found(NO_BOXES)
        factor = max(self.scale_factor, self.COARSE_SCALE_FACTOR) if coarse else self.scale_factor
        boxes = self.classifier.detectMultiScale(
            small, factor, self.min_neighbors, minSize=(side, side)
        )
        return Found(scale_boxes(boxes, 1.0 / s))

    def find_near(self, gray: np.ndarray, box) -> Found:
        x, y, w, h = (int(v) for v in box[:4])
        side = max(w, h, 1)
        pad = int(round(self.NEAR_PAD * side))
        height, width = gray.shape[:2]
        x0, y0 = max(x - pad, 0), max(y - pad, 0)
        x1, y1 = min(x + w + pad, width), min(y + h + pad, height)
        if x1 - x0 < self.window or y1 - y0 < self.window:
            return Found(NO_BOXES)
        s = min(1.0, self.NEAR_SIDE / side)
        region = gray[y0:y1, x0:x1]
        if s < 1.0:
            size = (max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s)))
            region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
        lo = max(self.window, int(side * s * self.NEAR_BAND[0]))
        hi = max(lo + 1, int(np.ceil(side * s * self.NEAR_BAND[1])))
        boxes = self.classifier.detectMultiScale(
            region,
            self.NEAR_SCALE_FACTOR,
            max(self.min_neighbors - 1, 1),
            minSize=(lo, lo),
            maxSize=(hi, hi),
        )
        return Found(scale_boxes(boxes, 1.0 / s, dx=x0, dy=y0))
