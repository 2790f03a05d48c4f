"""``deepfer train``: fit a model on FER2013 and write a run folder.

A run folder holds ``<model>.keras`` and ``<model>.h5`` (best validation
weights), ``checkpoints/last.keras`` (for ``--resume``), ``checkpoints/best.keras``,
``history.csv`` / ``history.json``, ``config.json``, ``summary.json`` and the
plots ``training_curves.png`` and ``class_distribution.png``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from deepfer.edge.errors import DeepFERError
from deepfer.edge.labels import LABELS, NUM_CLASSES
from deepfer.train.data import (
    DataError,
    FaceDataset,
    class_weights,
    format_counts,
    load_fer2013,
    stratified_split,
)

log = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "plateau", "constant")


class ConfigError(DeepFERError, ValueError):
    """A training option with a bad value; the message names the option and the value."""


@dataclass
class TrainConfig:
    data: str = ""
    out: str = "runs/deepfer"
    model: str = "deepfer-vgg"
    finetune: str = ""  # a .keras model to start from instead of --model
    weights: str = ""  # backbone weights for transfer models ('imagenet' or '')
    epochs: int = 40
    batch_size: int = 64
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 1e-4  # adamw / sgd only
    schedule: str = "cosine"  # cosine | plateau | constant
    warmup_epochs: int = 1
    plateau_factor: float = 0.5
    plateau_patience: int = 3
    label_smoothing: float = 0.1
    flip: bool = True
    shift: float = 0.1
    rotation: float = 0.03  # fraction of a full turn (0.03 = +-11 degrees)
    zoom: float = 0.1
    brightness: float = 0.1
    contrast: float = 0.1
    val_split: float = 0.1
    patience: int = 0  # early stopping patience in epochs (0: off)
    class_weight: bool = False
    seed: int = 1337
    threads: int = 0
    input_size: int = 48
    max_per_class: int = 0  # cap faces per class (quick trials); 0: all
    progress: bool = True
    snapshots: bool = False  # keep each epoch's weights (checkpoints/epoch-NNN.weights.h5)

    def to_json(self) -> dict:
        return asdict(self)

    def validate(self, resume: bool = False) -> TrainConfig:
        """Check every option up front; raises :class:`ConfigError` naming the first bad one."""
        from deepfer.train.models import MODELS

        def bad(key: str, why: str):
            raise ConfigError(f"train.{key} = {getattr(self, key)!r}: {why}")

        if not self.data and not resume:
            bad("data", "give fer2013.csv or a FER2013 folder (--data)")
        if self.data and not Path(self.data).exists():
            bad("data", "no such file or folder")
        if self.finetune and not resume:
            if Path(self.finetune).suffix.lower() not in (".keras", ".h5"):
                bad("finetune", "expected a .keras or .h5 model")
            if not Path(self.finetune).is_file():
                bad("finetune", "no such model file")
        elif self.model not in MODELS:
            bad("model", f"choose one of {', '.join(MODELS)}")
        if (
            self.weights.lower() not in ("", "none", "imagenet")
            and not Path(self.weights).is_file()
        ):
            bad("weights", "choose imagenet, none, or a weights file")
        if self.weights.lower() not in ("", "none") and self.model != "mobilenetv3small":
            bad("weights", "backbone weights apply to --model mobilenetv3small only")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            bad("schedule", f"choose one of {', '.join(SCHEDULES)}")
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                bad(key, "must be at least 1")
        if not self.lr > 0:
            bad("lr", "must be above 0")
        if not 0.0 < self.val_split < 1.0:
            bad("val_split", "must be between 0 and 1")
        if not 0.0 <= self.label_smoothing < 1.0:
            bad("label_smoothing", "must be in [0, 1)")
        if not 0.0 < self.plateau_factor < 1.0:
            bad("plateau_factor", "must be between 0 and 1")
        for key in (
            "weight_decay",
            "warmup_epochs",
            "plateau_patience",
            "patience",
            "threads",
            "max_per_class",
            "shift",
            "rotation",
            "zoom",
            "brightness",
            "contrast",
        ):
            if getattr(self, key) < 0:
                bad(key, "must not be negative")
        if self.max_per_class == 1:
            bad("max_per_class", "needs at least 2 faces per class to hold some out for validation")
        if not 16 <= self.input_size <= 512:
            bad("input_size", "must be between 16 and 512 pixels")
        return self

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def learning_rate(cfg: TrainConfig, epoch: int) -> float:
    """The scheduled learning rate for a 0-based ``epoch`` (cosine or constant)."""
    if cfg.warmup_epochs and epoch < cfg.warmup_epochs:
        return cfg.lr * (epoch + 1) / (cfg.warmup_epochs + 1)
    if cfg.schedule == "cosine":
        span = max(cfg.epochs - cfg.warmup_epochs, 1)
        t = (epoch - cfg.warmup_epochs) / span
        return cfg.lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0))))
    return cfg.lr


def make_augmenter(cfg: TrainConfig):
    """Keras preprocessing layers applied to training batches only."""
    import keras

    layers = keras.layers
    aug = []
    if cfg.flip:
        aug.append(layers.RandomFlip("horizontal", seed=cfg.seed))
    if cfg.rotation:
        aug.append(layers.RandomRotation(cfg.rotation, fill_mode="reflect", seed=cfg.seed))
    if cfg.shift:
        aug.append(
            layers.RandomTranslation(cfg.shift, cfg.shift, fill_mode="reflect", seed=cfg.seed)
        )
    if cfg.zoom:
        aug.append(layers.RandomZoom(cfg.zoom, fill_mode="reflect", seed=cfg.seed))
    if cfg.brightness:
        aug.append(layers.RandomBrightness(cfg.brightness, value_range=(0, 255), seed=cfg.seed))
    if cfg.contrast:
        aug.append(layers.RandomContrast(cfg.contrast, value_range=(0, 255), seed=cfg.seed))
    return keras.Sequential(aug, name="augment") if aug else None


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


def _dataset(ds: FaceDataset, cfg: TrainConfig, training: bool, augmenter=None):
    import tensorflow as tf

    x = ds.x.astype(np.float32)
    y = np.eye(NUM_CLASSES, dtype=np.float32)[ds.y]
    data = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        data = data.shuffle(len(ds), seed=cfg.seed, reshuffle_each_iteration=True)
    data = data.batch(cfg.batch_size)
    if training and augmenter is not None:
        data = data.map(
            lambda a, b: (augmenter(a, training=True), b), num_parallel_calls=tf.data.AUTOTUNE
        )
    return data.prefetch(tf.data.AUTOTUNE)


def _cap(ds: FaceDataset, per_class: int, seed: int) -> FaceDataset:
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(ds.y):
        idx = np.flatnonzero(ds.y == c)
        keep.append(rng.permutation(idx)[:per_class])
    return ds.subset(np.sort(np.concatenate(keep)))


def prepare_data(cfg: TrainConfig) -> dict[str, FaceDataset]:
    """Train and validation sets (validation carved from train, stratified, if none given)."""
    splits = load_fer2013(cfg.data, ("train", "val"), size=cfg.input_size, progress=cfg.progress)
    if "train" not in splits:
        raise DataError(f"{cfg.data}: no training split found")
    train = splits["train"]
    if cfg.max_per_class:
        train = _cap(train, cfg.max_per_class, cfg.seed)
    val = splits.get("val")
    if val is None:
        keep, held = stratified_split(train.y, cfg.val_split, cfg.seed)
        train, val = train.subset(keep, "train"), train.subset(held, "val")
        val.name = f"val ({cfg.val_split:.0%} of train, stratified)"
    return {"train": train, "val": val}


def _set_threads(threads: int) -> None:
    if threads:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
        except RuntimeError:  # TensorFlow already ran in this process (train() called again)
            log.warning(
                "--threads %d ignored: TensorFlow is already running in this process", threads
            )


def train(cfg: TrainConfig, resume: bool = False, epochs: int | None = None) -> dict:
    """Train per ``cfg``; returns the summary dict also written to ``summary.json``.

    With ``resume``, the run folder's saved config is used and training goes on
    from ``checkpoints/last.keras``; ``epochs`` may raise the total.
    """
    out = Path(cfg.out)
    ckpt_dir = out / "checkpoints"
    last_ckpt = ckpt_dir / "last.keras"
    state_file = ckpt_dir / "state.json"
    ran = None  # the config the run's earlier epochs ran under
    if resume:
        if not last_ckpt.is_file() or not (out / "config.json").is_file():
            raise FileNotFoundError(f"{out}: no checkpoint to resume from ({last_ckpt})")
        saved = TrainConfig.from_json(json.loads((out / "config.json").read_text()))
        saved.out, saved.threads, saved.progress = cfg.out, cfg.threads, cfg.progress
        saved.snapshots = cfg.snapshots
        ran = replace(saved)
        if epochs:
            saved.epochs = epochs
        cfg = saved
    cfg.validate(resume=resume)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from deepfer.train import plots
    from deepfer.train.models import load_for_finetune, make_model

    _set_threads(cfg.threads)  # before any TensorFlow op runs
    keras.utils.set_random_seed(cfg.seed)
    model = None
    if cfg.finetune and not resume:
        model = load_for_finetune(cfg.finetune, NUM_CLASSES)
        shape = model.input_shape
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 1:
            raise ConfigError(
                f"train.finetune = {cfg.finetune!r}: expected a square grayscale input "
                f"(n, H, H, 1), the model has {shape}"
            )
        if shape[1] != cfg.input_size:
            print(f"fine-tuning at the model's input size {shape[1]}x{shape[2]}", flush=True)
            cfg.input_size = int(shape[1])
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_json(), indent=2))

    data = prepare_data(cfg)
    train_ds, val_ds = data["train"], data["val"]
    for ds in (train_ds, val_ds):
        print(format_counts(ds), flush=True)
    plots.class_distribution(
        {"train": train_ds.class_counts(), "validation": val_ds.class_counts()},
        out / "class_distribution.png",
    )

    initial_epoch = 0
    best_so_far = None
    if resume:
        model = keras.models.load_model(last_ckpt)
        initial_epoch = json.loads(state_file.read_text())["epoch"] if state_file.is_file() else 0
        previous = _read_history(out / "history.csv").get("val_accuracy", [])[:initial_epoch]
        best_so_far = max(previous) if previous else None
        _align_history(out / "history.csv", ran, initial_epoch)
        print(f"resuming from {last_ckpt} at epoch {initial_epoch + 1}", flush=True)
        if initial_epoch >= cfg.epochs:
            print(
                f"nothing to do: {initial_epoch} of {cfg.epochs} epochs already run "
                "(pass --epochs to go further)",
                flush=True,
            )
    else:
        shape = (cfg.input_size, cfg.input_size, 1)
        if model is not None:  # fine-tuning
            pass
        elif cfg.model == "mobilenetv3small":
            weights = None if cfg.weights.lower() in ("", "none") else cfg.weights
            model = make_model(cfg.model, shape, NUM_CLASSES, weights=weights)
        else:
            model = make_model(cfg.model, shape, NUM_CLASSES)
        model.compile(
            optimizer=make_optimizer(cfg),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
            metrics=["accuracy"],
        )
    print(f"model {model.name}: {model.count_params():,} parameters", flush=True)

    # Order matters: the schedulers first (ReduceLROnPlateau changes the rate at the epoch's
    # end, and both log it), then the checkpoints and the state file, the CSV log last.
    callbacks: list = []
    if cfg.schedule in ("cosine", "constant"):
        callbacks.append(
            keras.callbacks.LearningRateScheduler(lambda e, _lr: learning_rate(cfg, e))
        )
    else:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_accuracy",
                mode="max",
                factor=cfg.plateau_factor,
                patience=cfg.plateau_patience,
                min_lr=1e-6,
                verbose=1,
            )
        )
    if cfg.patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy",
                mode="max",
                patience=cfg.patience,
                restore_best_weights=False,
            )
        )
    callbacks += [
        keras.callbacks.ModelCheckpoint(
            ckpt_dir / "best.keras",
            monitor="val_accuracy",
            mode="max",
            save_best_only=True,
            initial_value_threshold=best_so_far,  # a resumed run keeps its earlier best
        ),
        keras.callbacks.ModelCheckpoint(last_ckpt),
        *(
            [
                keras.callbacks.ModelCheckpoint(
                    ckpt_dir / "epoch-{epoch:03d}.weights.h5", save_weights_only=True
                )
            ]
            if cfg.snapshots
            else []
        ),
        _EpochState(state_file),
        keras.callbacks.CSVLogger(out / "history.csv", append=resume),
    ]
    weights = class_weights(train_ds.y) if cfg.class_weight else None
    tf.random.set_seed(cfg.seed)
    started = time.time()
    model.fit(
        _dataset(train_ds, cfg, True, make_augmenter(cfg)),
        validation_data=_dataset(val_ds, cfg, False),
        epochs=cfg.epochs,
        initial_epoch=initial_epoch,
        class_weight=weights,
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline shuffles
        verbose=2,
    )
    seconds = time.time() - started

    history = _read_history(out / "history.csv")
    (out / "history.json").write_text(json.dumps(history, indent=1))
    plots.training_curves(history, out / "training_curves.png")

    best = keras.models.load_model(ckpt_dir / "best.keras", compile=False)
    stem = cfg.model if not cfg.finetune else Path(cfg.finetune).stem + "-finetuned"
    keras_path, h5_path = out / f"{stem}.keras", out / f"{stem}.h5"
    best.save(keras_path)
    absl = logging.getLogger("absl")  # quiet Keras' "HDF5 is legacy" warning: we mean it
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        best.save(h5_path)
    finally:
        absl.setLevel(level)
    probs = best.predict(val_ds.x.astype(np.float32), batch_size=256, verbose=0)
    val_acc = float((probs.argmax(1) == val_ds.y).mean())
    best_epoch = int(np.argmax(history.get("val_accuracy", [0]))) + 1
    summary = {
        "model": stem,
        "parameters": int(best.count_params()),
        "labels": list(LABELS),
        "input_size": cfg.input_size,
        "data": str(cfg.data),
        "train_faces": len(train_ds),
        "val_faces": len(val_ds),
        "epochs_run": len(history.get("loss", [])),
        "best_epoch": best_epoch,
        "val_accuracy": val_acc,
        "train_seconds_this_call": round(seconds, 1),
        "keras": str(keras_path),
        "h5": str(h5_path),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(
        f"\ndone in {seconds / 60:.1f} min: {summary['epochs_run']} epoch(s), best epoch "
        f"{best_epoch}, validation accuracy {val_acc:.2%} ({len(val_ds):,} faces)\n"
        f"run folder {out}/:\n"
        f"  {keras_path.name}, {h5_path.name}  best model (Keras, legacy HDF5)\n"
        "  history.csv, history.json, training_curves.png, class_distribution.png, summary.json\n"
        "  checkpoints/last.keras  to go on with --resume\n"
        f"next: deepfer evaluate {keras_path} --data {cfg.data}",
        flush=True,
    )
    return summary


def _align_history(path: Path, cfg: TrainConfig, epochs_done: int) -> None:
    """Make ``history.csv`` ready for Keras' CSVLogger to append to on resume.

    CSVLogger appends rows in its own column order (the logged keys, sorted) and
    never rewrites the header, so a history written without ``learning_rate``
    (older DeepFER versions) would get shifted columns. Rewrite it with the
    column, filled from the schedule those epochs ran under (``cfg``: the run's
    config before ``--epochs`` changed it) where it is known, and drop rows past the
    checkpoint (an epoch logged after the last checkpoint was written).
    """
    import csv

    if not path.is_file():
        return
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    if not header:
        return
    keep = [r for r in rows if r.get("epoch", "").isdigit() and int(r["epoch"]) < epochs_done]
    if "learning_rate" in header and len(keep) == len(rows):
        return
    keys = sorted(set(header) - {"epoch"} | {"learning_rate"})
    for row in keep:
        if not row.get("learning_rate") and cfg.schedule in ("cosine", "constant"):
            row["learning_rate"] = repr(learning_rate(cfg, int(row["epoch"])))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["epoch", *keys], restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(keep)


def _read_history(path: Path) -> dict[str, list[float]]:
    import csv

    history: dict[str, list[float]] = {}
    if not path.is_file():
        return history
    with path.open() as fh:
        for row in csv.DictReader(fh):
            for key, value in row.items():
                if key in ("epoch", None) or value in ("", None):  # None: surplus fields
                    continue
                history.setdefault(key, []).append(float(value))
    return history


def _epoch_state_callback():
    import keras

    class EpochState(keras.callbacks.Callback):
        def __init__(self, path: Path):
            super().__init__()
            self.path = path

        def on_epoch_end(self, epoch, logs=None):
            self.path.write_text(json.dumps({"epoch": epoch + 1}))

    return EpochState


def _EpochState(path: Path):  # noqa: N802 - a factory named like the class it builds
    return _epoch_state_callback()(path)
