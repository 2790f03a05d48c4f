"""``deepfer run --mqtt`` end to end (subprocess) against a real mosquitto: status, events,
summaries, Home Assistant discovery, a broker restart mid-run, a tiny queue that overflows,
TLS and password auth, and bad device ids / prefixes refused at start."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

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

from deepfer.edge.labels import LABELS
from deepfer.edge.messages import validate_event

pytestmark = requires_mosquitto

DEVICE = "shelf-7"
PREFIX = f"deepfer/{DEVICE}"
DEEPFER = [sys.executable, "-m", "deepfer"]


@pytest.fixture(scope="module")
def video(media_dir) -> Path:
    path = media_dir / "woman2.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


def run_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("DEEPFER_") or k == "DEEPFER_DATA"
    }
    # a jumpy tracker (a track ends when its box moves a little: joined by overlap only) so
    # that the one face of a short clip gives a stream of start/end events: 18 in woman2's
    # first 180 frames, unevenly (none for 2.6 s after the first)
    env.update(
        DEEPFER_TRACKER_IOU_THRESHOLD="0.9",
        DEEPFER_TRACKER_MAX_SPEED="0",
        DEEPFER_TRACKER_MIN_HITS="1",
        DEEPFER_TRACKER_MAX_MISSED_S="0",
        DEEPFER_RUN_STATS_INTERVAL_S="0",
    )
    env.update(extra)
    return env


#: Daemons started with ``wait=False`` in the running test (killed after it, whatever happened).
_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_daemon_left_behind():
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:  # the test failed before it stopped its daemon (--loop runs on)
            proc.kill()
            proc.communicate(timeout=30)


def deepfer_run(
    model: Path, video: Path, url: str, tmp_path: Path, *args: str, env=None, wait: bool = True,
    wrap: tuple[str, ...] = (),
):  # fmt: skip
    cmd = [*wrap, *DEEPFER, "-v", "run", "--source", str(video), "--model", str(model), "--mqtt", url,
           "--device-id", DEVICE, "--stats-json", str(tmp_path / "stats.json"), *args]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or run_env()
    )
    if not wait:
        _STARTED.append(proc)
        return proc
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def mqtt_stats(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "stats.json").read_text())["sinks"]["mqtt"]


def validate_ts(ts) -> bool:
    return isinstance(ts, str) and datetime.fromisoformat(ts.replace("Z", "+00:00")).year > 2000


def event_seqs(sub: Subscriber) -> list[int]:
    """seq in arrival order, QoS 1 redeliveries (repeats) left out."""
    return unique_event_seqs(sub, f"{PREFIX}/events")


def test_run_publishes_status_events_summaries_and_discovery(tmp_path, tiny_tflite_model, video):
    with Mosquitto(tmp_path / "broker") as broker:
        sub = Subscriber(broker, [f"{PREFIX}/#", "homeassistant/#"])
        try:
            env = run_env(DEEPFER_MQTT_SUMMARY_INTERVAL_S="0.5")
            rc, out, err = deepfer_run(
                tiny_tflite_model, video, broker.url, tmp_path, "--ha-discovery", "--realtime",
                "--max-frames", "90", env=env,
            )  # fmt: skip
            assert rc == 0, err
            sub.wait_for(lambda s: len(s.on(f"{PREFIX}/status")) >= 2, what="status offline")
            time.sleep(0.2)
        finally:
            sub.close()
        late = Subscriber(broker, [f"{PREFIX}/#", "homeassistant/#"], client_id="late")
        time.sleep(0.5)
        late.close()

    assert out == ""  # with a broker, nothing on stdout
    assert [m.payload for m in sub.on(f"{PREFIX}/status")] == [b"online", b"offline"]
    events = [m.json() for m in sub.on(f"{PREFIX}/events")]
    assert events, "no events"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(validate_event(e, LABELS) == [] for e in events), events
    assert events[0]["type"] == "start" and events[-1]["type"] == "end"
    assert {e["device_id"] for e in events} == {DEVICE}
    assert not any(m.retain for m in sub.on(f"{PREFIX}/events"))

    summaries = [m.json() for m in sub.on(f"{PREFIX}/summary")]
    assert len(summaries) >= 3  # 3 s of video at 0.5 s, plus the last at exit
    assert sum(s["frames"] for s in summaries) == 90
    assert sum(s["events"]["start"] for s in summaries) == sum(e["type"] == "start" for e in events)
    assert sum(sum(s["emotions"].values()) for s in summaries) > 0
    received = sub.on(f"{PREFIX}/state")
    states = [m.json() for m in received]
    span = received[-1].at - received[0].at
    assert 5 <= len(states) <= 5 * span + 3, (len(states), span)  # at most 5 Hz, not every frame
    assert all(validate_ts(s["ts"]) for s in states)
    assert any(s["count"] == 1 and s["dominant"] in LABELS for s in states)

    stats = mqtt_stats(tmp_path)
    assert stats["mqtt_sent"] == len(events) and stats["mqtt_dropped"] == 0

    retained = {m.topic: m for m in late.messages if m.retain}
    assert retained[f"{PREFIX}/status"].payload == b"offline"
    configs = [m.json() for t, m in retained.items() if t.startswith("homeassistant/")]
    assert len(configs) == 2
    assert all(c["availability_topic"] == f"{PREFIX}/status" for c in configs)
    assert not any(t.endswith(("/events", "/summary", "/state")) for t in retained)


def _mqtt_stats_lines(proc: subprocess.Popen):
    """``(connected, messages made: sent + queued, line)`` of each stats line the daemon
    logs (stderr), as it logs them; every other line as ``(None, None, line)``."""
    for line in proc.stderr:
        m = re.search(r"\| mqtt connected=(\w+) .*?\bqueue=(\d+) .*?\bsent=(\d+)", line)
        yield (m[1] == "True", int(m[2]) + int(m[3]), line) if m else (None, None, line)


def test_run_survives_a_broker_restart_in_order(tmp_path, tiny_tflite_model, video):
    """The broker stays away until the daemon has made an event meanwhile (its stats line
    says so): a fixed outage (2 s) could fall where the clip gives none (after its first
    event the next comes 2.6 s later), and then failed though nothing was wrong."""
    broker = Mosquitto(tmp_path / "broker", persistence=True)
    broker.start()
    sub = Subscriber(broker, [f"{PREFIX}/events"], client_id="restart-sub", session=True)
    try:
        env = run_env(DEEPFER_MQTT_SUMMARY_INTERVAL_S="0", DEEPFER_RUN_STATS_INTERVAL_S="0.1")
        proc = deepfer_run(
            tiny_tflite_model, video, broker.url, tmp_path, "--realtime", "--max-frames", "180",
            env=env, wait=False,
        )  # fmt: skip
        sub.wait_for(lambda s: s.on(f"{PREFIX}/events"), timeout=30, what="a first event")
        broker.stop()
        down = time.time()
        read, away_at, made_away = [], None, False
        hung = threading.Timer(60, proc.kill)  # a daemon that hangs fails here, not the CI job
        hung.start()
        try:
            for connected, made, line in _mqtt_stats_lines(proc):
                read.append(line)
                if connected is False:
                    away_at = made if away_at is None else away_at
                    if made_away := made > away_at:  # an event made with the broker known away
                        break
        finally:
            hung.cancel()
        broker.start()
        up = time.time()
        out, err = proc.communicate(timeout=60)
        err = "".join(read) + err
        assert made_away, f"no event made with the broker away before the run ended: {err}"
        assert proc.returncode == 0, err
        stats = mqtt_stats(tmp_path)
        total = stats["mqtt_sent"]
        sub.wait_for(lambda s: len(event_seqs(s)) >= total, timeout=15, what="every event")
    finally:
        sub.close()
        broker.stop()
    assert stats["mqtt_reconnects"] >= 1 and stats["mqtt_dropped"] == 0, stats
    assert stats["mqtt_undelivered"] == 0
    seqs = event_seqs(sub)
    assert seqs == list(range(1, total + 1)), seqs  # all of them, in order
    events = {m.json()["seq"]: m.json() for m in sub.on(f"{PREFIX}/events")}
    stamps = [
        datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp() for e in events.values()
    ]
    assert any(down <= t <= up for t in stamps), "no event was made while the broker was away"
    assert "connection to" in err and "lost" in err


def test_run_tiny_queue_drops_oldest_and_reports(tmp_path, tiny_tflite_model, video):
    url = Mosquitto(tmp_path / "broker").url  # never started: the broker stays away
    env = run_env(
        DEEPFER_MQTT_QUEUE_SIZE="2",
        DEEPFER_MQTT_SUMMARY_INTERVAL_S="0",
        DEEPFER_RUN_STATS_INTERVAL_S="0.001",
    )
    t0 = time.monotonic()
    rc, out, err = deepfer_run(
        tiny_tflite_model, video, url, tmp_path, "--max-frames", "150", env=env
    )
    assert rc == 0, err
    assert time.monotonic() - t0 < 60  # start-up never waited for the broker
    stats = mqtt_stats(tmp_path)
    assert stats["mqtt_connected"] is False and stats["mqtt_sent"] == 0
    assert stats["mqtt_dropped"] >= 1 and stats["mqtt_undelivered"] == 2, stats
    # the first drop is logged: by the queue, or by the outbox where the sender thread had
    # already committed the oldest; which, and so the oldest's seq (1 or 2 in CI under load),
    # is up to the threads' timing
    mqtt_log = "\n".join(line for line in err.splitlines() if "MQTT" in line)
    assert re.search(
        r"(queue|outbox) full \(2, .*\): dropped the oldest event seq=\d+;", mqtt_log
    ), mqtt_log
    assert "not delivered" in err and "cannot connect" in err
    # the periodic stats line carries the sinks' figures too
    assert re.search(r"stats: fps .* \| mqtt connected=False queue=\d+ dropped=", err)


def test_run_tls_and_password(tmp_path, tiny_tflite_model, video):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    pki = make_pki(tmp_path / "pki")
    other_ca, _ = make_ca(tmp_path / "other", "other")
    pwfile = make_password_file(tmp_path / "passwd", "robot", "s3cret")
    with Mosquitto(tmp_path / "broker", tls=pki, password_file=pwfile) as broker:
        url = broker.url.replace("://", "://robot@")
        sub = Subscriber(broker, [f"{PREFIX}/#"], username="robot", password="s3cret")
        try:
            # a broker whose certificate we cannot verify: refused, nothing sent
            env = run_env(DEEPFER_MQTT_TLS_CA=str(other_ca), DEEPFER_MQTT_PASSWORD="s3cret")
            rc, _, err = deepfer_run(
                tiny_tflite_model, video, url, tmp_path, "--max-frames", "20", env=env
            )
            assert rc == 0, err
            assert "certificate cannot be verified" in err and "mqtt.tls_ca" in err
            assert sub.messages == []
            # the right CA and password (from the environment): delivered
            env = run_env(DEEPFER_MQTT_TLS_CA=str(pki.ca_cert), DEEPFER_MQTT_PASSWORD="s3cret")
            rc, _, err = deepfer_run(
                tiny_tflite_model, video, url, tmp_path, "--max-frames", "40", env=env
            )
            assert rc == 0, err
            sub.wait_for(lambda s: len(s.on(f"{PREFIX}/status")) >= 2, what="status offline")
            assert mqtt_stats(tmp_path)["mqtt_sent"] == len(sub.on(f"{PREFIX}/events")) > 0
            assert "s3cret" not in err
        finally:
            sub.close()


@pytest.mark.parametrize(
    "flags, env, words",
    [
        (["--device-id", "a/b"], {}, "device_id = 'a/b'"),
        (["--device-id", "cam+1"], {}, "wildcards"),
        (["--device-id", "$SYS"], {}, "device_id = '$SYS'"),
        ([], {"DEEPFER_MQTT_PREFIX": "store//{device_id}"}, "mqtt.prefix = 'store//{device_id}'"),
        ([], {"DEEPFER_MQTT_PREFIX": "store/#"}, "wildcards"),
        (["--mqtt", "mqtt://robot:hunter2@127.0.0.1"], {}, "no password in the URL"),
    ],
)
def test_run_refuses_bad_ids_and_prefixes(flags, env, words):
    cmd = [*DEEPFER, "run", "--mqtt", "mqtt://127.0.0.1:1", *flags, "--print-config"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=run_env(**env), timeout=60)
    assert proc.returncode == 2, proc.stdout
    assert words in proc.stderr, proc.stderr
    assert "hunter2" not in proc.stderr  # a password in the URL is never echoed


def test_sigterm_says_offline_and_sigkill_leaves_the_last_will(tmp_path, tiny_tflite_model, video):
    with Mosquitto(tmp_path / "broker") as broker:
        sub = Subscriber(broker, [f"{PREFIX}/status", f"{PREFIX}/events"])
        try:
            for sig, code in ((signal.SIGTERM, 0), (signal.SIGKILL, -9)):
                sub.messages.clear()
                proc = deepfer_run(
                    tiny_tflite_model, video, broker.url, tmp_path, "--realtime", "--loop",
                    env=run_env(DEEPFER_MQTT_SUMMARY_INTERVAL_S="0"), wait=False,
                )  # fmt: skip
                sub.wait_for(
                    lambda s: len(s.on(f"{PREFIX}/events")) >= 3, timeout=30, what="events"
                )
                proc.send_signal(sig)
                _, err = proc.communicate(timeout=30)
                assert proc.returncode == code, err
                sub.wait_for(
                    lambda s: len(s.on(f"{PREFIX}/status")) >= 2, timeout=5, what="offline"
                )
                assert [m.payload for m in sub.on(f"{PREFIX}/status")] == [b"online", b"offline"]
                if sig == signal.SIGTERM:  # a clean stop: every track ended, every event sent
                    events = [m.json() for m in sub.on(f"{PREFIX}/events")]
                    assert events[-1]["type"] == "end"
                    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        finally:
            sub.close()


def test_outbox_events_made_without_a_broker_arrive_once_after_restarts(
    tmp_path, tiny_tflite_model, video
):
    """The outbox scenario: events made with no broker, the daemon stopped (twice), the broker
    started, the daemon started again: every event arrives exactly once per (device_id, seq),
    the old ones first and in order, seq growing across the runs, one run_id per run."""
    broker = Mosquitto(tmp_path / "broker")  # its port, not started yet
    state = tmp_path / "state"
    env = run_env(DEEPFER_MQTT_SUMMARY_INTERVAL_S="0")
    made = []
    for _ in range(2):
        rc, _, err = deepfer_run(
            tiny_tflite_model, video, broker.url, tmp_path, "--max-frames", "60",
            "--state-dir", str(state), env=env,
        )  # fmt: skip
        assert rc == 0, err
        stats = mqtt_stats(tmp_path)
        assert stats["mqtt_sent"] == 0 and stats["mqtt_dropped"] == 0
        made.append(stats["mqtt_undelivered"])
        assert "kept in the outbox" in err
    assert made[0] > 0 and made[1] > made[0]  # the second run kept the first run's too
    with broker:
        sub = Subscriber(broker, [f"{PREFIX}/events"])
        try:
            rc, _, err = deepfer_run(
                tiny_tflite_model, video, broker.url, tmp_path, "--max-frames", "30",
                "--state-dir", str(state), env=env,
            )  # fmt: skip
            assert rc == 0, err
            stats = mqtt_stats(tmp_path)
            assert stats["mqtt_resumed"] == made[1] and stats["mqtt_undelivered"] == 0
            total = stats["mqtt_sent"]
            assert total > made[1]
            sub.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) >= total, what="every event")
            time.sleep(0.5)  # any repeat would come now
        finally:
            sub.close()
    got = [m.json() for m in sub.on(f"{PREFIX}/events")]
    keys = [(e["device_id"], e["seq"]) for e in got]
    assert len(keys) == len(set(keys)) == total  # exactly once
    assert [e["seq"] for e in got] == list(range(1, total + 1))  # in order, across three runs
    run_ids = list(dict.fromkeys(e["run_id"] for e in got))
    assert len(run_ids) == 3
    assert all(validate_event(e, LABELS) == [] for e in got)
    assert (state / f"mqtt-outbox-{DEVICE}.sqlite3").is_file()


def test_run_refuses_a_state_dir_it_cannot_use(tmp_path, tiny_tflite_model, video):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    url = Mosquitto(tmp_path / "broker").url
    rc, _, err = deepfer_run(
        tiny_tflite_model, video, url, tmp_path, "--max-frames", "5",
        "--state-dir", str(blocker / "state"),
    )  # fmt: skip
    assert rc == 2, err
    assert f"MQTT outbox {blocker / 'state'}" in err and "run.state_dir" in err
    assert "Traceback" not in err


def on_a_full_disk(folder: Path, files: Path, read_only: bool = False) -> tuple[str, ...]:
    """A prefix that runs a command with ``folder`` on a real full disk: a 64 KiB tmpfs
    mounted there in a private mount namespace (``unshare``: no root needed, and nothing
    outside sees it), given a copy of ``files``' files and then filled up; ``read_only``:
    then remounted read-only (0 bytes free, as squashfs or an ext4 remounted after errors)."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode:
        pytest.skip("no unshare -rm here (user namespaces) for a small file system")
    then = 'mount -o remount,ro "$d" && ' if read_only else ""
    script = (
        'd=$1; f=$2; shift 2; mount -t tmpfs -o size=64k deepfer-full "$d" && cp "$f"/* "$d"/ '
        f'&& {{ cat /dev/zero > "$d/filler" 2>/dev/null; {then}exec "$@"; }}'
    )
    return ("unshare", "-rm", "sh", "-c", script, "sh", str(folder), str(files))


def test_a_full_disk_at_start_exits_75_to_be_tried_again(tmp_path, tiny_tflite_model, video):
    """The state folder's disk is full at start (with the outbox of the last run in it:
    SQLite then says only 'disk I/O error'): not a wrong setting (exit 2, which the unit does
    not retry, and 'move it away' would lose what it holds) but exit 75, naming the folder
    and the space left, so that systemd tries again until there is room."""
    from deepfer.edge.outputs.mqtt.outbox import New, Outbox

    last_run = tmp_path / "last-run"
    with Outbox(last_run / f"mqtt-outbox-{DEVICE}.sqlite3") as box:
        box.commit([New(f"{PREFIX}/events", b"{}", 1, "event", 7, 0.0)])  # never delivered
    state = tmp_path / "state"
    state.mkdir()
    rc, _, err = deepfer_run(
        tiny_tflite_model, video, Mosquitto(tmp_path / "broker").url, tmp_path,
        "--max-frames", "5", "--state-dir", str(state), wrap=on_a_full_disk(state, last_run),
    )  # fmt: skip
    assert rc == 75, err
    assert f"MQTT outbox {state / f'mqtt-outbox-{DEVICE}.sqlite3'}: the disk is full" in err
    assert f"bytes free on the disk of {state}" in err and "move it away" not in err
    assert "Traceback" not in err
    # the same disk read-only (0 bytes free too): a wrong setting, exit 2, not tried again
    rc, _, err = deepfer_run(
        tiny_tflite_model, video, Mosquitto(tmp_path / "broker").url, tmp_path,
        "--max-frames", "5", "--state-dir", str(state),
        wrap=on_a_full_disk(state, last_run, read_only=True),
    )  # fmt: skip
    assert rc == 2, err
    assert "cannot write in the state folder (set run.state_dir)" in err, err
    assert "Read-only file system" in err and "disk is full" not in err, err


def test_sigkill_with_the_broker_away_keeps_what_was_committed(tmp_path, tiny_tflite_model, video):
    """SIGKILL (a power cut for the daemon) while the broker is away: every event committed
    before it is delivered by the next start, once, in order; seq goes on from there."""
    import sqlite3

    broker = Mosquitto(tmp_path / "broker")
    state = tmp_path / "state"
    env = run_env(DEEPFER_MQTT_SUMMARY_INTERVAL_S="0")
    proc = deepfer_run(
        tiny_tflite_model, video, broker.url, tmp_path, "--realtime", "--loop",
        "--state-dir", str(state), env=env, wait=False,
    )  # fmt: skip
    db_path = state / f"mqtt-outbox-{DEVICE}.sqlite3"
    deadline = time.monotonic() + 30
    committed = 0
    try:
        while time.monotonic() < deadline and committed < 20:
            time.sleep(0.5)
            if db_path.is_file():
                with sqlite3.connect(db_path) as db:
                    try:
                        committed = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
                    except sqlite3.OperationalError:  # the file is there, its table not yet
                        continue
    finally:  # the daemon loops its file: never leave it running
        proc.kill()
        proc.communicate(timeout=30)
    with sqlite3.connect(db_path) as db:
        kept = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        next_seq = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]
    assert kept >= 20 and next_seq == kept + 1
    with broker:
        sub = Subscriber(broker, [f"{PREFIX}/events"])
        try:
            rc, _, err = deepfer_run(
                tiny_tflite_model, video, broker.url, tmp_path, "--max-frames", "20",
                "--state-dir", str(state), env=env,
            )  # fmt: skip
            assert rc == 0, err
            total = mqtt_stats(tmp_path)["mqtt_sent"]
            assert mqtt_stats(tmp_path)["mqtt_resumed"] == kept
            sub.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) >= total, what="every event")
            time.sleep(0.3)
        finally:
            sub.close()
    got = [m.json()["seq"] for m in sub.on(f"{PREFIX}/events")]
    assert got == list(range(1, total + 1)) and total > kept
