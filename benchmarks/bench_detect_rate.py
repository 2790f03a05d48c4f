"""How often to detect: the daemon's pipeline with ``detector.fps`` (detections per second of
stream time, the tracker carrying faces in between) against detecting on every frame.

Per video (``woman2.mp4`` and the variants of ``bench_detectors.py``: rotated 15 degrees,
dimmed, half size, mirrored and looped) and per setting, in one run so that ratios compare
like with like:

* frames with a face, frames with a false face (more than one face: one person), tracks;
* fps per CPU-second of the whole pipeline (decode included) and wall-clock fps (the capture
  loop decodes ahead on its own thread, as in the daemon), each with its ratio to Haar
  (DeepFER's Haar settings: every frame, near-face search) on the same clip;
* against the same backend searching the whole frame on every frame (the reference named in
  ``SETTINGS``; settings differ in ``detector.fps`` and in whether tracked faces are looked
  for only near where they were, ``detector.rescan_s``): per-frame emotion agreement, mean absolute
  score difference and mean box IoU (frames where both have one face), and the L1 distance
  between the two runs' shares of frames per emotion (what a summary reports; 0 = same).

    python benchmarks/bench_detect_rate.py --media $DEEPFER_DATA/media \\
        --json benchmarks/results/detectors/bench_detect_rate.json

Figures are medians over --repeats runs (CPU time of this process; the quality figures do
not vary between runs); each repeat runs every setting in turn, and a ratio to Haar is the
median of the ratios within each repeat. Wall-clock figures need an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_detectors import VIDEO_VARIANTS, make_video_variant, video_variants
from results_file import write_json

from deepfer.edge.boxes import iou
from deepfer.edge.capture.reader import FrameReader
from deepfer.edge.capture.sources import OpenCVSource
from deepfer.edge.config import load_config
from deepfer.edge.detectors import make_detector
from deepfer.edge.model.classifier import load_classifier
from deepfer.edge.pipeline import FacePipeline

#: (name, backend, detector.fps, detector.rescan_s, reference for the agreement figures):
#: rescan_s 0 = a full search at every detection; > 0 = near searches (Haar; BlazeFace's
#: short-range model around the face) between full searches every rescan_s seconds.
SETTINGS = (
    ("haar", "haar", 0.0, 1.0, None),
    ("blazeface-full-search", "blazeface", 0.0, 0.0, None),
    ("blazeface", "blazeface", 0.0, 1.0, "blazeface-full-search"),
    ("blazeface@15", "blazeface", 15.0, 1.0, "blazeface-full-search"),
    ("blazeface@10", "blazeface", 10.0, 1.0, "blazeface-full-search"),
    ("blazeface@5", "blazeface", 5.0, 1.0, "blazeface-full-search"),
    ("blazeface@5-full-search", "blazeface", 5.0, 0.0, "blazeface-full-search"),
    ("blazeface@3", "blazeface", 3.0, 1.0, "blazeface-full-search"),
    ("blazeface-short", "blazeface-short", 0.0, 1.0, None),
    ("blazeface-short@10", "blazeface-short", 10.0, 1.0, "blazeface-short"),
    ("blazeface-short@5", "blazeface-short", 5.0, 1.0, "blazeface-short"),
)


def run(
    path: Path, backend: str, fps: float, rescan_s: float, classifier, overrides: dict
) -> tuple[dict, list]:
    config = load_config(None, environ={}, overrides=overrides)
    config.detector.backend = backend
    config.detector.fps = fps
    config.detector.rescan_s = rescan_s
    pipeline = FacePipeline.from_config(config, classifier, make_detector(config.detector))
    frames = with_face = multi = detected = 0
    tracks: set[int] = set()
    per_frame = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    # as the daemon reads (no preview): frames between detections grabbed, not decoded
    reader = FrameReader(OpenCVSource(str(path), live=False), pixels=pipeline.pixel_clock())
    for frame in reader:
        result = pipeline.process(frame)
        faces = result.faces
        frames += 1
        detected += result.detected
        with_face += bool(faces)
        multi += len(faces) > 1
        tracks.update(f.track_id for f in faces if f.track_id is not None)
        per_frame.append(faces)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    pipeline.close()
    row = {
        "frames": frames,
        "detection_frames": detected,
        "with_face": with_face / max(frames, 1),
        "false_face_frames": multi / max(frames, 1),
        "tracks": len(tracks),
        "fps_per_cpu_s": frames / max(cpu, 1e-9),
        "fps_wall": frames / max(wall, 1e-9),
    }
    return row, per_frame


def agreement(frames: list, reference: list) -> dict:
    """Per-frame emotion agreement, mean |score difference| and box IoU on frames where both
    runs have exactly one face."""
    same, diffs, ious = [], [], []
    shares = {}
    for name, run_frames in (("run", frames), ("ref", reference)):
        counts: dict[str, int] = {}
        for faces in run_frames:
            for face in faces:
                counts[face.emotion] = counts.get(face.emotion, 0) + 1
        total = max(sum(counts.values()), 1)
        shares[name] = {k: v / total for k, v in counts.items()}
    share_l1 = sum(
        abs(shares["run"].get(k, 0.0) - shares["ref"].get(k, 0.0))
        for k in set(shares["run"]) | set(shares["ref"])
    )
    for faces, ref in zip(frames, reference):
        if len(faces) == 1 and len(ref) == 1:
            a, b = faces[0], ref[0]
            same.append(a.emotion == b.emotion)
            diffs.append(np.mean([abs(a.scores[k] - b.scores[k]) for k in b.scores]))
            ious.append(iou(a.box, b.box))
    if not same:
        return {}
    return {
        "emotion_agreement": round(float(np.mean(same)), 4),
        "mean_abs_score_diff": round(float(np.mean(diffs)), 4),
        "mean_box_iou": round(float(np.mean(ious)), 4),
        "emotion_share_l1": round(float(share_l1), 4),
        "compared_frames": len(same),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--media", required=True, type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--variants",
        default=",".join(VIDEO_VARIANTS),
        help=f"comma-separated, of {', '.join(VIDEO_VARIANTS)} and in-1080p (default: the "
        "first five)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a setting for every run (--set model.crop_jitter=0); repeatable",
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    overrides = dict(item.partition("=")[::2] for item in args.set)
    overrides["model.threads"] = 1
    config = load_config(None, environ={}, overrides=overrides)
    classifier = load_classifier(config.model)
    out: dict = {
        "set": {k: v for k, v in overrides.items() if k != "model.threads"} or "defaults",
        "settings": {
            n: {"backend": b, "fps": f, "rescan_s": r, "reference": ref}
            for n, b, f, r, ref in SETTINGS
        },
        "videos": {},
    }
    changes = video_variants(args.media)
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants.split(","):
            src = args.media / "woman2.mp4"
            path = (
                src
                if variant == "original"
                else make_video_variant(src, variant, Path(tmp), changes[variant])
            )
            runs: dict[str, list] = {name: [] for name, *_ in SETTINGS}
            outputs = {}
            # repeats outside, settings inside: a slow spell of the shared machine hits every
            # setting alike, so the ratios to Haar stay fair
            for _ in range(args.repeats):
                for name, backend, fps, rescan_s, _ in SETTINGS:
                    row, outputs[name] = run(path, backend, fps, rescan_s, classifier, overrides)
                    runs[name].append(row)
            rows = {
                name: {k: round(statistics.median(r[k] for r in rs), 4) for k in rs[0]}
                for name, rs in runs.items()
            }
            for name, _, _, _, reference in SETTINGS:
                row = rows[name]
                for key in ("fps_per_cpu_s", "fps_wall"):  # median of same-repeat ratios
                    ratios = [r[key] / h[key] for r, h in zip(runs[name], runs["haar"])]
                    row[f"{key}_vs_haar"] = round(statistics.median(ratios), 3)
                if reference:
                    row["vs_every_frame"] = agreement(outputs[name], outputs[reference])
            out["videos"][variant] = rows
            print(f"{variant}:")
            for name, row in rows.items():
                print(f"  {name:20s} " + json.dumps(row))
    write_json(args.json, out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
