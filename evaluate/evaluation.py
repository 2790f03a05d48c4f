"""``deepfer evaluate``: metrics, plots and a JSON report for a .keras, .h5 or .tflite model.

The model is wrapped by :func:`deepfer.evaluate.predictors.load_predictor`, the split
loaded by :func:`deepfer.data.fer2013.load_split`; metrics (:mod:`deepfer.evaluate.metrics`)
for the plain pass and each test-time augmentation are printed, plotted and written to
``report.json``. A ``.tflite`` model is evaluated without TensorFlow.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepfer.data.dataset import format_counts
from deepfer.data.fer2013 import load_split
from deepfer.data.ferplus import ferplus_majority, load_ferplus_votes
from deepfer.data.splits import split_name as canonical_split
from deepfer.edge.errors import DeepFERError
from deepfer.edge.labels import LABELS
from deepfer.evaluate.metrics import report_metrics, roc_curves
from deepfer.evaluate.outputs import check_outputs
from deepfer.evaluate.predictors import EvaluateError, load_predictor, resolve_model_file
from deepfer.evaluate.reports import metrics_table
from deepfer.evaluate.tta import TTA_MODES, predict_probs


def default_out_dir(model_path: Path, split: str) -> Path:
    return model_path.parent / f"{model_path.stem}-eval-{split}"


def check_out_dir(out: str | Path | None, model_path: Path, split: str) -> Path:
    """The report folder (``out``, else beside the model), checked to be writable: raises
    :class:`EvaluateError` naming it before any work."""
    out_dir = Path(out) if out else default_out_dir(model_path, split)
    what = "--out" if out else "report folder (beside the model; choose another with --out)"
    check_outputs(
        [(what, out_dir, "folder"), (what, out_dir / "report.json", "file")], EvaluateError
    )
    return out_dir


def _ms_per_face(seconds: float, faces: int) -> float:
    """Batched prediction time per face, including building the views, in milliseconds."""
    return round(1000.0 * seconds / max(faces, 1), 4)


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
    model_path = resolve_model_file(model_path, EvaluateError)
    modes = []
    for mode in tta or ():
        if mode in (None, "", "none"):
            continue
        if mode not in TTA_MODES:
            raise EvaluateError(f"--tta {mode!r}: choose none, flip, centre or tencrop")
        if mode not in modes:
            modes.append(mode)
    if labels not in ("fer2013", "ferplus"):
        raise EvaluateError(f"--labels {labels!r}: choose fer2013 or ferplus")
    if not model_path.is_file():
        raise EvaluateError(f"{model_path}: model file not found")
    check_out_dir(out, model_path, canonical_split(split) or split)
    model = load_predictor(model_path, threads)
    ds, split_name = load_split(data, split, model.input_size, progress)
    ferplus = None
    if labels == "ferplus":
        ds, ferplus = _ferplus(ds, data, split_name, ferplus_votes)
        split_name = f"{split_name}-ferplus"
    out_dir = check_out_dir(out, model_path, split_name)  # the split's name is known now
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
    metrics = report_metrics(ds.y, probs, LABELS)  # a class with no faces: no F1, not averaged
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
        "ms_per_face": _ms_per_face(seconds, len(ds)),
        "tta": {},
        "plots": {},
    }
    print(metrics_table(metrics, f"\n{model_path.name} on {report['split']} (no TTA)"))
    tta_probs = {}
    for mode in modes:
        t0 = time.perf_counter()
        tta_probs[mode] = predict_probs(model, ds.x, tta=mode)
        m = report_metrics(ds.y, tta_probs[mode], LABELS)
        m["predict_seconds"] = round(time.perf_counter() - t0, 3)
        m["ms_per_face"] = _ms_per_face(m["predict_seconds"], len(ds))
        m["cost_vs_plain"] = round(m["predict_seconds"] / max(seconds, 1e-9), 2)
        report["tta"][mode] = m
        print(
            f"TTA {mode:<8} accuracy {m['accuracy']:.2%}   macro-F1 {m['macro_f1']:.3f}   "
            f"(no TTA: {metrics['accuracy']:.2%}, {m['accuracy'] - metrics['accuracy']:+.2%})   "
            f"{m['ms_per_face']:.3f} ms/face batched, {m['cost_vs_plain']:.1f}x the plain pass"
        )

    if plots and not _have_matplotlib():
        plots = False  # an edge install evaluates a .tflite without the train extra
        print("plots: skipped, matplotlib is not installed (pip install 'deepfer[train]')")
    if plots:
        from deepfer.evaluate import plots as plotting

        title = f"{model_path.name} on {report['split']}"
        cm = np.asarray(metrics["confusion_matrix"]["counts"])
        report["plots"]["confusion_matrix"] = str(
            plotting.confusion_matrix(cm, LABELS, out_dir / "confusion_matrix.png", title)
        )
        curves = roc_curves(ds.y, probs, LABELS)  # none for a class with no faces
        report["plots"]["roc_curves"] = str(
            plotting.roc_curves(curves, out_dir / "roc_curves.png", title, LABELS)
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


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _ferplus(ds, data, split_name: str, votes_file) -> tuple:
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
    """Handler of ``deepfer evaluate`` (see :mod:`deepfer.evaluate.cli`); exit status.

    Bad input raises a :class:`deepfer.edge.errors.DeepFERError`, which the command prints
    as ``deepfer evaluate: error: ...`` (exit 2).
    """
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
    except DeepFERError:
        raise
    except ValueError as exc:  # faces or probabilities of the wrong shape
        raise EvaluateError(str(exc)) from None
    return 0
