"""Per-track framing of near searches: a box found near a tracked face is moved to where a
full search would put it, as learnt for that face at its full searches.

A near search (BlazeFace's short-range model around the face, Haar in a narrow band of
sizes) frames a face a little differently from a full search of the frame, and the
difference depends on the face, the camera and the light, not only on the detector: a fixed
mapping measured once cannot fit every scene. So at each full search that finds a tracked
face, the pipeline also searches near it on the same frame and keeps a running mean of the
offset (side ratio, centre shift) between the two boxes for that track; near searches until
the next full search are moved by it. On woman2 and four variants of it (rotated, dimmed,
half size, looped), with a full search once every five detections, that took the mean IoU
between a near box and a full search's box on the same frame from 0.85-0.89 to 0.91-0.92 for
BlazeFace and from 0.87-0.89 to 0.91-0.92 for Haar (``benchmarks/probe_near_framing.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from deepfer.edge.boxes import box_offset, reframe


class NearFraming:
    """Running mean, per track id, of how a full search's box differs from a near search's
    box for the same face on the same frame."""

    #: The newest pair's weight in the running mean.
    WEIGHT = 0.5
    #: An offset beyond this (log side ratio; centre shift in box sides) is two different
    #: boxes, not one face framed two ways: not learnt.
    LIMIT = 0.3

    def __init__(self) -> None:
        self._offsets: dict[int, np.ndarray] = {}

    def learn(self, track_id: int, near_box: Sequence[float], full_box: Sequence[float]) -> bool:
        """One pair of boxes of the track's face on one frame; False if it was not learnt."""
        offset = box_offset(full_box, near_box)
        if not np.all(np.abs(offset) <= self.LIMIT):
            return False
        old = self._offsets.get(track_id)
        self._offsets[track_id] = offset if old is None else old + self.WEIGHT * (offset - old)
        return True

    def apply(self, track_id: int, box: Sequence[float]) -> tuple[int, int, int, int]:
        """A near search's box for the track, framed as a full search would (as it is for a
        track not learnt yet)."""
        offset = self._offsets.get(track_id)
        if offset is None:
            return tuple(int(v) for v in box[:4])
        framing = (float(np.exp(offset[0])), float(offset[1]), float(offset[2]))
        moved = reframe(np.asarray([box[:4]], np.float32), framing)[0]
        return tuple(int(round(float(v))) for v in moved)

    def offset(self, track_id: int) -> np.ndarray | None:
        return self._offsets.get(track_id)

    def keep(self, track_ids: Iterable[int]) -> None:
        """Forget the tracks not listed (ended)."""
        alive = set(track_ids)
        for track_id in [t for t in self._offsets if t not in alive]:
            del self._offsets[track_id]
