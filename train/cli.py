"""Argument parsing for ``deepfer train``, ``deepfer average`` and ``deepfer ensemble``.

Only argparse at import time: TensorFlow is imported when a command runs.
"""

from __future__ import annotations

import argparse
from dataclasses import fields


class _Default:
    """A ``TrainConfig`` default, read only when help is printed: registering ``deepfer
    train`` must not import the training code (``deepfer --help`` stays light). Values left
    at a ``_Default`` are not passed on, so TrainConfig's own defaults apply."""

    def __init__(self, name: str):
        self.name = name

    def __str__(self) -> str:
        from deepfer.train.config import TrainConfig

        return str(getattr(TrainConfig(), self.name))


class _Defaults:
    def __getattr__(self, name: str) -> _Default:
        return _Default(name)


def add_train(sub: argparse._SubParsersAction) -> None:
    d = _Defaults()
    p = sub.add_parser(
        "train",
        help="train a model on FER2013 (needs the train extra)",
        description="Train a Keras model on FER2013 (CSV, Kaggle folders or train/validation folders) "
        "and write a run folder with .keras, .h5, history and plots.",
    )
    p.add_argument(
        "--data",
        required=False,
        help="fer2013.csv, or a folder with train/ (and test/ or validation/)",
    )
    p.add_argument("--out", default=d.out, help="run folder (default %(default)s)")
    p.add_argument(
        "--model",
        default=d.model,
        help="deepfer-cnn, deepfer-vgg, deepfer-edge or mobilenetv3small (default %(default)s)",
    )
    p.add_argument(
        "--finetune",
        default="",
        metavar="MODEL.keras",
        help="fine-tune this DeepFER model on --data instead of building --model",
    )
    p.add_argument(
        "--weights",
        default="",
        help="backbone weights for mobilenetv3small: imagenet (needs internet) or none",
    )
    p.add_argument("--epochs", type=int, default=d.epochs, help="epochs (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--optimizer", choices=("adam", "adamw", "sgd"), default=d.optimizer)
    p.add_argument(
        "--lr", type=float, default=d.lr, help="peak learning rate (default %(default)s)"
    )
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="for adamw and sgd")
    p.add_argument("--schedule", choices=("cosine", "plateau", "constant"), default=d.schedule)
    p.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs)
    p.add_argument("--plateau-factor", type=float, default=d.plateau_factor)
    p.add_argument("--plateau-patience", type=int, default=d.plateau_patience)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--no-flip", dest="flip", action="store_false", help="no horizontal flips")
    p.add_argument(
        "--shift", type=float, default=d.shift, help="random shift, fraction of the side"
    )
    p.add_argument(
        "--rotation", type=float, default=d.rotation, help="random rotation, fraction of a turn"
    )
    p.add_argument("--zoom", type=float, default=d.zoom)
    p.add_argument("--brightness", type=float, default=d.brightness)
    p.add_argument("--contrast", type=float, default=d.contrast)
    p.add_argument(
        "--crop",
        type=int,
        default=d.crop,
        metavar="S",
        help="random square crops of side S..input size, resized back (e.g. 44; 0: off)",
    )
    p.add_argument(
        "--erase", type=float, default=d.erase, metavar="P", help="random-erasing probability"
    )
    p.add_argument(
        "--zoom-out",
        type=float,
        default=d.zoom_out,
        metavar="F",
        help="half the faces shrink to 1/s of the side, s in [1, 1 + F], the surround mirrored "
        "or flat grey: a detector's looser framing (e.g. 0.3; 0: off)",
    )
    p.add_argument(
        "--gamma",
        type=float,
        default=d.gamma,
        metavar="G",
        help="random gamma per face, ln gamma uniform in [-G, G] (e.g. 0.5; 0: off)",
    )
    p.add_argument(
        "--noise",
        type=float,
        default=d.noise,
        metavar="S",
        help="Gaussian pixel noise, sigma uniform in [0, S] grey levels per face (e.g. 10; 0: off)",
    )
    p.add_argument(
        "--mixup", type=float, default=d.mixup, metavar="ALPHA", help="mixup Beta alpha (0: off)"
    )
    p.add_argument(
        "--val-split",
        type=float,
        default=d.val_split,
        help="validation fraction carved from train when no validation/ folder exists",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=d.patience,
        help="early-stopping patience in epochs (0: off)",
    )
    p.add_argument("--class-weight", action="store_true", help="balanced class weights")
    p.add_argument(
        "--seed", type=int, default=d.seed, help="shuffling, augmentation and initial weights"
    )
    p.add_argument(
        "--split-seed",
        type=int,
        default=None,
        metavar="SEED",
        help="seed of the validation slice (default: --seed); keep it when training a second "
        "model with another --seed, so both are selected on the same untouched faces",
    )
    p.add_argument(
        "--threads", type=int, default=d.threads, help="CPU threads for TensorFlow (0: all)"
    )
    p.add_argument("--input-size", type=int, default=d.input_size)
    p.add_argument(
        "--max-per-class", type=int, default=0, help="cap faces per class, for quick trials"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint, with its options (--epochs "
        "may raise the total; --data replaces its data path, e.g. when the data moved)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in an --out that holds a run: its checkpoints, snapshots, history "
        "and models are deleted first (without it such an --out is refused)",
    )
    snap = p.add_mutually_exclusive_group()
    snap.add_argument(
        "--snapshots",
        action="store_true",
        default=None,
        help="also keep each epoch's weights in checkpoints/ (for deepfer average); a resumed "
        "run keeps them as it was started",
    )
    snap.add_argument(
        "--no-snapshots",
        dest="snapshots",
        action="store_false",
        default=None,
        help="with --resume: stop keeping each epoch's weights",
    )
    p.add_argument(
        "--distribute",
        choices=("mirrored", "multiworker"),
        default=None,
        help="tf.distribute: mirrored (every GPU here, else every logical CPU) or multiworker "
        "(the cluster in TF_CONFIG); --batch-size and --lr are per replica",
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default=d.precision,
        help="bf16: mixed bfloat16 (bfloat16 compute, float32 weights): 1.33x faster per "
        "epoch on a CPU with AMX here, equal accuracy not yet shown (docs/training.md); "
        "the saved models are float32 (default fp32)",
    )
    p.add_argument(
        "--teacher",
        default=d.teacher,
        metavar="T.keras",
        help="distil: learn this model's (or deepfer ensemble's) scores on fixed augmented "
        "views of each face (docs/training.md)",
    )
    p.add_argument(
        "--teacher-views",
        type=int,
        default=d.teacher_views,
        metavar="V",
        help="views per face the teacher scores once: the face and V-1 augmented copies "
        "(default %(default)s)",
    )
    p.add_argument(
        "--teacher-weight",
        type=float,
        default=d.teacher_weight,
        metavar="W",
        help="target = W * teacher scores + (1 - W) * label (default %(default)s)",
    )
    p.add_argument(
        "--teacher-target",
        choices=("view", "face"),
        default=d.teacher_target,
        help="the teacher's scores on each view (default) or on the face itself for all its "
        "views: the student learns to answer for a reframed view what the teacher says of "
        "the face",
    )
    p.add_argument(
        "--soft-labels",
        default=d.soft_labels,
        metavar="ferplus|FILE",
        help="FER+ votes as a soft prior on the labels: 'ferplus' (DATA/ferplus_train.csv) "
        "or a votes file; validation stays on the FER2013 labels (docs/training.md)",
    )
    p.add_argument(
        "--soft-weight",
        type=float,
        default=d.soft_weight,
        metavar="W",
        help="label target = (1 - W) * one-hot + W * FER+ vote shares (default %(default)s)",
    )
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    import sys

    from deepfer.data.dataset import DataError
    from deepfer.train.config import ConfigError, TrainConfig
    from deepfer.train.training import train

    known = {f.name for f in fields(TrainConfig)}
    values = {
        k: v
        for k, v in vars(args).items()
        if k in known and v is not None and not isinstance(v, _Default)
    }
    if not args.resume and not args.data:
        print(
            "deepfer train: error: --data is required (fer2013.csv or a FER2013 folder)",
            file=sys.stderr,
        )
        return 2
    cfg = TrainConfig(**values)
    try:
        epochs = None if isinstance(args.epochs, _Default) else args.epochs
        train(
            cfg,
            resume=args.resume,
            epochs=epochs,
            snapshots=args.snapshots,
            overwrite=args.overwrite,
        )
    except (ConfigError, DataError, FileNotFoundError) as exc:
        print(f"deepfer train: error: {exc}", file=sys.stderr)
        return 2
    return 0


def add_average(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "average",
        help="average the weights of a run's last epochs (SWA; needs the train extra)",
        description="Average the weights of the last N epochs of a `deepfer train --snapshots` run, "
        "recompute batch-norm statistics on its training faces, score each average and the best "
        "checkpoint on the run's validation slice, and save the best as a .keras model.",
    )
    p.add_argument("run", help="a `deepfer train` run folder trained with --snapshots")
    p.add_argument(
        "--last",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help="average the last N epochs; several values are compared (default: 5 10; with "
        "--flip-average and a run without snapshots, none: the best checkpoint alone)",
    )
    p.add_argument(
        "--flip-average",
        action="store_true",
        help="rank by flip-averaged validation accuracy and save the model wrapped to average "
        "its scores on the face and its mirror (two passes per face); a run without "
        "--snapshots (a fine-tuning run) gets its best checkpoint so wrapped",
    )
    p.add_argument(
        "--averages-only",
        action="store_true",
        help="choose among the averages only: the best single checkpoint is still scored, but "
        "its validation figure is the maximum over the run's epochs on the same faces, so it "
        "is biased upward",
    )
    p.add_argument("--out", default=None, help="output .keras (default: in the run folder)")
    p.set_defaults(handler=_run_average)


def _run_average(args: argparse.Namespace) -> int:
    import sys

    from deepfer.train.averaging import AverageError, average_run

    try:
        average_run(
            args.run,
            args.last,
            flip_average=args.flip_average,
            out=args.out,
            averages_only=args.averages_only,
        )
    except AverageError as exc:
        print(f"deepfer average: error: {exc}", file=sys.stderr)
        return 2
    return 0


def add_ensemble(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ensemble",
        help="combine trained models into one that averages their scores (needs the train extra)",
        description="Combine two or more Keras emotion classifiers into one Keras model (one "
        "graph: `deepfer convert` makes one .tflite of it) whose scores are the weighted mean of "
        "the members'. Each member and the ensemble are scored on the validation slice the "
        "members' `deepfer train` runs share; ENSEMBLE.ensemble.json beside the model records "
        "the members, weights and figures for the converted model's sidecar.",
    )
    p.add_argument("models", nargs="+", help="member models (.keras), two or more")
    p.add_argument("--out", required=True, help="the ensemble's .keras file")
    p.add_argument(
        "--weights",
        default=None,
        metavar="W,W,...|search",
        help="member weights, comma-separated (normalised to sum 1; default equal), or 'search': "
        "for two members, choose the first's weight from 0.3-0.7 on the validation slice",
    )
    p.add_argument(
        "--no-score",
        dest="score",
        action="store_false",
        help="do not score on the validation slice (members from different runs or splits)",
    )
    p.set_defaults(handler=_run_ensemble)


def _run_ensemble(args: argparse.Namespace) -> int:
    import sys

    from deepfer.train.ensemble import EnsembleError, make_ensemble

    weights = args.weights
    if weights is not None and weights != "search":
        try:
            weights = [float(w) for w in weights.split(",")]
        except ValueError:
            print(
                f"deepfer ensemble: error: --weights {args.weights!r}: give numbers separated "
                "by commas, or 'search'",
                file=sys.stderr,
            )
            return 2
    try:
        make_ensemble(args.models, args.out, weights=weights, score=args.score)
    except EnsembleError as exc:
        print(f"deepfer ensemble: error: {exc}", file=sys.stderr)
        return 2
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    add_train(sub)
    add_average(sub)
    add_ensemble(sub)
