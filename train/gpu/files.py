"""The packed faces in, weight files out and in."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .model import SIZE, split_state


def decode(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    import cv2

    out = np.empty((len(offsets) - 1, SIZE, SIZE), np.uint8)
    for i in range(len(offsets) - 1):
        img = cv2.imdecode(blob[offsets[i] : offsets[i + 1]], cv2.IMREAD_GRAYSCALE)
        if img is None or img.shape != (SIZE, SIZE):
            raise ValueError(f"face {i}: not a {SIZE}x{SIZE} grayscale JPEG")
        out[i] = img
    return out


def load_faces(path: Path) -> dict:
    """The packed faces, checked against the pixels' checksums the desktop loader gave."""
    with np.load(path) as d:
        data = {k: d[k] for k in d.files}
    out = {}
    for split in ("train", "val"):
        x = decode(data[f"{split}_jpeg"], data[f"{split}_offsets"])
        digest = hashlib.sha256(x.tobytes()).hexdigest()
        out[f"{split}_same_pixels"] = digest == str(data[f"{split}_sha256"])
        out[split] = (x, data[f"{split}_y"].astype(np.int32))
    return out


def model_indices(path) -> list[int]:
    """The model numbers ``i`` of a weight file (arrays named ``m<i>/<weight name>``)."""
    with np.load(path) as d:
        return sorted({int(k.split("/")[0][1:]) for k in d.files})


def load_models(paths) -> tuple[dict, dict]:
    """Every model of the weight files ``paths`` (``m<i>/<name>``), stacked, as float32."""
    import jax.numpy as jnp

    models = []
    for path in paths:
        with np.load(path) as d:
            for i in model_indices(path):
                models.append(
                    {
                        k.split("/", 1)[1]: d[k].astype(np.float32)
                        for k in d.files
                        if k.startswith(f"m{i}/")
                    }
                )
    weights = {k: jnp.asarray(np.stack([m[k] for m in models])) for k in models[0]}
    return split_state(weights)


def save_models(path: Path, params, state, index) -> None:
    """Models ``index`` of stacked (params, state) as ``m<i>/<weight name>`` arrays."""
    arrays = {}
    for i in index:
        for k, v in {**params, **state}.items():
            arrays[f"m{i}/{k}"] = np.asarray(v[i], np.float32)
    np.savez(path, **arrays)
