"""The capture loop: frames from a source, with reopen-on-failure, looping and pacing.

Cameras and network streams are *live*: when one fails, :class:`FrameReader` closes it and
reopens it with exponential backoff while the process stays up. Files end the run at their
end (or start again with ``loop``), as fast as possible or at their own rate (``realtime``).

Each frame's ``t`` is its *stream time*, in seconds, which the detection schedule, the
tracker's settings and the times in recordings are counted in. A camera's or stream's is the
time since the loop started. A file's is where the frame lies in the file, by the container's
timestamp of it (:meth:`Source.position_s`): a phone's recording at a variable frame rate is
timed as it was filmed, not as if its frames were evenly spaced. A frame without a usable
timestamp (none, not finite, negative, or not after the previous frame's: a raw H.264 stream
has none, an MPEG program stream's last frame none) is counted on from the last frame that had
one at the file's frame rate (30 when unknown; at the gap between the last two timestamped
frames where that is shorter, so a fast part of the file does not fall behind), so times
always increase and a file with no timestamps at all is timed ``index / fps``
(:class:`FileClock`). Each pass of a looped file goes on from the last: it starts one frame
gap (that between the pass's last two frames) after the last frame.

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
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator

from deepfer.edge.capture.frame import Frame
from deepfer.edge.capture.sources import Source, quietly
from deepfer.edge.errors import DeepFERError, SourceError
from deepfer.edge.reminder import Reminder

log = logging.getLogger(__name__)

#: Frames a file or photo folder is decoded ahead (a few frames of memory).
PREFETCH_FRAMES = 4
#: The frame rate a file's frames without timestamps are counted at when it says none.
DEFAULT_FPS = 30.0
_END = object()  # the capture thread's last item: the source has no more frames


class FileClock:
    """The stream times of a file's frames, pass after pass of a looped file.

    :meth:`time` is called for each frame in order, with the container's timestamp of it
    (None when there is none); :meth:`next_pass` when a looped file starts again. The rules
    are the module docstring's.
    """

    def __init__(self) -> None:
        #: Stream time at which the current pass starts.
        self.offset = 0.0
        self._start_pass()

    def _start_pass(self) -> None:
        self.frames = 0  # frames timed in this pass
        self._last: float | None = None  # the previous frame's position in the file, seconds
        self._last_stamped = False  # ... was the container's timestamp
        self._gap: float | None = None  # between the previous two frames' positions
        self._stamped_gap: float | None = None  # between the last two timestamped in a row
        self._base = (0.0, 0)  # (position, frame in the pass) that frames are counted from

    def time(self, position: float | None, fps: float | None) -> float:
        """The stream time of the pass's next frame, whose timestamp is ``position`` seconds
        from the file's start (None: it has none); ``fps``: the file's frame rate."""
        rate = fps if fps and fps > 0 else DEFAULT_FPS
        n = self.frames
        stamped = (
            position is not None
            and math.isfinite(position)
            and position >= 0.0
            and (self._last is None or position > self._last)
        )
        if stamped:
            if self._last_stamped:
                self._stamped_gap = position - self._last
            self._base = (position, n)
        else:  # counted on from the last timestamped frame (or the pass's start)
            base, at = self._base
            gap = self._stamped_gap
            if gap is not None and gap < 1.0 / rate:
                position = base + (n - at) * gap
            else:
                position = base + (n - at) / rate
        if self._last is not None:
            self._gap = position - self._last
        self._last, self._last_stamped = position, stamped
        self.frames += 1
        return self.offset + position

    def next_pass(self, fps: float | None) -> None:
        """The file starts again: the next pass begins one frame gap (the last two frames'
        gap; ``1 / fps`` after a pass of one frame) after this pass's last frame."""
        if self._last is not None:
            gap = self._gap
            if gap is None:
                gap = 1.0 / (fps if fps and fps > 0 else DEFAULT_FPS)
            self.offset += self._last + gap
        self._start_pass()


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
        self._opened_at = 0.0  # monotonic time of the last (re)open that worked
        self._delay = 0.0  # the last wait before a reopen (0: none yet)
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
            self._opened_at = time.monotonic()

    def _reopen(self) -> bool:
        """Close and reopen a live source, backing off; False if stopped meanwhile.

        The wait starts at ``reopen_min_s`` and doubles up to ``reopen_max_s`` at each failed
        try; it starts again from ``reopen_min_s`` only once the source has given frames for
        ``reopen_max_s`` since it was last opened: one that opens and fails at once (a camera
        on a failing USB port, a stream server that hangs up) is not reopened twice a second
        for days. A failure is logged when it starts and then as a reminder (edge/reminder.py),
        not at every try."""
        self.failures += 1
        quietly(self.source.close)
        if self.on_failure is not None:
            self.on_failure()  # e.g. end the open tracks: nobody can be followed meanwhile
        started = time.monotonic()
        if not self._delay or started - self._opened_at >= self.reopen_max_s:
            delay = self.reopen_min_s
        else:  # it failed soon after the last reopen: go on backing off
            delay = min(self._delay * 2.0, self.reopen_max_s)
        log.warning("%s: no frames; reopening in %.1f s", self.source.name, delay)
        tries, said = 0, Reminder()
        while not self.stop_event.is_set():
            self._delay = delay
            if self.stop_event.wait(delay):
                return False
            self.reopens += 1
            tries += 1
            try:
                self.source.open()
            except Exception as exc:
                delay = min(delay * 2.0, self.reopen_max_s)
                now = time.monotonic()
                if said.due(now):
                    log.warning(
                        "%s: reopen failed (%d tries, %.0f s without frames): %s; trying every "
                        "%.1f s at most", self.source.name, tries, now - started, exc, delay,
                    )  # fmt: skip
                else:
                    log.debug("%s: reopen failed: %s", self.source.name, exc)
                continue
            self._opened_at = time.monotonic()
            log.warning(
                "%s: reopened after %.1f s (%d tries)",
                self.source.name, self._opened_at - started, tries,
            )  # fmt: skip
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
        except DeepFERError as exc:
            if not self.source.live:
                raise  # says what and where already (a photo that cannot be read)
            log.warning("%s: read failed: %s", self.source.name, exc)
            return None
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
        clock = FileClock()  # a file's stream times, pass by pass
        in_pass = 0  # frames read in the current pass
        start_wall = time.monotonic()

        def when() -> float:  # stream time of the frame just grabbed
            if src.live:
                return time.monotonic() - start_wall
            return clock.time(src.position_s(), src.fps)

        try:
            while not self.stop_event.is_set():
                frame = self._read(when)
                if frame is None:
                    if src.live:
                        if not self._reopen():
                            return
                        continue
                    if self.loop and in_pass > 0:
                        clock.next_pass(src.fps)
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
