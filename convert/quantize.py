"""Keras model -> TFLite: full-integer int8 (calibrated on real faces) and float32, with sidecars.

:func:`convert_model` is the whole ``deepfer convert`` stage:

1. load the Keras model and check it is a DeepFER emotion classifier
   (one ``(n, H, W, C)`` image input, one ``(n, 7)`` output);
2. draw a balanced, deterministic representative set of real faces from the
   calibration data's training split (:mod:`deepfer.convert.calibration`);
3. convert to each requested format: ``int8`` (int8 input and output,
   ``TFLITE_BUILTINS_INT8`` only, verified op by op), ``float32``, and on
   request ``float16`` and ``dynamic`` (dynamic-range: int8 weights, float I/O);
4. write each ``.tflite`` with a JSON sidecar of the same stem;
5. check every converted model against the float one on held-out faces
   (top-1 agreement and both accuracies), store the numbers in the sidecars,
   and fail when int8 loses more than ``max_drop`` accuracy points (unless ``force``).

TensorFlow is imported only inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepfer.convert.calibration import (
    DEFAULT_CALIBRATION_SIZE,
    DEFAULT_SEED,
    CalibrationSet,
    HeldOutSet,
    held_out_set,
    load_source,
    representative_set,
)
from deepfer.edge.errors import DeepFERError
from deepfer.edge.labels import LABELS
from deepfer.edge.model.sidecar import file_sha256, update_metrics, write_sidecar

log = logging.getLogger(__name__)

#: Format name -> how it is described in the sidecar.
FORMATS: dict[str, str] = {
    "int8": "full-integer int8 (int8 input and output, TFLITE_BUILTINS_INT8 only)",
    "float32": "float32 (no quantisation)",
    "float16": "float16 weights, float32 input and output",
    "dynamic": "dynamic-range (int8 weights, float32 input and output)",
}
DEFAULT_FORMATS = ("int8", "float32")
DEFAULT_MAX_DROP = 1.0  # accuracy points int8 may lose against float
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
#: Tensor types allowed in a full-integer model (int32: biases and shape arithmetic).
INTEGER_TYPES = {"int8", "int16", "int32", "int64", "bool"}


class ConvertError(DeepFERError, RuntimeError):
    """A model or data that cannot be converted, with what and where."""


class AccuracyDropError(ConvertError):
    """int8 lost more accuracy than allowed; the files are written, ``result`` has the numbers."""

    def __init__(self, message: str, result: ConvertResult):
        super().__init__(message)
        self.result = result


@dataclass
class SourceModel:
    """The Keras model being converted and what we know about it."""

    path: Path
    model: Any
    input_size: tuple[int, int]
    channels: int
    sha256: str
    trained_on: str
    training: dict = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return list(LABELS)


@dataclass
class ConvertedModel:
    format: str
    path: Path
    sidecar: Path
    bytes: int
    metrics: dict = field(default_factory=dict)


@dataclass
class ConvertResult:
    models: dict[str, ConvertedModel]
    calibration: dict
    check: dict | None = None
    passed: bool = True

    def path(self, fmt: str) -> Path:
        return self.models[fmt].path

    def summary(self) -> str:
        lines = []
        for fmt, m in self.models.items():
            acc = m.metrics.get("accuracy")
            agree = m.metrics.get("agreement_with_float")
            extra = ""
            if acc is not None:
                extra = f"  accuracy {acc:.2%}"
                if agree is not None and fmt != "float32":
                    extra += f", agrees with float on {agree:.2%}"
            lines.append(f"{fmt:<8} {m.path}  {m.bytes / 1024:,.0f} KiB{extra}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- source model


def find_training_info(model_path: Path) -> tuple[str | None, dict]:
    """What a ``deepfer train`` run folder says the model was trained on, if it is in one."""
    for folder in (model_path.parent, model_path.parent.parent):
        config_file = folder / "config.json"
        if not config_file.is_file():
            continue
        try:
            config = json.loads(config_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(config, dict) or not config.get("data"):
            continue
        summary = {}
        summary_file = folder / "summary.json"
        if summary_file.is_file():
            with contextlib.suppress(OSError, json.JSONDecodeError):
                summary = json.loads(summary_file.read_text())
        data = str(config["data"])
        text = f"FER2013 training split from {Path(data).name} ({data})"
        if config.get("max_per_class"):
            text += f", capped at {config['max_per_class']} faces per class"
        if summary.get("train_faces"):
            text += (
                f": {summary['train_faces']:,} training faces, "
                f"{summary.get('val_faces', 0):,} held out for validation"
            )
        training = {
            "run_folder": str(folder),
            "model": config.get("model"),
            "epochs": summary.get("epochs_run", config.get("epochs")),
            "best_epoch": summary.get("best_epoch"),
            "val_accuracy": summary.get("val_accuracy"),
            "seed": config.get("seed"),
        }
        training.update(_averaging_info(folder, model_path))
        if "averaged_epochs" in training:  # not one epoch's weights
            training.pop("best_epoch", None)
        return text, {k: v for k, v in training.items() if v is not None}
    return None, {}


def _averaging_info(folder: Path, model_path: Path) -> dict:
    """What ``deepfer average`` recorded, if ``model_path`` is the model it saved."""
    try:
        info = json.loads((folder / "average.json").read_text())
        if Path(info["keras"]).resolve() != model_path.resolve():
            return {}
        chosen = info["chosen"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return {}
    out = {"flip_average": bool(info.get("flip_average"))}
    if chosen.get("epochs"):
        out["averaged_epochs"] = chosen["epochs"]
        out["batchnorm_recomputed_on"] = info.get("batchnorm_faces")
    out["val_accuracy"] = chosen.get("flip" if out["flip_average"] else "single")
    out["selected_on"] = info.get("selected_on")
    return {k: v for k, v in out.items() if v is not None}


def load_source_model(path: str | Path, trained_on: str | None = None) -> SourceModel:
    """Load a Keras emotion classifier; clear errors for missing, corrupt or wrong models."""
    path = Path(path)
    if path.is_dir():
        path = _model_in_run_folder(path)
    if not path.is_file():
        raise ConvertError(f"{path}: model file not found")
    if path.suffix.lower() == ".tflite":
        raise ConvertError(
            f"{path}: already a TFLite model; `deepfer convert` takes the Keras model "
            "(.keras or .h5) it came from"
        )
    if path.suffix.lower() not in KERAS_SUFFIXES:
        raise ConvertError(f"{path}: expected a Keras model (.keras or .h5), got {path.suffix!r}")
    if path.stat().st_size == 0:
        raise ConvertError(f"{path}: the file is empty (0 bytes); not a Keras model")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # keras raises many types for a bad file
        raise ConvertError(
            f"{path}: cannot load it as a Keras model ({type(exc).__name__}: {_short(exc)})"
        ) from None
    inputs = model.inputs if isinstance(model.inputs, list) else [model.inputs]
    outputs = model.outputs if isinstance(model.outputs, list) else [model.outputs]
    what = "not a DeepFER emotion classifier"
    if len(inputs) != 1 or len(outputs) != 1:
        raise ConvertError(
            f"{path}: {what}: expected one input and one output, "
            f"got {len(inputs)} input(s) and {len(outputs)} output(s)"
        )
    in_shape = tuple(inputs[0].shape)
    out_shape = tuple(outputs[0].shape)
    if len(in_shape) != 4 or in_shape[1] is None or in_shape[2] is None:
        raise ConvertError(
            f"{path}: {what}: expected an image input (n, height, width, channels), got {in_shape}"
        )
    if in_shape[1] != in_shape[2]:
        raise ConvertError(f"{path}: only square inputs are supported, got {in_shape[1:3]}")
    if len(out_shape) != 2 or out_shape[1] != len(LABELS):
        raise ConvertError(
            f"{path}: {what}: expected an output of {len(LABELS)} class scores "
            f"({', '.join(LABELS)}), got shape {out_shape}"
        )
    found, training = find_training_info(path)
    return SourceModel(
        path=path,
        model=model,
        input_size=(int(in_shape[1]), int(in_shape[2])),
        channels=int(in_shape[3] or 1),
        sha256=file_sha256(path),
        trained_on=trained_on or found or "unknown",
        training=training,
    )


def _model_in_run_folder(folder: Path) -> Path:
    summary = folder / "summary.json"
    if summary.is_file():
        with contextlib.suppress(OSError, json.JSONDecodeError, KeyError, TypeError):
            return Path(json.loads(summary.read_text())["keras"])
    found = sorted(folder.glob("*.keras"))
    if len(found) == 1:
        return found[0]
    raise ConvertError(
        f"{folder}: a folder; give the .keras model file "
        f"({'found ' + ', '.join(p.name for p in found) if found else 'none in it'})"
    )


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- conversion


@contextlib.contextmanager
def _captured_output() -> Iterator[list[str]]:
    """Send stdout/stderr (Python and C level) to a temp file; the text lands in the list."""
    captured: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            with contextlib.redirect_stdout(sys.stderr):
                yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.seek(0)
            captured.append(tmp.read().decode("utf-8", "replace"))


def tflite_bytes(source: SourceModel, fmt: str, calibration: CalibrationSet | None = None) -> bytes:
    """Convert the Keras model to one TFLite format."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(source.model)
    if fmt == "int8":
        if calibration is None or len(calibration) == 0:
            raise ConvertError("int8 conversion needs calibration faces")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: calibration.batches(source.channels)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    elif fmt == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif fmt == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    with _captured_output() as log_text, warnings.catch_warnings():
        # int8 I/O scale comes from the representative data; TF warns about it regardless
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        try:
            data = converter.convert()
        except Exception as exc:
            failure = exc
        else:
            failure = None
    if failure is not None:
        tail = "\n".join(log_text[0].strip().splitlines()[-15:]) if log_text else ""
        hint = ""
        if fmt == "int8":
            hint = (
                " A layer without an int8 builtin kernel cannot be in a full-integer model; "
                "the deepfer-cnn, deepfer-vgg and deepfer-edge models convert."
            )
        raise ConvertError(
            f"{source.path}: {fmt} conversion failed: {_short(failure, 600)}.{hint}"
            + (f"\nconverter log (last lines):\n{tail}" if tail else "")
        )
    return data


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
    """Ops of the model as written (no delegate), with their tensor types."""
    import importlib

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


def _versions() -> dict:
    from importlib import metadata

    from deepfer.edge import __version__

    out = {"deepfer": __version__}
    for dist in ("tensorflow", "tensorflow-cpu", "keras", "ai-edge-litert"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def _sidecar(
    source: SourceModel,
    fmt: str,
    path: Path,
    details: dict,
    calibration: CalibrationSet | None,
) -> dict:
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
            "kind": "probabilities"
            if details["ops"] and details["ops"][-1]["op"] == "SOFTMAX"
            else "scores",
        },
        "quantization": fmt,
        "quantization_description": FORMATS[fmt],
        "trained_on": source.trained_on,
        "training": source.training,
        "source_model": {
            "path": str(source.path),
            "sha256": source.sha256,
            "name": source.model.name,
            "parameters": int(source.model.count_params()),
        },
        "calibration": calibration.describe() if calibration is not None else None,
        "ops": sorted({op["op"] for op in details["ops"]}),
        "file": {"bytes": path.stat().st_size, "sha256": file_sha256(path)},
        "converter": _versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "metrics": {},
    }


def output_paths(out_stem: str | Path, formats: Sequence[str]) -> dict[str, Path]:
    """``models/NAME`` -> ``{"int8": models/NAME_int8.tflite, ...}``."""
    stem = Path(out_stem)
    if stem.suffix.lower() in (".tflite", ".json"):
        stem = stem.with_suffix("")
    return {fmt: stem.parent / f"{stem.name}_{fmt}.tflite" for fmt in formats}


# --------------------------------------------------------------------------- the check


def _predict(path: Path, x: np.ndarray) -> np.ndarray:
    from deepfer.train.evaluate import predict_probs

    return predict_probs(path, x)


def check_models(
    paths: dict[str, Path],
    held_out: HeldOutSet,
    reference: Path,
    max_drop: float = DEFAULT_MAX_DROP,
) -> dict:
    """Accuracy of each model and its top-1 agreement with the float ``reference`` on held-out faces."""
    from deepfer.train.evaluate import evaluate_predictions

    x, y = held_out.data.x, held_out.data.y
    ref_probs = _predict(reference, x)
    ref_pred = ref_probs.argmax(1)
    ref_acc = float((ref_pred == y).mean())
    per_model = {}
    for fmt, path in paths.items():
        probs = ref_probs if path == reference else _predict(path, x)
        pred = probs.argmax(1)
        m = evaluate_predictions(y, probs, LABELS)
        per_model[fmt] = {
            "accuracy": m["accuracy"],
            "macro_f1": m["macro_f1"],
            "per_class_f1": {k: v["f1"] for k, v in m["per_class"].items()},
            "float_accuracy": ref_acc,
            "agreement_with_float": float((pred == ref_pred).mean()),
            "accuracy_drop_points": round(100.0 * (ref_acc - m["accuracy"]), 3),
        }
    check = {
        "held_out": held_out.describe(),
        "float_reference": str(reference),
        "float_accuracy": ref_acc,
        "max_drop_points": max_drop,
        "models": per_model,
    }
    if "int8" in per_model:
        drop = per_model["int8"]["accuracy_drop_points"]
        check["int8_drop_points"] = drop
        check["passed"] = bool(drop <= max_drop)
    return check


# --------------------------------------------------------------------------- the stage


def convert_model(
    keras_path: str | Path,
    calibration_dir: str | Path,
    out_stem: str | Path,
    n_calibration: int = DEFAULT_CALIBRATION_SIZE,
    formats: Sequence[str] = DEFAULT_FORMATS,
    seed: int = DEFAULT_SEED,
    check_data: str | Path | None = None,
    check_size: int = 0,
    check: bool = True,
    max_drop: float = DEFAULT_MAX_DROP,
    force: bool = False,
    trained_on: str | None = None,
    progress: bool = False,
    echo=None,
) -> ConvertResult:
    """Convert ``keras_path`` to the ``formats`` as ``<out_stem>_<format>.tflite`` + ``.json``.

    Raises :class:`ConvertError` for bad input, and :class:`AccuracyDropError`
    (after writing everything) when int8 loses more than ``max_drop`` points
    of accuracy against float on the held-out faces and ``force`` is false.
    ``echo`` (e.g. ``print``) receives progress lines.
    """
    say = echo or (lambda *_: None)
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ConvertError(
            f"unknown format(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(FORMATS)}"
        )
    calibration_dir = Path(calibration_dir)
    if "int8" in formats and not calibration_dir.exists():
        raise ConvertError(
            f"{calibration_dir}: calibration data not found (no such file or folder)"
        )
    source = load_source_model(keras_path, trained_on)
    say(
        f"model: {source.path} ({source.model.name}, {source.model.count_params():,} parameters, "
        f"input {source.input_size[0]}x{source.input_size[1]}x{source.channels}); "
        f"trained on: {source.trained_on}"
    )
    splits = load_source(calibration_dir, source.input_size[0], progress)
    calib = representative_set(splits, calibration_dir, n_calibration, seed)
    say(
        f"calibration: {len(calib)} real faces from {calibration_dir} ({calib.split} split, seed "
        f"{seed}): " + ", ".join(f"{k} {v}" for k, v in calib.per_class().items())
    )

    paths = output_paths(out_stem, formats)
    next(iter(paths.values())).parent.mkdir(parents=True, exist_ok=True)
    models: dict[str, ConvertedModel] = {}
    for fmt, path in paths.items():
        say(f"converting to {fmt} ...")
        data = tflite_bytes(source, fmt, calib if fmt == "int8" else None)
        path.write_bytes(data)
        details = inspect_tflite(path)
        if fmt == "int8":
            check_full_integer(path, details)
        sidecar = write_sidecar(
            path, _sidecar(source, fmt, path, details, calib if fmt == "int8" else None)
        )
        models[fmt] = ConvertedModel(fmt, path, sidecar, len(data))
        say(f"  wrote {path} ({len(data) / 1024:,.0f} KiB) and {sidecar.name}")

    result = ConvertResult(models, calib.describe())
    if not check:
        return result
    if check_data is not None and Path(check_data) != calibration_dir:
        check_splits = load_source(check_data, source.input_size[0], progress)
        held = held_out_set(check_splits, check_data, None, check_size, seed)
    else:
        held = held_out_set(splits, calibration_dir, calib, check_size, seed)
    reference = paths.get("float32") or source.path
    say(
        f"checking against float ({Path(reference).name}) on {len(held.data)} held-out faces "
        f"({held.source}, {held.split} split) ..."
    )
    result.check = check_models(paths, held, Path(reference), max_drop)
    for fmt, m in result.check["models"].items():
        metrics = {
            **m,
            "evaluated_on": held.describe(),
            "float_reference": Path(reference).name,
            "measured_by": "deepfer convert",
        }
        update_metrics(paths[fmt], metrics)
        models[fmt].metrics = metrics
    result.passed = bool(result.check.get("passed", True))
    if not result.passed and not force:
        m = result.check["models"]["int8"]
        raise AccuracyDropError(
            f"int8 loses {m['accuracy_drop_points']:.2f} accuracy points against float "
            f"({m['accuracy']:.2%} vs {m['float_accuracy']:.2%} on {len(held.data)} held-out faces; "
            f"allowed {max_drop:g}). The files are written; check the calibration data, "
            "or pass --force to accept them.",
            result,
        )
    return result
