"""Faces that fill the picture: headshots, selfies at arm's length, pictures cut to a face.

For every face in the photos (``--media``: justin, 12_angry_men; ``--photos``: a folder from
``registry_photos.py``), found by CenterFace on the whole photo (the reference; faces of at
least ``--min-face`` px), a square around the face is cut so that the face's box is ``fill``
of its side (0.25: a portrait with shoulders; 1.0: the box fills it; 1.5: forehead and chin
cut off), clipped to the photo and scaled to 640 px, as ``deepfer detect`` would search it.
Per photo detector (as ``deepfer detect`` builds it, BlazeFace also without its shrunk
search, ``zoom_out = 0``, the way it ran before): the share of those pictures where the face
is found (a box centred inside the reference box), false faces (boxes centred outside every
reference face), and the median detection time per picture (a ratio to BlazeFace without
the shrunk search, same run).

Video (``--video``): the same squares as the middle 480x480 of a 640x480 frame, searched 8
times by the video detector (``detector.backend = "blazeface"`` as ``deepfer run`` builds it:
one swept tile per search, then the frame shrunk once per sweep), with and without the
shrunk search: the share of faces found at least once, and false faces; and ``--clips``:
woman2.mp4 and variants of ``bench_detectors.py`` through the whole pipeline (Haar, BlazeFace,
BlazeFace without the shrunk search; median of 3 runs): frames with a face, with a false
face, tracks, fps per CPU-second as a ratio to Haar in the same run.

    python benchmarks/registry_photos.py /tmp/registry-photos
    python benchmarks/bench_face_fill.py --media $DEEPFER_DATA/media --photos /tmp/registry-photos \\
        --video --clips original,far-640,rot15 --json benchmarks/results/detectors/bench_face_fill.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from results_file import write_json

from deepfer.edge.config import Config
from deepfer.edge.detectors import make_photo_detector

FILLS = (0.25, 0.5, 0.7, 0.85, 1.0, 1.2, 1.5)
BACKENDS = ("blazeface", "blazeface-no-zoom", "centerface", "haar")
SIDE = 640


def photo_detector(name: str):
    config = Config()
    config.detector.backend = "blazeface" if name.startswith("blazeface") else name
    detector = make_photo_detector(config.detector)
    if name == "blazeface-no-zoom":
        detector.zoom_out = 0.0
    return detector


def pictures(paths: list[Path], min_face: int):
    """``(name, picture, reference boxes in it, index of the face it is cut around)``."""
    reference = photo_detector("centerface")
    for path in paths:
        image = cv2.imread(str(path))
        if image is None:
            continue
        h, w = image.shape[:2]
        boxes = [np.array(f.box, float) for f in reference.detect(image)]
        boxes = [b for b in boxes if max(b[2:]) >= min_face]
        for k, (x, y, bw, bh) in enumerate(boxes):
            for fill in FILLS:
                side = max(bw, bh) / fill
                x0, y0 = int(max(0, x + bw / 2 - side / 2)), int(max(0, y + bh / 2 - side / 2))
                x1, y1 = int(min(w, x + bw / 2 + side / 2)), int(min(h, y + bh / 2 + side / 2))
                crop = image[y0:y1, x0:x1]
                f = SIDE / max(crop.shape[:2])
                crop = cv2.resize(crop, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
                moved = [(b - [x0, y0, 0, 0]) * f for b in boxes]
                yield f"{path.name}#{k}", fill, crop, moved, k


def video_frames(cases) -> dict:
    """Each square as the middle of a 640x480 frame, 8 searches of the video detector."""
    from deepfer.edge.detectors import make_detector

    out = {}
    for name, zoom in (("blazeface", None), ("blazeface-no-zoom", 0.0)):
        config = Config()
        config.detector.backend = "blazeface"
        detector = make_detector(config.detector)
        if zoom is not None:
            detector.zoom_out = zoom
        found: dict[float, list[bool]] = {}
        false = 0
        for _, fill, crop, refs, k in cases:
            if crop.shape[0] != crop.shape[1]:
                continue  # clipped by the photo's edge: not a square
            frame = np.zeros((480, 640, 3), np.uint8)
            frame[:, 80:560] = cv2.resize(crop, (480, 480), interpolation=cv2.INTER_AREA)
            moved = [[r[0] * 0.75 + 80, r[1] * 0.75, r[2] * 0.75, r[3] * 0.75] for r in refs]
            detector.swept = 0  # each picture from the start of a sweep, as a new stream
            hit = False
            for _ in range(8):
                boxes = [f.box for f in detector.detect(frame)]
                hit |= any(centre_in(b, moved[k]) for b in boxes)
                false += sum(not any(centre_in(b, r) for r in moved) for b in boxes)
            found.setdefault(fill, []).append(hit)
        out[name] = {
            "found": {str(f): round(float(np.mean(v)), 3) for f, v in sorted(found.items())},
            "frames": {str(f): len(v) for f, v in sorted(found.items())},
            "false_faces_in_8_searches": false,
        }
    return out


def clips(media: Path, variants: list[str], repeats: int = 3) -> dict:
    """woman2 and its variants through the pipeline: Haar, BlazeFace, BlazeFace unshrunk."""
    import tempfile

    import bench_detectors as bd

    from deepfer.edge.model.classifier import load_classifier

    config = Config()
    config.model.threads = 1
    classifier = load_classifier(config.model)
    keys = ("with_face", "false_face_frames", "tracks", "fps_per_cpu_s")

    def run(path: Path, backend: str, zoom: float | None) -> dict:
        row = bd.run_video(path, backend, classifier, zoom)
        return {k: row[k] for k in keys}

    out = {}
    runs = {"haar": ("haar", None), "blazeface": ("blazeface", None)}
    runs["blazeface-no-zoom"] = ("blazeface", 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        made = bd.video_variants(media)
        for variant in variants:
            path = (
                media / "woman2.mp4"
                if variant == "original"
                else bd.make_video_variant(media / "woman2.mp4", variant, Path(tmp), made[variant])
            )
            rows: dict[str, list[dict]] = {n: [] for n in runs}
            for _ in range(repeats):  # interleaved, so the machine's load falls on all alike
                for n, (backend, zoom) in runs.items():
                    rows[n].append(run(path, backend, zoom))
            med = {
                n: {k: round(statistics.median(r[k] for r in rs), 4) for k in rs[0]}
                for n, rs in rows.items()
            }
            for row in med.values():
                row["fps_per_cpu_s_vs_haar"] = round(
                    row["fps_per_cpu_s"] / med["haar"]["fps_per_cpu_s"], 3
                )
            out[variant] = med
            print(f"clip {variant}: {json.dumps(med)}", flush=True)
    return out


def centre_in(box, ref) -> bool:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return ref[0] <= cx <= ref[0] + ref[2] and ref[1] <= cy <= ref[1] + ref[3]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--media", type=Path, required=True)
    ap.add_argument("--photos", type=Path, default=None, help="folder from registry_photos.py")
    ap.add_argument("--min-face", type=int, default=60, help="reference faces of this px or more")
    ap.add_argument("--video", action="store_true", help="also the squares as video frames")
    ap.add_argument(
        "--clips", default="", help="woman2 variants through the pipeline, e.g. original"
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    paths = [args.media / "justin.jpg", args.media / "12_angry_men.jpg"]
    if args.photos:
        listed = json.loads((args.photos / "faces.json").read_text())
        paths += [args.photos / n for n, row in sorted(listed.items()) if row["faces"]]
    cases = list(pictures(paths, args.min_face))
    detectors = {name: photo_detector(name) for name in BACKENDS}
    found = {n: {fill: [] for fill in FILLS} for n in BACKENDS}
    false = {n: {fill: 0 for fill in FILLS} for n in BACKENDS}
    seconds: dict[str, list[float]] = {n: [] for n in BACKENDS}
    faces_in = set()
    for name, fill, crop, refs, k in cases:
        faces_in.add(name)
        for backend, detector in detectors.items():
            t0 = time.perf_counter()
            boxes = [f.box for f in detector.detect(crop)]
            seconds[backend].append(time.perf_counter() - t0)
            found[backend][fill].append(any(centre_in(b, refs[k]) for b in boxes))
            false[backend][fill] += sum(not any(centre_in(b, r) for r in refs) for b in boxes)
    base = statistics.median(seconds["blazeface-no-zoom"])
    report = {
        "faces": sorted(faces_in),
        "fills": list(FILLS),
        "backends": {
            n: {
                "found": {str(f): round(float(np.mean(found[n][f])), 3) for f in FILLS},
                "false_faces": {str(f): false[n][f] for f in FILLS},
                "median_ms": round(1000 * statistics.median(seconds[n]), 2),
                "time_vs_blazeface_no_zoom": round(statistics.median(seconds[n]) / base, 3),
            }
            for n in BACKENDS
        },
    }
    print(f"{len(faces_in)} faces, {len(cases)} pictures; share found by fill:")
    print(f"{'backend':20}" + "".join(f"{f:>7}" for f in FILLS) + "  false  ms (ratio)")
    for n, row in report["backends"].items():
        print(
            f"{n:20}"
            + "".join(f"{row['found'][str(f)]:7.2f}" for f in FILLS)
            + f"  {sum(row['false_faces'].values()):5}  {row['median_ms']:.1f}"
            f" ({row['time_vs_blazeface_no_zoom']:.2f}x)"
        )
    if args.video:
        report["video_frames"] = video_frames(cases)
        print(
            "video frames (found at least once in 8 searches): "
            + json.dumps(report["video_frames"])
        )
    if args.clips:
        report["clips"] = clips(args.media, args.clips.split(","))
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
