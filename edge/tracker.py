"""Anonymous face tracks: IoU matching, per-track score smoothing and a debounced emotion.

Each detection's face is matched to an open track by box overlap with where the track's
face is expected now (its last box moved on at its velocity; greedy, highest IoU first),
then, for the faces and tracks left, by distance: a face at most ``max_speed`` face sides
per second of stream time from where its track is expected, and of about its size (2/3 to
3/2), continues that track (nearest first). At a few detections a second a face passing the
camera moves further than its own width between two detections, so overlap alone would
start a new track, a new "person", at each. Every setting is in seconds of *stream time*,
so a track behaves the same whatever the camera's frame rate and however often faces are
detected (``detector.fps``):

* a track's scores are an exponential moving average of its faces' scores with a half-life
  of ``smoothing_s`` (0: no smoothing): a face seen ``dt`` seconds after the last one weighs
  ``1 - 0.5 ** (dt / smoothing_s)``;
* its emotion changes only when another emotion has led the smoothed scores for
  ``debounce_s`` seconds, on two detections at least, so a one-detection flicker never
  changes it;
* it *starts* (``start`` event) once seen ``min_hits`` times (a count: one false detection is
  not a face), emits ``change`` when its debounced emotion changes, and *ends* (``end``,
  with dwell time and the histogram of its emotion over its detections) when its face has
  not been seen for more than ``max_missed_s`` seconds, or when the tracker is closed.

Ids are small integers, counted from 1 per process: they identify a track, never a person.
Each track also keeps a smoothed velocity of its box (pixels per second of stream time), so
that between two detections its box can be predicted: :meth:`Track.predict`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from deepfer.edge.boxes import iou

#: A track's face is expected where its velocity takes it, at most this far ahead (seconds of
#: stream time): beyond, it is expected where it was last seen moved on by this much.
HORIZON_S = 0.5
#: A face continues a track it does not overlap only at 2/3 to 3/2 times the track's size.
SIZE_RATIO = 1.5


@dataclass(eq=False)
class Track:
    id: int
    box: tuple[int, int, int, int]
    scores: np.ndarray  # smoothed, float32 (k,)
    emotion: str
    first_t: float
    last_t: float
    hits: int = 1
    missed: int = 0  # detections since its face was last seen
    started: bool = False
    pending: str | None = None  # emotion leading the scores but not yet debounced
    pending_since: float = 0.0  # stream time it first led
    pending_hits: int = 0  # detections it has led on
    histogram: Counter = field(default_factory=Counter)
    #: Smoothed change of (x, y, w, h) per second of stream time.
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))

    @property
    def score(self) -> float:
        return float(self.scores.max())

    @property
    def dwell_s(self) -> float:
        return max(0.0, self.last_t - self.first_t)

    def expected(self, t: float) -> np.ndarray:
        """Where its face is expected at stream time ``t``: ``(x, y, w, h)`` float, its last
        box moved on at its velocity (at most :data:`HORIZON_S` ahead), not kept in a frame."""
        dt = min(max(t - self.last_t, 0.0), HORIZON_S)
        return np.asarray(self.box, np.float32) + self.velocity * dt

    def predict(self, t: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """:meth:`expected` at stream time ``t``, kept inside a frame of ``size`` (width,
        height), in whole pixels."""
        x, y, w, h = self.expected(t)
        fw, fh = size
        w, h = min(max(w, 1.0), fw), min(max(h, 1.0), fh)
        x, y = min(max(x, 0.0), fw - w), min(max(y, 0.0), fh - h)
        return int(round(x)), int(round(y)), int(round(w)), int(round(h))

    def moved(self, box: tuple[int, int, int, int], t: float) -> None:
        """Seen at ``box`` at stream time ``t``: the box, its velocity and ``last_t``. The
        velocity is the first step's, then an even mix of each new step and the velocity
        before (an average that does not start from standing still)."""
        dt = t - self.last_t
        if dt > 0:
            step = (np.asarray(box, np.float32) - np.asarray(self.box, np.float32)) / dt
            keep = 0.5 if self.hits > 1 else 0.0
            self.velocity = ((1.0 - keep) * step + keep * self.velocity).astype(np.float32)
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
        smoothing_s: float = 0.2,
        debounce_s: float = 0.4,
        min_hits: int = 2,
        max_missed_s: float = 2.0,
        max_speed: float = 12.0,
    ):
        self.labels = list(labels)
        self.iou_threshold = iou_threshold
        self.smoothing_s = max(0.0, smoothing_s)
        self.debounce_s = max(0.0, debounce_s)
        self.min_hits = max(1, min_hits)
        self.max_missed_s = max(0.0, max_missed_s)
        #: Face sides per second of stream time a face may move and continue a track it does
        #: not overlap (0: overlap only).
        self.max_speed = max(0.0, max_speed)
        self.tracks: list[Track] = []
        self._next_id = 1

    @classmethod
    def from_config(cls, labels: Sequence[str], config) -> Tracker:
        return cls(
            labels,
            iou_threshold=config.iou_threshold,
            smoothing_s=config.smoothing_s,
            debounce_s=config.debounce_s,
            min_hits=config.min_hits,
            max_missed_s=config.max_missed_s,
            max_speed=config.max_speed,
        )

    def weight(self, dt: float) -> float:
        """The weight of a face seen ``dt`` seconds after its track's last one."""
        if self.smoothing_s <= 0.0 or dt < 0.0:  # no smoothing, or time went back
            return 1.0
        return 1.0 - 0.5 ** (dt / self.smoothing_s)

    def _event(self, type_: str, track: Track) -> TrackEvent:
        scores = {k: float(v) for k, v in zip(self.labels, track.scores)}
        ev = TrackEvent(type_, track, track.emotion, scores[track.emotion], scores, track.box)
        if type_ == "end":
            ev.dwell_s = track.dwell_s
            ev.histogram = {k: int(v) for k, v in track.histogram.items()}
        return ev

    def match(self, boxes: np.ndarray, t: float) -> list[tuple[int, int]]:
        """(track index, detection index) pairs at stream time ``t``: first by overlap (IoU
        >= the threshold with the track's last box or with where it is expected now, highest
        first), then the tracks and detections left by distance (:meth:`near_enough`,
        nearest first)."""
        expected = [tr.expected(t) for tr in self.tracks]
        pairs = []
        for ti, track in enumerate(self.tracks):
            for di, box in enumerate(boxes):
                overlap = max(iou(track.box, box), iou(expected[ti], box))
                if overlap >= self.iou_threshold:
                    pairs.append((-overlap, ti, di))
        out = _greedy(pairs)
        if self.max_speed > 0:
            used_t, used_d = {ti for ti, _ in out}, {di for _, di in out}
            pairs = []
            for ti, track in enumerate(self.tracks):
                if ti in used_t:
                    continue
                for di, box in enumerate(boxes):
                    if di not in used_d:
                        d = self.near_enough(track, expected[ti], box, t)
                        if d is not None:
                            pairs.append((d, ti, di))
            out += _greedy(pairs)
        return out

    def near_enough(self, track: Track, expected: np.ndarray, box, t: float) -> float | None:
        """How far ``box``'s centre is from where ``track``'s face is expected, in the track's
        face sides, when it is within ``max_speed`` sides per second since the track was
        last seen (at most :data:`HORIZON_S`) and ``box`` is 2/3 to 3/2 the track's size;
        else None."""
        side = float(max(track.box[2], track.box[3], 1))
        ratio = float(max(box[2], box[3])) / side
        if not 1.0 / SIZE_RATIO <= ratio <= SIZE_RATIO:
            return None
        dt = min(max(t - track.last_t, 0.0), HORIZON_S)
        cx, cy = expected[0] + expected[2] / 2.0, expected[1] + expected[3] / 2.0
        d = float(np.hypot(box[0] + box[2] / 2.0 - cx, box[1] + box[3] / 2.0 - cy)) / side
        return d if d <= self.max_speed * dt else None

    def update(
        self, boxes: np.ndarray, scores: np.ndarray, t: float
    ) -> tuple[list[Track], list[TrackEvent]]:
        """One frame's detections -> the track of each detection (same order) and events."""
        boxes = np.asarray(boxes).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(len(boxes), len(self.labels))
        events: list[TrackEvent] = []
        assigned: list[Track | None] = [None] * len(boxes)
        for ti, di in self.match(boxes, t):
            track = self.tracks[ti]
            a = self.weight(t - track.last_t)
            track.scores = (a * scores[di] + (1.0 - a) * track.scores).astype(np.float32)
            track.moved(tuple(int(v) for v in boxes[di]), t)
            track.hits += 1
            track.missed = 0
            self._debounce(track, t, events)
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
            gone_s = t - track.last_t
            if gone_s > self.max_missed_s + 1e-6 or gone_s < 0:  # or time went back
                if track.started:
                    events.append(self._event("end", track))
            else:
                alive.append(track)
        self.tracks = alive
        return assigned, events  # type: ignore[return-value]

    def _debounce(self, track: Track, t: float, events: list[TrackEvent]) -> None:
        leader = self.labels[int(track.scores.argmax())]
        if not track.started:  # before its start event a track just follows its scores
            track.emotion = leader
        if leader == track.emotion:
            track.pending, track.pending_hits = None, 0
            return
        if leader == track.pending and t >= track.pending_since:
            track.pending_hits += 1
        else:
            track.pending, track.pending_since, track.pending_hits = leader, t, 1
        led_s = t - track.pending_since
        if self.debounce_s <= 0.0 or (track.pending_hits >= 2 and led_s >= self.debounce_s - 1e-6):
            track.emotion = leader
            track.pending, track.pending_hits = None, 0
            if track.started:
                events.append(self._event("change", track))

    def close(self) -> list[TrackEvent]:
        """End every open track (at shutdown)."""
        events = [self._event("end", tr) for tr in self.tracks if tr.started]
        self.tracks = []
        return events


def _greedy(pairs: list[tuple[float, int, int]]) -> list[tuple[int, int]]:
    """(cost, track, detection) candidates -> pairs, lowest cost first, each track and
    detection used once."""
    used_t: set[int] = set()
    used_d: set[int] = set()
    out = []
    for _, ti, di in sorted(pairs):
        if ti not in used_t and di not in used_d:
            used_t.add(ti)
            used_d.add(di)
            out.append((ti, di))
    return out
