"""The face detector interface: a :class:`Detection` per face, a tiny :class:`Detector` base.

A backend implements :meth:`Detector.find` on a 2-D uint8 grayscale image and returns boxes
in that image's pixels (with scores and landmarks when it has them); the base class maps
them to frame pixels (a picamera2 frame is searched in its smaller lores plane), so
:meth:`Detector.detect` always answers in frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from deepfer.edge.boxes import crop_box, eye_roll, face_turn, scale_boxes
from deepfer.edge.capture.frame import Frame
from deepfer.edge.preprocess import to_gray


@dataclass(eq=False)
class Detection:
    """One face: ``box`` ``(x, y, w, h)`` in frame pixels, ``score`` (1.0 when the backend
    gives none), ``keypoints`` an ``(n, 2)`` float array in frame pixels (YuNet: eyes, nose
    tip, mouth corners) or None; ``roll`` the angle of the line between the eyes in degrees
    (image coordinates, y down: positive when the face leans clockwise on screen), 0 when the
    backend gives no eyes; ``turn`` how far the face is turned clockwise on screen from where
    its mouth lies below its eyes (:func:`deepfer.edge.boxes.face_turn`; 90: lying on its
    side), None when the backend gives no eyes and mouth."""

    box: tuple[int, int, int, int]
    score: float = 1.0
    keypoints: np.ndarray | None = None
    roll: float = 0.0
    turn: float | None = None


@dataclass
class Found:
    """What a backend finds in one grayscale image, in that image's pixels."""

    boxes: np.ndarray  # (n, 4) x, y, w, h
    scores: np.ndarray | None = None  # (n,)
    keypoints: np.ndarray | None = None  # (n, k, 2)


class Detector:
    """Base class. ``detect(frame)`` -> faces in frame pixels; backends implement ``find``."""

    name = "detector"
    #: Whether :meth:`find_near` is cheaper than :meth:`find` (used between full searches).
    supports_near = False
    #: Near searches are used while at most this many faces are tracked (beyond it one full
    #: search costs less than a near search per face).
    max_near_faces = 1_000_000
    #: How this detector frames a face, relative to FER2013's framing: ``(scale, dx, dy)``
    #: maps a box to the box whose square with the default margin is the crop the classifier
    #: was trained on (side ``scale`` x the box's larger side, centre moved by ``dx`` of its
    #: width and ``dy`` of its height). Measured per backend by
    #: ``benchmarks/measure_crop_mapping.py`` on Training faces; (1, 0, 0) leaves a box as is.
    crop = (1.0, 0.0, 0.0)
    #: Which two of the backend's keypoints are the eyes (either order), or None.
    eyes: tuple[int, int] | None = None
    #: Which of its keypoints mark the mouth (its centre, or the corners), or None.
    mouth: tuple[int, ...] | None = None
    #: True where a box already is the crop the classifier sees (``whole.py``): no margin,
    #: no second framing (``model.crop_jitter``).
    boxes_are_crops = False

    def find(self, gray: np.ndarray, min_size: int = 0, coarse: bool = False) -> Found:
        """Faces in ``gray`` at least ``min_size`` of its pixels wide.

        ``coarse``: a cheaper search is fine (looking for new faces while others are tracked).
        """
        raise NotImplementedError

    def find_near(self, gray: np.ndarray, box) -> Found:
        """Faces about the size of ``box`` (``gray`` pixels) around it; default: a full search."""
        return self.find(gray)

    def find_plain(self, gray: np.ndarray) -> Found:
        """One search of the whole picture that changes nothing in the detector (no turn of
        a sweep of tiles): a side check such as the camera's turn. Default: :meth:`find`."""
        return self.find(gray)

    def detect(
        self, frame: Frame | np.ndarray, min_size: int = 0, coarse: bool = False
    ) -> list[Detection]:
        """Faces of a frame (or a BGR/gray image), at least ``min_size`` frame pixels wide."""
        gray, sx, sy = _plane(frame)
        min_gray = int(round(min_size / sx)) if min_size else 0
        return _detections(self.find(gray, min_gray, coarse), sx, sy, self.eyes, self.mouth)

    def detect_near(self, frame: Frame | np.ndarray, box) -> list[Detection]:
        """Faces about the size of ``box`` (frame pixels) around it."""
        gray, sx, sy = _plane(frame)
        x, y, w, h = (float(v) for v in box[:4])
        found = self.find_near(gray, (x / sx, y / sy, w / sx, h / sy))
        return _detections(found, sx, sy, self.eyes, self.mouth)

    def crop_box(self, box, scale: float = 1.0) -> tuple[int, int, int, int]:
        """``box`` (frame pixels) -> the square to crop for the classifier (see :attr:`crop`),
        its side times ``scale`` (the pipeline's second framings)."""
        s, dx, dy = self.crop
        return crop_box(box, (s * scale, dx, dy))

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


def _plane(frame: Frame | np.ndarray) -> tuple[np.ndarray, float, float]:
    if isinstance(frame, Frame):
        sx, sy = frame.scale
        return frame.gray, sx, sy
    return to_gray(np.asarray(frame)), 1.0, 1.0


def _detections(found: Found, sx: float, sy: float, eyes=None, mouth=None) -> list[Detection]:
    boxes = scale_boxes(found.boxes, sx, sy)
    out = []
    for i, box in enumerate(boxes):
        score = 1.0 if found.scores is None else float(found.scores[i])
        points, roll, turn = None, 0.0, None
        if found.keypoints is not None:
            points = np.asarray(found.keypoints[i], np.float32).reshape(-1, 2) * (sx, sy)
            if eyes is not None:
                roll = eye_roll(points[eyes[0]], points[eyes[1]])
                if mouth is not None:
                    turn = face_turn(points[eyes[0]], points[eyes[1]], points[list(mouth)])
        out.append(Detection(tuple(int(v) for v in box), score, points, roll, turn))
    return out


def scaled(gray: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """``gray`` scaled down to ``width`` (never up) and the factor used."""
    h, w = gray.shape[:2]
    if not width or w <= width:
        return gray, 1.0
    s = width / w
    return cv2.resize(gray, (width, max(1, round(h * s))), interpolation=cv2.INTER_AREA), s
