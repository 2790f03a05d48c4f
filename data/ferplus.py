"""FER+ (Barsoum et al., 2016): ten annotators' votes per FER2013 face, and the majority label."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from deepfer.data.dataset import DataError, FaceDataset
from deepfer.edge.labels import FOLDER_ALIASES, LABELS

#: FER+ vote columns -> DeepFER labels; ``contempt``, ``unknown`` and ``NF`` (not a face)
#: have no DeepFER counterpart.
FERPLUS_COLUMNS = {
    "neutral": "neutral",
    "happiness": "happy",
    "surprise": "surprise",
    "sadness": "sad",
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "contempt": None,
    "unknown": None,
    "NF": None,
}


def load_ferplus_votes(path: str | Path) -> dict[str, np.ndarray]:
    """``file -> votes`` (in :data:`FERPLUS_COLUMNS` order) from a ``ferplus_*.csv``."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # (Excel writes a BOM)
            reader = csv.DictReader(fh)
            missing = [c for c in ("file", *FERPLUS_COLUMNS) if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: not a FER+ votes file; missing columns {missing}")
            votes = {}
            for line, row in enumerate(reader, start=2):
                try:
                    votes[row["file"]] = np.array([int(row[c]) for c in FERPLUS_COLUMNS])
                except (TypeError, ValueError):
                    raise DataError(f"{path}:{line}: vote counts must be integers") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the FER+ votes ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file (expected FER+ votes)") from None
    return votes


def votes_for(votes: dict[str, np.ndarray], name: str) -> np.ndarray | None:
    """A face's votes by its file name relative to the split folder (``happy/x.jpg``); a
    class folder spelt otherwise (``Happy/``, ``happiness/``, ``scared/``) is looked up by
    the class it is read as, the name the votes file uses."""
    name = name.replace("\\", "/")
    found = votes.get(name)
    if found is None and "/" in name:
        folder, rest = name.split("/", 1)
        label = FOLDER_ALIASES.get(folder.lower())
        if label is not None:
            found = votes.get(f"{label}/{rest}")
    return found


def ferplus_majority(ds: FaceDataset, votes: dict[str, np.ndarray]) -> tuple[FaceDataset, dict]:
    """``ds`` relabelled with the FER+ majority vote, and what was left out.

    A face keeps its place when one of the seven DeepFER classes has strictly the
    most votes; faces whose top vote is contempt, unknown or not-a-face, faces with
    a tie at the top, and faces the votes file does not list are left out (the
    FER+ "majority" protocol, without contempt, which DeepFER has no class for).
    """
    if not ds.files:
        raise DataError(f"{ds.name}: FER+ labels need image files (the Kaggle folder layout)")
    index = {label: i for i, label in enumerate(LABELS)}
    targets = [index.get(label, -1) if label else -1 for label in FERPLUS_COLUMNS.values()]
    keep, labels = [], []
    left_out = {"contempt": 0, "unknown": 0, "NF": 0, "tie": 0, "not in the votes file": 0}
    names = list(FERPLUS_COLUMNS)
    for i, name in enumerate(ds.files):
        v = votes_for(votes, name)
        if v is None:
            left_out["not in the votes file"] += 1
            continue
        top = np.flatnonzero(v == v.max())
        if len(top) > 1 or v.max() == 0:
            left_out["tie"] += 1
        elif targets[top[0]] < 0:
            left_out[names[top[0]]] += 1
        else:
            keep.append(i)
            labels.append(targets[top[0]])
    kept = ds.subset(np.asarray(keep, dtype=np.int64), f"{ds.name} (FER+ majority)")
    kept.y = np.asarray(labels, dtype=np.int64)
    changed = int((ds.y[keep] != kept.y).sum()) if keep else 0
    info = {"faces": len(ds), "kept": len(keep), "left_out": left_out, "label_changed": changed}
    return kept, info


def ferplus_distributions(ds: FaceDataset, votes: dict[str, np.ndarray]) -> np.ndarray:
    """``(n, 7)`` float32: each face's FER+ votes over the seven DeepFER classes (in
    :data:`deepfer.edge.labels.LABELS` order), normalised to sum to 1; a row of zeros
    for a face the votes file does not list or whose votes all went to contempt,
    unknown or not-a-face (such a face has no FER+ opinion to learn from)."""
    if not ds.files:
        raise DataError(f"{ds.name}: FER+ votes need image files (the Kaggle folder layout)")
    index = {label: i for i, label in enumerate(LABELS)}
    columns = [(j, index[label]) for j, label in enumerate(FERPLUS_COLUMNS.values()) if label]
    out = np.zeros((len(ds), len(LABELS)), np.float32)
    for i, name in enumerate(ds.files):
        v = votes_for(votes, name)
        if v is None:
            continue
        for j, k in columns:
            out[i, k] = v[j]
        total = out[i].sum()
        if total > 0:
            out[i] /= total
    return out
