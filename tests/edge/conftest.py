"""Edge tests run on an edge-only install (no TensorFlow): the tiny model is the committed one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="session")
def tiny_tflite_model(tmp_path_factory) -> Path:
    """``tiny_int8.tflite`` (full int8) with its sidecar and ``tiny_float32.tflite`` beside it,
    copied from tests/assets (made by tests/assets/make_tiny_model.py) so tests may not
    change the committed files."""
    folder = tmp_path_factory.mktemp("tiny_tflite")
    for name in ("tiny_int8", "tiny_float32"):
        for suffix in (".tflite", ".json"):
            source = ASSETS / (name + suffix)
            if not source.is_file():
                pytest.fail(f"{source} is missing: run python tests/assets/make_tiny_model.py")
            shutil.copy(source, folder / source.name)
    return folder / "tiny_int8.tflite"
