"""TFLite runtimes and stateless helpers over an interpreter (pycoral style).

The interpreter comes from ai-edge-litert (preferred), else tflite-runtime,
else TensorFlow's ``tf.lite.Interpreter`` (imported only as the last resort,
never when one of the light runtimes works).
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from deepfer.edge.errors import ModelLoadError, RuntimeUnavailable

log = logging.getLogger(__name__)

#: Runtime name -> module holding ``Interpreter``; tried in this order by "auto".
RUNTIMES: dict[str, str] = {
    "ai-edge-litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow.lite",
}


def _import_interpreter(runtime: str):
    module = importlib.import_module(RUNTIMES[runtime])
    interpreter = getattr(module, "Interpreter", None)
    if interpreter is None and runtime == "tensorflow":
        # TF >= 2.20: the Interpreter is only on the lazily built ``tf.lite`` API module
        interpreter = getattr(
            getattr(importlib.import_module("tensorflow"), "lite", None), "Interpreter", None
        )
    if interpreter is None:
        raise ImportError(f"{RUNTIMES[runtime]} has no Interpreter")
    return interpreter


def available_runtimes() -> list[str]:
    """Runtimes whose module is installed (without importing TensorFlow)."""
    found = []
    for name, module in RUNTIMES.items():
        top = module.split(".")[0]
        if importlib.util.find_spec(top) is not None:
            found.append(name)
    return found


def make_interpreter(
    model_path: str | Path, num_threads: int | None = None, runtime: str = "auto"
) -> tuple[Any, str]:
    """Build and allocate an interpreter once; returns ``(interpreter, runtime_name)``."""
    path = Path(model_path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file not found")
    if runtime != "auto" and runtime not in RUNTIMES:
        raise RuntimeUnavailable(
            f"unknown runtime {runtime!r}; choose auto or {', '.join(RUNTIMES)}"
        )
    order = list(RUNTIMES) if runtime == "auto" else [runtime]
    threads = num_threads if num_threads and num_threads > 0 else (os.cpu_count() or 1)
    errors = []
    for name in order:
        if runtime == "auto" and name == "tensorflow" and errors and not _tf_installed():
            break
        try:
            interpreter_cls = _import_interpreter(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        try:
            interpreter = interpreter_cls(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"{path}: not a valid TFLite model ({exc})") from None
        except (AttributeError, TypeError) as exc:  # e.g. tflite-runtime 2.14 with numpy 2
            errors.append(f"{name}: {exc}")
            continue
        log.info("TFLite runtime: %s (%d thread(s)) for %s", name, threads, path.name)
        return interpreter, name
    raise RuntimeUnavailable(
        "no working TFLite runtime: install ai-edge-litert (pip install 'deepfer[edge]') "
        f"or tflite-runtime; tried {'; '.join(errors) or ', '.join(order)}"
    )


def _tf_installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def input_detail(interpreter, index: int = 0) -> dict:
    return interpreter.get_input_details()[index]


def output_detail(interpreter, index: int = 0) -> dict:
    return interpreter.get_output_details()[index]


def quant_params(detail: dict) -> tuple[float, int]:
    """(scale, zero_point) of a tensor; scale 0 means not quantised."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero_point)


def quantize(values: np.ndarray, detail: dict) -> np.ndarray:
    """Real values -> the tensor's dtype, using the tensor's own scale and zero point."""
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = quant_params(detail)
    if not np.issubdtype(dtype, np.integer) or scale == 0.0:
        return values.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    q = np.round(values.astype(np.float32) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    """The tensor's values as float32, for any integer dtype (int8, uint8, int16...)."""
    scale, zero_point = quant_params(detail)
    if np.issubdtype(values.dtype, np.integer) and scale != 0.0:
        return (values.astype(np.float32) - zero_point) * scale
    return values.astype(np.float32, copy=False)


def set_input(interpreter, values: np.ndarray, index: int = 0) -> None:
    detail = input_detail(interpreter, index)
    interpreter.set_tensor(detail["index"], quantize(values, detail))


def get_output(interpreter, index: int = 0) -> np.ndarray:
    detail = output_detail(interpreter, index)
    return dequantize(interpreter.get_tensor(detail["index"]), detail)


def resize_batch(interpreter, batch: int, index: int = 0) -> bool:
    """Set the input's batch size, if the model allows; returns whether it did."""
    detail = input_detail(interpreter, index)
    shape = list(detail["shape"])
    if shape[0] == batch:
        return True
    signature = list(detail.get("shape_signature", shape))
    if signature and signature[0] != -1:
        return False
    shape[0] = batch
    interpreter.resize_tensor_input(detail["index"], shape)
    interpreter.allocate_tensors()
    return True
