"""`deepfer average`: weight averaging of a run's last epochs, batch-norm recomputation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepfer.cli import main


def _bn_model(width: int = 6):
    import keras

    inputs = keras.Input((width,))
    x = keras.layers.Dropout(0.5, name="drop")(inputs)
    x = keras.layers.BatchNormalization(name="bn", momentum=0.9)(x)
    outputs = keras.layers.Dense(2)(x)
    return keras.Model(inputs, outputs)


def test_recompute_batchnorm_sets_the_mean_over_all_batches():
    from deepfer.train.averaging import recompute_batchnorm

    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(96, 6)).astype(np.float32)
    model = _bn_model()
    assert recompute_batchnorm(model, x, batch_size=32) == 1
    bn = model.get_layer("bn")
    # equal batches: the running mean of the batch means is the mean of all faces,
    # with dropout off (dropout would scale the survivors and zero the rest)
    np.testing.assert_allclose(bn.moving_mean.numpy(), x.mean(0), rtol=1e-5, atol=1e-5)
    batch_vars = np.mean([x[i : i + 32].var(0) for i in range(0, 96, 32)], axis=0)
    np.testing.assert_allclose(bn.moving_variance.numpy(), batch_vars, rtol=1e-4)
    # the layers are left as they were
    assert bn.momentum == 0.9 and model.get_layer("drop").rate == 0.5


def test_average_weights_is_the_element_wise_mean(tmp_path):
    from deepfer.train.averaging import average_weights

    model = _bn_model()
    paths = []
    for i, value in enumerate((1.0, 2.0, 6.0)):
        model.set_weights([np.full_like(w, value) for w in model.get_weights()])
        paths.append(tmp_path / f"epoch-{i + 1:03d}.weights.h5")
        model.save_weights(paths[-1])
    averaged = average_weights(model, paths)
    assert all(np.allclose(w, 3.0) for w in averaged)


@pytest.fixture(scope="module")
def snapshot_run(tmp_path_factory, tiny_run):
    """A copy of the shared tiny run (3 epochs, --snapshots): these tests write beside it."""
    import shutil

    return shutil.copytree(tiny_run, tmp_path_factory.mktemp("swa") / "edge")


@pytest.mark.slow
def test_train_keeps_each_epochs_weights_with_snapshots(snapshot_run):
    from deepfer.train.run_folder import RunFolder

    assert list(RunFolder(snapshot_run).snapshots()) == [1, 2, 3]


@pytest.mark.slow
def test_average_chooses_on_validation_and_saves_a_flip_averaged_model(snapshot_run, capsys):
    import keras

    from deepfer.convert.source import find_training_info

    out = snapshot_run / "averaged.keras"
    assert main(["average", str(snapshot_run), "--last", "2", "3", "--flip-average",
                 "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "average of the last 2 (epochs 2-3)" in printed
    assert "average of the last 3 (epochs 1-3)" in printed and "chosen:" in printed

    report = json.loads((snapshot_run / "average.json").read_text())
    names = [c["name"] for c in report["candidates"]]
    assert names == ["best checkpoint", "average of the last 2", "average of the last 3"]
    best_flip = max(c["flip"] for c in report["candidates"])
    assert report["chosen"]["flip"] == best_flip and report["flip_average"] is True
    assert report["selected_on"].startswith("validation slice (14 faces")

    plain = snapshot_run / "averaged-plain.keras"  # the model without the wrapper, to fine-tune
    assert report["keras_without_flip"] == str(plain)
    assert keras.models.load_model(plain, compile=False).count_params() > 0

    model = keras.models.load_model(out, compile=False)
    faces = np.random.default_rng(1).uniform(0, 255, (4, 48, 48, 1)).astype(np.float32)
    scores = model.predict(faces, verbose=0)
    assert scores.shape == (4, 7)
    np.testing.assert_allclose(scores, model.predict(faces[:, :, ::-1], verbose=0), atol=1e-5)

    _, training = find_training_info(out)  # what `deepfer convert` writes in the sidecar
    assert training["flip_average"] is True
    assert training["val_accuracy"] == pytest.approx(best_flip)
    if report["chosen"]["epochs"]:
        assert training["averaged_epochs"] == report["chosen"]["epochs"]
        assert "best_epoch" not in training


@pytest.mark.slow
def test_average_can_leave_the_best_checkpoint_out_of_the_choice(snapshot_run, capsys):
    out = snapshot_run / "averages-only.keras"
    assert main(["average", str(snapshot_run), "--last", "2", "3", "--averages-only",
                 "--out", str(out)]) == 0  # fmt: skip
    report = json.loads((snapshot_run / "average.json").read_text())
    assert report["candidates"][0]["name"] == "best checkpoint"  # still scored and reported
    assert report["chosen"]["epochs"] in ([2, 3], [1, 2, 3])
    best_average = max(c["single"] for c in report["candidates"][1:])
    assert report["chosen"]["single"] == best_average and out.is_file()


@pytest.mark.slow
def test_average_refuses_a_run_without_snapshots_or_too_few(snapshot_run, tmp_path, capsys):
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(snapshot_run, bare)
    for path in (bare / "checkpoints").glob("epoch-*"):
        path.unlink()
    assert main(["average", str(bare)]) == 2
    err = capsys.readouterr().err
    assert "no epoch-NNN.weights.h5 snapshots" in err and "--snapshots" in err
    # --flip-average alone takes the best checkpoint (tests/train/test_train.py); not with these
    assert main(["average", str(bare), "--flip-average", "--last", "2"]) == 2
    assert "no epoch-NNN.weights.h5 snapshots" in capsys.readouterr().err
    assert main(["average", str(bare), "--flip-average", "--averages-only"]) == 2
    assert "--averages-only: the run kept no snapshots" in capsys.readouterr().err

    assert main(["average", str(snapshot_run), "--last", "9"]) == 2
    assert "--last 9: the run has only 3 snapshot(s) (epochs 1-3)" in capsys.readouterr().err

    assert main(["average", str(tmp_path)]) == 2
    assert "not a `deepfer train` run folder" in capsys.readouterr().err


@pytest.mark.slow
def test_average_uses_only_this_runs_snapshots(snapshot_run, tmp_path, capsys):
    """A weights file the run's state.json does not list (an earlier run's, left in the
    folder) is ignored, and said so."""
    import shutil

    from deepfer.train.run_folder import RunFolder

    run = tmp_path / "run"
    shutil.copytree(snapshot_run, run)
    folder = RunFolder(run)
    assert json.loads(folder.state_file.read_text()) == {"epoch": 3, "snapshots": [1, 2, 3]}
    shutil.copy(
        folder.checkpoints / "epoch-001.weights.h5", folder.checkpoints / "epoch-009.weights.h5"
    )
    assert list(folder.snapshots()) == [1, 2, 3]
    assert main(["average", str(run), "--last", "2", "--out", str(run / "a.keras")]) == 0
    printed = capsys.readouterr().out
    assert "ignoring 1 snapshot(s)" in printed and "epochs 9:" in printed
    assert "average of the last 2 (epochs 2-3)" in printed


@pytest.mark.slow
def test_average_checks_its_outputs_before_the_work(snapshot_run, tmp_path, capsys):
    notes = tmp_path / "notes.md"
    notes.write_text("hello")
    out = notes / "a.keras"
    assert main(["average", str(snapshot_run), "--last", "2", "--out", str(out)]) == 2
    printed, err = capsys.readouterr()
    assert (
        err
        == f"deepfer average: error: --out {out}: cannot be made: {notes} is a file, not a folder\n"
    )
    assert printed == ""  # before the data loads or anything is scored
    assert main(["average", str(snapshot_run), "--last", "2", "--out", str(tmp_path / "a.h5")]) == 2
    assert "saved as a .keras file" in capsys.readouterr().err
