"""``deepfer train``: fit a model on FER2013 and write a run folder (:mod:`deepfer.train.run_folder`).

:func:`train` is four steps, each its own function so a recipe can change one:
:func:`build_or_resume` (a new compiled model, a fine-tuned one, or the last checkpoint),
:func:`make_callbacks` (schedule, checkpoints, logs: ``callbacks.py``), the fit, and
:func:`finish` (best model saved as .keras and .h5, history, plots, ``summary.json``). The input pipeline is
:func:`prepare_data` (splits), :func:`make_dataset` and :func:`make_augmenter`; with a
teacher, :func:`deepfer.train.distill.distilled_dataset`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from deepfer.data.dataset import LAYOUT_CLASSES, DataError, FaceDataset, format_counts
from deepfer.data.fer2013 import load_fer2013
from deepfer.data.splits import cap_per_class, class_weights, stratified_split
from deepfer.edge.labels import LABELS, NUM_CLASSES
from deepfer.evaluate.keras_model import with_dtype_policy
from deepfer.train.augment import make_augmenter, make_batch_augment
from deepfer.train.callbacks import make_callbacks
from deepfer.train.config import ConfigError, TrainConfig, learning_rate
from deepfer.train.distill import distilled_dataset, label_targets
from deepfer.train.distribute import (
    make_strategy,
    prepare_model,
    scaled,
    set_threads,
    worker_index,
)
from deepfer.train.models import PRECISIONS
from deepfer.train.run_folder import RunFolder
from deepfer.train.run_start import interrupted, resolve_config, start_afresh

__all__ = [
    "ConfigError",
    "TrainConfig",
    "build_or_resume",
    "finish",
    "learning_rate",
    "make_callbacks",
    "prepare_data",
    "train",
]


def make_optimizer(cfg: TrainConfig):
    import keras

    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(cfg.lr)
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(
            cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
        )
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose adam, adamw or sgd")


def make_dataset(ds: FaceDataset, cfg: TrainConfig, training: bool, augmenter=None, labels=None):
    """A batched, prefetched ``tf.data`` pipeline of one-hot labels (or ``labels``, ``(n, 7)``
    targets); shuffled and augmented when ``training``."""
    import tensorflow as tf

    x = ds.x.astype(np.float32)
    y = np.eye(NUM_CLASSES, dtype=np.float32)[ds.y] if labels is None else labels
    data = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        data = data.shuffle(len(ds), seed=cfg.seed, reshuffle_each_iteration=True)
    data = data.batch(cfg.batch_size)
    batch_fn = make_batch_augment(cfg) if training else None
    if training and (augmenter is not None or batch_fn is not None):

        def augment(a, b):
            if augmenter is not None:
                a = augmenter(a, training=True)
            return batch_fn(a, b) if batch_fn is not None else (a, b)

        data = data.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)


def prepare_data(cfg: TrainConfig) -> dict[str, FaceDataset]:
    """Train and validation sets (validation carved from train, stratified, if none given)."""
    splits = load_fer2013(cfg.data, ("train", "val"), size=cfg.input_size, progress=cfg.progress)
    if "train" not in splits:
        raise DataError(f"{cfg.data}: no training split found")
    train = splits["train"]
    if cfg.max_per_class:
        train = train.subset(cap_per_class(train.y, cfg.max_per_class, cfg.data_seed))
    val = splits.get("val")
    if val is None:
        keep, held = stratified_split(train.y, cfg.val_split, cfg.data_seed)
        train, val = train.subset(keep, "train"), train.subset(held, "val")
        val.name = f"val ({cfg.val_split:.0%} of train, stratified)"
    return {"train": train, "val": val}


def load_finetune_model(cfg: TrainConfig):
    """The model to fine-tune (``cfg.finetune``); sets ``cfg.input_size`` to its input."""
    from deepfer.train.models import load_for_finetune

    model = load_for_finetune(cfg.finetune, NUM_CLASSES, error=ConfigError)
    shape = model.input_shape
    if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 1:
        raise ConfigError(
            f"train.finetune = {cfg.finetune!r}: expected a square grayscale input "
            f"(n, H, H, 1), the model has {shape}"
        )
    if shape[1] != cfg.input_size:
        print(f"fine-tuning at the model's input size {shape[1]}x{shape[2]}", flush=True)
        cfg.input_size = int(shape[1])
    return model


def make_loss(cfg: TrainConfig):
    import keras

    return keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)


def compile_model(model, cfg: TrainConfig) -> None:
    model.compile(optimizer=make_optimizer(cfg), loss=make_loss(cfg), metrics=["accuracy"])


def build_or_resume(
    cfg: TrainConfig, run: RunFolder, ran: TrainConfig | None = None, model=None
) -> tuple:
    """``(model, initial_epoch, best validation accuracy so far or None)``.

    ``ran`` (resuming: the config the earlier epochs ran under): the last checkpoint, the
    epochs it holds, and ``history.csv`` mended for appending. Otherwise ``model`` (to
    fine-tune) or a new ``cfg.model``, compiled.
    """
    from deepfer.train.models import load_keras_model, make_model

    if ran is not None:
        model = load_keras_model(run.last_checkpoint, compile=True)
        initial_epoch = run.epochs_done()
        previous = run.read_history().get("val_accuracy", [])[:initial_epoch]
        schedule = None
        if ran.schedule in ("cosine", "constant"):
            schedule = lambda e: learning_rate(ran, e)  # noqa: E731
        run.mend_history(initial_epoch, schedule)
        print(f"resuming from {run.last_checkpoint} at epoch {initial_epoch + 1}", flush=True)
        if initial_epoch >= cfg.epochs:
            print(
                f"nothing to do: {initial_epoch} of {cfg.epochs} epochs already run "
                "(pass --epochs to go further)",
                flush=True,
            )
        return model, initial_epoch, (max(previous) if previous else None)
    if model is None:
        shape = (cfg.input_size, cfg.input_size, 1)
        kwargs = {}
        if cfg.model == "mobilenetv3small":
            kwargs["weights"] = None if cfg.weights.lower() in ("", "none") else cfg.weights
        model = make_model(cfg.model, shape, NUM_CLASSES, **kwargs)
    compile_model(model, cfg)
    return model, 0, None


def model_stem(cfg: TrainConfig) -> str:
    """File stem of the run's model: the model name, or ``<finetuned model>-finetuned``."""
    return cfg.model if not cfg.finetune else Path(cfg.finetune).stem + "-finetuned"


def finish(cfg: TrainConfig, run: RunFolder, data: dict[str, FaceDataset], seconds: float) -> dict:
    """Save the best checkpoint as ``<stem>.keras`` and ``.h5``, the history and its plot,
    and ``summary.json``; print where everything is. Returns the summary."""
    from deepfer.train import plots
    from deepfer.train.models import load_keras_model

    history = run.read_history()
    run.write_history_json(history)
    plots.training_curves(history, run.curves_plot)

    # float32 whatever the training precision: no bfloat16 casts in what is used or converted
    best = with_dtype_policy(load_keras_model(run.best_checkpoint))
    stem = model_stem(cfg)
    keras_path, h5_path = run.model_files(stem)
    best.save(keras_path)
    absl = logging.getLogger("absl")  # quiet Keras' "HDF5 is legacy" warning: we mean it
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        best.save(h5_path)
    finally:
        absl.setLevel(level)
    train_ds, val_ds = data["train"], data["val"]
    probs = best.predict(val_ds.x.astype(np.float32), batch_size=256, verbose=0)
    val_acc = float((probs.argmax(1) == val_ds.y).mean())
    best_epoch = int(np.argmax(history.get("val_accuracy", [0]))) + 1
    summary = {
        "model": stem,
        "parameters": int(best.count_params()),
        "labels": list(LABELS),
        "input_size": cfg.input_size,
        "data": str(cfg.data),
        "data_layout": "class folders" if train_ds.layout == LAYOUT_CLASSES else "splits",
        "train_faces": len(train_ds),
        "train_classes": train_ds.class_counts(),
        "val_faces": len(val_ds),
        "epochs_run": len(history.get("loss", [])),
        "best_epoch": best_epoch,
        "val_accuracy": val_acc,
        "train_seconds_this_call": round(seconds, 1),
        "keras": str(keras_path),
        "h5": str(h5_path),
    }
    run.write_summary(summary)
    next_data = cfg.data  # its test split; a class folder is all trained on or validated on
    if summary["data_layout"] == "class folders":
        next_data = f"HELD_OUT_FACES/  (class folders of faces not in {cfg.data})"
    print(
        f"\ndone in {seconds / 60:.1f} min: {summary['epochs_run']} epoch(s), best epoch "
        f"{best_epoch}, validation accuracy {val_acc:.2%} ({len(val_ds):,} faces)\n"
        f"run folder {run.path}/:\n"
        f"  {keras_path.name}, {h5_path.name}  best model (Keras, legacy HDF5)\n"
        "  history.csv, history.json, training_curves.png, class_distribution.png, summary.json\n"
        "  checkpoints/last.keras  to go on with --resume\n"
        + _next_steps(cfg, run, keras_path, next_data, summary["epochs_run"]),
        flush=True,
    )
    return summary


def _next_steps(cfg: TrainConfig, run: RunFolder, keras_path: Path, data: str, epochs: int) -> str:
    """The commands to run next: evaluate; a fine-tuned model is first wrapped to average its
    scores on the face and its mirror, as the shipped models are (``deepfer average
    --flip-average``: without --snapshots, the best checkpoint alone)."""
    if not cfg.finetune:
        return f"next: deepfer evaluate {keras_path} --data {data}"
    stem = model_stem(cfg)
    last, model = "", run.path / f"{stem}-best-flipavg.keras"
    if cfg.snapshots:  # it may choose an average of the last epochs: its name is said then
        last, model = f" --last {min(5, epochs)}", run.path / "<the -flipavg.keras it names>"
    return (
        f"next: deepfer average {run.path} --flip-average{last}  (one model that scores each "
        "face and its mirror, as the shipped models do)\n"
        f"      deepfer evaluate {model} --data {data}"
    )


def train(
    cfg: TrainConfig,
    resume: bool = False,
    epochs: int | None = None,
    snapshots: bool | None = None,
    overwrite: bool = False,
) -> dict:
    """Train per ``cfg``; returns the summary dict also written to ``summary.json``.

    With ``resume``, the run folder's saved config is used and training goes on
    from ``checkpoints/last.keras``; ``epochs`` may raise the total, ``cfg.data`` (if set)
    replaces the stored data path, ``snapshots`` (if not None) turns snapshots on or off.
    Otherwise a folder holding a run is refused, or with ``overwrite`` cleared first.
    Stopped by Ctrl-C, it says on stderr how far it got and how to go on, and re-raises.
    """
    if overwrite and resume:
        raise ConfigError("--overwrite cannot go with --resume (it deletes the run to go on with)")
    cfg, ran = resolve_config(cfg, RunFolder(cfg.out), resume, epochs, snapshots)
    run = RunFolder(cfg.out)
    if worker_index():  # a multiworker run: only the chief writes the run folder
        run = RunFolder(Path(cfg.out) / f"worker-{worker_index()}")
    if not resume:
        start_afresh(run, overwrite, cfg, model_stem(cfg))
    try:
        return _setup_and_train(cfg, run, ran, resume)
    except KeyboardInterrupt:
        print(interrupted(run, cfg), file=sys.stderr, flush=True)
        raise


def _setup_and_train(cfg: TrainConfig, run: RunFolder, ran, resume: bool) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    set_threads(cfg.threads)  # before any TensorFlow op runs
    strategy = make_strategy(cfg.distribute)  # multiworker: before other ops too
    replicas = strategy.num_replicas_in_sync if strategy else 1
    scope = strategy.scope if strategy else contextlib.nullcontext  # a new one each time
    if strategy:
        print(
            f"--distribute {cfg.distribute}: {replicas} replica(s), global batch "
            f"{cfg.batch_size * replicas}, peak lr {cfg.lr * replicas:g}",
            flush=True,
        )
    keras.utils.set_random_seed(cfg.seed)
    policy = PRECISIONS[cfg.precision]
    keras.mixed_precision.set_global_policy(policy)  # layers built from here on
    try:
        return _train(cfg, run, ran, resume, strategy, scope, replicas, policy)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _train(cfg, run, ran, resume, strategy, scope, replicas, policy) -> dict:
    import keras
    import tensorflow as tf

    from deepfer.train import plots

    if policy != "float32":
        print(f"--precision {cfg.precision}: {policy} (float32 weights)", flush=True)
    with scope():
        finetuned = load_finetune_model(cfg) if cfg.finetune and not resume else None
        if finetuned is not None:
            finetuned = with_dtype_policy(finetuned, policy)
    run.create()
    run.write_config(cfg.to_json())

    data = prepare_data(cfg)
    train_ds, val_ds = data["train"], data["val"]
    for ds in (train_ds, val_ds):
        print(format_counts(ds), flush=True)
    plots.class_distribution(
        {"train": train_ds.class_counts(), "validation": val_ds.class_counts()},
        run.classes_plot,
    )

    fit_cfg, ran = scaled(cfg, replicas), (scaled(ran, replicas) if ran else None)
    with scope():
        model, initial_epoch, best_so_far = build_or_resume(fit_cfg, run, ran, finetuned)
    print(f"model {model.name}: {model.count_params():,} parameters", flush=True)
    prepare_model(model, strategy, model.input_shape[1:], NUM_CLASSES)
    callbacks = make_callbacks(fit_cfg, run, resume, best_so_far)
    weights = class_weights(train_ds.y) if cfg.class_weight else None
    # a resumed run must not replay epoch 1's order and augmentations: seed by the epoch
    fit_cfg = replace(fit_cfg, seed=cfg.seed + initial_epoch)
    tf.random.set_seed(fit_cfg.seed)
    keras.mixed_precision.set_global_policy("float32")  # augmentation in float32, always
    augmenter = make_augmenter(fit_cfg)
    keras.mixed_precision.set_global_policy(policy)
    started = time.time()
    labels = label_targets(cfg, train_ds)  # one-hot, or with FER+ votes as a soft prior
    if cfg.teacher:  # distillation: fixed views, the teacher's scores in the targets
        train_data = distilled_dataset(
            cfg, run, train_ds, augmenter, fit_cfg.batch_size, fit_cfg.seed, labels
        )
    else:
        train_data = make_dataset(train_ds, fit_cfg, True, augmenter, labels)
    model.fit(
        train_data,
        validation_data=make_dataset(val_ds, fit_cfg, False),
        epochs=cfg.epochs,
        initial_epoch=initial_epoch,
        class_weight=weights,
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline shuffles
        verbose=2,
    )
    return finish(cfg, run, data, time.time() - started)
