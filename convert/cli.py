"""Argument parsing for ``deepfer convert``.

Only argparse at import time: TensorFlow, matplotlib and the conversion code
are imported when a command runs.
"""

from __future__ import annotations

import argparse
import os
import sys

#: Exit status when int8 fails the check against float (loses more accuracy than
#: --max-drop, or agrees on fewer faces than --min-agreement): files written, no --force.
EXIT_ACCURACY_DROP = 3


def add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a Keras model to full-int8 and float32 TFLite (needs the train extra)",
        description="Convert a trained Keras model to a full-integer int8 TFLite model calibrated on "
        "real faces and a float32 one (float16 and dynamic-range on request), each with a JSON "
        "sidecar, then check int8 against float on held-out faces.",
    )
    p.add_argument("model", help="the Keras model (.keras or .h5), or a `deepfer train` run folder")
    p.add_argument(
        "--calibration-data",
        required=True,
        metavar="DIR",
        help="FER2013 folder (train/<class>/...) or fer2013.csv; faces are drawn from its training split",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="STEM",
        help="output stem: models/NAME writes models/NAME_int8.tflite, models/NAME_float32.tflite "
        "and a .json sidecar beside each; a folder (existing, or ending in /) writes "
        "FOLDER/<model name>_int8.tflite, ...",
    )
    p.add_argument(
        "--calibration-size",
        type=int,
        default=350,
        metavar="N",
        help="faces in the representative set, balanced across classes (default %(default)s)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the calibration and check sampling (default 0)"
    )
    p.add_argument("--float16", action="store_true", help="also write NAME_float16.tflite")
    p.add_argument(
        "--dynamic",
        action="store_true",
        help="also write NAME_dynamic.tflite (dynamic-range: int8 weights, float I/O)",
    )
    p.add_argument(
        "--no-float32",
        dest="float32",
        action="store_false",
        help="skip the float32 model (the check then compares with the Keras model)",
    )
    p.add_argument(
        "--check-data",
        metavar="DIR",
        default=None,
        help="held-out faces for the int8-vs-float check (default: the calibration data's test "
        "split, else training faces not used for calibration)",
    )
    p.add_argument(
        "--check-size",
        type=int,
        default=0,
        metavar="N",
        help="check on exactly N held-out faces (stratified sample, at least one per class; "
        "default: the whole test split)",
    )
    p.add_argument("--no-check", dest="check", action="store_false", help="skip the check")
    p.add_argument(
        "--max-drop",
        type=float,
        default=1.0,
        metavar="POINTS",
        help="accuracy points int8 may lose against float (default %(default)s)",
    )
    p.add_argument(
        "--min-agreement",
        type=float,
        default=90.0,
        metavar="PERCENT",
        help="percent of held-out faces on which int8 must give float's top-1 class "
        "(default %(default)g; the shipped models agree on 99.2-99.4%%)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="exit 0 even when int8 fails --max-drop or --min-agreement",
    )
    p.add_argument(
        "--trained-on",
        default=None,
        metavar="TEXT",
        help="what the model was trained on, for the sidecar (default: read from the "
        "`deepfer train` run folder, else 'unknown')",
    )
    p.add_argument(
        "--training-from",
        default=None,
        metavar="SIDECAR",
        help="take trained_on and training from this sidecar (.json): re-converting a "
        "model whose run folder is gone, e.g. a shipped one",
    )
    p.add_argument("--progress", action="store_true", help="show data loading progress")
    p.set_defaults(handler=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from deepfer.convert.quantize import AccuracyDropError, ConvertError, convert_model
    from deepfer.data.sampling import CalibrationError
    from deepfer.edge.model.runtime import ModelLoadError, RuntimeUnavailable

    formats = ["int8"] + (["float32"] if args.float32 else [])
    formats += (["float16"] if args.float16 else []) + (["dynamic"] if args.dynamic else [])
    try:
        result = convert_model(
            args.model,
            args.calibration_data,
            args.out,
            n_calibration=args.calibration_size,
            formats=formats,
            seed=args.seed,
            check_data=args.check_data,
            check_size=args.check_size,
            check=args.check,
            max_drop=args.max_drop,
            min_agreement=args.min_agreement,
            force=args.force,
            trained_on=args.trained_on,
            training_from=args.training_from,
            progress=args.progress,
            echo=lambda line: print(line, flush=True),
        )
    except AccuracyDropError as exc:
        print(exc.result.summary())
        print(f"deepfer convert: {exc}", file=sys.stderr)
        return EXIT_ACCURACY_DROP
    except (ConvertError, CalibrationError, ModelLoadError, RuntimeUnavailable) as exc:
        print(f"deepfer convert: error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    if result.check and "int8" in result.check["models"]:
        m = result.check["models"]["int8"]
        verdict = "ok" if result.passed else "failed, accepted with --force"
        drop = m["accuracy_drop_points"]
        change = f"loses {drop:.2f} points" if drop >= 0 else f"gains {-drop:.2f} points"
        print(
            f"int8 vs float: {m['agreement_with_float']:.2%} top-1 agreement (at least "
            f"{args.min_agreement:g}%), accuracy {m['accuracy']:.2%} vs "
            f"{m['float_accuracy']:.2%} (int8 {change}; limit {args.max_drop:g}): {verdict}"
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``convert``."""
    add_convert(sub)
