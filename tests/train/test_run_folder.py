"""The run folder's one owner: paths, the JSON files, snapshots, history, and what convert
reads from it (no TensorFlow: the files are written by hand here)."""

from __future__ import annotations

import json

import pytest

from deepfer.train.run_folder import RunFolder


@pytest.fixture
def run(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.create()
    folder.write_config({"data": "/data/fer2013", "model": "deepfer-vgg", "seed": 3, "epochs": 9})
    folder.write_summary(
        {"keras": str(folder.path / "deepfer-vgg.keras"), "train_faces": 100, "val_faces": 10,
         "epochs_run": 9, "best_epoch": 7, "val_accuracy": 0.5}
    )  # fmt: skip
    for epoch in (1, 2, 10):
        (folder.checkpoints / f"epoch-{epoch:03d}.weights.h5").write_bytes(b"")
    (folder.checkpoints / "epoch-x.weights.h5").write_bytes(b"")  # not a snapshot
    return folder


def test_paths_and_files(run):
    assert run.is_run() and not run.can_resume()
    assert run.last_checkpoint == run.path / "checkpoints" / "last.keras"
    assert run.model_files("m") == (run.path / "m.keras", run.path / "m.h5")
    assert list(run.snapshots()) == [1, 2, 10]
    assert run.epochs_done() == 0
    run.write_epochs_done(4)
    assert run.epochs_done() == 4
    assert run.read_config()["seed"] == 3
    assert run.read_average() == {}
    assert run.snapshot_pattern.format(epoch=5).endswith("checkpoints/epoch-005.weights.h5")


def test_containing_and_training_info(run):
    model = run.path / "deepfer-vgg.keras"
    model.write_bytes(b"")
    assert RunFolder.containing(model).path == run.path
    assert RunFolder.containing(run.path / "sub" / "x.keras").path == run.path
    assert RunFolder.containing(run.path.parent / "elsewhere" / "x.keras") is None
    assert run.best_model() == model

    text, training = run.training_info(model)
    assert text == (
        "FER2013 training split from fer2013 (/data/fer2013): 100 training faces, "
        "10 held out for validation"
    )
    assert training == {
        "run_folder": str(run.path), "model": "deepfer-vgg", "epochs": 9, "best_epoch": 7,
        "val_accuracy": 0.5, "seed": 3,
    }  # fmt: skip

    averaged = run.path / "deepfer-vgg-swa2.keras"
    run.write_average(
        {"keras": str(averaged), "flip_average": True, "batchnorm_faces": 100,
         "selected_on": "validation slice", "chosen": {"epochs": [9, 10], "single": 0.6, "flip": 0.7}}
    )  # fmt: skip
    _, training = run.training_info(averaged)
    assert training["averaged_epochs"] == [9, 10] and "best_epoch" not in training
    assert training["val_accuracy"] == 0.7 and training["batchnorm_recomputed_on"] == 100
    _, training = run.training_info(model)  # average.json is about another file
    assert training["best_epoch"] == 7 and "averaged_epochs" not in training


def test_training_info_of_a_finetune_on_a_users_own_folder(run):
    """A model fine-tuned on a user's class folders was described in its sidecar as trained
    on the "FER2013 training split" of that folder, without the model it started from or
    the classes the folder had no faces of."""
    run.write_config({"data": "/home/me/my_faces", "model": "deepfer-vgg",
                      "finetune": "/m/deepfer-vgg.keras"})  # fmt: skip
    per_class = {"angry": 54, "disgust": 0, "fear": 0, "happy": 54, "neutral": 54, "sad": 54,
                 "surprise": 54}  # fmt: skip
    run.write_summary({"data_layout": "class folders", "train_faces": 270, "val_faces": 30,
                       "train_classes": per_class})  # fmt: skip
    text, training = run.training_info(run.path / "deepfer-vgg-finetuned.keras")
    assert text == (
        "deepfer-vgg.keras fine-tuned on the class folders of my_faces (/home/me/my_faces): "
        "270 training faces, 30 held out for validation; no faces of disgust, fear"
    )
    assert training["finetuned_from"] == "/m/deepfer-vgg.keras"
    assert training["train_faces_per_class"] == per_class


def test_mend_history_adds_the_learning_rate_and_drops_rows_past_the_checkpoint(run):
    run.history_csv.write_text("epoch,accuracy,loss\n0,0.1,2.0\n1,0.2,1.5\n2,0.3,1.2\n")
    run.mend_history(2, lambda epoch: 0.5 / (epoch + 1))
    lines = run.history_csv.read_text().splitlines()
    assert lines == ["epoch,accuracy,learning_rate,loss", "0,0.1,0.5,2.0", "1,0.2,0.25,1.5"]
    history = run.read_history()
    assert history == {"accuracy": [0.1, 0.2], "learning_rate": [0.5, 0.25], "loss": [2.0, 1.5]}
    run.write_history_json(history)
    assert json.loads(run.history_json.read_text()) == history


def test_holds_run_names_an_earlier_runs_files_and_clear_deletes_them(tmp_path):
    from deepfer.train.run_folder import RunFolder

    fresh = RunFolder(tmp_path / "fresh")
    assert fresh.holds_run() == [] and fresh.clear() == []
    fresh.write_config({"data": "/d"})  # a run stopped before its first epoch ended
    fresh.create()
    fresh.history_csv.write_text("epoch,accuracy\n")  # Keras' CSVLogger: the header only
    assert fresh.holds_run() == []

    run = RunFolder(tmp_path / "run")
    run.create()
    run.write_config({"data": "/d"})
    run.write_epochs_done(2, snapshot=True)
    run.history_csv.write_text("epoch,accuracy\n0,0.1\n")
    for name in ("m.keras", "m.h5", "m-swa2.keras", "notes.txt", "teacher_scores.npz"):
        (run.path / name).write_bytes(b"x")
    run.last_checkpoint.write_bytes(b"x")
    (run.checkpoints / "epoch-002.weights.h5").write_bytes(b"x")
    run.write_summary({"keras": "elsewhere/run/m.keras", "h5": str(run.path / "m.h5")})
    run.write_average({"keras": str(run.path / "m-swa2.keras")})
    held = {str(p.relative_to(run.path)) for p in run.holds_run()}
    assert held == {"checkpoints/last.keras", "checkpoints/state.json", "summary.json",
                    "history.csv", "checkpoints/epoch-002.weights.h5"}  # fmt: skip
    removed = run.clear()
    assert {p.name for p in removed} >= {"m.keras", "m.h5", "m-swa2.keras", "config.json",
                                         "average.json", "epoch-002.weights.h5"}  # fmt: skip
    assert run.holds_run() == [] and not run.is_run()
    left = {p.name for p in run.path.iterdir()}
    assert left == {"checkpoints", "notes.txt", "teacher_scores.npz"}  # not the run's own files


def test_snapshots_are_the_ones_this_run_recorded(run):
    """state.json lists the epochs whose weights this run kept: ``deepfer average`` never
    averages a stray file (an earlier run's, or one past the last checkpoint)."""
    for epoch in (3, 4):
        (run.checkpoints / f"epoch-{epoch:03d}.weights.h5").write_bytes(b"")
    assert list(run.snapshot_files()) == [1, 2, 3, 4, 10]
    run.state_file.write_text(json.dumps({"epoch": 3}))  # written before the list was kept
    assert list(run.snapshots()) == [1, 2, 3]
    run.write_epochs_done(4, snapshot=False)  # resumed without snapshots: the earlier carried
    assert json.loads(run.state_file.read_text()) == {"epoch": 4, "snapshots": [1, 2, 3]}
    assert list(run.snapshots()) == [1, 2, 3]
    run.write_epochs_done(2, snapshot=True)  # resumed from epoch 1's checkpoint: 2 re-run
    assert list(run.snapshots()) == [1, 2] and run.epochs_done() == 2
    run.write_epochs_done(3, snapshot=True)
    run.write_epochs_done(4, snapshot=True)
    assert list(run.snapshots()) == [1, 2, 3, 4]  # never 10


def test_a_damaged_epoch_counter_is_an_error_not_epoch_0(run):
    from deepfer.train.run_folder import RunFolderError

    run.state_file.write_text("{")
    with pytest.raises(RunFolderError, match="state.json: not a readable epoch counter"):
        run.epochs_done()


def test_unwritable_says_why_the_run_folder_cannot_be_written(tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("hello")
    assert RunFolder(notes).unwritable() == "is a file, not a folder"
    assert (
        RunFolder(notes / "run").unwritable() == f"cannot be made: {notes} is a file, not a folder"
    )
    assert RunFolder(tmp_path / "new" / "run").unwritable() is None
