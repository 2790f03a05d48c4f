"""The trained models DeepFER ships, each ``.tflite`` with its JSON sidecar."""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = MODELS_DIR / "deepfer_int8.tflite"


def default_model_path() -> Path:
    """Path of the shipped default model (int8 TFLite)."""
    return DEFAULT_MODEL


def shipped_names() -> list[str]:
    """Names of the shipped ``.tflite`` models present in this install (``deepfer_int8``,
    ``deepfer-single_int8``; float32 references only in a checkout)."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.tflite"))


def shipped_model(name: str) -> Path | None:
    """The shipped model called ``name`` (``deepfer-single_int8``, with or without
    ``.tflite``), or None when there is none by that name. A name with a folder in it is a
    path, never a shipped name."""
    if not name or "/" in name or "\\" in name:
        return None
    path = MODELS_DIR / (name if name.endswith(".tflite") else f"{name}.tflite")
    return path if path.is_file() else None
