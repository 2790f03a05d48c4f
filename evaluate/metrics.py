"""Classification metrics in plain numpy (no scikit-learn, so an edge install can evaluate a
.tflite): accuracy, per-class precision, recall and F1, macro- and weighted-F1, the confusion
matrix and one-vs-rest ROC curves with their AUC.

Each agrees with scikit-learn's (``tests/evaluate/test_metrics.py`` checks them against it on
random and edge-case inputs): precision of a class never predicted is 0 (``zero_division=0``),
macro-F1 averages over the classes present in the truth or the predictions (scikit-learn's
default ``labels``), or with ``average_over="truth"`` over the classes that have faces
(scikit-learn's ``labels=`` those classes), and a class with no positives or no negatives has
no AUC.

:func:`report_metrics` is what ``deepfer evaluate``, ``deepfer benchmark`` and ``deepfer
convert``'s check report, the one rule for a class with no faces in the data (a user's class
folders without it): no recall or F1 (``None``, shown as ``-``), listed in
``absent_classes``, and left out of macro-F1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepfer.edge.labels import LABELS


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """``cm[i, j]``: faces of true class i predicted as j."""
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One ROC curve: ``(fpr, tpr, thresholds)`` for binary ``y_true`` and ``scores``.

    One point per distinct score (ties move together), starting at (0, 0).
    Raises ``ValueError`` when there are no positives or no negatives.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, np.float64)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        raise ValueError("ROC needs both positive and negative samples")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    tpr = np.r_[0.0, tps / pos]
    fpr = np.r_[0.0, fps / neg]
    thresholds = np.r_[np.inf, s[last]]
    return fpr, tpr, thresholds


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under a curve by the trapezoid rule."""
    fpr, tpr = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def roc_curves(
    y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str]
) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """One-vs-rest ROC for each class that has both positives and negatives."""
    y_true = np.asarray(y_true)
    curves = {}
    for c, label in enumerate(labels):
        positive = y_true == c
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, probs[:, c])
        curves[label] = (fpr, tpr, auc(fpr, tpr))
    return curves


def evaluate_predictions(
    y_true: np.ndarray,
    probs: np.ndarray,
    labels: Sequence[str] = LABELS,
    average_over: str = "seen",
) -> dict:
    """Metrics for class indices ``y_true`` (n,) and probabilities ``probs`` (n, k).

    Returns a JSON-ready dict: ``n``, ``accuracy``, ``macro_f1`` and
    ``weighted_f1``, ``per_class`` ``{label: {precision, recall, f1, support, auc}}``,
    ``confusion_matrix`` ``{labels, counts, normalized}`` (rows: true class),
    ``auc`` per class (``None`` where a class is absent or is every sample)
    and ``macro_auc``. Precision of a class never predicted is 0. Macro-F1
    averages over the classes that occur in ``y_true`` or the predictions, as
    scikit-learn does by default (``average_over="seen"``), or over those that occur in
    ``y_true`` (``"truth"``: a class with no faces, e.g. no folder for it in a user's data,
    has no F1 to average, only its false alarms in the others' recall); ``macro_f1_over``
    names the classes averaged.
    """
    if average_over not in ("seen", "truth"):
        raise ValueError(f"average_over must be 'seen' or 'truth', got {average_over!r}")
    y_true = np.asarray(y_true).astype(np.int64).reshape(-1)
    probs = np.asarray(probs, np.float64)
    labels = list(labels)
    k = len(labels)
    if probs.ndim != 2 or probs.shape != (len(y_true), k):
        raise ValueError(
            f"probs must be (n, {k}) for {len(y_true)} labels and {k} classes, got {probs.shape}"
        )
    if len(y_true) and (y_true.min() < 0 or y_true.max() >= k):
        raise ValueError(f"y_true holds class ids outside 0..{k - 1}")
    y_pred = probs.argmax(axis=1) if len(y_true) else np.zeros(0, np.int64)
    cm = confusion_counts(y_true, y_pred, k)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        normalized = np.where(support[:, None] > 0, cm / support[:, None], 0.0)
    present = (support > 0) | ((predicted > 0) if average_over == "seen" else False)
    curves = roc_curves(y_true, probs, labels)
    aucs = {label: (curves[label][2] if label in curves else None) for label in labels}
    known_aucs = [v for v in aucs.values() if v is not None]
    n = int(len(y_true))
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((f1 * support).sum() / n) if n else 0.0,
        "macro_f1_over": [label for c, label in enumerate(labels) if present[c]],
        "macro_auc": float(np.mean(known_aucs)) if known_aucs else None,
        "per_class": {
            label: {
                "precision": float(precision[c]),
                "recall": float(recall[c]),
                "f1": float(f1[c]),
                "support": int(support[c]),
                "auc": aucs[label],
            }
            for c, label in enumerate(labels)
        },
        "confusion_matrix": {
            "labels": labels,
            "counts": cm.tolist(),
            "normalized": np.round(normalized, 4).tolist(),
        },
        "auc": aucs,
    }


def report_metrics(y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str] = LABELS) -> dict:
    """The metrics the commands report: :func:`evaluate_predictions` with macro-F1 over the
    classes with faces (``average_over="truth"``), where a class with no faces in the data
    has no recall and no F1 (``None``, not scikit-learn's stand-in 0) and no precision unless
    it was predicted (then 0: every such answer was wrong); ``absent_classes`` lists them.

    With every class present the figures are :func:`evaluate_predictions`'s, to the bit.
    """
    m = evaluate_predictions(y_true, probs, labels, average_over="truth")
    predicted = np.asarray(m["confusion_matrix"]["counts"]).sum(axis=0)
    absent = [label for label, v in m["per_class"].items() if not v["support"]]
    for c, label in enumerate(m["per_class"]):
        if label in absent:
            v = m["per_class"][label]
            v.update(recall=None, f1=None, precision=v["precision"] if predicted[c] else None)
    m["absent_classes"] = absent
    return m


def per_class_f1(metrics: dict) -> dict[str, float | None]:
    """``{label: F1}`` of :func:`report_metrics`'s result (``None`` for a class with no faces:
    report_metrics' rule, not decided again here)."""
    return {label: v["f1"] for label, v in metrics["per_class"].items()}
