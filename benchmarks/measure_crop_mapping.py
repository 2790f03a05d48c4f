"""How each face detector frames a FER2013 face, and what that costs the classifier.

Every face is upscaled (48 -> --face px) and placed in the middle of a mid-grey canvas three
times its size; the FER2013 crop is then a known square. Per detector:

1. **Mapping** (on Training faces only): the detection overlapping the known square is
   compared with it; the medians of side ratio and centre offsets give the detector's
   ``crop = (scale, dx, dy)``: the box whose square with the default margin (0.1) is the
   FER2013 crop. Paste them into the backend's ``crop`` attribute.
2. **Re-detected accuracy** (on PublicTest): the shipped edge pipeline (detector + crop
   mapping + int8 classifier) on the canvas, against the given-crop accuracy of the same
   classifier on the same faces. A face the detector misses counts as wrong. Run it with the
   mapping measured in step 1 (``--mapping measured``) and with none (``--mapping none``).
3. **Fitted** (with ``--fit-data``, a class folder such as the validation slice written by
   ``val_slice.py``): the framing refined for accuracy instead of geometry: a grid of side
   scales and vertical offsets around the measured mapping, each scored by re-detected
   accuracy on those faces (never PublicTest); the best is then measured on PublicTest
   like the others.

    python benchmarks/measure_crop_mapping.py --data $DEEPFER_DATA/fer2013 \
        --detectors blazeface,centerface,haar --json benchmarks/results/crop_mapping.json
    python benchmarks/val_slice.py $DEEPFER_DATA/fer2013 /tmp/val-slice-1337
    python benchmarks/measure_crop_mapping.py --data $DEEPFER_DATA/fer2013 --detectors blazeface \
        --fit-data /tmp/val-slice-1337 --json benchmarks/results/detectors/crop_mapping_fitted.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from results_file import write_json

from deepfer.edge.boxes import iou
from deepfer.edge.capture.frame import frame_from_image
from deepfer.edge.config import Config
from deepfer.edge.detectors import make_detector
from deepfer.edge.labels import LABELS
from deepfer.edge.model.classifier import load_classifier
from deepfer.edge.pipeline import FacePipeline

MARGIN = 0.1


def faces(folder: Path, per_class: int | None, seed: int = 0):
    """``(images, labels)`` of a Kaggle-layout split, ``per_class`` sampled per class."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for k, label in enumerate(LABELS):
        paths = sorted((folder / label).glob("*.jpg")) + sorted((folder / label).glob("*.png"))
        if per_class and len(paths) > per_class:
            paths = [paths[i] for i in sorted(rng.choice(len(paths), per_class, replace=False))]
        for p in paths:
            img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            if img is not None:
                xs.append(img)
                ys.append(k)
    return xs, np.asarray(ys)


def canvas(face: np.ndarray, side: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    out = np.full((3 * side, 3 * side), 128, np.uint8)
    out[side : 2 * side, side : 2 * side] = big
    return cv2.cvtColor(out, cv2.COLOR_GRAY2BGR), (side, side, side, side)


def best_match(boxes, truth, min_iou=0.2):
    scored = [(iou(b, truth), i) for i, b in enumerate(boxes)]
    scored = [s for s in scored if s[0] >= min_iou]
    return max(scored)[1] if scored else None


def measure_mapping(detector, images, side):
    ratios, dxs, dys, missed = [], [], [], 0
    for img in images:
        bgr, truth = canvas(img, side)
        dets = detector.detect(bgr)
        i = best_match([d.box for d in dets], truth)
        if i is None:
            missed += 1
            continue
        x, y, w, h = dets[i].box
        tx, ty, ts, _ = truth
        ratios.append(ts / ((1 + 2 * MARGIN) * max(w, h)))
        dxs.append((tx + ts / 2 - (x + w / 2)) / w)
        dys.append((ty + ts / 2 - (y + h / 2)) / h)
    found = len(ratios)
    mapping = (
        (
            round(float(np.median(ratios)), 3),
            round(float(np.median(dxs)), 3),
            round(float(np.median(dys)), 3),
        )
        if found
        else (1.0, 0.0, 0.0)
    )
    return mapping, {
        "faces": len(images),
        "found": found,
        "missed": missed,
        "scale_iqr": [round(float(q), 3) for q in np.percentile(ratios, [25, 75])]
        if found
        else None,
        "dy_iqr": [round(float(q), 3) for q in np.percentile(dys, [25, 75])] if found else None,
    }


#: The grid of ``fit_mapping``: side scale factors and vertical offsets (of the box height)
#: applied to the measured mapping.
FIT_SCALES = (0.88, 0.91, 0.94, 0.97, 1.0, 1.03, 1.06, 1.09)
FIT_DYS = (-0.06, -0.04, -0.02, 0.0, 0.02, 0.04, 0.06)


def fit_mapping(pipeline, images, labels, side, mapping):
    """The framing near ``mapping`` that classifies ``images`` best once re-detected.

    Detects once per face, then scores every grid point on the faces found, cropped by the
    pipeline itself with the detector's ``crop`` set to the grid point (ties: the one
    nearest ``mapping``). Returns the best mapping and the grid's figures."""
    detector = pipeline.detector
    found = []
    for img, y in zip(images, labels):
        bgr, truth = canvas(img, side)
        frame = frame_from_image(bgr)
        dets = detector.detect(frame)
        i = best_match([d.box for d in dets], truth)
        if i is not None:
            found.append((frame, np.asarray([dets[i].box]), y))
    ys = np.array([y for _, _, y in found])
    grid = []
    scale0, dx0, dy0 = mapping
    for f in FIT_SCALES:
        for d in FIT_DYS:
            m = (round(scale0 * f, 3), dx0, round(dy0 + d, 3))
            detector.crop = m
            probs = np.concatenate([pipeline.classify(frame, box) for frame, box, _ in found])
            acc = float((probs.argmax(1) == ys).mean())
            grid.append({"mapping": m, "accuracy_when_found": acc, "distance": abs(f - 1) + abs(d)})
    best = max(grid, key=lambda g: (g["accuracy_when_found"], -g["distance"]))
    return tuple(best["mapping"]), {"faces": len(images), "found": len(found), "grid": grid}


def redetected_accuracy(pipeline, images, labels, side, given):
    """Accuracy through the device path; ``skew``: its accuracy minus the given-crop
    accuracy on the same (found) faces, i.e. what the detector's framing costs."""
    correct = found = given_found = 0
    for img, y, g in zip(images, labels, given):
        bgr, truth = canvas(img, side)
        result = pipeline.process(bgr)
        i = best_match([f.box for f in result.faces], truth)
        if i is None:
            continue
        found += 1
        given_found += g == y
        correct += LABELS.index(result.faces[i].emotion) == y
    n = len(images)
    return {
        "accuracy": correct / n,
        "found": found / n,
        "accuracy_when_found": correct / max(found, 1),
        "given_crop_accuracy_when_found": given_found / max(found, 1),
        "skew_points": 100 * (correct - given_found) / max(found, 1),
    }


def known_square_accuracy(pipeline, images, labels, side, given):
    """The device path's crop of the *known* square (no detector): what the canvas's
    resampling (48 px up to ``side``, then the pipeline's crop back down) and the pipeline's
    framings cost by themselves. A detector's skew beyond this one is its framing's."""
    detector = pipeline.detector
    kept = detector.crop
    detector.crop = (1.0, 0.0, 0.0)
    box_side = side / (1 + 2 * MARGIN)  # the box whose square with the margin is the truth
    at = side + (side - box_side) / 2
    box = np.asarray([[at, at, box_side, box_side]])
    try:
        correct = sum(
            int(pipeline.classify(frame_from_image(canvas(img, side)[0]), box)[0].argmax() == y)
            for img, y in zip(images, labels)
        )
    finally:
        detector.crop = kept
    n = len(images)
    return {
        "accuracy": correct / n,
        "skew_points": 100 * (correct - int((given == labels).sum())) / n,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, type=Path, help="FER2013 folder with train/ and test/")
    ap.add_argument("--detectors", default="blazeface,centerface,haar")
    ap.add_argument("--train-per-class", type=int, default=150)
    ap.add_argument("--test-per-class", type=int, default=0, help="0 = all PublicTest faces")
    ap.add_argument("--face", type=int, default=96, help="face side in the canvas, px")
    ap.add_argument(
        "--fit-data",
        type=Path,
        default=None,
        help="class folder (e.g. the validation slice) to fit the framing for accuracy on",
    )
    ap.add_argument(
        "--crop-jitter", type=float, default=None, help="model.crop_jitter (default: the config's)"
    )
    ap.add_argument(
        "--model", type=Path, default=None, help="a .tflite with its sidecar (default: shipped)"
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    config = Config()
    if args.model is not None:
        config.model.path = str(args.model)
    if args.crop_jitter is not None:
        config.model.crop_jitter = args.crop_jitter
    classifier = load_classifier(config.model)
    train_x, _ = faces(args.data / "train", args.train_per_class)
    fit_x, fit_y = faces(args.fit_data, None) if args.fit_data else ([], None)
    test_x, test_y = faces(args.data / "test", args.test_per_class or None)
    given = classifier.infer(np.stack(test_x)).argmax(1)
    report = {
        "face_px": args.face,
        "train_faces": len(train_x),
        "test_faces": len(test_x),
        "given_crop_accuracy": float((given == test_y).mean()),
        "model": str(config.model.path or "shipped deepfer_int8"),
        "crop_jitter": config.model.crop_jitter,  # two framings per face, averaged (if > 0)
        "detectors": {},
    }
    print(
        f"given-crop accuracy on {len(test_x)} PublicTest faces: {report['given_crop_accuracy']:.4f}"
    )
    for jitter in sorted({0.0, config.model.crop_jitter}):
        pipeline = FacePipeline.from_config(
            config, classifier, make_detector(config.detector), track=False
        )
        pipeline.crop_jitter = jitter
        row = known_square_accuracy(pipeline, test_x, test_y, args.face, given)
        report.setdefault("known_square", {})[f"crop_jitter={jitter:g}"] = row
        print(
            f"known square (no detector), crop_jitter {jitter:g}: accuracy "
            f"{row['accuracy']:.4f}; skew {row['skew_points']:+.2f} points",
            flush=True,
        )
    for name in filter(None, args.detectors.split(",")):
        config.detector.backend = name
        detector = make_detector(config.detector)
        t0 = time.perf_counter()
        mapping, stats = measure_mapping(detector, train_x, args.face)
        row = {"measured_mapping": mapping, "mapping_fit": stats, "shipped_mapping": detector.crop}
        mappings = [("none", (1.0, 0.0, 0.0)), ("measured", mapping)]
        if fit_x:
            pipeline = FacePipeline.from_config(config, classifier, detector, track=False)
            fitted, fit_stats = fit_mapping(pipeline, fit_x, fit_y, args.face, mapping)
            row["fitted_mapping"], row["fitted_on"] = (
                fitted,
                {
                    "data": str(args.fit_data),
                    **fit_stats,
                },
            )
            mappings.append(("fitted", fitted))
            print(f"{name:16} fitted on {args.fit_data}: {fitted}", flush=True)
        for label, crop in mappings:
            detector.crop = crop
            pipeline = FacePipeline.from_config(config, classifier, detector, track=False)
            row[f"redetected_{label}"] = redetected_accuracy(
                pipeline, test_x, test_y, args.face, given
            )
        row["seconds"] = round(time.perf_counter() - t0, 1)
        report["detectors"][name] = row
        print(
            f"{name:16} mapping {mapping} (found {stats['found']}/{stats['faces']}); re-detected "
            f"accuracy: no mapping {row['redetected_none']['accuracy']:.4f}, measured "
            f"{row['redetected_measured']['accuracy']:.4f} (found "
            f"{row['redetected_measured']['found']:.3f}, when found "
            f"{row['redetected_measured']['accuracy_when_found']:.4f} vs given crop "
            f"{row['redetected_measured']['given_crop_accuracy_when_found']:.4f}; skew "
            f"{row['redetected_none']['skew_points']:+.2f} -> "
            f"{row['redetected_measured']['skew_points']:+.2f} points)",
            flush=True,
        )
        if "redetected_fitted" in row:
            fitted_row = row["redetected_fitted"]
            print(
                f"{name:16} fitted {row['fitted_mapping']}: accuracy {fitted_row['accuracy']:.4f}, "
                f"when found {fitted_row['accuracy_when_found']:.4f} vs given crop "
                f"{fitted_row['given_crop_accuracy_when_found']:.4f}; skew "
                f"{fitted_row['skew_points']:+.2f} points",
                flush=True,
            )
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
