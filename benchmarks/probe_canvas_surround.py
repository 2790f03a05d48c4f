"""How much the re-detected skew depends on what surrounds the FER2013 face in the canvas.

``measure_crop_mapping.py`` places each upscaled 48x48 face in a mid-grey canvas. Real faces
have hair, neck and background around them; a detector box larger than FER2013's framing
takes grey into the crop. This probe re-runs the re-detected accuracy on a class folder
(the validation slice from ``val_slice.py``, never PublicTest) with three surrounds: grey,
the face's border pixels replicated outwards, and that replicated border blurred (context
without copied detail). The spread is the measurement's own uncertainty.

    python benchmarks/probe_canvas_surround.py /tmp/val-slice-1337 --detectors blazeface,haar \\
        --json benchmarks/results/detectors/canvas_surround.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import measure_crop_mapping as mapping
import numpy as np
from results_file import write_json

from deepfer.edge.config import Config
from deepfer.edge.detectors import make_detector
from deepfer.edge.model.classifier import load_classifier
from deepfer.edge.pipeline import FacePipeline


def replicate(face: np.ndarray, side: int):
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    out = cv2.copyMakeBorder(big, side, side, side, side, cv2.BORDER_REPLICATE)
    return cv2.cvtColor(out, cv2.COLOR_GRAY2BGR), (side, side, side, side)


def blurred(face: np.ndarray, side: int):
    img, box = replicate(face, side)
    out = cv2.GaussianBlur(img, (0, 0), side / 6)
    out[side : 2 * side, side : 2 * side] = img[side : 2 * side, side : 2 * side]
    return out, box


SURROUNDS = {"grey": mapping.canvas, "replicate": replicate, "blurred": blurred}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("faces", type=Path, help="class folder, e.g. the validation slice")
    ap.add_argument("--detectors", default="blazeface,haar")
    ap.add_argument("--face", type=int, default=96)
    ap.add_argument("--model", default="", help=".tflite to measure (default: the shipped one)")
    ap.add_argument(
        "--crop-jitter", type=float, default=None, help="model.crop_jitter (default: the config's)"
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    config = Config()
    if args.model:
        config.model.path = args.model
    if args.crop_jitter is not None:
        config.model.crop_jitter = args.crop_jitter
    classifier = load_classifier(config.model)
    xs, ys = mapping.faces(args.faces, None)
    given = classifier.infer(np.stack(xs)).argmax(1)
    out = {
        "model": str(classifier.path),
        "faces": len(xs),
        "given_crop_accuracy": float((given == ys).mean()),
        "detectors": {},
    }
    for backend in args.detectors.split(","):
        config.detector.backend = backend
        rows = {}
        for name, make_canvas in SURROUNDS.items():
            mapping.canvas = make_canvas  # redetected_accuracy draws its canvas with it
            pipeline = FacePipeline.from_config(
                config, classifier, make_detector(config.detector), track=False
            )
            r = mapping.redetected_accuracy(pipeline, xs, ys, args.face, given)
            rows[name] = {k: round(float(v), 4) for k, v in r.items()}
            print(backend, name, rows[name], flush=True)
        out["detectors"][backend] = rows
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
