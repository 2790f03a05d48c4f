"""The capture loop: frames from a source, with reopen-on-failure, looping and pacing.

Cameras and network streams are *live*: when one fails, :class:`FrameReader` closes it and
reopens it with exponential backoff while the process stays up. Files end the run at their
end (or start again with ``loop``), as fast as possible or at their own rate (``realtime``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

from deepfer.edge.capture.frame import Frame
from deepfer.edge.capture.sources import Source, quietly
from deepfer.edge.errors import SourceError

log = logging.getLogger(__name__)


class FrameReader:
    """The capture loop: frames from a source, with reopen-on-failure, looping and pacing.

    Iterate it for frames. ``stop()`` (from a signal handler or another thread) ends the
    iteration, also while it waits to reopen a camera. ``reopens`` counts reopen attempts;
    ``on_failure`` is called (on the iterating thread) each time a live source fails.
    """

    def __init__(
        self,
        source: Source,
        realtime: bool = False,
        loop: bool = False,
        reopen_min_s: float = 0.5,
        reopen_max_s: float = 30.0,
        stop_event: threading.Event | None = None,
        on_failure: Callable[[], None] | None = None,
    ):
        self.source = source
        self.on_failure = on_failure
        self.realtime = realtime
        self.loop = loop
        self.reopen_min_s = reopen_min_s
        self.reopen_max_s = reopen_max_s
        self.stop_event = stop_event or threading.Event()
        self.reopens = 0
        self.failures = 0
        self.opened = False

    def stop(self) -> None:
        self.stop_event.set()

    def open(self) -> None:
        """Open the source once; the first failure is fatal (SourceError)."""
        if not self.opened:
            self.source.open()
            self.opened = True

    def _reopen(self) -> bool:
        """Close and reopen a live source, backing off; False if stopped meanwhile."""
        self.failures += 1
        quietly(self.source.close)
        if self.on_failure is not None:
            self.on_failure()  # e.g. end the open tracks: nobody can be followed meanwhile
        delay = self.reopen_min_s
        while not self.stop_event.is_set():
            log.warning("%s: no frames; reopening in %.1f s", self.source.name, delay)
            if self.stop_event.wait(delay):
                return False
            self.reopens += 1
            try:
                self.source.open()
            except Exception as exc:
                log.warning("%s: reopen failed: %s", self.source.name, exc)
                delay = min(delay * 2.0, self.reopen_max_s)
                continue
            log.warning("%s: reopened", self.source.name)
            return True
        return False

    def _read(self) -> Frame | None:
        try:
            return self.source.read()
        except Exception as exc:
            if not self.source.live:
                raise SourceError(f"{self.source.name}: read failed ({exc})") from exc
            log.warning("%s: read failed: %r", self.source.name, exc)
            return None

    def __iter__(self) -> Iterator[Frame]:
        self.open()
        src = self.source
        index = 0
        offset = 0.0  # stream time of the current pass through a looped file
        in_pass = 0  # frames read in the current pass
        start_wall = time.monotonic()
        try:
            while not self.stop_event.is_set():
                frame = self._read()
                if frame is None:
                    if src.live:
                        if not self._reopen():
                            return
                        continue
                    if self.loop and in_pass > 0:
                        offset += in_pass / (src.fps or 30.0)
                        in_pass = 0
                        src.rewind()
                        continue
                    return  # end of file
                if src.live:
                    frame.t = time.monotonic() - start_wall
                else:
                    frame.t = offset + in_pass / (src.fps or 30.0)
                    if self.realtime and src.fps:
                        delay = start_wall + frame.t - time.monotonic()
                        if delay > 0 and self.stop_event.wait(delay):
                            return
                in_pass += 1
                frame.index = index
                frame.ts = time.time()
                index += 1
                yield frame
        finally:
            quietly(src.close)
