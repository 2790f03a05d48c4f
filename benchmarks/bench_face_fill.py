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

    python benchmarks/registry_photos.py /tmp/registry-photos
    python benchmarks/bench_face_fill.py --media $DEEPFER_DATA/media --photos /tmp/registry-photos \\
        --json benchmarks/results/detectors/bench_face_fill.json
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


def centre_in(box, ref) -> bool:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return ref[0] <= cx <= ref[0] + ref[2] and ref[1] <= cy <= ref[1] + ref[3]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--media", type=Path, required=True)
    ap.add_argument("--photos", type=Path, default=None, help="folder from registry_photos.py")
    ap.add_argument("--min-face", type=int, default=60, help="reference faces of this px or more")
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
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
