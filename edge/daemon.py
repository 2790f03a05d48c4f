"""The edge daemon: source -> detector -> classifier -> tracker -> sinks, until told to stop.

``Daemon(config).run()`` builds everything once (the classifier's runtime is logged),
opens the source (a failure to open is fatal; a live camera that fails later is reopened
with backoff), then processes frames one at a time on this thread: every frame's events
go to every sink's ``publish_event`` and its faces to ``publish_state`` (sinks rate-limit),
and to the preview when there is one. It logs a stats line every ``run.stats_interval_s``.

It stops at the end of a file, after ``run.max_frames`` frames or ``run.duration_s``
seconds, or on SIGTERM/SIGINT: the current frame is finished, every open track gets its
``end`` event, sinks are flushed and closed, and ``run()`` returns the run's stats (also
written to ``run.stats_json``). A second signal stops at once (KeyboardInterrupt).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

from deepfer.edge.capture import FrameReader, Source, make_source
from deepfer.edge.config import Config, ConfigError
from deepfer.edge.sinks import Sink, StdoutSink
from deepfer.edge.stats import RunStats

log = logging.getLogger(__name__)


class ModelNotFound(FileNotFoundError):
    """No model given and the shipped default is not installed."""


def resolve_model_path(path: str | Path | None) -> Path:
    """``model.path``, or the shipped default model when empty (clear error if absent)."""
    if path:
        return Path(path).expanduser()
    from deepfer.models import default_model_path

    default = default_model_path()
    if not default.is_file():
        raise ModelNotFound(
            f"no model given and the default model {default} is not installed; pass "
            "--model FILE.tflite (with its .json sidecar beside it) or set model.path in "
            "the config"
        )
    return default


def make_sinks(
    config: Config, device_id: str, model: str = "", labels: list[str] | None = None
) -> list[Sink]:
    """The sinks a config asks for: MQTT when ``mqtt.url`` is set, else stdout JSON lines."""
    if not config.mqtt.url:
        return [StdoutSink()]
    from deepfer.edge.mqtt_publisher import MqttConfigError, MqttSink

    kwargs = {"labels": labels} if labels else {}
    try:
        return [MqttSink(config.mqtt, device_id, model=model, **kwargs)]
    except MqttConfigError as exc:
        raise ConfigError([str(exc)]) from None


def build_classifier(config: Config):
    from deepfer.edge.classifier import EmotionClassifier

    path = resolve_model_path(config.model.path)
    classifier = EmotionClassifier(
        path, num_threads=config.model.threads, runtime_name=config.model.runtime
    )
    log.info(
        "model %s: %s input %s, %d labels, runtime %s (%d thread(s))",
        classifier.info.name,
        classifier.input_dtype,
        "x".join(map(str, classifier.input_size)),
        len(classifier.labels),
        classifier.runtime,
        config.model.threads,
    )
    return classifier


class Daemon:
    """One run of the pipeline. ``sinks=None`` means :func:`make_sinks`; ``source`` and
    ``classifier`` may be given ready-made (tests, benchmarks)."""

    def __init__(
        self,
        config: Config,
        sinks: list[Sink] | None = None,
        source: Source | None = None,
        classifier=None,
        preview=None,
    ):
        self.config = config
        self.device_id = config.resolved_device_id()
        self.sinks = sinks
        self.source = source
        self.classifier = classifier
        self.preview = preview
        self.pipeline = None
        self.reader: FrameReader | None = None
        self.stats = RunStats()
        self.stop_event = threading.Event()
        self.stop_reason = ""
        self._signals = 0
        self._started = False
        self._frames = None

    # -- setup ------------------------------------------------------------------------------

    def start(self) -> None:
        """Build the classifier, detector, pipeline, source, sinks and preview (once)."""
        if self._started:
            return
        from deepfer.edge.detector import make_detector
        from deepfer.edge.events import EventBuilder
        from deepfer.edge.pipeline import FacePipeline

        cfg = self.config
        if self.classifier is None:
            self.classifier = build_classifier(cfg)
        model_name = self.classifier.info.name
        detector = make_detector(cfg.detector)
        builder = EventBuilder(self.device_id, model_name)
        self.pipeline = FacePipeline.from_config(cfg, self.classifier, detector, builder)
        if self.source is None:
            self.source = make_source(cfg.source.uri, cfg.source)
        self.reader = FrameReader(
            self.source,
            realtime=cfg.source.realtime,
            loop=cfg.source.loop,
            reopen_min_s=cfg.source.reopen_min_s,
            reopen_max_s=cfg.source.reopen_max_s,
            stop_event=self.stop_event,
            on_failure=self._end_open_tracks,
        )
        self.reader.open()  # a source that cannot be opened at start is fatal
        log.info("source: %s", self.source.name)
        if self.sinks is None:
            self.sinks = make_sinks(cfg, self.device_id, model_name, list(self.classifier.labels))
        for sink in self.sinks:
            sink.start()
        if self.preview is None and cfg.preview.enabled:
            from deepfer.edge.preview import PreviewServer

            self.preview = PreviewServer(
                cfg.preview.host, cfg.preview.port, device_id=self.device_id, model=model_name
            )
            self.preview.start()
        self._started = True

    @property
    def preview_url(self) -> str | None:
        return self.preview.url if self.preview is not None else None

    # -- signals ----------------------------------------------------------------------------

    def stop(self, reason: str = "stop requested") -> None:
        if not self.stop_event.is_set():
            self.stop_reason = reason
        self.stop_event.set()

    def _on_signal(self, signum, _frame) -> None:
        self._signals += 1
        if self._signals > 1:
            raise KeyboardInterrupt
        name = signal.Signals(signum).name
        log.info("%s: finishing the frame, ending tracks, flushing", name)
        self.stop(name)

    def _install_signals(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            old[sig] = signal.signal(sig, self._on_signal)
        return old

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Process frames until stopped; returns the stats (also written to stats_json)."""
        old_handlers = self._install_signals()
        try:
            self.start()
            self._loop()
            self.stats.stop()
        finally:
            try:
                self._shutdown()
            finally:
                for sig, handler in old_handlers.items():
                    signal.signal(sig, handler)
        summary = self.summary()
        log.info("stopped (%s): %s", self.stop_reason or "end", json.dumps(summary))
        if self.config.run.stats_json:
            path = Path(self.config.run.stats_json).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def _publish(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            for sink in self.sinks or ():
                try:
                    sink.publish_event(event)
                except Exception:  # one broken sink must not stop the others
                    log.exception("sink %s failed on event seq %s", sink.name, event.get("seq"))

    def _loop(self) -> None:
        cfg = self.config.run
        pipeline = self.pipeline
        stats = self.stats
        perf = time.perf_counter
        interval = cfg.stats_interval_s
        next_log = time.monotonic() + interval if interval else float("inf")
        deadline = time.monotonic() + cfg.duration_s if cfg.duration_s else float("inf")
        stats.start()
        self._frames = frames = iter(self.reader)
        while True:
            t0 = perf()
            frame = next(frames, None)
            t1 = perf()
            if frame is None:
                if not self.stop_event.is_set():
                    self.stop_reason = "end of source"
                break
            faces = pipeline.process(frame)
            t2 = perf()
            events = pipeline.events
            self._publish(events)
            if self.sinks:
                state = {
                    "ts": frame.ts,
                    "device_id": self.device_id,
                    "faces": [
                        {
                            "track_id": f.track_id,
                            "emotion": f.emotion,
                            "score": round(f.score, 4),
                            "box": list(f.box),
                        }
                        for f in faces
                    ],
                }
                for sink in self.sinks:
                    try:
                        sink.publish_state(state)
                    except Exception:
                        log.exception("sink %s failed on state", sink.name)
            if self.preview is not None:
                self.preview.update(frame.bgr(), faces, events)
            t3 = perf()
            timings = dict(pipeline.timings)
            timings.update(capture=(t1 - t0) * 1e3, output=(t3 - t2) * 1e3, total=(t3 - t0) * 1e3)
            stats.add_frame(timings, len(faces))
            now = time.monotonic()
            if now >= next_log:
                log.info("stats: %s%s", stats.interval_line(), self._sink_line())
                next_log = now + interval
            if cfg.max_frames and stats.frames >= cfg.max_frames:
                self.stop("max frames")
                break
            if now >= deadline:
                self.stop("duration")
                break
            if self.stop_event.is_set():
                break

    def _end_open_tracks(self) -> None:
        """Publish ``end`` for every open track: at shutdown, and when a camera stops giving
        frames (now, not when it is back)."""
        if self.pipeline is not None:
            ended = self.pipeline.close()
            self._publish(ended)
            if self.preview is not None and ended:
                self.preview.add_events(ended)

    def _shutdown(self) -> None:
        self._end_open_tracks()
        if self.reader is not None:
            self.reader.stop()
        if self._frames is not None:
            self._frames.close()  # the capture loop's own cleanup
        if self.source is not None:
            try:
                self.source.close()
            except Exception as exc:
                log.debug("closing the source: %r", exc)
        for sink in self.sinks or ():
            try:
                sink.close()
            except Exception:
                log.exception("sink %s failed to close", sink.name)
        if self.preview is not None:
            self.preview.close()

    def _sink_stats(self) -> dict[str, dict[str, Any]]:
        """Each sink's own figures; a sink whose stats fail must not stop the loop."""
        out: dict[str, dict[str, Any]] = {}
        for sink in self.sinks or ():
            try:
                out[sink.name] = sink.stats()
            except Exception as exc:
                out[sink.name] = {"error": repr(exc)}
        return out

    def _sink_line(self) -> str:
        """`` | stdout events=12 | mqtt connected=True queue=0 sent=12 ...`` for the stats line."""
        parts = []
        for name, values in self._sink_stats().items():
            if values:
                items = " ".join(f"{k.removeprefix(name + '_')}={v}" for k, v in values.items())
                parts.append(f" | {name} {items}")
        return "".join(parts)

    def summary(self) -> dict[str, Any]:
        out = self.stats.summary()
        out["device_id"] = self.device_id
        out["source"] = self.source.name if self.source is not None else None
        out["stop_reason"] = self.stop_reason or "end"
        if self.classifier is not None:
            out["model"] = self.classifier.info.name
            out["runtime"] = self.classifier.runtime
        if self.pipeline is not None:
            out["full_scans"] = self.pipeline.full_scans
            out["near_scans"] = self.pipeline.near_scans
        if self.reader is not None:
            out["source_failures"] = self.reader.failures
            out["source_reopens"] = self.reader.reopens
        out["sinks"] = self._sink_stats()
        return out
