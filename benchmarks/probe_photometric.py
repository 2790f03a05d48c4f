"""How the classifier holds up when the light and the camera change: accuracy on copies of
held-out faces (the validation slice from ``val_slice.py``, never PublicTest) that are dimmed,
lower in contrast, gamma-curved or noisy, as they are (``none``), with each face stretched
to FER2013's mean and spread first (``standardise``: what a photometric normalisation inside
the model would buy without retraining), and with only the faces outside the range of nine
in ten training faces brought just inside it (``light``: ``model.normalise_light``, what the
device does, :func:`deepfer.edge.preprocess.normalise_light`).

Noise is added either to the 48-px face itself or, as a camera would, to the face at three
times that size before the area-resize down to 48 px (the crop path's own resize).

    python benchmarks/probe_photometric.py /work/runs/val-slice-1337 \\
        --json benchmarks/results/shipped/photometric.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from measure_crop_mapping import faces
from results_file import write_json

from deepfer.edge.config import Config
from deepfer.edge.model.classifier import load_classifier
from deepfer.edge.preprocess import normalise_light

#: FER2013's mean grey level and mean per-face standard deviation (Training split).
FER_MEAN, FER_STD = 129.4, 53.8


def camera_noise(x: np.ndarray, sigma: float, rng) -> np.ndarray:
    out = []
    for face in x:
        big = cv2.resize(face, (144, 144), interpolation=cv2.INTER_CUBIC)
        big = big + rng.normal(0, sigma, big.shape).astype(np.float32)
        out.append(cv2.resize(big, (48, 48), interpolation=cv2.INTER_AREA))
    return np.stack(out)


def standardise(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(len(x), -1)
    m, s = flat.mean(1)[:, None, None], flat.std(1)[:, None, None]
    return (x - m) / np.maximum(s, 1.0) * FER_STD + FER_MEAN


def light(x: np.ndarray) -> np.ndarray:
    return np.stack([normalise_light(u8(face)) for face in x]).astype(np.float32)


def u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("faces", type=Path, help="class folder, e.g. the validation slice")
    ap.add_argument("--model", default="", help=".tflite model (default: the shipped one)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    config = Config()
    if args.model:
        config.model.path = args.model
    classifier = load_classifier(config.model)
    images, y = faces(args.faces, None)
    x = np.stack(images).astype(np.float32)
    rng = np.random.default_rng(0)
    variants = {
        "plain": x,
        "dimmed x0.4": x * 0.4,
        "dimmed x0.1": x * 0.1,
        "dimmed x0.04": x * 0.04,
        "contrast x0.5": 0.5 * x + 64,
        "bright, contrast x0.5": 0.5 * x + 120,
        "gamma 2": 255 * (x / 255) ** 2,
        "gamma 0.5": 255 * (x / 255) ** 0.5,
        "noise 8 (48 px)": x + rng.normal(0, 8, x.shape),
        "noise 8 (camera)": camera_noise(x, 8, rng),
        "dimmed x0.4, noise 8 (camera)": camera_noise(x * 0.4, 8, rng),
        "dimmed x0.1, noise 3 (camera)": camera_noise(x * 0.1, 3, rng),
    }
    report = {"model": str(config.model.path or "shipped deepfer_int8"), "faces": len(y)}
    preps = {"none": lambda a: a, "standardise": standardise, "light": light}
    for prep, fn in preps.items():
        rows = {}
        plain = None
        for name, copies in variants.items():
            pred = classifier.infer(u8(fn(u8(copies).astype(np.float32)))[..., None]).argmax(1)
            plain = pred if plain is None else plain
            rows[name] = {
                "accuracy": round(float((pred == y).mean()), 4),
                "agreement_with_plain": round(float((pred == plain).mean()), 4),
            }
        report[prep] = rows
        print(f"{prep}: " + " | ".join(f"{k} {v['accuracy']:.4f}" for k, v in rows.items()))
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
