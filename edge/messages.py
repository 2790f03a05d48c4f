"""The wire format, once: event, face, state and summary messages (docs/events.md, docs/mqtt.md).

Every sink (stdout, MQTT, the preview) and ``deepfer detect`` send what these functions
build; nothing else serialises a face. No face pixels are ever part of a message.

An event message has ``type`` (start | change | end), ``track_id``, ``emotion``,
``score``, ``scores`` (every label), ``box`` [x, y, w, h] in frame pixels,
``ts`` (ISO 8601 UTC), ``seq`` (grows by one per message, across restarts where the
MQTT outbox keeps it), ``run_id`` (new at every start), ``device_id`` and ``model``.
Consumers de-duplicate on ``(device_id, seq)`` (docs/events.md). ``end`` adds ``dwell_s``
and ``histogram`` (detections per emotion).
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

EVENT_TYPES = ("start", "change", "end")
EVENT_KEYS = (
    "type",
    "track_id",
    "emotion",
    "score",
    "scores",
    "box",
    "ts",
    "seq",
    "run_id",
    "device_id",
    "model",
)
END_KEYS = ("dwell_s", "histogram")
#: The ``dominant`` value in the state message when no face is in view.
NO_FACE = "none"


class FaceLike(Protocol):
    """What a face has (``deepfer.edge.pipeline.Face``)."""

    box: Sequence[int]
    emotion: str
    score: float
    scores: Mapping[str, float]
    track_id: int | None


def utc_iso(ts: float | None = None) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2026-11-24T03:00:00.123Z``."""
    dt = datetime.now(timezone.utc) if ts is None else datetime.fromtimestamp(ts, timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventBuilder:
    """Builds messages with a contiguous ``seq``; safe to call from several threads."""

    def __init__(self, device_id: str, model: str, start_seq: int = 1, run_id: str | None = None):
        self.device_id = device_id
        self.model = model
        #: New at every start: tells two runs of one device apart.
        self.run_id = run_id or uuid.uuid4().hex[:16]
        self._seq = itertools.count(start_seq)
        self._lock = threading.Lock()

    def event(
        self,
        type_: str,
        track_id: int,
        emotion: str,
        score: float,
        scores: Mapping[str, float],
        box: Sequence[int],
        ts: float | None = None,
        dwell_s: float | None = None,
        histogram: Mapping[str, int] | None = None,
    ) -> dict[str, Any]:
        if type_ not in EVENT_TYPES:
            raise ValueError(f"event type must be one of {EVENT_TYPES}, got {type_!r}")
        with self._lock:
            seq = next(self._seq)
        msg: dict[str, Any] = {
            "type": type_,
            "track_id": int(track_id),
            "emotion": emotion,
            "score": round(float(score), 4),
            "scores": {k: round(float(v), 4) for k, v in scores.items()},
            "box": [int(v) for v in box],
            "ts": utc_iso(ts),
            "seq": seq,
            "run_id": self.run_id,
            "device_id": self.device_id,
            "model": self.model,
        }
        if type_ == "end":
            msg["dwell_s"] = round(float(dwell_s or 0.0), 3)
            msg["histogram"] = {k: int(v) for k, v in (histogram or {}).items()}
        return msg

    def from_track_event(self, ev: Any, ts: float | None = None) -> dict[str, Any]:
        """A tracker event (``deepfer.edge.tracker.TrackEvent``) as a message."""
        end = ev.type == "end"
        return self.event(
            ev.type,
            ev.track.id,
            ev.emotion,
            ev.score,
            ev.scores,
            ev.box,
            ts=ts,
            dwell_s=ev.dwell_s if end else None,
            histogram=ev.histogram if end else None,
        )


def face_message(face: FaceLike) -> dict[str, Any]:
    """A face with its scores (``deepfer detect --json``): ``track_id`` and ``confirmed``
    (when tracked: False while the face's track has not started, as for a face seen once),
    ``box``, ``emotion``, ``score``, ``scores``."""
    out: dict[str, Any] = {}
    if face.track_id is not None:
        out["track_id"] = int(face.track_id)
        out["confirmed"] = bool(getattr(face, "confirmed", True))
    out.update(
        box=[int(v) for v in face.box],
        emotion=face.emotion,
        score=round(float(face.score), 4),
        scores={k: round(float(v), 4) for k, v in face.scores.items()},
    )
    return out


def face_state(face: FaceLike | Mapping[str, Any]) -> dict[str, Any]:
    """A face in a state message or the preview: ``track_id``, ``emotion``, ``score``, ``box``
    (from a Face, or a mapping with those keys)."""

    def get(name: str) -> Any:
        return face.get(name) if isinstance(face, Mapping) else getattr(face, name, None)

    score, box = get("score"), get("box")
    return {
        "track_id": get("track_id"),
        "emotion": get("emotion"),
        "score": None if score is None else round(float(score), 4),
        "box": None if box is None else [round(float(v)) for v in box],
    }


def dominant_emotion(faces: Sequence[Mapping[str, Any]]) -> str:
    """The emotion most faces show (ties: the higher summed score); ``none`` with no face."""
    if not faces:
        return NO_FACE
    votes: dict[str, list[float]] = {}
    for face in faces:
        entry = votes.setdefault(str(face.get("emotion")), [0, 0.0])
        entry[0] += 1
        entry[1] += float(face.get("score") or 0.0)
    return max(votes.items(), key=lambda kv: (kv[1][0], kv[1][1]))[0]


def state_message(ts: float, device_id: str, faces: Sequence[FaceLike]) -> dict[str, Any]:
    """The faces now (the MQTT ``state`` topic): ``ts``, ``device_id``, ``faces``, ``count``
    and ``dominant`` (the emotion most faces show, ``none`` without faces)."""
    states = [face_state(f) for f in faces]
    return {
        "ts": utc_iso(ts),
        "device_id": device_id,
        "faces": states,
        "count": len(states),
        "dominant": dominant_emotion(states),
    }


def summary_message(
    ts: float,
    device_id: str,
    model: str,
    start: float,
    frames: int,
    faces_seen: int,
    max_faces: int,
    emotions: Mapping[str, int],
    events: Mapping[str, int],
    dropped_total: int,
) -> dict[str, Any]:
    """A period's summary (the MQTT ``summary`` topic): face-frames per emotion, tracks seen,
    event counts, messages dropped so far."""
    return {
        "ts": utc_iso(ts),
        "device_id": device_id,
        "model": model,
        "from": utc_iso(start),
        "period_s": round(ts - start, 3),
        "frames": int(frames),
        "faces_seen": int(faces_seen),
        "max_faces": int(max_faces),
        "emotions": dict(emotions),
        "events": dict(events),
        "dropped_total": int(dropped_total),
    }


def validate_event(msg: Mapping[str, Any], labels: Sequence[str] | None = None) -> list[str]:
    """Problems with a message against the schema (empty list when it is valid)."""
    problems = [f"missing {k}" for k in EVENT_KEYS if k not in msg]
    if problems:
        return problems
    if msg["type"] not in EVENT_TYPES:
        problems.append(f"type {msg['type']!r}")
    if not isinstance(msg["seq"], int) or msg["seq"] < 1:
        problems.append(f"seq {msg['seq']!r}")
    if not (isinstance(msg["box"], list) and len(msg["box"]) == 4):
        problems.append(f"box {msg['box']!r}")
    if labels is not None:
        if msg["emotion"] not in labels:
            problems.append(f"emotion {msg['emotion']!r}")
        if sorted(msg["scores"]) != sorted(labels):
            problems.append("scores do not cover every label")
    if msg["type"] == "end":
        problems += [f"missing {k}" for k in END_KEYS if k not in msg]
    try:
        datetime.fromisoformat(str(msg["ts"]).replace("Z", "+00:00"))
    except ValueError:
        problems.append(f"ts {msg['ts']!r}")
    return problems
