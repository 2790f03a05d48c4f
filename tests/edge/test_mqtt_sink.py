"""MqttSink driven directly with EventBuilder events, against a real mosquitto on a free
loopback port (skipped when mosquitto is not installed)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import ssl
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from mosquitto import (
    Mosquitto,
    Subscriber,
    make_ca,
    make_password_file,
    make_pki,
    requires_mosquitto,
    unique_event_seqs,
)

from deepfer.edge.capture.frame import frame_from_image
from deepfer.edge.config import MqttConfig
from deepfer.edge.labels import LABELS
from deepfer.edge.messages import EventBuilder, validate_event
from deepfer.edge.outputs.mqtt.sink import MqttSink
from deepfer.edge.pipeline import Face, FrameResult

pytestmark = requires_mosquitto

DEVICE = "cam-1"
PREFIX = f"deepfer/{DEVICE}"
FAST = {"reconnect_delay_s": (0.2, 1.0), "flush_timeout_s": 5.0}


def mqtt_config(**overrides) -> MqttConfig:
    return MqttConfig(**overrides)


def make_events(builder: EventBuilder, n_tracks: int, changes: int = 1) -> list[dict]:
    scores = dict.fromkeys(LABELS, 0.0)
    out = []
    for track in range(1, n_tracks + 1):
        out.append(
            builder.event("start", track, "happy", 0.9, {**scores, "happy": 0.9}, [1, 2, 3, 4])
        )
        for _ in range(changes):
            out.append(
                builder.event("change", track, "sad", 0.7, {**scores, "sad": 0.7}, [1, 2, 3, 4])
            )
        out.append(
            builder.event(
                "end", track, "sad", 0.7, {**scores, "sad": 0.7}, [1, 2, 3, 4],
                dwell_s=1.5, histogram={"happy": 3, "sad": 4},
            )
        )  # fmt: skip
    return out


def face(track_id: int, emotion: str = "happy", score: float = 0.9) -> Face:
    return Face((10, 20, 30, 40), emotion, score, {emotion: score}, track_id)


def frame_result(faces: list[Face]) -> FrameResult:
    return FrameResult(frame_from_image(np.zeros((48, 64), np.uint8)), faces)


def first_seqs(sub: Subscriber) -> list[int]:
    """Event seqs in arrival order, repeats (QoS 1 redeliveries) left out."""
    return unique_event_seqs(sub, f"{PREFIX}/events")


def wait_until(cond, timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def closing():
    """Sinks and subscribers made by a test, closed at its end whatever happens."""
    things = []
    yield things.append
    for thing in reversed(things):
        with contextlib.suppress(Exception):  # best-effort clean-up
            thing.close()


def test_status_events_state_summary(broker, closing):
    sub = Subscriber(broker, [f"{PREFIX}/#"])
    closing(sub)
    sink = MqttSink(
        mqtt_config(url=broker.url, summary_interval_s=0.5, state_hz=5.0), DEVICE, "tiny", **FAST
    )
    closing(sink)
    t0 = time.monotonic()
    sink.start()
    assert time.monotonic() - t0 < 0.5
    sub.wait_for(lambda s: s.on(f"{PREFIX}/status"), what="status online")
    events = make_events(EventBuilder(DEVICE, "tiny"), 3)
    for ev in events:
        sink.publish_event(ev)
    t_frames = time.monotonic()
    for _ in range(40):  # 2 s of frames at 20 fps, two faces
        sink.on_frame(frame_result([face(1), face(2, "sad", 0.8)]))
        time.sleep(0.05)
    frames_s = time.monotonic() - t_frames
    sub.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) >= len(events), what="all events")
    sub.wait_for(lambda s: s.on(f"{PREFIX}/summary"), what="a summary")
    stats = sink.stats()
    sink.close()
    sub.wait_for(lambda s: len(s.on(f"{PREFIX}/status")) >= 2, what="status offline")

    status = sub.on(f"{PREFIX}/status")
    assert [m.payload for m in status] == [b"online", b"offline"]
    got = [m.json() for m in sub.on(f"{PREFIX}/events")]
    assert got == events
    assert all(validate_event(m, LABELS) == [] for m in got)
    assert [m["seq"] for m in got] == list(range(1, len(events) + 1))
    assert not any(m.retain for m in sub.on(f"{PREFIX}/events"))
    assert stats["mqtt_connected"] is True and stats["mqtt_sent"] == len(events)
    assert stats["mqtt_dropped"] == 0 and stats["mqtt_reconnects"] == 0

    states = sub.on(f"{PREFIX}/state")
    assert 4 <= len(states) <= 5 * frames_s + 2, (len(states), frames_s)  # 5 Hz, not 40
    last = states[-1].json()
    assert last["count"] == 2 and last["dominant"] == "happy" and len(last["faces"]) == 2
    assert last["device_id"] == DEVICE and last["ts"].endswith("Z")
    assert last["faces"][1] == {
        "track_id": 2,
        "emotion": "sad",
        "score": 0.8,
        "box": [10, 20, 30, 40],
    }
    assert all(m.qos == 0 and not m.retain for m in states)

    summaries = [m.json() for m in sub.on(f"{PREFIX}/summary")]
    assert sum(s["frames"] for s in summaries) == 40
    assert sum(s["emotions"]["happy"] for s in summaries) == 40
    assert sum(s["emotions"]["sad"] for s in summaries) == 40
    assert sum(s["events"]["start"] for s in summaries) == 3
    assert max(s["faces_seen"] for s in summaries) >= 2
    assert all(set(LABELS) <= set(s["emotions"]) for s in summaries)

    late = Subscriber(broker, [f"{PREFIX}/#"], client_id="late")
    closing(late)
    time.sleep(0.3)
    retained = [(m.topic, m.payload) for m in late.messages if m.retain]
    assert retained == [(f"{PREFIX}/status", b"offline")]


def test_state_and_summary_hold_only_faces_whose_track_has_started(broker, closing):
    """A face seen once (its track not started, no start event: perhaps a false face) is drawn
    but not published as in view: state and summary count the faces the events speak of."""
    sub = Subscriber(broker, [f"{PREFIX}/#"])
    closing(sub)
    sink = MqttSink(
        mqtt_config(url=broker.url, summary_interval_s=3600, state_hz=100.0), DEVICE, "tiny", **FAST
    )
    closing(sink)
    sink.start()
    sub.wait_for(lambda s: s.on(f"{PREFIX}/status"), what="status online")
    wait_until(lambda: sink.stats()["mqtt_connected"], what="the sink connected")
    new = Face((100, 20, 30, 40), "fear", 0.6, {"fear": 0.6}, 7, confirmed=False)
    for faces in ([face(1), new], [face(1)], [new]):
        sink.on_frame(frame_result(faces))
        time.sleep(0.05)
    sub.wait_for(lambda s: len(s.on(f"{PREFIX}/state")) >= 3, what="three states")
    sink.close()
    sub.wait_for(lambda s: s.on(f"{PREFIX}/summary"), what="the summary at shutdown")
    states = [m.json() for m in sub.on(f"{PREFIX}/state")]
    assert [(s["count"], [f["track_id"] for f in s["faces"]]) for s in states] == [
        (1, [1]),
        (1, [1]),
        (0, []),
    ]
    assert states[-1]["dominant"] == "none"
    summary = sub.on(f"{PREFIX}/summary")[-1].json()
    assert summary["frames"] == 3 and summary["faces_seen"] == 1 and summary["max_faces"] == 1
    assert summary["emotions"]["fear"] == 0 and summary["emotions"]["happy"] == 2


def test_missing_broker_never_blocks_and_queue_goes_out_on_connect(tmp_path, closing, caplog):
    """... and the failed tries are logged twice, not at every try (a broker away for a day
    was 1,440 lines at the 60 s backoff)."""
    broker = Mosquitto(tmp_path / "broker")  # port chosen, not started yet
    sink = MqttSink(
        mqtt_config(url=broker.url, summary_interval_s=0), DEVICE, "tiny",
        reconnect_delay_s=(0.05, 0.1), flush_timeout_s=5.0,
    )  # fmt: skip
    closing(sink)
    caplog.set_level(logging.WARNING, logger="deepfer.edge.outputs.mqtt.sink")
    t0 = time.monotonic()
    sink.start()
    events = make_events(EventBuilder(DEVICE, "tiny"), 4)
    for ev in events:
        sink.publish_event(ev)
    assert time.monotonic() - t0 < 0.5
    wait_until(lambda: sink.stats()["mqtt_connect_failures"] >= 5, what="five failed tries")
    assert sink.stats()["mqtt_connected"] is False
    assert sink.stats()["mqtt_queue"] == len(events)
    said = [r.getMessage() for r in caplog.records if "connect to" in r.getMessage()]
    assert len(said) == 2 and "still cannot connect" in said[1], said
    with broker:
        sub = Subscriber(broker, [f"{PREFIX}/events"])
        closing(sub)
        sub.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) >= len(events), what="events")
        assert first_seqs(sub) == list(range(1, len(events) + 1))
        wait_until(lambda: sink.stats()["mqtt_queue"] == 0, what="empty queue")
        sink.close()
    assert re.search(r"connected to \S+ again after \d+ failed tries", caplog.text)


def test_broker_restart_loses_nothing_and_keeps_order(tmp_path, closing):
    broker = Mosquitto(tmp_path / "broker", persistence=True)
    broker.start()
    closing(SimpleNamespace(close=broker.stop))
    sub = Subscriber(broker, [f"{PREFIX}/events"], client_id="restart-sub", session=True)
    closing(sub)
    sink = MqttSink(mqtt_config(url=broker.url, summary_interval_s=0), DEVICE, "tiny", **FAST)
    closing(sink)
    sink.start()
    events = make_events(EventBuilder(DEVICE, "tiny"), 40, changes=3)  # 200 events
    stop = threading.Event()

    def produce():
        for ev in events:
            sink.publish_event(ev)
            time.sleep(0.012)  # ~2.4 s in all
        stop.set()

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.6)
    broker.stop()
    time.sleep(1.0)
    assert sink.stats()["mqtt_connected"] is False
    broker.start()
    producer.join()
    sub.wait_for(lambda s: len(first_seqs(s)) >= len(events), timeout=20, what="every event")
    assert first_seqs(sub) == list(range(1, len(events) + 1))
    stats = sink.stats()
    assert stats["mqtt_reconnects"] >= 1 and stats["mqtt_dropped"] == 0
    sink.close()


def test_overflow_drops_oldest_and_counts(tmp_path, closing, caplog):
    broker = Mosquitto(tmp_path / "broker")
    sink = MqttSink(
        mqtt_config(url=broker.url, summary_interval_s=0, queue_size=5), DEVICE, "tiny", **FAST
    )
    closing(sink)
    sink.start()
    events = make_events(EventBuilder(DEVICE, "tiny"), 5, changes=2)  # 20 events
    with caplog.at_level(logging.WARNING, logger="deepfer.edge.outputs.mqtt.sink"):
        for ev in events:
            sink.publish_event(ev)
    stats = sink.stats()
    assert stats["mqtt_dropped"] == 15 and stats["mqtt_queue"] == 5
    assert "queue full" in caplog.text and "seq=1" in caplog.text
    with broker:
        sub = Subscriber(broker, [f"{PREFIX}/events"])
        closing(sub)
        sub.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) >= 5, what="the newest 5")
        assert first_seqs(sub) == [16, 17, 18, 19, 20]
        sink.close()
    assert sink.stats()["mqtt_dropped"] == 15


def test_tls_with_ca_delivers_and_unknown_ca_is_refused(tmp_path, closing, caplog):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    pki = make_pki(tmp_path / "pki")
    other_ca, _ = make_ca(tmp_path / "other", "other-ca")
    broker = Mosquitto(tmp_path / "broker", tls=pki)
    broker.start()
    closing(SimpleNamespace(close=broker.stop))
    assert broker.url.startswith("mqtts://")
    sub = Subscriber(broker, [f"{PREFIX}/#"])
    closing(sub)

    bad = MqttSink(mqtt_config(url=broker.url, tls_ca=str(other_ca)), DEVICE, "tiny", **FAST)
    closing(bad)
    with caplog.at_level(logging.WARNING, logger="deepfer.edge.outputs.mqtt.sink"):
        bad.start()
        kept = make_events(EventBuilder(DEVICE, "tiny"), 1)[0]
        bad.publish_event(kept)
        wait_until(lambda: bad.stats()["mqtt_connect_failures"] >= 1, what="a refused connection")
    assert "certificate" in caplog.text and "mqtt.tls_ca" in caplog.text
    assert bad.stats()["mqtt_connected"] is False
    bad.flush_timeout_s = 0
    bad.close()
    assert sub.on(f"{PREFIX}/events") == [] and sub.on(f"{PREFIX}/status") == []

    good = MqttSink(
        mqtt_config(url=broker.url.replace("127.0.0.1", "localhost"), tls_ca=str(pki.ca_cert)),
        DEVICE, "tiny", **FAST,
    )  # fmt: skip
    closing(good)
    good.start()
    assert good.next_seq() == 2  # the refused attempt's event is in the outbox
    events = make_events(EventBuilder(DEVICE, "tiny", start_seq=good.next_seq()), 2)
    for ev in events:
        good.publish_event(ev)
    sub.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) > len(events), what="events over TLS")
    good.close()
    # what the refused attempt made goes out first, then the new events
    assert [m.json() for m in sub.on(f"{PREFIX}/events")] == [kept, *events]


def test_auth_password_from_env_and_wrong_password_backs_off(tmp_path, closing, caplog):
    pwfile = make_password_file(tmp_path / "passwd", "robot", "s3cret")
    broker = Mosquitto(tmp_path / "broker", password_file=pwfile)
    broker.start()
    closing(SimpleNamespace(close=broker.stop))
    sub = Subscriber(broker, [f"{PREFIX}/events"], username="robot", password="s3cret")
    closing(sub)
    url = broker.url.replace("://", "://robot@")

    wrong = MqttSink(
        mqtt_config(url=url, password_env="TEST_MQTT_PW"),
        DEVICE,
        "tiny",
        environ={**os.environ, "TEST_MQTT_PW": "nope"},
    )  # fmt: skip (default backoff: 1 s, doubling)
    closing(wrong)
    with caplog.at_level(logging.WARNING, logger="deepfer.edge.outputs.mqtt.sink"):
        wrong.start()
        wrong.publish_event(make_events(EventBuilder(DEVICE, "tiny"), 1)[0])
        time.sleep(3.6)
    failures = wrong.stats()["mqtt_connect_failures"]
    assert 2 <= failures <= 4, failures  # attempts at 0, 1, 3 s: backing off, not spinning
    assert "refused" in caplog.text and "authori" in caplog.text.lower()
    assert "environment variable TEST_MQTT_PW" in caplog.text and "nope" not in caplog.text
    # a refusal in an MQTT 5 CONNACK is the broker speaking MQTT 5: no fall back to 3.1.1
    assert "does not speak MQTT 5" not in caplog.text and "3.1.1" not in caplog.text
    wrong.flush_timeout_s = 0
    wrong.close()
    assert sub.on(f"{PREFIX}/events") == []

    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    right = MqttSink(mqtt_config(url=url, password_file=str(pw)), DEVICE, "tiny", **FAST)
    closing(right)
    right.start()
    events = make_events(EventBuilder(DEVICE, "tiny"), 1)
    for ev in events:
        right.publish_event(ev)
    sub.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) >= len(events), what="events with auth")
    right.close()


def test_systemd_credentials_directory(tmp_path, closing):
    pwfile = make_password_file(tmp_path / "passwd", "robot", "s3cret")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("s3cret")
    with Mosquitto(tmp_path / "broker", password_file=pwfile) as broker:
        sink = MqttSink(
            mqtt_config(url=broker.url, username="robot"), DEVICE, "tiny",
            environ={**os.environ, "CREDENTIALS_DIRECTORY": str(creds)}, **FAST,
        )  # fmt: skip
        closing(sink)
        sink.start()
        wait_until(lambda: sink.stats()["mqtt_connected"], what="connected with the credential")
        sink.close()


def test_home_assistant_discovery(broker, closing):
    sub = Subscriber(broker, ["homeassistant/#"])
    closing(sub)
    sink = MqttSink(mqtt_config(url=broker.url, ha_discovery=True), DEVICE, "tiny", **FAST)
    closing(sink)
    sink.start()
    sub.wait_for(lambda s: len(s.messages) >= 2, what="discovery configs")
    configs = {m.topic: m for m in sub.messages}
    assert set(configs) == {
        "homeassistant/sensor/deepfer_cam-1/emotion/config",
        "homeassistant/sensor/deepfer_cam-1/faces/config",
    }
    for msg in configs.values():
        assert msg.qos == 1
        payload = msg.json()
        assert payload["availability_topic"] == f"{PREFIX}/status"
        assert payload["state_topic"] == f"{PREFIX}/state"
        assert payload["device"]["identifiers"] == ["deepfer_cam-1"]
    assert set(LABELS) < set(
        configs["homeassistant/sensor/deepfer_cam-1/emotion/config"].json()["options"]
    )

    # Home Assistant restarts and says so: the configs come again
    n = len(sub.messages)
    sub.client.publish("homeassistant/status", "online", qos=1)
    sub.wait_for(
        lambda s: len([m for m in s.messages if m.topic.endswith("/config")]) >= n + 2,
        what="republish",
    )

    late = Subscriber(broker, ["homeassistant/sensor/#"], client_id="late")
    closing(late)
    late.wait_for(lambda s: len(s.messages) >= 2, what="retained configs")
    assert all(m.retain for m in late.messages)
    sink.close()


def test_summary_period_is_monotonic_time_whatever_the_wall_clock_does():
    """NTP setting the clock of a Pi without a real-time clock (here back a day, then forward
    a year) changes the summaries' ``ts``, not how long their periods were."""
    from deepfer.edge.outputs.summary import PeriodCounter

    mono = [500.0]
    counter = PeriodCounter(DEVICE, "m", LABELS, monotonic=lambda: mono[0])
    counter.add_frame([{"emotion": "happy", "track_id": 1}])
    mono[0] += 60.0
    first = counter.take(1_800_000_000.0)
    assert first["period_s"] == 60.0 and first["frames"] == 1
    mono[0] += 60.0
    second = counter.take(1_800_000_000.0 - 86_400 + 60)
    mono[0] += 60.0
    third = counter.take(1_800_000_000.0 + 365 * 86_400)
    for summary in (first, second, third):
        assert summary["period_s"] == 60.0 and validate_summary_times(summary)


def validate_summary_times(summary) -> bool:
    """``from`` is ``ts - period_s``."""
    from datetime import datetime

    def parse(s):
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

    return abs(parse(summary["ts"]) - parse(summary["from"]) - summary["period_s"]) < 1e-3


def test_a_full_disk_keeps_the_daemon_going_and_says_what_is_lost(broker, closing, caplog):
    """The outbox's disk fills up (SQLite's own 'database or disk is full', by capping the
    file's pages): messages wait in memory, one error says so (not one per try), and they go
    out, in order, once the outbox can be written again; what is still in memory at
    shutdown is counted and logged as lost."""
    sink = MqttSink(
        mqtt_config(url=broker.url, summary_interval_s=0, commit_interval_s=0.05),
        DEVICE, "tiny", reconnect_delay_s=(0.2, 1.0), flush_timeout_s=0.5,
    )  # fmt: skip
    closing(sink)
    sub = Subscriber(broker, [f"{PREFIX}/events"])
    closing(sub)
    sink.start()
    wait_until(lambda: sink.stats()["mqtt_connected"], what="connected")
    db = sink.outbox._db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    builder = EventBuilder(DEVICE, "tiny")
    events = make_events(builder, 10, changes=1)  # 30 events: more than a page
    with caplog.at_level(logging.WARNING, logger="deepfer.edge.outputs.mqtt.sink"):
        db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
        for ev in events:
            sink.publish_event(ev)
        wait_until(lambda: sink.stats()["mqtt_outbox_errors"] >= 3, what="failed commits")
        assert sink.stats()["mqtt_queue"] == 30 and sink.stats()["mqtt_sent"] == 0
        failures = [r for r in caplog.records if "held in memory" in r.getMessage()]
        assert len(failures) == 1, caplog.text  # said once, not at every try
        assert "database or disk is full" in failures[0].getMessage()
        assert str(sink.outbox.path) in failures[0].getMessage()
        db.execute("PRAGMA max_page_count = 1000000")  # space again
        sub.wait_for(lambda s: len(first_seqs(s)) >= 30, what="the held events")
        assert first_seqs(sub) == list(range(1, 31))
        assert "can be written again" in caplog.text
        # full again: the file cannot grow, but the pages the sent rows freed can be reused,
        # so send more than they hold (about 8 events a page), or none need fail
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
        n_tracks = 4 * (free + 2)  # 3 events a track, 12 per free page and more
        for ev in make_events(builder, n_tracks, changes=1):
            sink.publish_event(ev)
        wait_until(lambda: sink.stats()["mqtt_outbox_errors"] >= 4, what="full again")
        sink.close()
    stats = sink.stats()
    lost = stats["mqtt_lost"]  # of the second batch, those that did not fit
    assert 0 < lost <= 3 * n_tracks and stats["mqtt_undelivered"] == 0
    assert f"{lost} message(s) lost at shutdown" in caplog.text
    # and every other one was delivered, each once
    sub.wait_for(lambda s: len(first_seqs(s)) >= 30 + 3 * n_tracks - lost, what="the rest")
    assert len(first_seqs(sub)) == 30 + 3 * n_tracks - lost


def test_a_hand_made_ca_refused_by_strict_checks_is_explained(monkeypatch):
    """Python 3.13 turns on strict certificate checks: a CA made by hand without keyUsage
    (as many how-tos make one) is refused with OpenSSL's words alone, 'self-signed
    certificate in certificate chain' or 'CA cert does not include key usage extension';
    the error says what the strict check wants and where the docs show it."""
    from deepfer.edge.outputs.mqtt import client

    err = ssl.SSLCertVerificationError(1, "certificate verify failed")
    err.verify_message = "CA cert does not include key usage extension"
    monkeypatch.setattr(client, "STRICT_X509", True)
    words = client.describe_connect_error(err)
    assert "Python 3.13 and later check certificates strictly" in words
    assert "keyUsage keyCertSign" in words and "docs/mqtt.md" in words
    monkeypatch.setattr(client, "STRICT_X509", False)
    assert "check mqtt.tls_ca" in client.describe_connect_error(err)
