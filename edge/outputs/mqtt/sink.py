"""The MQTT sink: events, state, summaries and status on a broker (paho-mqtt 2.x).

Topics under a prefix (default ``deepfer/<device_id>``), see docs/mqtt.md:

* ``status``  ``online`` (retained) on every connect; ``offline`` by last will and on close.
* ``events``  start / change / end messages (edge/messages.py), QoS 1, never retained.
* ``state``   the current faces, rate-limited (default 5 Hz), QoS 0.
* ``summary`` every N seconds: face-frames per emotion, faces seen, event counts.

Nothing is lost while the broker is away: events and summaries wait in a bounded queue and go
out in order on reconnect; when the queue is full the oldest are dropped, counted and logged.
One sender thread owns the in-flight window: on every (re)connect it takes back what the
broker had not acknowledged (paho's ``drop_out_messages``) and sends it again before anything
newer, so order holds across outages (QoS 1 is at-least-once: a consumer that must not see a
message twice drops repeated ``seq`` values).

Settings and their checks live in ``deepfer.edge.config.mqtt`` (no paho there); paho is
imported when the sink starts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deepfer.edge.config.mqtt import MqttConfig, check_mqtt_config
from deepfer.edge.errors import MqttConfigError, SecretError
from deepfer.edge.labels import LABELS
from deepfer.edge.messages import face_state, state_message
from deepfer.edge.outputs.base import Sink
from deepfer.edge.outputs.mqtt.credentials import Secret, resolve_secret
from deepfer.edge.outputs.mqtt.ha_discovery import discovery_messages
from deepfer.edge.outputs.summary import PeriodCounter

log = logging.getLogger(__name__)

#: QoS 1 messages handed to paho at once; the rest wait in our queue, in order.
WINDOW = 20


def tls_context(s: MqttConfig) -> ssl.SSLContext:
    """Verifies the broker against tls_ca (else the system CAs); optional client certificate."""
    try:
        ctx = ssl.create_default_context(cafile=os.path.expanduser(s.tls_ca) if s.tls_ca else None)
    except (ssl.SSLError, OSError) as exc:
        raise MqttConfigError([("mqtt.tls_ca", s.tls_ca, f"not a usable CA file ({exc})")]) from exc
    if s.tls_cert:
        try:
            ctx.load_cert_chain(
                os.path.expanduser(s.tls_cert), os.path.expanduser(s.tls_key) if s.tls_key else None
            )
        except (ssl.SSLError, OSError) as exc:
            problem = f"cannot load the client certificate/key ({exc})"
            raise MqttConfigError([("mqtt.tls_cert", s.tls_cert, problem)]) from exc
    if s.tls_insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ---------------------------------------------------------------------------------------------
# The sink


@dataclass
class _Item:
    topic: str
    payload: bytes
    qos: int
    kind: str  # "event" | "summary"
    seq: int | None = None


def _json(obj: Any) -> bytes:
    def default(o: Any) -> Any:
        if hasattr(o, "item"):  # numpy scalars
            return o.item()
        if hasattr(o, "tolist"):
            return o.tolist()
        raise TypeError(f"{type(o).__name__} is not JSON serialisable")

    return json.dumps(obj, separators=(",", ":"), default=default).encode()


def _describe_connect_error(exc: BaseException | None) -> str:
    if exc is None:
        return "connection failed"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"TLS: the broker's certificate cannot be verified ({exc.verify_message}); "
            "check mqtt.tls_ca (the CA that signed the broker's certificate) and the host name"
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc}); check mqtt.tls_* and that the port speaks TLS"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the broker running and listening on that port?)"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


class MqttSink(Sink):
    """Publishes to one broker; ``start()`` returns at once, the connection comes when it can.

    Thread model: the pipeline thread calls publish_event / on_frame; paho's network
    thread runs the callbacks (which only set flags and queue acks); one sender thread owns
    the in-flight window, the summaries and the announcements on connect.
    """

    name = "mqtt"

    def __init__(
        self,
        config: MqttConfig,
        device_id: str,
        model: str = "",
        labels: Sequence[str] = LABELS,
        *,
        flush_timeout_s: float = 5.0,
        reconnect_delay_s: tuple[float, float] = (1.0, 60.0),
        environ: dict[str, str] | None = None,
    ):
        self.settings = s = check_mqtt_config(config, device_id)
        self.cfg = c = s.config
        self.device_id = device_id
        self.model = model
        self.labels = list(labels)
        self.flush_timeout_s = flush_timeout_s
        self.reconnect_delay_s = reconnect_delay_s
        try:
            self._secret: Secret = resolve_secret(
                file=c.password_file or None, env=c.password_env or None, environ=environ
            )
        except SecretError as exc:
            raise MqttConfigError([("mqtt.password_file", c.password_file, str(exc))]) from exc
        self._ssl = tls_context(c) if s.broker.tls else None
        self.topics = {
            name: f"{s.base}/{name}" for name in ("status", "events", "state", "summary")
        }
        self.ha_status_topic = f"{c.ha_prefix}/status"

        self._lock = threading.Lock()  # guards _pending
        self._pending: deque[_Item] = deque()
        self._inflight: dict[int, _Item] = {}  # sender thread only
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._conn: tuple[int, bool] = (0, False)  # (connection generation, connected)
        self._ha_republish = False
        self._client: Any = None
        self._sender: threading.Thread | None = None
        self._closed = False
        self._last_state = -math.inf
        self._fail_streak = 0
        self._last_drop_log = -math.inf
        self._counts = {
            "sent": 0,
            "summaries": 0,
            "dropped": 0,
            "state_sent": 0,
            "connects": 0,
            "connect_failures": 0,
            "undelivered": 0,
        }
        self._period = PeriodCounter(device_id, model, self.labels, time.time())

    # -- the Sink interface ---------------------------------------------------------------

    def start(self) -> None:
        import paho.mqtt.client as mqtt

        s, c = self.settings, self.cfg
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        # paho's own messages are internals (and noisy while reconnecting): debug level only;
        # this module logs what went wrong in words.
        paho_log = logging.getLogger(f"{__name__}.paho")
        if paho_log.isEnabledFor(logging.DEBUG):
            client.on_log = lambda _c, _u, _level, buf: paho_log.debug("%s", buf)
        if s.username or self._secret.value:
            client.username_pw_set(s.username or None, self._secret.value)
        if self._ssl is not None:
            client.tls_set_context(self._ssl)
            if c.tls_insecure:
                client.tls_insecure_set(True)
                log.warning(
                    "MQTT: mqtt.tls_insecure is on: the broker's certificate is NOT verified"
                )
        client.will_set(self.topics["status"], "offline", qos=1, retain=True)
        client.reconnect_delay_set(*self.reconnect_delay_s)
        client.max_inflight_messages_set(WINDOW + 10)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self._client = client
        if s.username and not self._secret.value:
            log.warning("MQTT: user %r has no password (%s)", s.username, self._secret.source)
        log.info(
            "MQTT: publishing to %s as %r under %s/ (password: %s)",
            s.broker, s.client_id, s.base, self._secret.source if self._secret.value else "none",
        )  # fmt: skip
        client.connect_async(s.broker.host, s.broker.port, keepalive=c.keepalive)
        client.loop_start()
        self._sender = threading.Thread(
            target=self._run_sender, name="deepfer-mqtt-sender", daemon=True
        )
        self._sender.start()

    def publish_event(self, event: dict[str, Any]) -> None:
        item = _Item(self.topics["events"], _json(event), self.cfg.qos, "event", event.get("seq"))
        self._period.add_event(event)
        with self._lock:
            self._enqueue(item)
        self._wake.set()

    def on_frame(self, result: Any) -> None:
        """Counts the frame for the summary; publishes the state at most ``state_hz`` a second."""
        faces = [face_state(f) for f in result.faces]
        self._period.add_frame(faces)
        hz = self.cfg.state_hz
        now = time.monotonic()
        if (
            hz <= 0
            or now - self._last_state < 1.0 / hz
            or not self._conn[1]
            or self._client is None
        ):
            return
        self._last_state = now
        payload = state_message(result.frame.ts, self.device_id, result.faces)
        info = self._client.publish(self.topics["state"], _json(payload), qos=0, retain=False)
        if info.rc == 0:
            self._counts["state_sent"] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            depth = len(self._pending)
        c = self._counts
        return {
            "mqtt_connected": self._conn[1],
            "mqtt_queue": depth + len(self._inflight),
            "mqtt_dropped": c["dropped"],
            "mqtt_sent": c["sent"],
            "mqtt_summaries": c["summaries"],
            "mqtt_state_sent": c["state_sent"],
            "mqtt_reconnects": max(0, c["connects"] - 1),
            "mqtt_connect_failures": c["connect_failures"],
            "mqtt_undelivered": c["undelivered"],
        }

    def close(self) -> None:
        """Final summary, flush (up to flush_timeout_s), ``offline`` (retained), disconnect."""
        if self._closed:
            return
        self._closed = True
        if self._client is None:
            return
        if self.cfg.summary_interval_s > 0:
            self._enqueue_summary(time.time())
        deadline = time.monotonic() + self.flush_timeout_s
        while time.monotonic() < deadline and self._backlog():
            self._wake.set()
            time.sleep(0.02)
        self._stop.set()
        self._wake.set()
        if self._sender is not None:
            self._sender.join(5)
        left = self._backlog()
        if left:
            self._counts["undelivered"] = left
            log.error(
                "MQTT: %d message(s) not delivered to %s before shutdown (broker unreachable for %.0f s)",
                left, self.settings.broker, self.flush_timeout_s,
            )  # fmt: skip
        if self._conn[1]:
            info = self._client.publish(self.topics["status"], "offline", qos=1, retain=True)
            with contextlib.suppress(
                RuntimeError, ValueError
            ):  # lost it meanwhile: the will says it
                info.wait_for_publish(2.0)
        self._client.disconnect()
        self._client.loop_stop()
        c = self._counts
        level = logging.WARNING if c["dropped"] or left else logging.INFO
        log.log(level, "MQTT: %d events sent, %d summaries, %d dropped (queue full), %d undelivered, %d reconnects",
                c["sent"], c["summaries"], c["dropped"], left, max(0, c["connects"] - 1))  # fmt: skip

    # -- queue ----------------------------------------------------------------------------

    def _backlog(self) -> int:
        return len(self._pending) + len(self._inflight)  # len() is atomic; no lock in callbacks

    def _enqueue(self, item: _Item) -> None:
        """Appends (lock held); drops the oldest when full."""
        self._pending.append(item)
        self._trim()

    def _trim(self) -> None:
        over = len(self._pending) - self.cfg.queue_size
        if over <= 0:
            return
        first = None
        for _ in range(over):
            old = self._pending.popleft()
            first = first or old
        self._counts["dropped"] += over
        now = time.monotonic()
        if now - self._last_drop_log >= 10.0:
            self._last_drop_log = now
            log.warning(
                "MQTT: queue full (%d, broker %s): dropped the oldest %s%s; %d dropped so far",
                self.cfg.queue_size, "connected" if self._conn[1] else "unreachable", first.kind,
                f" seq={first.seq}" if first.seq is not None else "", self._counts["dropped"],
            )  # fmt: skip

    # -- summaries ------------------------------------------------------------------------

    def _enqueue_summary(self, now: float) -> None:
        summary = self._period.take(now, dropped_total=self._counts["dropped"])
        with self._lock:
            self._enqueue(_Item(self.topics["summary"], _json(summary), self.cfg.qos, "summary"))

    # -- paho callbacks (network thread: flags and queues only) ---------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._connect_failed(f"the broker refused the connection: {reason_code}")
            return
        self._counts["connects"] += 1
        if self._fail_streak or self._counts["connects"] > 1:
            log.warning("MQTT: connected to %s again", self.settings.broker)
        else:
            log.info("MQTT: connected to %s", self.settings.broker)
        self._fail_streak = 0
        if self.cfg.ha_discovery:
            client.subscribe(self.ha_status_topic, qos=1)
        self._conn = (self._conn[0] + 1, True)
        self._wake.set()

    def _on_connect_fail(self, client, userdata) -> None:
        # paho calls this from inside its ``except OSError`` block: the exception is at hand.
        self._connect_failed(_describe_connect_error(sys.exc_info()[1]))

    def _connect_failed(self, why: str) -> None:
        self._counts["connect_failures"] += 1
        self._fail_streak += 1
        s = self.settings
        if "refused" in why and ("authoriz" in why.lower() or "password" in why.lower()):
            why += f" (user {s.username!r}, password from {self._secret.source})"
        if self._fail_streak == 1:
            log.error("MQTT: cannot connect to %s: %s; retrying with backoff", s.broker, why)
        else:
            log.warning(
                "MQTT: still cannot connect to %s (attempt %d): %s",
                s.broker,
                self._fail_streak,
                why,
            )

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self._conn[1]
        self._conn = (self._conn[0] + 1, False)
        self._wake.set()
        if was and not self._closed:
            log.warning(
                "MQTT: connection to %s lost (%s); %d message(s) queued, reconnecting",
                self.settings.broker, reason_code, self._backlog(),
            )  # fmt: skip

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acks.put(mid)
        self._wake.set()

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic == self.ha_status_topic and msg.payload.strip().lower() == b"online":
            self._ha_republish = True
            self._wake.set()

    # -- the sender thread ----------------------------------------------------------------

    def _run_sender(self) -> None:
        seen_gen = 0
        interval = self.cfg.summary_interval_s
        next_summary = time.monotonic() + interval if interval > 0 else math.inf
        while True:
            timeout = min(0.5, max(0.0, next_summary - time.monotonic()))
            self._wake.wait(timeout)
            self._wake.clear()
            try:
                self._take_acks()
                gen, connected = self._conn
                if gen != seen_gen:
                    seen_gen = gen
                    self._take_back()
                    if connected:
                        self._announce()
                if self._ha_republish and connected:
                    self._ha_republish = False
                    self._publish_discovery()
                if time.monotonic() >= next_summary and not self._stop.is_set():
                    next_summary += interval * max(
                        1, math.ceil((time.monotonic() - next_summary) / interval)
                    )
                    self._enqueue_summary(time.time())
                if connected:
                    self._feed()
            except Exception:  # keep sending whatever happens to one message
                log.exception("MQTT: sender error")
            if self._stop.is_set():
                return

    def _take_acks(self) -> None:
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                return
            with self._lock:
                item = self._inflight.pop(mid, None)
            if item is not None:
                self._counts["sent" if item.kind == "event" else "summaries"] += 1

    def _take_back(self) -> None:
        """After a disconnect or reconnect: what the broker did not acknowledge goes back to
        the front of the queue, in order (paho would otherwise resend it after newer ones)."""
        dropped = {m.mid for m in self._client.drop_out_messages()}
        self._take_acks()
        with self._lock:
            back = [item for mid, item in self._inflight.items() if mid in dropped]
            acked = [item for mid, item in self._inflight.items() if mid not in dropped]
            self._inflight.clear()
            self._pending.extendleft(reversed(back))
            self._trim()
        for item in acked:  # acknowledged between the two looks
            self._counts["sent" if item.kind == "event" else "summaries"] += 1

    def _announce(self) -> None:
        self._client.publish(self.topics["status"], "online", qos=1, retain=True)
        if self.cfg.ha_discovery:
            self._publish_discovery()

    def _publish_discovery(self) -> None:
        for topic, payload in discovery_messages(
            self.device_id,
            self.settings.base,
            ha_prefix=self.cfg.ha_prefix,
            model=self.model,
            labels=self.labels,
        ):
            self._client.publish(topic, _json(payload), qos=1, retain=True)

    def _feed(self) -> None:
        while len(self._inflight) < WINDOW and self._conn[1]:
            with self._lock:
                if not self._pending:
                    return
                item = self._pending.popleft()
            info = self._client.publish(item.topic, item.payload, qos=item.qos)
            if item.qos > 0:
                self._inflight[info.mid] = item  # paho holds it until PUBACK or our take-back
                if info.rc != 0:  # not connected after all: taken back on the next look
                    return
            elif info.rc == 0:
                self._counts["sent" if item.kind == "event" else "summaries"] += 1
            else:
                with self._lock:
                    self._pending.appendleft(item)
                return
