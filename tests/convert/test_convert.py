"""``deepfer convert``: full-int8 + float32 TFLite from a Keras model trained in the test session."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deepfer.cli import main
from deepfer.convert.errors import ConvertError
from deepfer.convert.inspect import check_full_integer, inspect_tflite
from deepfer.data.fer2013 import load_fer2013
from deepfer.edge.labels import LABELS
from deepfer.edge.model.sidecar import load_model_info
from deepfer.edge.paths import file_sha256

pytestmark = pytest.mark.slow


def _sidecar(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def test_int8_model_is_full_integer_and_smaller(tiny_tflite_model):
    float_path = tiny_tflite_model.with_name("tiny_float32.tflite")
    assert float_path.is_file() and float_path.with_suffix(".json").is_file()
    details = inspect_tflite(tiny_tflite_model)
    assert details["input"]["dtype"] == "int8" and details["output"]["dtype"] == "int8"
    check_full_integer(tiny_tflite_model, details)  # builtin ops only, no float tensor in any op
    assert not any(op["op"].startswith("Flex") for op in details["ops"])
    assert inspect_tflite(float_path)["input"]["dtype"] == "float32"
    assert tiny_tflite_model.stat().st_size < 0.5 * float_path.stat().st_size


def test_sidecar_is_complete(tiny_tflite_model, tiny_keras_model):
    info = load_model_info(tiny_tflite_model)  # the edge loader accepts it
    assert info.labels == list(LABELS) and info.input_size == (48, 48)
    side = _sidecar(tiny_tflite_model)
    inp = side["input"]
    assert inp["channels"] == 1 and inp["dtype"] == "int8" and inp["range"] == [0, 255]
    assert inp["quantization"]["scale"] > 0 and isinstance(inp["quantization"]["zero_point"], int)
    assert side["output"]["dtype"] == "int8" and side["output"]["quantization"]["scale"] > 0
    assert side["output"]["kind"] == "probabilities"
    assert side["quantization"] == "int8"
    assert side["trained_on"] == "synthetic test faces (tests/conftest.py)"
    assert side["source_model"]["sha256"] == file_sha256(tiny_keras_model)
    # built with (p - 128) / 128: nothing to rewrite (tests/convert/test_exact_input.py)
    assert side["source_model"]["pixels"] == {"pixels": "(p - 128) / 128", "rewritten": False}
    calib = side["calibration"]
    assert calib["split"] == "train" and calib["n"] == 140 and calib["seed"] == 0
    assert calib["per_class"] == dict.fromkeys(LABELS, 20)
    assert side["file"]["sha256"] == file_sha256(tiny_tflite_model)
    assert {"tensorflow", "keras"} & set(side["converter"]) and side["created"]
    m = side["metrics"]
    assert m["evaluated_on"]["split"] == "test" and m["evaluated_on"]["n"] == 42
    assert set(m) >= {"accuracy", "float_accuracy", "agreement_with_float", "accuracy_drop_points"}
    float_side = _sidecar(tiny_tflite_model.with_name("tiny_float32.tflite"))
    assert float_side["input"]["quantization"] == {"scale": 0.0, "zero_point": 0}
    assert float_side["calibration"] is None and float_side["metrics"]["accuracy"] > 0


def test_int8_agrees_with_float_on_held_out_faces(tiny_tflite_model, tiny_fer):
    from deepfer.edge.model.classifier import EmotionClassifier

    test = load_fer2013(tiny_fer, ("test",), progress=False)["test"]
    int8 = EmotionClassifier(tiny_tflite_model).infer(test.x)
    flt = EmotionClassifier(tiny_tflite_model.with_name("tiny_float32.tflite")).infer(test.x)
    agreement = float((int8.argmax(1) == flt.argmax(1)).mean())
    assert agreement >= 0.9
    assert float((flt.argmax(1) == test.y).mean()) >= 0.8
    m = _sidecar(tiny_tflite_model)["metrics"]
    assert m["agreement_with_float"] == pytest.approx(agreement)
    assert m["accuracy_drop_points"] <= 1.0


def test_int8_runs_with_ai_edge_litert_without_tensorflow(tiny_tflite_model, tiny_fer):
    script = textwrap.dedent(
        f"""
        import sys
        for name in ("tensorflow", "keras", "tf_keras"):
            sys.modules[name] = None  # any import of them fails
        import numpy as np
        from deepfer.edge.model.classifier import EmotionClassifier
        from deepfer.data.fer2013 import load_fer2013
        test = load_fer2013({str(tiny_fer)!r}, ("test",), progress=False)["test"]
        clf = EmotionClassifier({str(tiny_tflite_model)!r})
        probs = clf.infer(test.x)
        assert probs.shape == (len(test), 7) and probs.dtype == np.float32
        loaded = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras") and sys.modules[m]]
        print(clf.runtime, clf.input_dtype, float((probs.argmax(1) == test.y).mean()), len(loaded))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    runtime, dtype, accuracy, tf_modules = proc.stdout.split()[-4:]
    assert runtime == "ai-edge-litert" and dtype == "int8"
    assert float(accuracy) >= 0.8 and tf_modules == "0"


def _convert(capsys, *args) -> tuple[int, str]:
    code = main(["convert", *map(str, args)])
    err = capsys.readouterr().err
    return code, err


def test_missing_corrupt_and_wrong_models_give_clear_errors(tmp_path, tiny_fer, capsys):
    code, err = _convert(
        capsys, tmp_path / "nope.keras", "--calibration-data", tiny_fer, "--out", tmp_path / "x"
    )
    assert code == 2 and "nope.keras: model file not found" in err

    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"this is not a zip archive" * 10)
    code, err = _convert(capsys, corrupt, "--calibration-data", tiny_fer, "--out", tmp_path / "x")
    assert code == 2 and "corrupt.keras: cannot load it as a Keras model" in err

    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    code, err = _convert(capsys, empty, "--calibration-data", tiny_fer, "--out", tmp_path / "x")
    assert code == 2 and "empty" in err and "0 bytes" in err

    tfl = tmp_path / "m.tflite"
    tfl.write_bytes(b"x")
    code, err = _convert(capsys, tfl, "--calibration-data", tiny_fer, "--out", tmp_path / "x")
    assert code == 2 and "already a TFLite model" in err
    assert not list(tmp_path.glob("x_*"))


def test_not_a_classifier_is_refused(tmp_path, tiny_fer, capsys):
    import keras

    inputs = keras.Input((48, 48, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same")(inputs))
    path = tmp_path / "autoencoder.keras"
    model.save(path)
    code, err = _convert(capsys, path, "--calibration-data", tiny_fer, "--out", tmp_path / "x")
    assert code == 2 and "not a DeepFER emotion classifier" in err and "(None, 48, 48, 1)" in err


def test_empty_calibration_folder(tmp_path, tiny_keras_model, capsys):
    empty = tmp_path / "calib"
    empty.mkdir()
    code, err = _convert(
        capsys, tiny_keras_model, "--calibration-data", empty, "--out", tmp_path / "x"
    )
    assert code == 2 and "calibration folder is empty" in err
    (empty / "train" / "happy").mkdir(parents=True)
    code, err = _convert(
        capsys, tiny_keras_model, "--calibration-data", empty, "--out", tmp_path / "x"
    )
    assert code == 2 and "hold no images" in err
    with pytest.raises(ConvertError, match="calibration data not found"):
        from deepfer.convert.quantize import convert_model

        convert_model(tiny_keras_model, tmp_path / "missing", tmp_path / "x")


def test_accuracy_drop_over_the_limit_exits_non_zero(tmp_path, tiny_keras_model, tiny_fer, capsys):
    # A negative allowance fails any model: the exit path without a genuinely bad quantisation.
    # Without float32 the check compares int8 with the Keras model itself.
    out = tmp_path / "m"
    code = main(
        [
            "convert",
            str(tiny_keras_model),
            "--calibration-data",
            str(tiny_fer),
            "--out",
            str(out),
            "--no-float32",
            "--calibration-size",
            "70",
            "--max-drop",
            "-1",
        ]
    )
    captured = capsys.readouterr()
    assert code == 3
    assert "int8 loses" in captured.err and "--force" in captured.err
    side = _sidecar(tmp_path / "m_int8.tflite")
    assert side["metrics"]["float_reference"] == tiny_keras_model.name
    assert side["metrics"]["agreement_with_float"] >= 0.9
    assert not (tmp_path / "m_float32.tflite").exists()


def test_training_from_copies_the_record_of_an_existing_sidecar(
    tmp_path, tiny_keras_model, tiny_tflite_model, tiny_fer, capsys
):
    """Re-converting a shipped model whose run folder is gone keeps what it was trained on."""
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"trained_on": "FER2013 (shipped)", "training": {"epochs": 10}}))
    out = tmp_path / "again"
    code, err = _convert(
        capsys, tiny_keras_model, "--calibration-data", tiny_fer, "--out", out,
        "--no-check", "--no-float32", "--training-from", old,
    )  # fmt: skip
    assert code == 0, err
    side = json.loads(out.with_name("again_int8.json").read_text())
    assert side["trained_on"] == "FER2013 (shipped)" and side["training"] == {"epochs": 10}
    code, err = _convert(
        capsys, tiny_keras_model, "--calibration-data", tiny_fer, "--out", out,
        "--no-check", "--training-from", tmp_path / "missing.json",
    )  # fmt: skip
    assert code == 2 and "missing.json: sidecar not found" in err
