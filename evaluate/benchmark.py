"""``deepfer benchmark``: compare models on a FER2013 split, int8 against float.

For each model (``.tflite`` with its sidecar, or ``.keras`` / ``.h5``) and
TFLite runtime: accuracy, macro-F1 and per-class F1 (:mod:`deepfer.evaluate.metrics`), top-1 agreement with the float reference,
file size, single-face latency (median and p90 after a warm-up, with 1 thread
and with all cores), batch throughput, peak memory and the runtime that ran it.

Every measurement runs in a fresh process (:mod:`deepfer.evaluate.worker`),
so one model's memory or TensorFlow import does not pollute another's.
Results: a table on screen, JSON, Markdown (:mod:`deepfer.evaluate.reports`) and a
plot of accuracy against size and latency (:mod:`deepfer.evaluate.plots`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepfer.data.fer2013 import load_split
from deepfer.data.splits import stratified_split
from deepfer.edge.errors import DeepFERError
from deepfer.edge.labels import LABELS
from deepfer.evaluate.metrics import evaluate_predictions
from deepfer.evaluate.predictors import KERAS_SUFFIXES
from deepfer.evaluate.reports import benchmark_table, update_sidecars, write_outputs
from deepfer.evaluate.worker import EXIT_NO_RUNTIME

WORKER_TIMEOUT_S = 1800


class BenchmarkError(DeepFERError, RuntimeError):
    """A model or data set that cannot be benchmarked, with what and where."""


class RuntimeSkipped(BenchmarkError):
    """The requested TFLite runtime cannot be used in this environment."""


@dataclass
class BenchSettings:
    warmup: int = 20
    runs: int = 200
    batch_size: int = 32
    threads: int = 0  # "all cores"; 0: os.cpu_count()

    @property
    def all_threads(self) -> int:
        return self.threads if self.threads > 0 else (os.cpu_count() or 1)


@dataclass
class ModelEntry:
    path: Path
    kind: str  # "tflite" | "keras"
    format: str  # int8, float32, float16, dynamic, keras, or the input dtype
    is_float: bool
    input_size: tuple[int, int]


# --------------------------------------------------------------------------- models and data


def describe_model(path: str | Path) -> ModelEntry:
    """Check a model can be benchmarked (exists, right type, sidecar) without loading it."""
    path = Path(path)
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
        if path.stat().st_size == 0:
            raise BenchmarkError(f"{path}: the file is empty (0 bytes); not a Keras model")
        return ModelEntry(path, "keras", "keras", True, (48, 48))
    raise BenchmarkError(f"{path}: unknown model type {suffix!r}; expected .tflite, .keras or .h5")


def load_faces(data: str | Path, split: str, size: tuple[int, int], limit: int, seed: int = 0):
    """``(x, y, split_name)``: uint8 faces of one split, optionally a stratified sample."""
    ds, name = load_split(data, split, size, progress=False)
    if limit and len(ds) > limit:
        _, keep = stratified_split(ds.y, limit / len(ds), seed)
        ds = ds.subset(keep, ds.name)
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


# --------------------------------------------------------------------------- running workers


def run_worker(spec: dict, workdir: Path, tag: str) -> dict:
    """Run one :mod:`deepfer.evaluate.worker` measurement in a fresh process; its result.

    ``spec`` holds the worker's keys (see the worker); the spec and result files go in
    ``workdir`` named after ``tag``.
    """
    spec_path = workdir / f"{tag}.spec.json"
    spec["result"] = str(workdir / f"{tag}.result.json")
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "deepfer.evaluate.worker", str(spec_path)],
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT_S,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError(
            f"{spec['model']}: measuring took over {WORKER_TIMEOUT_S} s; stopped"
        ) from None
    if proc.returncode != 0 or not Path(spec["result"]).is_file():
        noise = ("I0000", "W0000", "WARNING: All log messages", "INFO: Created TensorFlow")
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        tail = [ln for ln in lines if not ln.startswith(noise)][-3:] or lines[-3:]
        cls = RuntimeSkipped if proc.returncode == EXIT_NO_RUNTIME else BenchmarkError
        raise cls(f"{spec['model']}: could not be measured: {' | '.join(tail)}")
    return json.loads(Path(spec["result"]).read_text())


def measure_model(
    entry: ModelEntry,
    runtime: str,
    faces_path: Path,
    settings: BenchSettings,
    workdir: Path,
    tag: str,
) -> dict:
    """Latency with 1 thread and all cores, throughput, memory and predictions of one model."""
    base = {
        "model": str(entry.path),
        "runtime": runtime,
        "faces": str(faces_path),
        "warmup": settings.warmup,
        "runs": settings.runs,
    }
    full = run_worker(
        {
            **base,
            "threads": settings.all_threads,
            "batch_size": settings.batch_size,
            "predict": True,
            "probs_out": str(workdir / f"{tag}.probs.npy"),
        },
        workdir,
        f"{tag}.all",
    )
    latency = {str(settings.all_threads): full["latency_ms"]}
    if settings.all_threads != 1:
        one = run_worker(
            {**base, "threads": 1, "batch_size": 0, "predict": False}, workdir, f"{tag}.one"
        )
        latency = {"1": one["latency_ms"], **latency}
    return {
        "runtime": full["runtime"],
        "input_dtype": full["input_dtype"],
        "tensorflow_imported": full["tensorflow_imported"],
        "load_ms": full["load_ms"],
        "latency_ms": latency,
        "throughput": full.get("throughput"),
        "peak_rss_mb": full["peak_rss_mb"],
        "rss_over_baseline_mb": full["rss_over_baseline_mb"],
        "probs": np.load(workdir / f"{tag}.probs.npy"),
    }


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
    size = next((e.input_size for e in entries if e.kind == "tflite"), (48, 48))
    x, y, split_name = load_faces(data, split, size, limit)
    say(f"data: {data} ({split_name} split), {len(y):,} faces")

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
                metrics = evaluate_predictions(y, probs, LABELS)
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
                        "per_class_f1": {k: v["f1"] for k, v in metrics["per_class"].items()},
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


def run_benchmark_command(args) -> int:
    """Handler of ``deepfer benchmark``; exit status. Bad input raises a
    :class:`deepfer.edge.errors.DeepFERError` (the command prints it, exit 2)."""
    out = Path(args.out) if args.out else None
    json_path = args.json or (out / "benchmark.json" if out else None)
    md_path = args.markdown or (out / "benchmark.md" if out else None)
    plot_path = args.plot or (out / "benchmark.png" if out else None)
    settings = BenchSettings(args.warmup, args.runs, args.batch_size, args.threads)
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
