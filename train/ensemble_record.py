"""The record ``deepfer ensemble`` writes beside the model it makes (``E.ensemble.json`` for
``E.keras``: members, weights, validation figures): the one owner of its format. ``deepfer
convert`` reads it for an ensemble's sidecar, a distilled run's summary for its teacher.
Nothing here imports TensorFlow."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path


def ensemble_record_path(model_path: str | Path) -> Path:
    """``E.keras`` -> ``E.ensemble.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name.removesuffix(".keras") + ".ensemble.json")


def write_ensemble_record(model_path: str | Path, record: dict) -> Path:
    path = ensemble_record_path(model_path)
    path.write_text(json.dumps(record, indent=2))
    return path


def read_ensemble_record(model_path: str | Path) -> dict:
    """The record ``deepfer ensemble`` wrote beside ``model_path``; ``{}`` when there is none
    (or it describes another file)."""
    record = read_json_object(ensemble_record_path(model_path))
    if Path(str(record.get("keras", ""))).name != Path(model_path).name:
        return {}
    return record


def ensemble_training_info(record: dict) -> tuple[str, dict]:
    """What a converted ensemble's sidecar says under ``trained_on`` and ``training``."""
    members = record["members"]
    sources = sorted({m.get("trained_on") or "unknown" for m in members})
    text = f"ensemble of {len(members)} models; " + "; ".join(sources)
    training = {
        "ensemble": [
            {k: m[k] for k in ("path", "sha256", "weight", "val_accuracy", "training") if k in m}
            for m in members
        ],
        "val_accuracy": record.get("val_accuracy"),
        "selected_on": record.get("selected_on"),
    }
    return text, {k: v for k, v in training.items() if v is not None}


def read_json_object(path: Path) -> dict:
    """A JSON file's object, or ``{}`` when missing, unreadable or not an object (also the run
    folder's reader of its own JSON files)."""
    with contextlib.suppress(OSError, json.JSONDecodeError):
        value = json.loads(path.read_text())
        if isinstance(value, dict):
            return value
    return {}
