"""``deepfer benchmark``: int8 vs float on the tiny data, each model in a fresh process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from deepfer.cli import main
from deepfer.edge.labels import LABELS
from deepfer.edge.model.sidecar import load_model_info, write_sidecar
from deepfer.evaluate.benchmark import BenchmarkError, describe_model, load_faces

pytestmark = pytest.mark.slow

FAST = ["--runs", "5", "--warmup", "1", "--batch-size", "4"]


def test_benchmark_int8_vs_float_writes_json_markdown_and_plot(
    tiny_tflite_model, tiny_fer, tmp_path, capsys
):
    float_path = tiny_tflite_model.with_name("tiny_float32.tflite")
    out = tmp_path / "bench"
    code = main(
        ["benchmark", str(tiny_tflite_model), str(float_path), "--data", str(tiny_fer),
         "--out", str(out), "--threads", "2", *FAST]
    )  # fmt: skip
    screen = capsys.readouterr().out
    assert code == 0
    assert "tiny_int8.tflite" in screen and "tiny_float32.tflite (ref)" in screen
    assert "per-class F1" in screen

    report = json.loads((out / "benchmark.json").read_text())
    assert report["split"] == "test" and report["n"] == 42
    assert report["reference"] == str(float_path)
    assert report["settings"]["threads"] == [1, 2]
    int8, flt = report["models"]
    assert int8["format"] == "int8" and flt["format"] == "float32" and flt["is_reference"]
    assert flt["agreement_with_reference"] == 1.0
    assert int8["agreement_with_reference"] >= 0.9
    for row in (int8, flt):
        assert row["runtime"].startswith("ai-edge-litert")
        assert not row["tensorflow_imported"]  # a .tflite is measured without TensorFlow
        assert 0.8 <= row["accuracy"] <= 1.0 and 0.0 <= row["macro_f1"] <= 1.0
        assert set(row["per_class_f1"]) == set(LABELS)
        assert set(row["latency_ms"]) == {"1", "2"}
        assert row["latency_ms"]["1"]["runs"] == 5
        assert 0 < row["latency_ms"]["1"]["median"] <= row["latency_ms"]["1"]["p90"]
        assert row["throughput"]["batch_size"] == 4 and row["throughput"]["faces_per_second"] > 0
        assert row["peak_rss_mb"] > 10
    assert int8["size_bytes"] < flt["size_bytes"]

    md = (out / "benchmark.md").read_text()
    assert "| model | runtime | size KiB | accuracy | macro-F1 | agreement |" in md
    assert "| tiny_int8.tflite |" in md and "Per-class F1" in md
    assert (out / "benchmark.png").stat().st_size > 5000


def test_benchmark_keras_model_is_the_float_reference(
    tiny_keras_model, tiny_tflite_model, tiny_fer, tmp_path, capsys
):
    int8_copy = tmp_path / tiny_tflite_model.name  # --update-sidecars: leave the fixture alone
    shutil.copy(tiny_tflite_model, int8_copy)
    shutil.copy(tiny_tflite_model.with_suffix(".json"), int8_copy.with_suffix(".json"))
    out = tmp_path / "k.json"
    code = main(
        ["benchmark", str(int8_copy), str(tiny_keras_model), "--data", str(tiny_fer),
         "--threads", "1", "--limit", "21", "--json", str(out), "--update-sidecars", *FAST]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["n"] == 21 and report["reference"] == str(tiny_keras_model)
    int8, keras_row = report["models"]
    assert keras_row["kind"] == "keras" and keras_row["runtime"].startswith("keras")
    assert int8["agreement_with_reference"] >= 0.9
    side = json.loads(int8_copy.with_suffix(".json").read_text())
    assert side["metrics"]["benchmark"]["n"] == 21
    assert side["metrics"]["agreement_with_float"] > 0  # convert's own numbers are kept


def test_classes_without_faces_are_shown_absent_with_the_faces_of_each(
    tiny_tflite_model, tiny_fer, tmp_path, capsys
):
    """A user's class folders without some classes: their F1 is "-" (null in the JSON), not
    0.000, macro-F1 averages the classes with faces, and each class's faces are given."""
    mine = tmp_path / "mine"
    for folder, label in (("Happy", "happy"), ("anger", "angry"), ("neutral ", "neutral")):
        shutil.copytree(tiny_fer / "test" / label, mine / folder)
    out = tmp_path / "b"
    assert main(["benchmark", str(tiny_tflite_model), "--data", str(mine), "--out", str(out),
                 "--threads", "1", *FAST]) == 0  # fmt: skip
    screen = capsys.readouterr().out
    report = json.loads((out / "benchmark.json").read_text())
    absent = ["disgust", "fear", "sad", "surprise"]
    assert report["split"] == "all" and report["absent_classes"] == absent
    row = report["models"][0]
    assert [k for k, v in row["per_class_f1"].items() if v is None] == absent
    with_faces = [row["per_class_f1"][k] for k in ("angry", "happy", "neutral")]
    assert row["macro_f1"] == pytest.approx(np.mean(with_faces))
    faces = report["class_counts"]
    table = screen[screen.index("per-class F1") :].splitlines()
    assert "no faces of disgust, fear, sad, surprise in the data" in table[0]
    assert "macro-F1 averages the 3 classes with faces" in table[0]
    assert table[2].split()[2:] == [str(faces[k]) for k in LABELS]  # faces (support)
    assert table[3].split()[1:] == [f"{v:.3f}" if v is not None else "-"
                                    for v in row["per_class_f1"].values()]  # fmt: skip
    md = (out / "benchmark.md").read_text()
    assert "| faces (support) | " + " | ".join(str(faces[k]) for k in LABELS) + " |" in md
    assert f"| {tiny_tflite_model.name} | " in md and "| - | - |" in md


def test_benchmark_refuses_bad_models_clearly(tiny_tflite_model, tiny_fer, tmp_path, capsys):
    def run(*models):
        code = main(["benchmark", *map(str, models), "--data", str(tiny_fer), *FAST])
        return code, capsys.readouterr().err

    code, err = run(tmp_path / "missing.tflite")
    assert code == 2 and "missing.tflite: model file not found" in err

    lonely = tmp_path / "lonely.tflite"
    shutil.copy(tiny_tflite_model, lonely)
    code, err = run(lonely)
    assert code == 2 and "no sidecar lonely.json" in err

    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"\0" * 64)
    shutil.copy(tiny_tflite_model.with_suffix(".json"), corrupt.with_suffix(".json"))
    code, err = run(corrupt)
    assert code == 2 and "corrupt.tflite: not a TFLite model" in err

    with pytest.raises(BenchmarkError, match="unknown model type"):
        describe_model(tiny_fer / "train" / "happy" / "train_00072.png")


def test_benchmark_checks_options_and_outputs_before_measuring(
    tiny_tflite_model, tiny_fer, tmp_path, capsys
):
    notes = tmp_path / "notes.md"
    notes.write_text("hello")
    cases = [
        (["--runs", "0"], "--runs 0: must be at least 1"),
        (["--warmup", "-1"], "--warmup -1: must be at least 0"),
        (["--batch-size", "0"], "--batch-size 0: must be at least 1"),
        (["--threads", "-2"], "--threads -2: must be at least 0"),
        (["--limit", "-5"], "--limit -5: must be at least 0"),
        (["--limit", "3"], "--limit 3: fewer faces than the 7 classes in"),
        (["--out", notes], f"--out {notes}: is a file, not a folder"),
        (["--plot", notes / "p.png"], f"--plot {notes / 'p.png'}: cannot be made: {notes} is"),
        (["--json", tmp_path], f"--json {tmp_path}: is a folder"),
    ]
    if Path("/proc").is_dir():  # refuses new files even to root: found by trying
        cases.append((["--markdown", "/proc/x.md"], "--markdown /proc/x.md: cannot write in /proc"))
    for extra, message in cases:
        argv = [str(tiny_tflite_model), "--data", str(tiny_fer), *FAST, *map(str, extra)]
        assert main(["benchmark", *argv]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and "measuring" not in err, (extra, err)
        assert "Traceback" not in err and err.strip().count("\n") == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.md"]


def test_benchmark_loads_every_model_before_measuring_any(
    tiny_tflite_model, tiny_fer, tmp_path, capsys
):
    """A good model then a bad one: refused at once, naming the bad one; nothing measured."""
    big = tmp_path / "big.tflite"  # its sidecar says 64x64, the model takes 48x48
    shutil.copy(tiny_tflite_model, big)
    raw = load_model_info(tiny_tflite_model).raw
    write_sidecar(big, {**raw, "input": {**raw["input"], "size": [64, 64]}})
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(tiny_tflite_model.read_bytes()[:5000])
    shutil.copy(tiny_tflite_model.with_suffix(".json"), cut.with_suffix(".json"))
    for bad, message in (
        (big, "input shape [1, 48, 48, 1] does not match the sidecar's input size [64, 64]"),
        (cut, "cut.tflite: not a valid TFLite model"),
    ):
        code = main(["benchmark", str(tiny_tflite_model), str(bad), "--data", str(tiny_fer),
                     "--out", str(tmp_path / "out"), *FAST])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and message in err, err
        assert "np.int" not in err and "measuring" not in err
    assert not (tmp_path / "out").exists()


def test_limit_gives_exactly_that_many_faces(tiny_fer):
    x, y, split = load_faces(tiny_fer, "test", (48, 48), 10)
    assert split == "test" and len(x) == len(y) == 10 and set(y) == set(range(7))
    assert len(load_faces(tiny_fer, "test", (48, 48), 1000)[1]) == 42  # all there are
    with pytest.raises(BenchmarkError, match="--limit 6: fewer faces than the 7 classes"):
        load_faces(tiny_fer, "test", (48, 48), 6)
    np.testing.assert_array_equal(load_faces(tiny_fer, "test", (48, 48), 10)[0], x)
