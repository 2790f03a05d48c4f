"""How BlazeFace's near search (short-range, on a square around a tracked face) frames a face
against the full-range search of the whole picture, and how often it finds the face.

For each face the full-range model finds alone in a picture, the near model searches the
square of ``NEAR_SIDE`` face sides around that box; the medians of side ratio and centre
offset between the full-range box and the near model's own box give ``NEAR_FRAMING`` (the
near box mapped so that crops match the full-range ones). Pictures:

* FER2013 Training faces (``--per-class`` of each class), upscaled into a mid-grey canvas as
  in ``measure_crop_mapping.py``;
* every ``--every``-th frame of every video in ``--media`` and of its rotated (15 degrees),
  dimmed and half-size variants (``bench_detectors.py``);
* the media photos and their rotated and dimmed copies (faces found alone or not: each
  face the full-range search finds is searched near).

Per source it prints and writes: faces, found by the near search (share), the medians and
IQRs of side ratio and centre offsets (raw, then after ``NEAR_FRAMING``: the mapped IoU with
the full-range box). The cost of one near search against one full search is measured too
(median over the video frames, CPU time of this process).

    python benchmarks/measure_near_framing.py --data $DEEPFER_DATA/fer2013 \\
        --media $DEEPFER_DATA/media --json benchmarks/results/detectors/near_framing.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from bench_detectors import PHOTO_VARIANTS, VIDEO_VARIANTS
from measure_crop_mapping import canvas, faces
from results_file import write_json

from deepfer.edge.boxes import iou, reframe
from deepfer.edge.detectors.blazeface import BlazeFaceDetector


def pictures_fer(data: Path, per_class: int):
    images, _ = faces(data / "train", per_class)
    for img in images:
        yield cv2.cvtColor(canvas(img, 96)[0], cv2.COLOR_BGR2GRAY)


def pictures_video(media: Path, every: int):
    for path in sorted(media.glob("*.mp4")) + sorted(media.glob("*.avi")):
        cap = cv2.VideoCapture(str(path))
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            i += 1
            if i % every:
                continue
            for variant in ("original", "rot15", "dimmed", "half"):
                yield cv2.cvtColor(VIDEO_VARIANTS[variant](frame), cv2.COLOR_BGR2GRAY)
        cap.release()


def pictures_photos(media: Path):
    for path in sorted(media.glob("*.jpg")):
        image = cv2.imread(str(path))
        if image is None:
            continue
        for make in PHOTO_VARIANTS.values():
            yield cv2.cvtColor(make(image), cv2.COLOR_BGR2GRAY)


def measure(detector: BlazeFaceDetector, pictures, alone: bool, timing: list | None = None):
    rows, faces_n, found = [], 0, 0
    for gray in pictures:
        t0 = time.process_time()
        full = detector.find(gray)
        t1 = time.process_time()
        if alone and len(full.boxes) != 1:
            continue
        for box in full.boxes:
            faces_n += 1
            t2 = time.process_time()
            near = detector.find_near(gray, box)
            t3 = time.process_time()
            if timing is not None:
                timing.append((t1 - t0, t3 - t2))
            if len(near.boxes) == 0:
                continue
            best = max(near.boxes, key=lambda b: iou(b, box))
            if iou(best, box) < 0.3:
                continue
            found += 1
            bw, bh = box[2], box[3]
            rows.append(
                (
                    best[2] / bw,
                    best[3] / bh,
                    (box[0] + bw / 2 - best[0] - best[2] / 2) / best[2],
                    (box[1] + bh / 2 - best[1] - best[3] / 2) / best[3],
                    best,
                    box,
                )
            )
    return faces_n, found, rows


def summary(faces_n: int, found: int, rows, framing) -> dict:
    out = {
        "faces": faces_n,
        "near_found": found,
        "near_found_share": round(found / max(1, faces_n), 4),
    }
    if not rows:
        return out
    arr = np.array([r[:4] for r in rows], np.float64)
    for j, name in enumerate(("width_ratio", "height_ratio", "dx", "dy")):
        q1, med, q3 = np.percentile(arr[:, j], [25, 50, 75])
        out[name] = {
            "median": round(float(med), 4),
            "iqr": [round(float(q1), 4), round(float(q3), 4)],
        }
    mapped = [iou(reframe(np.array([r[4]], np.float32), framing)[0], r[5]) for r in rows]
    raw = [iou(r[4], r[5]) for r in rows]
    out["iou_raw_median"] = round(float(np.median(raw)), 4)
    out["iou_mapped_median"] = round(float(np.median(mapped)), 4)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="FER2013 folder (train/ used)")
    ap.add_argument("--media", type=Path, required=True)
    ap.add_argument("--per-class", type=int, default=150)
    ap.add_argument("--every", type=int, default=5, help="every N-th video frame")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    detector = BlazeFaceDetector("full", near="short")
    framing = BlazeFaceDetector.NEAR_FRAMING
    detector.NEAR_FRAMING = (1.0, 0.0, 0.0)  # measure the near model's own boxes
    timing: list = []
    results = {}
    for name, pictures, alone in (
        ("fer2013_train_canvas", pictures_fer(args.data, args.per_class), True),
        ("videos", pictures_video(args.media, args.every), True),
        ("photos", pictures_photos(args.media), False),
    ):
        faces_n, found, rows = measure(
            detector, pictures, alone, timing if name == "videos" else None
        )
        results[name] = summary(faces_n, found, rows, framing)
        print(name, results[name], flush=True)
        results[name]["_rows"] = rows
    everything = [r for v in results.values() for r in v.pop("_rows")]
    results["all"] = summary(
        sum(v["faces"] for v in results.values()),
        sum(v["near_found"] for v in results.values()),
        everything,
        framing,
    )
    scale = statistics.median([(r[0] + r[1]) / 2 for r in everything])
    dx = statistics.median([r[2] for r in everything])
    dy = statistics.median([r[3] for r in everything])
    measured = (round(1 / scale, 3), round(dx, 3), round(dy, 3))
    full_ms = statistics.median(t[0] for t in timing) * 1e3
    near_ms = statistics.median(t[1] for t in timing) * 1e3
    out = {
        "near_side": BlazeFaceDetector.NEAR_SIDE,
        "framing_in_use": list(framing),
        "measured_framing": list(measured),
        "sources": results,
        "cpu_ms": {
            "full_search": round(full_ms, 3),
            "near_search": round(near_ms, 3),
            "near_vs_full": round(near_ms / full_ms, 3),
        },  # fmt: skip
    }
    print(f"all: {results['all']}")
    print(f"NEAR_FRAMING measured: {measured} (in use: {framing})")
    print(
        f"CPU per search: full {full_ms:.2f} ms, near {near_ms:.2f} ms ({near_ms / full_ms:.2f}x)"
    )
    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
