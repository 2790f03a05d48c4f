"""The checks evaluate, benchmark and convert share: outputs that cannot be written, an
exact-size stratified sample, Keras files that are not Keras models, a folder given as the
model. Pure and fast: no model is loaded."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from deepfer.evaluate.model_file import keras_file_problem
from deepfer.evaluate.outputs import check_outputs, file_problem, folder_problem
from deepfer.evaluate.predictors import (
    EvaluateError,
    plain_numbers,
    resolve_model_file,
)
from deepfer.evaluate.subset import stratified_sample

#: A folder in which nothing can be made, whoever runs the tests (root included).
PROC = Path("/proc")
needs_proc = pytest.mark.skipif(not PROC.is_dir(), reason="no /proc here")


def test_file_and_folder_problems(tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("hello")
    assert file_problem(tmp_path / "new" / "deeper" / "x.json") is None  # folders made later
    assert file_problem(notes) is None  # overwritten
    assert "is a folder" in file_problem(tmp_path)
    assert "notes.md is a file, not a folder" in file_problem(notes / "p.png")
    assert folder_problem(tmp_path / "new" / "deeper") is None
    assert folder_problem(tmp_path) is None
    assert folder_problem(notes) == "is a file, not a folder"
    assert "notes.md is a file, not a folder" in folder_problem(notes / "sub")
    assert not list(tmp_path.glob(".deepfer-write-check-*"))  # the probe file is removed


@needs_proc
def test_a_folder_that_refuses_new_files_is_found_by_trying():
    # root may write anywhere by permissions; /proc still refuses a new file
    assert "cannot write in /proc" in file_problem(PROC / "deepfer_x.md")
    assert "cannot write in /proc" in folder_problem(PROC / "evx")


def test_check_outputs_names_the_option(tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("x")
    ok = [("--json", tmp_path / "a.json", "file"), ("--plot", None, "file")]
    check_outputs(ok, EvaluateError)
    with pytest.raises(EvaluateError, match=r"^--out .*notes.md: is a file, not a folder$"):
        check_outputs([*ok, ("--out", notes, "folder")], EvaluateError)
    with pytest.raises(EvaluateError, match=r"^--plot .*p.png: cannot be made: .*notes.md is"):
        check_outputs([("--plot", notes / "p.png", "file")], EvaluateError)


def test_stratified_sample_has_exactly_n_faces():
    y = np.repeat(np.arange(7), [40, 4, 30, 60, 45, 30, 20])
    for n in (7, 10, 14, 100, 228):
        idx = stratified_sample(y, n, seed=1)
        assert len(idx) == n and len(np.unique(idx)) == n
        assert set(y[idx]) == set(range(7))  # every class kept
        np.testing.assert_array_equal(idx, stratified_sample(y, n, seed=1))  # deterministic
    counts = np.bincount(y[stratified_sample(y, 100)], minlength=7)
    assert np.abs(counts - 100 * np.bincount(y) / len(y)).max() < 1.5  # in proportion
    assert len(stratified_sample(y, 10_000)) == len(y)
    with pytest.raises(ValueError, match="one of each of the 7 classes"):
        stratified_sample(y, 3)


def test_keras_files_that_are_not_keras_models(tmp_path):
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    assert keras_file_problem(empty) == "not a Keras model file (the file is empty: 0 bytes)"
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"hello")
    assert "a .keras file is a zip archive" in keras_file_problem(junk)
    tflite = tmp_path / "model.keras"
    tflite.write_bytes(b"\x1c\0\0\0TFL3" + b"\0" * 100)
    assert "it is a TFLite model" in keras_file_problem(tflite)
    h5 = tmp_path / "junk.h5"
    h5.write_bytes(b"x" * 2000)
    assert "HDF5" in keras_file_problem(h5)
    real_h5 = tmp_path / "ok.h5"
    real_h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    assert keras_file_problem(real_h5) is None
    with zipfile.ZipFile(tmp_path / "ok.keras", "w") as z:
        z.writestr("config.json", "{}")
    assert keras_file_problem(tmp_path / "ok.keras") is None
    user_block = tmp_path / "user_block.h5"
    user_block.write_bytes(b"\0" * 512 + b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    assert keras_file_problem(user_block) is None
    assert keras_file_problem(tmp_path / "missing.keras") == "no such file"
    assert keras_file_problem(tmp_path) == "a folder, not a model file"
    (tmp_path / "model").write_bytes(b"x" * 10)
    assert "(a Keras file other than .keras is HDF5" in keras_file_problem(tmp_path / "model")
    with zipfile.ZipFile(tmp_path / "no_config.keras", "w") as z:
        z.writestr("hello.txt", "hi")
    assert "holds no config.json" in keras_file_problem(tmp_path / "no_config.keras")


def test_a_folder_given_as_the_model(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(EvaluateError, match=r"run: a folder; give the model file in it \(no "):
        resolve_model_file(run, EvaluateError)
    (run / "m_int8.tflite").write_bytes(b"x")
    (run / "._m_int8.tflite").write_bytes(b"\x00\x05\x16\x07")  # macOS's, beside a copy
    assert resolve_model_file(run, EvaluateError) == run / "m_int8.tflite"
    (run / "m_float32.tflite").write_bytes(b"x")
    with pytest.raises(EvaluateError, match="found m_float32.tflite, m_int8.tflite"):
        resolve_model_file(run, EvaluateError)
    # one model saved twice (a run folder's .keras and .h5): the .keras
    keras_run = tmp_path / "keras_run"
    (keras_run / "checkpoints").mkdir(parents=True)
    for name in ("deepfer-edge.h5", "deepfer-edge.keras", "history.csv"):
        (keras_run / name).write_bytes(b"x")
    assert resolve_model_file(keras_run, EvaluateError) == keras_run / "deepfer-edge.keras"
    # convert's rule for a run folder: the model its summary names (from where training ran)
    (keras_run / "deepfer-edge-swa1.keras").write_bytes(b"x")
    with pytest.raises(EvaluateError, match="found deepfer-edge-swa1.keras, deepfer-edge.h5, "):
        resolve_model_file(keras_run, EvaluateError)
    best = lambda folder: Path("runs/elsewhere/deepfer-edge.keras")  # noqa: E731
    assert resolve_model_file(keras_run, EvaluateError, best=best) == (
        keras_run / "deepfer-edge.keras"
    )
    assert resolve_model_file(run / "m_int8.tflite", EvaluateError) == run / "m_int8.tflite"


def test_numpy_scalars_in_messages_are_plain_numbers():
    text = "input shape [np.int32(1), np.int32(48), np.int64(-1)] vs np.float32(0.5)"
    assert plain_numbers(text) == "input shape [1, 48, -1] vs 0.5"
