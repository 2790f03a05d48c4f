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
* **Faces found better upside down** (where the detectors read the few faces they find as
  upright, so the first sign is blind). Every :data:`PROBE_S` seconds of stream time the
  detector searches the whole picture once as it is and once turned 180 degrees
  (:meth:`Detector.find_plain`). BlazeFace scores woman2's face 0.93 upright and nothing
  upside down, so the turned picture wins a search when its best face scores
  :data:`FACE_SCORE` or more and :data:`MARGIN` above the picture as it is, and the camera
  is upside down when it wins :data:`WINS` of the last :data:`PROBES` searches. The picture
  as it is wins when its best face scores FACE_SCORE or more and more than turned; after
  :data:`UPRIGHT` such searches the camera is taken to be upright and the searches stop (on
  woman2: 3 searches, 6 model runs, in all). A search that finds no face either way (an empty
  room) waits twice as long for the next, up to :data:`PROBE_MAX_S`, so an empty scene
  costs next to nothing; a face found brings the wait back to PROBE_S. Upright, the turned
  picture won no search on woman2, the registry clips or small and tiny copies of woman2;
  upside down (woman2, a dim registry clip) it won every one.
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
#: Seconds of stream time between searches of the picture turned upside down ...
PROBE_S = 2.0
#: ... and at most this long after searches that found no face either way.
PROBE_MAX_S = 30.0
#: The turned picture wins a search when its best face scores at least this ...
FACE_SCORE = 0.7
#: ... and this much more than the best face of the picture as it is.
MARGIN = 0.1
#: The last this many searches decide; upside down when the turned picture won this many.
PROBES = 6
WINS = 5
#: After this many searches won by the picture as it is, it is taken to be upright.
UPRIGHT = 3


class TurnHint:
    """Watches a camera's faces for a sign that the camera is turned. :meth:`observe` takes
    each detection's faces' turns (:attr:`Detection.turn`: degrees, positive turned
    clockwise on screen; NaN, no keypoints, is skipped); :meth:`probe` searches a picture as
    it is and upside down. Each returns the clockwise turn to suggest (``source.rotate``: 90,
    180 or 270) the first time the signs call for it, and None otherwise (and ever after)."""

    def __init__(self, window: int = WINDOW, lean: float = LEAN, share: float = SHARE):
        self.lean = lean
        self.need = max(1, round(share * window))
        self._signs: deque[int] = deque(maxlen=window)
        self._wins: deque[bool] = deque(maxlen=PROBES)
        self._upright = 0
        self._last_probe: float | None = None
        self._wait = PROBE_S
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

    @property
    def probing(self) -> bool:
        """Whether the upside-down searches go on (not once a turn is named, nor once the
        picture is taken to be upright)."""
        return self.given is None and self._upright < UPRIGHT

    def probe_due(self, t: float) -> bool:
        """A search of the turned picture on a frame at stream time ``t``? (After the wait;
        at once when time goes back: a looped file, a new camera.)"""
        last = self._last_probe
        return self.probing and (last is None or t < last or t - last >= self._wait - 1e-3)

    def probe(self, gray: np.ndarray, detector, t: float) -> int | None:
        """Search ``gray`` (the detection plane) as it is and upside down with
        ``detector.find_plain``, and record which won (see the module's text)."""
        self._last_probe = t

        def best(image: np.ndarray) -> float:
            scores = detector.find_plain(np.ascontiguousarray(image)).scores
            return float(scores.max()) if scores is not None and len(scores) else 0.0

        as_is, turned = best(gray), best(cv2.rotate(gray, cv2.ROTATE_180))
        if max(as_is, turned) < FACE_SCORE:  # no face either way: wait longer
            self._wait = min(PROBE_MAX_S, 2 * self._wait)
            return None
        self._wait = PROBE_S
        won = turned >= as_is + MARGIN
        self._wins.append(won)
        self._upright += as_is > turned
        if won and sum(self._wins) >= WINS:
            return self._give(180)
        return None

    def _give(self, rotate: int) -> int:
        self.given = rotate
        return rotate
