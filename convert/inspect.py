"""What a ``.tflite`` file holds: input and output tensors, ops and their tensor types, and the
check that an int8 model is full-integer. Runs on the light TFLite runtime (no TensorFlow
unless that is the only runtime installed)."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import numpy as np

from deepfer.convert.errors import ConvertError

log = logging.getLogger(__name__)

#: Tensor types allowed in a full-integer model (int32: biases and shape arithmetic).
INTEGER_TYPES = {"int8", "int16", "int32", "int64", "bool"}


def inspect_tflite(path: str | Path) -> dict:
    """Input/output tensors and the op list of a ``.tflite`` file (light runtime, no TF)."""
    from deepfer.edge.model import runtime

    interpreter, runtime_name = runtime.make_interpreter(path, num_threads=1)
    inp = runtime.input_detail(interpreter)
    out = runtime.output_detail(interpreter)
    ops = _op_details(path, runtime_name)

    def tensor(detail: dict) -> dict:
        scale, zero_point = runtime.quant_params(detail)
        return {
            "shape": [int(v) for v in detail.get("shape_signature", detail["shape"])],
            "dtype": np.dtype(detail["dtype"]).name,
            "quantization": {"scale": scale, "zero_point": zero_point},
        }

    return {"input": tensor(inp), "output": tensor(out), "ops": ops, "runtime": runtime_name}


def _op_details(path: str | Path, runtime_name: str) -> list[dict]:
    """Ops of the model as written (no delegate), with their tensor types.

    The interpreters have no public op listing; ``_get_ops_details`` is the one they all
    share (tflite-runtime, ai-edge-litert and tf.lite). When it fails, the list is empty
    and :func:`check_full_integer` refuses the model rather than pass it unchecked.
    """
    from deepfer.edge.model.runtime import RUNTIMES

    if runtime_name == "tensorflow":
        import tensorflow as tf

        interpreter_cls = tf.lite.Interpreter
        resolver = getattr(tf.lite.experimental, "OpResolverType", None)
    else:
        module = importlib.import_module(RUNTIMES[runtime_name])
        interpreter_cls = module.Interpreter
        resolver = getattr(module, "OpResolverType", None)
    kwargs: dict = {}
    if resolver is not None:
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = interpreter_cls(model_path=str(path), **kwargs)
        details = interpreter._get_ops_details()
    except (AttributeError, TypeError, ValueError, RuntimeError) as exc:
        log.warning("%s: could not list the ops (%s)", path, exc)
        return []
    ops = []
    for op in details:
        types = {np.dtype(t).name for t in list(op.get("operand_types", [])) if t is not None}
        types |= {np.dtype(t).name for t in list(op.get("result_types", [])) if t is not None}
        ops.append({"op": str(op["op_name"]), "types": sorted(types)})
    return ops


def check_full_integer(path: Path, details: dict) -> None:
    """Raise unless the model is int8 in and out, builtin ops only, no float tensor in any op."""
    problems = []
    for side in ("input", "output"):
        if details[side]["dtype"] != "int8":
            problems.append(f"{side} is {details[side]['dtype']}, not int8")
    for op in details["ops"]:
        name = op["op"]
        if name.startswith("Flex") or name in ("CUSTOM", "DELEGATE") or not name.isupper():
            problems.append(f"op {name} is not a TFLite builtin")
        floats = [t for t in op["types"] if t not in INTEGER_TYPES]
        if floats:
            problems.append(f"op {name} computes in {', '.join(floats)}")
    if not details["ops"]:
        problems.append("its ops could not be listed")
    if problems:
        raise ConvertError(f"{path}: not a full-integer int8 model: {'; '.join(problems[:6])}")
