"""An exact-size stratified sample: ``deepfer benchmark --limit N`` and ``deepfer convert
--check-size N`` measure on exactly N faces.

(:func:`deepfer.data.splits.stratified_split` holds out a *fraction* of each class, at least
one face each, so asking it for 3 faces of 7 classes gives 7.)
"""

from __future__ import annotations

import numpy as np


def classes_in(y: np.ndarray) -> int:
    """How many classes occur in ``y``."""
    return int(np.unique(np.asarray(y)).size)


def stratified_sample(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of exactly ``min(n, len(y))`` faces, each class in proportion to its
    share of ``y`` and at least one face (largest remainders get the faces left over);
    deterministic for a given ``y``, ``n`` and ``seed``.

    Raises ValueError when ``n`` is smaller than the number of classes in ``y`` (a sample
    that leaves classes out is not stratified): callers say which option to raise.
    """
    y = np.asarray(y)
    if n >= len(y):
        return np.arange(len(y))
    classes, counts = np.unique(y, return_counts=True)
    if n < len(classes):
        raise ValueError(f"{n} faces cannot hold one of each of the {len(classes)} classes")
    ideal = counts * (n / len(y))
    quota = np.minimum(np.maximum(np.floor(ideal).astype(int), 1), counts)
    while quota.sum() < n:  # the largest remainders first; ties to the lower class id
        room = np.where(quota < counts, ideal - quota, -np.inf)
        quota[int(np.argmax(room))] += 1
    while quota.sum() > n:  # the minimum of one pushed it over: take from the most over
        over = np.where(quota > 1, quota - ideal, -np.inf)
        quota[int(np.argmax(over))] -= 1
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes.tolist(), quota)]
    return np.sort(np.concatenate(picked))
