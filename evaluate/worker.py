"""One benchmark measurement in a fresh process: ``python -m deepfer.evaluate.worker SPEC.json``.

Run by :mod:`deepfer.evaluate.benchmark`, one process per model and thread
count, so that each model's peak memory is its own and a
``.tflite`` model is measured in a process that never imported TensorFlow
(unless the ``tensorflow`` runtime was asked for, or the model is Keras).

Peak memory is :func:`deepfer.edge.stats.peak_rss_mb` (VmHWM, which starts afresh at
exec); ``ru_maxrss`` would report the parent's peak when the parent was bigger.

SPEC keys: ``model``, ``runtime`` (TFLite runtime name or ``auto``),
``threads``, ``faces`` (``.npy`` of uint8 faces), ``warmup``, ``runs``,
``batch_size`` (0: no throughput), ``predict`` (bool), ``probs_out`` (``.npy``),
``result`` (JSON written at the end).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from deepfer.edge.stats import peak_rss_mb

#: Exit status when the requested TFLite runtime cannot be used here.
EXIT_NO_RUNTIME = 3


def _stats(times_ms: list[float]) -> dict:
    a = np.asarray(times_ms, np.float64)
    return {
        "median": round(float(np.median(a)), 4),
        "p90": round(float(np.percentile(a, 90)), 4),
        "mean": round(float(a.mean()), 4),
        "min": round(float(a.min()), 4),
        "runs": int(a.size),
    }


def _with_version(runtime_name: str) -> str:
    from importlib import metadata

    dists = {"tensorflow": ("tensorflow", "tensorflow-cpu")}.get(runtime_name, (runtime_name,))
    for dist in dists:
        try:
            return f"{runtime_name} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return runtime_name


def _load(path: Path, runtime_name: str, threads: int):
    """A :class:`deepfer.evaluate.predictors.Predictor` and a runtime description."""
    from deepfer.evaluate.predictors import load_predictor

    if path.suffix.lower() == ".tflite":
        model = load_predictor(path, threads, runtime_name)
        return model, _with_version(model.runtime)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1 if threads == 1 else 2)
    model = load_predictor(path)
    return model, f"{model.runtime} (tensorflow {tf.__version__})"


def measure(spec: dict) -> dict:
    faces = np.load(spec["faces"])
    baseline = peak_rss_mb()
    path = Path(spec["model"])
    threads = int(spec["threads"])
    started = time.perf_counter()
    model, runtime_name = _load(path, spec.get("runtime", "auto"), threads)
    load_ms = (time.perf_counter() - started) * 1000.0
    singles = [faces[i : i + 1] for i in range(min(len(faces), 64))]

    for i in range(int(spec["warmup"])):
        model.predict(singles[i % len(singles)], batch_size=1)
    times = []
    for i in range(int(spec["runs"])):
        face = singles[i % len(singles)]
        t0 = time.perf_counter()
        model.predict(face, batch_size=1)
        times.append((time.perf_counter() - t0) * 1000.0)
    result = {
        "model": str(path),
        "runtime": runtime_name,
        "threads": threads,
        "input_dtype": getattr(model, "input_dtype", ""),
        "load_ms": round(load_ms, 2),
        "latency_ms": _stats(times),
        "tensorflow_imported": "tensorflow" in sys.modules,
    }

    batch_size = int(spec.get("batch_size") or 0)
    if batch_size:
        batch = faces[:batch_size]
        if len(batch) < batch_size:
            batch = np.resize(faces, (batch_size, *faces.shape[1:]))
        model.predict(batch, batch_size=batch_size)  # warm-up at this batch size
        done, t0 = 0, time.perf_counter()
        while done < 3 or time.perf_counter() - t0 < 1.0:
            model.predict(batch, batch_size=batch_size)
            done += 1
        seconds = time.perf_counter() - t0
        result["throughput"] = {
            "batch_size": batch_size,
            "faces_per_second": round(done * batch_size / seconds, 2),
            "batches": done,
        }
    peak = peak_rss_mb()
    result["peak_rss_mb"] = round(peak, 1)
    result["rss_over_baseline_mb"] = round(peak - baseline, 1)

    if spec.get("predict"):
        t0 = time.perf_counter()
        probs = model.predict(faces, batch_size=256)
        result["predict_seconds"] = round(time.perf_counter() - t0, 3)
        np.save(spec["probs_out"], probs.astype(np.float32))
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m deepfer.evaluate.worker SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    from deepfer.edge.model.runtime import RuntimeUnavailable

    try:
        result = measure(spec)
    except RuntimeUnavailable as exc:
        print(f"RuntimeUnavailable: {exc}", file=sys.stderr)
        return EXIT_NO_RUNTIME
    except Exception as exc:  # reported to the parent, which names the model
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    Path(spec["result"]).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
