"""Faces and labels in memory: :class:`FaceDataset`, and the one data error."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deepfer.edge.errors import DeepFERError
from deepfer.edge.labels import LABELS


class DataError(DeepFERError, ValueError):
    """A data set that cannot be loaded, with what and where."""


#: How :func:`deepfer.data.fer2013.load_fer2013` found a data set: one labelled folder of
#: ``<class>/`` folders (a user's own faces, loaded whole as ``train``), split folders
#: (``train/``, ``test/``, ...) or ``fer2013.csv``'s Usage column.
LAYOUT_CLASSES, LAYOUT_SPLITS, LAYOUT_CSV = "class folders", "split folders", "csv"


@dataclass
class FaceDataset:
    """Faces as ``x`` (n, size, size, 1) uint8 and labels ``y`` (n,) int64; ``layout``: the
    layout it was read from (:data:`LAYOUT_CLASSES`, :data:`LAYOUT_SPLITS`, :data:`LAYOUT_CSV`, or
    "" when not loaded from a source)."""

    x: np.ndarray
    y: np.ndarray
    name: str = ""
    files: list[str] = field(default_factory=list)
    skipped: int = 0
    layout: str = ""

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=len(LABELS))
        return {label: int(n) for label, n in zip(LABELS, counts)}

    def subset(self, index: np.ndarray, name: str | None = None) -> FaceDataset:
        files = [self.files[i] for i in index] if self.files else []
        return FaceDataset(
            self.x[index], self.y[index], name or self.name, files, layout=self.layout
        )


def format_counts(ds: FaceDataset) -> str:
    """``name: n faces: angry 10 (5.0%), ...``"""
    counts = ds.class_counts()
    total = max(len(ds), 1)
    parts = [f"{k} {v} ({100 * v / total:.1f}%)" for k, v in counts.items()]
    return f"{ds.name}: {len(ds)} faces: " + ", ".join(parts)
