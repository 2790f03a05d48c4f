"""The MQTT sink: events, state, summaries and status on a broker (paho-mqtt 2.x).

Topics under a prefix (default ``deepfer/<device_id>``), see docs/mqtt.md:

* ``status``  ``online`` (retained) on every connect; ``offline`` by last will and on close.
* ``events``  start / change / end messages (edge/events.py), QoS 1, never retained.
* ``state``   the current faces, rate-limited (default 5 Hz), QoS 0.
* ``summary`` every N seconds: face-frames per emotion, faces seen, event counts.

Nothing is lost while the broker is away: events and summaries wait in a bounded queue and go
out in order on reconnect; when the queue is full the oldest are dropped, counted and logged.
One sender thread owns the in-flight window: on every (re)connect it takes back what the
broker had not acknowledged (paho's ``drop_out_messages``) and sends it again before anything
newer, so order holds across outages (QoS 1 is at-least-once: a consumer that must not see a
message twice drops repeated ``seq`` values).

paho is imported when a sink is made, so config validation works without it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import re
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from deepfer.edge.credentials import MQTT_CREDENTIAL, Secret, SecretError, resolve_secret
from deepfer.edge.events import utc_iso
from deepfer.edge.ha_discovery import discovery_messages, dominant_emotion
from deepfer.edge.labels import LABELS
from deepfer.edge.sinks import Sink

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}

#: MqttConfig's fields and their defaults (edge/config.py holds the typed config; the sink
#: reads these attribute names from any object, so tests and tools can pass a namespace).
DEFAULTS: dict[str, Any] = {
    "url": "",
    "username": "",
    "password_env": "DEEPFER_MQTT_PASSWORD",
    "password_file": "",
    "client_id": "",
    "prefix": "deepfer/{device_id}",
    "qos": 1,
    "state_hz": 5.0,
    "summary_interval_s": 60.0,
    "queue_size": 10000,
    "tls_ca": "",
    "tls_cert": "",
    "tls_key": "",
    "tls_insecure": False,
    "keepalive": 30,
    "ha_discovery": False,
    "ha_prefix": "homeassistant",
}

#: QoS 1 messages handed to paho at once; the rest wait in our queue, in order.
WINDOW = 20


class MqttConfigError(ValueError):
    """A bad [mqtt] setting: names the key path and the value."""

    def __init__(self, key: str, value: Any, problem: str):
        self.key, self.value, self.problem = key, value, problem
        super().__init__(f"{key} = {value!r}: {problem}")


def _opt(cfg: Any, name: str) -> Any:
    value = getattr(cfg, name, DEFAULTS[name])
    return DEFAULTS[name] if value is None else value


# ---------------------------------------------------------------------------------------------
# Validation (no paho needed)


@dataclass(frozen=True)
class BrokerUrl:
    scheme: str
    host: str
    port: int
    username: str

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{user}{host}:{self.port}"


def parse_broker_url(url: str, key: str = "mqtt.url") -> BrokerUrl:
    """``mqtt://[user@]host[:port]`` or ``mqtts://...``; a password in the URL is refused."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise MqttConfigError(key, shown, f"not a broker URL ({exc})") from exc
    if parts.scheme not in DEFAULT_PORTS:
        raise MqttConfigError(
            key, shown, "use mqtt://[user@]host[:port] or mqtts://[user@]host[:port]"
        )
    if not parts.hostname:
        raise MqttConfigError(key, shown, "no host")
    if parts.password is not None:
        raise MqttConfigError(
            key, shown, "no password in the URL: use mqtt.password_env, mqtt.password_file "
            f"or the systemd credential {MQTT_CREDENTIAL!r}",
        )  # fmt: skip
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise MqttConfigError(key, shown, "no path or query after host[:port]")
    return BrokerUrl(
        parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme], parts.username or ""
    )


def redact_url(url: str) -> str:
    """The URL with any password in it replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(//[^/@:]*):[^@/]*@", r"\1:***@", str(url))


def device_id_problem(device_id: str) -> str | None:
    """Why ``device_id`` cannot be one MQTT topic level, or None."""
    if not isinstance(device_id, str) or not device_id:
        return "must not be empty"
    if "/" in device_id:
        return "must be a single topic level (no '/')"
    if "+" in device_id or "#" in device_id:
        return "must not contain the MQTT wildcards '+' or '#'"
    if device_id.startswith("$"):
        return "must not start with '$' (reserved for the broker)"
    if any(c.isspace() or ord(c) < 32 for c in device_id):
        return "must not contain spaces or control characters"
    if len(device_id) > 64:
        return "must be at most 64 characters"
    return None


def topic_problem(topic: str) -> str | None:
    """Why ``topic`` cannot be a topic prefix (wildcards, empty levels, ...), or None."""
    if not topic:
        return "must not be empty"
    if "+" in topic or "#" in topic:
        return "must not contain the MQTT wildcards '+' or '#'"
    if topic.startswith("/") or topic.endswith("/") or "//" in topic:
        return "must not have empty levels (leading, trailing or double '/')"
    if topic.startswith("$"):
        return "must not start with '$' (reserved for the broker)"
    if "\0" in topic or any(ord(c) < 32 for c in topic):
        return "must not contain control characters"
    if len(topic.encode()) > 60000:
        return "is too long"
    return None


def base_topic(prefix: str, device_id: str, key: str = "mqtt.prefix") -> str:
    """The prefix with ``{device_id}`` filled in, validated."""
    problem = device_id_problem(device_id)
    if problem:
        raise MqttConfigError("device_id", device_id, problem)
    try:
        topic = prefix.format(device_id=device_id)
    except (KeyError, IndexError, ValueError) as exc:
        raise MqttConfigError(key, prefix, f"only {{device_id}} can be filled in ({exc})") from exc
    problem = topic_problem(topic)
    if problem:
        raise MqttConfigError(key, prefix, problem if topic == prefix else f"{topic!r} {problem}")
    return topic


def _number(cfg: Any, name: str, lo: float, hi: float = math.inf, integer: bool = False) -> Any:
    value = _opt(cfg, name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok or not lo <= value <= hi:
        kind = "an integer" if integer else "a number"
        span = f">= {lo:g}" if hi == math.inf else f"in {lo:g}..{hi:g}"
        raise MqttConfigError(f"mqtt.{name}", value, f"must be {kind} {span}")
    return int(value) if integer else float(value)


@dataclass(frozen=True)
class MqttSettings:
    """The [mqtt] section checked and resolved for one device (no secrets in here)."""

    broker: BrokerUrl
    username: str
    client_id: str
    base: str
    qos: int
    state_hz: float
    summary_interval_s: float
    queue_size: int
    keepalive: int
    tls_ca: str
    tls_cert: str
    tls_key: str
    tls_insecure: bool
    ha_discovery: bool
    ha_prefix: str
    password_env: str
    password_file: str


def check_mqtt_config(cfg: Any, device_id: str) -> MqttSettings:
    """Validates the [mqtt] section (``cfg`` has MqttConfig's attributes); raises
    MqttConfigError naming the key and value. Files named for TLS must be readable."""
    url = str(_opt(cfg, "url"))
    broker = parse_broker_url(url)
    username = str(_opt(cfg, "username") or "")
    if broker.username and username and broker.username != username:
        raise MqttConfigError(
            "mqtt.username", username, f"differs from the user in mqtt.url ({broker.username!r})"
        )
    base = base_topic(str(_opt(cfg, "prefix")), device_id)
    qos = _opt(cfg, "qos")
    if qos not in (0, 1, 2) or isinstance(qos, bool):
        raise MqttConfigError("mqtt.qos", qos, "must be 0, 1 or 2")
    state_hz = _number(cfg, "state_hz", 0, 1000)
    summary = _number(cfg, "summary_interval_s", 0)
    queue_size = _number(cfg, "queue_size", 1, 10_000_000, integer=True)
    keepalive = _number(cfg, "keepalive", 5, 65535, integer=True)
    tls = {k: str(_opt(cfg, k) or "") for k in ("tls_ca", "tls_cert", "tls_key")}
    insecure = _opt(cfg, "tls_insecure")
    if not isinstance(insecure, bool):
        raise MqttConfigError("mqtt.tls_insecure", insecure, "must be true or false")
    if not broker.tls:
        for k, v in tls.items():
            if v:
                raise MqttConfigError(
                    f"mqtt.{k}", v, f"TLS needs an mqtts:// URL (mqtt.url is {url!r})"
                )
        if insecure:
            raise MqttConfigError(
                "mqtt.tls_insecure", insecure, f"only applies to mqtts:// (mqtt.url is {url!r})"
            )
    if tls["tls_key"] and not tls["tls_cert"]:
        raise MqttConfigError(
            "mqtt.tls_key", tls["tls_key"], "needs mqtt.tls_cert (the client certificate)"
        )
    for k, v in tls.items():
        if v and not os.access(os.path.expanduser(v), os.R_OK):
            why = (
                "does not exist" if not os.path.exists(os.path.expanduser(v)) else "is not readable"
            )
            raise MqttConfigError(f"mqtt.{k}", v, f"the file {why}")
    password_file = str(_opt(cfg, "password_file") or "")
    if password_file and not os.access(os.path.expanduser(password_file), os.R_OK):
        why = (
            "does not exist"
            if not os.path.exists(os.path.expanduser(password_file))
            else "is not readable"
        )
        raise MqttConfigError("mqtt.password_file", password_file, f"the file {why}")
    ha = _opt(cfg, "ha_discovery")
    if not isinstance(ha, bool):
        raise MqttConfigError("mqtt.ha_discovery", ha, "must be true or false")
    ha_prefix = str(_opt(cfg, "ha_prefix"))
    problem = topic_problem(ha_prefix)
    if problem:
        raise MqttConfigError("mqtt.ha_prefix", ha_prefix, problem)
    if ha and state_hz <= 0:
        raise MqttConfigError(
            "mqtt.state_hz", state_hz, "Home Assistant discovery reads the state topic: set it > 0"
        )
    client_id = str(_opt(cfg, "client_id") or "") or f"deepfer-{device_id}"
    return MqttSettings(
        broker=broker,
        username=broker.username or username,
        client_id=client_id,
        base=base,
        qos=int(qos),
        state_hz=state_hz,
        summary_interval_s=summary,
        queue_size=queue_size,
        keepalive=keepalive,
        tls_ca=tls["tls_ca"],
        tls_cert=tls["tls_cert"],
        tls_key=tls["tls_key"],
        tls_insecure=insecure,
        ha_discovery=ha,
        ha_prefix=ha_prefix,
        password_env=str(_opt(cfg, "password_env") or ""),
        password_file=password_file,
    )


def tls_context(s: MqttSettings) -> ssl.SSLContext:
    """Verifies the broker against tls_ca (else the system CAs); optional client certificate."""
    try:
        ctx = ssl.create_default_context(cafile=os.path.expanduser(s.tls_ca) if s.tls_ca else None)
    except (ssl.SSLError, OSError) as exc:
        raise MqttConfigError("mqtt.tls_ca", s.tls_ca, f"not a usable CA file ({exc})") from exc
    if s.tls_cert:
        try:
            ctx.load_cert_chain(
                os.path.expanduser(s.tls_cert), os.path.expanduser(s.tls_key) if s.tls_key else None
            )
        except (ssl.SSLError, OSError) as exc:
            raise MqttConfigError(
                "mqtt.tls_cert", s.tls_cert, f"cannot load the client certificate/key ({exc})"
            ) from exc
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

    Thread model: the pipeline thread calls publish_event / publish_state; paho's network
    thread runs the callbacks (which only set flags and queue acks); one sender thread owns
    the in-flight window, the summaries and the announcements on connect.
    """

    name = "mqtt"

    def __init__(
        self,
        config: Any,
        device_id: str,
        model: str = "",
        labels: Sequence[str] = LABELS,
        *,
        flush_timeout_s: float = 5.0,
        reconnect_delay_s: tuple[float, float] = (1.0, 60.0),
        environ: dict[str, str] | None = None,
    ):
        self.settings = s = check_mqtt_config(config, device_id)
        self.device_id = device_id
        self.model = model
        self.labels = list(labels)
        self.flush_timeout_s = flush_timeout_s
        self.reconnect_delay_s = reconnect_delay_s
        try:
            self._secret: Secret = resolve_secret(
                file=s.password_file or None, env=s.password_env or None, environ=environ
            )
        except SecretError as exc:
            raise MqttConfigError("mqtt.password_file", s.password_file, str(exc)) from exc
        self._ssl = tls_context(s) if s.broker.tls else None
        self.topics = {
            name: f"{s.base}/{name}" for name in ("status", "events", "state", "summary")
        }
        self.ha_status_topic = f"{s.ha_prefix}/status"

        self._lock = threading.Lock()  # guards _pending and the summary counters
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
        self._reset_period(time.time())

    # -- the Sink interface ---------------------------------------------------------------

    def start(self) -> None:
        import paho.mqtt.client as mqtt

        s = self.settings
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        # paho's own messages are internals (and noisy while reconnecting): debug level only;
        # this module logs what went wrong in words.
        paho_log = logging.getLogger("deepfer.edge.mqtt_publisher.paho")
        if paho_log.isEnabledFor(logging.DEBUG):
            client.on_log = lambda _c, _u, _level, buf: paho_log.debug("%s", buf)
        if s.username or self._secret.value:
            client.username_pw_set(s.username or None, self._secret.value)
        if self._ssl is not None:
            client.tls_set_context(self._ssl)
            if s.tls_insecure:
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
        client.connect_async(s.broker.host, s.broker.port, keepalive=s.keepalive)
        client.loop_start()
        self._sender = threading.Thread(
            target=self._run_sender, name="deepfer-mqtt-sender", daemon=True
        )
        self._sender.start()

    def publish_event(self, event: dict[str, Any]) -> None:
        item = _Item(
            self.topics["events"], _json(event), self.settings.qos, "event", event.get("seq")
        )
        with self._lock:
            self._period["events"][event.get("type", "?")] = (
                self._period["events"].get(event.get("type", "?"), 0) + 1
            )
            if "track_id" in event:
                self._period_tracks.add(event["track_id"])
            self._enqueue(item)
        self._wake.set()

    def publish_state(self, state: dict[str, Any]) -> None:
        faces = state.get("faces") or []
        with self._lock:
            p = self._period
            p["frames"] += 1
            p["max_faces"] = max(p["max_faces"], len(faces))
            for face in faces:
                emotion = str(face.get("emotion"))
                p["emotions"][emotion] = p["emotions"].get(emotion, 0) + 1
                if "track_id" in face:
                    self._period_tracks.add(face["track_id"])
        hz = self.settings.state_hz
        now = time.monotonic()
        if (
            hz <= 0
            or now - self._last_state < 1.0 / hz
            or not self._conn[1]
            or self._client is None
        ):
            return
        self._last_state = now
        payload = {**state, "count": len(faces), "dominant": dominant_emotion(faces)}
        if isinstance(payload.get("ts"), (int, float)):  # time.time() -> ISO 8601, as in events
            payload["ts"] = utc_iso(payload["ts"])
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
        if self.settings.summary_interval_s > 0:
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
        over = len(self._pending) - self.settings.queue_size
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
                self.settings.queue_size, "connected" if self._conn[1] else "unreachable", first.kind,
                f" seq={first.seq}" if first.seq is not None else "", self._counts["dropped"],
            )  # fmt: skip

    # -- summaries ------------------------------------------------------------------------

    def _reset_period(self, now: float) -> None:
        self._period_start = now
        self._period_tracks: set[Any] = set()
        self._period: dict[str, Any] = {
            "frames": 0,
            "max_faces": 0,
            "emotions": dict.fromkeys(self.labels, 0),
            "events": dict.fromkeys(("start", "change", "end"), 0),
        }

    def _enqueue_summary(self, now: float) -> None:
        with self._lock:
            p = self._period
            summary = {
                "ts": utc_iso(now),
                "device_id": self.device_id,
                "model": self.model,
                "from": utc_iso(self._period_start),
                "period_s": round(now - self._period_start, 3),
                "frames": p["frames"],
                "faces_seen": len(self._period_tracks),
                "max_faces": p["max_faces"],
                "emotions": p["emotions"],
                "events": p["events"],
                "dropped_total": self._counts["dropped"],
            }
            self._reset_period(now)
            self._enqueue(
                _Item(self.topics["summary"], _json(summary), self.settings.qos, "summary")
            )

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
        if self.settings.ha_discovery:
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
        interval = self.settings.summary_interval_s
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
        if self.settings.ha_discovery:
            self._publish_discovery()

    def _publish_discovery(self) -> None:
        s = self.settings
        for topic, payload in discovery_messages(
            self.device_id, s.base, ha_prefix=s.ha_prefix, model=self.model, labels=self.labels
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
