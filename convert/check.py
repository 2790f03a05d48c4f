"""The checks around a conversion: the face data given (before anything is converted), the
calibration set drawn (warnings), and the int8-vs-float check on held-out faces (after).

``deepfer convert`` fails (exit 3, files written, ``--force`` accepts) when int8 loses more
than ``max_drop`` accuracy points against float, or gives float's top-1 class on fewer than
``min_agreement`` percent of the held-out faces: an int8 model that answers otherwise than
float on most faces is not a copy of it, even when the two accuracies happen to match.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

from deepfer.convert.errors import ConvertError
from deepfer.data.dataset import LAYOUT_CLASSES, DataError
from deepfer.data.fer2013 import load_fer2013
from deepfer.data.sampling import (
    DEFAULT_HELD_OUT_SLICE,
    DEFAULT_SEED,
    CalibrationError,
    CalibrationSet,
    HeldOutSet,
    held_out_set,
)
from deepfer.data.splits import find_split_dir
from deepfer.edge.labels import LABELS
from deepfer.evaluate.metrics import per_class_f1, report_metrics
from deepfer.evaluate.subset import classes_in, stratified_sample
from deepfer.evaluate.tta import predict_probs

log = logging.getLogger(__name__)

DEFAULT_MAX_DROP = 1.0  # accuracy points int8 may lose against float
#: Percent of held-out faces on which int8 must give float's top-1 class (the shipped models:
#: 99.2-99.4%); below it the int8 model is not the float one, whatever the accuracies say.
DEFAULT_MIN_AGREEMENT = 90.0
#: Fewer calibration faces than this share of ``--calibration-size`` draws a warning.
CALIBRATION_SHORTFALL = 0.5


def data_problem(path: Path) -> str | None:
    """Why ``path`` cannot be face data (before loading anything), or None."""
    if not path.exists():
        return "not found (no such file or folder)"
    if path.is_file() and path.suffix.lower() != ".csv":
        return (
            "expected fer2013.csv or a folder (a FER2013 folder with train/ and test/, or one "
            "folder of <class>/ image folders), not a single file"
        )
    return None


def _exact_sample(ds, n: int, what: str, seed: int):
    """``n`` faces of ``ds`` (stratified), the dataset as is when it has no more."""
    if not n or len(ds) <= n:
        return ds, ""
    k = classes_in(ds.y)
    if n < k:
        raise ConvertError(
            f"--check-size {n}: fewer faces than the {k} classes in {what}; give at least {k} "
            f"(one face per class), or 0 for all {len(ds):,}"
        )
    return ds.subset(stratified_sample(ds.y, n, seed), ds.name), f"stratified sample of {n} faces"


def check_set(
    check_data: str | Path | None,
    calibration_dir: Path,
    splits: dict,
    calib: CalibrationSet,
    size: int,
    check_size: int = 0,
    seed: int = DEFAULT_SEED,
    progress: bool = False,
) -> HeldOutSet:
    """The held-out faces of the check: ``check_data``'s test split (else its validation
    split, else its training split, at most :data:`DEFAULT_HELD_OUT_SLICE`, else all of a plain
    folder of classes), or those of the calibration data (its test split, else the
    training faces not used for calibration, at most :data:`DEFAULT_HELD_OUT_SLICE`);
    exactly ``check_size`` of them when given (a stratified sample)."""
    if check_data is not None and Path(check_data) != calibration_dir:
        source = Path(check_data)
        order = ("test", "val", "train")
        folders = [s for s in order if source.is_dir() and find_split_dir(source, s)]
        try:  # of split folders, only the one used is loaded
            found = load_fer2013(source, tuple(folders[:1] or order), size, progress)
        except DataError as exc:
            raise ConvertError(f"--check-data: {exc}") from None
        split = next((s for s in order if s in found and len(found[s])), None)
        if split is None:
            raise ConvertError(f"--check-data {source}: no faces found in it")
        ds = found[split]
        if ds.layout == LAYOUT_CLASSES:
            split = "all"  # one folder of <class>/ folders: all of it
        cap = check_size or (DEFAULT_HELD_OUT_SLICE if split == "train" else 0)  # 28k faces
        ds, note = _exact_sample(ds, cap, f"--check-data {source}", seed)
        return HeldOutSet(ds, str(source), split, note)
    # the calibration data's own held-out faces; no cap here, the exact one below
    try:
        held = held_out_set(splits, calibration_dir, calib, sys.maxsize)
    except CalibrationError as exc:  # e.g. a user's one folder of faces, smaller than asked
        raise ConvertError(
            f"{exc}: calibration took all {len(calib)} faces of its {calib.where()} and it "
            "has no test split; give held-out faces with --check-data FOLDER, a smaller "
            "--calibration-size, or --no-check"
        ) from None
    limit = check_size or (0 if held.split == "test" else DEFAULT_HELD_OUT_SLICE)
    ds, note = _exact_sample(held.data, limit, f"the held-out faces of {calibration_dir}", seed)
    if note:
        held = HeldOutSet(
            ds, held.source, held.split, f"{held.note}; {note}" if held.note else note
        )
    return held


def warn_about_calibration(calib: CalibrationSet, source: Path, asked: int) -> None:
    missing = [label for label, n in calib.per_class().items() if n == 0]
    if len(calib) < CALIBRATION_SHORTFALL * asked:
        log.warning(
            "%s: only %d calibration faces found of the %d asked for (--calibration-size); an "
            "int8 model calibrated on few faces may clip the ranges of the rest",
            source,
            len(calib),
            asked,
        )
    if missing:
        log.warning(
            "%s: no calibration faces of %s; the int8 ranges are not calibrated on them",
            source,
            ", ".join(missing),
        )


def score_models(probs: dict[str, np.ndarray], y: np.ndarray, ref_probs: np.ndarray) -> dict:
    """The check's figures for each model's scores ``probs[fmt]`` on faces of labels ``y``,
    against the float reference's scores ``ref_probs``; the part of :func:`check_models` that
    needs no model file (the shipped sidecars' figures are tested through it)."""
    ref_pred = ref_probs.argmax(1)
    ref_acc = float((ref_pred == y).mean())
    per_model = {}
    for fmt, p in probs.items():
        pred = p.argmax(1)
        # as deepfer evaluate and benchmark: a class with no faces in the held-out data (class
        # folders without it) has no F1 (null) and is left out of macro-F1
        m = report_metrics(y, p, LABELS)
        per_model[fmt] = {
            "accuracy": m["accuracy"],
            "macro_f1": m["macro_f1"],
            "per_class_f1": per_class_f1(m),
            "absent_classes": m["absent_classes"],
            "macro_f1_over": m["macro_f1_over"],
            "float_accuracy": ref_acc,
            "agreement_with_float": float((pred == ref_pred).mean()),
            "accuracy_drop_points": round(100.0 * (ref_acc - m["accuracy"]), 3),
        }
    return per_model


def check_models(
    paths: dict[str, Path],
    held_out: HeldOutSet,
    reference: Path,
    max_drop: float = DEFAULT_MAX_DROP,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
) -> dict:
    """Accuracy of each model and its top-1 agreement with the float ``reference`` on held-out
    faces; ``passed`` (when int8 is among them): int8 loses at most ``max_drop`` accuracy
    points and agrees with float on at least ``min_agreement`` percent of the faces;
    ``failures`` says which failed."""
    x, y = held_out.data.x, held_out.data.y
    ref_probs = predict_probs(reference, x)
    probs = {
        fmt: ref_probs if path == reference else predict_probs(path, x)
        for fmt, path in paths.items()
    }
    per_model = score_models(probs, y, ref_probs)
    ref_acc = float((ref_probs.argmax(1) == y).mean())
    check = {
        "held_out": held_out.describe(),
        "float_reference": str(reference),
        "float_accuracy": ref_acc,
        "max_drop_points": max_drop,
        "min_agreement_percent": min_agreement,
        "models": per_model,
    }
    if "int8" in per_model:
        m = per_model["int8"]
        drop = m["accuracy_drop_points"]
        agreement = round(100.0 * m["agreement_with_float"], 6)
        check["int8_drop_points"] = drop
        failures = []
        if drop > max_drop:
            failures.append(
                f"int8 loses {drop:.2f} accuracy points against float "
                f"({m['accuracy']:.2%} vs {m['float_accuracy']:.2%}; allowed {max_drop:g}, "
                "--max-drop)"
            )
        if agreement < min_agreement:
            failures.append(
                f"int8 gives float's top-1 class on only {agreement:.2f}% of the faces "
                f"(at least {min_agreement:g}% required, --min-agreement)"
            )
        check["failures"] = failures
        check["passed"] = not failures
    return check
