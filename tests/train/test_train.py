"""`deepfer train` through the CLI on a tiny set: run folder, resume, fine-tuning, bad options."""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import replace

import pytest
from synthetic import TINY_TRAIN as TINY  # the shared tiny runs' options

from deepfer.cli import main
from deepfer.train.training import ConfigError, TrainConfig, learning_rate


def history_rows(run) -> list[dict]:
    with (run / "history.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_learning_rate_schedule():
    cfg = TrainConfig(lr=1e-3, epochs=11, warmup_epochs=1, schedule="cosine")
    lrs = [learning_rate(cfg, e) for e in range(11)]
    assert lrs[0] == pytest.approx(5e-4)  # warm-up
    assert lrs[1] == pytest.approx(1e-3)  # peak
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:]))  # cosine decay
    assert lrs[-1] == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.9))))
    assert learning_rate(cfg, 50) == pytest.approx(1e-5)  # floor: 1% of the peak
    constant = replace(cfg, schedule="constant", warmup_epochs=0)
    assert {learning_rate(constant, e) for e in range(5)} == {1e-3}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "resnet"}, "train.model = 'resnet': choose one of"),
        ({"epochs": 0}, "train.epochs = 0: must be at least 1"),
        ({"val_split": 1.5}, "train.val_split = 1.5: must be between 0 and 1"),
        ({"optimizer": "rmsprop"}, "train.optimizer = 'rmsprop'"),
        ({"weights": "imagenet"}, "apply to --model mobilenetv3small only"),
        ({"finetune": "model.tflite"}, "expected a .keras or .h5 model"),
        ({"data": "/no/such/folder"}, "train.data = '/no/such/folder': no such file or folder"),
        ({"precision": "fp16"}, "train.precision = 'fp16': choose fp32 or bf16"),
    ],
)
def test_config_errors_name_the_option(tmp_path, change, message):
    cfg = replace(TrainConfig(data=str(tmp_path), model="deepfer-edge"), **change)
    with pytest.raises(ConfigError, match=re.escape(message)):
        cfg.validate()


def test_cli_reports_bad_options_without_a_traceback(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert "train.data" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "r")]) == 2
    assert "--data is required" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "r")]) == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory, tiny_fer):
    """One epoch of deepfer-edge on the tiny set, through `deepfer train`."""
    run = tmp_path_factory.mktemp("run") / "edge"
    argv = ["train", "--data", str(tiny_fer), "--out", str(run), "--epochs", "1", *TINY]
    assert main([*argv, "--class-weight", "--seed", "7"]) == 0
    return run


@pytest.mark.slow
def test_train_writes_the_run_folder(one_epoch_run, tiny_fer, capsys):
    run = one_epoch_run
    for name in (
        "deepfer-edge.keras",
        "deepfer-edge.h5",
        "history.csv",
        "history.json",
        "training_curves.png",
        "class_distribution.png",
        "config.json",
        "summary.json",
        "checkpoints/best.keras",
        "checkpoints/last.keras",
    ):
        assert (run / name).is_file(), name
    for png in ("training_curves.png", "class_distribution.png"):
        assert (run / png).read_bytes()[:4] == b"\x89PNG"
    rows = history_rows(run)
    assert len(rows) == 1 and {"accuracy", "val_accuracy", "loss", "learning_rate"} <= set(rows[0])
    history = json.loads((run / "history.json").read_text())
    assert len(history["val_accuracy"]) == 1
    summary = json.loads((run / "summary.json").read_text())
    # the tiny set has 24 faces a class: 10% of each (2) held out for validation, stratified
    assert summary["train_faces"] == 7 * 22 and summary["val_faces"] == 7 * 2
    assert summary["epochs_run"] == 1 and summary["parameters"] > 0
    assert summary["data_layout"] == "splits" and summary["train_classes"]["fear"] == 22
    config = json.loads((run / "config.json").read_text())
    assert config["class_weight"] is True and config["seed"] == 7

    import keras

    for name in ("deepfer-edge.keras", "deepfer-edge.h5"):
        model = keras.models.load_model(run / name, compile=False)
        assert model.input_shape == (None, 48, 48, 1) and model.output_shape == (None, 7)


@pytest.mark.slow
def test_resume_goes_on_from_the_last_checkpoint(one_epoch_run, tmp_path, capsys):
    """One epoch more from the last checkpoint, from a history of an older run, which logged no
    learning rate (Keras appends rows in its own column order: the file is mended first).
    (A history with the column is resumed in the bf16 and distillation tests.)"""
    import shutil

    run = tmp_path / "resumed"
    shutil.copytree(one_epoch_run, run)
    old = [{k: v for k, v in r.items() if k != "learning_rate"} for r in history_rows(run)]
    with (run / "history.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, list(old[0]))
        writer.writeheader()
        writer.writerows(old)
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert "resuming from" in capsys.readouterr().out
    rows = history_rows(run)
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert all(0.0 <= float(r["val_accuracy"]) <= 1.0 for r in rows)  # no shifted columns
    cfg = TrainConfig.from_json(json.loads((run / "config.json").read_text()))
    assert float(rows[0]["learning_rate"]) == pytest.approx(learning_rate(cfg, 0))
    assert float(rows[1]["learning_rate"]) == pytest.approx(learning_rate(cfg, 1))
    history = json.loads((run / "history.json").read_text())
    assert len(history["learning_rate"]) == len(history["loss"]) == 2
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert state == {"epoch": 2, "snapshots": []}  # no --snapshots: none kept
    assert json.loads((run / "config.json").read_text())["epochs"] == 2
    assert json.loads((run / "summary.json").read_text())["epochs_run"] == 2


@pytest.mark.slow
def test_finetune_on_a_labelled_folder(one_epoch_run, tiny_fer, tmp_path, capsys):
    """`deepfer train --finetune X.keras --data FOLDER`, FOLDER holding <class>/ images."""
    run = tmp_path / "ft"
    base = one_epoch_run / "deepfer-edge.keras"
    argv = ["train", "--finetune", str(base), "--data", str(tiny_fer / "test"), "--out", str(run)]
    capsys.readouterr()
    assert main([*argv, "--epochs", "1", "--lr", "1e-4", *TINY]) == 0
    # the next steps: the model wrapped to score the face and its mirror, as the shipped models
    # are (it was not: 'deepfer average' needed snapshots), then evaluated on other faces than
    # those just trained on (as it was suggested)
    said = capsys.readouterr().out
    flipavg = run / "deepfer-edge-finetuned-best-flipavg.keras"
    assert f"next: deepfer average {run} --flip-average  (one model that scores each face" in said
    assert (
        f"      deepfer evaluate {flipavg} --data HELD_OUT_FACES/ "
        f" (class folders of faces not in {tiny_fer / 'test'})" in said
    )
    assert main(["average", str(run), "--flip-average"]) == 0  # no --snapshots: best alone
    said = capsys.readouterr().out
    assert "best checkpoint: validation " in said and f"chosen: best checkpoint -> {flipavg}" in (
        said
    )
    import keras
    import numpy as np

    model = keras.models.load_model(flipavg, compile=False)
    faces = np.random.default_rng(1).uniform(0, 255, (3, 48, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(
        model.predict(faces, verbose=0), model.predict(faces[:, :, ::-1], verbose=0), atol=1e-5
    )
    assert (run / "deepfer-edge-finetuned-best.keras").is_file()  # the plain one beside it
    assert (run / "deepfer-edge-finetuned.keras").is_file()
    assert (run / "deepfer-edge-finetuned.h5").is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["train_faces"] + summary["val_faces"] == 42
    assert summary["data_layout"] == "class folders"
    # what convert writes in the sidecar: the user's folder and the model it started from,
    # not "FER2013 training split"
    from deepfer.train.run_folder import RunFolder

    text, training = RunFolder(run).training_info(run / "deepfer-edge-finetuned.keras")
    assert text.startswith(
        f"deepfer-edge.keras fine-tuned on the class folders of test ({tiny_fer / 'test'})"
    )
    assert training["finetuned_from"] == str(base)
    assert sum(training["train_faces_per_class"].values()) == summary["train_faces"]


def test_split_seed_keeps_the_validation_slice_when_the_seed_changes(tiny_fer):
    from deepfer.train.training import prepare_data

    def val_faces(**kw):
        data = prepare_data(TrainConfig(data=str(tiny_fer), progress=False, **kw))
        return {bytes(x) for x in data["val"].x}, {bytes(x) for x in data["train"].x}

    val_a, train_a = val_faces(seed=1337)
    val_b, train_b = val_faces(seed=7, split_seed=1337)
    val_c, _ = val_faces(seed=7)
    assert val_a == val_b and train_a == train_b
    assert not val_b & train_b  # the slice is never trained on
    assert val_c != val_a  # without --split-seed the slice follows --seed (older runs resume alike)
    assert TrainConfig.from_json({"seed": 5}).data_seed == 5


def _policies(model) -> set[str]:
    from deepfer.evaluate.keras_model import all_layers

    return {
        layer.dtype_policy.name
        for layer in all_layers(model)
        if layer.__class__.__name__ != "InputLayer"
    }


@pytest.mark.slow
def test_bf16_trains_in_mixed_precision_and_saves_float32_models(tmp_path, tiny_fer, capsys):
    """--precision bf16: layers compute in bfloat16 (outputs in float32) during training and
    in the checkpoint it resumes from; the best model, its average and what convert reads are
    float32 (no bfloat16 casts in a TFLite graph); the process's policy is float32 after."""
    import keras
    import numpy as np

    from deepfer.convert.quantize import convert_model

    run = tmp_path / "bf16"
    argv = ["train", "--data", str(tiny_fer), "--out", str(run), "--epochs", "1", *TINY]
    assert main([*argv, "--precision", "bf16", "--snapshots"]) == 0
    assert "--precision bf16: mixed_bfloat16" in capsys.readouterr().out
    assert keras.mixed_precision.global_policy().name == "float32"
    assert json.loads((run / "config.json").read_text())["precision"] == "bf16"

    last = keras.models.load_model(run / "checkpoints" / "last.keras", compile=False)
    assert _policies(last) == {"mixed_bfloat16", "float32"}
    assert last.get_layer("emotion").dtype_policy.name == "float32"
    best = keras.models.load_model(run / "deepfer-edge.keras", compile=False)
    assert _policies(best) == {"float32"}
    faces = np.random.default_rng(0).uniform(0, 255, (3, 48, 48, 1)).astype("float32")
    assert np.allclose(best.predict(faces, verbose=0).sum(1), 1.0, atol=1e-4)

    resume = ["train", "--resume", "--out", str(run), "--epochs", "2", "--no-progress"]
    assert main([*resume, "--snapshots"]) == 0
    assert _policies(keras.models.load_model(run / "checkpoints" / "last.keras")) == {
        "mixed_bfloat16", "float32"
    }  # fmt: skip
    assert main(["average", str(run), "--last", "2", "--out", str(run / "avg.keras")]) == 0
    averaged = keras.models.load_model(run / "avg.keras", compile=False)
    assert _policies(averaged) == {"float32"}

    # a bfloat16 checkpoint given to convert directly is converted as float32 too
    result = convert_model(run / "checkpoints" / "last.keras", tiny_fer, tmp_path / "m",
                           n_calibration=70, formats=("int8",), check=False)  # fmt: skip
    assert result.path("int8").is_file()


def _fake_run(folder, data, epochs_done: int = 1, **config):
    """A run folder as `deepfer train` leaves it, without training: config, epoch counter and
    a last checkpoint that looks like a .keras archive (not loaded by these tests)."""
    import zipfile

    from deepfer.train.run_folder import RunFolder

    run = RunFolder(folder)
    run.create()
    run.write_config(TrainConfig(data=str(data), out=str(folder), **config).to_json())
    run.write_epochs_done(epochs_done)
    with zipfile.ZipFile(run.last_checkpoint, "w") as archive:
        archive.writestr("config.json", "{}")
    return run


def test_a_new_run_is_refused_in_a_folder_holding_one(tmp_path, tiny_fer, capsys):
    run = _fake_run(tmp_path / "run", tiny_fer)
    (run.checkpoints / "epoch-001.weights.h5").write_bytes(b"old")
    argv = ["train", "--data", str(tiny_fer), "--out", str(run.path), "--epochs", "1", *TINY]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "holds a run already (checkpoints/last.keras, checkpoints/state.json" in err
    assert "--resume" in err and "--overwrite" in err and err.count("\n") == 1
    assert "train:" not in out  # refused before the data loads
    assert (run.checkpoints / "epoch-001.weights.h5").is_file()  # nothing touched

    assert main([*argv, "--resume", "--overwrite"]) == 2
    assert "--overwrite cannot go with --resume" in capsys.readouterr().err


def test_overwrite_deletes_the_earlier_run_before_training(tmp_path, tiny_fer, monkeypatch, capsys):
    from deepfer.train import training

    run = _fake_run(tmp_path / "run", tiny_fer)
    (run.checkpoints / "epoch-007.weights.h5").write_bytes(b"old")
    seen = {}

    def fake_training(cfg, folder, ran, resume):
        seen["cfg"], seen["files"] = cfg, sorted(p.name for p in folder.path.rglob("*"))
        return {}

    monkeypatch.setattr(training, "_setup_and_train", fake_training)
    monkeypatch.chdir(tiny_fer.parent)
    argv = ["train", "--data", tiny_fer.name, "--out", str(run.path), *TINY]
    assert main([*argv, "--overwrite"]) == 0
    assert "--overwrite: deleted the earlier run's 4 file(s)" in capsys.readouterr().out
    assert seen["files"] == ["checkpoints"]  # no old snapshot left for `deepfer average`
    assert seen["cfg"].data == str(tiny_fer)  # stored absolute: the run works from anywhere


def test_overwrite_never_deletes_what_the_new_run_reads(tmp_path, tiny_fer, monkeypatch, capsys):
    """--finetune (or --teacher) the earlier run's own model with --overwrite: refused before
    anything is deleted (it deleted the model, then failed to load it); a folder that holds
    only a model file this run would write (``--out models``) is a run too."""
    import zipfile

    from deepfer.train import training

    monkeypatch.setattr(training, "_setup_and_train", lambda *a: {})
    run = _fake_run(tmp_path / "run", tiny_fer)
    model = run.path / "deepfer-edge.keras"
    with zipfile.ZipFile(model, "w") as archive:
        archive.writestr("config.json", "{}")
    run.write_summary({"keras": str(model)})
    argv = ["train", "--data", str(tiny_fer), "--out", str(run.path), *TINY, "--overwrite"]
    assert main([*argv, "--finetune", str(model)]) == 2
    assert f"--overwrite would delete {model}, which this run reads" in capsys.readouterr().err
    assert model.is_file() and run.last_checkpoint.is_file()  # nothing deleted

    shipped = tmp_path / "models"
    shipped.mkdir()
    (shipped / "deepfer-edge.keras").write_bytes(b"a model saved by hand")
    argv = ["train", "--data", str(tiny_fer), "--out", str(shipped), *TINY]
    assert main(argv) == 2
    assert "holds a run already (deepfer-edge.keras)" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    assert not (shipped / "deepfer-edge.keras").exists()


def test_out_that_is_a_file_is_refused_before_anything(tmp_path, tiny_fer, capsys):
    notes = tmp_path / "notes.md"
    notes.write_text("hello")
    for out, why in ((notes, "is a file, not a folder"), (notes / "r", "cannot be made")):
        assert main(["train", "--data", str(tiny_fer), "--out", str(out), *TINY]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"deepfer train: error: train.out = '{out}': {why}")


def test_resume_keeps_snapshots_and_takes_data_as_given(tmp_path, tiny_fer, monkeypatch, capsys):
    from deepfer.train.run_folder import RunFolder
    from deepfer.train.run_start import resolve_config

    run = _fake_run(tmp_path / "run", tiny_fer, snapshots=True, epochs=4)
    cfg, ran = resolve_config(TrainConfig(out=str(run.path)), run, True, None)
    assert cfg.snapshots and ran.snapshots and cfg.data == str(tiny_fer)
    assert "snapshots: kept, as the run was started" in capsys.readouterr().out
    cfg, _ = resolve_config(TrainConfig(out=str(run.path)), run, True, None, snapshots=False)
    assert not cfg.snapshots
    assert "no longer kept" in capsys.readouterr().out

    moved = tmp_path / "moved"
    moved.symlink_to(tiny_fer)
    monkeypatch.chdir(tmp_path)
    cfg, _ = resolve_config(TrainConfig(data="moved", out="run"), run, True, None)
    assert cfg.data == str(moved) and cfg.out == str(run.path)
    assert f"--data: training goes on with {moved} instead of {tiny_fer}" in capsys.readouterr().out

    # a run folder from an older version stored --data as typed
    old = RunFolder(tmp_path / "old")
    _fake_run(old.path, "fer")
    monkeypatch.chdir(tmp_path / "run")
    with pytest.raises(ConfigError, match=r"train.data = 'fer' \(in .*config.json\): no such"):
        resolve_config(TrainConfig(out=str(old.path)), old, True, None)


def test_ctrl_c_says_how_far_training_got_and_how_to_go_on(tmp_path, tiny_fer, monkeypatch, capsys):
    from deepfer.train import training

    def stopped(cfg, run, ran, resume):
        run.create()
        run.write_epochs_done(2)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "_setup_and_train", stopped)
    run = tmp_path / "my run"
    argv = ["train", "--data", str(tiny_fer), "--out", str(run), "--epochs", "6", *TINY]
    assert main(argv) == 130
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"deepfer train: interrupted after epoch 2 of 6; the run is in {run}: go on with "
        f"`deepfer train --resume --out '{run}'`"
    ]


def test_finetune_refuses_a_file_that_is_not_a_keras_model(tmp_path, tiny_fer, capsys):
    junk = tmp_path / "junk.keras"
    junk.write_text("not a model")
    argv = ["train", "--finetune", str(junk), "--data", str(tiny_fer), "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err == (
        f"deepfer train: error: train.finetune = '{junk}': not a Keras model file (a .keras "
        "file is a zip archive; this is not, 11 bytes)\n"
    )
    assert "train:" not in out  # before the data loads


def test_corrupt_or_empty_keras_files_are_named_not_file_not_found(tmp_path):
    import zipfile

    from deepfer.train.models import ModelFileError, load_keras_model

    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    with pytest.raises(
        ModelFileError, match=r"empty.keras: not a Keras model file \(the file is empty"
    ):
        load_keras_model(empty)
    odd = tmp_path / "odd.keras"
    with zipfile.ZipFile(odd, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(ModelFileError, match="odd.keras: not a Keras model file .*no config.json"):
        load_keras_model(odd)
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("config.json", "{not json")
    with pytest.raises(ModelFileError, match=r"broken.keras: not a Keras model file \(cannot be"):
        load_keras_model(broken)
    h5 = tmp_path / "text.h5"
    h5.write_text("hello")
    with pytest.raises(
        ModelFileError, match=r"text.h5: not a Keras model file \(a .h5 file is HDF5; this is not"
    ):
        load_keras_model(h5)


def test_finetuning_a_model_with_other_outputs_warns_of_the_new_head(tmp_path, caplog):
    import keras

    from deepfer.train.models import load_for_finetune

    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Dense(3)(keras.layers.Flatten()(inputs))
    five = tmp_path / "five.keras"
    keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(x)).save(five)
    with caplog.at_level("WARNING", logger="deepfer.train.models"):
        model = load_for_finetune(five, 7)
    assert model.output_shape == (None, 7)
    assert "gives 5 scores, not 7 scores: fine-tuning it with a new 7-class output" in caplog.text
    assert "random weights" in caplog.text
