"""A ``deepfer train`` run folder: the one owner of its layout and files.

::

    RUN/
      config.json            the training options (TrainConfig)
      summary.json           what training produced (model files, validation accuracy, ...)
      average.json           what ``deepfer average`` chose, if it ran
      history.csv, .json     per-epoch logs (Keras' CSVLogger appends to the CSV)
      training_curves.png, class_distribution.png
      teacher_scores.npz     views and the teacher's scores (``--teacher``; large, a cache)
      <model>.keras, .h5     the best model
      checkpoints/
        last.keras, best.keras, state.json ({"epoch": N, "snapshots": [this run's]})
        epoch-NNN.weights.h5 each epoch's weights (--snapshots)

A new run is refused where one is (:meth:`RunFolder.holds_run`; ``--overwrite``:
:meth:`RunFolder.clear`); ``deepfer average`` uses only the snapshots ``state.json`` lists.

Training writes it, ``deepfer average`` reads the snapshots and writes ``average.json``,
``deepfer convert`` reads what the model was trained on for its sidecar (with the record
``deepfer ensemble`` writes beside the model it makes: :mod:`deepfer.train.ensemble_record`,
the only other file of the training side it reads). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
from collections.abc import Callable
from pathlib import Path

from deepfer.edge.errors import DeepFERError
from deepfer.edge.paths import file_sha256
from deepfer.evaluate.outputs import folder_problem
from deepfer.train.ensemble_record import read_ensemble_record, read_json_object

SNAPSHOT = re.compile(r"epoch-(\d+)\.weights\.h5$")


class RunFolderError(DeepFERError, ValueError):
    """A run folder that cannot be used as asked (damaged, or a run where a new one would go)."""


class RunFolder:
    """Paths and files of one run folder (which need not exist yet)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # ------------------------------------------------------------------ paths

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def summary_file(self) -> Path:
        return self.path / "summary.json"

    @property
    def average_file(self) -> Path:
        return self.path / "average.json"

    @property
    def teacher_cache(self) -> Path:
        """``deepfer train --teacher``: the views and the teacher's scores (train/distill.py)."""
        return self.path / "teacher_scores.npz"

    @property
    def history_csv(self) -> Path:
        return self.path / "history.csv"

    @property
    def history_json(self) -> Path:
        return self.path / "history.json"

    @property
    def curves_plot(self) -> Path:
        return self.path / "training_curves.png"

    @property
    def classes_plot(self) -> Path:
        return self.path / "class_distribution.png"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.keras"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / "best.keras"

    @property
    def state_file(self) -> Path:
        return self.checkpoints / "state.json"

    @property
    def snapshot_pattern(self) -> str:
        """For Keras' ModelCheckpoint: ``checkpoints/epoch-{epoch:03d}.weights.h5``."""
        return str(self.checkpoints / "epoch-{epoch:03d}.weights.h5")

    def model_files(self, stem: str) -> tuple[Path, Path]:
        """``(RUN/<stem>.keras, RUN/<stem>.h5)``: where the best model is saved."""
        return self.path / f"{stem}.keras", self.path / f"{stem}.h5"

    # ------------------------------------------------------------------ state

    def is_run(self) -> bool:
        return self.config_file.is_file()

    def holds_run(self) -> list[Path]:
        """The files of an earlier run here that a new one would overwrite or mix with (its
        checkpoints, epoch counter, snapshots, history, summary); ``[]`` when there are none.
        A ``config.json`` and a history without rows (a run stopped before its first epoch
        ended) hold nothing."""
        files = (self.last_checkpoint, self.best_checkpoint, self.state_file, self.summary_file)
        found = [p for p in files if p.is_file()]
        with contextlib.suppress(OSError):
            if len(self.history_csv.read_text().splitlines()) > 1:
                found.append(self.history_csv)
        return found + list(self.snapshot_files().values())

    def unwritable(self) -> str | None:
        """Why this run folder cannot be made or written in, or None (checked before a run)."""
        if why := folder_problem(self.path):
            return why
        if self.checkpoints.exists() and not self.checkpoints.is_dir():
            return f"{self.checkpoints} is a file, not a folder"
        return None

    def clear(self) -> list[Path]:
        """Delete :meth:`clearable` (``deepfer train --overwrite``); returns what was deleted."""
        removed = []
        for path in self.clearable():
            path.unlink()
            removed.append(path)
        return removed

    def clearable(self) -> list[Path]:
        """An earlier run's files here: everything this layout names, the model files its
        ``summary.json`` and ``average.json`` name in this folder, and the snapshots. Other
        files are left, and so is the teacher cache (it is checked against the teacher, views
        and data before use)."""
        here = self.path.resolve()
        named = [self.config_file, self.summary_file, self.average_file, self.history_csv,
                 self.history_json, self.curves_plot, self.classes_plot, self.last_checkpoint,
                 self.best_checkpoint, self.state_file]  # fmt: skip
        summary, average = self.read_summary(), self.read_average()
        for key in ("keras", "h5"):  # always written in the run folder
            if isinstance(summary.get(key), str) and summary[key]:
                named.append(self.path / Path(summary[key]).name)
        for key in ("keras", "keras_without_flip"):  # wherever --out put them: only if here
            value = average.get(key)
            if isinstance(value, str) and value and Path(value).resolve().parent == here:
                named.append(self.path / Path(value).name)
        named += list(self.snapshot_files().values())
        return [path for path in dict.fromkeys(named) if path.is_file()]

    def can_resume(self) -> bool:
        return self.last_checkpoint.is_file() and self.config_file.is_file()

    def create(self) -> None:
        self.checkpoints.mkdir(parents=True, exist_ok=True)

    def read_config(self) -> dict:
        return json.loads(self.config_file.read_text())

    def write_config(self, config: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(json.dumps(config, indent=2))

    def read_summary(self) -> dict:
        """``summary.json``, or ``{}`` when missing or unreadable."""
        return read_json_object(self.summary_file)

    def write_summary(self, summary: dict) -> None:
        self.summary_file.write_text(json.dumps(summary, indent=2))

    def read_average(self) -> dict:
        """``average.json``, or ``{}`` when missing or unreadable."""
        return read_json_object(self.average_file)

    def write_average(self, result: dict) -> None:
        self.average_file.write_text(json.dumps(result, indent=2))

    def epochs_done(self) -> int:
        """Epochs the last checkpoint holds (``checkpoints/state.json``; 0 without it)."""
        return int(self._state().get("epoch", 0))

    def write_epochs_done(self, epochs: int, snapshot: bool = False) -> None:
        """Record that ``epochs`` epochs are done and, with ``snapshot``, that the last one's
        weights were kept (``state.json``'s ``snapshots``; later ones dropped: re-run)."""
        state = self._state()
        if "snapshots" in state:
            kept = [int(e) for e in state["snapshots"]]
        else:  # a state.json from before the list was kept: the files up to its epoch
            kept = [e for e in self.snapshot_files() if e <= int(state.get("epoch", 0))]
        kept = [e for e in kept if e < epochs] + ([int(epochs)] if snapshot else [])
        self.state_file.write_text(json.dumps({"epoch": int(epochs), "snapshots": kept}))

    def snapshot_files(self) -> dict[int, Path]:
        """Every ``checkpoints/epoch-NNN.weights.h5`` on disk: epoch (1-based) -> file."""
        found = {}
        for path in self.checkpoints.glob("epoch-*.weights.h5"):
            m = SNAPSHOT.search(path.name)
            if m:
                found[int(m.group(1))] = path
        return dict(sorted(found.items()))

    def snapshots(self) -> dict[int, Path]:
        """This run's snapshots, epoch (1-based) -> file: those ``state.json`` lists (an older
        one without the list: the files up to its epoch; no ``state.json``: every file)."""
        files = self.snapshot_files()
        state = self._state()
        if "snapshots" in state:
            keep = {int(e) for e in state["snapshots"]}
        elif state:
            keep = {e for e in files if e <= int(state.get("epoch", 0))}
        else:
            return files
        return {e: p for e, p in files.items() if e in keep}

    def _state(self) -> dict:
        """``checkpoints/state.json``; ``{}`` without it. A damaged one is an error: guessing
        the epoch would drop or repeat history rows."""
        if not self.state_file.is_file():
            return {}
        try:
            state = json.loads(self.state_file.read_text())
            int(state["epoch"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunFolderError(
                f"{self.state_file}: not a readable epoch counter ({type(exc).__name__}: {exc})"
            ) from None
        return state

    # ------------------------------------------------------------------ history

    def read_history(self) -> dict[str, list[float]]:
        """``history.csv`` as ``{column: [value per epoch]}`` (no ``epoch`` column)."""
        history: dict[str, list[float]] = {}
        if not self.history_csv.is_file():
            return history
        with self.history_csv.open() as fh:
            for row in csv.DictReader(fh):
                for key, value in row.items():
                    if key in ("epoch", None) or value in ("", None):  # None: surplus fields
                        continue
                    history.setdefault(key, []).append(float(value))
        return history

    def write_history_json(self, history: dict) -> None:
        self.history_json.write_text(json.dumps(history, indent=1))

    def mend_history(
        self, epochs_done: int, learning_rate: Callable[[int], float] | None = None
    ) -> None:
        """Make ``history.csv`` ready for Keras' CSVLogger to append to on resume.

        CSVLogger appends rows in its own column order (the logged keys, sorted) and
        never rewrites the header, so a history written without ``learning_rate``
        (older DeepFER versions) would get shifted columns. Rewrite it with the
        column, filled from ``learning_rate(epoch)`` (the schedule those epochs ran
        under) where given, and drop rows past the checkpoint (an epoch logged after the
        last checkpoint was written).
        """
        path = self.history_csv
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
            if not row.get("learning_rate") and learning_rate is not None:
                row["learning_rate"] = repr(learning_rate(int(row["epoch"])))
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, ["epoch", *keys], restval="", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(keep)

    # ------------------------------------------------------------------ for convert

    @classmethod
    def containing(cls, model_path: str | Path) -> RunFolder | None:
        """The run folder a model file was saved in (its folder or the one above), if any."""
        model_path = Path(model_path)
        for folder in (model_path.parent, model_path.parent.parent):
            run = cls(folder)
            config = read_json_object(run.config_file)
            if config.get("data"):
                return run
        return None

    def best_model(self) -> Path | None:
        """The model training saved (``summary.json``), else the only ``.keras`` in the folder."""
        keras_file = self.read_summary().get("keras")
        if isinstance(keras_file, str) and keras_file:
            return Path(keras_file)
        found = sorted(self.path.glob("*.keras"))
        return found[0] if len(found) == 1 else None

    def training_info(self, model_path: str | Path) -> tuple[str, dict]:
        """What this run says ``model_path`` was trained on: a sentence and the details the
        converter writes under ``training`` in a sidecar (with ``deepfer average``'s choice
        when ``model_path`` is the model it saved)."""
        config = read_json_object(self.config_file)
        summary = self.read_summary()
        data, own = str(config["data"]), summary.get("data_layout") == "class folders"
        text = f"{'the class folders of' if own else 'FER2013 training split from'} "
        text += f"{Path(data).name} ({data})"
        if config.get("max_per_class"):
            text += f", capped at {config['max_per_class']} faces per class"
        if summary.get("train_faces"):
            text += (
                f": {summary['train_faces']:,} training faces, "
                f"{summary.get('val_faces', 0):,} held out for validation"
            )
        if none := [c for c, n in (summary.get("train_classes") or {}).items() if not n]:
            text += f"; no faces of {', '.join(none)}"
        training = {
            "run_folder": str(self.path),
            "model": config.get("model"),
            "epochs": summary.get("epochs_run", config.get("epochs")),
            "best_epoch": summary.get("best_epoch"),
            "val_accuracy": summary.get("val_accuracy"),
            "seed": config.get("seed"),
            "train_faces_per_class": summary.get("train_classes"),
        }
        if config.get("finetune"):
            training["finetuned_from"] = str(config["finetune"])
            text = f"{Path(config['finetune']).name} fine-tuned on {text}"
        if config.get("teacher"):
            training["distilled_from"] = _teacher_info(config)
            text += f"; distilled from {Path(config['teacher']).name}"
        if config.get("soft_labels"):
            from deepfer.train.config import TrainConfig

            votes = TrainConfig.from_json(config).soft_labels_file()
            training["soft_labels"] = {"votes": str(votes), "weight": config.get("soft_weight")}
            text += f"; FER+ votes as a soft prior (weight {config.get('soft_weight')})"
        training.update(self._averaging_info(Path(model_path)))
        if "averaged_epochs" in training:  # not one epoch's weights
            training.pop("best_epoch", None)
        return text, {k: v for k, v in training.items() if v is not None}

    def _averaging_info(self, model_path: Path) -> dict:
        """What ``deepfer average`` recorded, if ``model_path`` is the model it saved."""
        info = self.read_average()
        try:
            if Path(info["keras"]).resolve() != model_path.resolve():
                return {}
            chosen = info["chosen"]
        except (KeyError, TypeError):
            return {}
        out = {"flip_average": bool(info.get("flip_average"))}
        if chosen.get("epochs"):
            out["averaged_epochs"] = chosen["epochs"]
            out["batchnorm_recomputed_on"] = info.get("batchnorm_faces")
        out["val_accuracy"] = chosen.get("flip" if out["flip_average"] else "single")
        out["selected_on"] = info.get("selected_on")
        return {k: v for k, v in out.items() if v is not None}


def _teacher_info(config: dict) -> dict:
    """A distilled run's teacher (``deepfer train --teacher``): its file, the views and the
    weight, and the teacher's own validation figure and members if it is an ensemble."""
    teacher = Path(config["teacher"])
    info = {
        "teacher": str(teacher),
        "teacher_views": config.get("teacher_views"),
        "teacher_weight": config.get("teacher_weight"),
        "teacher_target": config.get("teacher_target"),
    }
    if teacher.is_file():
        info["sha256"] = file_sha256(teacher)
    record = read_ensemble_record(teacher)
    if record:
        info["val_accuracy"] = record.get("val_accuracy")
        info["members"] = [
            {k: m[k] for k in ("path", "weight", "val_accuracy") if k in m}
            for m in record.get("members", [])
        ]
    return {k: v for k, v in info.items() if v is not None}
