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


def test_mend_history_adds_the_learning_rate_and_drops_rows_past_the_checkpoint(run):
    run.history_csv.write_text("epoch,accuracy,loss\n0,0.1,2.0\n1,0.2,1.5\n2,0.3,1.2\n")
    run.mend_history(2, lambda epoch: 0.5 / (epoch + 1))
    lines = run.history_csv.read_text().splitlines()
    assert lines == ["epoch,accuracy,learning_rate,loss", "0,0.1,0.5,2.0", "1,0.2,0.25,1.5"]
    history = run.read_history()
    assert history == {"accuracy": [0.1, 0.2], "learning_rate": [0.5, 0.25], "loss": [2.0, 1.5]}
    run.write_history_json(history)
    assert json.loads(run.history_json.read_text()) == history
