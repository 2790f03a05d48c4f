"""The callbacks of a ``deepfer train`` fit: the learning-rate schedule, early stopping, the
checkpoints (best, last, per-epoch snapshots), the epoch counter ``--resume`` reads and the
CSV log, all in the run folder (:mod:`deepfer.train.run_folder`)."""

from __future__ import annotations

from deepfer.train.config import TrainConfig, learning_rate
from deepfer.train.run_folder import RunFolder


def make_callbacks(
    cfg: TrainConfig, run: RunFolder, resume: bool = False, best_so_far: float | None = None
) -> list:
    """Schedule, early stopping, checkpoints, the epoch counter and the CSV log.

    Order matters: the schedulers first (ReduceLROnPlateau changes the rate at the epoch's
    end, and both log it), then the checkpoints and the state file, the CSV log last.
    """
    import keras

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
            run.best_checkpoint,
            monitor="val_accuracy",
            mode="max",
            save_best_only=True,
            initial_value_threshold=best_so_far,  # a resumed run keeps its earlier best
        ),
        keras.callbacks.ModelCheckpoint(run.last_checkpoint),
    ]
    if cfg.snapshots:
        callbacks.append(
            keras.callbacks.ModelCheckpoint(run.snapshot_pattern, save_weights_only=True)
        )
    callbacks += [
        _epoch_state(run, cfg.snapshots),
        keras.callbacks.CSVLogger(run.history_csv, append=resume),
    ]
    return callbacks


def _epoch_state(run: RunFolder, snapshot: bool = False):
    """A callback writing the epochs done to ``checkpoints/state.json`` (for ``--resume``),
    and whether the epoch's snapshot was kept (``deepfer average`` uses only those)."""
    import keras

    class EpochState(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            run.write_epochs_done(epoch + 1, snapshot)

    return EpochState()
