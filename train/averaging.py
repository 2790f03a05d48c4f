"""Weight averaging of a run's last epochs (stochastic weight averaging, SWA).

A run trained with ``deepfer train --snapshots`` keeps each epoch's weights in
``checkpoints/epoch-NNN.weights.h5``. Averaging the weights of the last few
epochs of a cosine schedule lands nearer the middle of the flat region the
optimiser wanders in, which usually generalises a little better than any single
epoch (Izmailov et al., 2018). Batch-norm statistics of averaged weights are not
the average of the statistics, so they are recomputed afterwards on the run's
own training faces (no augmentation, dropout off).

Every candidate (the best checkpoint, and each requested average) is scored on
the run's validation slice, the same one training selected on, and the best is
saved; nothing here looks at a test split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepfer.data.dataset import DataError
from deepfer.edge.errors import DeepFERError
from deepfer.edge.paths import unwritable
from deepfer.evaluate.model_file import keras_file_problem
from deepfer.train.config import ConfigError, TrainConfig
from deepfer.train.run_folder import RunFolder, RunFolderError
from deepfer.train.training import model_stem, prepare_data


class AverageError(DeepFERError, ValueError):
    """A run folder that cannot be averaged (no snapshots, too few, unreadable)."""


@dataclass
class Candidate:
    name: str
    epochs: list[int]
    single: float  # validation accuracy, one pass
    flip: float  # validation accuracy, face and mirror averaged

    def score(self, flip_average: bool) -> float:
        return self.flip if flip_average else self.single


def average_weights(model, paths: list[Path]) -> list[np.ndarray]:
    """The element-wise mean of the weights in ``paths`` (loaded into ``model`` in turn)."""
    total = None
    for path in paths:
        try:
            model.load_weights(path)
        except Exception as exc:  # Keras raises many types for a file it cannot read
            raise AverageError(
                f"{path}: cannot be loaded into the run's model ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:300]})"
            ) from None
        weights = [w.astype(np.float64) for w in model.get_weights()]
        total = weights if total is None else [t + w for t, w in zip(total, weights)]
    return [(t / len(paths)).astype(np.float32) for t in total]


def recompute_batchnorm(model, x: np.ndarray, batch_size: int = 256) -> int:
    """Set every BatchNormalization layer's moving mean and variance to their average over ``x``.

    Runs the model in training mode batch by batch with the momentum set so the
    moving statistics become the running mean of the batch statistics; dropout
    is switched off meanwhile so the statistics match inference. Returns the
    number of layers updated.
    """
    import keras

    bns, drops = [], []

    def walk(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            bns.append(layer)
        elif isinstance(layer, keras.layers.Dropout):
            drops.append(layer)
        for sub in getattr(layer, "layers", []):
            walk(sub)

    walk(model)
    if not bns:
        return 0
    saved = [(b.momentum, b.trainable) for b in bns]
    rates = [d.rate for d in drops]
    try:
        for d in drops:
            d.rate = 0.0
        for b in bns:
            b.trainable = True
        for n, start in enumerate(range(0, len(x), batch_size), start=1):
            for b in bns:  # moving = moving * (n-1)/n + batch / n
                b.momentum = (n - 1) / n
            model(x[start : start + batch_size].astype(np.float32), training=True)
    finally:
        for b, (momentum, trainable) in zip(bns, saved):
            b.momentum, b.trainable = momentum, trainable
        for d, rate in zip(drops, rates):
            d.rate = rate
    return len(bns)


def _accuracies(model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    p = model.predict(x.astype(np.float32), batch_size=256, verbose=0)
    q = model.predict(x[:, :, ::-1].astype(np.float32), batch_size=256, verbose=0)
    return float((p.argmax(1) == y).mean()), float((((p + q) / 2).argmax(1) == y).mean())


def average_run(
    run: str | Path,
    last: list[int] | None = None,
    flip_average: bool = False,
    out: str | Path | None = None,
    echo=print,
    averages_only: bool = False,
) -> dict:
    """Score the best checkpoint and the average of each ``last`` N epochs; save the best.

    Candidates are ranked on the validation slice (flip-averaged accuracy with
    ``flip_average``, one pass otherwise); the winner is saved as ``out``
    (default ``RUN/<model>-swa<N>.keras`` or ``RUN/<model>-best.keras``), wrapped
    with :func:`deepfer.train.models.with_flip_average` if asked (the plain model
    is saved beside it, without ``-flipavg``). The figures go to
    ``RUN/average.json`` and are returned.

    ``last`` None: 5 and 10; with ``flip_average`` and a run that kept no snapshots (a
    fine-tuning run, say), none: the best checkpoint alone, saved flip-averaged.

    ``averages_only``: the best checkpoint is scored but not a candidate. It was picked as
    the best of the run's epochs on this same slice, so its figure is the maximum of several
    noisy scores and biased upward; an average's is not.
    """
    folder = RunFolder(run)
    run = folder.path
    if not folder.is_run():
        raise AverageError(f"{run}: not a `deepfer train` run folder (no config.json)")
    try:
        snapshots = folder.snapshots()
    except RunFolderError as exc:
        raise AverageError(str(exc)) from None
    stray = sorted(set(folder.snapshot_files()) - set(snapshots))
    if last is None:  # no snapshots to average: the best checkpoint alone, flip-averaged
        last = [5, 10] if snapshots or not flip_average else []
    if not last and averages_only:
        raise AverageError(
            "--averages-only: the run kept no snapshots, so there is no average to choose; "
            "train (or --resume) with --snapshots"
        )
    if not snapshots and last:
        raise AverageError(
            f"{folder.checkpoints}: no epoch-NNN.weights.h5 snapshots"
            + (f" of this run ({len(stray)} from an earlier one)" if stray else "")
            + "; train (or --resume) with --snapshots to keep each epoch's weights"
        )
    if stray:
        echo(
            f"ignoring {len(stray)} snapshot(s) in {folder.checkpoints} not written by this run "
            f"(epochs {', '.join(map(str, stray))}: an earlier run's, or past its last checkpoint)"
        )
    bad = [n for n in last if n < 1]
    if bad:
        raise AverageError(f"--last {bad[0]}: must be at least 1")
    epochs = list(snapshots)
    too_many = [n for n in last if n > len(epochs)]
    if too_many:
        raise AverageError(
            f"--last {too_many[0]}: the run has only {len(epochs)} snapshot(s) "
            f"(epochs {epochs[0]}-{epochs[-1]})"
        )
    best_file = folder.best_checkpoint
    if not best_file.is_file():
        raise AverageError(f"{best_file}: missing; the run has no best checkpoint")
    used = sorted({e for n in last for e in epochs[-n:]})
    for path in [best_file, *(snapshots[e] for e in used)]:
        if problem := keras_file_problem(path):
            raise AverageError(f"{path}: {problem}")
    if out is not None:
        out = Path(out)
        if out.suffix != ".keras":
            raise AverageError(f"--out {out}: the model is saved as a .keras file")
        if why := unwritable(out):
            raise AverageError(f"--out {out}: {why}")
    if why := unwritable(folder.average_file):
        raise AverageError(f"{folder.average_file}: {why}")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from deepfer.evaluate.keras_model import with_dtype_policy
    from deepfer.train.models import load_keras_model, with_flip_average

    cfg = TrainConfig.from_json(folder.read_config())
    cfg.progress = False
    try:
        data = prepare_data(cfg)
    except (ConfigError, DataError, OSError) as exc:
        hint = ""
        if cfg.data and not os.path.isabs(str(cfg.data)):
            hint = (
                " (the run stored it relative to the folder it was trained from: run "
                "`deepfer average` there, or resume the run once with --data to store its path)"
            )
        raise AverageError(f"{run}: cannot load the run's data {cfg.data!r}: {exc}{hint}") from None
    train, val = data["train"], data["val"]
    echo(f"validation slice: {len(val):,} faces; batch-norm statistics from {len(train):,}")

    # float32 even if trained with --precision bf16: what is saved here gets converted
    best = with_dtype_policy(load_keras_model(best_file, error=AverageError))
    candidates = [Candidate("best checkpoint", [], *_accuracies(best, val.x, val.y))]
    models = {"best checkpoint": best}
    for n in sorted(set(last)):
        chosen = epochs[-n:]
        model = with_dtype_policy(load_keras_model(best_file, error=AverageError))
        model.set_weights(average_weights(model, [snapshots[e] for e in chosen]))
        recompute_batchnorm(model, train.x)
        name = f"average of the last {n}"
        candidates.append(Candidate(name, chosen, *_accuracies(model, val.x, val.y)))
        models[name] = model
        echo(
            f"{name} (epochs {chosen[0]}-{chosen[-1]}): validation {candidates[-1].single:.2%}, "
            f"flip-averaged {candidates[-1].flip:.2%}"
        )
    echo(
        f"best checkpoint: validation {candidates[0].single:.2%}, "
        f"flip-averaged {candidates[0].flip:.2%}"
    )
    ranked = candidates[1:] if averages_only else candidates
    winner = max(ranked, key=lambda c: c.score(flip_average))
    model = models[winner.name]
    stem = model_stem(cfg)
    tag = f"swa{len(winner.epochs)}" if winner.epochs else "best"
    if out is None:
        out = run / f"{stem}-{tag}{'-flipavg' if flip_average else ''}.keras"
    out = Path(os.path.abspath(out))  # average.json names it from any folder
    out.parent.mkdir(parents=True, exist_ok=True)
    base = None
    if flip_average:  # keep the plain model too: it is the one to fine-tune
        base = out.with_name(out.name.removesuffix(".keras").removesuffix("-flipavg") + ".keras")
        if base == out:
            base = out.with_name(out.stem + "-plain.keras")
        model.save(base)
        model = with_flip_average(model)
    model.save(out)
    result = {
        "run": str(run),
        "selected_on": f"validation slice ({len(val):,} faces, "
        + ("flip-averaged" if flip_average else "one pass")
        + " accuracy)",
        "candidates": [c.__dict__ for c in candidates],
        "chosen": winner.__dict__,
        "flip_average": flip_average,
        "batchnorm_faces": len(train),
        "keras": str(out),
        **({"keras_without_flip": str(base)} if base else {}),
    }
    folder.write_average(result)
    echo(f"chosen: {winner.name} -> {out}")
    return result
