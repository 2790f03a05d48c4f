"""Load FER2013 in the forms people have it, in DeepFER's label order.

Supported:

1. the original ``fer2013.csv`` (columns ``emotion,pixels,Usage``);
2. the Kaggle folder layout: ``train/`` and ``test/``, one folder per class;
3. the ``train/`` + ``validation/`` folder layout (``val/`` also accepted).

Images that are not 48x48 grayscale are converted with
:func:`deepfer.edge.preprocess.prepare_face`, the function the device uses.
Unreadable files are skipped and counted in one warning.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from deepfer.edge.errors import DeepFERError
from deepfer.edge.labels import FER2013_CSV_IDS, FOLDER_ALIASES, LABELS
from deepfer.edge.preprocess import DEFAULT_SIZE, prepare_face

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".webp", ".tif", ".tiff"}
#: fer2013.csv Usage -> DeepFER split name.
CSV_USAGES = {"Training": "train", "PublicTest": "test", "PrivateTest": "private_test"}
#: Folder names accepted for each split (matched case-insensitively, first found wins).
SPLIT_FOLDERS = {
    "train": ("train", "training"),
    "test": ("test", "testing", "publictest", "public_test"),
    "val": ("validation", "val", "valid"),
    "private_test": ("private_test", "privatetest", "private"),
}


class DataError(DeepFERError, ValueError):
    """A data set that cannot be loaded, with what and where."""


@dataclass
class FaceDataset:
    """Faces as ``x`` (n, size, size, 1) uint8 and labels ``y`` (n,) int64."""

    x: np.ndarray
    y: np.ndarray
    name: str = ""
    files: list[str] = field(default_factory=list)
    skipped: int = 0

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=len(LABELS))
        return {label: int(n) for label, n in zip(LABELS, counts)}

    def subset(self, index: np.ndarray, name: str | None = None) -> FaceDataset:
        files = [self.files[i] for i in index] if self.files else []
        return FaceDataset(self.x[index], self.y[index], name or self.name, files)


def class_weights(y: np.ndarray, num_classes: int = len(LABELS)) -> dict[int, float]:
    """Balanced class weights (n / (k * count)), as scikit-learn computes them."""
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = len(y) / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}


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


def _progress(items: Iterable, total: int, desc: str, enabled: bool) -> Iterator:
    if not enabled:
        yield from items
        return
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is in the train extra; fall back to a plain counter
        step = max(total // 20, 1)
        for i, item in enumerate(items, 1):
            if i % step == 0 or i == total:
                print(f"\r{desc}: {i}/{total}", end="", file=sys.stderr, flush=True)
            yield item
        print(file=sys.stderr)
        return
    yield from tqdm(items, total=total, desc=desc, unit="img", leave=False, file=sys.stderr)


def _class_folders(split_dir: Path) -> list[tuple[Path, int]]:
    pairs = []
    unknown = []
    for sub in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        label = FOLDER_ALIASES.get(sub.name.lower())
        if label is None:
            unknown.append(sub.name)
            continue
        pairs.append((sub, LABELS.index(label)))
    if unknown:
        log.warning(
            "%s: ignoring folders that are not DeepFER classes: %s", split_dir, ", ".join(unknown)
        )
    if not pairs:
        raise DataError(
            f"{split_dir}: no class folders found; expected sub-folders named {', '.join(LABELS)}"
        )
    return pairs


def _truncated(data: bytes) -> bool:
    """A JPEG without its end marker or a PNG without its IEND chunk: cut short.

    OpenCV decodes such files anyway (grey below the cut, a warning on stderr), so a
    truncated download would otherwise train as a half-grey face.
    """
    tail = data[-64:].rstrip(b"\x00\r\n ")
    if data[:2] == b"\xff\xd8":
        return not tail.endswith(b"\xff\xd9")
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in tail
    return False


def read_image(path: Path) -> np.ndarray | None:
    """An image file as OpenCV decodes it (any depth and channels), or None if unreadable,
    corrupt or truncated."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not data or _truncated(data):
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def load_folder(
    split_dir: str | Path,
    size: int = DEFAULT_SIZE,
    progress: bool = True,
    labels_required: bool = True,
) -> FaceDataset:
    """Load one split folder laid out as ``<split_dir>/<class>/<image>``."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: not a folder")
    files: list[tuple[Path, int]] = []
    for sub, index in _class_folders(split_dir):
        files += [(p, index) for p in sorted(sub.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files and labels_required:
        raise DataError(f"{split_dir}: the class folders hold no images")
    xs, ys, names, bad = [], [], [], []
    for path, index in _progress(files, len(files), f"loading {split_dir.name}", progress):
        img = read_image(path)
        if img is None or img.size == 0:
            bad.append(path)
            continue
        if img.dtype == np.uint16:  # 16-bit PNG/TIFF: keep the top 8 bits, do not clip
            img = (img >> 8).astype(np.uint8)
        elif img.dtype != np.uint8:
            bad.append(path)
            continue
        try:
            xs.append(prepare_face(img, size))
        except (ValueError, cv2.error):
            bad.append(path)
            continue
        ys.append(index)
        names.append(str(path.relative_to(split_dir)))
    if bad:
        shown = ", ".join(str(p) for p in bad[:3])
        log.warning(
            "%s: skipped %d unreadable or corrupt image(s) (e.g. %s)", split_dir, len(bad), shown
        )
    if not xs:
        raise DataError(f"{split_dir}: none of the {len(files)} images could be read")
    x = np.stack(xs)[..., None]
    return FaceDataset(x, np.asarray(ys, np.int64), split_dir.name, names, skipped=len(bad))


def load_csv(
    path: str | Path, size: int = DEFAULT_SIZE, progress: bool = True
) -> dict[str, FaceDataset]:
    """Load the original ``fer2013.csv`` into ``{"train", "test", "private_test"}``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"emotion", "pixels"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(
                f"{path}: missing column(s) {', '.join(sorted(missing))}; "
                "expected the fer2013.csv columns emotion,pixels,Usage"
            )
        rows = list(reader)
    side = 48
    parts: dict[str, tuple[list, list]] = {}
    for line, row in enumerate(_progress(rows, len(rows), f"loading {path.name}", progress), 2):
        where = f"{path}: row {line - 1} (line {line})"
        try:
            emotion = int(row["emotion"])
            label = FER2013_CSV_IDS[emotion]
        except (KeyError, ValueError, TypeError):
            raise DataError(
                f"{where}: emotion {row.get('emotion')!r} is not a FER2013 id 0..6"
            ) from None
        try:
            pixels = np.array((row.get("pixels") or "").split(), dtype=np.float32)
        except ValueError:
            raise DataError(f"{where}: pixels are not all numbers") from None
        if pixels.size != side * side:
            raise DataError(f"{where}: {pixels.size} pixel values, expected {side * side} (48x48)")
        img = np.clip(pixels, 0, 255).astype(np.uint8).reshape(side, side)
        usage = (row.get("Usage") or "Training").strip()
        split = CSV_USAGES.get(usage)
        if split is None:
            raise DataError(f"{where}: unknown Usage {usage!r}; expected {', '.join(CSV_USAGES)}")
        xs, ys = parts.setdefault(split, ([], []))
        xs.append(prepare_face(img, size))
        ys.append(LABELS.index(label))
    return {
        split: FaceDataset(np.stack(xs)[..., None], np.asarray(ys, np.int64), split)
        for split, (xs, ys) in parts.items()
    }


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


def load_fer2013(
    source: str | Path,
    splits: tuple[str, ...] = ("train", "val", "test"),
    size: int = DEFAULT_SIZE,
    progress: bool = True,
) -> dict[str, FaceDataset]:
    """Load whichever form ``source`` is: a CSV file, or a folder of split folders.

    Split names: ``train``, ``val``, ``test`` (PublicTest) and ``private_test``
    (PrivateTest). Returns the splits that exist among ``splits``. A folder
    that is itself a class layout (``<dir>/<class>/``) is returned as
    ``{"train": ...}``.
    """
    source = Path(source)
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise DataError(f"{source}: expected fer2013.csv or a folder")
        found = load_csv(source, size, progress)
        return {k: v for k, v in found.items() if k in splits}
    if not source.is_dir():
        raise DataError(f"{source}: no such file or folder")
    csv_file = source / "fer2013.csv"
    split_dirs = {s: find_split_dir(source, s) for s in SPLIT_FOLDERS}
    if not any(split_dirs.values()) and csv_file.is_file():
        return load_fer2013(csv_file, splits, size, progress)
    if not any(split_dirs.values()):
        if any(FOLDER_ALIASES.get(p.name.lower()) for p in source.iterdir() if p.is_dir()):
            return {"train": load_folder(source, size, progress)}
        raise DataError(f"{source}: found neither fer2013.csv nor train/ test/ validation/ folders")
    out = {}
    for split in splits:
        folder = split_dirs.get(split)
        if folder is not None:
            out[split] = load_folder(folder, size, progress)
    return out


def format_counts(ds: FaceDataset) -> str:
    counts = ds.class_counts()
    total = max(len(ds), 1)
    parts = [f"{k} {v} ({100 * v / total:.1f}%)" for k, v in counts.items()]
    return f"{ds.name}: {len(ds)} faces: " + ", ".join(parts)


# ---------------------------------------------------------------------------------------------
# FER+ (Barsoum et al., 2016): ten annotators' votes per FER2013 face

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
        with path.open(newline="") as fh:
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
    return votes


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
        v = votes.get(name.replace("\\", "/"))
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
