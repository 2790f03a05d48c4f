"""Where the re-detected skew comes from: faces grouped by how the detector framed them.

Each face of a class folder (the validation slice from ``val_slice.py``, never PublicTest) is
placed in a canvas (``probe_canvas_surround.py``'s surrounds), detected, cropped with the
detector's framing and classified as the edge pipeline does (two framings by default). The
faces found are grouped by the side of that crop over FER2013's own square (1 = the same
framing; above 1 the crop takes in surround) and by its vertical offset; per group: faces,
given-crop and re-detected accuracy, and the faces the framing lost (given right,
re-detected wrong, net).

    python benchmarks/probe_skew_by_framing.py /tmp/val-slice-1337 --detector blazeface \\
        --json benchmarks/results/detectors/skew_by_framing.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import measure_crop_mapping as mapping
import numpy as np
import probe_canvas_surround as surrounds
from results_file import write_json

from deepfer.edge.capture.frame import frame_from_image
from deepfer.edge.config import Config
from deepfer.edge.detectors import make_detector
from deepfer.edge.model.classifier import load_classifier
from deepfer.edge.pipeline import FacePipeline

SIDE_BINS = (0.0, 0.85, 0.93, 1.0, 1.07, 1.15, 9.0)
DY_BINS = (-9.0, -0.08, -0.03, 0.03, 0.08, 9.0)


def framed(pipeline, margin, xs, ys, given, side, make_canvas):
    """Per face found: (crop side / FER2013 side, centre dy / side, given right, re-detected
    right)."""
    rows = []
    for img, y, g in zip(xs, ys, given):
        bgr, truth = make_canvas(img, side)
        frame = frame_from_image(bgr)
        dets = pipeline.detector.detect(frame)
        i = mapping.best_match([d.box for d in dets], truth)
        if i is None:
            continue
        x0, y0, w, _ = pipeline.detector.crop_box(dets[i].box)
        probs = pipeline.classify(frame, np.asarray([dets[i].box]))[0]
        centre = (y0 + w / 2 - (truth[1] + truth[3] / 2)) / side
        rows.append((w * (1 + 2 * margin) / side, centre, g == y, probs.argmax() == y))
    return np.asarray(rows, dtype=np.float64)


def groups(values, given_right, redetected_right, edges):
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        k = (values >= lo) & (values < hi)
        if not k.any():
            continue
        out.append(
            {
                "range": [lo, hi],
                "faces": int(k.sum()),
                "given_crop_accuracy": round(float(given_right[k].mean()), 4),
                "redetected_accuracy": round(float(redetected_right[k].mean()), 4),
                "faces_lost": int(given_right[k].sum() - redetected_right[k].sum()),
            }
        )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("faces", type=Path, help="class folder, e.g. the validation slice")
    ap.add_argument("--detector", default="blazeface")
    ap.add_argument("--surrounds", default="grey,replicate,blurred")
    ap.add_argument("--face", type=int, default=96)
    ap.add_argument("--model", default="", help=".tflite to measure (default: the shipped one)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    config = Config()
    config.detector.backend = args.detector
    if args.model:
        config.model.path = args.model
    classifier = load_classifier(config.model)
    pipeline = FacePipeline.from_config(
        config, classifier, make_detector(config.detector), track=False, every_frame=True
    )
    xs, ys = mapping.faces(args.faces, None)
    given = classifier.infer(np.stack(xs)).argmax(1)
    out = {"model": str(classifier.path), "detector": args.detector, "faces": len(xs)}
    for name in args.surrounds.split(","):
        rows = framed(
            pipeline, config.model.margin, xs, ys, given, args.face, surrounds.SURROUNDS[name]
        )
        side, dy, g, r = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
        skew = 100 * (r.mean() - g.mean())
        out[name] = {
            "found": len(rows),
            "skew_points": round(float(skew), 3),
            "by_side": groups(side, g, r, SIDE_BINS),
            "by_dy": groups(dy, g, r, DY_BINS),
        }
        print(f"{args.detector} {name}: {len(rows)} found, skew {skew:+.2f} points")
        for row in out[name]["by_side"]:
            lo, hi = row["range"]
            print(
                f"  side {lo:.2f}-{hi:.2f}: {row['faces']:5d} faces, given "
                f"{row['given_crop_accuracy']:.2%}, re-detected {row['redetected_accuracy']:.2%}, "
                f"lost {row['faces_lost']:+d}"
            )
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
