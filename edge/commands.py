"""``deepfer detect``, ``deepfer run`` and ``deepfer view``.

Only argparse at import time: OpenCV, the TFLite runtime and the pipeline are imported
when a command runs, so ``deepfer --help`` and every other subcommand stay light.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

log = logging.getLogger("deepfer.edge.commands")

#: ``deepfer run`` flags -> config keys (flags beat env vars beat the config file).
#: A flag whose value is None (not given) leaves the key alone.
RUN_FLAGS: dict[str, str] = {
    "source": "source.uri",
    "device_id": "device_id",
    "max_frames": "run.max_frames",
    "duration": "run.duration_s",
    "stats_json": "run.stats_json",
    "model": "model.path",
    "threads": "model.threads",
    "yunet": "detector.yunet_model",
    "realtime": "source.realtime",
    "loop": "source.loop",
    "mqtt": "mqtt.url",
    "ha_discovery": "mqtt.ha_discovery",
}


def register(sub: argparse._SubParsersAction) -> None:
    add_detect(sub)
    add_run(sub)
    add_view(sub)


# ---------------------------------------------------------------------------------------------
# Parsers


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        metavar="FILE.tflite",
        help="emotion model with its .json sidecar (default: the shipped models/deepfer_int8.tflite)",
    )
    p.add_argument(
        "--yunet",
        default=None,
        metavar="FILE.onnx",
        help="detect faces with YuNet (cv2.FaceDetectorYN) from this ONNX file instead of Haar",
    )
    p.add_argument("--config", default=None, metavar="FILE.toml", help="settings file (TOML)")


def add_detect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "detect",
        help="find faces and their emotions in images or videos",
        description="Find faces and their emotions in images and videos. Prints them, or "
        "JSON with --json (a list of faces: input, box [x,y,w,h], emotion, score, scores; "
        "faces in videos also have frame, t and track_id). --out writes the image or video "
        "with boxes and labels drawn.",
    )
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_VIDEO")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="write the annotated image/video here (a folder when there are several inputs)",
    )
    p.add_argument(
        "--detect-width",
        type=int,
        default=None,
        metavar="PX",
        help="scale frames to this width before looking for faces (default: 640 for images, "
        "detector.detect_width for videos; 0 = full size)",
    )
    _model_args(p)
    p.set_defaults(handler=cmd_detect)


def add_run(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "run",
        help="the edge daemon: camera/video -> faces -> emotions -> events",
        description="Run the pipeline on a camera, stream, video or folder and publish "
        "start/change/end events (JSON lines on stdout unless [mqtt] url is set). Settings: "
        "--config FILE, overridden by DEEPFER_<SECTION>_<KEY> env vars, overridden by flags. "
        "SIGTERM/SIGINT finish the frame, end open tracks, flush and exit 0.",
    )
    _model_args(p)
    p.add_argument(
        "--source",
        default=None,
        metavar="SRC",
        help="auto | picamera2 | camera index (0) | video file | rtsp:// or http(s):// URL | "
        "image folder (default: source.uri, auto)",
    )
    p.add_argument("--device-id", default=None, metavar="ID", help="this device's name in events")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument(
        "--stats-json", default=None, metavar="FILE", help="write the run's stats here at exit"
    )
    p.add_argument("--threads", type=int, default=None, metavar="N", help="TFLite threads")
    p.add_argument(
        "--realtime",
        action="store_true",
        default=None,
        help="play files at their own frame rate (default: as fast as possible)",
    )
    p.add_argument("--loop", action="store_true", default=None, help="repeat files")
    p.add_argument(
        "--preview",
        default=None,
        metavar="[HOST:]PORT",
        help="serve the annotated stream on this port (127.0.0.1 unless a host is given: it "
        "shows faces)",
    )
    p.add_argument(
        "--mqtt",
        default=None,
        metavar="URL",
        help="publish to this broker: mqtt://[user@]host[:port] or mqtts://... (password from "
        "$DEEPFER_MQTT_PASSWORD, mqtt.password_file or systemd credentials, never a flag; "
        "docs/mqtt.md)",
    )
    p.add_argument(
        "--ha-discovery",
        action="store_true",
        default=None,
        help="announce a Home Assistant device (MQTT discovery) with emotion and face-count sensors",
    )
    p.add_argument(
        "--validate-config",
        "--check",
        action="store_true",
        help="check the settings (and that the model loads), print OK or the errors, and exit",
    )
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings as TOML and exit",
    )
    p.set_defaults(handler=cmd_run)
    return p


def add_view(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "view",
        help="watch the pipeline live in the browser (local preview)",
        description="Run the pipeline with the live preview on 127.0.0.1 and open it in the "
        "browser. Events are not printed unless --events is given.",
    )
    _model_args(p)
    p.add_argument("--source", default=None, metavar="SRC", help="as for `deepfer run`")
    p.add_argument("--port", type=int, default=8080, help="preview port (default %(default)s)")
    p.add_argument("--loop", action="store_true", default=None, help="repeat files")
    p.add_argument(
        "--no-browser", action="store_true", help="print the address instead of opening it"
    )
    p.add_argument("--events", action="store_true", help="also print events (JSON lines)")
    p.set_defaults(handler=cmd_view)


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _fail(command: str, message: Any, code: int = 2) -> int:
    print(f"deepfer {command}: error: {message}", file=sys.stderr)
    return code


def _setup_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "bad setup": reported in one line, exit 2."""
    from deepfer.edge.capture import SourceError
    from deepfer.edge.config import ConfigError
    from deepfer.edge.daemon import ModelNotFound
    from deepfer.edge.detector import DetectorError
    from deepfer.edge.model_info import ModelInfoError
    from deepfer.edge.runtime import ModelLoadError, RuntimeUnavailable

    return (
        ConfigError,
        ModelNotFound,
        ModelInfoError,
        ModelLoadError,
        RuntimeUnavailable,
        DetectorError,
        SourceError,
        OSError,
    )


def _load_config(
    args: argparse.Namespace,
    flags: dict[str, str],
    extra: dict | None = None,
    extra_flag: str | None = None,
):
    """The config with ``flags`` (argparse dest -> key) and ``extra`` keys applied.

    Errors name the flag the user typed: ``--mqtt`` for ``mqtt.url``, ``extra_flag``
    (e.g. ``--preview``) for every key of ``extra``.
    """
    from deepfer.edge.config import load_config

    overrides = {key: getattr(args, name, None) for name, key in flags.items()}
    overrides.update(extra or {})
    names = {key: "--" + name.replace("_", "-") for name, key in flags.items()}
    if extra_flag:
        names.update(dict.fromkeys(extra or {}, extra_flag))
    return load_config(args.config, overrides=overrides, flag_names=names)


# ---------------------------------------------------------------------------------------------
# deepfer run / view


def _preview_overrides(value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    from deepfer.edge.config import ConfigError
    from deepfer.edge.drawing import parse_host_port

    try:
        host, port = parse_host_port(value)
    except ValueError as exc:
        raise ConfigError([f"--preview {value!r}: {exc}"]) from None
    return {"preview.enabled": True, "preview.host": host, "preview.port": port}


def cmd_run(args: argparse.Namespace) -> int:
    errors = _setup_errors()
    try:
        config = _load_config(args, RUN_FLAGS, _preview_overrides(args.preview), "--preview")
    except errors as exc:
        return _fail("run", exc)
    if args.print_config:
        from deepfer.edge.config import to_toml

        sys.stdout.write(to_toml(config))
        return 0
    from deepfer.edge.daemon import Daemon, build_classifier, make_sinks

    if args.validate_config:
        try:
            classifier = build_classifier(config)
            from deepfer.edge.detector import make_detector

            make_detector(config.detector)
            make_sinks(config, config.resolved_device_id(), classifier.info.name)
        except errors as exc:
            return _fail("run", exc)
        print(f"config OK (model {classifier.info.name}, runtime {classifier.runtime})")
        return 0
    daemon = Daemon(config)
    try:
        daemon.start()
    except errors as exc:
        daemon._shutdown()
        return _fail("run", exc)
    try:
        daemon.run()
    except errors as exc:
        return _fail("run", exc, 1)
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    flags = {"source": "source.uri", "model": "model.path", "yunet": "detector.yunet_model"}
    flags["loop"] = "source.loop"
    errors = _setup_errors()
    extra = {
        "preview.enabled": True,
        "preview.host": "127.0.0.1",
        "preview.port": args.port,
        "source.realtime": True,
    }
    try:
        config = _load_config(args, flags, extra)
    except errors as exc:
        return _fail("view", exc)
    from deepfer.edge.daemon import Daemon
    from deepfer.edge.sinks import StdoutSink

    daemon = Daemon(config, sinks=[StdoutSink()] if args.events else [])
    try:
        daemon.start()
    except errors as exc:
        daemon._shutdown()
        return _fail("view", exc)
    url = daemon.preview_url
    print(f"preview: {url}  (Ctrl-C to stop)", file=sys.stderr)
    if not args.no_browser:
        import webbrowser

        try:
            webbrowser.open(url)
        except Exception as exc:  # no browser on a headless box: the address is printed
            log.info("could not open a browser: %s", exc)
    daemon.run()
    return 0


# ---------------------------------------------------------------------------------------------
# deepfer detect


def cmd_detect(args: argparse.Namespace) -> int:
    errors = _setup_errors()
    flags = {"model": "model.path", "yunet": "detector.yunet_model"}
    try:
        config = _load_config(args, flags)
        from deepfer.edge.daemon import build_classifier

        classifier = build_classifier(config)
    except errors as exc:
        return _fail("detect", exc)
    from pathlib import Path

    from deepfer.edge.capture import IMAGE_EXTS

    out = Path(args.out) if args.out else None
    if out is not None and len(args.inputs) > 1:
        out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    failed = 0
    for name in args.inputs:
        path = Path(name)
        target = None
        if out is not None:
            target = out / path.name if len(args.inputs) > 1 else out
        try:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such file")
            if path.suffix.lower() in IMAGE_EXTS:
                faces = _detect_image(path, config, classifier, args.detect_width, target)
            else:
                faces = _detect_video(path, config, classifier, args.detect_width, target)
        except errors as exc:
            print(f"deepfer detect: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        results += faces
        if not args.json:
            _print_faces(path, faces)
    if args.json:
        import json

        print(json.dumps(results, indent=1))
    return 1 if failed else 0


_DETECTORS: dict[int, Any] = {}  # detect_width -> detector, built once per command


def _pipeline(config, classifier, detect_width: int, track: bool):
    import copy

    from deepfer.edge.detector import make_detector
    from deepfer.edge.events import EventBuilder
    from deepfer.edge.pipeline import FacePipeline

    if detect_width not in _DETECTORS:
        detector_cfg = copy.copy(config.detector)
        detector_cfg.detect_width = detect_width
        _DETECTORS[detect_width] = make_detector(detector_cfg)
    builder = EventBuilder(config.resolved_device_id(), classifier.info.name)
    return FacePipeline.from_config(
        config, classifier, _DETECTORS[detect_width], builder, track=track
    )


def _detect_image(path, config, classifier, detect_width, target) -> list[dict[str, Any]]:
    import cv2

    from deepfer.edge.capture import SourceError

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"{path}: cannot read this image (missing, corrupt or not an image)")
    width = 640 if detect_width is None else detect_width
    pipeline = _pipeline(config, classifier, width, track=False)
    faces = pipeline.process(image)
    if target is not None:
        from deepfer.edge.drawing import draw_faces

        if not cv2.imwrite(str(target), draw_faces(image, faces)):
            raise OSError(f"{target}: could not write the image (unknown extension?)")
        log.info("wrote %s", target)
    return [{"input": str(path), **face.to_dict()} for face in faces]


def _detect_video(path, config, classifier, detect_width, target) -> list[dict[str, Any]]:
    from deepfer.edge.capture import FrameReader, OpenCVSource

    width = config.detector.detect_width if detect_width is None else detect_width
    pipeline = _pipeline(config, classifier, width, track=True)
    source = OpenCVSource(str(path), live=False)
    reader = FrameReader(source)
    writer = None
    out: list[dict[str, Any]] = []
    try:
        for frame in reader:
            faces = pipeline.process(frame)
            for face in faces:
                out.append(
                    {
                        "input": str(path),
                        "frame": frame.index,
                        "t": round(frame.t, 3),
                        **face.to_dict(),
                    }
                )
            if target is not None:
                writer = writer or _video_writer(target, source.fps or 30.0, frame.size)
                from deepfer.edge.drawing import draw_faces

                writer.write(draw_faces(frame.bgr(), faces))
    finally:
        if writer is not None:
            writer.release()
            log.info("wrote %s", target)
    pipeline.close()
    if reader.opened and not out and target is None:
        log.info("%s: no faces", path)
    return out


def _video_writer(target, fps: float, size: tuple[int, int]):
    import cv2

    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if str(target).lower().endswith(".avi") else "mp4v"))
    writer = cv2.VideoWriter(str(target), fourcc, fps, size)
    if not writer.isOpened():
        raise OSError(f"{target}: cannot write a video here (use .mp4 or .avi)")
    return writer


def _print_faces(path, faces: list[dict[str, Any]]) -> None:
    if not faces:
        print(f"{path}: no faces")
        return
    if "frame" not in faces[0]:
        print(f"{path}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
        for face in faces:
            top = sorted(face["scores"].items(), key=lambda kv: -kv[1])[1:3]
            others = ", ".join(f"{k} {v:.0%}" for k, v in top)
            print(f"  {face['emotion']:<8} {face['score']:.0%}  box {face['box']}  ({others})")
        return
    frames = {f["frame"] for f in faces}
    print(f"{path}: faces in {len(frames)} frames")
    tracks: dict[int, dict[str, int]] = {}
    for face in faces:
        hist = tracks.setdefault(face["track_id"], {})
        hist[face["emotion"]] = hist.get(face["emotion"], 0) + 1
    for track_id, hist in sorted(tracks.items()):
        total = sum(hist.values())
        parts = ", ".join(
            f"{k} {v / total:.0%}" for k, v in sorted(hist.items(), key=lambda kv: -kv[1])
        )
        print(f"  track #{track_id}: {total} frames: {parts}")
