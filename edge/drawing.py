"""Drawing faces on frames, kept apart from inference (OpenCV Zoo style).

:func:`draw_faces` returns an annotated copy: a box per face in its emotion's
colour, a label ``#3 happy 87%`` kept inside the frame, and a small score bar.
Sizes scale with the frame, so labels stay readable from 160x120 to 4K.

A face is any object with ``.box`` (x, y, w, h), ``.emotion``, ``.score`` and
optionally ``.track_id`` (e.g. ``deepfer.edge.pipeline.Face``), or a mapping
with those keys (an event message works too).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from deepfer.edge.labels import LABELS

#: BGR colour per emotion (saturated, told apart at a glance; grey for neutral).
PALETTE: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 230),  # red
    "disgust": (40, 170, 40),  # green
    "fear": (200, 60, 170),  # purple
    "happy": (0, 210, 255),  # yellow
    "neutral": (190, 190, 190),  # light grey
    "sad": (230, 110, 20),  # blue
    "surprise": (0, 140, 255),  # orange
}
assert set(PALETTE) == set(LABELS), "PALETTE must cover every label"

#: Colour for an emotion outside :data:`LABELS` (a model with its own labels).
UNKNOWN_COLOR: tuple[int, int, int] = (255, 255, 255)

FONT = cv2.FONT_HERSHEY_SIMPLEX


def emotion_color(emotion: str | None) -> tuple[int, int, int]:
    """The BGR colour of an emotion (white for one the palette does not know)."""
    if emotion is None:
        return UNKNOWN_COLOR
    return PALETTE.get(str(emotion).strip().lower(), UNKNOWN_COLOR)


def _field(face: Any, name: str, default: Any = None) -> Any:
    if isinstance(face, Mapping):
        return face.get(name, default)
    return getattr(face, name, default)


def face_label(face: Any) -> str:
    """``#3 happy 87%`` (no ``#id`` without a track id, no percent without a score)."""
    parts = []
    track_id = _field(face, "track_id")
    if track_id is not None:
        parts.append(f"#{track_id}")
    emotion = _field(face, "emotion")
    parts.append(str(emotion) if emotion is not None else "?")
    score = _field(face, "score")
    if score is not None:
        parts.append(f"{100.0 * float(score):.0f}%")
    return " ".join(parts)


def _style(frame_shape: tuple[int, ...]) -> tuple[float, int, int]:
    """Font scale, text thickness and box thickness for a frame size."""
    side = min(frame_shape[0], frame_shape[1])
    font_scale = float(np.clip(side / 800.0, 0.35, 3.0))
    text_thickness = max(1, round(side / 450))
    box_thickness = max(1, round(side / 240))
    return font_scale, text_thickness, box_thickness


def _text_color(background: tuple[int, int, int]) -> tuple[int, int, int]:
    b, g, r = background
    return (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 140 else (255, 255, 255)


def _to_bgr(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame.copy()
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    raise ValueError(f"cannot draw on an array of shape {frame.shape}; expected an image")


def draw_faces(
    frame_bgr: np.ndarray,
    faces: Iterable[Any],
    labels: Sequence[str | None] | None = None,
    score_bar: bool = True,
) -> np.ndarray:
    """An annotated BGR copy of ``frame_bgr`` (the input is never modified).

    ``labels`` optionally replaces the text of each face (same order as
    ``faces``; ``None`` keeps the default ``#id emotion 87%``). Boxes partly
    outside the frame are clipped; boxes wholly outside are skipped.
    """
    out = _to_bgr(frame_bgr)
    height, width = out.shape[:2]
    font_scale, text_thickness, box_thickness = _style(out.shape)
    faces = list(faces)
    if labels is not None and len(labels) != len(faces):
        raise ValueError(f"labels has {len(labels)} entries for {len(faces)} faces")
    for i, face in enumerate(faces):
        box = _field(face, "box")
        if box is None:
            raise ValueError(f"face {i} has no box: {face!r}")
        x, y, w, h = (round(float(v)) for v in box)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, width) - 1, min(y + h, height) - 1
        if x1 < x0 or y1 < y0:
            continue  # wholly outside the frame
        color = emotion_color(_field(face, "emotion"))
        cv2.rectangle(out, (x0, y0), (x1, y1), color, box_thickness)

        score = _field(face, "score")
        if score_bar and score is not None:
            bar_h = max(2, 2 * box_thickness)
            bar_w = x1 - x0 + 1
            by = y1 + box_thickness + 1  # just under the box, or inside its bottom edge
            if by + bar_h > height:
                by = max(y1 - box_thickness - bar_h, y0)
            fill = round(bar_w * float(np.clip(float(score), 0.0, 1.0)))
            cv2.rectangle(out, (x0, by), (x1, by + bar_h - 1), (40, 40, 40), -1)
            if fill > 0:
                cv2.rectangle(out, (x0, by), (x0 + fill - 1, by + bar_h - 1), color, -1)

        text = labels[i] if labels is not None and labels[i] is not None else face_label(face)
        (tw, th), baseline = cv2.getTextSize(text, FONT, font_scale, text_thickness)
        pad = max(2, text_thickness * 2)
        label_w, label_h = tw + 2 * pad, th + baseline + 2 * pad
        lx = min(max(x0, 0), max(width - label_w, 0))
        ly = y0 - label_h  # above the box ...
        if ly < 0:
            ly = y0 + box_thickness  # ... or inside its top edge when there is no room
        ly = min(ly, max(height - label_h, 0))
        cv2.rectangle(out, (lx, ly), (lx + label_w - 1, ly + label_h - 1), color, -1)
        cv2.putText(
            out,
            text,
            (lx + pad, ly + pad + th),
            FONT,
            font_scale,
            _text_color(color),
            text_thickness,
            cv2.LINE_AA,
        )
    return out
