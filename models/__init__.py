"""The trained models DeepFER ships, each ``.tflite`` with its JSON sidecar."""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = MODELS_DIR / "deepfer_int8.tflite"


def default_model_path() -> Path:
    """Path of the shipped default model (int8 TFLite)."""
    return DEFAULT_MODEL
