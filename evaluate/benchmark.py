"""``deepfer benchmark``: compare models on a FER2013 split, int8 against float.

For each model (``.tflite`` with its sidecar, or ``.keras`` / ``.h5``) and
TFLite runtime: accuracy, macro-F1 and per-class F1 (:mod:`deepfer.evaluate.metrics`; a class
with no faces in the data has no F1 and is left out of macro-F1), top-1 agreement with the float reference,
file size, single-face latency (median and p90 after a warm-up, with 1 thread
and with all cores), batch throughput, peak memory and the runtime that ran it.

Every measurement runs in a fresh process (:mod:`deepfer.evaluate.worker`),
so one model's memory or TensorFlow import does not pollute another's.
Results: a table on screen, JSON, Markdown (:mod:`deepfer.evaluate.reports`) and a
plot of accuracy against size and latency (:mod:`deepfer.evaluate.plots`).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepfer.data.fer2013 import load_split
from deepfer.edge.errors import DeepFERError
from deepfer.edge.labels import LABELS
from deepfer.evaluate.measure import (
    BenchmarkError,
    BenchSettings,
    ModelEntry,
    RuntimeSkipped,
    measure_model,
)
from deepfer.evaluate.metrics import per_class_f1, report_metrics
from deepfer.evaluate.model_file import KERAS_SUFFIXES, keras_file_problem
from deepfer.evaluate.outputs import check_outputs
from deepfer.evaluate.predictors import resolve_model_file
from deepfer.evaluate.reports import benchmark_table, update_sidecars, write_outputs
from deepfer.evaluate.subset import classes_in, stratified_sample

# --------------------------------------------------------------------------- models and data


def describe_model(path: str | Path) -> ModelEntry:
    """Check a model can be benchmarked (exists, right type, sidecar) without loading it
    (:func:`check_loads` loads it). A folder: the model in it."""
    path = resolve_model_file(path, BenchmarkError)
    if not path.is_file():
        raise BenchmarkError(f"{path}: model file not found")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        from deepfer.edge.model.sidecar import ModelInfoError, load_model_info

        with path.open("rb") as fh:
            head = fh.read(8)
        if len(head) < 8 or head[4:8] != b"TFL3":
            raise BenchmarkError(f"{path}: not a TFLite model (no TFL3 flatbuffer header)")
        try:
            info = load_model_info(path)
        except ModelInfoError as exc:
            raise BenchmarkError(str(exc)) from None
        dtype = str((info.raw.get("input") or {}).get("dtype", ""))
        fmt = str(info.raw.get("quantization") or dtype or "tflite")
        is_float = fmt == "float32" or (not info.raw.get("quantization") and dtype == "float32")
        return ModelEntry(path, "tflite", fmt, is_float, info.input_size)
    if suffix in KERAS_SUFFIXES:
        why = keras_file_problem(path)
        if why:
            raise BenchmarkError(f"{path}: {why}")
        return ModelEntry(path, "keras", "keras", True, (48, 48))
    raise BenchmarkError(f"{path}: unknown model type {suffix!r}; expected .tflite, .keras or .h5")


def check_loads(entry: ModelEntry) -> None:
    """Load ``entry`` here, so that a model that cannot be measured is refused before any is
    (a sidecar that does not fit the model, a truncated file, a Keras file that is no
    classifier). Raises a :class:`DeepFERError` naming it."""
    from deepfer.edge.model.runtime import RuntimeUnavailable
    from deepfer.evaluate.predictors import load_predictor

    quiet = logging.getLogger("deepfer.edge.model.runtime")  # its "runtime: ..." line is the
    level = quiet.level  # measurement's to give, not this check's
    quiet.setLevel(logging.WARNING)
    try:
        load_predictor(entry.path, 1)
    except RuntimeUnavailable:
        return  # measuring reports it per runtime (--runtime all skips what is missing)
    except DeepFERError:
        raise
    except Exception as exc:  # the runtime's own errors for a model it cannot run
        text = " ".join(str(exc).split())[:300]
        raise BenchmarkError(
            f"{entry.path}: cannot be loaded ({type(exc).__name__}: {text})"
        ) from None
    finally:
        quiet.setLevel(level)


def load_faces(
    data: str | Path, split: str, size: tuple[int, int], limit: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, str]:
    """``(x, y, split_name)``: uint8 faces of one split, or a stratified sample of exactly
    ``limit`` of them (all when the split has no more). Raises :class:`BenchmarkError` for a
    ``limit`` below one face per class."""
    if limit < 0:
        raise BenchmarkError(f"--limit {limit}: must be at least 0 (0: the whole split)")
    ds, name = load_split(data, split, size, progress=False)
    if limit and len(ds) > limit:
        k = classes_in(ds.y)
        if limit < k:
            raise BenchmarkError(
                f"--limit {limit}: fewer faces than the {k} classes in {data} ({name} split); "
                f"give at least {k} (one face per class), or 0 for all {len(ds):,}"
            )
        ds = ds.subset(stratified_sample(ds.y, limit, seed), ds.name)
    return ds.x, ds.y, name


def _runtimes(requested: Sequence[str] | None) -> list[str]:
    from deepfer.edge.model.runtime import RUNTIMES, available_runtimes

    names: list[str] = []
    for item in requested or ["auto"]:
        for name in str(item).split(","):
            name = name.strip()
            if not name:
                continue
            if name == "all":
                names += available_runtimes()
            elif name == "auto" or name in RUNTIMES:
                names.append(name)
            else:
                raise BenchmarkError(
                    f"--runtime {name!r}: choose auto, all or one of {', '.join(RUNTIMES)}"
                )
    return list(dict.fromkeys(names)) or ["auto"]


def _machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu or platform.machine(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def benchmark(
    models: Sequence[str | Path],
    data: str | Path,
    split: str = "test",
    limit: int = 0,
    reference: str | Path | None = None,
    runtimes: Sequence[str] | None = None,
    settings: BenchSettings | None = None,
    echo=None,
) -> dict:
    """Measure every model (x runtime for .tflite); returns the JSON-ready report."""
    say = echo or (lambda *_: None)
    settings = settings or BenchSettings()
    settings.check()
    if limit < 0:
        raise BenchmarkError(f"--limit {limit}: must be at least 0 (0: the whole split)")
    if not models:
        raise BenchmarkError("give at least one model")
    entries = [describe_model(m) for m in models]
    ref_entry = None
    if reference is not None:
        ref_entry = describe_model(reference)
        if all(e.path.resolve() != ref_entry.path.resolve() for e in entries):
            entries.insert(0, ref_entry)
    else:
        ref_entry = next((e for e in entries if e.is_float), None)
    names = _runtimes(runtimes)
    for entry in entries:  # every model loads before any is measured
        check_loads(entry)
    size = next((e.input_size for e in entries if e.kind == "tflite"), (48, 48))
    x, y, split_name = load_faces(data, split, size, limit)
    whole = f" (--limit {limit}: the split has only {len(y):,})" if limit > len(y) else ""
    say(f"data: {data} ({split_name} split), {len(y):,} faces{whole}")

    rows: list[dict] = []
    skipped: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="deepfer-bench-") as tmp:
        workdir = Path(tmp)
        faces_path = workdir / "faces.npy"
        np.save(faces_path, x)
        for i, entry in enumerate(entries):
            for runtime in names if entry.kind == "tflite" else ["keras"]:
                say(f"measuring {entry.path.name} ({runtime}) ...")
                try:
                    m = measure_model(
                        entry, runtime, faces_path, settings, workdir, f"m{i}-{runtime}"
                    )
                except RuntimeSkipped as exc:
                    if runtime == "auto":
                        raise
                    say(f"  skipped: runtime {runtime} is not usable here ({exc})")
                    skipped.append({"model": str(entry.path), "runtime": runtime, "why": str(exc)})
                    continue
                probs = m.pop("probs")
                # a class with no faces here (a user's folders without it) has no F1: None,
                # and is left out of macro-F1 (scikit-learn's labels= the classes with faces)
                metrics = report_metrics(y, probs, LABELS)
                rows.append(
                    {
                        "model": str(entry.path),
                        "name": entry.path.name,
                        "kind": entry.kind,
                        "format": entry.format,
                        "is_reference": ref_entry is not None
                        and entry.path.resolve() == ref_entry.path.resolve(),
                        "size_bytes": entry.path.stat().st_size,
                        "accuracy": metrics["accuracy"],
                        "macro_f1": metrics["macro_f1"],
                        "per_class_f1": per_class_f1(metrics),
                        **m,
                        "_pred": probs.argmax(1),
                    }
                )
    if not rows:
        raise BenchmarkError("no model could be measured: " + "; ".join(s["why"] for s in skipped))
    ref_row = next((r for r in rows if r["is_reference"]), None)
    for r in rows:
        r["agreement_with_reference"] = (
            float((r["_pred"] == ref_row["_pred"]).mean()) if ref_row is not None else None
        )
    for r in rows:
        r.pop("_pred")
    counts = np.bincount(y, minlength=len(LABELS))
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "data": str(data),
        "split": split_name,
        "n": int(len(y)),
        "class_counts": {k: int(v) for k, v in zip(LABELS, counts)},
        # the same for every model (the same faces): per_class_f1 is null for an absent class
        "absent_classes": metrics["absent_classes"],
        "macro_f1_over": metrics["macro_f1_over"],
        "reference": ref_row["model"] if ref_row else None,
        "settings": {
            "warmup": settings.warmup,
            "runs": settings.runs,
            "batch_size": settings.batch_size,
            "threads": [1, settings.all_threads] if settings.all_threads != 1 else [1],
            "latency": "one face per call through the evaluation predictor, after warm-up",
            "memory": "peak RSS (VmHWM) of a fresh process after loading the model and "
            "running the single-face and batch timings; includes Python, numpy, OpenCV "
            "and the faces array",
        },
        "machine": _machine(),
        "models": rows,
        "skipped": skipped,
    }


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def run_benchmark_command(args) -> int:
    """Handler of ``deepfer benchmark``; exit status. Bad input raises a
    :class:`deepfer.edge.errors.DeepFERError` (the command prints it, exit 2): the options,
    every output and every model are checked before anything is measured."""
    settings = BenchSettings(args.warmup, args.runs, args.batch_size, args.threads)
    settings.check()
    if args.limit < 0:
        raise BenchmarkError(f"--limit {args.limit}: must be at least 0 (0: the whole split)")
    out = Path(args.out) if args.out else None
    json_path = args.json or (out / "benchmark.json" if out else None)
    md_path = args.markdown or (out / "benchmark.md" if out else None)
    plot_path = args.plot or (out / "benchmark.png" if out else None)
    if plot_path and not _have_matplotlib():
        if args.plot:
            raise BenchmarkError(
                f"--plot {args.plot}: drawing it needs matplotlib (pip install 'deepfer[train]')"
            )
        print("plot: skipped, matplotlib is not installed", file=sys.stderr)
        plot_path = None
    check_outputs(
        [
            ("--out", out, "folder"),
            ("--json" if args.json else "--out", json_path, "file"),
            ("--markdown" if args.markdown else "--out", md_path, "file"),
            ("--plot" if args.plot else "--out", plot_path, "file"),
        ],
        BenchmarkError,
    )
    if args.update_sidecars:
        tflite = [Path(m) for m in [*args.models, args.reference] if m]
        sidecars = [
            p.with_suffix(".json") for p in tflite if p.suffix.lower() == ".tflite" and p.is_file()
        ]
        check_outputs([("--update-sidecars", p, "file") for p in sidecars], BenchmarkError)
    try:
        report = benchmark(
            args.models,
            args.data,
            split=args.split,
            limit=args.limit,
            reference=args.reference,
            runtimes=args.runtime,
            settings=settings,
            echo=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except DeepFERError:
        raise
    except ValueError as exc:  # faces or probabilities of the wrong shape
        raise BenchmarkError(str(exc)) from None
    print(benchmark_table(report))
    for p in write_outputs(report, json_path, md_path, plot_path):
        print(f"wrote {p}")
    if args.update_sidecars:
        for p in update_sidecars(report):
            print(f"updated {p}")
    return 0
