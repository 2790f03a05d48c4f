"""Faces cut by the frame's edge: shift the crop into the frame, or pad the frame? (issue #11)

A face entering or leaving a camera's view has part of its square outside the frame. Until
2026-12-05 the crop was kept inside the frame by moving it inwards (``shift``), so the face
was no longer centred as FER2013 centred it. Padding the frame (its border replicated, as
``edge/preprocess.crop_face`` now does, or flat grey) keeps the face centred at its size
instead, with synthetic pixels where the frame ends. This probe measures which the classifier reads better: each face of a class folder
(the validation slice from ``val_slice.py``; never PublicTest) is upscaled to ``--face`` px
inside a frame whose left (or top, or top-left) edge cuts a fraction ``f`` of it, and the
known FER2013 square is cropped three ways and classified.

    python benchmarks/probe_edge_crops.py /work/runs/val-slice-1337 \\
        --json benchmarks/results/detectors/edge_crops.json

With ``--video CLIP`` it also runs on a real clip, without labels: BlazeFace finds the face in
each frame, the frame is then cut ``f`` of the face's width left of it (or above it), and the
emotion read from each crop of the cut frame is compared with the one read from the uncut
frame (top-1 agreement; the detector's box is kept, so only the crop differs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from measure_crop_mapping import faces
from results_file import write_json

from deepfer.edge.config import Config
from deepfer.edge.detectors import make_detector
from deepfer.edge.model.classifier import load_classifier
from deepfer.edge.preprocess import crop_face, prepare_face, square_box

CUTS = (0.0, 0.1, 0.2, 0.3, 0.4)
SIDES = ("left", "top", "top-left")


def frame_with_cut(face: np.ndarray, side: int, cut: float, where: str):
    """``(frame, square)``: the face upscaled to ``side`` px in a frame of 3x its side whose
    surround is the face's border replicated outwards, then the frame cut so that ``cut`` of
    the face lies beyond its ``where`` edge; ``square`` is the face's known square in frame
    pixels (partly outside the frame)."""
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    full = cv2.copyMakeBorder(big, side, side, side, side, cv2.BORDER_REPLICATE)
    off = int(round(cut * side))
    x0 = side + off if "left" in where else 0
    y0 = side + off if "top" in where else 0
    frame = full[y0:, x0:]
    return frame, (side - x0, side - y0, side, side)


def crop_shifted(frame: np.ndarray, square, size: int) -> np.ndarray:
    """The square moved (and shrunk if need be) to lie inside the frame: the old crop."""
    x, y, w, _ = square
    height, width = frame.shape[:2]
    side = min(w, width, height)
    cx, cy = x + w / 2.0, y + w / 2.0
    x0 = int(round(min(max(cx - side / 2.0, 0.0), width - side)))
    y0 = int(round(min(max(cy - side / 2.0, 0.0), height - side)))
    return prepare_face(frame[y0 : y0 + side, x0 : x0 + side], size)


def crop_grey(frame: np.ndarray, square, size: int) -> np.ndarray:
    """The exact square, the frame padded with flat grey where the square leaves it."""
    x, y, w, h = square
    pad = max(0, -x, -y, x + w - frame.shape[1], y + h - frame.shape[0])
    padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=128)
    return prepare_face(padded[y + pad : y + pad + h, x + pad : x + pad + w], size)


def predict(classifier, crops: list[np.ndarray]) -> np.ndarray:
    """The classifier's top class for each crop, in one call."""
    return classifier.infer(np.stack(crops)[..., None]).argmax(1)


def video_agreement(path: Path, classifier, size: int, config) -> dict:
    """Top-1 agreement with the uncut frame's emotion, per cut and crop method."""
    config.detector.backend = "blazeface"
    detector = make_detector(config.detector)
    margin = config.model.margin
    reference, cut_crops = [], {}
    capture = cv2.VideoCapture(str(path))
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        found = detector.detect(bgr)
        if len(found) != 1:
            continue
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        x, y, w, h = square_box(detector.crop_box(found[0].box), margin)
        reference.append(crop_face(gray, (x, y, w, h), size, margin=0.0))
        for where in ("left", "top"):
            for cut in CUTS[1:]:
                dx = max(0, x + int(round(cut * w))) if where == "left" else 0
                dy = max(0, y + int(round(cut * h))) if where == "top" else 0
                frame, square = gray[dy:, dx:], (x - dx, y - dy, w, h)
                row = cut_crops.setdefault(f"{where} {cut:.1f}", {"shift": [], "replicate": []})
                row["shift"].append(crop_shifted(frame, square, size))
                row["replicate"].append(crop_face(frame, square, size, margin=0.0))
    capture.release()
    truth = predict(classifier, reference)
    out = {"clip": path.name, "frames": len(reference)}
    for key, row in cut_crops.items():
        out[key] = {
            how: round(float((predict(classifier, b) == truth).mean()), 4) for how, b in row.items()
        }
        print(f"{path.name} {key}: " + "  ".join(f"{k} {v:.2%}" for k, v in out[key].items()))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="class folder (the validation slice)")
    ap.add_argument("--model", default=None, help="classifier (default: the shipped int8)")
    ap.add_argument("--face", type=int, default=96, help="face side in the frame, px")
    ap.add_argument("--per-class", type=int, default=None)
    ap.add_argument("--video", type=Path, default=None, help="also a clip (no labels needed)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    config = Config()
    if args.model:
        config.model.path = args.model
    classifier = load_classifier(config.model)
    size = classifier.input_size[0]
    images, labels = faces(args.folder, args.per_class)
    results = {}
    for where in SIDES:
        for cut in CUTS:
            crops = {"shift": [], "replicate": [], "grey": []}
            for img in images:
                frame, square = frame_with_cut(img, args.face, cut, where)
                crops["shift"].append(crop_shifted(frame, square, size))
                crops["replicate"].append(crop_face(frame, square, size, margin=0.0))
                crops["grey"].append(crop_grey(frame, square, size))
            row = {
                how: round(float((predict(classifier, batch) == labels).mean()), 4)
                for how, batch in crops.items()
            }
            results[f"{where} {cut:.1f}"] = row
            print(f"{where:>8} cut {cut:.1f}: " + "  ".join(f"{k} {v:.2%}" for k, v in row.items()))
    if args.video:
        results["video"] = video_agreement(args.video, classifier, size, config)
    out = {"folder": str(args.folder), "faces": len(images), "face_px": args.face,
           "model": str(classifier.info.name), "accuracy": results}  # fmt: skip
    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
