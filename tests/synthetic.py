"""Learnable stand-in faces the tests make themselves (no data set needed), and a tiny
deepfer-edge model trained on them (tests/assets/make_tiny_model.py, the Keras fixtures)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from deepfer.edge.labels import LABELS


def synthetic_faces(n_per_class: int = 12, size: int = 48, seed: int = 0):
    """Learnable stand-in faces: class k is a grating at its own angle, on noise."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    k = len(LABELS)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for c in range(k):
        angle = np.pi * c / k
        for _ in range(n_per_class):
            phase = rng.uniform(0, 2 * np.pi)
            wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / 8 + phase)
            img = 128 + 70 * wave + rng.normal(0, 20, (size, size))
            xs.append(np.clip(img, 0, 255).astype(np.uint8))
            ys.append(c)
    return np.stack(xs), np.asarray(ys)


def write_folder_layout(root: Path, split: str, n_per_class: int = 12, seed: int = 0) -> Path:
    """Kaggle-style ``root/split/<class>/*.png``."""
    x, y = synthetic_faces(n_per_class, seed=seed)
    for i, (img, c) in enumerate(zip(x, y)):
        d = root / split / LABELS[c]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{split}_{i:05d}.png"), img)
    return root / split


def train_tiny_keras_model(data_root: Path, out: Path) -> Path:
    """A deepfer-edge model trained a few epochs on ``data_root/train`` (seconds; needs Keras)."""
    import keras

    from deepfer.data.fer2013 import load_fer2013
    from deepfer.train.models import make_model

    keras.utils.set_random_seed(0)
    data = load_fer2013(data_root, ("train",), progress=False)["train"]
    model = make_model("deepfer-edge")
    for layer in model.layers:  # few steps: let BatchNorm's moving statistics settle
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.6
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(data.x.astype("float32"), data.y, epochs=12, batch_size=32, verbose=0)
    model.save(out)
    return out


def convert_tiny_model(keras_model: Path, data_root: Path, out: Path, trained_on: str):
    """The tiny model converted by ``deepfer convert``'s API to ``out``'s ``_int8`` (full int8,
    calibrated on ``data_root``) and ``_float32`` .tflite files with their sidecars: the
    :class:`ConversionResult` (needs TensorFlow)."""
    from deepfer.convert.quantize import convert_model

    return convert_model(
        keras_model,
        data_root,
        out,
        n_calibration=140,
        formats=("int8", "float32"),
        trained_on=trained_on,
    )


def make_tiny_fer(root: Path) -> Path:
    """A tiny FER2013-like folder with train/ and test/."""
    write_folder_layout(root, "train", 24, seed=1)
    write_folder_layout(root, "test", 6, seed=2)
    return root
