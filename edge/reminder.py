"""The one rule for logging a lasting trouble: a line when it starts, then a reminder every
:data:`REMIND_S` while it lasts, not one per try (over days that fills a Pi's journal): a
camera that stays away, the MQTT broker out of reach, messages dropped, an outbox that
cannot be written (docs/edge.md, docs/mqtt.md)."""

from __future__ import annotations

import math
import time

#: How often a lasting trouble is said again, seconds.
REMIND_S = 600.0


class Reminder:
    """``due(now)`` is True the first time and then again once ``period_s`` have passed since
    it last was (on ``time.monotonic()`` unless ``now`` is given); ``reset()`` starts over, so
    that the next trouble is said at once."""

    def __init__(self, period_s: float = REMIND_S):
        self.period_s = float(period_s)
        self._last = -math.inf

    def due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if now - self._last < self.period_s:
            return False
        self._last = now
        return True

    def reset(self) -> None:
        self._last = -math.inf
