"""The MQTT sink: events, state, summaries and status on a broker (paho-mqtt 2.x).

Topics under a prefix (default ``deepfer/<device_id>``), see docs/mqtt.md:

* ``status``  ``online`` (retained) on every connect; ``offline`` by last will and on close.
* ``events``  start / change / end messages (edge/messages.py), QoS 1, never retained.
* ``state``   the current faces, rate-limited (default 5 Hz), QoS 0.
* ``summary`` every N seconds: face-frames per emotion, faces seen, event counts.

Nothing is lost while the broker is away, nor across restarts: events and summaries go
through the persistent outbox (``outbox.py``, SQLite in the state folder), committed in
batches and published only once committed; a row leaves the outbox when the broker
acknowledged it (PUBACK). What is left at a restart goes out first, in order. The outbox is
bounded (``mqtt.queue_size`` messages, ``mqtt.max_age_s``): the oldest are dropped, counted and
logged. One sender thread owns the outbox and the in-flight window: on every (re)connect it
takes back what the broker had not acknowledged (paho's ``drop_out_messages``) and sends it
again before anything newer, so order holds across outages (QoS 1 is at-least-once: a
consumer that must not see a message twice drops repeated ``(device_id, seq)``).

Settings and their checks live in ``deepfer.edge.config.mqtt`` (no paho there); paho is
imported when the sink starts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from deepfer.edge.config.mqtt import MqttConfig, check_mqtt_config
from deepfer.edge.errors import MqttConfigError, SecretError
from deepfer.edge.labels import LABELS
from deepfer.edge.messages import face_state, state_message
from deepfer.edge.outputs.base import Sink
from deepfer.edge.outputs.mqtt.client import (
    connect_in_background,
    describe_connect_error,
    new_client,
    tls_context,
)
from deepfer.edge.outputs.mqtt.credentials import Secret, resolve_secret
from deepfer.edge.outputs.mqtt.ha_discovery import discovery_messages
from deepfer.edge.outputs.mqtt.outbox import New, Outbox, OutboxError, Row, outbox_path
from deepfer.edge.outputs.mqtt.outbox import state_dir as _state_dir
from deepfer.edge.outputs.summary import PeriodCounter
from deepfer.edge.reminder import Reminder

log = logging.getLogger(__name__)

#: QoS 1 messages handed to paho at once; the rest wait in the outbox, in order.
WINDOW = 20
#: Messages waiting for the next outbox commit that make it come at once.
COMMIT_BATCH = 200
#: MQTT 5: a state message older than this is stale: brokers drop it instead of delivering it.
STATE_EXPIRY_S = 10


def _json(obj: Any) -> bytes:
    def default(o: Any) -> Any:
        if hasattr(o, "item"):  # numpy scalars
            return o.item()
        if hasattr(o, "tolist"):
            return o.tolist()
        raise TypeError(f"{type(o).__name__} is not JSON serialisable")

    return json.dumps(obj, separators=(",", ":"), default=default).encode()


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
        state_dir: str = "",
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
        self.outbox = Outbox(
            outbox_path(_state_dir(state_dir, environ), device_id), c.queue_size, c.max_age_s
        )

        self._lock = threading.Lock()  # guards _incoming (pipeline thread -> sender thread)
        self._incoming: list[New] = []
        self._stored = 0  # rows in the outbox (written by the sender thread)
        self._committing = 0  # messages taken from _incoming, not yet in _stored
        self._acked: set[int] = set()  # sender thread only: row ids to delete at the next commit
        self._inflight: dict[int, Row] = {}  # sender thread only: paho mid -> row
        self._cursor = 0  # sender thread only: the last row id handed to paho
        self._last_commit = time.monotonic()
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flushing = threading.Event()
        self._conn: tuple[int, bool] = (0, False)  # (connection generation, connected)
        self._ha_republish = False
        self._protocol = 3
        self._spoke_v5 = False  # answered once in MQTT 5: never fall back to 3.1.1
        self._fallback = False
        self._state_props: Any = None
        self._client: Any = None
        self._sender: threading.Thread | None = None
        self._closed = False
        self._last_state = -math.inf
        self._fail_streak = 0
        self._fail_said = Reminder()
        self._drop_said = Reminder()
        self._outbox_error = ""  # sender thread: why the last commit failed ("" = it did not)
        self._outbox_failing_since = 0.0
        self._outbox_said = Reminder()
        self._counts = {
            "sent": 0,
            "summaries": 0,
            "dropped": 0,
            "state_sent": 0,
            "connects": 0,
            "connect_failures": 0,
            "undelivered": 0,
            "resumed": 0,
            "outbox_errors": 0,
            "lost": 0,
        }
        self._period = PeriodCounter(device_id, model, self.labels)

    # -- the Sink interface ---------------------------------------------------------------

    def start(self) -> None:

        s, c = self.settings, self.cfg
        if c.tls_insecure:
            log.warning("MQTT: mqtt.tls_insecure is on: the broker's certificate is NOT verified")
        self.outbox.open()  # a state folder we cannot write is fatal, before anything starts
        self._stored = self.outbox.count
        self._counts["resumed"] = self.outbox.count
        if self.outbox.count:
            log.warning(
                "MQTT: %d message(s) left from the last run in %s go out first",
                self.outbox.count, self.outbox.path,
            )  # fmt: skip
        self._client = self._new_client(5 if c.protocol in ("auto", "5") else 3)
        if s.username and not self._secret.value:
            log.warning("MQTT: user %r has no password (%s)", s.username, self._secret.source)
        log.info(
            "MQTT: publishing to %s as %r under %s/ (password: %s)",
            s.broker, s.client_id, s.base, self._secret.source if self._secret.value else "none",
        )  # fmt: skip
        self._connect()
        self._sender = threading.Thread(
            target=self._run_sender, name="deepfer-mqtt-sender", daemon=True
        )
        self._sender.start()

    def next_seq(self) -> int:
        """The ``seq`` after the last one this device stored (kept across restarts)."""
        return self.outbox.next_seq

    def _new_client(self, protocol: int) -> Any:
        """A paho client for MQTT 5 (``protocol`` 5) or 3.1.1 (3) with this sink's callbacks."""
        client = new_client(
            self.settings,
            protocol,
            password=self._secret.value,
            ssl_context=self._ssl,
            will_topic=self.topics["status"],
            reconnect_delay_s=self.reconnect_delay_s,
            max_inflight=WINDOW + 10,
        )
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _connect(self) -> None:
        """Connects in the background (paho's thread); see :func:`client.connect_in_background`."""
        self._protocol = 5 if self._client.protocol == 5 else 3
        self._state_props = connect_in_background(self._client, self.settings, STATE_EXPIRY_S)

    def _fall_back_to_311(self) -> None:
        """Sender thread: the broker does not speak MQTT 5 (mqtt.protocol = auto): a 3.1.1 client."""
        old = self._client
        old.loop_stop()
        with contextlib.suppress(Exception):
            old.disconnect()
        log.warning("MQTT: %s does not speak MQTT 5: using MQTT 3.1.1", self.settings.broker)
        self._client = self._new_client(3)
        self._connect()

    def publish_event(self, event: dict[str, Any]) -> None:
        item = New(
            self.topics["events"],
            _json(event),
            self.cfg.qos,
            "event",
            event.get("seq"),
            time.time(),
        )
        self._period.add_event(event)
        self._enqueue(item)

    def on_frame(self, result: Any) -> None:
        """Counts the frame for the summary; publishes the state at most ``state_hz`` a second.
        Both hold the faces whose track has started (those the events speak of): a face seen
        once, perhaps a false one, is not yet "in view"."""
        shown = [f for f in result.faces if getattr(f, "confirmed", True)]
        faces = [face_state(f) for f in shown]
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
        payload = state_message(result.frame.ts, self.device_id, shown)
        info = self._client.publish(
            self.topics["state"], _json(payload), qos=0, retain=False, properties=self._state_props
        )
        if info.rc == 0:
            self._counts["state_sent"] += 1

    def stats(self) -> dict[str, Any]:
        c = self._counts
        return {
            "mqtt_connected": self._conn[1],
            "mqtt_queue": self._backlog(),
            "mqtt_dropped": c["dropped"],
            "mqtt_sent": c["sent"],
            "mqtt_summaries": c["summaries"],
            "mqtt_state_sent": c["state_sent"],
            "mqtt_reconnects": max(0, c["connects"] - 1),
            "mqtt_connect_failures": c["connect_failures"],
            "mqtt_undelivered": c["undelivered"],
            "mqtt_resumed": c["resumed"],
            "mqtt_outbox_errors": c["outbox_errors"],
            "mqtt_lost": c["lost"],
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
        self._flushing.set()  # commit at once from now on
        deadline = time.monotonic() + self.flush_timeout_s
        # with the broker known to be away the backlog is kept in the outbox: wait only for
        # the commit; connected (or still trying a first time): wait for the acknowledgements
        while time.monotonic() < deadline and (
            self._incoming or (self._backlog() and (self._conn[1] or not self._fail_streak))
        ):
            self._wake.set()
            time.sleep(0.02)
        self._stop.set()
        self._wake.set()
        if self._sender is not None:
            self._sender.join(5)
        if self._outbox_error:  # what never reached the disk dies with the process
            with self._lock:
                lost = len(self._incoming) + self._committing
                self._incoming, self._committing = [], 0
            self._counts["lost"] = lost
            if lost:
                log.error(
                    "MQTT: %d message(s) lost at shutdown: the outbox %s could not be written "
                    "(%s)", lost, self.outbox.path, self._outbox_error,
                )  # fmt: skip
        left = self._backlog()
        if left:
            self._counts["undelivered"] = left
            why = (
                f"no acknowledgement within {self.flush_timeout_s:g} s"
                if self._conn[1]
                else "broker unreachable"
            )
            log.error(
                "MQTT: %d message(s) not delivered to %s before shutdown (%s): kept in the "
                "outbox %s for the next start",
                left, self.settings.broker, why, self.outbox.path,
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
        log.log(level, "MQTT: %d events sent, %d summaries, %d dropped (queue full or too old), %d kept for the next start, %d reconnects",
                c["sent"], c["summaries"], c["dropped"], left, max(0, c["connects"] - 1))  # fmt: skip

    # -- queue ----------------------------------------------------------------------------

    def _backlog(self) -> int:
        """Messages not yet acknowledged: stored (less those acknowledged, to be deleted) plus
        those being written and those waiting for the next commit (the lock is never held
        while calling paho, so callbacks may take it)."""
        with self._lock:
            return max(0, self._stored - len(self._acked)) + self._committing + len(self._incoming)

    def _enqueue(self, item: New) -> None:
        """Hands a message to the sender thread for the next commit; beyond queue_size waiting
        for it, the oldest waiting are dropped (the outbox applies the bound to what it holds)."""
        with self._lock:
            self._incoming.append(item)
            over = len(self._incoming) - self.cfg.queue_size
            gone = self._incoming[:over] if over > 0 else []
            del self._incoming[: max(0, over)]
            batch = len(self._incoming) >= COMMIT_BATCH
        if gone:
            why = "outbox not writable, memory queue full" if self._outbox_error else "queue full"
            self._count_dropped(len(gone), why, gone[0].kind, gone[0].seq)
        if batch or self._stop.is_set():
            self._wake.set()

    def _count_dropped(self, n: int, reason: str, kind: str, seq: int | None) -> None:
        with self._lock:  # the pipeline thread and the sender thread both drop
            self._counts["dropped"] += n
        if self._drop_said.due():
            log.warning(
                "MQTT: %s (%d, max age %g s, broker %s): dropped the oldest %s%s; %d dropped so far",
                reason, self.cfg.queue_size, self.cfg.max_age_s,
                "connected" if self._conn[1] else "unreachable", kind,
                f" seq={seq}" if seq is not None else "", self._counts["dropped"],
            )  # fmt: skip

    def _commit(self, force: bool = False) -> None:
        """Sender thread: one outbox transaction with what came in and what was acknowledged,
        every commit_interval_s (or COMMIT_BATCH messages, or ``force``)."""
        due = time.monotonic() - self._last_commit >= self.cfg.commit_interval_s
        if not (force or due or len(self._incoming) >= COMMIT_BATCH):
            return
        with self._lock:
            new, self._incoming = self._incoming, []
            self._committing = len(new)  # still counted in the backlog while being written
        if not new and not self._acked:
            return
        acked = list(self._acked)
        try:
            dropped = self.outbox.commit(new, acked)
        except OutboxError as exc:
            with self._lock:  # keep them for the next try (bounded by _enqueue)
                self._incoming[:0] = new
                self._committing = 0
                held = len(self._incoming)
            self._outbox_failed(exc, held)
            self._last_commit = time.monotonic()
            return
        self._last_commit = time.monotonic()
        if self._outbox_error:
            self._outbox_error = ""
            log.warning(
                "MQTT: the outbox %s can be written again after %.0f s: %d held message(s) "
                "stored", self.outbox.path, self._last_commit - self._outbox_failing_since,
                len(new),
            )  # fmt: skip
        self._acked.difference_update(acked)
        with self._lock:
            self._stored = self.outbox.count
            self._committing = 0
        for d in dropped:
            self._count_dropped(d.count, d.reason, d.first_kind, d.first_seq)

    def _outbox_failed(self, exc: OutboxError, held: int) -> None:
        """A commit failed (a full disk, an I/O error): the daemon goes on, holding messages in
        memory; said at once, then a reminder while it lasts (not at every try)."""
        self._counts["outbox_errors"] += 1
        now = time.monotonic()
        starts = not self._outbox_error
        if starts:
            self._outbox_failing_since = now
            self._outbox_said.reset()
        self._outbox_error = str(exc)
        if not self._outbox_said.due(now):  # (due at once when it starts: the reset)
            return
        if starts:
            log.error(
                "%s; %d message(s) held in memory meanwhile (at most mqtt.queue_size = %d, the "
                "oldest dropped beyond), lost if the daemon stops first; retrying every %g s",
                exc, held, self.cfg.queue_size, self.cfg.commit_interval_s,
            )  # fmt: skip
        else:
            log.error(
                "%s, for %.0f s now; %d message(s) held in memory, %d dropped so far; retrying",
                exc, now - self._outbox_failing_since, held, self._counts["dropped"],
            )  # fmt: skip

    # -- summaries ------------------------------------------------------------------------

    def _enqueue_summary(self, now: float) -> None:
        summary = self._period.take(now, dropped_total=self._counts["dropped"])
        self._enqueue(
            New(self.topics["summary"], _json(summary), self.cfg.qos, "summary", None, now)
        )

    # -- paho callbacks (network thread: flags and queues only) ---------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if client is not self._client:
            return
        if (
            reason_code.is_failure
            and self._may_fall_back()
            and "protocol" in str(reason_code).lower()
        ):
            self._fallback = True
            self._wake.set()
            return
        # an answer in MQTT 5 (connected, or refused for a reason other than the protocol: a
        # wrong password) is a broker that speaks it: the disconnect that follows a refusal
        # is not a 3.1.1 broker hanging up
        self._spoke_v5 = self._spoke_v5 or self._protocol == 5
        if reason_code.is_failure:
            self._connect_failed(f"the broker refused the connection: {reason_code}")
            return
        self._counts["connects"] += 1
        if self._fail_streak or self._counts["connects"] > 1:
            tries = f" after {self._fail_streak} failed tries" if self._fail_streak > 1 else ""
            log.warning("MQTT: connected to %s again%s", self.settings.broker, tries)
        else:
            log.info("MQTT: connected to %s", self.settings.broker)
        self._fail_streak = 0
        if self.cfg.ha_discovery:
            client.subscribe(self.ha_status_topic, qos=1)
        self._conn = (self._conn[0] + 1, True)
        self._wake.set()

    def _on_connect_fail(self, client, userdata) -> None:
        if client is not self._client:
            return
        # paho calls this from inside its ``except OSError`` block: the exception is at hand.
        self._connect_failed(describe_connect_error(sys.exc_info()[1]))

    def _connect_failed(self, why: str) -> None:
        self._counts["connect_failures"] += 1
        self._fail_streak += 1
        s = self.settings
        if "refused" in why and ("authoriz" in why.lower() or "password" in why.lower()):
            why += f" (user {s.username!r}, password from {self._secret.source})"
        if self._fail_streak <= 2:  # the first and the second try are said, then a reminder:
            self._fail_said.reset()  # with the backoff at 60 s a day away was 1,440 lines
        if not self._fail_said.due():
            return
        if self._fail_streak == 1:
            log.error("MQTT: cannot connect to %s: %s; retrying with backoff", s.broker, why)
        else:
            log.warning(
                "MQTT: still cannot connect to %s (attempt %d): %s",
                s.broker,
                self._fail_streak,
                why,
            )

    def _may_fall_back(self) -> bool:
        return self.cfg.protocol == "auto" and self._protocol == 5 and not self._spoke_v5

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if client is not self._client:
            return
        if not self._conn[1] and self._may_fall_back():
            # an MQTT 5 CONNECT answered by closing the connection: a 3.1.1-only broker
            self._fallback = True
            self._wake.set()
            return
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
            wait = min(0.5, self.cfg.commit_interval_s, max(0.0, next_summary - time.monotonic()))
            self._wake.wait(wait)
            self._wake.clear()
            stopping = self._stop.is_set()
            try:
                if self._fallback:
                    self._fallback = False
                    self._fall_back_to_311()
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
                # once close() began it sends the last summary itself: none after it
                if time.monotonic() >= next_summary and not self._flushing.is_set():
                    next_summary += interval * max(
                        1, math.ceil((time.monotonic() - next_summary) / interval)
                    )
                    self._enqueue_summary(time.time())
                self._commit(force=self._flushing.is_set() or stopping)
                if connected:
                    self._feed()
            except Exception:  # keep sending whatever happens to one message
                log.exception("MQTT: sender error")
            if stopping:
                with contextlib.suppress(Exception):
                    self._take_acks()
                    self._commit(force=True)  # what came in and what was acknowledged, kept
                self.outbox.close()
                return

    def _take_acks(self) -> None:
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                return
            row = self._inflight.pop(mid, None)
            if row is not None:
                self._delivered(row)

    def _delivered(self, row: Row) -> None:
        self._acked.add(row.id)
        self._counts["sent" if row.kind == "event" else "summaries"] += 1

    def _take_back(self) -> None:
        """After a disconnect or reconnect: what the broker did not acknowledge is sent again
        from the outbox, in order (paho would otherwise resend it after newer ones)."""
        dropped = {m.mid for m in self._client.drop_out_messages()}
        self._take_acks()
        back = [row for mid, row in self._inflight.items() if mid in dropped]
        acked = [row for mid, row in self._inflight.items() if mid not in dropped]
        self._inflight.clear()
        for row in acked:  # acknowledged between the two looks
            self._delivered(row)
        if back:
            self._cursor = min(row.id for row in back) - 1

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
        """Committed rows after the cursor, oldest first, while the window has room."""
        while len(self._inflight) < WINDOW and self._conn[1]:
            rows = [
                r
                for r in self.outbox.read(self._cursor, WINDOW - len(self._inflight))
                if r.id not in self._acked
            ]
            if not rows:
                return
            for row in rows:
                info = self._client.publish(row.topic, row.payload, qos=row.qos)
                if row.qos > 0:
                    self._inflight[info.mid] = row  # paho holds it until PUBACK or take-back
                    self._cursor = row.id
                    if info.rc != 0:  # not connected after all: taken back on the next look
                        return
                elif info.rc == 0:
                    self._cursor = row.id
                    self._delivered(row)
                else:
                    return
