"""``deepfer evaluate``: metrics, plots and a JSON report for a .keras, .h5 or .tflite model.

One code path for every model format: :func:`load_predictor` wraps a model
as "uint8 faces ``(n, H, W, 1)`` in, probabilities ``(n, 7)`` out, columns in
DeepFER's label order", and everything after that (test-time augmentation,
metrics, plots) is shared. ``.tflite`` models run on
:class:`deepfer.edge.model.classifier.EmotionClassifier` and never import
TensorFlow; Keras is imported only for ``.keras`` / ``.h5`` files.

Metrics are plain numpy (no scikit-learn): accuracy, per-class precision,
recall and F1, macro- and weighted-F1, the confusion matrix (counts and
row-normalised) and one-vs-rest ROC curves with their AUC.

Reused by ``deepfer benchmark``: :func:`predict_probs` and :func:`evaluate_predictions`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepfer.edge.errors import DeepFERError
from deepfer.edge.labels import FOLDER_ALIASES, LABELS
from deepfer.edge.preprocess import prepare_face

log = logging.getLogger(__name__)

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
TFLITE_SUFFIXES = (".tflite",)
TTA_MODES = ("flip", "tencrop")
#: Ten-crop: crops of this fraction of the side (44 px of 48), resized back to the input.
TENCROP_FRACTION = 44 / 48
#: ``--split`` spellings -> the split names of :func:`deepfer.train.data.load_fer2013`.
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "publictest": "test",
    "public_test": "test",
    "private_test": "private_test",
    "privatetest": "private_test",
    "private": "private_test",
}


class EvaluateError(DeepFERError, RuntimeError):
    """A model or data set that cannot be evaluated, with what and where."""


# --------------------------------------------------------------------------- models


class Predictor:
    """A model as "uint8 faces in, probabilities in :data:`LABELS` order out".

    Subclasses implement :meth:`_raw` (probabilities in the model's own output
    order, ``self.model_labels``); :meth:`predict` checks and resizes the input,
    runs it in batches and reorders the columns to DeepFER's label order.
    """

    kind = "model"

    def __init__(self, path: Path, model_labels: Sequence[str], input_size: tuple[int, int]):
        self.path = path
        self.model_labels = list(model_labels)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self._order = _label_order(path, self.model_labels)

    @property
    def labels(self) -> list[str]:
        """Column names of :meth:`predict`'s output: always DeepFER's labels."""
        return list(LABELS)

    def _raw(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """``(n, H, W[, 1])`` uint8 faces -> ``(n, 7)`` float32 probabilities in LABELS order."""
        x = _as_batch(x, self.input_size)
        k = len(self.model_labels)
        if len(x) == 0:
            return np.zeros((0, len(LABELS)), np.float32)
        parts = [self._raw(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        probs = np.concatenate(parts).astype(np.float32, copy=False)
        if probs.shape != (len(x), k):
            raise EvaluateError(
                f"{self.path}: model returned shape {probs.shape}, expected {(len(x), k)}"
            )
        return probs[:, self._order]


class TFLitePredictor(Predictor):
    """A ``.tflite`` model with its sidecar, run by the edge classifier (no TensorFlow)."""

    kind = "tflite"

    def __init__(self, path: Path, threads: int | None = None):
        from deepfer.edge.model.classifier import EmotionClassifier

        self.classifier = EmotionClassifier(path, num_threads=threads or os.cpu_count())
        super().__init__(path, self.classifier.labels, self.classifier.input_size)
        self.runtime = self.classifier.runtime
        self.input_dtype = self.classifier.input_dtype

    def _raw(self, batch: np.ndarray) -> np.ndarray:
        return self.classifier.infer(batch)


class KerasPredictor(Predictor):
    """A ``.keras`` / ``.h5`` model; its outputs are taken to be in :data:`LABELS` order."""

    kind = "keras"

    def __init__(self, path: Path):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import keras
        except ImportError:
            raise EvaluateError(
                f"{path}: evaluating a Keras model needs TensorFlow/Keras "
                "(pip install 'deepfer[train]'); .tflite models do not"
            ) from None
        try:
            self.model = keras.models.load_model(path, compile=False)
        except Exception as exc:  # keras raises many types for a bad file
            raise EvaluateError(f"{path}: cannot load the Keras model ({exc})") from None
        shape = self.model.input_shape
        if isinstance(shape, list):
            raise EvaluateError(f"{path}: expected one input, the model has {len(shape)}")
        if len(shape) != 4 or shape[1] is None or shape[2] is None:
            raise EvaluateError(f"{path}: expected an (n, H, W, C) image input, got {shape}")
        self.channels = int(shape[3])
        outputs = int(self.model.output_shape[-1])
        if outputs != len(LABELS):
            raise EvaluateError(
                f"{path}: {outputs} outputs, but a DeepFER Keras model has {len(LABELS)} "
                f"({', '.join(LABELS)})"
            )
        self.runtime = f"keras {keras.__version__}"
        self.input_dtype = "float32"
        super().__init__(path, LABELS, (shape[1], shape[2]))

    def _raw(self, batch: np.ndarray) -> np.ndarray:
        x = batch.astype(np.float32)
        if self.channels != 1:
            x = np.repeat(x, self.channels, axis=3)
        # compiled once per batch shape: about twice as fast as calling the model eagerly
        probs = np.asarray(self.model.predict_on_batch(x), np.float32)
        if (probs < -1e-3).any() or np.abs(probs.sum(1) - 1.0).max() > 0.05:
            probs = _softmax(probs)  # a model that outputs logits
        return probs


def load_predictor(model_path: str | Path, threads: int | None = None) -> Predictor:
    """Wrap a ``.tflite`` (needs its sidecar), ``.keras`` or ``.h5`` model for :meth:`Predictor.predict`."""
    path = Path(model_path)
    if not path.is_file():
        raise EvaluateError(f"{path}: model file not found")
    suffix = path.suffix.lower()
    if suffix in TFLITE_SUFFIXES:
        return TFLitePredictor(path, threads)
    if suffix in KERAS_SUFFIXES:
        return KerasPredictor(path)
    raise EvaluateError(
        f"{path}: unknown model type {suffix or '(no suffix)'}; expected .tflite, .keras or .h5"
    )


def _label_order(path: Path, model_labels: Sequence[str]) -> np.ndarray:
    """Column index in the model's output for each of :data:`LABELS`."""
    names = [FOLDER_ALIASES.get(str(x).strip().lower()) for x in model_labels]
    if sorted(n for n in names if n) != sorted(LABELS) or None in names:
        raise EvaluateError(
            f"{path}: the model's labels {list(model_labels)} are not DeepFER's seven emotions "
            f"({', '.join(LABELS)})"
        )
    return np.array([names.index(label) for label in LABELS])


def _as_batch(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[3] != 1:
        raise ValueError(f"faces must be a (n, H, W) or (n, H, W, 1) array, got {x.shape}")
    if x.dtype != np.uint8:
        x = np.clip(x, 0, 255).astype(np.uint8)
    if x.shape[1:3] != tuple(size):
        if size[0] != size[1]:
            raise ValueError(f"only square model inputs are supported, got {list(size)}")
        x = np.stack([prepare_face(img[..., 0], size[0]) for img in x])[..., None]
    return x


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- test-time augmentation


def flip_views(x: np.ndarray) -> list[np.ndarray]:
    """The batch and its horizontal mirror."""
    return [x, x[:, :, ::-1]]


def tencrop_views(x: np.ndarray, fraction: float = TENCROP_FRACTION) -> list[np.ndarray]:
    """Ten views: four corner crops and the centre crop, and their mirrors, resized back to size."""
    import cv2

    n, h, w = x.shape[:3]
    ch, cw = max(int(round(h * fraction)), 1), max(int(round(w * fraction)), 1)
    origins = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), ((h - ch) // 2, (w - cw) // 2)]
    views = []
    for y0, x0 in origins:
        crop = x[:, y0 : y0 + ch, x0 : x0 + cw, 0]
        resized = np.stack(
            [cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in crop]
        ).reshape(n, h, w, 1)
        views += [resized, resized[:, :, ::-1]]
    return views


def tta_views(x: np.ndarray, tta: str | None) -> list[np.ndarray]:
    """The views averaged for a test-time augmentation mode (``None``/"none": just ``x``)."""
    if tta in (None, "", "none"):
        return [x]
    if tta == "flip":
        return flip_views(x)
    if tta == "tencrop":
        return tencrop_views(x)
    raise ValueError(f"unknown test-time augmentation {tta!r}; choose none, flip or tencrop")


def predict_probs(
    model_path: str | Path | Predictor,
    x: np.ndarray,
    tta: str | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Probabilities ``(n, 7)`` in :data:`LABELS` order for uint8 faces ``(n, H, W[, 1])``.

    ``model_path`` is a .tflite (with sidecar), .keras or .h5 file, or a
    :class:`Predictor` from :func:`load_predictor` (to load it only once).
    Faces of another size are resized to the model's input. ``tta`` is
    ``None``, ``"flip"`` or ``"tencrop"``: the mean probability over the views.
    Importing this module and predicting with a .tflite never imports TensorFlow.
    """
    model = model_path if isinstance(model_path, Predictor) else load_predictor(model_path)
    x = _as_batch(x, model.input_size)
    views = tta_views(x, tta)
    probs = np.zeros((len(x), len(LABELS)), np.float64)
    for view in views:
        probs += model.predict(np.ascontiguousarray(view), batch_size)
    return (probs / len(views)).astype(np.float32)


# --------------------------------------------------------------------------- metrics


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
    y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str] = LABELS
) -> dict:
    """Metrics for class indices ``y_true`` (n,) and probabilities ``probs`` (n, k).

    Returns a JSON-ready dict: ``n``, ``accuracy``, ``macro_f1`` and
    ``weighted_f1``, ``per_class`` ``{label: {precision, recall, f1, support, auc}}``,
    ``confusion_matrix`` ``{labels, counts, normalized}`` (rows: true class),
    ``auc`` per class (``None`` where a class is absent or is every sample)
    and ``macro_auc``. Precision of a class never predicted is 0. Macro-F1
    averages over the classes that occur in ``y_true`` or the predictions, as
    scikit-learn does by default.
    """
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
    present = (support > 0) | (predicted > 0)
    curves = roc_curves(y_true, probs, labels)
    aucs = {label: (curves[label][2] if label in curves else None) for label in labels}
    known_aucs = [v for v in aucs.values() if v is not None]
    n = int(len(y_true))
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((f1 * support).sum() / n) if n else 0.0,
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


def format_table(metrics: dict, title: str = "") -> str:
    """A readable per-class table with the summary lines under it."""
    lines = [title] if title else []
    lines.append(
        f"{'class':<10} {'precision':>9} {'recall':>7} {'f1':>6} {'AUC':>6} {'support':>8}"
    )
    for label, m in metrics["per_class"].items():
        auc_text = f"{m['auc']:.3f}" if m["auc"] is not None else "-"
        lines.append(
            f"{label:<10} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} "
            f"{auc_text:>6} {m['support']:>8,}"
        )
    macro_auc = f"{metrics['macro_auc']:.3f}" if metrics["macro_auc"] is not None else "-"
    lines.append(
        f"accuracy {metrics['accuracy']:.2%}   macro-F1 {metrics['macro_f1']:.3f}   "
        f"weighted-F1 {metrics['weighted_f1']:.3f}   macro-AUC {macro_auc}   "
        f"({metrics['n']:,} faces)"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- the command


def load_split(
    source: str | Path, split: str, size: tuple[int, int], progress: bool = True
) -> tuple:
    """``(faces, split_name)`` for one split of a data source, at the model's input size.

    ``source`` is fer2013.csv, a folder of split folders, or one folder laid out
    ``<class>/<image>`` (then all of it is evaluated whatever ``split`` says,
    and the split is named ``"all"``).
    """
    from deepfer.train.data import DataError, load_fer2013

    if size[0] != size[1]:
        raise EvaluateError(f"only square model inputs are supported, got {list(size)}")
    name = SPLIT_ALIASES.get(split.strip().lower())
    if name is None:
        raise EvaluateError(f"--split {split!r}: choose one of train, val, test, private_test")
    splits = load_fer2013(source, (name,), size=size[0], progress=progress)
    if name in splits:
        return splits[name], name
    if set(splits) == {"train"} and not _has_split_folders(source):
        return splits["train"], "all"  # a plain <class>/ folder
    raise DataError(
        f"{source}: no {name!r} split found (splits are train/, test/, validation/, "
        "private_test/ folders or the fer2013.csv Usage column)"
    )


def _has_split_folders(source: str | Path) -> bool:
    from deepfer.train.data import SPLIT_FOLDERS, find_split_dir

    source = Path(source)
    return source.is_file() or any(find_split_dir(source, s) for s in SPLIT_FOLDERS)


def default_out_dir(model_path: Path, split: str) -> Path:
    return model_path.parent / f"{model_path.stem}-eval-{split}"


def evaluate_model(
    model_path: str | Path,
    data: str | Path,
    split: str = "test",
    out: str | Path | None = None,
    tta: Sequence[str] = (),
    threads: int | None = None,
    progress: bool = True,
    plots: bool = True,
    labels: str = "fer2013",
    ferplus_votes: str | Path | None = None,
) -> dict:
    """Evaluate a model on a split; writes ``report.json`` and the PNG plots into ``out``.

    ``labels="ferplus"`` scores against the FER+ majority vote instead of the
    FER2013 label (faces without a clear majority among the seven classes are
    left out); the votes come from ``ferplus_votes`` or ``<data>/ferplus_<split>.csv``.
    """
    from deepfer.train.data import format_counts

    model_path = Path(model_path)
    modes = []
    for mode in tta or ():
        if mode in (None, "", "none"):
            continue
        if mode not in TTA_MODES:
            raise EvaluateError(f"--tta {mode!r}: choose none, flip or tencrop")
        if mode not in modes:
            modes.append(mode)
    if labels not in ("fer2013", "ferplus"):
        raise EvaluateError(f"--labels {labels!r}: choose fer2013 or ferplus")
    model = load_predictor(model_path, threads)
    ds, split_name = load_split(data, split, model.input_size, progress)
    ferplus = None
    if labels == "ferplus":
        ds, ferplus = _ferplus(ds, data, split_name, ferplus_votes)
        split_name = f"{split_name}-ferplus"
    out_dir = Path(out) if out else default_out_dir(model_path, split_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"model: {model_path} ({model.kind}, {model.runtime}, input {model.input_dtype} "
        f"{model.input_size[0]}x{model.input_size[1]})",
        flush=True,
    )
    print(f"data: {data} -- {format_counts(ds)}", flush=True)
    if ferplus:
        gone = ", ".join(f"{k} {v}" for k, v in ferplus["left_out"].items() if v)
        print(
            f"labels: FER+ majority vote ({ferplus['votes']}): {ferplus['kept']:,} of "
            f"{ferplus['faces']:,} faces kept (left out: {gone or 'none'}); "
            f"{ferplus['label_changed']:,} kept faces differ from their FER2013 label",
            flush=True,
        )

    started = time.perf_counter()
    probs = predict_probs(model, ds.x)
    seconds = time.perf_counter() - started
    metrics = evaluate_predictions(ds.y, probs, LABELS)
    report = {
        "model": str(model_path),
        "model_type": model.kind,
        "runtime": model.runtime,
        "input_dtype": model.input_dtype,
        "data": str(data),
        "split": split_name,
        "labels": labels,
        **({"ferplus": ferplus} if ferplus else {}),
        "skipped_images": int(ds.skipped),
        **metrics,
        "predict_seconds": round(seconds, 3),
        "tta": {},
        "plots": {},
    }
    print(format_table(metrics, f"\n{model_path.name} on {report['split']} (no TTA)"))
    tta_probs = {}
    for mode in modes:
        t0 = time.perf_counter()
        tta_probs[mode] = predict_probs(model, ds.x, tta=mode)
        m = evaluate_predictions(ds.y, tta_probs[mode], LABELS)
        m["predict_seconds"] = round(time.perf_counter() - t0, 3)
        report["tta"][mode] = m
        print(
            f"TTA {mode:<8} accuracy {m['accuracy']:.2%}   macro-F1 {m['macro_f1']:.3f}   "
            f"(no TTA: {metrics['accuracy']:.2%}, {m['accuracy'] - metrics['accuracy']:+.2%})"
        )

    if plots:
        from deepfer.train import plots as plotting

        title = f"{model_path.name} on {report['split']}"
        cm = np.asarray(metrics["confusion_matrix"]["counts"])
        report["plots"]["confusion_matrix"] = str(
            plotting.confusion_matrix(cm, LABELS, out_dir / "confusion_matrix.png", title)
        )
        report["plots"]["roc_curves"] = str(
            plotting.roc_curves(roc_curves(ds.y, probs, LABELS), out_dir / "roc_curves.png", title)
        )
        for mode, m in report["tta"].items():
            cm = np.asarray(m["confusion_matrix"]["counts"])
            report["plots"][f"confusion_matrix_{mode}"] = str(
                plotting.confusion_matrix(
                    cm, LABELS, out_dir / f"confusion_matrix_{mode}.png", f"{title}, TTA {mode}"
                )
            )
    report_path = out_dir / "report.json"
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nreport: {report_path}")
    if report["plots"]:
        print("plots: " + ", ".join(Path(p).name for p in report["plots"].values()))
    return report


def _ferplus(ds, data, split_name: str, votes_file) -> tuple:
    from deepfer.train.data import ferplus_majority, load_ferplus_votes

    if votes_file is None:
        root = Path(data)
        which = "train" if split_name in ("train", "val") else "test"
        votes_file = root / f"ferplus_{which}.csv"
        if not root.is_dir() or not votes_file.is_file():
            raise EvaluateError(
                f"--labels ferplus: no FER+ votes at {votes_file}; pass --ferplus-votes FILE "
                "(columns file,neutral,happiness,...,NF)"
            )
    kept, info = ferplus_majority(ds, load_ferplus_votes(votes_file))
    if not len(kept):
        raise EvaluateError(f"{votes_file}: none of the {len(ds):,} faces has a FER+ majority")
    info["votes"] = str(votes_file)
    return kept, info


def run_evaluate(args) -> int:
    """Handler of ``deepfer evaluate`` (see :mod:`deepfer.train.cli`); exit status."""
    from deepfer.edge.model.runtime import ModelLoadError, RuntimeUnavailable
    from deepfer.edge.model.sidecar import ModelInfoError
    from deepfer.train.data import DataError

    try:
        evaluate_model(
            args.model,
            args.data,
            split=args.split,
            out=args.out,
            tta=args.tta or (),
            threads=getattr(args, "threads", 0) or None,
            progress=getattr(args, "progress", True),
            labels=getattr(args, "labels", "fer2013"),
            ferplus_votes=getattr(args, "ferplus_votes", None),
        )
    except (
        EvaluateError,
        DataError,
        ModelInfoError,
        ModelLoadError,
        RuntimeUnavailable,
        ValueError,
    ) as exc:
        print(f"deepfer evaluate: error: {exc}", file=sys.stderr)
        return 2
    return 0
