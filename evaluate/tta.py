"""Test-time augmentation: the views of a batch, and probabilities averaged over them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from deepfer.edge.labels import LABELS
from deepfer.evaluate.predictors import Predictor, as_batch, load_predictor

TTA_MODES = ("flip", "centre", "tencrop")
#: Ten-crop: crops of this fraction of the side (44 px of 48), resized back to the input.
TENCROP_FRACTION = 44 / 48


def flip_views(x: np.ndarray) -> list[np.ndarray]:
    """The batch and its horizontal mirror."""
    return [x, x[:, :, ::-1]]


def _resize_batch(crop: np.ndarray, h: int, w: int) -> np.ndarray:
    n = len(crop)
    return np.stack(
        [cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in crop[..., 0]]
    ).reshape(n, h, w, 1)


def centre_views(x: np.ndarray, fraction: float = TENCROP_FRACTION) -> list[np.ndarray]:
    """One view: the centre crop of ``fraction`` of the side, resized back to the input size
    (for models trained on random crops; one pass per face, as the plain model)."""
    n, h, w = x.shape[:3]
    ch, cw = max(int(round(h * fraction)), 1), max(int(round(w * fraction)), 1)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return [_resize_batch(x[:, y0 : y0 + ch, x0 : x0 + cw], h, w)]


def tencrop_views(x: np.ndarray, fraction: float = TENCROP_FRACTION) -> list[np.ndarray]:
    """Ten views: four corner crops and the centre crop, and their mirrors, resized back to size."""
    n, h, w = x.shape[:3]
    ch, cw = max(int(round(h * fraction)), 1), max(int(round(w * fraction)), 1)
    origins = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), ((h - ch) // 2, (w - cw) // 2)]
    views = []
    for y0, x0 in origins:
        resized = _resize_batch(x[:, y0 : y0 + ch, x0 : x0 + cw], h, w)
        views += [resized, resized[:, :, ::-1]]
    return views


def tta_views(x: np.ndarray, tta: str | None) -> list[np.ndarray]:
    """The views averaged for a test-time augmentation mode (``None``/"none": just ``x``)."""
    if tta in (None, "", "none"):
        return [x]
    if tta == "flip":
        return flip_views(x)
    if tta == "centre":
        return centre_views(x)
    if tta == "tencrop":
        return tencrop_views(x)
    raise ValueError(
        f"unknown test-time augmentation {tta!r}; choose none, flip, centre or tencrop"
    )


def predict_probs(
    model_path: str | Path | Predictor,
    x: np.ndarray,
    tta: str | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Probabilities ``(n, 7)`` in :data:`LABELS` order for uint8 faces ``(n, H, W[, 1])``.

    ``model_path`` is a .tflite (with sidecar), .keras or .h5 file, or a
    :class:`Predictor` from :func:`load_predictor` (to load it only once).
    Faces of another size are resized to the model's input. ``tta`` is
    ``None``, ``"flip"``, ``"centre"`` or ``"tencrop"``: the mean probability over the views.
    Predicting with a .tflite never imports TensorFlow.
    """
    model = model_path if isinstance(model_path, Predictor) else load_predictor(model_path)
    x = as_batch(x, model.input_size)
    views = tta_views(x, tta)
    probs = np.zeros((len(x), len(LABELS)), np.float64)
    for view in views:
        probs += model.predict(np.ascontiguousarray(view), batch_size)
    return (probs / len(views)).astype(np.float32)
