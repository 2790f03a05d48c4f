"""Face detectors behind one tiny base class (Frigate style): ``base.py`` (``Detection``,
``Detector``), ``haar.py``, ``yunet.py``, and :func:`make_detector`, which builds the one
the [detector] settings ask for. A new backend is a ``Detector`` subclass with ``find()``.
"""

from __future__ import annotations

import logging

from deepfer.edge.detectors.base import Detection, Detector
from deepfer.edge.detectors.haar import HaarDetector
from deepfer.edge.detectors.yunet import YUNET_HINT, YuNetDetector
from deepfer.edge.errors import DetectorError

__all__ = ["Detection", "Detector", "HaarDetector", "YuNetDetector", "make_detector"]

log = logging.getLogger(__name__)


def make_detector(config) -> Detector:
    """The detector a :class:`deepfer.edge.config.DetectorConfig` asks for.

    A YuNet file given means YuNet. Without one on an OpenCV with no Haar cascades
    (OpenCV 5), the error says where to get YuNet.
    """
    if config.backend == "yunet" or config.yunet_model:
        if not config.yunet_model:
            raise DetectorError(f"detector.backend = 'yunet' needs a model file: {YUNET_HINT}")
        detector: Detector = YuNetDetector(
            config.yunet_model, config.detect_width, config.score_threshold, config.nms_threshold
        )
    else:
        detector = HaarDetector(
            config.cascade, config.detect_width, config.scale_factor, config.min_neighbors
        )
    log.info("face detector: %s (search width %s)", detector.name, config.detect_width or "full")
    return detector
