"""Zero biases for int8 FULLY_CONNECTED ops that have none, checked bit for bit.

Why: tflite-runtime 2.14.0 (its last release, an alternative runtime to ai-edge-litert) crashes
with a segmentation fault on aarch64 (a Raspberry Pi) when it runs an int8 FULLY_CONNECTED that
has no bias (``inputs[2] == -1``) over more than one row. DeepFER's flip average has one: the
mirror, ``Dense(48, use_bias=False)`` over the width axis (:func:`deepfer.train.models.
with_flip_average`), so every shipped int8 model crashed there the first time it ran a face.
The same op with a bias runs. A bias of zeros (int32, scale = input scale x weight scale per
channel, zero point 0) adds nothing, so the graph computes exactly what it did.

:func:`add_zero_biases` rewrites the flatbuffer; :func:`check_same_outputs` runs both graphs on
real faces and raises unless every output byte is the same. ``deepfer convert`` puts every
int8 model through both before writing it (:mod:`deepfer.convert.quantize`). For a model
converted before, patch it in place (its sidecar's ``file`` hash and size are updated)::

    python -m deepfer.convert.zero_bias models/deepfer_int8.tflite \\
        --check-data "$DEEPFER_DATA/fer2013"

The edge refuses such a model on tflite-runtime on aarch64 rather than crash
(:func:`deepfer.edge.model.runtime.runtime_problem`). TensorFlow is imported inside the functions.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepfer.convert.errors import ConvertError

#: faces run through the graph per invoke when checking
CHECK_BATCH = 256


def add_zero_biases(data: bytes) -> tuple[bytes, int]:
    """``data`` (a ``.tflite`` flatbuffer) with a zero int32 bias given to every int8
    FULLY_CONNECTED that has none, and how many were given (0: ``data`` unchanged)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    fully_connected = {
        i
        for i, code in enumerate(model.operatorCodes)
        if max(code.builtinCode, code.deprecatedBuiltinCode)
        == schema.BuiltinOperator.FULLY_CONNECTED
    }
    added = 0
    for graph in model.subgraphs or []:
        for op in graph.operators or []:
            inputs = [int(i) for i in op.inputs]
            if op.opcodeIndex not in fully_connected or (len(inputs) > 2 and inputs[2] != -1):
                continue
            x, w = graph.tensors[inputs[0]], graph.tensors[inputs[1]]
            if x.type != schema.TensorType.INT8 or w.type != schema.TensorType.INT8:
                continue
            units = int(w.shape[0])
            weight_scales = np.asarray(w.quantization.scale, np.float64)
            scales = (float(x.quantization.scale[0]) * weight_scales).astype(np.float32)
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(np.zeros(units, "<i4").tobytes(), np.uint8)
            model.buffers.append(buffer)
            quant = schema.QuantizationParametersT()
            quant.scale = scales.tolist()
            quant.zeroPoint = [0] * len(scales)
            quant.quantizedDimension = 0
            bias = schema.TensorT()
            bias.shape = [units]
            bias.type = schema.TensorType.INT32
            bias.buffer = len(model.buffers) - 1
            name = w.name.decode() if isinstance(w.name, bytes) else str(w.name or "fc")
            bias.name = f"{name}/zero_bias"
            bias.quantization = quant
            graph.tensors.append(bias)
            op.inputs = [*inputs[:2], len(graph.tensors) - 1, *inputs[3:]]
            added += 1
    if not added:
        return data, 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), added


def _raw_outputs(path: Path, faces: np.ndarray) -> list[np.ndarray]:
    """Every output tensor, as stored (int8 for an int8 model), for ``faces`` in batches."""
    from deepfer.edge.model import runtime

    interpreter, _ = runtime.make_interpreter(path)
    batch = CHECK_BATCH if runtime.resize_batch(interpreter, min(CHECK_BATCH, len(faces))) else 1
    parts: list[list[np.ndarray]] = []
    for start in range(0, len(faces), batch):
        chunk = faces[start : start + batch]
        if not runtime.resize_batch(interpreter, len(chunk)) and len(chunk) != 1:
            raise ConvertError(f"{path}: cannot run {len(chunk)} faces at once")
        runtime.set_input(interpreter, chunk)
        interpreter.invoke()
        parts.append(
            [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()]
        )
    return [np.concatenate(p) for p in zip(*parts)]


def check_same_outputs(before: bytes, after: bytes, faces: np.ndarray, what: str) -> int:
    """Run both graphs on ``faces`` ((n, h, w, c) raw pixels); raise :class:`ConvertError`
    unless every output is bit-identical. Returns the number of faces checked."""
    faces = np.asarray(faces, np.float32)
    if not len(faces):
        raise ConvertError(f"{what}: no faces to check the zero biases on")
    with tempfile.TemporaryDirectory(prefix="deepfer-zero-bias-") as tmp:
        outputs = []
        for name, data in (("before", before), ("after", after)):
            path = Path(tmp) / f"{name}.tflite"
            path.write_bytes(data)
            outputs.append(_raw_outputs(path, faces))
    a, b = outputs
    differ = [
        i for i, (x, y) in enumerate(zip(a, b)) if x.shape != y.shape or not np.array_equal(x, y)
    ]
    if len(a) != len(b) or differ:
        rows = [
            int((a[i] != b[i]).reshape(len(faces), -1).any(1).sum())
            for i in differ
            if a[i].shape == b[i].shape
        ]
        raise ConvertError(
            f"{what}: adding zero biases to its FULLY_CONNECTED ops changed its outputs "
            f"(on {sum(rows) or 'some'} of {len(faces)} faces); not written"
        )
    return len(faces)


def with_zero_biases(data: bytes, faces: np.ndarray, what: str) -> tuple[bytes, dict]:
    """``data`` patched by :func:`add_zero_biases` and checked by :func:`check_same_outputs`
    on ``faces``, and a record of it for the sidecar."""
    patched, added = add_zero_biases(data)
    record: dict = {"fully_connected_zero_biases": added}
    if added:
        record["checked_on_faces"] = check_same_outputs(data, patched, faces, what)
        record["outputs"] = "bit-identical"
    return patched, record


def _update_sidecar(path: Path, record: dict) -> None:
    from deepfer.edge.paths import file_sha256

    side = path.with_suffix(".json")
    if not side.is_file():
        return
    data = json.loads(side.read_text())
    data["file"] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
    data["zero_biases"] = record
    side.write_text(json.dumps(data, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Patch ``.tflite`` files in place, checked on every face of a data set's test split."""
    p = argparse.ArgumentParser(
        prog="python -m deepfer.convert.zero_bias",
        description="Give every int8 FULLY_CONNECTED without a bias a zero bias (tflite-runtime "
        "2.14 crashes on aarch64 without one), in place, after checking that the outputs are "
        "bit-identical on every face of --check-data's test split; updates the sidecar.",
    )
    p.add_argument("models", nargs="+", type=Path, help=".tflite files to patch in place")
    p.add_argument(
        "--check-data",
        required=True,
        type=Path,
        metavar="DIR",
        help="FER2013 folder or fer2013.csv: its test split is run through both graphs",
    )
    args = p.parse_args(argv)
    from deepfer.data.fer2013 import load_fer2013
    from deepfer.edge.errors import DeepFERError
    from deepfer.edge.model.sidecar import load_model_info

    try:
        for path in args.models:
            if not path.is_file():
                raise ConvertError(f"{path}: model file not found")
            info = load_model_info(path)
            splits = load_fer2013(args.check_data, ("test",), info.input_size[0], progress=False)
            if "test" not in splits or not len(splits["test"]):
                raise ConvertError(f"--check-data {args.check_data}: no test split found in it")
            faces = splits["test"].x.astype(np.float32)
            channels = int(info.raw["input"].get("channels", 1))
            if channels != faces.shape[3]:
                faces = np.repeat(faces[..., :1], channels, axis=3)
            data = path.read_bytes()
            patched, record = with_zero_biases(data, faces, str(path))
            if not record["fully_connected_zero_biases"]:
                print(f"{path}: every int8 FULLY_CONNECTED has a bias already; unchanged")
                continue
            record["checked_on"] = f"test split of {args.check_data.name}, all faces"
            path.write_bytes(patched)
            _update_sidecar(path, record)
            print(
                f"{path}: {record['fully_connected_zero_biases']} zero bias(es) added; outputs "
                f"bit-identical on {record['checked_on_faces']} faces; "
                f"{len(data):,} -> {len(patched):,} bytes"
            )
    except (DeepFERError, OSError) as exc:
        print(f"deepfer.convert.zero_bias: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
