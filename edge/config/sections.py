"""The typed sections of the edge daemon's settings, their defaults and checks (Frigate style).

Each section's ``check()`` yields every ``(key, problem)`` it finds; the loader
(``loader.py``) names the value and where it came from. The [mqtt] section lives in
``mqtt.py`` with its URL and topic rules. Reference with an example file: docs/edge.md.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, get_type_hints

from deepfer.edge.config.mqtt import MqttConfig
from deepfer.edge.paths import user_path
from deepfer.models import shipped_model, shipped_names


@dataclass
class ModelConfig:
    #: The .tflite file (with its .json sidecar), or a shipped model's name
    #: (``deepfer-single_int8``: one model, half the time); "" = the shipped default,
    #: models/deepfer_int8.tflite.
    path: str = ""
    #: TFLite interpreter threads.
    threads: int = 1
    #: auto | ai-edge-litert | tflite-runtime | tensorflow
    runtime: str = "auto"
    #: Border around a face box before the square crop, as a fraction of its side.
    margin: float = 0.1
    #: Each face is classified on two crops, its side (1 - j) and (1 + j) times the framing,
    #: and the scores averaged: a detector's box varies by about +-8% around FER2013's
    #: framing, and the average is steadier than either crop. 0 = one crop (half the cost).
    crop_jitter: float = 0.06
    #: A face whose eyes lean more than this many degrees is turned until they lean this much
    #: before it is classified (detectors with eye keypoints: BlazeFace, CenterFace, YuNet):
    #: FER2013's faces lean a little, a head tilted 20-35 degrees scores 3-12 points better
    #: turned (benchmarks/probe_roll.py). 90 = never.
    level_above: float = 10.0
    #: A face far darker, brighter or flatter than nine in ten training faces is brought
    #: just inside their range of brightness and contrast before it is classified (a dim
    #: room, an underexposed camera; faces inside the range are untouched).
    normalise_light: bool = True

    def check(self) -> Iterator[tuple[str, str]]:
        if not 0.0 <= self.crop_jitter <= 0.3:
            yield "crop_jitter", "must be in 0..0.3 (0 = one crop)"
        if not 0.0 <= self.level_above <= 90.0:
            yield "level_above", "must be in 0..90 degrees (90 = never level)"
        if self.path and not user_path(self.path).is_file() and not shipped_model(self.path):
            names = ", ".join(shipped_names())
            yield "path", f"no such model file (or shipped model name: {names})"
        if self.threads < 1:
            yield "threads", "must be >= 1"
        runtimes = ("auto", "ai-edge-litert", "tflite-runtime", "tensorflow")
        if self.runtime not in runtimes:
            yield "runtime", f"must be one of {', '.join(runtimes)}"
        if not 0.0 <= self.margin <= 1.0:
            yield "margin", "must be in 0..1"


#: The largest picture side a camera is asked for (8K is 7680).
MAX_SIDE = 16384

#: ``source.rotate``: turns that set a camera's picture upright, degrees clockwise.
ROTATIONS = (0, 90, 180, 270)


@dataclass
class SourceConfig:
    #: auto | picamera2 | a camera index (0) | a video file | an rtsp:// or http(s):// URL |
    #: a folder of images. auto = picamera2 when it imports, else camera 0.
    uri: str = "auto"
    #: Play files at their own frame rate instead of as fast as possible.
    realtime: bool = False
    #: Start files again at their end.
    loop: bool = False
    #: Camera capture size (picamera2 main stream, or asked of a webcam); 0 = camera default.
    width: int = 640
    height: int = 480
    #: picamera2 low-resolution stream, where faces are looked for (its Y plane).
    lores_width: int = 320
    lores_height: int = 240
    #: Frame rate asked of a camera; 0 = camera default.
    fps: float = 0.0
    #: Turn every frame this many degrees clockwise (0, 90, 180, 270) before faces are looked
    #: for: a camera mounted upside down (180) or on its side. Boxes are in the turned picture.
    rotate: int = 0
    #: A camera that fails is reopened after reopen_min_s, doubling up to reopen_max_s.
    reopen_min_s: float = 0.5
    reopen_max_s: float = 30.0

    def check(self) -> Iterator[tuple[str, str]]:
        if not self.uri.strip():
            yield "uri", "must not be empty (auto, picamera2, 0, a file, a folder or a URL)"
        for key in ("width", "height", "lores_width", "lores_height"):
            if not (getattr(self, key) == 0 or 32 <= getattr(self, key) <= MAX_SIDE):
                yield key, f"must be 0 (the camera's default) or 32..{MAX_SIDE} pixels"
        if self.fps < 0:
            yield "fps", "must be >= 0"
        if self.rotate not in ROTATIONS:
            yield "rotate", f"must be one of {', '.join(map(str, ROTATIONS))} (degrees clockwise)"
        if self.reopen_min_s <= 0:
            yield "reopen_min_s", "must be > 0"
        if self.reopen_max_s < self.reopen_min_s:
            yield "reopen_max_s", f"must be >= source.reopen_min_s ({self.reopen_min_s})"


BACKENDS = ("auto", "blazeface", "blazeface-short", "centerface", "haar", "yunet", "none")


@dataclass
class DetectorConfig:
    #: auto (the best installed: BlazeFace, over tiles on photos; else CenterFace; else Haar) |
    #: blazeface (full-range) | blazeface-short | centerface | haar (OpenCV's cascade) |
    #: yunet (cv2.FaceDetectorYN, needs yunet_model) | none (no search: each whole picture is
    #: one face, for pictures already cropped to a face). `deepfer detectors` lists them.
    backend: str = "auto"
    #: Haar cascade: a file name in cv2.data.haarcascades, or a path.
    cascade: str = "haarcascade_frontalface_default.xml"
    #: YuNet ONNX file (face_detection_yunet_2023mar.onnx from the OpenCV Zoo).
    yunet_model: str = ""
    #: Frames are scaled down to this width before the full-frame search; 0 = no scaling.
    detect_width: int = 320
    #: Haar: step between searched face sizes (full-frame search).
    scale_factor: float = 1.1
    #: Haar: overlapping hits needed to accept a face (higher = fewer false faces).
    min_neighbors: int = 4
    #: Smallest face side in frame pixels (0 = the smallest the detector can see).
    min_face: int = 0
    #: While faces are tracked they are searched for only near where they were (Haar, and
    #: BlazeFace with its short-range model; much faster); every this many seconds of stream
    #: time the whole frame is searched too, for new faces (a new face is found within it;
    #: 0 = search the whole frame at every detection).
    rescan_s: float = 1.0
    #: Detections (and classifications) per second of stream time; the frames in between are
    #: served from the tracker (boxes predicted, scores held). 0 = every frame.
    fps: float = 5.0
    #: Spread of the intervals between detections: each is 1/fps times 1 -+ up to this, with
    #: the same mean rate, so that a detection every n-th frame is not always at the same phase
    #: of something periodic in the scene (mains light beating with the frame rate, a fan, a
    #: blinking sign). 0 = evenly spaced (the default: spread, the emotion shown on each frame
    #: agreed less often with detecting every frame, 0.82 against 0.89 over five clips).
    jitter: float = 0.0
    #: Neural detectors: minimum face score (0 = the backend's own default: BlazeFace 0.5,
    #: CenterFace 0.5, YuNet 0.7) and overlap for non-maximum suppression.
    score_threshold: float = 0.0
    nms_threshold: float = 0.3

    def check(self) -> Iterator[tuple[str, str]]:
        if self.backend not in BACKENDS:
            yield "backend", f"must be one of {', '.join(BACKENDS)}"
        if self.backend == "yunet" and not self.yunet_model:
            yield "yunet_model", "detector.backend = yunet needs the YuNet .onnx file here"
        if self.yunet_model and not user_path(self.yunet_model).is_file():
            yield "yunet_model", "no such file"
        if self.detect_width != 0 and self.detect_width < 48:
            yield "detect_width", "must be 0 (no scaling) or >= 48"
        if not 1.0 < self.scale_factor <= 2.0:
            yield "scale_factor", "must be > 1 and <= 2"
        if self.min_neighbors < 0:
            yield "min_neighbors", "must be >= 0"
        if not 0 <= self.min_face <= MAX_SIDE:
            yield "min_face", f"must be 0..{MAX_SIDE} pixels"
        if not 0.0 <= self.rescan_s <= 60.0:
            yield "rescan_s", "must be between 0 (a full search at every detection) and 60 seconds"
        if not (self.fps == 0 or 0.5 <= self.fps <= 120):
            yield "fps", "must be 0 (every frame) or between 0.5 and 120 detections per second"
        if not 0.0 <= self.jitter <= 0.9:
            yield "jitter", "must be between 0 (evenly spaced detections) and 0.9"
        if not 0.0 <= self.score_threshold < 1.0:
            yield "score_threshold", "must be in 0..1"
        if not 0.0 < self.nms_threshold < 1.0:
            yield "nms_threshold", "must be in 0..1"


@dataclass
class TrackerConfig:
    #: A detection continues a track when their boxes overlap at least this much (IoU).
    iou_threshold: float = 0.3
    # Times are seconds of stream time: the same whatever the frame rate and detector.fps.
    #: Half-life of each track's score smoothing (0 = none): a face seen dt seconds after the
    #: last one weighs 1 - 0.5 ** (dt / smoothing_s); 0.2 = an even mix at 5 detections a second.
    smoothing_s: float = 0.2
    #: A track's emotion changes only after the new one has led for this long (and on two
    #: detections at least; 0 = at once).
    debounce_s: float = 0.4
    #: Detections of a face before its track starts (and its start event is sent).
    min_hits: int = 2
    #: A track ends when its face has not been seen for longer than this.
    max_missed_s: float = 2.0
    #: A face that moved off its track's box (someone walking past, seen a few times a
    #: second) still continues the track when it is within this many face sides per second
    #: of where the track was heading, at 2/3 to 3/2 its size (0 = box overlap only).
    max_speed: float = 12.0

    def check(self) -> Iterator[tuple[str, str]]:
        if not 0.0 < self.iou_threshold <= 1.0:
            yield "iou_threshold", "must be in (0, 1]"
        if not 0.0 <= self.max_speed <= 100.0:
            yield "max_speed", "must be in [0, 100] face sides per second"
        for key in ("smoothing_s", "debounce_s", "max_missed_s"):
            if not 0.0 <= getattr(self, key) <= 3600.0:
                yield key, "must be in [0, 3600] seconds"
        if self.min_hits < 1:
            yield "min_hits", "must be >= 1"


@dataclass
class RunConfig:
    #: Stop after this many frames (0 = no limit).
    max_frames: int = 0
    #: Stop after this many seconds (0 = no limit).
    duration_s: float = 0.0
    #: Seconds between stats lines in the log (0 = none).
    stats_interval_s: float = 30.0
    #: Write the run's stats here as JSON at exit ("" = don't).
    stats_json: str = ""
    #: The daemon's state (the MQTT outbox): "" = $STATE_DIRECTORY (systemd
    #: StateDirectory=deepfer: /var/lib/deepfer), else $XDG_STATE_HOME/deepfer or
    #: ~/.local/state/deepfer.
    state_dir: str = ""

    def check(self) -> Iterator[tuple[str, str]]:
        if self.max_frames < 0:
            yield "max_frames", "must be >= 0"
        if self.duration_s < 0:
            yield "duration_s", "must be >= 0"
        if self.stats_interval_s < 0:
            yield "stats_interval_s", "must be >= 0"


@dataclass
class PreviewConfig:
    #: Serve the annotated stream over HTTP (it shows faces: off by default).
    enabled: bool = False
    #: 127.0.0.1 = this machine only; 0.0.0.0 opens it to the network (logged as a warning).
    host: str = "127.0.0.1"
    port: int = 8080

    def check(self) -> Iterator[tuple[str, str]]:
        if not 0 <= self.port <= 65535:
            yield "port", "must be 0..65535 (0 = any free port)"
        if not self.host.strip():
            yield "host", "must not be empty"


@dataclass
class Config:
    #: This device's name in events and MQTT topics ("" = the host name).
    device_id: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    run: RunConfig = field(default_factory=RunConfig)
    preview: PreviewConfig = field(default_factory=PreviewConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)

    def resolved_device_id(self) -> str:
        return self.device_id or default_device_id()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if is_dataclass(value):
                out[f.name] = {g.name: getattr(value, g.name) for g in fields(value)}
            else:
                out[f.name] = value
        return out


def default_device_id() -> str:
    """The host name up to the first dot (``raspberrypi``)."""
    return (socket.gethostname() or "deepfer").split(".")[0] or "deepfer"


def sections() -> dict[str, type]:
    """Section name -> its dataclass."""
    hints = get_type_hints(Config)
    return {f.name: hints[f.name] for f in fields(Config) if is_dataclass(hints[f.name])}


def top_level_keys() -> dict[str, type]:
    hints = get_type_hints(Config)
    return {f.name: hints[f.name] for f in fields(Config) if not is_dataclass(hints[f.name])}


def key_types(section: str | None) -> dict[str, type]:
    if section is None:
        return top_level_keys()
    cls = sections()[section]
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}
