"""Fleet load: many devices publishing to one local broker.

N devices (default 50), each a real :class:`~deepfer.edge.outputs.mqtt.sink.MqttSink` with
its own client id, outbox and seq, fed synthetic faces in one process: every device makes
``--events-per-s`` events a second (start/change/end of synthetic tracks) and a state message
per frame at ``--fps`` (the sink rate-limits it to 5 Hz), for ``--minutes``. A subscriber
records every event. Reports: every event arrived (per device: seq 1..n), per-device order
kept, duplicates, throughput, delivery latency (event ts -> arrival), the broker's CPU.

    python benchmarks/fleet.py --devices 50 --minutes 2 --json benchmarks/results/fleet_50x2min.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from results_file import write_json
from soak import Broker, proc_sample

from deepfer.edge.capture.frame import frame_from_image
from deepfer.edge.config import MqttConfig
from deepfer.edge.labels import LABELS
from deepfer.edge.messages import EventBuilder
from deepfer.edge.outputs.mqtt.sink import MqttSink
from deepfer.edge.pipeline import Face, FrameResult


class Recorder:
    def __init__(self, port: int):
        self.events: dict[str, list[tuple[int, float, float]]] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fleet-recorder")
        self.ready = threading.Event()

        def on_connect(c, u, f, rc, p):
            c.subscribe("fleet/+/events", 1)

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        self.ready.wait(10)

    def _on_message(self, client, userdata, msg) -> None:
        now = time.time()
        e = json.loads(msg.payload)
        ts = datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp()
        with self.lock:
            self.events.setdefault(e["device_id"], []).append((e["seq"], ts, now))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def feed(sink: MqttSink, builder: EventBuilder, rate: float, fps: float, stop: threading.Event,
         last_seq: dict[str, int]) -> None:  # fmt: skip
    """Synthetic tracks: start, a few changes, end; a frame with the face in between."""
    scores = dict.fromkeys(LABELS, 0.05)
    frame = frame_from_image(np.zeros((48, 64), np.uint8))
    period = 1.0 / rate
    next_event = time.monotonic()
    next_frame = time.monotonic()
    track, step = 1, 0
    while not stop.is_set():
        now = time.monotonic()
        if now >= next_event:
            kind = "start" if step == 0 else ("end" if step == 4 else "change")
            emotion = LABELS[(track + step) % len(LABELS)]
            ev = builder.event(kind, track, emotion, 0.8, {**scores, emotion: 0.8}, [10, 20, 30, 40],
                               dwell_s=1.0 if kind == "end" else None,
                               histogram={emotion: 5} if kind == "end" else None)  # fmt: skip
            sink.publish_event(ev)
            last_seq[sink.device_id] = ev["seq"]
            step += 1
            if step == 5:
                track, step = track + 1, 0
            next_event += period
        if now >= next_frame:
            face = Face((10, 20, 30, 40), "happy", 0.8, {"happy": 0.8}, track)
            sink.on_frame(FrameResult(frame, [face]))
            next_frame += 1.0 / fps
        time.sleep(max(0.0, min(next_event, next_frame) - time.monotonic()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--events-per-s", type=float, default=2.0, help="per device")
    ap.add_argument("--fps", type=float, default=10.0, help="frames per second per device")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="deepfer-fleet-"))
    broker = Broker(work)
    broker.start()
    recorder = Recorder(broker.port)
    sinks, threads = [], []
    stop = threading.Event()
    produced: dict[str, int] = {}
    builders: dict[str, EventBuilder] = {}
    try:
        for i in range(args.devices):
            dev = f"dev-{i:03d}"
            cfg = MqttConfig(url=f"mqtt://127.0.0.1:{broker.port}", prefix="fleet/{device_id}",
                             summary_interval_s=30.0)  # fmt: skip
            sink = MqttSink(cfg, dev, "synthetic", state_dir=str(work / "state"))
            sink.start()
            sinks.append(sink)
            builders[dev] = EventBuilder(dev, "synthetic", start_seq=sink.next_seq())
        b0 = proc_sample(broker.proc.pid)
        t0 = time.monotonic()
        for sink, builder in zip(sinks, builders.values(), strict=True):
            t = threading.Thread(
                target=feed, args=(sink, builder, args.events_per_s, args.fps, stop, produced)
            )
            t.start()
            threads.append(t)
        time.sleep(args.minutes * 60)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        for sink in sinks:
            sink.close()
        b1 = proc_sample(broker.proc.pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with recorder.lock:
                got = sum(len({s for s, _, _ in v}) for v in recorder.events.values())
            if got >= sum(produced.values()):
                break
            time.sleep(0.2)
        stats = [s.stats() for s in sinks]
    finally:
        stop.set()
        recorder.close()
        broker.stop()
    lost, dups, out_of_order, latencies = 0, 0, 0, []
    for dev, n in produced.items():
        rows = recorder.events.get(dev, [])
        seqs = [s for s, _, _ in rows]
        lost += len(set(range(1, n + 1)) - set(seqs))
        dups += len(seqs) - len(set(seqs))
        first = list(dict.fromkeys(seqs))
        out_of_order += first != sorted(first)
        latencies += [arr - ts for _, ts, arr in rows]
    total = sum(produced.values())
    latencies.sort()
    result = {
        "devices": args.devices,
        "minutes": args.minutes,
        "events_per_s_per_device": args.events_per_s,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "produced": total,
        "received_unique": total - lost,
        "lost": lost,
        "duplicates": dups,
        "devices_out_of_order": out_of_order,
        "throughput_events_per_s": round(total / elapsed, 1),
        "state_messages_sent": sum(s["mqtt_state_sent"] for s in stats),
        "kept_in_outbox_at_close": sum(s["mqtt_undelivered"] for s in stats),
        "latency_ms_median": round(1e3 * statistics.median(latencies), 1) if latencies else None,
        "latency_ms_p99": round(1e3 * latencies[int(0.99 * (len(latencies) - 1))], 1)
        if latencies
        else None,
        "broker_cpu_s": round(b1[1] - b0[1], 2) if b0 and b1 else None,
        "broker_cpu_share": round((b1[1] - b0[1]) / elapsed, 3) if b0 and b1 else None,
        "broker_rss_mb_end": round(b1[0], 1) if b1 else None,
        "note": "one process holds every device's sink (its own client, outbox and seq); events "
        "are committed every 1 s (mqtt.commit_interval_s), so latency includes up to 1 s of batching",
        "ok": lost == 0 and out_of_order == 0,
    }
    print(json.dumps(result, indent=2))
    write_json(args.json, result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
