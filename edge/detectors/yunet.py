"""OpenCV's YuNet CNN face detector (``cv2.FaceDetectorYN``) from its ONNX file (OpenCV Zoo).

The way to go on OpenCV 5, which has no Haar cascades in its main module. It gives a score
and five landmarks (eyes, nose tip, mouth corners) per face.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from deepfer.edge.boxes import NO_BOXES, scale_boxes
from deepfer.edge.detectors.base import Detector, Found, scaled
from deepfer.edge.errors import DetectorError
from deepfer.edge.paths import user_path

YUNET_HINT = (
    "download face_detection_yunet_2023mar.onnx from the OpenCV Zoo "
    "(github.com/opencv/opencv_zoo, models/face_detection_yunet) and pass --yunet FILE "
    '(or set detector.backend = "yunet" and detector.yunet_model in the config)'
)


class YuNetDetector(Detector):
    """OpenCV's YuNet CNN (cv2.FaceDetectorYN), from its ONNX file."""

    name = "yunet"
    eyes = (0, 1)
    mouth = (3, 4)

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
        path = user_path(model_path)
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

    def find(self, gray: np.ndarray, min_size: int = 0, coarse: bool = False) -> Found:
        small, s = scaled(gray, self.detect_width)
        h, w = small.shape[:2]
        if self._size != (w, h):
            self.net.setInputSize((w, h))
            self._size = (w, h)
        _, faces = self.net.detect(cv2.cvtColor(small, cv2.COLOR_GRAY2BGR))
        if faces is None or len(faces) == 0:
            return Found(NO_BOXES, np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
        faces = np.asarray(faces, np.float32)  # x, y, w, h, 5 landmarks (x, y), score
        boxes = scale_boxes(faces[:, :4], 1.0 / s)
        keypoints = faces[:, 4:14].reshape(-1, 5, 2) / s
        scores = faces[:, 14]
        if min_size:
            keep = np.maximum(boxes[:, 2], boxes[:, 3]) >= min_size
            boxes, keypoints, scores = boxes[keep], keypoints[keep], scores[keep]
        return Found(boxes, scores, keypoints)
