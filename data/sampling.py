"""Real faces for int8 calibration and for the held-out check after conversion.

The representative set is drawn from the *training* split of a FER2013 source
(``fer2013.csv``, Kaggle ``train/`` + ``test/`` folders, or one ``<class>/``
folder), balanced across the classes and deterministic for a given seed: the
same data and seed always give the same faces in the same order, so the same
Keras model always converts to the same int8 file.

The held-out set is faces that were not used for calibration: the source's
test split when it has one, else what is left of the training split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepfer.data.dataset import LAYOUT_CLASSES, DataError, FaceDataset
from deepfer.data.fer2013 import load_fer2013
from deepfer.data.splits import stratified_split
from deepfer.edge.errors import DeepFERError
from deepfer.edge.labels import LABELS

DEFAULT_CALIBRATION_SIZE = 350  # 50 faces per class
DEFAULT_SEED = 0
#: Cap on a held-out slice carved from the training split (when there is no test split).
DEFAULT_HELD_OUT_SLICE = 2000


class CalibrationError(DeepFERError, ValueError):
    """Calibration or check data that cannot be used, with what and where."""


def where(split: str, layout: str) -> str:
    """Where faces came from, for a message: ``"test split"``, or ``"class folders"``."""
    return "class folders" if layout == LAYOUT_CLASSES else f"{split} split"


def layout_and_split(split: str, layout: str) -> dict:
    """``{"layout": ..., "split": ...}`` for a sidecar; no ``split`` for class folders, which
    have none (they load whole as ``train``; a FER2013 split name would mislead)."""
    out = {"layout": layout} if layout else {}
    return out if layout == LAYOUT_CLASSES else {**out, "split": split}


@dataclass
class CalibrationSet:
    """The faces fed to the converter, with where they came from."""

    x: np.ndarray  # (n, h, w, 1) uint8
    y: np.ndarray  # (n,) class ids
    source: str
    split: str
    seed: int
    indices: np.ndarray  # positions in the split they were drawn from
    files: list[str] = field(default_factory=list)
    layout: str = ""  # the source's layout (FaceDataset.layout)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def per_class(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=len(LABELS))
        return {label: int(n) for label, n in zip(LABELS, counts)}

    def where(self) -> str:
        """``"train split"``, or ``"class folders"`` for a folder of class folders (loaded whole
        as ``train``: no FER2013 split to name)."""
        return where(self.split, self.layout)

    def describe(self) -> dict:
        """What the sidecar records about calibration: ``split`` where the source has splits,
        ``layout`` always."""
        return {
            "source": self.source,
            **layout_and_split(self.split, self.layout),
            "n": len(self),
            "per_class": self.per_class(),
            "seed": self.seed,
            "selection": "balanced across classes, seeded random order, real faces",
        }

    def faces(self, channels: int = 1) -> np.ndarray:
        """The faces as float32 pixels with ``channels`` channels (grey repeated)."""
        x = self.x.astype(np.float32)
        return x if channels == x.shape[3] else np.repeat(x[..., :1], channels, axis=3)

    def batches(self, channels: int = 1):
        """Representative-dataset generator for ``TFLiteConverter``: one float32 face per step."""
        x = self.faces(channels)
        for i in range(len(x)):
            yield [x[i : i + 1]]


@dataclass
class HeldOutSet:
    """Faces for the int8-vs-float check."""

    data: FaceDataset
    source: str
    split: str
    note: str = ""

    def where(self) -> str:
        return where(self.split, self.data.layout)

    def describe(self) -> dict:
        out = {
            "source": self.source,
            **layout_and_split(self.split, self.data.layout),
            "n": len(self.data),
        }
        if self.note:
            out["note"] = self.note
        return out


def load_source(source: str | Path, size: int, progress: bool = False) -> dict[str, FaceDataset]:
    """The ``train`` and ``test`` splits that a FER2013 source has (at least one)."""
    source = Path(source)
    if not source.exists():
        raise CalibrationError(f"{source}: calibration data not found (no such file or folder)")
    if source.is_dir() and not any(source.iterdir()):
        raise CalibrationError(
            f"{source}: the calibration folder is empty; give a FER2013 folder "
            "(train/<class>/*.jpg) or fer2013.csv"
        )
    try:
        splits = load_fer2013(source, ("train", "test"), size=size, progress=progress)
    except DataError as exc:
        raise CalibrationError(f"calibration data: {exc}") from None
    splits = {k: v for k, v in splits.items() if k in ("train", "test") and len(v)}
    if not splits:
        raise CalibrationError(f"{source}: no faces found in a train or test split")
    return splits


def balanced_indices(y: np.ndarray, n: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """``n`` indices into ``y``, as even across classes as the counts allow, in seeded order.

    Each class gets ``n // k`` (the remainder going to the classes with most
    faces); a class with too few faces gives all it has and the shortfall is
    spread over the others. Deterministic for a given ``y``, ``n`` and ``seed``.
    """
    if n <= 0:
        raise CalibrationError(f"calibration size must be positive, got {n}")
    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    n = min(n, len(y))
    quota = dict.fromkeys(classes.tolist(), 0)
    remaining = n
    open_classes = [c for c in classes.tolist()]
    avail = dict(zip(classes.tolist(), counts.tolist()))
    while remaining > 0 and open_classes:
        share, extra = divmod(remaining, len(open_classes))
        # larger classes take the remainder first; ties by class id, so it is deterministic
        ordered = sorted(open_classes, key=lambda c: (-(avail[c] - quota[c]), c))
        for i, c in enumerate(ordered):
            take = min(share + (1 if i < extra else 0), avail[c] - quota[c])
            quota[c] += take
            remaining -= take
        open_classes = [c for c in open_classes if quota[c] < avail[c]]
    rng = np.random.default_rng(seed)
    picked = []
    for c in classes.tolist():
        idx = np.flatnonzero(y == c)
        picked.append(rng.permutation(idx)[: quota[c]])
    chosen = np.concatenate(picked)
    return chosen[rng.permutation(len(chosen))]  # mix the classes in the feed order


def representative_set(
    splits: dict[str, FaceDataset],
    source: str | Path,
    n: int = DEFAULT_CALIBRATION_SIZE,
    seed: int = DEFAULT_SEED,
) -> CalibrationSet:
    """Balanced, deterministic real faces from the training split."""
    split = "train" if "train" in splits else next(iter(splits))
    ds = splits[split]
    idx = balanced_indices(ds.y, n, seed)
    files = [ds.files[i] for i in idx] if ds.files else []
    return CalibrationSet(
        ds.x[idx], ds.y[idx], str(source), split, seed, idx, files, layout=ds.layout
    )


def held_out_set(
    splits: dict[str, FaceDataset],
    source: str | Path,
    calibration: CalibrationSet | None = None,
    limit: int = 0,
    seed: int = DEFAULT_SEED,
) -> HeldOutSet:
    """Faces not used for calibration: the test split, else the rest of the training split.

    ``limit`` > 0 caps the number of faces (a stratified sample). Without a test
    split the slice is capped at :data:`DEFAULT_HELD_OUT_SLICE` unless ``limit`` says otherwise.
    """
    if "test" in splits:
        ds, split, note = splits["test"], "test", ""
    else:
        split = "train" if "train" in splits else next(iter(splits))
        ds = splits[split]
        keep = np.ones(len(ds), bool)
        if (
            calibration is not None
            and calibration.split == split
            and Path(calibration.source) == Path(source)
        ):
            keep[calibration.indices] = False
        ds = ds.subset(np.flatnonzero(keep), split)
        note = "no test split: faces of the training split not used for calibration"
        if ds.layout == LAYOUT_CLASSES:
            note = "faces of the class folders not used for calibration"
        limit = limit or DEFAULT_HELD_OUT_SLICE
    if len(ds) == 0:
        raise CalibrationError(f"{source}: no faces left for the held-out check")
    if limit and len(ds) > limit:
        _, held = stratified_split(ds.y, limit / len(ds), seed)
        ds = ds.subset(held, ds.name)
        note = (note + "; " if note else "") + f"stratified sample of {len(ds)} faces"
    return HeldOutSet(ds, str(source), split, note)
