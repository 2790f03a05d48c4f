"""Face boxes ``x, y, w, h``: overlap, scaling between image sizes, non-maximum suppression;
the lean of a face from its eye keypoints.

Boxes are ``(n, 4)`` int32 arrays (``(0, 4)`` for none) or any 4-sequence for one box.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

NO_BOXES = np.zeros((0, 4), np.int32)
#: A box whose area lies at least this much inside a kept box is the same face
#: (IoU alone keeps a small box inside a big one: 60x60 in 100x100 has IoU 0.36).
CONTAINED = 0.8


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``x, y, w, h`` boxes."""
    inter = _intersection(a, b)
    if inter <= 0:
        return 0.0
    return inter / (float(a[2]) * float(a[3]) + float(b[2]) * float(b[3]) - inter)


def _intersection(a: Sequence[float], b: Sequence[float]) -> float:
    ax, ay, aw, ah = (float(v) for v in a[:4])
    bx, by, bw, bh = (float(v) for v in b[:4])
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    return iw * ih if iw > 0 and ih > 0 else 0.0


def scale_boxes(boxes: np.ndarray, sx: float, sy: float | None = None, dx=0, dy=0) -> np.ndarray:
    """``boxes`` multiplied by ``(sx, sy)`` then moved by ``(dx, dy)``, rounded to int32."""
    if boxes is None or len(boxes) == 0:
        return NO_BOXES
    sy = sx if sy is None else sy
    out = np.asarray(boxes, np.float32)[:, :4] * np.array([sx, sy, sx, sy], np.float32)
    out[:, 0] += dx
    out[:, 1] += dy
    return np.round(out).astype(np.int32)


def nms(
    boxes: np.ndarray, scores: np.ndarray | None = None, iou_threshold: float = 0.4
) -> np.ndarray:
    """Indices of the boxes to keep, best first (ties: larger first).

    ``cv2.dnn.NMSBoxes`` drops boxes overlapping a better one by ``iou_threshold`` or more;
    then a box lying mostly (:data:`CONTAINED`) inside a kept one, or holding one, is the
    same face seen at two sizes and is dropped too. Without ``scores`` (Haar) larger boxes
    count as better.
    """
    boxes = np.asarray(boxes).reshape(-1, 4)
    n = len(boxes)
    if n == 0:
        return np.zeros(0, np.int64)
    area = boxes[:, 2].astype(np.float64) * boxes[:, 3]
    score = area if scores is None else np.asarray(scores, np.float64).reshape(n)
    if n == 1:
        return np.zeros(1, np.int64)
    ranked = score - score.min() + 1.0  # NMSBoxes keeps scores above its threshold (>= 0)
    kept = cv2.dnn.NMSBoxes(
        boxes.astype(np.int32).tolist(), ranked.astype(np.float32).tolist(), 0.0, iou_threshold
    )
    order = sorted(np.asarray(kept, np.int64).reshape(-1), key=lambda i: (-score[i], -area[i]))
    out: list[int] = []
    for i in order:
        inside = (
            _intersection(boxes[i], boxes[j]) >= CONTAINED * min(area[i], area[j]) for j in out
        )
        if not any(inside):
            out.append(int(i))
    return np.asarray(out, np.int64)


def suppress_overlaps(boxes: np.ndarray, threshold: float = 0.4) -> np.ndarray:
    """The boxes :func:`nms` keeps (larger first), in their original order."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    return boxes[np.sort(nms(boxes, None, threshold))]


def weighted_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    keypoints: np.ndarray | None = None,
    iou_threshold: float = 0.3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """MediaPipe-style weighted suppression: :func:`nms` picks the faces, then each kept box
    (and its keypoints) becomes the score-weighted mean of the candidates overlapping it by
    more than ``iou_threshold``. Returns ``(boxes, scores, keypoints)`` of the kept faces,
    best first, boxes as float32 ``(x, y, w, h)``."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    if len(boxes) == 0:
        return boxes, scores, keypoints
    kept = nms(boxes, scores, iou_threshold)
    out_b, out_s, out_k = [], [], []
    for i in kept:
        members = [
            j for j in range(len(boxes)) if j == i or iou(boxes[i], boxes[j]) > iou_threshold
        ]
        weights = scores[members] / scores[members].sum()
        out_b.append((boxes[members] * weights[:, None]).sum(0))
        out_s.append(scores[i])
        if keypoints is not None:
            out_k.append((keypoints[members] * weights[:, None, None]).sum(0))
    points = None if keypoints is None else np.asarray(out_k, np.float32)
    return np.asarray(out_b, np.float32), np.asarray(out_s, np.float32), points


def reframe(boxes: np.ndarray, framing: tuple[float, float, float]) -> np.ndarray:
    """Boxes ``(n, 4)`` with each side times ``scale`` and the centre moved by ``dx`` of the
    width and ``dy`` of the height (float)."""
    scale, dx, dy = framing
    if (scale, dx, dy) == (1.0, 0.0, 0.0) or len(boxes) == 0:
        return boxes
    boxes = boxes.astype(np.float64 if boxes.dtype == np.float64 else np.float32)
    cx = boxes[:, 0] + boxes[:, 2] / 2.0 + dx * boxes[:, 2]
    cy = boxes[:, 1] + boxes[:, 3] / 2.0 + dy * boxes[:, 3]
    boxes[:, 2:] *= scale
    boxes[:, 0] = cx - boxes[:, 2] / 2.0
    boxes[:, 1] = cy - boxes[:, 3] / 2.0
    return boxes


def crop_box(box, framing: tuple[float, float, float]) -> tuple[int, int, int, int]:
    """The square a classifier crops for ``box`` ``(x, y, w, h)``: :func:`reframe` by
    ``(scale, dx, dy)``, then the square of its longer side on the same centre (int pixels;
    the identity framing returns ``box`` as it is)."""
    if tuple(framing) == (1.0, 0.0, 0.0):
        return tuple(int(v) for v in box[:4])
    x, y, w, h = reframe(np.asarray([box[:4]], np.float64), framing)[0]
    side, cx, cy = max(w, h), x + w / 2.0, y + h / 2.0
    return (
        int(round(cx - side / 2.0)),
        int(round(cy - side / 2.0)),
        max(1, int(round(side))),
        max(1, int(round(side))),
    )


def box_offset(ref: Sequence[float], box: Sequence[float]) -> np.ndarray:
    """How ``ref`` differs from ``box``: ``(log of the width ratio, centre shifts in box
    widths and heights)``; ``reframe(box, (exp(o[0]), o[1], o[2]))`` gives ``ref`` back."""
    rx, ry, rw, rh = (float(v) for v in ref[:4])
    bx, by, bw, bh = (float(v) for v in box[:4])
    return np.array(
        [np.log(rw / bw), (rx + rw / 2 - bx - bw / 2) / bw, (ry + rh / 2 - by - bh / 2) / bh]
    )


def face_turn(eye_a, eye_b, mouth) -> float:
    """Degrees a face is turned on screen, from where its mouth lies below its eyes (image
    coordinates, y down): 0 upright, positive turned clockwise (90: lying on its side, chin to
    the left of the picture), 180 upside down. ``mouth``: one point, or several (the corners)
    averaged."""
    eyes = (np.asarray(eye_a, float) + np.asarray(eye_b, float)) / 2.0
    dx, dy = np.asarray(mouth, float).reshape(-1, 2).mean(axis=0) - eyes
    return float(np.degrees(np.arctan2(-dx, dy)))


def eye_roll(a, b) -> float:
    """Degrees of the line between two eye points (either order), image coordinates (y down):
    0 for level eyes, positive when the eye on the right of the picture is lower."""
    (x0, y0), (x1, y1) = sorted((tuple(map(float, a)), tuple(map(float, b))))
    return float(np.degrees(np.arctan2(y1 - y0, x1 - x0)))
