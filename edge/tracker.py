"""Anonymous face tracks: IoU matching, per-track score smoothing and a debounced emotion.

Each frame's detections are matched to open tracks by box overlap (greedy, highest IoU
first). A track's scores are an exponential moving average of its faces' scores; its
emotion changes only when another emotion has led the smoothed scores for
``debounce_frames`` frames in a row, so a one-frame flicker never changes it.

A track *starts* (and gets a ``start`` event) once seen ``min_hits`` times, emits
``change`` when its debounced emotion changes, and *ends* (``end``, with dwell time and
the histogram of its emotion over its detections) after ``max_missed`` updates without a
face, or when the tracker is closed. The tracker is updated on detection frames only
(``detector.fps`` a second), so all these counts are of detections. Ids are small integers,
counted from 1 per process: they identify a track, never a person.

Each track also keeps a smoothed velocity of its box (pixels per second of stream time), so
that between two detections (``detector.fps``) its box can be predicted: :meth:`Track.predict`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from deepfer.edge.boxes import iou


@dataclass(eq=False)
class Track:
    id: int
    box: tuple[int, int, int, int]
    scores: np.ndarray  # smoothed, float32 (k,)
    emotion: str
    first_t: float
    last_t: float
    hits: int = 1
    missed: int = 0
    started: bool = False
    pending: str | None = None  # emotion leading the scores but not yet debounced
    pending_frames: int = 0
    histogram: Counter = field(default_factory=Counter)
    #: Smoothed change of (x, y, w, h) per second of stream time.
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))

    @property
    def score(self) -> float:
        return float(self.scores.max())

    @property
    def dwell_s(self) -> float:
        return max(0.0, self.last_t - self.first_t)

    def predict(
        self, t: float, size: tuple[int, int], horizon_s: float = 0.5
    ) -> tuple[int, int, int, int]:
        """The box expected at stream time ``t`` (constant velocity from the last detection,
        at most ``horizon_s`` ahead), kept inside a frame of ``size`` (width, height)."""
        dt = min(max(t - self.last_t, 0.0), horizon_s)
        x, y, w, h = np.asarray(self.box, np.float32) + self.velocity * dt
        fw, fh = size
        w, h = min(max(w, 1.0), fw), min(max(h, 1.0), fh)
        x, y = min(max(x, 0.0), fw - w), min(max(y, 0.0), fh - h)
        return int(round(x)), int(round(y)), int(round(w)), int(round(h))

    def moved(self, box: tuple[int, int, int, int], t: float) -> None:
        """Seen at ``box`` at stream time ``t``: the box, its velocity (EMA) and ``last_t``."""
        dt = t - self.last_t
        if dt > 0:
            step = (np.asarray(box, np.float32) - np.asarray(self.box, np.float32)) / dt
            self.velocity = (0.5 * step + 0.5 * self.velocity).astype(np.float32)
        self.box = box
        self.last_t = t


@dataclass
class TrackEvent:
    type: str  # start | change | end
    track: Track
    emotion: str
    score: float
    scores: dict[str, float]
    box: tuple[int, int, int, int]
    dwell_s: float = 0.0
    histogram: dict[str, int] = field(default_factory=dict)


class Tracker:
    def __init__(
        self,
        labels: Sequence[str],
        iou_threshold: float = 0.3,
        ema_alpha: float = 0.5,
        debounce_frames: int = 3,
        min_hits: int = 2,
        max_missed: int = 10,
    ):
        self.labels = list(labels)
        self.iou_threshold = iou_threshold
        self.ema_alpha = ema_alpha
        self.debounce_frames = max(1, debounce_frames)
        self.min_hits = max(1, min_hits)
        self.max_missed = max(0, max_missed)
        self.tracks: list[Track] = []
        self._next_id = 1

    @classmethod
    def from_config(cls, labels: Sequence[str], config) -> Tracker:
        return cls(
            labels,
            iou_threshold=config.iou_threshold,
            ema_alpha=config.ema_alpha,
            debounce_frames=config.debounce_frames,
            min_hits=config.min_hits,
            max_missed=config.max_missed,
        )

    def _event(self, type_: str, track: Track) -> TrackEvent:
        scores = {k: float(v) for k, v in zip(self.labels, track.scores)}
        ev = TrackEvent(type_, track, track.emotion, scores[track.emotion], scores, track.box)
        if type_ == "end":
            ev.dwell_s = track.dwell_s
            ev.histogram = {k: int(v) for k, v in track.histogram.items()}
        return ev

    def match(self, boxes: np.ndarray) -> list[tuple[int, int]]:
        """(track index, detection index) pairs, greedy by IoU above the threshold."""
        pairs = []
        for ti, track in enumerate(self.tracks):
            for di, box in enumerate(boxes):
                overlap = iou(track.box, box)
                if overlap >= self.iou_threshold:
                    pairs.append((overlap, ti, di))
        pairs.sort(key=lambda p: -p[0])
        used_t: set[int] = set()
        used_d: set[int] = set()
        out = []
        for _, ti, di in pairs:
            if ti not in used_t and di not in used_d:
                used_t.add(ti)
                used_d.add(di)
                out.append((ti, di))
        return out

    def update(
        self, boxes: np.ndarray, scores: np.ndarray, t: float
    ) -> tuple[list[Track], list[TrackEvent]]:
        """One frame's detections -> the track of each detection (same order) and events."""
        boxes = np.asarray(boxes).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(len(boxes), len(self.labels))
        events: list[TrackEvent] = []
        assigned: list[Track | None] = [None] * len(boxes)
        for ti, di in self.match(boxes):
            track = self.tracks[ti]
            a = self.ema_alpha
            track.scores = (a * scores[di] + (1.0 - a) * track.scores).astype(np.float32)
            track.moved(tuple(int(v) for v in boxes[di]), t)
            track.hits += 1
            track.missed = 0
            self._debounce(track, events)
            assigned[di] = track
        for di, track in enumerate(assigned):
            if track is None:
                s = scores[di].astype(np.float32)
                track = Track(
                    id=self._next_id,
                    box=tuple(int(v) for v in boxes[di]),
                    scores=s,
                    emotion=self.labels[int(s.argmax())],
                    first_t=t,
                    last_t=t,
                )
                self._next_id += 1
                self.tracks.append(track)
                assigned[di] = track
        seen = {id(tr) for tr in assigned}
        alive = []
        for track in self.tracks:
            if id(track) in seen:
                if not track.started and track.hits >= self.min_hits:
                    track.started = True
                    events.append(self._event("start", track))
                if track.started:
                    track.histogram[track.emotion] += 1
                alive.append(track)
                continue
            track.missed += 1
            if track.missed > self.max_missed:
                if track.started:
                    events.append(self._event("end", track))
            else:
                alive.append(track)
        self.tracks = alive
        return assigned, events  # type: ignore[return-value]

    def _debounce(self, track: Track, events: list[TrackEvent]) -> None:
        leader = self.labels[int(track.scores.argmax())]
        if not track.started:  # before its start event a track just follows its scores
            track.emotion = leader
        if leader == track.emotion:
            track.pending, track.pending_frames = None, 0
            return
        if leader == track.pending:
            track.pending_frames += 1
        else:
            track.pending, track.pending_frames = leader, 1
        if track.pending_frames >= self.debounce_frames:
            track.emotion = leader
            track.pending, track.pending_frames = None, 0
            if track.started:
                events.append(self._event("change", track))

    def close(self) -> list[TrackEvent]:
        """End every open track (at shutdown)."""
        events = [self._event("end", tr) for tr in self.tracks if tr.started]
        self.tracks = []
        return events
