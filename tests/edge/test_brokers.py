"""``deepfer run --mqtt`` end to end against the brokers fleets run: mosquitto 2 (MQTT 5) and
RabbitMQ's MQTT plugin (a clusterable broker; 3.1.1 only in Debian's 3.10, so the sink falls
back from MQTT 5). Status and last will, events, a broker restart mid-run. Each broker is
started once per session (tests/edge/conftest.py); each test uses a device id of its own."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from mosquitto import Subscriber, unique_event_seqs

from deepfer.edge.labels import LABELS
from deepfer.edge.messages import validate_event

DEEPFER = [sys.executable, "-m", "deepfer"]
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def video(media_dir) -> Path:
    path = media_dir / "woman2.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture
def device(any_broker) -> str:
    return f"{any_broker.name}-{os.getpid()}-{next(_ids)}"


def run_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("DEEPFER_") or k == "DEEPFER_DATA"
    }
    env.update(
        DEEPFER_TRACKER_IOU_THRESHOLD="0.9",  # a jumpy tracker: a steady stream of events
        DEEPFER_TRACKER_MAX_SPEED="0",  # (joined by overlap only)
        DEEPFER_TRACKER_MIN_HITS="1",
        DEEPFER_TRACKER_MAX_MISSED_S="0",
        DEEPFER_RUN_STATS_INTERVAL_S="0",
        DEEPFER_MQTT_SUMMARY_INTERVAL_S="0",
    )
    env.update(extra)
    return env


def start_daemon(model, video, broker, device, tmp_path, *args) -> subprocess.Popen:
    cmd = [*DEEPFER, "-v", "run", "--source", str(video), "--model", str(model),
           "--mqtt", broker.url, "--device-id", device, "--stats-json",
           str(tmp_path / "stats.json"), "--state-dir", str(tmp_path / "state"), *args]  # fmt: skip
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=run_env()
    )


def sent(tmp_path: Path) -> int:
    return json.loads((tmp_path / "stats.json").read_text())["sinks"]["mqtt"]["mqtt_sent"]


def test_status_last_will_and_events(any_broker, device, tmp_path, tiny_tflite_model, video):
    prefix = f"deepfer/{device}"
    sub = Subscriber(any_broker, [f"{prefix}/#"], client_id=f"sub-{device}")
    try:
        runs = []
        for sig, code in ((signal.SIGTERM, 0), (signal.SIGKILL, -9)):
            sub.messages.clear()
            proc = start_daemon(
                tiny_tflite_model, video, any_broker, device, tmp_path, "--realtime", "--loop"
            )
            sub.wait_for(lambda s: len(s.on(f"{prefix}/events")) >= 3, timeout=30, what="events")
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == code, err
            # SIGKILL: the broker publishes the last will (after its keepalive at worst)
            sub.wait_for(lambda s: len(s.on(f"{prefix}/status")) >= 2, timeout=60, what="offline")
            assert [m.payload for m in sub.on(f"{prefix}/status")] == [b"online", b"offline"]
            events = [m.json() for m in sub.on(f"{prefix}/events")]
            assert all(validate_event(e, LABELS) == [] for e in events)
            runs.append(events)
            if sig == signal.SIGTERM:  # a clean stop: every track ended, every event sent
                assert events[-1]["type"] == "end"
                seqs = unique_event_seqs(sub, f"{prefix}/events")
                assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == sent(tmp_path)
            if any_broker.name == "rabbitmq":
                assert "does not speak MQTT 5: using MQTT 3.1.1" in err
            else:
                assert "MQTT 3.1.1" not in err
        # seq went on across the restart, with a new run_id
        assert runs[1][0]["seq"] == runs[0][-1]["seq"] + 1
        assert runs[1][0]["run_id"] != runs[0][0]["run_id"]
    finally:
        sub.close()
    late = Subscriber(any_broker, [f"{prefix}/status"], client_id=f"late-{device}")
    try:
        late.wait_for(lambda s: s.messages, timeout=5, what="the retained status")
        assert [(m.payload, m.retain) for m in late.messages] == [(b"offline", True)]
    finally:
        late.close()


def test_broker_restart_mid_run_loses_nothing(
    any_broker, device, tmp_path, tiny_tflite_model, video
):
    prefix = f"deepfer/{device}"
    # a subscriber whose session (and queued QoS 1 messages) the broker keeps while it restarts
    sub = Subscriber(any_broker, [f"{prefix}/events"], client_id=f"sub-{device}", session=True)
    try:
        proc = start_daemon(
            tiny_tflite_model, video, any_broker, device, tmp_path, "--realtime", "--loop"
        )
        sub.wait_for(lambda s: s.on(f"{prefix}/events"), timeout=30, what="a first event")
        any_broker.stop()
        time.sleep(1.5)
        any_broker.start()
        before = len(unique_event_seqs(sub, f"{prefix}/events"))
        sub.wait_for(
            lambda s: len(unique_event_seqs(s, f"{prefix}/events")) >= before + 10,
            timeout=60,
            what="events after the restart",
        )
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        total = sent(tmp_path)
        sub.wait_for(
            lambda s: len(unique_event_seqs(s, f"{prefix}/events")) >= total,
            timeout=30,
            what="every event",
        )
    finally:
        sub.close()
    mqtt_lines = [line for line in err.splitlines() if "MQTT" in line]
    assert "lost" in err and "again" in err, mqtt_lines  # it noticed the outage, came back
    assert unique_event_seqs(sub, f"{prefix}/events") == list(range(1, total + 1))


def test_mqtt5_state_expires_and_session_ends_with_the_connection(
    session_mosquitto, tmp_path, tiny_tflite_model, video
):
    """On an MQTT 5 broker: state messages carry a message expiry; the session expiry is 0."""
    device = f"v5-{os.getpid()}"
    got: list = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, msg: got.append(msg)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"deepfer/{device}/state")
    client.connect("127.0.0.1", session_mosquitto.port)
    client.loop_start()
    try:
        proc = start_daemon(
            tiny_tflite_model, video, session_mosquitto, device, tmp_path, "--realtime",
            "--max-frames", "30",
        )  # fmt: skip
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.loop_stop()
        client.disconnect()
    assert got, "no state message"
    expiry = getattr(got[0].properties, "MessageExpiryInterval", None)
    assert expiry is not None and 0 < expiry <= 10
