"""Shared fixtures: small data the tests make themselves, the real data when DEEPFER_DATA is set,
and one tiny trained model (Keras and TFLite with sidecar) per test session."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfer.edge.labels import LABELS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder (DEEPFER_DATA); skips the test when it is not set."""
    value = os.environ.get("DEEPFER_DATA")
    if not value:
        pytest.skip("DEEPFER_DATA is not set: point it at the shared data folder to run this test")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"DEEPFER_DATA={value} is not a folder")
    return path


@pytest.fixture(scope="session")
def media_dir(data_dir: Path) -> Path:
    path = data_dir / "media"
    if not path.is_dir():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="session")
def tiny_fer(tmp_path_factory) -> Path:
    """A tiny FER2013-like folder with train/ and test/."""
    root = tmp_path_factory.mktemp("tiny_fer")
    write_folder_layout(root, "train", 24, seed=1)
    write_folder_layout(root, "test", 6, seed=2)
    return root


@pytest.fixture(scope="session")
def tiny_keras_model(tmp_path_factory, tiny_fer) -> Path:
    """A deepfer-edge model trained a few epochs on the tiny set (seconds)."""
    import keras

    from deepfer.train.data import load_fer2013
    from deepfer.train.models import make_model

    keras.utils.set_random_seed(0)
    data = load_fer2013(tiny_fer, ("train",), progress=False)["train"]
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
    path = tmp_path_factory.mktemp("tiny_model") / "tiny.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_tflite_model(tmp_path_factory, tiny_keras_model, tiny_fer) -> Path:
    """The tiny model converted by ``deepfer convert``'s API: ``tiny_int8.tflite`` (full int8)
    with its complete sidecar, and ``tiny_float32.tflite`` beside it; both checked on tiny_fer's test split."""
    from deepfer.convert.quantize import convert_model

    result = convert_model(
        tiny_keras_model,
        tiny_fer,
        tmp_path_factory.mktemp("tiny_tflite") / "tiny",
        n_calibration=140,
        formats=("int8", "float32"),
        trained_on="synthetic test faces (tests/conftest.py)",
    )
    return result.path("int8")
