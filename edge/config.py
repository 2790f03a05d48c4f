"""The edge daemon's settings: one typed config object, validated at start (Frigate style).

Values come from, lowest to highest priority: the defaults below, one TOML file
(``--config``), environment variables ``DEEPFER_<SECTION>_<KEY>`` (``DEEPFER_DEVICE_ID``
for the top-level ``device_id``) and command-line flags. Every error names the key path,
the value and where the value came from, e.g.::

    detector.scale_factor = 1.0 (from env DEEPFER_DETECTOR_SCALE_FACTOR): must be > 1

docs/edge.md has the reference with an example file; ``deepfer run --print-config`` prints
the effective settings as TOML.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import socket
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

ENV_PREFIX = "DEEPFER_"


class ConfigError(ValueError):
    """One or more bad settings; ``problems`` lists them, each naming key, value and origin."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return f"config error: {self.problems[0]}"
        return "config errors:\n  " + "\n  ".join(self.problems)


@dataclass
class ModelConfig:
    #: The .tflite file (with its .json sidecar); "" = the shipped models/deepfer_int8.tflite.
    path: str = ""
    #: TFLite interpreter threads.
    threads: int = 1
    #: auto | ai-edge-litert | tflite-runtime | tensorflow
    runtime: str = "auto"
    #: Border around a face box before the square crop, as a fraction of its side.
    margin: float = 0.1

    def check(self) -> Iterator[tuple[str, str]]:
        if self.path and not Path(self.path).expanduser().is_file():
            yield "path", "no such model file"
        if self.threads < 1:
            yield "threads", "must be >= 1"
        runtimes = ("auto", "ai-edge-litert", "tflite-runtime", "tensorflow")
        if self.runtime not in runtimes:
            yield "runtime", f"must be one of {', '.join(runtimes)}"
        if not 0.0 <= self.margin <= 1.0:
            yield "margin", "must be in 0..1"


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
    #: A camera that fails is reopened after reopen_min_s, doubling up to reopen_max_s.
    reopen_min_s: float = 0.5
    reopen_max_s: float = 30.0

    def check(self) -> Iterator[tuple[str, str]]:
        if not self.uri.strip():
            yield "uri", "must not be empty (auto, picamera2, 0, a file, a folder or a URL)"
        for key in ("width", "height", "lores_width", "lores_height"):
            if getattr(self, key) < 0:
                yield key, "must be >= 0"
        if self.fps < 0:
            yield "fps", "must be >= 0"
        if self.reopen_min_s <= 0:
            yield "reopen_min_s", "must be > 0"
        if self.reopen_max_s < self.reopen_min_s:
            yield "reopen_max_s", f"must be >= source.reopen_min_s ({self.reopen_min_s})"


@dataclass
class DetectorConfig:
    #: haar (OpenCV's cascade) | yunet (cv2.FaceDetectorYN, needs yunet_model)
    backend: str = "haar"
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
    #: While faces are tracked they are searched for only near where they were (much
    #: faster); every N frames the whole frame is searched too, for new faces (so a new face
    #: is found within N frames; 1 = search the whole frame every frame).
    rescan_frames: int = 30
    #: YuNet: minimum face score and overlap for non-maximum suppression.
    score_threshold: float = 0.7
    nms_threshold: float = 0.3

    def check(self) -> Iterator[tuple[str, str]]:
        if self.backend not in ("haar", "yunet"):
            yield "backend", "must be haar or yunet"
        if self.backend == "yunet" and not self.yunet_model:
            yield "yunet_model", "detector.backend = yunet needs the YuNet .onnx file here"
        if self.yunet_model and not Path(self.yunet_model).expanduser().is_file():
            yield "yunet_model", "no such file"
        if self.detect_width != 0 and self.detect_width < 48:
            yield "detect_width", "must be 0 (no scaling) or >= 48"
        if not 1.0 < self.scale_factor <= 2.0:
            yield "scale_factor", "must be > 1 and <= 2"
        if self.min_neighbors < 0:
            yield "min_neighbors", "must be >= 0"
        if self.min_face < 0:
            yield "min_face", "must be >= 0"
        if self.rescan_frames < 1:
            yield "rescan_frames", "must be >= 1"
        if not 0.0 < self.score_threshold < 1.0:
            yield "score_threshold", "must be in 0..1"
        if not 0.0 < self.nms_threshold < 1.0:
            yield "nms_threshold", "must be in 0..1"


@dataclass
class TrackerConfig:
    #: A detection continues a track when their boxes overlap at least this much (IoU).
    iou_threshold: float = 0.3
    #: Score smoothing per track: new = alpha * frame + (1 - alpha) * old; 1 = none.
    ema_alpha: float = 0.5
    #: A track's emotion changes only after the new one leads for this many frames.
    debounce_frames: int = 3
    #: Frames a face must be seen before its track starts (and its start event is sent).
    min_hits: int = 2
    #: Frames a track survives without its face before it ends.
    max_missed: int = 10

    def check(self) -> Iterator[tuple[str, str]]:
        if not 0.0 < self.iou_threshold <= 1.0:
            yield "iou_threshold", "must be in (0, 1]"
        if not 0.0 < self.ema_alpha <= 1.0:
            yield "ema_alpha", "must be in (0, 1]"
        for key in ("debounce_frames", "min_hits"):
            if getattr(self, key) < 1:
                yield key, "must be >= 1"
        if self.max_missed < 0:
            yield "max_missed", "must be >= 0"


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
class MqttConfig:
    """[mqtt]: the broker. Semantics and checks live in edge/mqtt_publisher.py
    (check_mqtt_config); url "" = no broker (events go to stdout)."""

    url: str = ""
    username: str = ""
    password_env: str = "DEEPFER_MQTT_PASSWORD"
    password_file: str = ""
    client_id: str = ""
    prefix: str = "deepfer/{device_id}"
    qos: int = 1
    state_hz: float = 5.0
    summary_interval_s: float = 60.0
    queue_size: int = 10000
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_insecure: bool = False
    keepalive: int = 30
    ha_discovery: bool = False
    ha_prefix: str = "homeassistant"

    def check_with(self, device_id: str) -> Iterator[tuple[str, str]]:
        if not self.url:
            return
        from deepfer.edge.mqtt_publisher import MqttConfigError, check_mqtt_config

        try:
            check_mqtt_config(self, device_id)
        except MqttConfigError as exc:
            if exc.key.startswith("mqtt."):  # device_id is checked (and reported) at the top
                yield exc.key.split(".", 1)[1], exc.problem


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


# ---------------------------------------------------------------------------------------------
# Reading values


def _origin(where: str) -> str:
    return f" (from {where})" if where else ""


def _coerce(value: Any, typ: type, from_text: bool) -> Any:
    """``value`` as ``typ``; raises ValueError with what was expected."""
    if typ is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str):
            text = value.strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
        raise ValueError("expected true or false")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if from_text and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ValueError("expected an integer")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif from_text and isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise ValueError("expected a number") from None
        else:
            raise ValueError("expected a number")
        if not math.isfinite(number):
            raise ValueError("expected a finite number")
        return number
    if typ is str:
        if isinstance(value, str):
            return value
        if from_text or isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. source = 0 in TOML
        raise ValueError("expected a string")
    raise TypeError(f"unsupported config type {typ!r}")


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def read_toml(path: str | Path) -> dict[str, Any]:
    """The file as a dict; ConfigError naming the file, line and problem."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    path = Path(path).expanduser()
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError([f"config file {path}: not found"]) from None
    except OSError as exc:
        raise ConfigError([f"config file {path}: cannot read ({exc.strerror or exc})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"config file {path}: not valid TOML ({exc})"]) from None


def env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """``DEEPFER_<SECTION>_<KEY>`` variables -> ``{"section.key": text}`` and problems.

    Variables whose section is not one of ours (``DEEPFER_DATA``...) are not config and
    are left alone; the MQTT password variable is a secret, never a setting.
    """
    secs = sections()
    tops = top_level_keys()
    secret_vars = {"DEEPFER_MQTT_PASSWORD"}
    out: dict[str, str] = {}
    problems: list[str] = []
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or name in secret_vars:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        if rest in tops:
            out[rest] = text
            continue
        section, _, key = rest.partition("_")
        if section not in secs or not key:
            continue
        if key not in key_types(section):
            problems.append(
                f"env {name}: [{section}] has no key {key!r}"
                + _suggest(key, list(key_types(section)))
            )
            continue
        out[f"{section}.{key}"] = text
    return out, problems


def _flatten(data: Mapping[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    """A TOML document -> ``{"section.key": value}`` and problems (unknown keys)."""
    secs = sections()
    tops = top_level_keys()
    out: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in data.items():
        if name in tops:
            out[name] = value
        elif name in secs:
            if not isinstance(value, dict):
                problems.append(f"{name} = {value!r}{_origin(where)}: must be a [{name}] table")
                continue
            known = key_types(name)
            for key, v in value.items():
                if key not in known:
                    problems.append(
                        f"{name}.{key}{_origin(where)}: unknown key" + _suggest(key, list(known))
                    )
                else:
                    out[f"{name}.{key}"] = v
        else:
            problems.append(
                f"{name}{_origin(where)}: unknown section or key" + _suggest(name, [*secs, *tops])
            )
    return out, problems


def build_config(
    layers: list[tuple[str, Mapping[str, Any], bool]],
) -> Config:
    """Apply ``(origin, {"section.key": value}, from_text)`` layers in order, then validate."""
    config = Config()
    origins: dict[str, str] = {}
    problems: list[str] = []
    for where, values, from_text in layers:
        for dotted, raw in values.items():
            section, _, key = dotted.rpartition(".")
            target = getattr(config, section) if section else config
            typ = key_types(section or None).get(key)
            if typ is None:
                problems.append(f"{dotted}{_origin(where)}: unknown key")
                continue
            try:
                value = _coerce(raw, typ, from_text)
            except ValueError as exc:
                problems.append(f"{dotted} = {raw!r}{_origin(where)}: {exc}")
                continue
            setattr(target, key, value)
            origins[dotted] = where
    problems += check_config(config, origins)
    if problems:
        raise ConfigError(problems)
    return config


def check_config(config: Config, origins: Mapping[str, str] | None = None) -> list[str]:
    """Every problem with a config, as ``key = value (from ...): what is wrong``."""
    origins = origins or {}
    problems = []

    def report(dotted: str, problem: str) -> None:
        section, _, key = dotted.rpartition(".")
        value = getattr(getattr(config, section) if section else config, key)
        if dotted == "mqtt.url":  # never echo a password someone put in the URL
            value = redact_url(value)
        problems.append(f"{dotted} = {value!r}{_origin(origins.get(dotted, ''))}: {problem}")

    from deepfer.edge.mqtt_publisher import device_id_problem, redact_url  # light (no paho)

    device_id = config.resolved_device_id()
    problem = device_id_problem(device_id)
    if problem:
        report("device_id", f"{problem} (it names MQTT topics)")
    for name in sections():
        section = getattr(config, name)
        checks = section.check_with(device_id) if name == "mqtt" else section.check()
        for key, problem in checks:
            report(f"{name}.{key}", problem)
    return problems


def load_config(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    flag_names: Mapping[str, str] | None = None,
) -> Config:
    """Defaults < TOML file < ``DEEPFER_*`` env vars < ``overrides`` (flags, ``section.key``).

    ``flag_names`` maps a key to the flag that set it (``{"mqtt.url": "--mqtt"}``) so an
    error names the flag the user typed; by default ``--<last part of the key>``.
    """
    environ = os.environ if environ is None else environ
    layers: list[tuple[str, Mapping[str, Any], bool]] = []
    problems: list[str] = []
    if path:
        flat, bad = _flatten(read_toml(path), str(path))
        problems += bad
        layers.append((str(path), flat, False))
    env, bad = env_overrides(environ)
    problems += bad
    for dotted, text in env.items():
        name = ENV_PREFIX + dotted.replace(".", "_").upper()
        layers.append((f"env {name}", {dotted: text}, True))
    flag_names = flag_names or {}
    for dotted, value in (overrides or {}).items():
        if value is not None:
            flag = flag_names.get(dotted) or "--" + dotted.rpartition(".")[2].replace("_", "-")
            layers.append((f"flag {flag}", {dotted: value}, isinstance(value, str)))
    try:
        config = build_config(layers)
    except ConfigError as exc:
        raise ConfigError(problems + exc.problems) from None
    if problems:
        raise ConfigError(problems)
    return config


# ---------------------------------------------------------------------------------------------
# Writing


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string is JSON-compatible for our values


def to_toml(config: Config) -> str:
    """The effective config as a TOML document (no secrets live in the config)."""
    lines = []
    data = config.to_dict()
    for key, value in data.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append("")
            lines.append(f"[{key}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in value.items()]
    return "\n".join(lines) + "\n"
