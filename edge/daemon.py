"""The edge daemon: source -> pipeline -> outputs, until told to stop.

``with Daemon(config) as daemon: daemon.run()``: entering builds everything once (the
classifier's runtime is logged), opens the source (a failure to open is fatal; a live
camera that fails later is reopened with backoff) and starts the outputs; leaving ends
every open track, closes the source and flushes and closes the outputs, whatever happened.

``run()`` processes frames one at a time on this thread. Each frame's
:class:`~deepfer.edge.pipeline.FrameResult` goes to every output's ``on_frame`` and its
track events, as messages (``messages.py``), to every output's ``publish_event``. It logs a
stats line every ``run.stats_interval_s``.

It stops at the end of a file, after ``run.max_frames`` frames or ``run.duration_s``
seconds, or on SIGTERM/SIGINT: the current frame is finished, every open track gets its
``end`` event, outputs are flushed and closed, and ``run()`` returns the run's stats (also
written to ``run.stats_json``). A second signal stops at once (KeyboardInterrupt).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from typing import Any

from deepfer.edge.capture.reader import FrameReader
from deepfer.edge.capture.sources import Source, make_source
from deepfer.edge.config import Config
from deepfer.edge.errors import ConfigError, OutputError
from deepfer.edge.outputs.base import OutputClosed, Sink
from deepfer.edge.paths import unwritable, user_path
from deepfer.edge.stats import RunStats

log = logging.getLogger(__name__)


def make_outputs(
    config: Config,
    device_id: str,
    model: str = "",
    labels: list[str] | None = None,
    events: bool = True,
) -> list[Sink]:
    """The outputs a config asks for: MQTT when ``mqtt.url`` is set, else JSON lines on
    stdout (``events=False``: neither), and the preview when ``preview.enabled``."""
    sinks: list[Sink] = []
    if events and config.mqtt.url:
        from deepfer.edge.outputs.mqtt.sink import MqttSink

        kwargs = {"labels": labels} if labels else {}
        sinks.append(
            MqttSink(config.mqtt, device_id, model=model, state_dir=config.run.state_dir, **kwargs)
        )
    elif events:
        from deepfer.edge.outputs.stdout import StdoutSink

        sinks.append(StdoutSink())
    if config.preview.enabled:
        from deepfer.edge.outputs.preview.server import PreviewServer

        sinks.append(
            PreviewServer(
                config.preview.host, config.preview.port, device_id=device_id, model=model
            )
        )
    return sinks


def check_outputs(config: Config) -> None:
    """Files the run writes at its end that could never be written there (``run.stats_json``
    a folder, or below a file): a setup error, found before the run instead of after it."""
    path = config.run.stats_json
    if path and (why := unwritable(path)):
        raise ConfigError([f"run.stats_json = {path!r}: {why}"])


class Daemon:
    """One run of the pipeline. ``sinks=None`` means :func:`make_outputs` (``events=False``:
    no stdout/MQTT output, e.g. the preview alone); ``source`` and ``classifier`` may be
    given ready-made (tests, benchmarks)."""

    def __init__(
        self,
        config: Config,
        sinks: list[Sink] | None = None,
        source: Source | None = None,
        classifier=None,
        events: bool = True,
    ):
        self.config = config
        self.events = events
        self.device_id = config.resolved_device_id()
        self.sinks: list[Sink] = []
        self._gone: list[Sink] = []  # outputs that can take nothing more (still closed at the end)
        self._given_sinks = sinks
        self.source = source
        self.classifier = classifier
        self.pipeline = None
        self.messages = None
        self.reader: FrameReader | None = None
        self.stats = RunStats()
        self.stop_event = threading.Event()
        self.stop_reason = ""
        self._signals = 0
        self._started = False
        self._closed = False
        self._frames = None

    # -- setup and teardown -----------------------------------------------------------------

    def start(self) -> Daemon:
        """Build the classifier, detector, pipeline, source and outputs (once)."""
        if self._started:
            return self
        self._started = True
        from deepfer.edge.detectors import make_detector, make_photo_detector
        from deepfer.edge.messages import EventBuilder
        from deepfer.edge.model.classifier import load_classifier
        from deepfer.edge.pipeline import FacePipeline

        cfg = self.config
        check_outputs(cfg)
        if self.classifier is None:
            self.classifier = load_classifier(cfg.model)
        model_name = self.classifier.info.name
        if self.source is None:
            self.source = make_source(cfg.source.uri, cfg.source)
        if self.source.stills:  # photos are searched as `deepfer detect` searches them
            detector = make_photo_detector(cfg.detector)
        else:
            detector = make_detector(cfg.detector)
        self.pipeline = FacePipeline.from_config(
            cfg, self.classifier, detector, stills=self.source.stills
        )
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
        if self._given_sinks is None:
            labels = list(self.classifier.labels)
            self._given_sinks = make_outputs(cfg, self.device_id, model_name, labels, self.events)
        for sink in self._given_sinks:
            sink.start()
            self.sinks.append(sink)  # only started sinks are closed
        if not any(getattr(sink, "wants_pixels", True) for sink in self.sinks):
            # frames between detections are grabbed, not decoded
            self.reader.pixels = self.pipeline.pixel_clock()
        # seq goes on from where an output that keeps it (the MQTT outbox) left it
        kept = [getattr(sink, "next_seq", lambda: None)() for sink in self.sinks]
        start_seq = max([seq for seq in kept if seq] or [1])
        self.messages = EventBuilder(self.device_id, model_name, start_seq=start_seq)
        log.info("run_id %s, events from seq %d", self.messages.run_id, start_seq)
        return self

    def close(self) -> None:
        """End open tracks, stop the source, flush and close the outputs (once)."""
        if self._closed:
            return
        self._closed = True
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
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                log.exception("sink %s failed to close", sink.name)

    def __enter__(self) -> Daemon:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def preview_url(self) -> str | None:
        for sink in self.sinks:
            if sink.name == "preview":
                return sink.url  # type: ignore[attr-defined]
        return None

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
        """Process frames until stopped, then close; returns the stats (also written to
        ``run.stats_json``)."""
        old_handlers = self._install_signals()
        try:
            with self:
                self._loop()
                self.stats.stop()
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
        summary = self.summary()
        log.info("stopped (%s): %s", self.stop_reason or "end", json.dumps(summary))
        if self.config.run.stats_json:
            path = user_path(self.config.run.stats_json)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(summary, indent=2) + "\n")
            except OSError as exc:  # checked at start; the disk may still fill up
                raise OutputError(f"run.stats_json {path}: cannot write it ({exc})") from None
        return summary

    def _publish(self, track_events, ts: float | None = None) -> None:
        """Track events as messages, to every output; one broken output must not stop the rest."""
        if self.messages is None:  # closed before the outputs started: no track was open
            return
        for ev in track_events:
            message = self.messages.from_track_event(ev, ts)
            for sink in self._live_sinks():
                try:
                    sink.publish_event(message)
                except OutputClosed as exc:
                    self._drop(sink, str(exc))
                except Exception:
                    log.exception("sink %s failed on event seq %s", sink.name, message["seq"])

    def _live_sinks(self) -> list[Sink]:
        return [s for s in self.sinks if s not in self._gone]

    def _drop(self, sink: Sink, why: str) -> None:
        """An output that can take nothing more leaves the run; the run stops with the last."""
        self._gone.append(sink)
        live = self._live_sinks()
        if live:
            log.warning("%s; going on with %s", why, ", ".join(s.name for s in live))
        else:
            log.warning("%s; no output left, stopping", why)
            self.stop(why)

    def _fan_out(self, result) -> None:
        self._publish(result.track_events, result.frame.ts)
        for sink in self._live_sinks():
            try:
                sink.on_frame(result)
            except Exception:
                log.exception("sink %s failed on a frame", sink.name)

    def _loop(self) -> None:
        cfg = self.config.run
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
            result = self.pipeline.process(frame)
            t2 = perf()
            self._fan_out(result)
            t3 = perf()
            timings = dict(result.timings)
            timings.update(capture=(t1 - t0) * 1e3, output=(t3 - t2) * 1e3, total=(t3 - t0) * 1e3)
            stats.add_frame(timings, len(result.faces))
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
            self._publish(self.pipeline.close(), time.time())

    def _sink_stats(self) -> dict[str, dict[str, Any]]:
        """Each output's own figures; an output whose stats fail must not stop the loop."""
        out: dict[str, dict[str, Any]] = {}
        for sink in self.sinks:
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
            out["carried_frames"] = self.pipeline.carried  # between detections (detector.fps)
        if self.reader is not None:
            out["source_failures"] = self.reader.failures
            out["source_reopens"] = self.reader.reopens
        out["sinks"] = self._sink_stats()
        return out
