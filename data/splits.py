"""Split names and how to cut data: stratified hold-outs, per-class caps, class weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepfer.edge.labels import LABELS

#: fer2013.csv Usage -> DeepFER split name.
CSV_USAGES = {"Training": "train", "PublicTest": "test", "PrivateTest": "private_test"}
#: Folder names accepted for each split (matched case-insensitively, first found wins).
SPLIT_FOLDERS = {
    "train": ("train", "training"),
    "test": ("test", "testing", "publictest", "public_test"),
    "val": ("validation", "val", "valid"),
    "private_test": ("private_test", "privatetest", "private"),
}
#: Every spelling of a split (a folder name or ``--split`` value) -> the split name.
SPLIT_ALIASES = {
    alias: split for split, names in SPLIT_FOLDERS.items() for alias in (split, *names)
}


def split_name(text: str) -> str | None:
    """``"PublicTest"`` -> ``"test"``; None for a name that is no split."""
    return SPLIT_ALIASES.get(text.strip().lower())


def find_split_dir(root: Path, split: str) -> Path | None:
    """The folder of ``split`` under ``root`` (names in :data:`SPLIT_FOLDERS`, any case)."""
    root = Path(root)
    if not root.is_dir():
        return None
    folders = {p.name.lower(): p for p in sorted(root.iterdir()) if p.is_dir()}
    for name in SPLIT_FOLDERS.get(split, ()):
        if name in folders:
            return folders[name]
    return None


def stratified_split(
    y: np.ndarray, fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) with ``fraction`` of every class held out."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        n_held = int(round(len(idx) * fraction))
        if len(idx) > 1:
            n_held = min(max(n_held, 1), len(idx) - 1)
        held.append(idx[:n_held])
        keep.append(idx[n_held:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def cap_per_class(y: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Sorted indices keeping at most ``per_class`` seeded-random faces of each class."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        keep.append(rng.permutation(idx)[:per_class])
    return np.sort(np.concatenate(keep))


def class_weights(y: np.ndarray, num_classes: int = len(LABELS)) -> dict[int, float]:
    """Balanced class weights (n / (k * count)), as scikit-learn computes them."""
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = len(y) / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}
