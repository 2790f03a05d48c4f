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
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from deepfer.data.dataset import (
    LAYOUT_CLASSES,
    LAYOUT_CSV,
    LAYOUT_SPLITS,
    DataError,
    FaceDataset,
)
from deepfer.data.images import is_image, read_image
from deepfer.data.splits import CSV_USAGES, SPLIT_FOLDERS, find_split_dir, split_name
from deepfer.edge.capture.imagefile import is_hidden, unreadable_photo
from deepfer.edge.capture.pictures import eight_bits
from deepfer.edge.labels import FER2013_CSV_IDS, FOLDER_ALIASES, LABELS
from deepfer.edge.preprocess import DEFAULT_SIZE, prepare_face

log = logging.getLogger(__name__)

#: A picture whose longer side is this many times the model's input (960 px for 48x48), or
#: whose sides are this far from square (4:3 is 1.33), is said to look like a whole photo,
#: not a face crop: it is still loaded, squeezed to a square as one face.
WHOLE_PHOTO_SIDE = 20
WHOLE_PHOTO_ASPECT = 1.3


def _progress(items: Iterable, total: int, desc: str, enabled: bool) -> Iterator:
    """``items``, with a loading bar on stderr when ``enabled`` and stderr is a terminal (as
    ``deepfer detect``'s, :mod:`deepfer.edge.progress`): in a log file or a pipe it would
    run into the lines printed after it."""
    if not enabled or not getattr(sys.stderr, "isatty", lambda: False)():
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


def _is_class(folder_name: str) -> bool:
    return folder_name.strip().lower() in FOLDER_ALIASES


def _class_folders(split_dir: Path) -> list[tuple[Path, int]]:
    pairs = []
    unknown = []
    for sub in sorted(p for p in split_dir.iterdir() if p.is_dir() and not is_hidden(p)):
        label = FOLDER_ALIASES.get(sub.name.strip().lower())  # ("neutral ": a typed space)
        if label is None:
            n = sum(1 for p in sub.iterdir() if is_image(p) and not is_hidden(p))
            unknown.append(f"{sub.name!r} ({n} image{'' if n == 1 else 's'})")
            continue
        pairs.append((sub, LABELS.index(label)))
    if unknown:
        log.warning(
            "%s: ignoring folders that are not DeepFER classes (%s): %s",
            split_dir,
            ", ".join(LABELS),
            ", ".join(unknown),
        )
    renamed = [f"{sub.name!r} -> {LABELS[i]}" for sub, i in pairs if sub.name != LABELS[i]]
    missing = [label for i, label in enumerate(LABELS) if i not in {i for _, i in pairs}]
    if pairs and (renamed or missing):
        log.info(
            "%s: class folders read as %s%s",
            split_dir,
            ", ".join(renamed) if renamed else "named",
            f"; no folder for {', '.join(missing)}" if missing else "",
        )
    by_label: dict[int, list[str]] = {}
    for sub, index in pairs:
        by_label.setdefault(index, []).append(sub.name)
    for index, names in by_label.items():
        if len(names) > 1:
            log.warning(
                "%s: folders %s are all read as %s", split_dir, ", ".join(names), LABELS[index]
            )
    if not pairs:
        raise DataError(
            f"{split_dir}: no class folders found; expected sub-folders named {', '.join(LABELS)}"
        )
    return pairs


def load_folder(
    split_dir: str | Path,
    size: int = DEFAULT_SIZE,
    progress: bool = True,
    labels_required: bool = True,
    layout: str = "",
) -> FaceDataset:
    """Load one split folder laid out as ``<split_dir>/<class>/<image>``; ``layout``: the
    source's layout it is part of, kept on the dataset (:func:`load_fer2013` says which)."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: not a folder")
    files: list[tuple[Path, int]] = []
    nested: list[Path] = []  # images one level down or deeper: not loaded, but said
    others: list[Path] = []  # files of other kinds (an iPhone's .HEIC): not loaded, but said
    for sub, index in _class_folders(split_dir):
        entries = sorted(p for p in sub.iterdir() if not is_hidden(p))  # listed once
        files += [(p, index) for p in entries if is_image(p)]
        others += [p for p in entries if not is_image(p) and p.is_file()]
        nested += [
            p
            for folder in entries if folder.is_dir()
            for p in sorted(folder.rglob("*"))
            if is_image(p) and not any(is_hidden(part) for part in p.relative_to(sub).parts)
        ]  # fmt: skip
    if nested:
        folders = sorted({str(p.parent.relative_to(split_dir)) for p in nested})
        log.warning(
            "%s: %d image(s) in sub-folders of the class folders are not loaded (%s%s); "
            "move them into their class folder",
            split_dir,
            len(nested),
            ", ".join(folders[:3]),
            ", ..." if len(folders) > 3 else "",
        )
    if others:
        kinds = Counter(p.suffix.lower() or "no suffix" for p in others)
        hints = sorted({why for p in others if (why := unreadable_photo(p))})
        log.warning(
            "%s: %d file(s) in the class folders are not loaded (not an image format DeepFER "
            "reads): %s%s%s",
            split_dir,
            len(others),
            ", ".join(f"{n} {ext}" for ext, n in kinds.most_common()),
            f" (e.g. {others[0].relative_to(split_dir)})",
            "".join(f"; {hint}" for hint in hints),
        )
    if not files and labels_required:
        raise DataError(f"{split_dir}: the class folders hold no images")
    xs, ys, names, bad, whole = [], [], [], [], []
    for path, index in _progress(files, len(files), f"loading {split_dir.name}", progress):
        img = read_image(path)
        if img is None or img.size == 0:
            bad.append(path)
            continue
        if _whole_photo(img.shape[:2], size):
            whole.append((path, img.shape[1], img.shape[0]))
        if img.dtype == np.uint16:  # 16-bit PNG/TIFF: as the edge reads one, not clipped
            img = eight_bits(img)
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
    if whole:
        _warn_whole_photos(split_dir, whole, len(files), size)
    x = np.stack(xs)[..., None]
    return FaceDataset(
        x, np.asarray(ys, np.int64), split_dir.name, names, skipped=len(bad), layout=layout
    )


def _whole_photo(shape: tuple[int, int], size: int) -> bool:
    h, w = shape
    return max(h, w) >= WHOLE_PHOTO_SIDE * size or max(h, w) >= WHOLE_PHOTO_ASPECT * min(h, w)


def _warn_whole_photos(split_dir: Path, whole: list, n: int, size: int) -> None:
    path, w, h = whole[0]
    log.warning(
        "%s: %d of the %d pictures look like whole photos, not face crops (e.g. %s, %dx%d): "
        "%d px or larger, or far from square (4:3 or longer); each is squeezed to %dx%d as one "
        "face. The model expects a face cropped square to its edges, as FER2013's are: crop "
        "each picture to its face (`deepfer detect PICTURE --json` gives each face's box "
        "[x, y, w, h]), or let `deepfer detect PHOTOS/` find the faces in whole photos and "
        "classify them",
        split_dir,
        len(whole),
        n,
        path.relative_to(split_dir),
        w,
        h,
        WHOLE_PHOTO_SIDE * size,
        size,
        size,
    )


def load_csv(
    path: str | Path, size: int = DEFAULT_SIZE, progress: bool = True
) -> dict[str, FaceDataset]:
    """Load the original ``fer2013.csv`` into ``{"train", "test", "private_test"}``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # (Excel writes a BOM)
            reader = csv.DictReader(fh)
            missing = {"emotion", "pixels"} - set(reader.fieldnames or [])
            if missing:
                raise DataError(
                    f"{path}: missing column(s) {', '.join(sorted(missing))}; "
                    "expected the fer2013.csv columns emotion,pixels,Usage"
                )
            rows = list(reader)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file (expected fer2013.csv)") from None
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
        split: FaceDataset(
            np.stack(xs)[..., None], np.asarray(ys, np.int64), split, layout=LAYOUT_CSV
        )
        for split, (xs, ys) in parts.items()
    }


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
    ``{"train": ...}`` whatever ``splits`` asks. Each dataset's ``layout`` says which of
    these was read (:data:`~deepfer.data.dataset.LAYOUT_CLASSES`, ``LAYOUT_SPLITS``, ``LAYOUT_CSV``).
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
        if any(_is_class(p.name) for p in source.iterdir() if p.is_dir()):
            return {"train": load_folder(source, size, progress, layout=LAYOUT_CLASSES)}
        why = f"{source}: found neither fer2013.csv nor train/ test/ validation/ folders"
        why += f" nor class folders ({', '.join(f'{c}/' for c in LABELS)})"
        if any(is_image(p) for p in source.iterdir()):  # one class's folder: give its parent
            why += f"; it holds images itself: give the folder above it, {source.parent}"
        raise DataError(why)
    beside = [p.name for p in sorted(source.iterdir()) if p.is_dir() and _is_class(p.name)]
    if beside:  # e.g. a user's held-out faces put in my_faces/test/ beside the class folders
        log.warning(
            "%s: the class folders %s are not read: beside split folders (%s) only those are; "
            "move them into one (train/ for training)",
            source,
            ", ".join(repr(name) for name in beside),
            ", ".join(f"{d.name}/" for d in split_dirs.values() if d is not None),
        )
    out = {}
    for split in splits:
        folder = split_dirs.get(split)
        if folder is not None:
            out[split] = load_folder(folder, size, progress, layout=LAYOUT_SPLITS)
    return out


def load_split(
    source: str | Path, split: str, size: tuple[int, int], progress: bool = True
) -> tuple[FaceDataset, str]:
    """``(faces, split_name)`` for one split of a data source, at the model's input size.

    ``source`` is fer2013.csv, a folder of split folders, or one folder laid out
    ``<class>/<image>`` (then all of it is used whatever ``split`` says, and the
    split is named ``"all"``). ``split`` may be any spelling in
    :data:`deepfer.data.splits.SPLIT_ALIASES` (``PublicTest``, ``validation``, ...).
    """
    if size[0] != size[1]:
        raise DataError(f"only square model inputs are supported, got {list(size)}")
    name = split_name(split)
    if name is None:
        raise DataError(f"--split {split!r}: choose one of train, val, test, private_test")
    splits = load_fer2013(source, (name,), size=size[0], progress=progress)
    if "train" in splits and splits["train"].layout == LAYOUT_CLASSES:
        return splits["train"], "all"  # a plain <class>/ folder, --split train or not
    if name in splits:
        return splits[name], name
    raise DataError(
        f"{source}: no {name!r} split found (splits are train/, test/, validation/, "
        "private_test/ folders or the fer2013.csv Usage column)"
    )
