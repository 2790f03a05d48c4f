"""Calibration and held-out faces for the converter: balanced, deterministic, disjoint."""

from __future__ import annotations

import numpy as np
import pytest

from deepfer.data.dataset import FaceDataset
from deepfer.data.sampling import (
    CalibrationError,
    balanced_indices,
    held_out_set,
    representative_set,
)


def test_calibration_set_is_balanced_and_deterministic():
    y = np.repeat(np.arange(7), [50, 3, 40, 60, 45, 30, 20])
    a = balanced_indices(y, 70, seed=0)
    assert np.array_equal(a, balanced_indices(y, 70, seed=0))
    assert not np.array_equal(a, balanced_indices(y, 70, seed=1))
    assert len(np.unique(a)) == 70
    counts = np.bincount(y[a], minlength=7)
    assert counts[1] == 3  # the rare class gives all it has ...
    assert counts.sum() == 70 and counts.max() - counts[counts != 3].min() <= 1  # ... rest even
    assert len(balanced_indices(y, 10_000)) == len(y)
    with pytest.raises(CalibrationError):
        balanced_indices(y, 0)


def test_held_out_slice_excludes_calibration_faces():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(7), 30)
    ds = FaceDataset(rng.integers(0, 255, (len(y), 48, 48, 1), dtype=np.uint8), y, "train")
    ds.x[:, 0, 0, 0] = np.arange(len(y))  # tag each face
    splits = {"train": ds}
    calib = representative_set(splits, "src", n=70, seed=3)
    held = held_out_set(splits, "src", calib)
    assert held.split == "train" and len(held.data) == len(y) - 70
    assert not set(calib.x[:, 0, 0, 0]) & set(held.data.x[:, 0, 0, 0])
