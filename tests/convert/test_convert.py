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
    assert calib["layout"] == "split folders"
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
    assert code == 2 and "corrupt.keras: not a Keras model file (a .keras file is a zip" in err
    assert "File not found" not in err  # what Keras itself says of a corrupt .keras

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
    from deepfer.evaluate.predictors import EvaluateError, load_predictor

    with pytest.raises(EvaluateError) as said:  # evaluate and benchmark: the same words
        load_predictor(path)
    assert str(said.value) in err and "needs a sidecar beside it" in err


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


def test_outputs_and_options_are_checked_before_anything_is_converted(
    tmp_path, tiny_keras_model, tiny_fer, capsys
):
    notes = tmp_path / "notes.md"
    notes.write_text("hello")
    face = next((tiny_fer / "test" / "happy").iterdir())
    base = [tiny_keras_model, "--calibration-data", tiny_fer]
    cases = [
        (["--out", notes / "x"], f"--out {notes / 'x'}: cannot write {notes / 'x_int8.tflite'}: "
         f"cannot be made: {notes} is a file, not a folder"),
        (["--out", tmp_path / "m", "--check-data", face],
         f"--check-data {face}: expected fer2013.csv or a folder"),
        (["--out", tmp_path / "m", "--calibration-data", face],
         f"--calibration-data {face}: expected fer2013.csv or a folder"),
        (["--out", tmp_path / "m", "--calibration-size", "0"], "--calibration-size 0: must be"),
        (["--out", tmp_path / "m", "--check-size", "-1"], "--check-size -1: must be at least 0"),
        # found after loading the model and the faces, still before converting
        (["--out", tmp_path / "m", "--check-size", "3"],
         "--check-size 3: fewer faces than the 7 classes in"),
    ]  # fmt: skip
    if Path("/proc").is_dir():  # refuses new files even to root: found by trying
        cases.append((["--out", "/proc/deepfer_x"], "cannot write in /proc"))
    for extra, message in cases:
        code, err = _convert(capsys, *base, *extra)
        assert code == 2 and message in err, (extra, err)
        assert err.count("\n") == 1 and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.md"]  # nothing written


def test_output_paths_of_a_stem_and_of_a_folder(tmp_path):
    from deepfer.convert.quantize import output_paths

    model = tmp_path / "runs" / "deepfer-edge.keras"
    assert output_paths(tmp_path / "models" / "v2", ["int8"], model) == {
        "int8": tmp_path / "models" / "v2_int8.tflite"
    }
    assert output_paths(tmp_path / "v2.tflite", ["float32"], model)["float32"] == (
        tmp_path / "v2_float32.tflite"
    )
    # a folder: an existing one, or one written with a trailing slash
    for out in (str(tmp_path), f"{tmp_path}/", f"{tmp_path}/new/"):
        folder = Path(out.rstrip("/"))
        assert output_paths(out, ["int8", "float32"], model) == {
            "int8": folder / "deepfer-edge_int8.tflite",
            "float32": folder / "deepfer-edge_float32.tflite",
        }


def test_few_calibration_faces_warn_and_a_folder_out_takes_the_model_name(
    tmp_path, tiny_keras_model, tiny_fer, capsys, caplog
):
    """2 classes of 3 faces, 350 asked for: both warnings. --out new/ writes
    new/<model stem>_int8.tflite; a plain class folder as --check-data is all of it, and
    --check-size gives exactly that many faces."""
    import shutil

    few = tmp_path / "few"
    for label in ("happy", "sad"):
        (few / "train" / label).mkdir(parents=True)
        for src in sorted((tiny_fer / "train" / label).iterdir())[:3]:
            shutil.copy(src, few / "train" / label / src.name)
    out = tmp_path / "new"
    code = main(
        ["convert", str(tiny_keras_model), "--calibration-data", str(few), "--out", f"{out}/",
         "--no-float32", "--check-data", str(tiny_fer / "test"), "--check-size", "10",
         "--force"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("only 6 calibration faces found of the 350 asked for" in w for w in warned)
    assert any("no calibration faces of angry, disgust, fear, neutral, surprise" in w
               for w in warned)  # fmt: skip
    assert "calibration: 6 real faces of 350 asked for" in captured.out
    model = out / f"{tiny_keras_model.stem}_int8.tflite"
    assert sorted(p.name for p in out.iterdir()) == sorted([model.name, f"{model.stem}.json"])
    assert not list(tmp_path.glob("new_*"))
    evaluated = _sidecar(model)["metrics"]["evaluated_on"]
    # a folder of class folders has no FER2013 split: none is named (it said "all")
    assert evaluated["layout"] == "class folders" and "split" not in evaluated
    assert evaluated["n"] == 10
    assert "class folders; stratified sample of 10 faces)" in captured.out
    assert "top-1 agreement (at least 90%)" in captured.out


def test_a_users_one_folder_used_up_by_calibration_says_what_to_do(
    tmp_path, tiny_keras_model, tiny_fer, capsys
):
    """A user converts with their own class folder as --calibration-data: it holds fewer
    faces than --calibration-size, so calibration takes them all and none are left for the
    int8-vs-float check. The error said only 'no faces left for the held-out check'."""
    import shutil

    mine = tmp_path / "my_faces"
    for label in ("happy", "sad"):
        (mine / label).mkdir(parents=True)
        for src in sorted((tiny_fer / "train" / label).iterdir())[:3]:
            shutil.copy(src, mine / label / src.name)
    out = tmp_path / "m"
    code, err = _convert(capsys, tiny_keras_model, "--calibration-data", mine, "--out", out)
    assert code == 2
    assert err.strip() == (
        f"deepfer convert: error: {mine}: no faces left for the held-out check: calibration "
        "took all 6 faces of its class folders and it has no test split; give held-out faces "
        "with --check-data FOLDER, a smaller --calibration-size, or --no-check"
    )
    assert not list(tmp_path.glob("m_*"))


def test_a_users_class_folders_are_named_as_such_in_the_sidecar(
    tmp_path, tiny_keras_model, tiny_fer, capsys
):
    """Calibrated and checked on a user's one folder of class folders: the sidecar says the
    folder and its layout, not the FER2013 split names 'train' (calibration) and 'all'."""
    import shutil

    mine = tmp_path / "my_faces"
    for folder, label in (("Happy", "happy"), ("sad", "sad"), ("neutral ", "neutral")):
        shutil.copytree(tiny_fer / "train" / label, mine / folder)
    out = tmp_path / "m"
    code, _ = _convert(
        capsys, tiny_keras_model, "--calibration-data", mine, "--out", out,
        "--calibration-size", "30", "--no-float32", "--force",
    )  # fmt: skip
    assert code == 0
    side = _sidecar(tmp_path / "m_int8.tflite")
    calib = side["calibration"]
    assert calib["source"] == str(mine) and calib["layout"] == "class folders"
    assert "split" not in calib and calib["n"] == 30
    evaluated = side["metrics"]["evaluated_on"]
    assert evaluated == {
        "source": str(mine),
        "layout": "class folders",
        "n": 3 * 24 - 30,  # (24 faces a class)
        "note": "faces of the class folders not used for calibration",
    }


def test_int8_that_disagrees_with_float_fails_the_check(
    tmp_path, tiny_keras_model, tiny_fer, capsys, monkeypatch
):
    """An int8 model whose answers are not float's (here shifted by one class) fails
    --min-agreement, exit 3 as --max-drop does, even with the accuracy drop allowed."""
    import numpy as np

    from deepfer.convert import check

    real = check.predict_probs

    def shifted(model, x, *args, **kwargs):
        probs = real(model, x, *args, **kwargs)
        return np.roll(probs, 1, axis=1) if str(model).endswith("_int8.tflite") else probs

    monkeypatch.setattr(check, "predict_probs", shifted)
    argv = ["convert", str(tiny_keras_model), "--calibration-data", str(tiny_fer),
            "--out", str(tmp_path / "m"), "--calibration-size", "70", "--max-drop", "100",
            "--no-float32"]  # fmt: skip
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "int8 gives float's top-1 class on only 0.00% of the faces" in err
    assert "at least 90% required, --min-agreement" in err and "--force" in err
    side = _sidecar(tmp_path / "m_int8.tflite")
    assert side["metrics"]["agreement_with_float"] == 0.0
    assert main([*argv, "--min-agreement", "0"]) == 0
    assert "0.00% top-1 agreement (at least 0%)" in capsys.readouterr().out


def test_a_check_on_class_folders_without_some_classes_stores_null_f1(
    tmp_path, tiny_keras_model, tiny_fer, capsys
):
    """Checked on a user's class folders without disgust, fear, sad and surprise: the sidecar
    stored 0.0 F1 for them and a macro-F1 that counted a class only predicted as 0. Now null,
    ``absent_classes`` and ``macro_f1_over`` as deepfer benchmark and evaluate report, with
    evaluate's figures on the same faces; the edge loader still reads the sidecar."""
    import shutil

    mine = tmp_path / "mine"
    for folder, label in (("Happy", "happy"), ("anger", "angry"), ("neutral ", "neutral")):
        shutil.copytree(tiny_fer / "test" / label, mine / folder)
    out = tmp_path / "m"
    code, err = _convert(capsys, tiny_keras_model, "--calibration-data", tiny_fer, "--out", out,
                         "--calibration-size", "70", "--check-data", mine, "--force")  # fmt: skip
    assert code == 0, err
    absent, present = ["disgust", "fear", "sad", "surprise"], ["angry", "happy", "neutral"]
    for fmt in ("int8", "float32"):
        model = tmp_path / f"m_{fmt}.tflite"
        m = _sidecar(model)["metrics"]
        assert m["evaluated_on"]["layout"] == "class folders"
        assert m["absent_classes"] == absent and m["macro_f1_over"] == present
        assert [k for k, v in m["per_class_f1"].items() if v is None] == absent
        assert m["macro_f1"] == pytest.approx(sum(m["per_class_f1"][k] for k in present) / 3)
        assert load_model_info(model).raw["metrics"] == m  # the edge loader takes null
        assert main(["evaluate", str(model), "--data", str(mine), "--out", str(tmp_path / fmt),
                     "--tta", "none", "--no-progress"]) == 0  # fmt: skip
        report = json.loads((tmp_path / fmt / "report.json").read_text())
        assert report["accuracy"] == pytest.approx(m["accuracy"], abs=1e-12)
        assert report["macro_f1"] == pytest.approx(m["macro_f1"], abs=1e-12)
        assert {k: v["f1"] for k, v in report["per_class"].items()} == m["per_class_f1"]
        assert report["absent_classes"] == absent
