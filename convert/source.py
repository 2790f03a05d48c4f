"""The Keras model to convert: loaded, checked to be a DeepFER emotion classifier, and what its
run folder (:class:`deepfer.train.run_folder.RunFolder`) says it was trained on."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepfer.convert.errors import ConvertError
from deepfer.edge.errors import ModelInfoError
from deepfer.edge.labels import LABELS
from deepfer.edge.model.sidecar import ModelInfo
from deepfer.edge.paths import file_sha256
from deepfer.evaluate.model_file import (
    KERAS_SUFFIXES,
    keras_file_problem,
    keras_io_problem,
    keras_sidecar,
    output_count_problem,
    sidecar_size_problem,
)
from deepfer.evaluate.predictors import EvaluateError, label_order, resolve_model_file
from deepfer.train.ensemble_record import ensemble_training_info, read_ensemble_record
from deepfer.train.run_folder import RunFolder


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
    #: how the model turns pixels into its input (:func:`deepfer.convert.exact_input`)
    pixels: dict = field(default_factory=dict)
    #: its outputs' names in order: its sidecar's labels, else DeepFER's order (LABELS)
    labels: list[str] = field(default_factory=lambda: list(LABELS))
    #: its sidecar's ``output.kind`` (``logits``...) if it says, else ``probabilities`` where
    #: the graph shows it (:func:`keras_output_kind`)
    output_kind: str | None = None


def find_training_info(model_path: str | Path) -> tuple[str | None, dict]:
    """What the model was trained on: from ``deepfer ensemble``'s record beside it, else from
    the ``deepfer train`` run folder it is in, if any."""
    record = read_ensemble_record(model_path)
    if record:
        return ensemble_training_info(record)
    run = RunFolder.containing(model_path)
    if run is None:
        return None, {}
    return run.training_info(model_path)


def load_source_model(path: str | Path, trained_on: str | None = None) -> SourceModel:
    """Load a Keras emotion classifier; clear errors for missing, corrupt or wrong models."""
    path = model_file(path)
    if not path.is_file():
        raise ConvertError(f"{path}: model file not found")
    if path.suffix.lower() == ".tflite":
        raise ConvertError(
            f"{path}: already a TFLite model; `deepfer convert` takes the Keras model "
            "(.keras or .h5) it came from"
        )
    if path.suffix.lower() not in KERAS_SUFFIXES:
        raise ConvertError(f"{path}: expected a Keras model (.keras or .h5), got {path.suffix!r}")
    why = keras_file_problem(path)
    if why:
        raise ConvertError(f"{path}: {why}")
    info = checked_sidecar(path)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # keras raises many types for a bad file
        raise ConvertError(
            f"{path}: cannot load it as a Keras model ({type(exc).__name__}: {short(exc)})"
        ) from None
    from deepfer.evaluate.keras_model import with_dtype_policy

    model = with_dtype_policy(model)  # trained with --precision bf16: convert a float32 graph
    why = keras_io_problem(path, model)
    if why:
        raise ConvertError(why)
    in_shape = tuple(model.inputs[0].shape)
    out_shape = tuple(model.outputs[0].shape)
    if in_shape[1] != in_shape[2]:
        raise ConvertError(f"{path}: only square inputs are supported, got {in_shape[1:3]}")
    why = output_count_problem(path, info, out_shape) or sidecar_size_problem(
        path, info, (in_shape[1], in_shape[2])
    )
    if why:
        raise ConvertError(why)
    found, training = find_training_info(path)
    if info and not found and info.trained_on:
        found = info.trained_on
    return SourceModel(
        path=path,
        model=model,
        input_size=(int(in_shape[1]), int(in_shape[2])),
        channels=int(in_shape[3] or 1),
        sha256=file_sha256(path),
        trained_on=trained_on or found or "unknown",
        training=training,
        labels=info.labels if info else list(LABELS),
        output_kind=(info.output_kind if info else None) or keras_output_kind(model),
    )


def keras_output_kind(model) -> str | None:
    """``"probabilities"`` where the Keras graph shows that the output is one: a softmax, the
    mean of such outputs (``with_flip_average``, ``deepfer ensemble`` with equal weights) or
    their weighted mean (its fixed Dense over the concatenated scores: blocks of ``w * I``
    with weights summing to 1); ``None`` where it cannot tell (the converted graph's last op
    then decides, as before)."""
    import numpy as np

    def kind(tensor) -> bool:
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            return False
        op = history.operation
        inputs = op._inbound_nodes[history.node_index].input_tensors
        name = type(op).__name__
        if name in ("Functional", "Model", "Sequential"):
            return len(op.outputs) == 1 and kind(op.outputs[0])
        if name == "Softmax":
            return True
        activation = getattr(getattr(op, "activation", None), "__name__", None)
        if activation == "softmax" and name in ("Dense", "Activation"):
            return True
        if name == "Average":
            return all(kind(t) for t in inputs)
        if name == "Dense" and activation == "linear" and not op.use_bias and len(inputs) == 1:
            producer = getattr(inputs[0], "_keras_history", None)
            if producer is None or type(producer.operation).__name__ != "Concatenate":
                return False
            parts = producer.operation._inbound_nodes[producer.node_index].input_tensors
            kernel = np.asarray(op.get_weights()[0], dtype="float64")
            k = kernel.shape[1]
            if kernel.shape[0] != k * len(parts) or not all(t.shape[-1] == k for t in parts):
                return False
            blocks = kernel.reshape(len(parts), k, k)
            weights = [b[0, 0] for b in blocks]
            mixes = all(np.allclose(b, w * np.eye(k), atol=1e-6) for b, w in zip(blocks, weights))
            return (
                mixes
                and min(weights) >= 0
                and abs(sum(weights) - 1) < 1e-5
                and all(kind(t) for t in parts)
            )
        return False

    try:
        return "probabilities" if len(model.outputs) == 1 and kind(model.outputs[0]) else None
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def checked_sidecar(path: Path) -> ModelInfo | None:
    """:func:`keras_sidecar`, whose labels must be FER2013's seven classes, in any order: the
    conversion is checked on them."""
    try:
        info = keras_sidecar(path)
        if info is None:
            return None
        label_order(path, info.labels)
    except (ModelInfoError, EvaluateError) as exc:
        raise ConvertError(str(exc)) from None
    return info


def training_record(sidecar: str | Path) -> tuple[str, dict]:
    """``trained_on`` and ``training`` of an existing sidecar (``--training-from``)."""
    import json

    path = Path(sidecar)
    try:
        info = json.loads(path.read_text())
        return str(info["trained_on"]), dict(info.get("training") or {})
    except FileNotFoundError:
        raise ConvertError(f"{path}: sidecar not found") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConvertError(
            f"{path}: not a model sidecar with 'trained_on' ({type(exc).__name__}: {short(exc)})"
        ) from None


def model_file(path: str | Path) -> Path:
    """The Keras model file ``path`` names: itself, or a ``deepfer train`` run folder's best
    model (the only Keras file in a folder otherwise); a folder with none or several raises
    :class:`ConvertError` listing them."""
    return resolve_model_file(
        path, ConvertError, KERAS_SUFFIXES, best=lambda folder: RunFolder(folder).best_model()
    )


def short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
