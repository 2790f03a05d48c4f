"""TFLite runtimes and stateless helpers over an interpreter (pycoral style).

The interpreter comes from ai-edge-litert (preferred), else tflite-runtime,
else TensorFlow's ``tf.lite.Interpreter`` (imported only as the last resort,
never when one of the light runtimes works). A model a runtime is known to crash on is refused
(:func:`runtime_problem`).
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
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
        problem = runtime_problem(path, interpreter, name)
        if problem:
            raise ModelLoadError(problem)
        log.info("TFLite runtime: %s (%d thread(s)) for %s", name, threads, path.name)
        return interpreter, name
    raise RuntimeUnavailable(
        "no working TFLite runtime: install ai-edge-litert (pip install 'deepfer[edge]') "
        f"or tflite-runtime; tried {'; '.join(errors) or ', '.join(order)}"
    )


#: ``platform.machine()`` of 64-bit ARM (a Raspberry Pi 3/4/5 with a 64-bit OS, Linux / macOS)
ARM64 = ("aarch64", "arm64")


def bias_less_int8_fully_connected(interpreter) -> list[int] | None:
    """Indices of the int8 FULLY_CONNECTED ops without a bias, from the interpreter's own op
    list (``_get_ops_details``; None where the runtime cannot list its ops)."""
    try:
        ops = interpreter._get_ops_details()
    except (AttributeError, TypeError, ValueError, RuntimeError):
        return None
    dtypes: dict[int, Any] = {}
    found = []
    for op in ops:
        inputs = [int(i) for i in op.get("inputs", [])]
        if op.get("op_name") != "FULLY_CONNECTED" or not inputs:
            continue
        if len(inputs) > 2 and inputs[2] >= 0:
            continue
        types = list(op.get("operand_types") or [])
        if not types:  # older runtimes: the input tensor's own type
            if not dtypes:
                dtypes = {d["index"]: d["dtype"] for d in interpreter.get_tensor_details()}
            types = [dtypes.get(inputs[0])]
        if types[0] is not None and np.dtype(types[0]) == np.int8:
            found.append(int(op.get("index", -1)))
    return found


def runtime_problem(
    path: str | Path, interpreter, runtime_name: str, machine: str | None = None
) -> str | None:
    """Why ``runtime_name`` cannot run this model on ``machine`` (default: this one), or None.

    tflite-runtime (2.14.0, its last release) crashes with a segmentation fault on aarch64 in
    an int8 FULLY_CONNECTED without a bias over more than one row: the flip average's mirror
    in DeepFER models converted before 2026-12-07. The process would die at the first face;
    this says why instead. ``deepfer convert`` now gives such ops a zero bias
    (:mod:`deepfer.convert.zero_bias`)."""
    machine = (machine if machine is not None else platform.machine()).lower()
    if runtime_name != "tflite-runtime" or machine not in ARM64:
        return None
    ops = bias_less_int8_fully_connected(interpreter)
    if not ops:
        return None
    return (
        f"{Path(path)}: has {len(ops)} int8 FULLY_CONNECTED op(s) without a bias (op "
        f"{', '.join(map(str, ops))}), which tflite-runtime crashes on (segmentation fault) on "
        f"{machine}; use ai-edge-litert (pip install ai-edge-litert; model.runtime auto or "
        "ai-edge-litert), or re-convert the model with a current `deepfer convert` (or patch "
        "it: python -m deepfer.convert.zero_bias MODEL.tflite --check-data FER2013_DIR), "
        "which gives those ops a zero bias"
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
