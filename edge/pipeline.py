"""Detector + classifier (+ tracker) composed in one ``process(frame) -> list[Face]``.

OpenCV Zoo style: the model wrappers know nothing of each other; this module crops the
faces a detector finds (square, with a margin, grayscale, at the model's input size:
the same :func:`deepfer.edge.preprocess.crop_face` training uses), classifies all of a
frame's faces in one call, and hands boxes and scores to the tracker, whose events
become messages through :class:`deepfer.edge.events.EventBuilder`.

With a tracker and a detector that can search near a known face (Haar), tracked faces
are looked for only near where they were, in a narrow band of sizes (a fraction of the
cost of a full search). The whole frame is searched when there is no track, when a
tracked face is not found near where it was, and every ``rescan_frames`` frames, coarsely,
for new faces.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepfer.edge.capture import Frame, frame_from_image
from deepfer.edge.detector import FaceDetector, suppress_overlaps
from deepfer.edge.events import EventBuilder
from deepfer.edge.preprocess import crop_face
from deepfer.edge.tracker import Tracker, TrackEvent

#: Stages timed by :meth:`FacePipeline.process` (milliseconds in ``timings``).
STAGES = ("detect", "classify", "track")


@dataclass
class Face:
    """One face in a frame: box ``(x, y, w, h)`` in frame pixels, emotion and scores.

    With a tracker, ``emotion``/``score``/``scores`` are the track's smoothed, debounced
    values and ``track_id`` is set.
    """

    box: tuple[int, int, int, int]
    emotion: str
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    track_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.track_id is not None:
            out["track_id"] = self.track_id
        out.update(
            box=[int(v) for v in self.box],
            emotion=self.emotion,
            score=round(float(self.score), 4),
            scores={k: round(float(v), 4) for k, v in self.scores.items()},
        )
        return out


class FacePipeline:
    def __init__(
        self,
        detector: FaceDetector,
        classifier,
        tracker: Tracker | None = None,
        events: EventBuilder | None = None,
        margin: float = 0.1,
        min_face: int = 0,
        rescan_frames: int = 15,
    ):
        self.detector = detector
        self.classifier = classifier
        self.tracker = tracker
        self.builder = events
        self.margin = margin
        self.min_face = min_face
        self.rescan_frames = max(1, rescan_frames)
        self.labels = list(classifier.labels)
        self.size = classifier.input_size
        #: Milliseconds per stage for the last frame.
        self.timings: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        #: Event messages (dicts) of the last frame.
        self.events: list[dict[str, Any]] = []
        self.full_scans = 0
        self.near_scans = 0
        self._since_full = 0

    @classmethod
    def from_config(
        cls, config, classifier, detector: FaceDetector, events: EventBuilder | None = None,
        track: bool = True,
    ) -> FacePipeline:  # fmt: skip
        tracker = Tracker.from_config(classifier.labels, config.tracker) if track else None
        return cls(
            detector,
            classifier,
            tracker,
            events,
            margin=config.model.margin,
            min_face=config.detector.min_face,
            rescan_frames=config.detector.rescan_frames,
        )

    # -- stages ---------------------------------------------------------------------------

    def detect(self, frame: Frame) -> np.ndarray:
        """Face boxes in frame pixels, ``(n, 4)`` int32."""
        gray = frame.gray
        sx, sy = frame.scale
        min_size = int(round(self.min_face / sx)) if self.min_face else 0
        tracks = self.tracker.tracks if self.tracker is not None else []
        boxes = None
        if tracks and self.detector.supports_near:
            found = []
            for track in tracks:
                x, y, w, h = track.box
                near_boxes = self.detector.detect_near(gray, (x / sx, y / sy, w / sx, h / sy))
                if len(near_boxes) == 0:
                    break  # a tracked face was not where it was: search the whole frame
                found.append(near_boxes)
            else:
                self._since_full += 1
                if self._since_full >= self.rescan_frames:
                    # time to look for new faces: a coarse search (the tracked ones are found)
                    found.append(self.detector.detect(gray, min_size, coarse=True))
                    self._since_full = 0
                    self.full_scans += 1
                else:
                    self.near_scans += 1
                boxes = suppress_overlaps(np.concatenate(found))
        if boxes is None:
            boxes = self.detector.detect(gray, min_size)
            self._since_full = 0
            self.full_scans += 1
        if len(boxes) and (sx, sy) != (1.0, 1.0):
            boxes = np.round(boxes * np.array([sx, sy, sx, sy], np.float32)).astype(np.int32)
        return boxes

    def classify(self, frame: Frame, boxes: np.ndarray) -> np.ndarray:
        """``(n, k)`` probabilities for the boxes, all faces in one call."""
        if len(boxes) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        plane = frame.crop_plane()
        crops = np.stack(
            [crop_face(plane, box, self.size[0], self.margin) for box in boxes]
        )  # (n, h, w) uint8
        return self.classifier.infer(crops)

    def process(self, frame: Frame | np.ndarray) -> list[Face]:
        """Faces of one frame (a :class:`Frame` or a BGR/gray image)."""
        if not isinstance(frame, Frame):
            frame = frame_from_image(frame)
        t0 = time.perf_counter()
        boxes = self.detect(frame)
        t1 = time.perf_counter()
        scores = self.classify(frame, boxes)
        t2 = time.perf_counter()
        if self.tracker is None:
            faces = [self._raw_face(b, s) for b, s in zip(boxes, scores)]
            self.events = []
        else:
            tracks, track_events = self.tracker.update(boxes, scores, frame.t)
            faces = [
                Face(
                    box=tuple(int(v) for v in box),
                    emotion=tr.emotion,
                    score=float(tr.scores[self.labels.index(tr.emotion)]),
                    scores={k: float(v) for k, v in zip(self.labels, tr.scores)},
                    track_id=tr.id,
                )
                for box, tr in zip(boxes, tracks)
            ]
            self.events = [self.message(ev, frame.ts) for ev in track_events]
        t3 = time.perf_counter()
        self.timings = {
            "detect": (t1 - t0) * 1e3,
            "classify": (t2 - t1) * 1e3,
            "track": (t3 - t2) * 1e3,
        }
        return faces

    def _raw_face(self, box, scores) -> Face:
        i = int(np.argmax(scores))
        return Face(
            box=tuple(int(v) for v in box),
            emotion=self.labels[i],
            score=float(scores[i]),
            scores={k: float(v) for k, v in zip(self.labels, scores)},
        )

    # -- events ---------------------------------------------------------------------------

    def message(self, ev: TrackEvent, ts: float | None = None) -> dict[str, Any]:
        """A tracker event as the message every sink gets (edge/events.py)."""
        if self.builder is None:
            raise RuntimeError("FacePipeline has no EventBuilder")
        return self.builder.event(
            ev.type,
            ev.track.id,
            ev.emotion,
            ev.score,
            ev.scores,
            ev.box,
            ts=ts,
            dwell_s=ev.dwell_s if ev.type == "end" else None,
            histogram=ev.histogram if ev.type == "end" else None,
        )

    def close(self, ts: float | None = None) -> list[dict[str, Any]]:
        """``end`` messages for every open track (at shutdown)."""
        if self.tracker is None:
            return []
        ended = self.tracker.close()
        if self.builder is None:
            return []
        return [self.message(ev, ts if ts is not None else time.time()) for ev in ended]
