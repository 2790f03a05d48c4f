"""The capture loop: frames from a source, with reopen-on-failure, looping and pacing.

Cameras and network streams are *live*: when one fails, :class:`FrameReader` closes it and
reopens it with exponential backoff while the process stays up. Files end the run at their
end (or start again with ``loop``), as fast as possible or at their own rate (``realtime``).

Files and photo folders are decoded ahead on a capture thread (``prefetch`` frames, nothing
dropped, order kept), so decoding overlaps the detector and classifier on a multi-core
device; once open, the source is read and closed on that thread only, and a read error reaches
the iterating thread as it would without it. Live sources are read on the iterating thread:
a camera paces itself, and a failure's callback (``on_failure``) must run there.

``pixels`` (a function of a frame's stream time, called once per frame in order) says which
frames anyone will look at: the others are grabbed but not decoded (:meth:`Source.retrieve`
with ``pixels=False``: no colour conversion of a video frame, no MJPEG decoding of a USB
camera's, no copies out of the Pi camera's request) and come as :meth:`Frame.skipped`.
The pipeline gives one that says yes at its detections (:meth:`FacePipeline.pixel_clock`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator

from deepfer.edge.capture.frame import Frame
from deepfer.edge.capture.sources import Source, quietly
from deepfer.edge.errors import SourceError

log = logging.getLogger(__name__)

#: Frames a file or photo folder is decoded ahead (a few frames of memory).
PREFETCH_FRAMES = 4
_END = object()  # the capture thread's last item: the source has no more frames


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
        prefetch: int = PREFETCH_FRAMES,
        pixels: Callable[[float], bool] | None = None,
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
        #: Frames decoded ahead on a capture thread (files and photo folders; 0: none).
        self.prefetch = 0 if source.live else max(0, int(prefetch))
        #: Which frames to decode, by stream time (None: all); see the module's docstring.
        self.pixels = pixels

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

    def _read(self, when: Callable[[], float]) -> Frame | None:
        """The next frame, timed by ``when()`` just after it is grabbed (its stream time,
        which ``pixels`` is asked about before it is decoded)."""
        src = self.source
        try:
            if not src.grab():
                return None
            t = when()
            frame = src.retrieve(pixels=self.pixels is None or bool(self.pixels(t)))
            if frame is not None:
                frame.t = t
            return frame
        except Exception as exc:
            if not self.source.live:
                raise SourceError(f"{self.source.name}: read failed ({exc})") from exc
            log.warning("%s: read failed: %r", self.source.name, exc)
            return None

    def __iter__(self) -> Iterator[Frame]:
        if not self.prefetch:
            return self._frames()
        return self._prefetched()

    def _prefetched(self) -> Iterator[Frame]:
        """:meth:`_frames` run on a capture thread, ``prefetch`` frames ahead."""
        self.open()  # an open error is raised here, on the caller's thread
        items: queue.Queue = queue.Queue(maxsize=self.prefetch)
        left = threading.Event()  # the iterating side has finished (or stopped early)

        def put(item) -> bool:
            while not left.is_set():
                try:
                    items.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def capture() -> None:
            frames = self._frames()
            try:
                for frame in frames:
                    if not put(frame):
                        return
                end = _END
            except BaseException as exc:  # a read error goes to the iterating thread
                end = exc
            finally:
                frames.close()  # closes the source, on this thread
            put(end)

        thread = threading.Thread(target=capture, name=f"capture {self.source.name}", daemon=True)
        thread.start()
        try:
            while True:
                item = items.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            left.set()
            thread.join(timeout=10.0)
            if thread.is_alive():
                log.warning("%s: the capture thread did not stop", self.source.name)

    def _frames(self) -> Iterator[Frame]:
        """The capture loop itself (on whichever thread iterates it)."""
        self.open()
        src = self.source
        index = 0
        offset = 0.0  # stream time of the current pass through a looped file
        in_pass = 0  # frames read in the current pass
        start_wall = time.monotonic()

        def when() -> float:  # stream time of the frame just grabbed
            if src.live:
                return time.monotonic() - start_wall
            return offset + in_pass / (src.fps or 30.0)

        try:
            while not self.stop_event.is_set():
                frame = self._read(when)
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
                if not src.live and self.realtime and src.fps:
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
