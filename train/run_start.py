"""How a ``deepfer train`` run starts or goes on: the options it trains with (a new run's, or
the run folder's saved ones on ``--resume``, with what may change), a folder holding an
earlier run refused or cleared (``--overwrite``), and what to say when it is stopped."""

from __future__ import annotations

import os
import shlex
from dataclasses import replace
from pathlib import Path

from deepfer.evaluate.model_file import keras_file_problem
from deepfer.train.config import ConfigError, TrainConfig
from deepfer.train.run_folder import RunFolder, RunFolderError


def resolve_config(
    cfg: TrainConfig,
    run: RunFolder,
    resume: bool,
    epochs: int | None,
    snapshots: bool | None = None,
) -> tuple[TrainConfig, TrainConfig | None]:
    """``(config to train with, config the earlier epochs ran under or None)``, checked, its
    paths absolute (:meth:`TrainConfig.absolute`: the run folder works from any folder).

    Resuming takes the run folder's saved options (this call's ``out``, ``threads`` and
    ``progress`` kept); ``epochs`` may raise the total, a ``cfg.data`` given replaces the
    stored one (said so), and ``snapshots`` (None: as the run was started, or on if
    ``cfg.snapshots``) turns the per-epoch snapshots on or off. ``cfg`` is not changed.
    """
    if why := run.unwritable():
        raise ConfigError(f"train.out = {cfg.out!r}: {why}")
    if not resume:
        cfg = replace(cfg)
        if snapshots is not None:
            cfg.snapshots = snapshots
        return cfg.absolute().validate(), None
    if not run.can_resume():
        raise FileNotFoundError(f"{run.path}: no checkpoint to resume from ({run.last_checkpoint})")
    if problem := keras_file_problem(run.last_checkpoint):
        raise ConfigError(f"{run.last_checkpoint}: {problem}; the run cannot be resumed")
    saved = TrainConfig.from_json(run.read_config())
    saved.out, saved.threads, saved.progress = cfg.out, cfg.threads, cfg.progress
    ran = replace(saved)
    if epochs:
        saved.epochs = epochs
    if cfg.data:  # --data given: it replaces the stored path
        given = os.path.abspath(os.path.expanduser(cfg.data))
        if given != saved.data:
            print(f"--data: training goes on with {given} instead of {saved.data}", flush=True)
        saved.data = cfg.data
    elif saved.data and not os.path.isabs(saved.data):  # stored as typed by older versions
        if not Path(saved.data).exists():
            raise ConfigError(
                f"train.data = {saved.data!r} (in {run.config_file}): no such file or folder "
                "here; the run stored it relative to the folder it was started in: run from "
                "there, or give --data with its path"
            )
        print(
            f"train.data = {saved.data!r} (stored relative to the folder the run was started "
            f"in): taken as {os.path.abspath(saved.data)}; give --data if that is not it",
            flush=True,
        )
    if snapshots is not None:
        saved.snapshots = snapshots
    elif cfg.snapshots:
        saved.snapshots = True
    if saved.snapshots != ran.snapshots:
        state = "kept" if saved.snapshots else "no longer kept"
        print(f"snapshots: each epoch's weights from now on are {state}", flush=True)
    elif saved.snapshots:
        print("snapshots: kept, as the run was started (--no-snapshots to stop)", flush=True)
    return saved.absolute().validate(resume=True), ran


def start_afresh(
    run: RunFolder, overwrite: bool = False, cfg: TrainConfig | None = None, stem: str = ""
) -> None:
    """Before a new run: refuse a folder that holds one (its checkpoints, snapshots and history
    would be overwritten or mixed in) or the model files this run will write (``stem``: a
    model saved there by hand, e.g. ``--out models``), or with ``overwrite`` delete that run's
    files first, unless one of them is an input of this run (``cfg``'s model to fine-tune,
    its teacher or soft labels)."""
    earlier = run.holds_run()
    if stem:
        earlier += [p for p in run.model_files(stem) if p.is_file() and p not in earlier]
    if not earlier:
        return
    inputs = [getattr(cfg, k, "") or "" for k in ("finetune", "teacher", "soft_labels")]
    inputs = [Path(v).resolve() for v in inputs if v and v != "ferplus"]
    if overwrite and (needed := [p for p in run.clearable() if p.resolve() in inputs]):
        raise ConfigError(
            f"--overwrite would delete {needed[0]}, which this run reads (--finetune, "
            "--teacher or --soft-labels): copy it out of the folder first, or give another --out"
        )
    names = [str(p.relative_to(run.path)) for p in earlier]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    if not overwrite:
        raise ConfigError(
            f"train.out = {str(run.path)!r}: holds a run already ({shown}); go on with it "
            "with --resume, give another --out, or add --overwrite to delete it first"
        )
    removed = run.clear()
    for path in run.model_files(stem) if stem else ():
        if path.is_file():  # (not the earlier run's: saved there otherwise; written over)
            path.unlink()
            removed.append(path)
    print(
        f"--overwrite: deleted the earlier run's {len(removed)} file(s) in {run.path}", flush=True
    )


def interrupted(run: RunFolder, cfg: TrainConfig) -> str:
    """What to say when training is stopped (Ctrl-C): the epochs done and how to go on."""
    try:
        done = run.epochs_done()
    except RunFolderError:
        done = 0
    if not done:
        return (
            f"deepfer train: interrupted before the first epoch ended; no checkpoint in "
            f"{run.path}: start the run again"
        )
    return (
        f"deepfer train: interrupted after epoch {done} of {cfg.epochs}; the run is in "
        f"{run.path}: go on with `deepfer train --resume --out {shlex.quote(cfg.out)}`"
    )
