"""A small progress bar with ETA on stderr, drawn only when stderr is a terminal.

``deepfer detect`` uses it on long recordings. Nothing is written when the stream is not a
terminal (a log file, a pipe, CI), so output stays clean where nobody watches it.
"""

from __future__ import annotations

import sys
import time
from typing import IO


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """``update(done)`` redraws at most every ``interval_s``; ``close()`` ends the line."""

    def __init__(
        self,
        total: int | None,
        label: str = "",
        unit: str = "frames",
        stream: IO[str] | None = None,
        interval_s: float = 0.2,
        enabled: bool | None = None,
        width: int = 30,
    ):
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self.total = total if total and total > 0 else None
        self.label = label
        self.unit = unit
        self.interval_s = interval_s
        self.width = width
        self.start = time.monotonic()
        self._last_draw = 0.0
        self.done = 0

    def line(self, now: float | None = None) -> str:
        """The bar as text: ``label [#####-----] 120/464 frames 85.1/s ETA 00:04``."""
        elapsed = (time.monotonic() if now is None else now) - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.total:
            frac = min(1.0, self.done / self.total)
            filled = int(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            eta = format_seconds((self.total - self.done) / rate) if rate > 0 else "--:--"
            body = f"[{bar}] {self.done}/{self.total} {self.unit} {rate:.1f}/s ETA {eta}"
        else:
            body = f"{self.done} {self.unit} {rate:.1f}/s {format_seconds(elapsed)}"
        return f"{self.label} {body}".strip()

    def update(self, done: int, force: bool = False) -> None:
        self.done = done
        if not self.enabled:
            return
        now = time.monotonic()
        if force or now - self._last_draw >= self.interval_s:
            self._last_draw = now
            self.stream.write("\r" + self.line(now) + "\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.update(self.done, force=True)
            self.stream.write("\n")
            self.stream.flush()
