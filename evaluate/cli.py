"""Argument parsing for ``deepfer evaluate`` and ``deepfer benchmark``.

Only argparse at import time: the models, data and plots are imported when a command runs.
"""

from __future__ import annotations

import argparse
import os


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a .keras or .tflite model on FER2013",
        description="Accuracy, per-class precision/recall/F1, macro-F1, confusion matrix and ROC curves "
        "with PNG plots and a JSON report.",
    )
    p.add_argument("model", help="a .keras, .h5 or .tflite model")
    p.add_argument(
        "--data",
        required=True,
        help="fer2013.csv, a FER2013 folder, or one folder of <class>/ image folders",
    )
    p.add_argument(
        "--split",
        default="test",
        help="train, val, test (PublicTest) or private_test (default %(default)s)",
    )
    p.add_argument("--out", default=None, help="report folder (default: beside the model)")
    p.add_argument(
        "--tta",
        choices=("none", "flip", "centre", "tencrop"),
        nargs="*",
        default=["flip"],
        help="test-time augmentation, each reported beside the plain result with its cost per "
        "face: flip (face + mirror), centre (the centre 44/48 crop resized back, for models "
        "trained with --crop), tencrop (4 corner + centre crops and mirrors: 10 passes) "
        "(default: flip)",
    )
    p.add_argument(
        "--labels",
        choices=("fer2013", "ferplus"),
        default="fer2013",
        help="score against the FER2013 labels, or the FER+ majority vote of ten annotators "
        "(faces without a clear majority among the seven classes are left out)",
    )
    p.add_argument(
        "--ferplus-votes",
        default=None,
        metavar="CSV",
        help="FER+ votes file (default: DATA/ferplus_test.csv, or ferplus_train.csv for train)",
    )
    p.add_argument(
        "--threads", type=int, default=0, help="CPU threads for a .tflite model (0: all)"
    )
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from deepfer.evaluate.evaluation import run_evaluate

    return run_evaluate(args)


def add_benchmark(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark",
        help="compare models (.tflite, .keras): accuracy, F1, agreement, size, latency, memory",
        description="Benchmark models on a FER2013 split: accuracy, macro-F1, per-class F1, top-1 "
        "agreement with the float reference, file size, single-face latency (median and p90, "
        "1 thread and all cores), batch throughput, peak memory and runtime. Each model runs "
        "in a fresh process.",
    )
    p.add_argument("models", nargs="+", metavar="MODEL", help=".tflite (with sidecar) or .keras")
    p.add_argument("--data", required=True, help="fer2013.csv or a FER2013 folder")
    p.add_argument("--split", default="test", help="split to measure on (default %(default)s)")
    p.add_argument(
        "--limit",
        type=int,
        default=0,
        metavar="N",
        help="use a stratified sample of N faces (default: the whole split)",
    )
    p.add_argument(
        "--reference",
        default=None,
        metavar="MODEL",
        help="float model for the agreement column (default: the first float model given)",
    )
    p.add_argument(
        "--runtime",
        action="append",
        default=None,
        metavar="NAME",
        help="TFLite runtime: auto (default), ai-edge-litert, tflite-runtime, tensorflow, or "
        "'all' for every installed one; repeat to compare",
    )
    p.add_argument("--runs", type=int, default=200, help="timed single-face runs (default 200)")
    p.add_argument("--warmup", type=int, default=20, help="untimed runs first (default 20)")
    p.add_argument("--batch-size", type=int, default=32, help="batch for throughput (default 32)")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help=f"the 'all cores' thread count (default: every core, {os.cpu_count() or 1} here)",
    )
    p.add_argument("--out", default=None, metavar="DIR", help="write benchmark.{json,md,png} here")
    p.add_argument("--json", default=None, metavar="FILE", help="write the results as JSON")
    p.add_argument("--markdown", default=None, metavar="FILE", help="write a Markdown report")
    p.add_argument("--plot", default=None, metavar="FILE", help="plot accuracy vs size and latency")
    p.add_argument(
        "--update-sidecars",
        action="store_true",
        help="store each .tflite model's measured metrics in its sidecar",
    )
    p.add_argument("--progress", action="store_true", help="show data loading progress")
    p.set_defaults(handler=_run_benchmark)


def _run_benchmark(args: argparse.Namespace) -> int:
    from deepfer.evaluate.benchmark import run_benchmark_command

    return run_benchmark_command(args)


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``evaluate`` and ``benchmark``."""
    add_evaluate(sub)
    add_benchmark(sub)
