"""A hint for a camera mounted on its side: faces lying about a quarter turn over, detection
after detection, are the camera's lean, not the people's.

A camera on its side sees every face lying down. The detectors with eye and mouth keypoints
still find many of them (BlazeFace and CenterFace on ``woman2.mp4`` turned a quarter: 99-100%
of frames), but they are classified badly there (readings agree with the upright picture's
on 56-70% of frames, ``benchmarks/results/detectors/bench_rotate.json``). Where the mouth lies
from the eyes (:attr:`Detection.turn`) tells: on ``woman2.mp4`` turned a quarter either way
its median is 72-85 degrees (10th-90th percentiles 69-92), turned 35 and 45 degrees 29-41
(at most 59), upright 2-8. People rarely hold their heads that far over for seconds, so when
most of the last :data:`WINDOW` faces lie :data:`LEAN` degrees or more over the same way,
:class:`TurnHint` names the ``source.rotate`` that would turn the picture upright, once per
run. A camera upside down gives no such sign (the detectors read the few faces they find
there as nearly upright), and Haar gives no keypoints: neither is hinted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

#: Faces (with eye and mouth keypoints) the hint looks back over.
WINDOW = 25
#: A face lies on its side when it is turned this many degrees or more (a face turned 45
#: degrees reads up to 59; one a quarter turn over, 69 or more).
LEAN = 65.0
#: ... and the hint is given when this share of the last WINDOW faces lie the same way.
SHARE = 0.8


class TurnHint:
    """Fed each detection's faces' turns (:attr:`Detection.turn`: degrees, positive turned
    clockwise on screen; NaN, no keypoints, is skipped), :meth:`observe` returns the
    clockwise turn (``source.rotate``, 90 or 270) to suggest, the first time the faces call
    for it, and None otherwise (and ever after)."""

    def __init__(self, window: int = WINDOW, lean: float = LEAN, share: float = SHARE):
        self.lean = lean
        self.need = max(1, round(share * window))
        self._signs: deque[int] = deque(maxlen=window)
        self.given: int | None = None

    def observe(self, turns: Iterable[float]) -> int | None:
        if self.given is not None:
            return None
        for turn in turns:
            if not np.isnan(turn):
                self._signs.append(0 if abs(turn) < self.lean else (1 if turn > 0 else -1))
        if len(self._signs) < (self._signs.maxlen or 0):
            return None
        # faces turned clockwise: the picture is, and turning it 270 more sets it upright
        for sign, rotate in ((1, 270), (-1, 90)):
            if sum(s == sign for s in self._signs) >= self.need:
                self.given = rotate
                return rotate
        return None
