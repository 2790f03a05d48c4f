"""Emotion event messages: their one definition (see docs/events.md).

Every message has ``type`` (start | change | end), ``track_id``, ``emotion``,
``score``, ``scores`` (every label), ``box`` [x, y, w, h] in frame pixels,
``ts`` (ISO 8601 UTC), ``seq`` (grows by one per message), ``device_id`` and
``model``. ``end`` adds ``dwell_s`` and ``histogram`` (frames per emotion).
No face pixels are ever part of a message.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

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
    "device_id",
    "model",
)
END_KEYS = ("dwell_s", "histogram")


def utc_iso(ts: float | None = None) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2026-11-24T03:00:00.123Z``."""
    dt = datetime.now(timezone.utc) if ts is None else datetime.fromtimestamp(ts, timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventBuilder:
    """Builds messages with a contiguous ``seq``; safe to call from several threads."""

    def __init__(self, device_id: str, model: str, start_seq: int = 1):
        self.device_id = device_id
        self.model = model
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
            "device_id": self.device_id,
            "model": self.model,
        }
        if type_ == "end":
            msg["dwell_s"] = round(float(dwell_s or 0.0), 3)
            msg["histogram"] = {k: int(v) for k, v in (histogram or {}).items()}
        return msg


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
