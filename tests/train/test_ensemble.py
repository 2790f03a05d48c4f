"""`deepfer ensemble`: several trained models as one graph averaging their scores, scored on
the validation slice their runs share, and converted to one .tflite with its members in the
sidecar."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepfer.cli import main
from deepfer.edge.labels import LABELS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_runs(tiny_run, second_tiny_run):
    """Two tiny runs' models on the same data and validation split, different seeds."""
    return [tiny_run / "deepfer-edge.keras", second_tiny_run / "deepfer-edge.keras"]


def _faces(n: int = 5) -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 255, (n, 48, 48, 1)).astype(np.float32)


def _predict(path, faces):
    import keras

    return keras.models.load_model(path, compile=False).predict(faces, verbose=0)


def test_an_equal_ensemble_outputs_the_mean_of_its_members(two_runs, tmp_path, capsys):
    from deepfer.convert.source import find_training_info

    out = tmp_path / "both.keras"
    assert main(["ensemble", *map(str, two_runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ensemble: validation" in printed and "both.ensemble.json" in printed
    # both members are deepfer-edge.keras: the printout names their folders too
    assert "run3/deepfer-edge.keras: validation" in printed
    assert "run4/deepfer-edge.keras: validation" in printed

    faces = _faces()
    members = [_predict(p, faces) for p in two_runs]
    np.testing.assert_allclose(_predict(out, faces), (members[0] + members[1]) / 2, atol=1e-5)

    record = json.loads((tmp_path / "both.ensemble.json").read_text())
    assert [m["path"] for m in record["members"]] == [str(p) for p in two_runs]
    assert [m["weight"] for m in record["members"]] == [0.5, 0.5]
    assert record["selected_on"].startswith("validation slice (14 faces")
    for member in record["members"]:
        assert 0.0 <= member["val_accuracy"] <= 1.0
        assert member["training"]["seed"] in (3, 4) and len(member["sha256"]) == 64

    trained_on, training = find_training_info(out)  # what `deepfer convert` puts in the sidecar
    assert trained_on.startswith("ensemble of 2 models; FER2013 training split")
    assert [m["weight"] for m in training["ensemble"]] == [0.5, 0.5]
    assert training["val_accuracy"] == record["val_accuracy"]


def test_weights_are_normalised_and_applied(two_runs, tmp_path):
    out = tmp_path / "weighted.keras"
    assert main(["ensemble", *map(str, two_runs), "--out", str(out), "--weights", "3,1"]) == 0
    faces = _faces()
    members = [_predict(p, faces) for p in two_runs]
    np.testing.assert_allclose(_predict(out, faces), 0.75 * members[0] + 0.25 * members[1],
                               atol=1e-5)  # fmt: skip
    record = json.loads((tmp_path / "weighted.ensemble.json").read_text())
    assert [m["weight"] for m in record["members"]] == [0.75, 0.25]


def test_weight_search_picks_the_best_on_validation(two_runs, tmp_path, capsys):
    out = tmp_path / "searched.keras"
    assert main(["ensemble", *map(str, two_runs), "--out", str(out), "--weights", "search"]) == 0
    record = json.loads((tmp_path / "searched.ensemble.json").read_text())
    tried = record["weight_search"]
    assert list(tried) == ["0.3", "0.4", "0.5", "0.6", "0.7"]
    assert record["val_accuracy"] == max(tried.values())
    first = record["members"][0]["weight"]
    assert tried[f"{first:.1f}"] == record["val_accuracy"]
    assert "weights 0.3/0.7: validation" in capsys.readouterr().out


def test_the_ensemble_converts_to_one_int8_model_with_its_members_in_the_sidecar(
    two_runs, tmp_path, tiny_fer
):
    from deepfer.convert.quantize import convert_model
    from deepfer.edge.model.classifier import EmotionClassifier

    out = tmp_path / "both.keras"
    assert main(["ensemble", *map(str, two_runs), "--out", str(out), "--no-score"]) == 0
    # two 2-epoch members score at chance with flat scores: their int8 and float top-1 differ,
    # which the agreement gate would refuse; this test is about the graph and its sidecar
    result = convert_model(out, tiny_fer, tmp_path / "ens", n_calibration=140,
                           formats=("int8",), min_agreement=0)  # fmt: skip
    sidecar = json.loads((tmp_path / "ens_int8.json").read_text())
    assert [m["path"] for m in sidecar["training"]["ensemble"]] == [str(p) for p in two_runs]
    assert sidecar["trained_on"].startswith("ensemble of 2 models")
    classifier = EmotionClassifier(result.path("int8"))
    scores = classifier.infer(_faces(3)[..., 0].astype(np.uint8))
    assert scores.shape == (3, 7)
    np.testing.assert_allclose(scores.sum(1), 1.0, atol=0.03)


def test_bad_ensembles_are_refused_clearly(two_runs, tmp_path, capsys):
    out = str(tmp_path / "e.keras")
    assert main(["ensemble", str(two_runs[0]), "--out", out]) == 2
    assert "at least two models" in capsys.readouterr().err

    assert main(["ensemble", str(two_runs[0]), str(tmp_path / "gone.keras"), "--out", out]) == 2
    assert "gone.keras: model file not found" in capsys.readouterr().err

    assert main(["ensemble", *map(str, two_runs), "--out", out, "--weights", "1,x"]) == 2
    assert "give numbers separated by commas" in capsys.readouterr().err

    assert main(["ensemble", *map(str, two_runs), "--out", out, "--weights", "1,2,3"]) == 2
    assert "3 weights for 2 members" in capsys.readouterr().err

    assert main(["ensemble", *map(str, two_runs), "--out", str(tmp_path / "e.h5")]) == 2
    assert "saved as a .keras model" in capsys.readouterr().err

    import shutil

    alone = tmp_path / "alone.keras"  # outside any run folder: no validation slice known
    shutil.copy(two_runs[1], alone)
    assert main(["ensemble", str(two_runs[0]), str(alone), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "alone.keras: not in a `deepfer train` run folder" in err and "--no-score" in err
    assert main(["ensemble", str(two_runs[0]), str(alone), "--out", out, "--no-score"]) == 0

    # a member whose own sidecar names another order would be averaged class against wrong
    # class: refused, saying so (before, only the number of scores was checked)
    other = ["happy", *[c for c in LABELS if c != "happy"]]
    (alone.with_suffix(".json")).write_text(
        json.dumps({"labels": other, "input": {"size": [48, 48]}, "trained_on": "x", "metrics": {}})
    )
    assert main(["ensemble", str(two_runs[0]), str(alone), "--out", out, "--no-score"]) == 2
    err = capsys.readouterr().err
    assert "alone.json names its outputs happy, angry" in err and "DeepFER's order" in err


def test_display_names_tell_members_apart():
    from pathlib import Path

    from deepfer.train.ensemble import display_names

    assert display_names([Path("/r/a/m.keras"), Path("/r/b/n.keras")]) == ["m.keras", "n.keras"]
    assert display_names([Path("/x/a/run/m.keras"), Path("/x/b/run/m.keras")]) == [
        "a/run/m.keras", "b/run/m.keras"
    ]  # fmt: skip


def test_outputs_are_checked_before_the_work(two_runs, tmp_path, capsys):
    """--out one of the members (it would be overwritten), or where no file can be written:
    refused before any model is loaded or scored."""
    import os

    before = two_runs[1].read_bytes()
    for out in (two_runs[1], two_runs[1].parent / ".." / "run4" / "deepfer-edge.keras"):
        assert main(["ensemble", *map(str, two_runs), "--out", str(out)]) == 2
        out_text, err = capsys.readouterr()
        assert f"--out {out}: is the member {two_runs[1]}; it would be overwritten" in err
        assert out_text == ""
    link = tmp_path / "link.keras"
    os.link(two_runs[0], link)  # another name for the same file
    assert main(["ensemble", *map(str, two_runs), "--out", str(link)]) == 2
    assert "is the member" in capsys.readouterr().err
    assert two_runs[1].read_bytes() == before

    notes = tmp_path / "notes.md"
    notes.write_text("hello")
    assert main(["ensemble", *map(str, two_runs), "--out", str(notes / "e.keras")]) == 2
    out_text, err = capsys.readouterr()
    assert err == (
        f"deepfer ensemble: error: --out {notes / 'e.keras'}: cannot be made: {notes} is a "
        "file, not a folder\n"
    )
    assert "validation" not in out_text  # nothing scored


def test_members_on_different_splits_name_what_differs(two_runs, tmp_path, capsys):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(two_runs[1].parent, other)
    config = json.loads((other / "config.json").read_text())
    config["split_seed"] = 5
    (other / "config.json").write_text(json.dumps(config))
    member = other / "deepfer-edge.keras"
    assert (
        main(["ensemble", str(two_runs[0]), str(member), "--out", str(tmp_path / "e.keras")]) == 2
    )
    err = capsys.readouterr().err
    assert err.startswith(
        "deepfer ensemble: error: the members were selected on different validation slices: "
        "split seed 9 (run3/deepfer-edge.keras), 5 (other/deepfer-edge.keras); "
    )
    assert "--split-seed" in err and "--no-score" in err and "('" not in err
