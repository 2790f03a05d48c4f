"""Detector + classifier (+ tracker) composed in one ``process(frame) -> FrameResult``.

OpenCV Zoo style: the model wrappers know nothing of each other; this module crops the
faces a detector finds (square, with a margin, grayscale, at the model's input size:
the same :func:`deepfer.edge.preprocess.crop_face` training uses), classifies all of a
frame's faces in one call, and hands boxes and scores to the tracker. It returns what it
found; turning track events into messages is the caller's job (``messages.py``).

With a tracker and ``detect_fps`` (``detector.fps``), faces are detected and classified only
a few times a second of stream time; the frames in between are served from the tracks: each
face tracked at the last detection at its predicted box (:meth:`Track.predict`), with the
scores it had (``FrameResult.detected`` is False there). A face in an empty scene is found
within ``(1 + detect_jitter) / detect_fps`` seconds; a track misses only on detection frames.
With ``detect_jitter`` (``detector.jitter``; 0 by default) the intervals between detections
are spread around ``1 / detect_fps`` with the same mean (:class:`Interval`), so that a
detection every n-th frame does not always fall on the same phase of something periodic in
the scene.

With a tracker and a detector that can search near a known face (Haar in a narrow band of
sizes; BlazeFace with its short-range model on a square around the face), tracked faces are
looked for only near where they were, a fraction of the cost of a full search, while there
are at most ``detector.max_near_faces`` of them. The whole frame is searched when there is
no track, when a tracked face is not found near where it was (on the same frame), and every
``rescan_s`` seconds of stream time, coarsely, for new faces: a new face is found within
``rescan_s`` (plus one detection interval). At each full search a tracked face it found is
also searched for near, on the same frame, and how the two boxes differ is learnt for that
track, so that its near searches frame the face as a full search would (``near_framing.py``).

The frames between detections need no pixels: :meth:`FacePipeline.pixel_clock` gives the
capture loop the same schedule, so that it decodes only the frames detected on
(``FrameReader(pixels=...)``). A frame that comes without pixels is never detected on: the
next one with pixels is.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import NamedTuple

import numpy as np

from deepfer.edge.boxes import NO_BOXES, iou, nms
from deepfer.edge.camera_turn import TurnHint
from deepfer.edge.capture.frame import Frame, frame_from_image
from deepfer.edge.detectors.base import Detection, Detector
from deepfer.edge.near_framing import NearFraming
from deepfer.edge.preprocess import crop_face, normalise_light
from deepfer.edge.tracker import Tracker, TrackEvent

log = logging.getLogger(__name__)


@dataclass
class Face:
    """One face in a frame: box ``(x, y, w, h)`` in frame pixels, emotion and scores.

    With a tracker, ``emotion``/``score``/``scores`` are the track's smoothed, debounced
    values and ``track_id`` is set; ``confirmed`` is False while its track has not started
    (seen fewer than ``tracker.min_hits`` times, no ``start`` event yet): such a face is drawn
    but left out of what is published about the faces in view (MQTT state and summary).
    """

    box: tuple[int, int, int, int]
    emotion: str
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    track_id: int | None = None
    confirmed: bool = True


class Detected(NamedTuple):
    """What :meth:`FacePipeline.detect` found: boxes ``(n, 4)`` int32 in frame pixels, each
    face's lean ``(n,)`` in degrees (:attr:`Detection.roll`; 0 where the detector gives no
    eyes) and its turn ``(n,)`` (:attr:`Detection.turn`; NaN where it gives no eyes and
    mouth)."""

    boxes: np.ndarray
    rolls: np.ndarray
    turns: np.ndarray


@dataclass
class FrameResult:
    """What :meth:`FacePipeline.process` found in one frame."""

    frame: Frame
    faces: list[Face]
    #: start / change / end of tracks in this frame (empty without a tracker).
    track_events: list[TrackEvent] = field(default_factory=list)
    #: Milliseconds per stage: detect, classify, track.
    timings: dict[str, float] = field(default_factory=dict)
    #: False on a frame between detections (faces carried by the tracker, scores held).
    detected: bool = True

    def to_dict(self) -> dict:
        """The result as plain data that ``json.dumps`` writes (as ``dataclasses.asdict`` of a
        :class:`Face` is): the frame as its ``index``, ``t`` and ``size`` (not its pixels),
        ``faces`` as ``asdict`` gives them, each track event as ``type``, ``track_id``,
        ``emotion``, ``score``, ``scores``, ``box``, ``dwell_s`` and ``histogram``, then
        ``timings`` and ``detected``."""
        return {
            "index": int(self.frame.index),
            "t": float(self.frame.t),
            "size": [int(v) for v in self.frame.size],
            "faces": [asdict(face) for face in self.faces],
            "track_events": [
                {
                    "type": ev.type,
                    "track_id": int(ev.track.id),
                    "emotion": ev.emotion,
                    "score": float(ev.score),
                    "scores": {k: float(v) for k, v in ev.scores.items()},
                    "box": [int(v) for v in ev.box],
                    "dwell_s": float(ev.dwell_s),
                    "histogram": {k: int(v) for k, v in ev.histogram.items()},
                }
                for ev in self.track_events
            ],
            "timings": {k: float(v) for k, v in self.timings.items()},
            "detected": bool(self.detected),
        }


class Interval:
    """A schedule of stream times, asked about every frame in order (:meth:`due`, then
    :meth:`mark` when acted on; :meth:`take` does both): once per ``interval`` seconds on
    average; always with ``interval`` 0.

    The schedule keeps a grid of ideal times one interval apart, from the first frame asked
    about, and is due at the frame nearest each (the first frame from half a frame before it),
    so its rate is the interval's whatever the stream's frame rate, and a stream no faster than
    the schedule is taken frame by frame. It starts anew when time goes back (a looped file, a
    new camera) or the stream falls more than an interval behind (no burst to catch up).

    With ``jitter`` j each ideal time is moved off its grid time by an offset that wanders
    within half an interval either way, by up to ``j`` intervals a step (a random walk folded
    back at the edges, drawn by a generator seeded with ``seed``): the gaps stay within (1 -+
    j) intervals, give or take a frame, the count in any stretch of time stays within one of
    the interval's, and over time every phase of the grid is visited, so that a stream taken
    about every n-th frame is not always seen at the same phase of something periodic at that
    rate (a light beating with the frame rate, a fan, a blinking sign). Two copies made alike
    (the capture loop's, :meth:`FacePipeline.pixel_clock`) give the same times, and a run the
    same detections each time."""

    def __init__(self, interval: float, jitter: float = 0.0, seed: int = 0):
        self.interval = max(0.0, interval)
        self.jitter = min(max(jitter, 0.0), 0.9)
        self.seed = seed
        self._draws = random.Random(seed)
        self.last: float | None = None  # the time marked last
        self.next = 0.0  # the ideal time the next is due
        self._grid = 0.0  # the grid time of the last mark
        self._offset = 0.0  # the next ideal time's offset from its grid time
        self._seen: float | None = None  # the last frame's time asked about
        self._frame = 0.0  # seconds between the last two frames asked about

    def _wander(self) -> float:
        """The next offset: the last one moved by up to ``jitter`` intervals, folded back
        within half an interval either way."""
        if not self.jitter:
            return 0.0
        half = self.interval / 2
        x = self._offset + self.interval * self.jitter * (2.0 * self._draws.random() - 1.0)
        return x if abs(x) <= half else math.copysign(self.interval, x) - x

    def due(self, t: float) -> bool:
        if self._seen is not None and t > self._seen:
            self._frame = min(t - self._seen, self.interval)
        self._seen = t
        if self.interval <= 0 or self.last is None or t < self.last:
            return True
        return t >= self.next - max(self._frame / 2, 1e-3)

    def mark(self, t: float) -> None:
        restart = self.last is None or t < self.last or t > self.next + self.interval
        if restart:
            self._grid, self._offset = t, 0.0
        else:
            self._grid += self.interval
        self._offset = self._wander()
        self.next = self._grid + self.interval + self._offset
        self.last = t

    def copy(self) -> Interval:
        """A new schedule like this one, from its start."""
        return Interval(self.interval, self.jitter, self.seed)

    def take(self, t: float) -> bool:
        due = self.due(t)
        if due:
            self.mark(t)
        return due


class FacePipeline:
    def __init__(
        self,
        detector: Detector,
        classifier,
        tracker: Tracker | None = None,
        margin: float = 0.1,
        min_face: int = 0,
        rescan_s: float = 1.0,
        crop_jitter: float = 0.0,
        detect_fps: float = 0.0,
        detect_jitter: float = 0.0,
        near_search: bool = True,
        level_above: float = 90.0,
        normalise_light: bool = False,
        watch_turn: bool = True,
    ):
        self.detector = detector
        self.classifier = classifier
        self.tracker = tracker
        self.margin = margin
        #: Two crops per face, side x (1 -+ crop_jitter), scores averaged (0: one crop).
        self.crop_jitter = crop_jitter
        #: A face whose eyes lean more than this (degrees) is turned until they lean this
        #: much before it is classified (detectors with eye keypoints; 90: never).
        self.level_above = level_above
        #: crops lit far outside the training faces' range are brought into it
        #: (:func:`deepfer.edge.preprocess.normalise_light`)
        self.normalise_light = normalise_light
        self.min_face = min_face
        #: Seconds of stream time between full searches while faces are tracked (0: always).
        self.rescan_s = max(0.0, rescan_s)
        #: Search near tracked faces where the detector can (Haar, BlazeFace); off for photos.
        self.near_search = near_search
        self.labels = list(classifier.labels)
        self.size = classifier.input_size
        self.full_scans = 0
        self.near_scans = 0
        self._last_full_t: float | None = None
        #: How each track's near searches frame its face against its full searches.
        self.near_framing = NearFraming()
        #: Seconds of stream time between detections (0: every frame).
        self.detect_interval = 1.0 / detect_fps if detect_fps > 0 else 0.0
        self.carried = 0  # frames served from the tracks, without detection
        #: Faces lying on their side, or found better in the picture turned: a camera on its
        #: side or upside down (said once in the log; one camera's stream of frames, with a
        #: detector that gives eye and mouth keypoints; not photos, each a picture of its own).
        stream = watch_turn and tracker is not None and detector.mouth is not None
        self.turn_hint = TurnHint() if stream else None
        self._detections = Interval(
            self.detect_interval if tracker is not None else 0.0, detect_jitter
        )

    @classmethod
    def from_config(
        cls,
        config,
        classifier,
        detector: Detector,
        track: bool = True,
        every_frame: bool = False,
        stills: bool = False,
    ) -> FacePipeline:
        """``every_frame``: detect on every frame given, whatever ``detector.fps`` says
        (``deepfer detect``, which samples frames with ``--every``). ``stills``: each frame is
        a separate picture (a folder of photos): each is searched whole, each face's emotion
        is its own, not smoothed or debounced with the photo before, and a face in one photo
        is a track (``min_hits`` 1: a photo is evidence on its own, as ``deepfer detect``
        reports it; two sightings are asked of video to drop one-frame false faces)."""
        tracker = None
        if track:
            tracker = Tracker.from_config(classifier.labels, config.tracker)
            if stills:
                tracker.smoothing_s = tracker.debounce_s = 0.0
                tracker.min_hits = 1
                tracker.max_speed = 0.0  # photos do not move: a face continues by overlap
        every_frame = every_frame or stills
        return cls(
            detector,
            classifier,
            tracker,
            margin=config.model.margin,
            crop_jitter=config.model.crop_jitter,
            level_above=config.model.level_above,
            normalise_light=config.model.normalise_light,
            min_face=config.detector.min_face,
            rescan_s=config.detector.rescan_s,
            detect_fps=0.0 if every_frame else config.detector.fps,
            detect_jitter=config.detector.jitter,
            near_search=not stills,
            watch_turn=not stills,
        )

    # -- stages ---------------------------------------------------------------------------

    def detect(self, frame: Frame) -> Detected:
        """The faces of a frame: boxes, leans and turns (:class:`Detected`)."""
        tried: set[int] = set()  # tracks already searched near on this frame
        if self._near_possible():
            tracks = self.tracker.tracks
            found: list[Detection] = []
            rescan = self._rescan_due(frame)
            if rescan:
                # time to look for new faces: a coarse search of the whole frame; only the
                # tracked faces it missed (Haar's coarse steps may) are looked for near
                found = self.detector.detect(frame, self.min_face, coarse=True)
                self._last_full_t = frame.t
                self.full_scans += 1
                self.near_framing.keep(t.id for t in tracks)
                missed = []
                for track in tracks:
                    full = _match(
                        track.predict(frame.t, frame.size), found, self.tracker.iou_threshold
                    )
                    if full is None:
                        missed.append(track)
                    elif self.rescan_s > 0:  # (0: only full searches, nothing to learn for)
                        self._learn_near_framing(frame, track, full)
                tracks = missed
            for track in tracks:
                near = self._near(frame, track)
                tried.add(track.id)
                if not near:
                    break  # a tracked face was not where it was: search the whole frame
                found += near
            else:
                self.near_scans += not rescan
                return _boxes(found, merge=True)
        found = self.detector.detect(frame, self.min_face)
        self._last_full_t = frame.t
        self.full_scans += 1
        if not self._can_search_near():
            return _boxes(found)
        # tracked faces the full search missed (a small face a swept tile did not cover this
        # time; a face Haar's coarse steps skipped) are looked for near where they were
        missed = [
            track
            for track in self.tracker.tracks
            if track.id not in tried
            and _match(track.predict(frame.t, frame.size), found, self.tracker.iou_threshold)
            is None
        ]
        for track in missed:
            found += self._near(frame, track)
        return _boxes(found, merge=bool(missed))

    def _near(self, frame: Frame, track) -> list[Detection]:
        """The track's face searched for near where it is expected (its last box moved on at
        its velocity, :meth:`Track.predict`): the one box there that the tracker would give
        the track (IoU >= its threshold), in the full search's framing (the track's own near
        framing applied), or none. Anything else the near square shows (an ear, a hand, a
        face passing by) is left to the next full search: a box kept from it would start a
        track that near searches then keep alive."""
        expected = track.predict(frame.t, frame.size)
        near = self.detector.detect_near(frame, expected)
        boxes = [replace(d, box=self.near_framing.apply(track.id, d.box)) for d in near]
        own = _match(expected, boxes, self.tracker.iou_threshold)
        return [] if own is None else [own]

    def _learn_near_framing(self, frame: Frame, track, full: Detection) -> None:
        """The full search found the track's face: search near it on the same frame too, and
        learn how the two boxes differ (``near_framing.py``)."""
        expected = track.predict(frame.t, frame.size)
        near = _match(full.box, self.detector.detect_near(frame, expected), 0.5)
        if near is not None:
            self.near_framing.learn(track.id, near.box, full.box)

    def _near_possible(self) -> bool:
        """Search near the tracked faces (not the whole frame) on this detection?"""
        if not self._can_search_near():
            return False
        return 0 < len(self.tracker.tracks) <= self.detector.max_near_faces

    def _can_search_near(self) -> bool:
        return self.tracker is not None and self.near_search and self.detector.supports_near

    def _rescan_due(self, frame: Frame) -> bool:
        """Time for a full search for new faces (``rescan_s`` of stream time since the last;
        or time went back: a looped file, a new camera)?"""
        if self._last_full_t is None:
            return True
        elapsed = frame.t - self._last_full_t
        return elapsed < 0 or elapsed >= self.rescan_s - 1e-3

    def crops(self, frame: Frame, boxes: np.ndarray, scales=(1.0,), rolls=None) -> np.ndarray:
        """``(len(scales) * n, h, w)`` uint8 face crops for the boxes, framed as the detector's
        ``crop`` says (what the classifier sees), their side times each of ``scales`` in turn
        (all boxes at the first scale, then at the next); the crop plane is made once. A face
        whose eyes lean (``rolls``, degrees) more than :attr:`level_above` is cropped turned back
        to lean that much; one lit far outside the training faces' range is brought into it
        (:attr:`normalise_light`)."""
        plane = frame.crop_plane()
        margin = 0.0 if self.detector.boxes_are_crops else self.margin
        rolls = np.zeros(len(boxes)) if rolls is None else np.asarray(rolls, float)
        angles = np.sign(rolls) * np.maximum(np.abs(rolls) - self.level_above, 0.0)
        return np.stack(
            [
                self.lit(crop_face(plane, self.detector.crop_box(box, k), self.size[0], margin, a))
                for k in scales
                for box, a in zip(boxes, angles)
            ]
        )

    def lit(self, face: np.ndarray) -> np.ndarray:
        """A uint8 face crop as the classifier gets it: with :attr:`normalise_light`, one lit
        far outside the training faces' range brought into it (:func:`normalise_light`)."""
        return normalise_light(face) if self.normalise_light else face

    def classify(self, frame: Frame, boxes: np.ndarray, rolls=None) -> np.ndarray:
        """``(n, k)`` probabilities for the boxes (their faces' ``rolls``, see :meth:`crops`),
        all faces (and both crops) in one call."""
        if len(boxes) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        if not self.crop_jitter or self.detector.boxes_are_crops:
            return self.classifier.infer(self.crops(frame, boxes, rolls=rolls))
        j, n = self.crop_jitter, len(boxes)
        scores = self.classifier.infer(self.crops(frame, boxes, (1 - j, 1 + j), rolls))
        return ((scores[:n] + scores[n:]) / 2).astype(np.float32)

    def process(self, frame: Frame | np.ndarray) -> FrameResult:
        """Faces and track events of one frame (a :class:`Frame` or a BGR/gray image)."""
        if not isinstance(frame, Frame):
            frame = frame_from_image(frame)
        if not self._detection_due(frame):
            return self._carry(frame)
        self._detections.mark(frame.t)
        t0 = time.perf_counter()
        boxes, rolls, turns = self.detect(frame)
        if self.turn_hint is not None:
            self._watch_turn(frame, turns)
        t1 = time.perf_counter()
        scores = self.classify(frame, boxes, rolls)
        t2 = time.perf_counter()
        events: list[TrackEvent] = []
        if self.tracker is None:
            faces = [self._raw_face(b, s) for b, s in zip(boxes, scores)]
        else:
            tracks, events = self.tracker.update(boxes, scores, frame.t)
            faces = [self._track_face(box, tr) for box, tr in zip(boxes, tracks)]
        t3 = time.perf_counter()
        timings = {"detect": (t1 - t0) * 1e3, "classify": (t2 - t1) * 1e3, "track": (t3 - t2) * 1e3}
        return FrameResult(frame, faces, events, timings)

    def _watch_turn(self, frame: Frame, turns: np.ndarray) -> None:
        """Log once when the faces say the camera is turned (``camera_turn.py``)."""
        hint = self.turn_hint
        why = "most faces lie on their side"
        rotate = hint.observe(turns)
        if rotate is None and hint.probe_due(frame.t):
            why = "faces are found better in the picture upside down"
            rotate = hint.probe(frame.gray, self.detector, frame.t)
        if rotate is not None:
            log.warning(
                "the camera looks turned (%s): if it is mounted on its side or upside down, "
                "set source.rotate = %d (--rotate %d) to turn its picture upright",
                why,
                rotate,
                rotate,
            )

    def _detection_due(self, frame: Frame) -> bool:
        """Detect on this frame? Always without a tracker or an interval; else when the
        interval has passed in stream time (or time went back: a looped file, a new camera);
        never on a frame without pixels."""
        return self._detections.due(frame.t) and frame.has_pixels

    def pixel_clock(self) -> Callable[[float], bool] | None:
        """For ``FrameReader(pixels=...)``: a new copy of the detection schedule that says,
        asked about every frame's stream time in order, which frames will be detected on (and
        so need decoding); None when every frame is (no tracker, no ``detect_fps``)."""
        if self._detections.interval <= 0:
            return None
        return self._detections.copy().take

    def _carry(self, frame: Frame) -> FrameResult:
        """A frame between detections: the faces found at the last detection, at their
        predicted boxes, with their scores held (no detection, no classification, no events)."""
        t0 = time.perf_counter()
        faces = [
            self._track_face(tr.predict(frame.t, frame.size), tr)
            for tr in self.tracker.tracks
            if tr.missed == 0
        ]
        self.carried += 1
        timings = {"detect": 0.0, "classify": 0.0, "track": (time.perf_counter() - t0) * 1e3}
        return FrameResult(frame, faces, [], timings, detected=False)

    def _track_face(self, box, tr) -> Face:
        return Face(
            box=tuple(int(v) for v in box),
            emotion=tr.emotion,
            score=float(tr.scores[self.labels.index(tr.emotion)]),
            scores={k: float(v) for k, v in zip(self.labels, tr.scores)},
            track_id=tr.id,
            confirmed=tr.started,
        )

    def _raw_face(self, box, scores) -> Face:
        i = int(np.argmax(scores))
        return Face(
            box=tuple(int(v) for v in box),
            emotion=self.labels[i],
            score=float(scores[i]),
            scores={k: float(v) for k, v in zip(self.labels, scores)},
        )

    def close(self) -> list[TrackEvent]:
        """``end`` events for every open track (at shutdown, or when the camera fails)."""
        return self.tracker.close() if self.tracker is not None else []

    def restart(self) -> list[TrackEvent]:
        """A new stream from the next frame on (the camera's picture changed size, and the
        tracked boxes mean nothing in it): :meth:`close`'s ``end`` events, and the next frame
        detected on and searched whole, as a stream's first is. (A capture loop's
        :meth:`pixel_clock` is not told: ``EmotionRecognizer`` uses this, with every
        frame's pixels.)"""
        events = self.close()
        self._detections = self._detections.copy()
        self._last_full_t = None
        self.near_framing.keep(())
        return events


def _match(box, found: list[Detection], threshold: float) -> Detection | None:
    """The detection overlapping ``box`` most, if by IoU >= threshold."""
    best = max(found, key=lambda d: iou(box, d.box), default=None)
    if best is None or iou(box, best.box) < threshold:
        return None
    return best


def _boxes(found: list[Detection], merge: bool = False) -> Detected:
    """Detections as :class:`Detected`; ``merge``: one per face (several searches)."""
    if not found:
        return Detected(NO_BOXES, np.zeros(0), np.zeros(0))
    boxes = np.array([d.box for d in found], np.int32).reshape(-1, 4)
    rolls = np.array([d.roll for d in found], float)
    turns = np.array([np.nan if d.turn is None else d.turn for d in found], float)
    if merge and len(boxes) > 1:
        scores = np.array([d.score for d in found], np.float32)
        scores = None if np.all(scores == scores[0]) else scores
        keep = np.sort(nms(boxes, scores))
        boxes, rolls, turns = boxes[keep], rolls[keep], turns[keep]
    return Detected(boxes, rolls, turns)
