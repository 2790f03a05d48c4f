"""Face detectors behind one tiny base class (Frigate style).

A detector takes a 2-D uint8 grayscale image and returns an ``(n, 4)`` int32 array of
boxes ``x, y, w, h`` in that image's pixels (``(0, 4)`` when there is no face).

* :class:`HaarDetector`: OpenCV 4.x's Haar cascade (``cv2.data.haarcascades``), run on a
  frame scaled down to ``detect_width``. Its :meth:`~HaarDetector.detect_near` looks only
  around a known face, over a narrow band of sizes: the pipeline uses it between full
  searches to follow tracked faces for a fraction of the cost.
* :class:`YuNetDetector`: ``cv2.FaceDetectorYN`` with the YuNet ONNX file from the OpenCV
  Zoo (the way to go on OpenCV 5, which has no Haar cascades in its main module).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

NO_BOXES = np.zeros((0, 4), np.int32)
YUNET_HINT = (
    "download face_detection_yunet_2023mar.onnx from the OpenCV Zoo "
    "(github.com/opencv/opencv_zoo, models/face_detection_yunet) and pass --yunet FILE "
    '(or set detector.backend = "yunet" and detector.yunet_model in the config)'
)


class DetectorError(RuntimeError):
    """A detector that cannot be built (missing file, OpenCV without it), saying what to do."""


class FaceDetector:
    """Base class: :meth:`detect` on a grayscale image."""

    name = "detector"

    def detect(self, gray: np.ndarray, min_size: int = 0, coarse: bool = False) -> np.ndarray:
        """Boxes ``(n, 4)`` int32 of faces at least ``min_size`` pixels wide.

        ``coarse``: a cheaper search is fine (looking for new faces while others are tracked).
        """
        raise NotImplementedError

    #: Whether :meth:`detect_near` is cheaper than :meth:`detect` (used between full scans).
    supports_near = False

    def detect_near(self, gray: np.ndarray, box) -> np.ndarray:
        """Faces about the size of ``box`` around it (default: a full search)."""
        return self.detect(gray)


def _scaled(gray: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """``gray`` scaled down to ``width`` (never up) and the factor used."""
    h, w = gray.shape[:2]
    if not width or w <= width:
        return gray, 1.0
    s = width / w
    return cv2.resize(gray, (width, max(1, round(h * s))), interpolation=cv2.INTER_AREA), s


def _unscale(boxes, s: float, dx: int = 0, dy: int = 0) -> np.ndarray:
    if boxes is None or len(boxes) == 0:
        return NO_BOXES
    out = np.asarray(boxes, np.float32)[:, :4] / s
    out[:, 0] += dx
    out[:, 1] += dy
    return np.round(out).astype(np.int32)


class HaarDetector(FaceDetector):
    """OpenCV's Viola-Jones cascade on a scaled-down frame."""

    name = "haar"
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
        path = Path(cascade).expanduser()
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

    def detect(self, gray: np.ndarray, min_size: int = 0, coarse: bool = False) -> np.ndarray:
        small, s = _scaled(gray, self.detect_width)
        side = max(self.window, int(round(min_size * s)))
        if side > min(small.shape[:2]):
            return NO_BOXES
        factor = max(self.scale_factor, self.COARSE_SCALE_FACTOR) if coarse else self.scale_factor
        boxes = self.classifier.detectMultiScale(
            small, factor, self.min_neighbors, minSize=(side, side)
        )
        return _unscale(boxes, s)

    def detect_near(self, gray: np.ndarray, box) -> np.ndarray:
        x, y, w, h = (int(v) for v in box[:4])
        side = max(w, h, 1)
        pad = int(round(self.NEAR_PAD * side))
        height, width = gray.shape[:2]
        x0, y0 = max(x - pad, 0), max(y - pad, 0)
        x1, y1 = min(x + w + pad, width), min(y + h + pad, height)
        if x1 - x0 < self.window or y1 - y0 < self.window:
            return NO_BOXES
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
        return _unscale(boxes, s, x0, y0)


class YuNetDetector(FaceDetector):
    """OpenCV's YuNet CNN (cv2.FaceDetectorYN), from its ONNX file."""

    name = "yunet"

    def __init__(
        self,
        model_path: str | Path,
        detect_width: int = 320,
        score_threshold: float = 0.7,
        nms_threshold: float = 0.3,
        top_k: int = 100,
    ):
        if not hasattr(cv2, "FaceDetectorYN"):
            raise DetectorError(
                f"OpenCV {cv2.__version__} has no cv2.FaceDetectorYN (YuNet needs OpenCV >= "
                "4.8): upgrade opencv-python-headless"
            )
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise DetectorError(f"YuNet model {path}: no such file; {YUNET_HINT}")
        try:
            self.net = cv2.FaceDetectorYN.create(
                str(path), "", (320, 320), score_threshold, nms_threshold, top_k
            )
        except cv2.error as exc:
            detail = " ".join(str(exc).split())
            raise DetectorError(
                f"{path}: not a YuNet ONNX model OpenCV can load ({detail})"
            ) from None
        self.path = path
        self.detect_width = detect_width
        self._size: tuple[int, int] | None = None

    def detect(self, gray: np.ndarray, min_size: int = 0, coarse: bool = False) -> np.ndarray:
        small, s = _scaled(gray, self.detect_width)
        h, w = small.shape[:2]
        if self._size != (w, h):
            self.net.setInputSize((w, h))
            self._size = (w, h)
        _, faces = self.net.detect(cv2.cvtColor(small, cv2.COLOR_GRAY2BGR))
        boxes = _unscale(faces, s)
        if min_size and len(boxes):
            boxes = boxes[np.maximum(boxes[:, 2], boxes[:, 3]) >= min_size]
        return boxes


def make_detector(config) -> FaceDetector:
    """The detector a :class:`deepfer.edge.config.DetectorConfig` asks for.

    A YuNet file given means YuNet. Without one on an OpenCV with no Haar cascades
    (OpenCV 5), the error says where to get YuNet.
    """
    if config.backend == "yunet" or config.yunet_model:
        if not config.yunet_model:
            raise DetectorError(f"detector.backend = 'yunet' needs a model file: {YUNET_HINT}")
        detector: FaceDetector = YuNetDetector(
            config.yunet_model, config.detect_width, config.score_threshold, config.nms_threshold
        )
    else:
        detector = HaarDetector(
            config.cascade, config.detect_width, config.scale_factor, config.min_neighbors
        )
    log.info("face detector: %s (search width %s)", detector.name, config.detect_width or "full")
    return detector


def iou(a, b) -> float:
    """Intersection over union of two ``x, y, w, h`` boxes."""
    ax, ay, aw, ah = (float(v) for v in a[:4])
    bx, by, bw, bh = (float(v) for v in b[:4])
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


def suppress_overlaps(boxes: np.ndarray, threshold: float = 0.4) -> np.ndarray:
    """Greedy non-maximum suppression, larger boxes first (Haar gives no scores)."""
    if len(boxes) < 2:
        return boxes
    order = np.argsort(-(boxes[:, 2] * boxes[:, 3]))
    kept: list[int] = []
    for i in order:
        if all(iou(boxes[i], boxes[j]) < threshold for j in kept):
            kept.append(int(i))
    return boxes[sorted(kept)]
