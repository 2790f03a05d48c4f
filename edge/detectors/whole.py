"""No face search: each whole picture is one face (``detector.backend = "none"``).

For pictures that already are face crops (a folder of FER2013-style faces, the output of
another detector): a face detector frames a face that fills its picture its own way (or not
at all), and the classifier should see the crop as it was trained to, not a square grown
around a detector's box.
"""

from __future__ import annotations

import numpy as np

from deepfer.edge.detectors.base import Detector, Found


class WholeImageDetector(Detector):
    """The whole image is the face's box; the crop is the picture itself (no margin added)."""

    name = "none"
    boxes_are_crops = True

    def find(self, gray: np.ndarray, min_size: int = 0, coarse: bool = False) -> Found:
        h, w = gray.shape[:2]
        if max(w, h) < min_size:
            return Found(np.zeros((0, 4), np.int32))
        return Found(np.array([[0, 0, w, h]], np.int32))
