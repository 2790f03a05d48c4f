"""``deepfer benchmark``: int8 vs float on the tiny data, each model in a fresh process."""

from __future__ import annotations

import json
import shutil

import pytest

from deepfer.cli import main
from deepfer.edge.labels import LABELS
from deepfer.evaluate.benchmark import BenchmarkError, describe_model

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
