"""Training options: :class:`TrainConfig` (every ``deepfer train`` flag, checked up front) and
the learning-rate schedule. Light: no numpy or TensorFlow at import (the CLI reads the defaults).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from deepfer.edge.errors import DeepFERError

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
    crop: int = 0  # random square crops of side crop..input_size, resized back (0: off)
    erase: float = 0.0  # random-erasing probability per face
    #: random zoom-out: half the faces shrink to 1/s of the side, s in [1, 1 + zoom_out],
    #: the surround mirrored or flat grey (a detector framing looser than FER2013; 0: off)
    zoom_out: float = 0.0
    #: random gamma: pixels p -> 255 * (p / 255) ** g per face, ln g uniform in [-gamma, gamma]
    #: (lighting a camera sees that FER2013's faces rarely show; 0: off)
    gamma: float = 0.0
    #: Gaussian pixel noise, sigma uniform in [0, noise] grey levels per face (a camera's
    #: sensor noise in dim light; 0: off)
    noise: float = 0.0
    mixup: float = 0.0  # mixup Beta(alpha, alpha) (0: off)
    val_split: float = 0.1
    patience: int = 0  # early stopping patience in epochs (0: off)
    class_weight: bool = False
    seed: int = 1337  # shuffling, augmentation, initial weights
    #: Seed of the validation slice (and --max-per-class); None: ``seed``. Fix it to train a
    #: second model with another seed on the same slice (the slice must never be trained on).
    split_seed: int | None = None
    threads: int = 0
    input_size: int = 48
    max_per_class: int = 0  # cap faces per class (quick trials); 0: all
    progress: bool = True
    distribute: str = ""  # "" | mirrored | multiworker (batch_size and lr are per replica)
    snapshots: bool = False  # keep each epoch's weights (checkpoints/epoch-NNN.weights.h5)
    #: fp32 | bf16 (Keras mixed_bfloat16: bfloat16 compute, float32 weights; for CPUs with
    #: AVX512-BF16/AMX and GPUs that have it). What is saved for use is float32 either way.
    precision: str = "fp32"
    #: Distillation (train/distill.py): a .keras teacher whose scores on ``teacher_views``
    #: fixed views of each face the student learns, weighted against the label.
    teacher: str = ""
    teacher_views: int = 4
    teacher_weight: float = 0.7
    #: view: each view's target is the teacher's scores on that view; face: on the face itself
    #: (every view of a face learns what the teacher says of the face as FER2013 framed it)
    teacher_target: str = "view"
    #: FER+ votes as a soft prior (train/distill.py ``label_targets``): "" (off), "ferplus"
    #: (``<data>/ferplus_train.csv``) or a votes file; the label side of every target becomes
    #: ``(1 - soft_weight) * one-hot + soft_weight * the face's FER+ vote shares``
    soft_labels: str = ""
    soft_weight: float = 0.3

    def soft_labels_file(self) -> Path | None:
        """The FER+ votes file ``soft_labels`` names, or None when off."""
        if not self.soft_labels:
            return None
        if self.soft_labels == "ferplus":
            return Path(self.data) / "ferplus_train.csv"
        return Path(self.soft_labels)

    @property
    def data_seed(self) -> int:
        """The seed that picks the validation slice."""
        return self.seed if self.split_seed is None else self.split_seed

    def to_json(self) -> dict:
        return asdict(self)

    def absolute(self) -> TrainConfig:
        """The files and folders this config names (``data``, ``out``, ``finetune``,
        ``teacher``, a ``soft_labels`` file, a ``weights`` file) made absolute, ``~``
        expanded, so the run folder's ``config.json`` means the same from any folder (for
        ``--resume``, ``deepfer average``, ``deepfer ensemble``). Changes ``self``."""
        for key in ("data", "out", "finetune", "teacher", "soft_labels", "weights"):
            value = getattr(self, key)
            if not value or (key == "soft_labels" and value == "ferplus"):
                continue
            if key == "weights" and value.lower() in ("none", "imagenet"):
                continue
            setattr(self, key, os.path.abspath(os.path.expanduser(value)))
        return self

    def validate(self, resume: bool = False) -> TrainConfig:
        """Check every option up front; raises :class:`ConfigError` naming the first bad one."""
        from deepfer.evaluate.model_file import keras_file_problem
        from deepfer.train.models import MODELS

        def bad(key: str, why: str):
            raise ConfigError(f"train.{key} = {getattr(self, key)!r}: {why}")

        if not self.data and not resume:
            bad("data", "give fer2013.csv or a FER2013 folder (--data)")
        if self.data and not Path(self.data).exists():
            bad("data", "no such file or folder")
        if self.finetune and not resume:
            from deepfer.evaluate.model_file import KERAS_SUFFIXES

            if Path(self.finetune).suffix.lower() not in KERAS_SUFFIXES:
                bad("finetune", "expected a .keras or .h5 model")
            if not Path(self.finetune).is_file():
                bad("finetune", "no such model file")
            if problem := keras_file_problem(self.finetune):
                bad("finetune", problem)
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
        if self.precision not in ("fp32", "bf16"):
            bad("precision", "choose fp32 or bf16")
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
        for key in ("crop", "mixup"):
            if getattr(self, key) < 0:
                bad(key, "must not be negative")
        if self.crop and not 8 <= self.crop <= self.input_size:
            bad("crop", f"must be 0 (off) or between 8 and the input size {self.input_size}")
        if not 0.0 <= self.erase <= 1.0:
            bad("erase", "must be a probability in [0, 1]")
        if not 0.0 <= self.zoom_out <= 0.9:
            bad("zoom_out", "must be in [0, 0.9] (0.3: faces shrink to 77-100% of the side)")
        if not 0.0 <= self.gamma <= 1.5:
            bad("gamma", "must be in [0, 1.5] (0.5: gamma between 0.61 and 1.65)")
        if not 0.0 <= self.noise <= 64.0:
            bad("noise", "must be in [0, 64] grey levels")
        if self.teacher:
            if Path(self.teacher).suffix.lower() != ".keras" or not Path(self.teacher).is_file():
                bad("teacher", "expected an existing .keras model (one, or a deepfer ensemble)")
            if problem := keras_file_problem(self.teacher):
                bad("teacher", problem)
            if self.teacher_views < 1:
                bad("teacher_views", "must be at least 1 (the faces themselves)")
            if not 0.0 <= self.teacher_weight <= 1.0:
                bad("teacher_weight", "must be in [0, 1] (1: the teacher's scores only)")
            if self.mixup:
                bad("mixup", "cannot go with --teacher (the views are scored once)")
            if self.teacher_target not in ("view", "face"):
                bad("teacher_target", "choose view or face")
        if self.soft_labels:
            votes = self.soft_labels_file()
            if not votes.is_file():
                bad("soft_labels", f"no FER+ votes file at {votes} (give --soft-labels FILE)")
            if not 0.0 <= self.soft_weight <= 1.0:
                bad("soft_weight", "must be in [0, 1] (0: the FER2013 label only)")
            if self.mixup:
                bad("mixup", "cannot go with --soft-labels (a mixed face has no votes)")
        if self.distribute not in ("", "none", "mirrored", "multiworker"):
            bad("distribute", "choose mirrored or multiworker")
        if self.distribute == "multiworker" and os.environ.get("TF_CONFIG"):
            try:
                json.loads(os.environ["TF_CONFIG"])["cluster"]
            except (ValueError, KeyError, TypeError):
                bad("distribute", "TF_CONFIG is not JSON with a 'cluster' entry")
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
