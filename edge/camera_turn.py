"""A hint for a camera mounted on its side or upside down: said once in the log, with the
``source.rotate`` that would turn its picture upright.

A camera turned sees every face turned. The neural detectors still find many of them, but
they are classified badly there (on ``woman2.mp4`` readings agree with the upright picture's
on 16% of frames upside down and 56-70% on its side, ``bench_rotate.json``). Two signs:

* **Faces lying on their side.** Where the mouth lies from the eyes (:attr:`Detection.turn`)
  reads 69-92 degrees on woman2's face turned a quarter either way (10th-90th percentiles),
  21-59 on the same face leaning 35 or 45 degrees, upright 2-8 (medians). People rarely hold
  their heads that far over for seconds, so when :data:`SHARE` of the last :data:`WINDOW`
  faces lie :data:`LEAN` degrees or more over the same way, the camera is on its side. It
  costs nothing (the keypoints come with every detection).
* **Faces found better in a turned picture** (upside down too, where the detectors read the
  few faces they find as upright). Every :data:`PROBE_S` seconds of stream time the detector
  searches the whole picture once as it is and once turned each quarter
  (:meth:`Detector.find_plain`: four searches, about 1% of a core at 5 detections a second).
  BlazeFace scores woman2's face 0.93 upright and at most 0.61 turned a quarter, nothing
  upside down; so a turn whose best face scores :data:`FACE_SCORE` or more and
  :data:`MARGIN` above the picture as it is wins that probe. Upright, no turn won a probe on
  woman2 or a dim registry clip; turned 180 or 90 degrees, the turn back won every one. When
  one turn wins :data:`WINS` of the last :data:`PROBES` probes, it is named.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import cv2
import numpy as np

#: Faces (with eye and mouth keypoints) the keypoint sign looks back over.
WINDOW = 25
#: A face lies on its side when it is turned this many degrees or more (a face turned 45
#: degrees reads up to 59; one a quarter turn over, 69 or more).
LEAN = 65.0
#: ... and the camera is on its side when this share of the last WINDOW faces lie one way.
SHARE = 0.8
#: Seconds of stream time between probes of the turned picture.
PROBE_S = 2.0
#: A turn wins a probe when its best face scores at least this ...
FACE_SCORE = 0.7
#: ... and this much more than the best face of the picture as it is.
MARGIN = 0.1
#: The last this many probes decide; a turn is named when it won this many of them.
PROBES = 10
WINS = 8
#: source.rotate (clockwise turns) -> the cv2.rotate code that turns a picture so.
ROTATIONS = {
    90: cv2.ROTATE_90_CLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_COUNTERCLOCKWISE,
}


class TurnHint:
    """Watches a camera's faces for a sign that the camera is turned. :meth:`observe` takes
    each detection's faces' turns (:attr:`Detection.turn`: degrees, positive turned
    clockwise on screen; NaN, no keypoints, is skipped); :meth:`probe` searches a picture
    turned each way. Each returns the clockwise turn to suggest (``source.rotate``: 90, 180
    or 270) the first time the signs call for it, and None otherwise (and ever after)."""

    def __init__(self, window: int = WINDOW, lean: float = LEAN, share: float = SHARE):
        self.lean = lean
        self.need = max(1, round(share * window))
        self._signs: deque[int] = deque(maxlen=window)
        self._wins: deque[int | None] = deque(maxlen=PROBES)
        self._last_probe: float | None = None
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
                return self._give(rotate)
        return None

    def probe_due(self, t: float) -> bool:
        """A probe on a frame at stream time ``t``? (Every PROBE_S seconds; again at once
        when time goes back: a looped file, a new camera.)"""
        if self.given is not None:
            return False
        last = self._last_probe
        return last is None or t < last or t - last >= PROBE_S - 1e-3

    def probe(self, gray: np.ndarray, detector, t: float) -> int | None:
        """Search ``gray`` (the detection plane) as it is and turned each quarter with
        ``detector.find_plain``; the turn that wins (see the module's text), if any, is
        recorded."""
        self._last_probe = t

        def best(image: np.ndarray) -> float:
            scores = detector.find_plain(np.ascontiguousarray(image)).scores
            return float(scores.max()) if scores is not None and len(scores) else 0.0

        as_is = best(gray)
        turned = {r: best(cv2.rotate(gray, code)) for r, code in ROTATIONS.items()}
        rotate, score = max(turned.items(), key=lambda kv: kv[1])
        won = score >= FACE_SCORE and score >= as_is + MARGIN
        self._wins.append(rotate if won else None)
        if won and sum(w == rotate for w in self._wins) >= WINS:
            return self._give(rotate)
        return None

    def _give(self, rotate: int) -> int:
        self.given = rotate
        return rotate
