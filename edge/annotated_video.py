"""The annotated copy of a video (``deepfer detect --out``), keeping the input's time.

A video file written by OpenCV plays its frames evenly spaced, at one rate. A video's
frames come with their stream times (the container's timestamps, ``capture/reader.py``),
and a phone's recording at a variable frame rate has them unevenly spaced: written one for
one, its copy would run fast where the phone filmed fast and slow where it filmed slowly.

So the copy is written at a constant rate (the input's, over ``--every``) and each input
frame is shown from the slot nearest its time (slot ``k`` is ``k / fps`` after the input's
first frame; a frame may show up to about half a slot early) until the next frame's slot: a
frame is repeated until the next one is due, and one that a later frame replaces within the
same slot is dropped (FFmpeg's ``-vsync cfr``). The copy ends where the input does, one frame
gap (the input's last two frames') after its last frame. At a constant rate whose stamps match
the rate the container names, each frame falls in a slot of its own: the copy holds the
input's frames one for one, as it always did (stamps at 29.97 a second in a file that names
30 repeat a frame about every 33 s).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deepfer.edge.errors import OutputError

#: Of a slot: a frame this close to half-way between two slots is taken as half-way (the
#: container rounds times to its timescale: 1 ms in a WebM, 0.05 of a slot at 50/s).
TIE = 0.05


class FrameSlots:
    """Which input frame each slot of a constant-rate copy shows.

    :meth:`add` takes the input frames (any object: ``item``) in order with their stream
    times and returns the runs ``(item, slots)`` now due, in order; :meth:`end` the last
    run. A frame is due from the slot nearest its time (about half a slot early at most) to the
    next frame's slot; a frame whose slot a later one takes is never returned."""

    def __init__(self, fps: float):
        if not fps > 0 or not math.isfinite(fps):
            raise ValueError(f"fps {fps!r}: must be a positive number")
        self.fps = float(fps)
        self.start: float | None = None  # the first frame's stream time: slot 0
        self.written = 0  # slots returned so far
        self._pending: tuple[Any, int] | None = None  # (item, its first slot)

    def slot(self, t: float) -> int:
        """The slot nearest stream time ``t``. Ties (a frame half-way between two slots:
        every other frame of 60 fps copied at 30) go to the later, whatever the container's
        rounding of the times (:data:`TIE`), so that the frame at the slot's time shows."""
        assert self.start is not None
        return max(0, math.floor((t - self.start) * self.fps + 0.5 + TIE))

    def add(self, t: float, item: Any) -> list[tuple[Any, int]]:
        if self.start is None:  # the first frame: slot 0
            self.start, self._pending = t, (item, 0)
            return []
        assert self._pending is not None, "a frame after end()"
        last, since = self._pending
        at = self.slot(t)
        if at <= since:  # the same slot: the later frame shows there, this one not
            self._pending = (item, since)
            return []
        self._pending = (item, at)
        return self._run(last, at - since)

    def end(self, end_t: float) -> list[tuple[Any, int]]:
        """The last frame, shown until ``end_t`` (where the input ends), at least once."""
        if self._pending is None:
            return []
        last, since = self._pending
        self._pending = None
        return self._run(last, max(since + 1, self.slot(end_t)) - since)

    def _run(self, item: Any, slots: int) -> list[tuple[Any, int]]:
        self.written += slots
        return [(item, slots)]


class AnnotatedVideo:
    """``target`` (``.mp4``: MPEG-4 part 2; ``.avi``: motion JPEG) written at ``fps`` from
    frames given with their stream times (:class:`FrameSlots`). ``draw(item)`` makes a
    frame's picture, only for frames that are shown; the file is opened with the first."""

    def __init__(self, target: Path, fps: float, draw: Callable[[Any], np.ndarray]):
        self.target = Path(target)
        self.slots = FrameSlots(fps)
        self.draw = draw
        self.frames = 0  # written to the file
        self._writer: cv2.VideoWriter | None = None
        self._times: list[float] = []  # the last two input frames' stream times

    def add(self, t: float, item: Any) -> None:
        """An input frame shown in the copy (a sampled one: ``--every``)."""
        self.seen(t)
        self._write(self.slots.add(t, item))

    def seen(self, t: float) -> None:
        """An input frame not shown (skipped by ``--every``): where the input ends is
        reckoned from the last frame of all."""
        self._times = [*self._times[-1:], t]

    def close(self) -> None:
        """The last frame shown until one frame gap after the input's last frame."""
        try:
            if self._times:
                gap = self._times[1] - self._times[0] if len(self._times) == 2 else 0.0
                self._write(self.slots.end(self._times[-1] + gap))
        finally:
            if self._writer is not None:
                self._writer.release()
                self._writer = None

    def _write(self, runs: list[tuple[Any, int]]) -> None:
        for item, count in runs:
            image = self.draw(item)
            if self._writer is None:
                self._writer = open_video_writer(self.target, self.slots.fps, image)
            for _ in range(count):
                self._writer.write(image)
            self.frames += count


def open_video_writer(target: Path, fps: float, image: np.ndarray) -> cv2.VideoWriter:
    """OpenCV's writer of ``target`` for frames like ``image`` (OutputError when it cannot)."""
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if str(target).lower().endswith(".avi") else "mp4v"))
    size = (image.shape[1], image.shape[0])
    writer = cv2.VideoWriter(str(target), fourcc, fps, size)
    if not writer.isOpened():
        raise OutputError(f"{target}: cannot write a video here (use .mp4 or .avi)")
    return writer
