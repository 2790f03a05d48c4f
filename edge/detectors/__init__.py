"""Face detectors behind one tiny base class (Frigate style): ``base.py`` (``Detection``,
``Detector``), ``blazeface.py`` (MediaPipe BlazeFace on the TFLite runtime),
``centerface.py`` (CenterFace on cv2.dnn), ``haar.py``, ``yunet.py``, ``whole.py`` (no
search: the whole picture is the face); ``files.py`` finds and
checks the neural detectors' model files; :func:`make_detector` builds the one the [detector]
settings ask for. A new backend is a ``Detector`` subclass with ``find()``.
"""

from __future__ import annotations

import dataclasses
import logging

from deepfer.edge.detectors import files
from deepfer.edge.detectors.base import Detection, Detector
from deepfer.edge.detectors.haar import HaarDetector
from deepfer.edge.detectors.yunet import YUNET_HINT, YuNetDetector
from deepfer.edge.errors import DetectorError

__all__ = [
    "PHOTO_DETECT_WIDTH",
    "Detection",
    "Detector",
    "HaarDetector",
    "YuNetDetector",
    "make_detector",
    "make_photo_detector",
    "choose",
]

log = logging.getLogger(__name__)

#: Photos are scaled to this width before the face search (``deepfer detect``, the demo,
#: ``EmotionRecognizer``) unless told otherwise.
PHOTO_DETECT_WIDTH = 640

#: CenterFace searches photos at up to this width (small faces in group photos).
PHOTO_CENTERFACE_WIDTH = 960


def choose(backend: str, photos: bool = False) -> str:
    """The backend ``auto`` stands for, from the files installed (measured order, see
    docs/edge.md): blazeface (over tiles on photos: as many faces found in group photos as
    CenterFace, at a fraction of its cold start and memory), then centerface, then haar."""
    if backend != "auto":
        return backend
    order = ["blazeface", "centerface"]
    for name in order:
        if files.available("blazeface-full" if name == "blazeface" else name):
            return name
    return "haar"


def make_detector(config, photos: bool = False) -> Detector:
    """The detector a :class:`deepfer.edge.config.DetectorConfig` asks for.

    ``photos``: still images, where small faces matter more than speed (BlazeFace then runs
    over tiles as well as on the whole image). A YuNet file given means YuNet.
    """
    backend = "yunet" if config.yunet_model else choose(config.backend, photos)
    threshold = config.score_threshold
    if backend == "yunet":
        if not config.yunet_model:
            raise DetectorError(f"detector.backend = 'yunet' needs a model file: {YUNET_HINT}")
        detector: Detector = YuNetDetector(
            config.yunet_model,
            config.detect_width,
            threshold or 0.7,
            config.nms_threshold,
        )
    elif backend in ("blazeface", "blazeface-short"):
        from deepfer.edge.detectors.blazeface import BlazeFaceDetector

        full = backend == "blazeface"
        # between full searches, the short-range model looks around each tracked face (video)
        near = "short" if full and not photos and files.available("blazeface-short") else None
        # video: with nothing tracked, a sweep of the tiles is done within rescan_s, the time
        # in which a new face is promised to be found while others are tracked
        detector = BlazeFaceDetector(
            "full" if full else "short",
            threshold,
            config.nms_threshold,
            tiling="photo" if photos else "sweep" if full else "none",
            near=near,
            sweep_searches=config.fps * config.rescan_s,
        )
    elif backend == "none":
        from deepfer.edge.detectors.whole import WholeImageDetector

        detector = WholeImageDetector()
    elif backend == "centerface":
        from deepfer.edge.detectors.centerface import CenterFaceDetector

        width = config.detect_width
        if photos and width:
            width = max(width, PHOTO_CENTERFACE_WIDTH)
        detector = CenterFaceDetector(width, threshold, config.nms_threshold)
    else:
        detector = HaarDetector(
            config.cascade, config.detect_width, config.scale_factor, config.min_neighbors
        )
    if config.backend == "auto" and backend == "haar" and not config.yunet_model:
        log.warning(
            "face detector: haar (the fallback; it misses tilted and small faces): for "
            "BlazeFace and CenterFace %s",
            files.install_hint(),
        )
    else:
        log.info("face detector: %s (%r)", detector.name, detector)
    return detector


def make_photo_detector(config, width: int | None = None) -> Detector:
    """The detector for photos (``deepfer detect``, a folder of photos in ``deepfer run``,
    ``EmotionRecognizer``, the demo): the [detector] backend as it searches photos (small
    faces matter: BlazeFace over tiles), each photo scaled to ``width`` before the search
    (default :data:`PHOTO_DETECT_WIDTH`, 0 = full size; ``detector.detect_width`` is video's)."""
    width = PHOTO_DETECT_WIDTH if width is None else width
    return make_detector(dataclasses.replace(config, detect_width=width), photos=True)
