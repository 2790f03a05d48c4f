"""Per-period counts for summary messages: face-frames per emotion, tracks seen, events.

Fed from the pipeline thread (frames, events) and read from another (the MQTT sender), so
every method holds a lock. :meth:`PeriodCounter.take` returns the period's summary message
(``messages.summary_message``) and starts a new period.

A period's length is measured on the monotonic clock, not the wall clock, which NTP may
jump by days on a device without a real-time clock: ``period_s`` is the time that really
passed, and ``from`` is ``ts - period_s`` (the wall clock as it reads at ``ts``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from deepfer.edge.messages import EVENT_TYPES, summary_message


class PeriodCounter:
    def __init__(
        self,
        device_id: str,
        model: str,
        labels: Sequence[str],
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.device_id = device_id
        self.model = model
        self.labels = list(labels)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._start = self._monotonic()
        self._tracks: set[Any] = set()
        self._frames = 0
        self._max_faces = 0
        self._emotions = dict.fromkeys(self.labels, 0)
        self._events = dict.fromkeys(EVENT_TYPES, 0)

    def add_frame(self, faces: Iterable[Mapping[str, Any]]) -> None:
        """One frame's faces (``messages.face_state`` dicts)."""
        faces = list(faces)
        with self._lock:
            self._frames += 1
            self._max_faces = max(self._max_faces, len(faces))
            for face in faces:
                emotion = str(face.get("emotion"))
                self._emotions[emotion] = self._emotions.get(emotion, 0) + 1
                if face.get("track_id") is not None:
                    self._tracks.add(face["track_id"])

    def add_event(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type", "?")
        with self._lock:
            self._events[kind] = self._events.get(kind, 0) + 1
            if "track_id" in event:
                self._tracks.add(event["track_id"])

    def take(self, now: float, dropped_total: int = 0) -> dict[str, Any]:
        """The period's summary message at wall time ``now``; a new period starts."""
        with self._lock:
            period = max(0.0, self._monotonic() - self._start)
            message = summary_message(
                now,
                self.device_id,
                self.model,
                now - period,
                frames=self._frames,
                faces_seen=len(self._tracks),
                max_faces=self._max_faces,
                emotions=self._emotions,
                events=self._events,
                dropped_total=dropped_total,
            )
            self._reset()
        return message
