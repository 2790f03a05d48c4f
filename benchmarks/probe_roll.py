"""Does levelling a tilted face with its eye keypoints help the classifier?

FER2013's faces are roughly upright (eye-line roll IQR about 8.5 degrees,
``probe_keypoint_framing.py``); a camera sees heads tilted further. Each face of a class
folder (the validation slice from ``val_slice.py``, never PublicTest) is upscaled into a
canvas (its border repeated outwards, or grey), the canvas is turned by each of
``--angles``, and the detector runs on it. For the faces found, the classifier scores crops
framed as the pipeline frames them (both framings, averaged) in these variants:

- ``upright``: the square as it stands (the pipeline before levelling);
- ``level>T``: turned by the eye line's angle when that is steeper than T degrees;
- ``clampT``: turned just enough to bring the eye line within T degrees of level (FER2013's
  own faces lean a little; only the lean beyond T is undone);
- ``oracle``: turned back by the known angle (the most levelling can give).

It also reports how well the eye line measures the known turn (median and IQR of the error).

With ``--media`` (a folder of photos and videos, e.g. ``$DEEPFER_DATA/media``; no labels)
the same variants are compared on real pictures turned by the same angles: the agreement of
each variant's emotion with the one read from the upright picture, per face found in both.

    python benchmarks/probe_roll.py /tmp/val-slice-1337 --detectors blazeface,centerface \\
        --json benchmarks/results/detectors/roll.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import measure_crop_mapping as mapping
import numpy as np
from probe_canvas_surround import SURROUNDS
from results_file import write_json

from deepfer.edge.capture.frame import frame_from_image
from deepfer.edge.config import Config
from deepfer.edge.detectors import make_detector
from deepfer.edge.model.classifier import load_classifier
from deepfer.edge.pipeline import FacePipeline
from deepfer.edge.preprocess import crop_face


def turned(bgr: np.ndarray, angle: float) -> np.ndarray:
    """The canvas turned by ``angle`` degrees (counter-clockwise on screen) about its centre."""
    h, w = bgr.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    return cv2.warpAffine(bgr, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def pictures(folder: Path, every: int):
    """``(name, bgr)`` of every photo and every ``every``-th frame of every video in ``folder``."""
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            image = cv2.imread(str(path))
            if image is not None:
                yield path.name, image
        elif path.suffix.lower() in (".mp4", ".avi", ".mkv", ".mov"):
            video = cv2.VideoCapture(str(path))
            i = 0
            while True:
                ok, image = video.read()
                if not ok:
                    break
                if i % every == 0:
                    yield f"{path.name}#{i}", image
                i += 1
            video.release()


def media_agreement(config, backend, classifier, folder, every, angles, thresholds):
    """Per angle and variant: how often the emotion read from the turned picture is the one
    read from the upright picture (faces found in both, matched by their turned centres);
    ``clampT``: the pipeline with ``level_above = T``, the upright reading with 90 (never)."""
    config.detector.backend = backend
    detector = make_detector(config.detector, photos=True)
    pipeline = FacePipeline.from_config(config, classifier, detector, track=False, stills=True)
    pipeline.level_above = 90.0
    agree = {a: {} for a in angles}
    faces = {a: 0 for a in angles}
    for _, image in pictures(folder, every):
        frame = frame_from_image(image)
        boxes, rolls, _ = pipeline.detect(frame)
        if not len(boxes):
            continue
        reading = pipeline.classify(frame, boxes, rolls).argmax(1)
        h, w = image.shape[:2]
        for a in agree:
            m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), a, 1.0)
            turned_frame = frame_from_image(turned(image, a))
            tb, tr, _ = pipeline.detect(turned_frame)
            centres = np.c_[boxes[:, :2] + boxes[:, 2:] / 2.0, np.ones(len(boxes))] @ m.T
            tc = tb[:, :2] + tb[:, 2:] / 2.0
            for i, c in enumerate(centres):
                if not len(tb):
                    break
                k = int(np.argmin(np.hypot(*(tc - c).T)))
                if np.hypot(*(tc[k] - c)) > 0.5 * boxes[i, 2:].max():
                    continue
                faces[a] += 1
                variants = {"upright": 90.0, **{f"clamp{t:g}": t for t in thresholds}}
                for name, level_above in variants.items():
                    pipeline.level_above = level_above
                    got = pipeline.classify(turned_frame, tb[k : k + 1], tr[k : k + 1]).argmax(1)
                    agree[a][name] = agree[a].get(name, 0) + int(got[0] == reading[i])
                pipeline.level_above = 90.0
    rows = {
        f"{a:g}": {
            "faces": faces[a],
            **{k: round(v / max(faces[a], 1), 4) for k, v in agree[a].items()},
        }
        for a in agree
    }
    for a, row in rows.items():
        print(backend, "media", f"{float(a):+g} deg", row, flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("faces", type=Path, help="class folder, e.g. the validation slice")
    ap.add_argument("--detectors", default="blazeface,centerface")
    ap.add_argument("--angles", default="0,10,-10,20,-20,35,-35")
    ap.add_argument("--thresholds", default="0,10,15,20", help="levelling thresholds, degrees")
    ap.add_argument("--surround", default="replicate", choices=sorted(SURROUNDS))
    ap.add_argument("--face", type=int, default=96)
    ap.add_argument("--per-class", type=int, default=0, help="faces per class (0: all)")
    ap.add_argument("--model", default="", help=".tflite to measure (default: the shipped one)")
    ap.add_argument("--media", type=Path, default=None, help="photos and videos, no labels")
    ap.add_argument("--every", type=int, default=8, help="--media: every n-th video frame")
    ap.add_argument("--skip-faces", action="store_true", help="only --media")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    config = Config()
    if args.model:
        config.model.path = args.model
    classifier = load_classifier(config.model)
    size, margin, j = classifier.input_size[0], config.model.margin, config.model.crop_jitter
    scales = (1 - j, 1 + j) if j else (1.0,)
    angles = [float(a) for a in args.angles.split(",")]
    thresholds = [float(t) for t in args.thresholds.split(",")]
    xs, ys = ([], []) if args.skip_faces else mapping.faces(args.faces, args.per_class or None)
    make_canvas = SURROUNDS[args.surround]
    out = {
        "model": str(classifier.path),
        "faces": len(xs),
        "surround": args.surround,
        "face_px": args.face,
        "crop_jitter": j,
        "detectors": {},
    }
    backends = list(filter(None, args.detectors.split(",")))
    if args.media is not None:
        out["media"] = {
            b: media_agreement(config, b, classifier, args.media, args.every, angles, thresholds)
            for b in backends
        }
    for backend in backends if xs else []:
        config.detector.backend = backend
        detector = make_detector(config.detector)
        rows = {}
        for a in angles:
            t0 = time.perf_counter()
            crops: dict[str, list[np.ndarray]] = {}
            labels, errors = [], []
            for img, y in zip(xs, ys):
                bgr, truth = make_canvas(img, args.face)
                bgr = turned(bgr, a)
                dets = detector.detect(bgr)
                i = mapping.best_match([d.box for d in dets], truth)
                if i is None:
                    continue
                det, gray = dets[i], cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
                roll = det.roll
                errors.append(roll + a)  # the canvas turned by a puts the eye line at -a
                variants = {"upright": 0.0, "oracle": -a}
                for t in thresholds:
                    variants[f"level>{t:g}"] = roll if abs(roll) > t else 0.0
                    variants[f"clamp{t:g}"] = np.sign(roll) * max(0.0, abs(roll) - t)
                for name, angle in variants.items():
                    crops.setdefault(name, []).extend(
                        crop_face(gray, detector.crop_box(det.box, k), size, margin, angle)
                        for k in scales
                    )
                labels.append(y)
            n = len(labels)
            row = {"found": n / len(xs), "eye_line_error_median": None, "accuracy_when_found": {}}
            if n:
                e = np.asarray(errors)
                row["eye_line_error_median"] = round(float(np.median(e)), 2)
                row["eye_line_error_iqr"] = round(
                    float(np.subtract(*np.percentile(e, [75, 25]))), 2
                )
                for name, cs in crops.items():
                    p = classifier.infer(np.stack(cs))
                    p = p.reshape(n, len(scales), -1).mean(1)
                    row["accuracy_when_found"][name] = round(
                        float((p.argmax(1) == labels).mean()), 4
                    )
            row["seconds"] = round(time.perf_counter() - t0, 1)
            rows[f"{a:g}"] = row
            print(backend, f"{a:+g} deg", row, flush=True)
        out["detectors"][backend] = rows
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
