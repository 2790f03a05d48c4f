"""Shared fixtures: small data the tests make themselves, the real data when DEEPFER_DATA is set,
and one tiny trained model (Keras and TFLite with sidecar) per test session.

Tests are grouped by folder (tests/edge, tests/train, tests/convert, tests/e2e, ...); each
test gets its folder's marker (``pytest -m edge``). tests/edge runs on an edge-only install:
its ``tiny_tflite_model`` is the committed tests/assets model (tests/edge/conftest.py), and the
Keras fixtures here skip when Keras is not installed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import soak_run
from synthetic import make_tiny_fer, train_tiny_keras_model

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TESTS = Path(__file__).resolve().parent
#: Test folders whose name is the marker their tests get.
FOLDER_MARKERS = ("edge", "train", "convert", "evaluate", "data", "e2e")


def pytest_collection_modifyitems(config, items):
    for item in items:
        try:
            folder = Path(str(item.fspath)).resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if folder in FOLDER_MARKERS:
            item.add_marker(getattr(pytest.mark, folder))
    # the soak runs in the background from the end of collection (soak_run.py): its test,
    # which waits for the result, goes last
    items.sort(key=lambda item: item.name == soak_run.SOAK_TEST)


def pytest_collection_finish(session):
    soak_run.start_early(session.config, session.items)


def pytest_sessionfinish(session):
    soak_run.finish(session.config)


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path_factory, monkeypatch) -> Path:
    """Each test (and the daemons it starts) keeps its state (the MQTT outbox, seq) in a folder
    of its own, never in ~/.local/state or a systemd StateDirectory."""
    folder = tmp_path_factory.mktemp("state")
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(folder))
    return folder / "deepfer"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder (DEEPFER_DATA); skips the test when it is not set."""
    value = os.environ.get("DEEPFER_DATA")
    if not value:
        pytest.skip("DEEPFER_DATA is not set: point it at the shared data folder to run this test")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"DEEPFER_DATA={value} is not a folder")
    return path


@pytest.fixture(scope="session")
def media_dir(data_dir: Path) -> Path:
    path = data_dir / "media"
    if not path.is_dir():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="session")
def tiny_fer(tmp_path_factory) -> Path:
    """A tiny FER2013-like folder with train/ and test/."""
    return make_tiny_fer(tmp_path_factory.mktemp("tiny_fer"))


@pytest.fixture(scope="session")
def tiny_keras_model(tmp_path_factory, tiny_fer) -> Path:
    """A deepfer-edge model trained a few epochs on the tiny set (seconds; needs Keras)."""
    pytest.importorskip("keras")
    out = tmp_path_factory.mktemp("tiny_model") / "tiny.keras"
    return train_tiny_keras_model(tiny_fer, out)


@pytest.fixture(scope="session")
def tiny_tflite_model(tmp_path_factory, tiny_keras_model, tiny_fer) -> Path:
    """The tiny model converted by ``deepfer convert``'s API: ``tiny_int8.tflite`` (full int8)
    with its complete sidecar, and ``tiny_float32.tflite`` beside it; both checked on tiny_fer's test split.
    (tests/edge uses the committed copy of such a model instead: no TensorFlow there.)"""
    from deepfer.convert.quantize import convert_model

    result = convert_model(
        tiny_keras_model,
        tiny_fer,
        tmp_path_factory.mktemp("tiny_tflite") / "tiny",
        n_calibration=140,
        formats=("int8", "float32"),
        trained_on="synthetic test faces (tests/conftest.py)",
    )
    return result.path("int8")
