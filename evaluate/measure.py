"""One model's measurements for ``deepfer benchmark``, each in a fresh worker process
(:mod:`deepfer.evaluate.worker`): the settings, the model entry, and the errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepfer.edge.errors import DeepFERError
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

    def check(self) -> None:
        """Raise :class:`BenchmarkError` naming the first option out of range."""
        for flag, value, least in (
            ("--runs", self.runs, 1),
            ("--warmup", self.warmup, 0),
            ("--batch-size", self.batch_size, 1),
            ("--threads", self.threads, 0),
        ):
            if value < least:
                raise BenchmarkError(
                    f"{flag} {value}: must be at least {least}"
                    + (" (0: every core)" if flag == "--threads" else "")
                )


@dataclass
class ModelEntry:
    path: Path
    kind: str  # "tflite" | "keras"
    format: str  # int8, float32, float16, dynamic, keras, or the input dtype
    is_float: bool
    input_size: tuple[int, int]


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
