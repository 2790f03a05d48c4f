"""Soak: nothing lost over many minutes of broker outages and daemon restarts.

The daemon (``deepfer run``) plays woman2.mp4 in a loop at its own frame rate and publishes
to a real mosquitto on a free loopback port. Every minute the broker is stopped and started
again; the daemon itself is stopped once with SIGTERM (at 20 % of the run) and once with
SIGKILL (at 40 %) and started again at once (same state folder: its outbox and seq). A
subscriber with a persistent session records every event. At the end the daemon is stopped
with SIGTERM and the subscriber waits for the rest.

    python benchmarks/soak.py --minutes 30 --json benchmarks/results/soak_30min.json

Reported: events produced (the outbox's persisted ``next_seq`` - 1: seq is contiguous across
restarts) and received (unique seq), lost (seq never received), duplicates (repeats, QoS 1 is
at least once), the daemon's RSS every 10 s and its CPU time. Targets (issue #15): lost = 0;
the peak RSS at the end of the longest-lived daemon process within 5 % of its peak after its
first 2 minutes.

Not measurable by seq: events made in the last ``mqtt.commit_interval_s`` (1 s) before the
SIGKILL were never committed nor published and their seq numbers are given again (see
docs/mqtt.md, durability). The broker is stopped with SIGTERM (its persistence saved), so a
message the broker acknowledged is not lost inside the broker: what is measured is the daemon.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from results_file import write_json

DEVICE = "soak"
ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """mosquitto with persistence, on a free loopback port; start/stop keep the port."""

    def __init__(self, folder: Path):
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
            f"persistence true\npersistence_location {folder}/\nmax_queued_messages 1000000\n"
            "log_dest none\n"
        )

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.3).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


class Recorder:
    """A persistent-session subscriber: every event's seq, in arrival order."""

    def __init__(self, port: int):
        self.seqs: list[int] = []
        self.run_ids: set[str] = set()
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="soak-recorder", clean_session=False
        )
        self.client.reconnect_delay_set(0.1, 1.0)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"deepfer/{DEVICE}/events", 1)
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        event = json.loads(msg.payload)
        with self.lock:
            self.seqs.append(event["seq"])
            self.run_ids.add(event["run_id"])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def proc_sample(pid: int) -> tuple[float, float] | None:
    """(RSS MB, CPU seconds) of a live process, from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return rss_pages * PAGE / 1e6, (int(stat[11]) + int(stat[12])) / TICK


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--json", type=Path, default=None, metavar="FILE")
    ap.add_argument(
        "--video", type=Path, default=None, help="default: $DEEPFER_DATA/media/woman2.mp4"
    )
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "deepfer_int8.tflite")
    ap.add_argument("--broker-every-s", type=float, default=60.0)
    args = ap.parse_args(argv)
    video = args.video or Path(os.environ.get("DEEPFER_DATA", "")) / "media" / "woman2.mp4"
    if not video.is_file():
        print(f"error: no video {video} (set DEEPFER_DATA or --video)", file=sys.stderr)
        return 2
    total_s = args.minutes * 60
    work = Path(tempfile.mkdtemp(prefix="deepfer-soak-"))
    broker = Broker(work)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPFER_MQTT")}
    env.update(
        DEEPFER_TRACKER_IOU_THRESHOLD="0.9",  # a jumpy tracker: a steady stream of events
        DEEPFER_TRACKER_MAX_SPEED="0",  # (joined by overlap only)
        DEEPFER_TRACKER_MIN_HITS="1",
        DEEPFER_TRACKER_MAX_MISSED_S="0",
        DEEPFER_RUN_STATS_INTERVAL_S="60",
        DEEPFER_MQTT_SUMMARY_INTERVAL_S="0",
    )
    cmd = [sys.executable, "-m", "deepfer", "run", "--source", str(video), "--model",
           str(args.model), "--loop", "--realtime", "--mqtt", f"mqtt://127.0.0.1:{broker.port}",
           "--device-id", DEVICE, "--state-dir", str(work / "state")]  # fmt: skip
    log = open(work / "daemon.log", "a")  # noqa: SIM115

    def start_daemon() -> subprocess.Popen:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    broker.start()
    recorder = Recorder(broker.port)
    t0 = time.monotonic()
    daemon = start_daemon()
    daemon_started = t0
    rss: list[dict] = []
    cpu_done = 0.0
    last_cpu: dict[int, float] = {}
    actions: list[dict] = []
    stops = {0.2 * total_s: signal.SIGTERM, 0.4 * total_s: signal.SIGKILL}
    next_broker = args.broker_every_s
    next_sample = 0.0
    try:
        while (now := time.monotonic() - t0) < total_s:
            if now >= next_sample:
                sample = proc_sample(daemon.pid)
                if sample:
                    rss.append({"t_s": round(now, 1), "pid": daemon.pid,
                                "age_s": round(time.monotonic() - daemon_started, 1),
                                "rss_mb": round(sample[0], 1)})  # fmt: skip
                    last_cpu[daemon.pid] = sample[1]
                next_sample += 10.0
            for at, sig in list(stops.items()):
                if now >= at:
                    del stops[at]
                    sample = proc_sample(daemon.pid)
                    if sample:
                        last_cpu[daemon.pid] = sample[1]
                    daemon.send_signal(sig)
                    daemon.wait(60)
                    cpu_done += last_cpu.pop(daemon.pid, 0.0)
                    actions.append({"t_s": round(now, 1), "daemon": signal.Signals(sig).name,
                                    "exit": daemon.returncode})  # fmt: skip
                    daemon = start_daemon()
                    daemon_started = time.monotonic()
            if now >= next_broker:
                next_broker += args.broker_every_s
                broker.stop()
                time.sleep(2.0)
                broker.start()
                actions.append({"t_s": round(now, 1), "broker": "stopped 2 s, started"})
            time.sleep(0.2)
        sample = proc_sample(daemon.pid)
        if sample:
            last_cpu[daemon.pid] = sample[1]
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        cpu_done += last_cpu.pop(daemon.pid, 0.0)
        actions.append({"t_s": round(time.monotonic() - t0, 1), "daemon": "SIGTERM (end)",
                        "exit": daemon.returncode})  # fmt: skip
        db = sqlite3.connect(work / "state" / f"mqtt-outbox-{DEVICE}.sqlite3")
        produced = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0] - 1
        left = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        db.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with recorder.lock:
                if len(set(recorder.seqs)) >= produced:
                    break
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        recorder.close()
        broker.stop()
        log.close()
    with recorder.lock:
        seqs = list(recorder.seqs)
        run_ids = len(recorder.run_ids)
    unique = set(seqs)
    lost = sorted(set(range(1, produced + 1)) - unique)
    first_arrival = list(dict.fromkeys(seqs))
    # RSS: the longest-lived daemon process, its peak after 2 minutes vs at its end
    by_pid: dict[int, list[dict]] = {}
    for s in rss:
        by_pid.setdefault(s["pid"], []).append(s)
    longest = max(by_pid.values(), key=len) if by_pid else []
    early = [s["rss_mb"] for s in longest if s["age_s"] <= 120]
    growth = None
    if longest and longest[-1]["age_s"] > 150 and early:
        growth = round(100 * (max(s["rss_mb"] for s in longest) / max(early) - 1), 2)
    result = {
        "minutes": args.minutes,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "video": video.name,
        "model": args.model.name,
        "produced": produced,
        "received_unique": len(unique),
        "received_total": len(seqs),
        "lost": len(lost),
        "lost_seqs": lost[:50],
        "duplicates": len(seqs) - len(unique),
        "first_arrivals_in_seq_order": first_arrival == sorted(first_arrival),
        "left_in_outbox": left,
        "run_ids_seen": run_ids,
        "actions": actions,
        "broker_restarts": sum(1 for a in actions if "broker" in a),
        "daemon_cpu_s": round(cpu_done, 1),
        "daemon_cpu_share": round(cpu_done / (time.monotonic() - t0), 3),
        "rss_samples": rss,
        "rss_longest_process_growth_pct": growth,
        "targets": {"lost": 0, "rss_growth_pct_max": 5.0},
        "ok": not lost and (growth is None or growth <= 5.0),
        "notes": "broker stopped with SIGTERM (persistence on) every broker_every_s; events "
        "made in the last commit interval (1 s) before the daemon's SIGKILL are not visible by seq",
    }
    summary = {k: v for k, v in result.items() if k not in ("rss_samples", "actions")}
    print(json.dumps(summary, indent=2))
    write_json(args.json, result)
    shutil.rmtree(work, ignore_errors=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
