"""DeepFER from Python in two lines: :class:`EmotionRecognizer`.

    from deepfer.edge import EmotionRecognizer

    faces = EmotionRecognizer().detect("photo.jpg")  # [Face(box, emotion, score, scores)]

It composes what ``deepfer detect`` and ``deepfer run`` use (the shipped model, the best
installed face detector, the same crops), so a script, the command and the daemon see the
same pixels and find the same faces. Photos are searched as ``deepfer detect`` searches them
(small faces too); ``video=True`` treats the pictures given as the frames of one stream, in
order, as ``deepfer run`` does: faces tracked under ids, emotions smoothed over time.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepfer.edge.capture.frame import Frame, frame_from_image
from deepfer.edge.capture.pictures import as_picture
from deepfer.edge.config import Config, load_config
from deepfer.edge.detectors import Detector, make_detector, make_photo_detector
from deepfer.edge.errors import ConfigError, InputError
from deepfer.edge.model.classifier import EmotionClassifier, load_classifier
from deepfer.edge.pipeline import Face, FacePipeline, FrameResult
from deepfer.edge.preprocess import prepare_face

__all__ = ["EmotionRecognizer", "Face"]

Picture = str | Path | np.ndarray | Frame  # (or a PIL image: PIL is not imported here)


class EmotionRecognizer:
    """Faces and their emotions in pictures (paths, BGR/gray/BGRA arrays, PIL images or
    frames; ``rgb=True``: arrays are RGB/RGBA; the kinds of array taken: ``capture/pictures.py``).

    ``model``: a ``.tflite`` with its sidecar, or a shipped model's name (default: the shipped
    default model). ``detector``: a ``detector.backend`` name (``auto``: the best installed;
    ``none``: each picture is a face crop already). ``video``: pictures are the frames of one
    stream, in order: faces are tracked (``Face.track_id``) and their emotions smoothed, and
    faces are detected ``detector.fps`` times a second of stream time (``fps``: the frames'
    rate, with ``video`` only; default: the time of each call). ``config``: a :class:`Config` or a TOML file (the
    ``[model]``, ``[detector]`` and ``[tracker]`` sections apply); ``settings``: more of them by
    ``"section.key"``, e.g. ``{"model.level_above": 90}``. Photos are searched at 640 px wide
    as ``deepfer detect`` searches them (``settings={"detector.detect_width": ...}`` to
    change it). ``DEEPFER_*`` variables are not read: a script says what it wants. Bad
    settings and arguments raise :class:`ConfigError`, a bad model :class:`ModelLoadError` or
    :class:`ModelInfoError`, a picture or time that cannot be read :class:`InputError`.

    With ``video``, a frame of another size than the one before (the camera's resolution
    changed) starts a new stream: the open tracks end (their ``end`` events come with that
    frame's result) and it is searched whole.

    Make one recognizer per thread (each holds a TFLite interpreter): one shared between
    threads takes their calls one at a time.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        detector: str | None = None,
        *,
        video: bool = False,
        fps: float | None = None,
        config: Config | str | Path | None = None,
        settings: Mapping[str, Any] | None = None,
        rgb: bool = False,
    ):
        _check_arguments(config, settings, fps, video)
        # each value's origin, for error messages: "(from argument model=)"
        overrides: dict[str, Any] = {}
        names: dict[str, str] = {}
        if isinstance(config, Config):
            overrides = _flat(config)
            names = dict.fromkeys(overrides, "config=")
            config = None
        for key, value in (settings or {}).items():
            overrides[key], names[key] = value, f"settings[{key!r}]"
        if model is not None:
            overrides["model.path"], names["model.path"] = str(model), "model="
        if detector is not None:
            overrides["detector.backend"], names["detector.backend"] = detector, "detector="
        config = load_config(
            config, environ={}, overrides=overrides, flag_names=names, origin="argument"
        )
        self.config: Config = config
        self.video = video
        self.fps = fps or None  # (0: unknown, as cv2.CAP_PROP_FPS says it)
        #: colour arrays are RGB(A), not BGR(A)
        self.rgb = rgb
        self.classifier: EmotionClassifier = load_classifier(config.model)
        if video:
            self.detector: Detector = make_detector(config.detector)
        else:  # photos are searched as `deepfer detect` searches them
            asked = "detector.detect_width" in (settings or {})
            width = config.detector.detect_width if asked else None
            self.detector = make_photo_detector(config.detector, width)
        self.pipeline = FacePipeline.from_config(
            config, self.classifier, self.detector, track=video, stills=not video
        )
        self._index = 0
        self._t0: float | None = None
        self._size: tuple[int, int] | None = None  # the last frame's (video)
        self._lock = threading.Lock()  # (one TFLite interpreter: one call at a time)

    @property
    def labels(self) -> list[str]:
        """The model's emotions, in the order of its scores."""
        return list(self.classifier.labels)

    def detect(self, picture: Picture, t: float | None = None) -> list[Face]:
        """The faces in one picture: box ``(x, y, w, h)`` in its pixels, emotion, score and
        the scores of every emotion (and ``track_id`` with ``video``)."""
        return self.process(picture, t).faces

    def process(self, picture: Picture, t: float | None = None) -> FrameResult:
        """:meth:`detect`'s faces with the rest of the frame's result: track events
        (``video``), per-stage milliseconds, whether faces were detected on this frame.
        ``t``: the frame's time in seconds of stream time (``video``; default: from ``fps``,
        else the time since the first frame)."""
        with self._lock:
            frame = self._frame(picture, t)
            self._index += 1
            ends = []
            if self.video and self._size not in (None, frame.size):
                ends = self.pipeline.restart()  # a new camera mode: a new stream
            self._size = frame.size
            result = self.pipeline.process(frame)
        result.track_events[:0] = ends
        return result

    def classify(self, crops: Iterable[np.ndarray] | np.ndarray) -> np.ndarray:
        """Scores ``(n, len(labels))`` for pictures that are face crops already, of any
        size: a list of them (arrays, paths, PIL images), an array of one ``(h, w)`` /
        ``(h, w, c)`` or a stack ``(n, h, w)`` / ``(n, h, w, c)``; pixels as :meth:`detect`
        takes them. Each is scaled to the model's input as the training data was (and, with
        ``model.normalise_light``, one lit far outside the training faces' range brought into
        it, as the pipeline does)."""
        size = self.classifier.input_size[0]
        if isinstance(crops, (str, os.PathLike)) or _is_one_picture(crops):
            crops = [crops]
        elif crops is None or (isinstance(crops, np.ndarray) and crops.ndim not in (3, 4)):
            what = "None" if crops is None else f"an array {crops.shape}"
            raise InputError(
                f"classify: crops is {what}: give a list of face crops, one crop (h, w) or "
                "(h, w, c), or a stack (n, h, w) or (n, h, w, c)"
            )
        faces = [
            self.pipeline.lit(prepare_face(as_picture(c, self.rgb, f"crop {i}"), size))
            for i, c in enumerate(crops)
        ]
        if not faces:
            return np.zeros((0, len(self.labels)), np.float32)
        with self._lock:
            return self.classifier.infer(np.stack(faces))

    def close(self) -> list:
        """End the open tracks (``video``): their ``end`` events. The recognizer can go on:
        the next frame starts a new stream (searched whole, new track ids)."""
        with self._lock:
            self._size = None
            return self.pipeline.restart()

    def __enter__(self) -> EmotionRecognizer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "video" if self.video else "photos"
        return (
            f"<EmotionRecognizer {self.classifier.info.name} on {self.classifier.runtime}, "
            f"detector {self.detector.name}, {mode}>"
        )

    def _frame(self, picture: Picture, t: float | None) -> Frame:
        if t is not None:
            t = _seconds(t)
        if isinstance(picture, Frame):
            return picture
        image = as_picture(picture, self.rgb)
        if t is None:
            t = self._stream_time()
        return frame_from_image(image, index=self._index, t=t)

    def _stream_time(self) -> float:
        if not self.video:
            return 0.0
        if self.fps:
            return self._index / self.fps
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        return now - self._t0


def _check_arguments(config, settings, fps, video) -> None:
    """ConfigError for an argument of the wrong kind, naming it."""
    if config is not None and not isinstance(config, (Config, str, os.PathLike)):
        raise ConfigError(
            f"config={type(config).__name__}: give a Config or a TOML file's path; single "
            "settings go in settings={'section.key': value}"
        )
    if settings is not None:
        if not isinstance(settings, Mapping):
            raise ConfigError(
                f"settings={type(settings).__name__}: give a mapping of 'section.key' to value, "
                "e.g. settings={'detector.fps': 10}"
            )
        for key in settings:
            if not isinstance(key, str):
                raise ConfigError(f"settings[{key!r}]: keys are 'section.key' strings")
    if fps is not None:
        ok = isinstance(fps, (int, float, np.integer, np.floating)) and not isinstance(fps, bool)
        if not ok or not math.isfinite(fps) or fps < 0:
            raise ConfigError(
                f"fps = {fps!r} (from argument fps=): must be the frames' rate, a positive "
                "number (None or 0: unknown, the time of each call is used)"
            )
        if fps and not video:  # (photos have no stream time: it would be ignored)
            raise ConfigError(
                f"fps = {fps!r} (from argument fps=): only applies with video=True (the frames "
                "of one stream); photos are searched one by one, with no time between them"
            )


def _seconds(t) -> float:
    """A frame's time ``t`` as float seconds, or InputError."""
    try:
        seconds = float(t)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(t, (bool, str, bytes)) or not math.isfinite(seconds):
        raise InputError(f"t = {t!r}: a frame's time must be a finite number of seconds")
    return seconds


def _is_one_picture(crops) -> bool:
    """One crop rather than several: a PIL image, or an array (h, w) / (h, w, c)."""
    if type(crops).__module__.startswith("PIL."):
        return True
    if not isinstance(crops, np.ndarray):
        return False
    return crops.ndim == 2 or (crops.ndim == 3 and crops.shape[2] in (1, 3, 4))


def _flat(config: Config) -> dict[str, Any]:
    """A config's every setting by ``"section.key"`` (``device_id`` as it is)."""
    out: dict[str, Any] = {}
    for name, value in config.to_dict().items():
        if isinstance(value, dict):
            out.update({f"{name}.{key}": v for key, v in value.items()})
        else:
            out[name] = value
    return out
