"""Evaluation: numpy metrics against hand-worked and brute-force answers, test-time
augmentation, and `deepfer evaluate` end to end on the tiny .keras and int8 .tflite models."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepfer.cli import main
from deepfer.edge.labels import LABELS
from deepfer.edge.model.sidecar import load_model_info, write_sidecar
from deepfer.evaluate.metrics import auc, evaluate_predictions, roc_curve
from deepfer.evaluate.tta import (
    centre_views,
    flip_views,
    predict_probs,
    tencrop_views,
    tta_views,
)

FERPLUS_HEADER = "file,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"


def one_hot_probs(pred: list[int], k: int, confidence: float = 0.7) -> np.ndarray:
    probs = np.full((len(pred), k), (1 - confidence) / (k - 1))
    probs[np.arange(len(pred)), pred] = confidence
    return probs


def test_metrics_on_a_hand_worked_example():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = [0, 0, 1, 1, 2, 2]
    m = evaluate_predictions(y_true, one_hot_probs(y_pred, 3), ["a", "b", "c"])
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"]["counts"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["confusion_matrix"]["normalized"][0] == pytest.approx([2 / 3, 1 / 3, 0], abs=1e-4)
    pc = m["per_class"]
    assert [pc[c]["precision"] for c in "abc"] == pytest.approx([1.0, 0.5, 0.5])
    assert [pc[c]["recall"] for c in "abc"] == pytest.approx([2 / 3, 0.5, 1.0])
    assert [pc[c]["f1"] for c in "abc"] == pytest.approx([0.8, 0.5, 2 / 3])
    assert [pc[c]["support"] for c in "abc"] == [3, 2, 1]
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["weighted_f1"] == pytest.approx((0.8 * 3 + 0.5 * 2 + 2 / 3) / 6)
    json.dumps(m)  # JSON-ready


def brute_force_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counting one half (Mann-Whitney)."""
    pos, neg = scores[positive], scores[~positive]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_roc_and_auc_match_the_rank_statistic():
    rng = np.random.default_rng(0)
    positive = rng.random(300) < 0.3
    scores = np.round(rng.random(300) + 0.6 * positive, 2)  # rounded: plenty of ties
    fpr, tpr, thresholds = roc_curve(positive, scores)
    assert fpr[0] == tpr[0] == 0.0 and fpr[-1] == tpr[-1] == 1.0
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
    assert (np.diff(thresholds) < 0).all()
    assert auc(fpr, tpr) == pytest.approx(brute_force_auc(positive, scores), abs=1e-12)
    # perfect, reversed and constant scorers
    y = np.array([0, 0, 1, 1], bool)
    assert auc(*roc_curve(y, np.array([0.1, 0.2, 0.8, 0.9]))[:2]) == 1.0
    assert auc(*roc_curve(y, np.array([0.9, 0.8, 0.2, 0.1]))[:2]) == 0.0
    assert auc(*roc_curve(y, np.full(4, 0.5))[:2]) == 0.5
    with pytest.raises(ValueError, match="both positive and negative"):
        roc_curve(np.ones(3, bool), np.arange(3.0))


def test_per_class_auc_is_one_vs_rest():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 7, 400)
    probs = rng.dirichlet(np.ones(7), 400) + 0.5 * np.eye(7)[y]
    probs /= probs.sum(1, keepdims=True)
    m = evaluate_predictions(y, probs, LABELS)
    for c, label in enumerate(LABELS):
        expected = brute_force_auc(y == c, probs[:, c])
        assert m["auc"][label] == pytest.approx(expected, abs=1e-12)
        assert m["per_class"][label]["auc"] == m["auc"][label]
    assert m["macro_auc"] == pytest.approx(np.mean(list(m["auc"].values())))


def test_absent_classes():
    # class 3 neither occurs nor is predicted: no AUC, left out of macro-F1; class 2 is
    # predicted but never true: precision 0, counted in macro-F1 (as scikit-learn does)
    y_true = np.array([0, 0, 1, 1])
    m = evaluate_predictions(y_true, one_hot_probs([0, 2, 1, 1], 4), ["a", "b", "c", "d"])
    assert m["auc"]["d"] is None and m["auc"]["c"] is None
    assert m["per_class"]["c"]["precision"] == 0.0 and m["per_class"]["c"]["support"] == 0
    assert m["per_class"]["d"]["f1"] == 0.0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)
    with pytest.raises(ValueError, match=r"probs must be \(n, 4\)"):
        evaluate_predictions(y_true, np.ones((4, 3)), ["a", "b", "c", "d"])


def test_tta_views():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 48, 48, 1), dtype=np.uint8)
    assert len(tta_views(x, None)) == 1 and tta_views(x, "none")[0] is x
    flip = flip_views(x)
    assert len(flip) == 2
    np.testing.assert_array_equal(flip[1][:, :, ::-1], x)
    crops = tencrop_views(x)
    assert len(crops) == 10
    assert all(v.shape == x.shape and v.dtype == np.uint8 for v in crops)
    for plain, mirrored in zip(crops[::2], crops[1::2]):
        np.testing.assert_array_equal(mirrored, plain[:, :, ::-1])
    # a flat face stays flat in every view
    flat = np.full((2, 48, 48, 1), 77, np.uint8)
    assert all((v == 77).all() for v in tencrop_views(flat))
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        tta_views(x, "rotate")


def test_centre_view_is_the_tencrop_centre_crop():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (3, 48, 48, 1), dtype=np.uint8)
    (centre,) = centre_views(x)
    assert centre.shape == x.shape and centre.dtype == np.uint8
    np.testing.assert_array_equal(centre, tencrop_views(x)[8])
    assert len(tta_views(x, "centre")) == 1
    # a vertical ramp: the 44-pixel centre crop spans fewer grey levels than the face
    ramp = np.repeat(np.arange(0, 240, 5, dtype=np.uint8)[None, :, None, None], 48, 2)
    (zoomed,) = centre_views(ramp)
    assert int(zoomed[0, -1, 0, 0]) - int(zoomed[0, 0, 0, 0]) < 235


def run_cli(*argv: str) -> int:
    return main(["evaluate", *argv, "--no-progress"])


def check_report(out, model_path, n: int) -> dict:
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == str(model_path)
    assert report["split"] == "test" and report["n"] == n
    assert set(report["per_class"]) == set(LABELS)
    for m in report["per_class"].values():
        assert {"precision", "recall", "f1", "support", "auc"} <= set(m)
    assert sum(m["support"] for m in report["per_class"].values()) == n
    cm = np.array(report["confusion_matrix"]["counts"])
    assert cm.shape == (7, 7) and cm.sum() == n
    assert np.trace(cm) / n == pytest.approx(report["accuracy"])
    assert set(report["auc"]) == set(LABELS)
    assert set(report["tta"]) == {"flip", "tencrop"}
    for m in report["tta"].values():
        assert m["n"] == n and 0.0 <= m["accuracy"] <= 1.0
        assert m["ms_per_face"] > 0 and m["cost_vs_plain"] > 0
    assert report["ms_per_face"] > 0
    for name in ("confusion_matrix.png", "roc_curves.png", "confusion_matrix_flip.png"):
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000
    return report


@pytest.mark.slow
def test_evaluate_keras_model(tiny_keras_model, tiny_fer, tmp_path, capsys):
    out = tmp_path / "eval"
    args = [str(tiny_keras_model), "--data", str(tiny_fer), "--out", str(out)]
    assert run_cli(*args, "--tta", "flip", "tencrop") == 0
    report = check_report(out, tiny_keras_model, 42)
    assert report["model_type"] == "keras"
    assert report["accuracy"] > 0.6  # learnable synthetic faces; chance is 1/7
    text = capsys.readouterr().out
    assert "precision" in text and "macro-F1" in text and "TTA tencrop" in text
    assert str(out / "report.json") in text


@pytest.mark.slow
def test_evaluate_tflite_model_matches_keras(
    tiny_tflite_model, tiny_keras_model, tiny_fer, tmp_path
):
    out = tmp_path / "eval"
    args = [str(tiny_tflite_model), "--data", str(tiny_fer), "--out", str(out)]
    assert run_cli(*args, "--tta", "flip", "tencrop") == 0
    report = check_report(out, tiny_tflite_model, 42)
    assert report["model_type"] == "tflite" and report["input_dtype"] == "int8"
    assert report["accuracy"] > 0.6
    # the int8 model and its float source agree on almost every face
    from deepfer.data.fer2013 import load_fer2013

    x = load_fer2013(tiny_fer, ("test",), progress=False)["test"].x
    p_int8 = predict_probs(tiny_tflite_model, x)
    p_float = predict_probs(tiny_keras_model, x)
    assert p_int8.shape == p_float.shape == (42, 7)
    np.testing.assert_allclose(p_int8.sum(1), 1.0, atol=0.05)
    assert (p_int8.argmax(1) == p_float.argmax(1)).mean() >= 0.9


@pytest.mark.slow
def test_tflite_evaluation_never_imports_tensorflow(tiny_tflite_model, tiny_fer, tmp_path):
    code = f"""
import sys
from deepfer.evaluate.evaluation import evaluate_model
from deepfer.evaluate.tta import predict_probs
report = evaluate_model({str(tiny_tflite_model)!r}, {str(tiny_fer)!r}, out={str(tmp_path)!r},
                        tta=["flip"], progress=False)
assert report["n"] == 42
heavy = sorted(m for m in ("tensorflow", "keras", "sklearn") if m in sys.modules)
print("HEAVY", heavy)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout


@pytest.mark.slow
def test_sidecar_label_order_is_respected(tiny_tflite_model, tiny_fer, tmp_path):
    """A model whose sidecar lists its outputs in another order gets its columns put back."""
    copy = tmp_path / "reversed.tflite"
    shutil.copy(tiny_tflite_model, copy)
    raw = load_model_info(tiny_tflite_model).raw
    write_sidecar(copy, {**raw, "labels": list(reversed(LABELS))})
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 48, 48, 1), dtype=np.uint8)
    np.testing.assert_allclose(predict_probs(copy, x), predict_probs(tiny_tflite_model, x)[:, ::-1])
    # faces of another size are resized to the model's input
    big = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    assert predict_probs(tiny_tflite_model, big).shape == (6, 7)


@pytest.mark.slow
def test_evaluate_refuses_bad_input_clearly(tiny_tflite_model, tiny_fer, tmp_path, capsys):
    bare = tmp_path / "bare.tflite"
    shutil.copy(tiny_tflite_model, bare)  # no sidecar
    assert run_cli(str(bare), "--data", str(tiny_fer), "--out", str(tmp_path)) == 2
    assert "no sidecar bare.json" in capsys.readouterr().err

    args = [str(tiny_tflite_model), "--data", str(tiny_fer), "--out", str(tmp_path)]
    assert run_cli(*args, "--split", "private_test") == 2
    assert "no 'private_test' split" in capsys.readouterr().err

    assert run_cli(str(tmp_path / "missing.keras"), "--data", str(tiny_fer)) == 2
    assert "model file not found" in capsys.readouterr().err

    notes = tmp_path / "model.onnx"
    notes.write_text("x")
    assert run_cli(str(notes), "--data", str(tiny_fer)) == 2
    assert "expected .tflite, .keras or .h5" in capsys.readouterr().err

    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    assert run_cli(str(broken), "--data", str(tiny_fer)) == 2
    err = capsys.readouterr().err
    assert "broken.keras: not a Keras model file (a .keras file is a zip archive" in err
    assert "File not found" not in err  # what Keras itself says of a corrupt .keras

    big = tmp_path / "big.tflite"  # its sidecar says 64x64, the model takes 48x48
    shutil.copy(tiny_tflite_model, big)
    raw = load_model_info(tiny_tflite_model).raw
    write_sidecar(big, {**raw, "input": {**raw["input"], "size": [64, 64]}})
    assert run_cli(str(big), "--data", str(tiny_fer), "--out", str(tmp_path / "e")) == 2
    err = capsys.readouterr().err
    assert "input shape [1, 48, 48, 1] does not match the sidecar's input size [64, 64]" in err


@pytest.mark.slow
def test_evaluate_checks_the_report_folder_first(tiny_tflite_model, tiny_fer, tmp_path, capsys):
    notes = tmp_path / "notes.md"
    notes.write_text("hello")
    args = [str(tiny_tflite_model), "--data", str(tiny_fer)]
    assert run_cli(*args, "--out", str(notes)) == 2
    assert f"--out {notes}: is a file, not a folder" in capsys.readouterr().err
    assert run_cli(*args, "--out", str(notes / "eval")) == 2
    assert f"cannot be made: {notes} is a file, not a folder" in capsys.readouterr().err
    if Path("/proc").is_dir():  # refuses new files even to root: found by trying
        assert run_cli(*args, "--out", "/proc/evx") == 2
        assert "--out /proc/evx: cannot write in /proc" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.md"]


@pytest.mark.slow
def test_evaluate_a_folder_takes_the_model_in_it(tiny_tflite_model, tiny_fer, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    model = run / tiny_tflite_model.name
    shutil.copy(tiny_tflite_model, model)
    shutil.copy(tiny_tflite_model.with_suffix(".json"), model.with_suffix(".json"))
    args = ["--data", str(tiny_fer / "test"), "--tta", "none"]
    assert run_cli(str(run), *args) == 0
    report = json.loads((run / f"{model.stem}-eval-all" / "report.json").read_text())
    assert report["model"] == str(model) and report["n"] == 42
    shutil.copy(model, run / "other.tflite")
    assert run_cli(str(run), *args) == 2
    err = capsys.readouterr().err
    assert f"{run}: a folder; give the model file in it (found other.tflite, {model.name})" in err


@pytest.mark.slow
def test_evaluate_a_plain_class_folder_defaults_beside_the_model(
    tiny_tflite_model, tiny_fer, tmp_path
):
    model = tmp_path / "m.tflite"
    shutil.copy(tiny_tflite_model, model)
    shutil.copy(tiny_tflite_model.with_suffix(".json"), model.with_suffix(".json"))
    assert run_cli(str(model), "--data", str(tiny_fer / "test"), "--tta", "none") == 0
    report = json.loads((tmp_path / "m-eval-all" / "report.json").read_text())
    assert report["split"] == "all" and report["n"] == 42 and report["tta"] == {}


@pytest.mark.slow
def test_evaluate_against_ferplus_votes(tiny_tflite_model, tiny_fer, tmp_path, capsys):
    from deepfer.data.fer2013 import load_fer2013

    data = tmp_path / "fer"
    shutil.copytree(tiny_fer, data)
    test = load_fer2013(data, ("test",), progress=False)["test"]
    # FER+ annotators call every face "neutral" except the first, which is a tie
    rows = [f"{name},6,0,0,0,0,0,0,2,1,1\n" for name in test.files]
    rows[0] = f"{test.files[0]},5,5,0,0,0,0,0,0,0,0\n"
    (data / "ferplus_test.csv").write_text(FERPLUS_HEADER + "".join(rows))

    out = tmp_path / "eval"
    args = [str(tiny_tflite_model), "--data", str(data), "--out", str(out), "--tta", "none"]
    assert run_cli(*args, "--labels", "ferplus") == 0
    report = json.loads((out / "report.json").read_text())
    assert report["labels"] == "ferplus" and report["split"] == "test-ferplus"
    assert report["ferplus"]["kept"] == 41 and report["ferplus"]["left_out"]["tie"] == 1
    assert report["n"] == 41 and report["per_class"]["neutral"]["support"] == 41
    probs = predict_probs(tiny_tflite_model, test.x[1:])
    assert report["accuracy"] == pytest.approx((probs.argmax(1) == LABELS.index("neutral")).mean())
    assert "41 of 42 faces kept (left out: tie 1)" in capsys.readouterr().out

    (data / "ferplus_test.csv").unlink()
    assert run_cli(*args, "--labels", "ferplus") == 2
    err = capsys.readouterr().err
    assert f"no FER+ votes at {data / 'ferplus_test.csv'}; pass --ferplus-votes" in err


@pytest.mark.slow
def test_class_folders_without_some_classes_score_as_benchmark_does(
    tiny_tflite_model, tiny_fer, tmp_path, capsys
):
    """A user's class folders without disgust, fear, sad and surprise: evaluate's macro-F1
    averaged scikit-learn's default way (the classes in the data or the predictions, a class
    only predicted counting 0) and printed 0.000 for their F1, unlike benchmark on the same
    model and faces. Now both leave them out: '-' on screen, null in the JSON, no NaN."""
    import re

    mine = tmp_path / "mine"
    for folder, label in (("Happy", "happy"), ("anger", "angry"), ("neutral ", "neutral")):
        shutil.copytree(tiny_fer / "test" / label, mine / folder)
    out = tmp_path / "e"
    assert run_cli(str(tiny_tflite_model), "--data", str(mine), "--out", str(out),
                   "--tta", "flip") == 0  # fmt: skip
    screen = capsys.readouterr().out
    text = (out / "report.json").read_text()
    report = json.loads(text)
    absent, present = ["disgust", "fear", "sad", "surprise"], ["angry", "happy", "neutral"]
    assert report["absent_classes"] == report["tta"]["flip"]["absent_classes"] == absent
    assert report["macro_f1_over"] == report["tta"]["flip"]["macro_f1_over"] == present
    pc = report["per_class"]
    assert all(pc[k]["f1"] is None and pc[k]["recall"] is None for k in absent)
    assert report["macro_f1"] == pytest.approx(np.mean([pc[k]["f1"] for k in present]))
    table = screen[screen.index("class      precision") :].splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in table[1:8]}
    assert all(rows[k][1:4] == ["-", "-", "-"] and rows[k][4] == "0" for k in absent)
    assert all(rows[k][2] == f"{pc[k]['f1']:.3f}" for k in present)
    note = "-: no faces of disgust, fear, sad, surprise in the data; macro-F1 averages the 3"
    assert note in table[9]
    assert not re.search(r"\bnan\b", screen, re.IGNORECASE) and "NaN" not in text
    assert set(report["auc"]) == set(LABELS) and all(report["auc"][k] is None for k in absent)
    for name in ("confusion_matrix.png", "roc_curves.png", "confusion_matrix_flip.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    bench, model = tmp_path / "b", tmp_path / tiny_tflite_model.name  # a copy: its sidecar
    shutil.copy(tiny_tflite_model, model)  # is written (--update-sidecars)
    shutil.copy(tiny_tflite_model.with_suffix(".json"), model.with_suffix(".json"))
    assert main(["benchmark", str(model), "--data", str(mine), "--out", str(bench), "--threads",
                 "1", "--runs", "5", "--warmup", "1", "--batch-size", "4",
                 "--update-sidecars"]) == 0  # fmt: skip
    b = json.loads((bench / "benchmark.json").read_text())
    assert b["absent_classes"] == absent and b["macro_f1_over"] == present
    row = b["models"][0]
    assert row["accuracy"] == pytest.approx(report["accuracy"], abs=1e-12)
    assert row["macro_f1"] == pytest.approx(report["macro_f1"], abs=1e-12)
    assert row["per_class_f1"] == {k: v["f1"] for k, v in pc.items()}
    stored = load_model_info(model).raw["metrics"]["benchmark"]
    assert stored["per_class_f1"] == row["per_class_f1"] and stored["absent_classes"] == absent
    assert stored["macro_f1_over"] == present
