"""A model's pixel normalisation made exact in int8, before conversion.

A DeepFER model normalises raw pixels p (0..255) itself (its first layer). The int8 graph's
input holds p - 128 exactly (scale 1, zero point -128). Models built since 2026-12-04 normalise
as (p - 128) / 128 (a ``Normalization`` layer, :data:`deepfer.edge.preprocess.PIXEL_CENTRE`): the
converter makes that one exact subtraction and folds the division into the first convolution.

Older models use ``Rescaling(1/127.5, offset=-1)``. Its 256 values, p / 127.5 - 1, sit half a
step off every int8 grid, and the converter quantised its multiply with a step of 1.5 grey
levels, at the very input of the network (the shipped model's int8 graph agreed with its
float graph on 98.5% of the validation slice's faces; rewritten, 99.4%).
:func:`exact_input` rebuilds such a model with the new normalisation and folds the difference
into the convolution that reads the pixels: with ``a = 127.5 / 128``, the new input is
``a * x + (a - 1)`` of the old one, so the kernel is divided by ``a`` and the constant it adds,
``(a - 1) / a * sum(kernel)`` per filter, comes off its bias or its batch norm's mean. That is
exact except where the convolution's zero padding reaches past the border (padding with 0 now
means a grey of 128 instead of 127.5); :func:`exact_input` measures the change on real faces
and keeps the model as it was if any score moves by more than :data:`TOLERANCE`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepfer.edge.preprocess import PIXEL_CENTRE, PIXEL_SCALE
from deepfer.evaluate.keras_model import all_layers

#: ``Rescaling`` of the models before 2026-12-04: p / 127.5 - 1
OLD_SCALE, OLD_OFFSET = 1.0 / 127.5, -1.0
#: largest change of any score, on the faces given, for the rewritten model to be used: the
#: padding at the border moves scores by up to about 0.003 on real faces, int8 itself by
#: up to about 0.07 (the shipped model on the validation slice)
TOLERANCE = 0.01
NEW = f"(p - {PIXEL_CENTRE:g}) / {PIXEL_SCALE:g}"


class NotRewritable(Exception):
    """The model's layout is not one :func:`exact_input` knows how to fold."""


def exact_input(model, faces: np.ndarray) -> tuple[Any, dict]:
    """``model``, or an equivalent one whose normalisation is exact in int8, and a record of
    which (for the sidecar). ``faces``: (n, h, w, c) raw pixels to check the rewrite on."""
    config = model.get_config()
    found: list[tuple[str, str, list[str]]] = []  # (model name, layer name, its readers)
    _rewrite(config, found)
    if not found:
        return model, {"pixels": _described(model), "rewritten": False}
    try:
        rebuilt = model.__class__.from_config(config)
        rebuilt.set_weights(model.get_weights())
        for owner, _, readers in found:
            sub = _find_model(rebuilt, owner)
            for reader in readers:
                _fold(sub, reader)
    except NotRewritable as exc:
        return model, {"pixels": f"p / 127.5 - 1 (kept: {exc})", "rewritten": False}
    x = np.asarray(faces, np.float32)
    change = float(np.abs(_predict(model, x) - _predict(rebuilt, x)).max()) if len(x) else 0.0
    if change > TOLERANCE:
        return model, {
            "pixels": f"p / 127.5 - 1 (kept: rewriting moved a score by {change:.2g})",
            "rewritten": False,
        }
    return rebuilt, {
        "pixels": NEW,
        "rewritten": True,
        "rewritten_from": "p / 127.5 - 1",
        "layers": [f"{owner}/{name}" for owner, name, _ in found],
        "checked_on_faces": len(x),
        "largest_score_change": change,
    }


def _rewrite(config: Any, found: list) -> None:
    """Replace, in a (nested) functional config, every old ``Rescaling`` by the new
    ``Normalization``; note the layers reading each."""
    if isinstance(config, dict):
        layers = config.get("layers")
        if isinstance(layers, list) and "name" in config:
            for layer in layers:
                if _is_old_rescaling(layer):
                    name = layer["config"]["name"]
                    readers = [
                        other["config"]["name"]
                        for other in layers
                        if name in _inputs_of(other.get("inbound_nodes", []))
                    ]
                    layer["class_name"] = "Normalization"
                    layer["module"] = "keras.layers"
                    layer["registered_name"] = None
                    layer["config"] = {
                        "name": name,
                        "trainable": False,
                        "dtype": layer["config"].get("dtype"),
                        "axis": [-1],
                        "invert": False,
                        "mean": PIXEL_CENTRE,
                        "variance": PIXEL_SCALE**2,
                    }
                    found.append((config["name"], name, readers))
        for value in config.values():
            _rewrite(value, found)
    elif isinstance(config, (list, tuple)):
        for value in config:
            _rewrite(value, found)


def _is_old_rescaling(layer: Any) -> bool:
    if not isinstance(layer, dict) or layer.get("class_name") != "Rescaling":
        return False
    cfg = layer.get("config", {})
    scale, offset = cfg.get("scale"), cfg.get("offset")
    return (
        isinstance(scale, (int, float))
        and isinstance(offset, (int, float))
        and math.isclose(scale, OLD_SCALE, rel_tol=1e-6)
        and math.isclose(offset, OLD_OFFSET, rel_tol=1e-6)
    )


def _inputs_of(nodes: Any) -> set[str]:
    """Names of the layers whose outputs a layer's inbound nodes read (``keras_history``)."""
    names: set[str] = set()
    if isinstance(nodes, dict):
        history = nodes.get("keras_history")
        if isinstance(history, (list, tuple)) and history:
            names.add(history[0])
        for value in nodes.values():
            names |= _inputs_of(value)
    elif isinstance(nodes, (list, tuple)):
        for value in nodes:
            names |= _inputs_of(value)
    return names


def _find_model(model, name: str):
    return next(m for m in (model, *all_layers(model)) if m.name == name and hasattr(m, "layers"))


def _fold(model, reader: str) -> None:
    """Fold the change of normalisation into the convolution ``reader`` of ``model``."""
    import keras

    conv = model.get_layer(reader)
    if type(conv) is not keras.layers.Conv2D:
        raise NotRewritable(f"the pixels go to a {type(conv).__name__}, not a Conv2D")
    # old x = (p - 127.5) / 127.5, new x' = (p - C) / S = a * x + b
    a, b = 127.5 / PIXEL_SCALE, (127.5 - PIXEL_CENTRE) / PIXEL_SCALE
    weights = conv.get_weights()
    shift = b / a * weights[0].sum(axis=(0, 1, 2))  # what (kernel / a) adds, per filter
    weights[0] = weights[0] / a
    if conv.use_bias:
        weights[1] = weights[1] - shift
        conv.set_weights(weights)
        return
    layers = model.get_config()["layers"]
    readers = [
        model.get_layer(layer["config"]["name"])
        for layer in layers
        if reader in _inputs_of(layer.get("inbound_nodes", []))
    ]
    if len(readers) != 1 or type(readers[0]) is not keras.layers.BatchNormalization:
        raise NotRewritable(f"{reader} has no bias and is not read by one BatchNormalization")
    conv.set_weights(weights)
    bn = readers[0]
    names = [v.path.split("/")[-1] for v in bn.weights]
    values = bn.get_weights()
    values[names.index("moving_mean")] = values[names.index("moving_mean")] + shift
    bn.set_weights(values)


def _predict(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=64, verbose=0), np.float64)


def _described(model) -> str:
    """The normalisation a model already has, for the sidecar."""
    for layer in all_layers(model):
        if type(layer).__name__ == "Normalization" and layer.name == "rescale":
            return NEW
        if type(layer).__name__ == "Rescaling" and layer.name == "rescale":
            return f"p * {layer.scale:g} + {layer.offset:g}"
    return "not a DeepFER layer (left as built)"
