"""Something periodic at the detection rate: the daemon's schedule evenly spaced
(``detector.jitter = 0``, the default) against spread (0.3).

The daemon detects about ``detector.fps`` times a second of stream time, on about every n-th
frame. Evenly spaced, every detection falls on the same phase of anything periodic at that
rate: mains light beating with the camera's frame rate (100 Hz flicker at 30 frames a second
with a short exposure darkens one frame in three), a fan, a blinking sign. Spread, the
detections wander over every phase with the same mean rate (``pipeline.Interval``).

Per video (woman2.mp4 and the variants of ``bench_detectors.py``, each also with one frame in
k made near-black, k = 3, 5 and 6; 6 is exactly the detection rate at 30 frames a second) and
per schedule, as the daemon reads (frames between detections grabbed, not decoded): share of
the lit frames showing her face (confirmed, as published), tracks, detections per second of
stream time, fps per CPU-second, and that figure's ratio between the two schedules (the
spread one should cost nothing).

    python benchmarks/bench_flicker.py --media $DEEPFER_DATA/media \\
        --json benchmarks/results/detectors/bench_flicker.json
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import cv2
import numpy as np
from bench_detect_rate import run as detect_rate_run
from bench_detectors import make_video_variant, video_variants
from results_file import write_json

from deepfer.edge.config import load_config
from deepfer.edge.model.classifier import load_classifier

#: one frame in k at this share of its light
DARK = 0.03
PERIODS = (0, 3, 5, 6)  # 0: no dark frames
SCHEDULES = {"even": 0.0, "spread 0.3": 0.3}


def darkened(src: Path, k: int, folder: Path) -> Path:
    """``src`` with frames k-1, 2k-1, ... at :data:`DARK` of their light (lossless enough:
    MJPG at its default quality, as the variants)."""
    if k == 0:
        return src
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    path = folder / f"{src.stem}-dark{k}.avi"
    writer = None
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
        if i % k == 0:  # frame 0 too: the evenly spaced schedule starts there
            frame = (frame * DARK).astype(np.uint8)
        writer.write(frame)
        i += 1
    cap.release()
    writer.release()
    return path


def run(path: Path, k: int, jitter: float, classifier) -> dict:
    """The daemon's default pipeline (BlazeFace, 5 a second, near searches) with ``jitter``,
    as ``bench_detect_rate.run`` reads a clip; the lit frames are those not dark (1 in k)."""
    config = load_config(None, environ={})
    row, per_frame = detect_rate_run(
        path, "blazeface", config.detector.fps, config.detector.rescan_s, classifier,
        {"detector.jitter": str(jitter)},
    )  # fmt: skip
    confirmed = [[f for f in faces if f.confirmed] for faces in per_frame]
    lit = [i for i in range(len(per_frame)) if k == 0 or i % k != 0]
    cap = cv2.VideoCapture(str(path))
    seconds = (len(per_frame) - 1) / (cap.get(cv2.CAP_PROP_FPS) or 30.0)
    cap.release()
    return {
        "frames": row["frames"],
        "lit_with_face": round(sum(bool(confirmed[i]) for i in lit) / max(len(lit), 1), 4),
        "tracks": len({f.track_id for faces in confirmed for f in faces}),
        "detections_per_s": round(row["detection_frames"] / max(seconds, 1e-9), 3),
        "fps_per_cpu_s": row["fps_per_cpu_s"],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--media", type=Path, required=True, help="folder with woman2.mp4")
    ap.add_argument("--variants", nargs="*", default=["original", "rot15", "dimmed", "far-640"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    classifier = load_classifier(load_config(None, environ={}).model)
    variants = video_variants(args.media)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        src = args.media / "woman2.mp4"
        for variant in args.variants:
            base = (
                src
                if variant == "original"
                else make_video_variant(src, variant, folder, variants[variant])
            )
            for k in PERIODS:
                clip = darkened(base, k, folder)
                name = f"{variant}, dark 1 in {k}" if k else variant
                runs: dict[str, list] = {s: [] for s in SCHEDULES}
                for _ in range(args.repeats):  # each repeat runs both schedules in turn
                    for schedule, jitter in SCHEDULES.items():
                        runs[schedule].append(run(clip, k, jitter, classifier))
                row = {}
                for schedule, rows in runs.items():
                    out = dict(rows[0])
                    out["fps_per_cpu_s"] = round(
                        statistics.median(r["fps_per_cpu_s"] for r in rows), 1
                    )
                    row[schedule] = out
                ratios = [
                    s["fps_per_cpu_s"] / e["fps_per_cpu_s"]
                    for s, e in zip(runs["spread 0.3"], runs["even"])
                ]
                row["spread_vs_even_fps_per_cpu_s"] = round(statistics.median(ratios), 3)
                results[name] = row
                e, s = row["even"], row["spread 0.3"]
                print(
                    f"{name:<28} even: {e['lit_with_face']:6.1%} {e['tracks']} tr "
                    f"{e['detections_per_s']:.2f}/s | spread: {s['lit_with_face']:6.1%} "
                    f"{s['tracks']} tr {s['detections_per_s']:.2f}/s | speed x"
                    f"{row['spread_vs_even_fps_per_cpu_s']:.3f}",
                    flush=True,
                )
    write_json(
        args.json,
        {
            "what": "share of lit frames showing the face, evenly spaced vs spread detections",
            "dark_level": DARK,
            "repeats": args.repeats,
            "model": classifier.info.name,
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
