"""Recordings to data at constant memory: ``deepfer detect VIDEO --csv --summary`` on a
1-minute and a 10-minute video made by looping woman2.mp4.

Each run is a fresh ``deepfer detect`` process (as a user runs it); its peak RSS and CPU
time come from the kernel (``os.wait4``). Memory is constant when the peak RSS after 10
minutes of video is within 5% of the peak after 1 minute (rows are streamed to the files,
never kept). Also frames per second (wall) and per CPU-second (what it costs when the
machine is shared). The looped videos live in a temporary folder and are deleted.

    python benchmarks/bench_recording.py --media $DEEPFER_DATA/media
    python benchmarks/bench_recording.py --minutes 1 10 --out benchmarks/results/bench_recording.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
from results_file import write_json

RSS_TOLERANCE = 0.05  # peak RSS after 10 minutes within 5% of after 1 minute


def loop_video(source: Path, target: Path, minutes: float) -> int:
    """``target``: ``source`` repeated to ``minutes`` of video (frames copied, re-encoded
    with mp4v; ffmpeg's stream copy when ffmpeg is there). Returns its frame count."""
    cap = cv2.VideoCapture(str(source))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    n_src = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    want = int(round(minutes * 60 * fps))
    if shutil.which("ffmpeg"):
        cap.release()
        loops = -(-want // n_src)
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", str(loops - 1), "-i",
             str(source), "-frames:v", str(want), "-an", "-c:v", "mpeg4", "-q:v", "3",
             str(target)],
            check=True,
        )  # fmt: skip
    else:  # re-read the source for each loop: this process stays small (see run_detect)
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        written = 0
        while written < want:
            ok, frame = cap.read()
            if not ok:
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            writer.write(frame)
            written += 1
        writer.release()
        cap.release()
    check = cv2.VideoCapture(str(target))
    n = int(check.get(cv2.CAP_PROP_FRAME_COUNT))
    check.release()
    return n


def run_detect(video: Path, workdir: Path, extra: list[str]) -> dict:
    """One ``deepfer detect`` process: wall, CPU, peak RSS, rows written.

    Peak RSS is the child's ``ru_maxrss`` from ``os.wait4``. Linux starts a child's high-water
    mark at the parent's RSS at fork time, so this process never holds frames (it would
    inflate the figure)."""
    csv_path, summary = workdir / f"{video.stem}.csv", workdir / f"{video.stem}_tracks.csv"
    cmd = [sys.executable, "-m", "deepfer", "detect", str(video), "--csv", str(csv_path),
           "--summary", str(summary), "--no-progress", *extra]  # fmt: skip
    env = {**os.environ, "OPENCV_FFMPEG_CAPTURE_OPTIONS": "threads;1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read().decode()
    proc.stdout.close()
    if proc.returncode != 0:
        raise SystemExit(f"deepfer detect failed ({proc.returncode}): {out}")
    with open(csv_path) as f:
        rows = sum(1 for _ in f) - 1
    frames = int(out.split(": ", 1)[1].split(" frame", 1)[0])
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "frames": frames,
        "rows": rows,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "fps": round(frames / wall, 1),
        "fps_per_cpu_s": round(frames / cpu, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "csv_mb": round(csv_path.stat().st_size / 1e6, 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_media = Path(os.environ.get("DEEPFER_DATA", "")) / "media"
    p.add_argument("--media", type=Path, default=default_media, help="folder with woman2.mp4")
    p.add_argument("--minutes", type=float, nargs=2, default=(1.0, 10.0), metavar=("SHORT", "LONG"))
    p.add_argument("--model", default=None, help="model (default: the shipped one)")
    p.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "bench_recording.json"
    )
    p.add_argument("--note", default="", help="a note stored with the figures (e.g. the load)")
    args = p.parse_args()
    source = args.media / "woman2.mp4"
    if not source.is_file():
        raise SystemExit(f"{source}: missing (set DEEPFER_DATA or --media)")
    extra = ["--model", args.model] if args.model else []
    runs = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-recording-") as tmp:
        tmp = Path(tmp)
        for minutes in args.minutes:
            video = tmp / f"woman2_x{minutes:g}min.mp4"
            n = loop_video(source, video, minutes)
            print(f"{video.name}: {n} frames; running deepfer detect ...", flush=True)
            run = run_detect(video, tmp, extra)
            run["minutes"] = minutes
            runs[f"{minutes:g}min"] = run
            print(json.dumps(run), flush=True)
    short, long = (runs[f"{m:g}min"] for m in args.minutes)
    ratio = long["peak_rss_mb"] / short["peak_rss_mb"]
    result = {
        "benchmark": "recording to CSV + summary (deepfer detect --csv --summary)",
        "video": "woman2.mp4 looped",
        "runs": runs,
        "peak_rss_ratio_long_vs_short": round(ratio, 4),
        "constant_memory": abs(ratio - 1.0) <= RSS_TOLERANCE,
        "rows_per_frame": round(long["rows"] / max(1, long["frames"]), 3),
        "machine": {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "note": args.note,
    }
    print(f"\n{'video':>8} {'frames':>7} {'fps':>7} {'fps/CPU-s':>10} {'peak RSS MB':>12}")
    for name, run in runs.items():
        print(f"{name:>8} {run['frames']:>7} {run['fps']:>7} {run['fps_per_cpu_s']:>10} "
              f"{run['peak_rss_mb']:>12}")  # fmt: skip
    print(f"peak RSS long/short: {ratio:.3f} (constant within 5%: {result['constant_memory']})")
    write_json(args.out, result)
    return 0 if result["constant_memory"] else 1


if __name__ == "__main__":
    sys.exit(main())
