"""The JSON sidecar every DeepFER model carries (``<stem>.json`` beside ``<stem>.tflite``).

It records the labels in output order, the input size, what the model was
trained on and its measured metrics. Tools refuse a model without one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepfer.edge.errors import ModelInfoError

SIDECAR_FORMAT = "deepfer-model/1"
REQUIRED_KEYS = ("labels", "input", "trained_on", "metrics")
#: ``output.kind``: what the scores are (``scores``: not said; softmaxed unless they are
#: probabilities already)
OUTPUT_KINDS = ("probabilities", "logits", "scores")


@dataclass
class ModelInfo:
    path: Path
    labels: list[str]
    input_size: tuple[int, int]
    trained_on: str
    metrics: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        name = self.raw.get("name")
        return name if isinstance(name, str) and name else self.path.stem

    @property
    def output_kind(self) -> str | None:
        """``output.kind``: ``probabilities``, ``logits`` (softmaxed by DeepFER) or
        ``scores`` (not said: outputs that are not probabilities are softmaxed), if given."""
        output = self.raw.get("output")
        kind = output.get("kind") if isinstance(output, dict) else None
        return kind if isinstance(kind, str) else None


def sidecar_path(model_path: str | Path) -> Path:
    """``models/x.tflite`` -> ``models/x.json``."""
    return Path(model_path).with_suffix(".json")


def load_model_info(model_path: str | Path) -> ModelInfo:
    """Read and check a model's sidecar; raises :class:`ModelInfoError` with a clear message."""
    model_path = Path(model_path)
    side = sidecar_path(model_path)
    if not side.is_file():
        raise ModelInfoError(
            f"{model_path}: no sidecar {side.name} beside it. DeepFER needs the model's labels "
            "and input size; `deepfer convert` writes the sidecar, or copy the .json that came "
            "with the model."
        )
    try:
        raw = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelInfoError(f"{side}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ModelInfoError(f"{side}: not a sidecar (JSON nested too deep)") from None
    if not isinstance(raw, dict):
        raise ModelInfoError(f"{side}: expected a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise ModelInfoError(f"{side}: missing key(s) {', '.join(missing)}")
    labels = raw["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ModelInfoError(f"{side}: labels must be a non-empty list of names, got {labels!r}")
    if len(set(labels)) != len(labels):
        raise ModelInfoError(f"{side}: labels must be different names, got {labels!r}")
    size = raw["input"].get("size") if isinstance(raw["input"], dict) else None
    if not (
        isinstance(size, list)
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise ModelInfoError(f"{side}: input.size must be [height, width], got {size!r}")
    output = raw.get("output")
    kind = output.get("kind") if isinstance(output, dict) else None
    if kind is not None and kind not in OUTPUT_KINDS:
        raise ModelInfoError(
            f"{side}: output.kind must be one of {', '.join(OUTPUT_KINDS)}, got {kind!r}"
        )
    metrics = raw.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise ModelInfoError(f"{side}: metrics must be an object, got {metrics!r}")
    return ModelInfo(
        path=model_path,
        labels=list(labels),
        input_size=(size[0], size[1]),
        trained_on=str(raw["trained_on"]),
        metrics=dict(metrics),
        raw=raw,
    )


def write_sidecar(model_path: str | Path, info: dict[str, Any]) -> Path:
    """Write ``info`` as the model's sidecar (adds the format tag)."""
    data = {"format": SIDECAR_FORMAT, **info}
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ModelInfoError(f"sidecar for {model_path}: missing key(s) {', '.join(missing)}")
    path = sidecar_path(model_path)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def update_metrics(model_path: str | Path, metrics: dict[str, Any]) -> Path:
    """Merge measured ``metrics`` into an existing sidecar."""
    path = sidecar_path(model_path)
    data = json.loads(path.read_text())
    data.setdefault("metrics", {}).update(metrics)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
