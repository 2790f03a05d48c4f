"""The JSON sidecar of a converted model: labels, input and output tensors, what it was trained
and calibrated on, its ops, file hash and the converter's versions (the edge reads it with
:func:`deepfer.edge.model.sidecar.load_model_info`)."""

from __future__ import annotations

import contextlib
import datetime as _dt
from pathlib import Path

from deepfer.convert.source import SourceModel
from deepfer.data.sampling import CalibrationSet
from deepfer.edge.paths import file_sha256


def _versions() -> dict:
    from importlib import metadata

    from deepfer.edge import __version__

    out = {"deepfer": __version__}
    for dist in ("tensorflow", "tensorflow-cpu", "keras", "ai-edge-litert"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def compose(
    source: SourceModel,
    fmt: str,
    description: str,
    path: Path,
    details: dict,
    calibration: CalibrationSet | None,
) -> dict:
    """The sidecar of ``path``, converted from ``source`` to ``fmt``; ``details`` are
    :func:`deepfer.convert.inspect.inspect_tflite`'s. Metrics are added later."""
    h, w = source.input_size
    return {
        "name": path.stem,
        "labels": source.labels,
        "input": {
            "size": [h, w],
            "channels": source.channels,
            "dtype": details["input"]["dtype"],
            "range": [0, 255],
            "shape": details["input"]["shape"],
            "quantization": details["input"]["quantization"],
        },
        "output": {
            "dtype": details["output"]["dtype"],
            "shape": details["output"]["shape"],
            "quantization": details["output"]["quantization"],
            "kind": source.output_kind
            or (
                "probabilities"
                if details["ops"] and details["ops"][-1]["op"] == "SOFTMAX"
                else "scores"
            ),
        },
        "quantization": fmt,
        "quantization_description": description,
        "trained_on": source.trained_on,
        "training": source.training,
        "source_model": {
            "path": str(source.path),
            "sha256": source.sha256,
            "name": source.model.name,
            "parameters": int(source.model.count_params()),
            "pixels": source.pixels,
        },
        "calibration": calibration.describe() if calibration is not None else None,
        "ops": sorted({op["op"] for op in details["ops"]}),
        "file": {"bytes": path.stat().st_size, "sha256": file_sha256(path)},
        "converter": _versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "metrics": {},
    }
