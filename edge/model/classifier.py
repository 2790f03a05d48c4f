"""The emotion classifier: one TFLite model wrapped once, ``infer()`` per batch of faces.

:func:`load_classifier` builds it from the [model] settings (the shipped model when no
path is given).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from deepfer.edge.errors import ModelLoadError, ModelNotFound
from deepfer.edge.model import runtime
from deepfer.edge.model.sidecar import ModelInfo, load_model_info
from deepfer.edge.paths import user_path

log = logging.getLogger(__name__)


class EmotionClassifier:
    """Wraps a DeepFER ``.tflite`` model and its sidecar.

    The interpreter is built once. :meth:`infer` takes face crops at the
    model's input size (uint8 grayscale, 0..255) and always returns an
    ``(n, num_labels)`` float32 array of probabilities, ``(0, k)`` for no faces.
    """

    def __init__(
        self, model_path: str | Path, num_threads: int | None = 1, runtime_name: str = "auto"
    ):
        self.info: ModelInfo = load_model_info(model_path)
        self.path = Path(model_path)
        self.interpreter, self.runtime = runtime.make_interpreter(
            self.path, num_threads=num_threads, runtime=runtime_name
        )
        self._input, self.channels_first = _image_input(self.path, self.interpreter, self.info)
        self._output_index = _scores_output(self.path, self.interpreter, len(self.info.labels))
        self._output = runtime.output_detail(self.interpreter, self._output_index)
        shape = [int(s) for s in self._input["shape"]]
        self.channels = shape[1] if self.channels_first else shape[3]
        #: the sidecar says the model outputs logits: always softmax them (else guessed)
        self.logits = self.info.output_kind == "logits"
        self._batchable = runtime.resize_batch(self.interpreter, 1)
        self._warned_nonfinite = False

    @property
    def labels(self) -> list[str]:
        return self.info.labels

    @property
    def input_size(self) -> tuple[int, int]:
        return self.info.input_size

    @property
    def input_dtype(self) -> str:
        return np.dtype(self._input["dtype"]).name

    def _prepare(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        if faces.ndim == 2:
            faces = faces[None]
        if faces.ndim == 3:
            faces = faces[..., None]
        if faces.ndim != 4 or faces.shape[1:3] != self.input_size:
            raise ValueError(
                f"faces must be (n, {self.input_size[0]}, {self.input_size[1]}[, 1]), got {faces.shape}"
            )
        if faces.shape[3] != self.channels:
            faces = np.repeat(faces[..., :1], self.channels, axis=3)
        if self.channels_first:
            faces = faces.transpose(0, 3, 1, 2)
        return faces.astype(np.float32, copy=False)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        runtime.set_input(self.interpreter, batch)
        self.interpreter.invoke()
        return runtime.get_output(self.interpreter, self._output_index)

    def infer(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities for a batch of face crops; all faces in one call when the model allows."""
        k = len(self.labels)
        faces = np.asarray(faces)
        if faces.size == 0:
            return np.zeros((0, k), np.float32)
        batch = self._prepare(faces)
        n = batch.shape[0]
        if self._batchable and runtime.resize_batch(self.interpreter, n):
            scores = self._run(batch)
        else:
            scores = np.concatenate([self._run(batch[i : i + 1]) for i in range(n)])
        scores = scores.reshape(n, k)
        if not self._warned_nonfinite and not np.isfinite(scores).all():
            self._warned_nonfinite = True  # (once: a damaged model would say it every frame)
            log.warning(
                "%s gave scores that are not numbers (NaN or infinite) for a face: each such "
                "face is given equal scores; is the model file damaged or badly converted?",
                self.info.path.name,
            )
        return as_probabilities(scores, logits=self.logits)


def _image_input(path: Path, interpreter, info: ModelInfo) -> tuple[dict, bool]:
    """The model's one image input and whether it is channels first ``(n, C, H, W)``;
    a model that cannot take a face crop as DeepFER gives it is refused, saying why."""
    inputs = interpreter.get_input_details()
    if len(inputs) != 1:
        raise ModelLoadError(
            f"{path}: {len(inputs)} inputs; DeepFER gives a classifier one input, the face crop"
        )
    detail = inputs[0]
    shape = [int(s) for s in detail["shape"]]
    size = list(info.input_size)
    if len(shape) == 4 and shape[1:3] == size:
        channels_first = False
    elif len(shape) == 4 and shape[2:4] == size and shape[1] in (1, 3):
        channels_first = True  # (n, C, H, W), as a model exported from PyTorch
    else:
        raise ModelLoadError(
            f"{path}: input shape {shape} does not match the sidecar's input size {size}: "
            "expected (n, height, width, channels) or (n, channels, height, width); set "
            f"input.size in {info.path.with_suffix('.json').name} to the model's [height, width]"
        )
    dtype = np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.integer) and runtime.quant_params(detail)[0] == 0.0:
        top = np.iinfo(dtype).max
        if top < 255:
            raise ModelLoadError(
                f"{path}: its input is {dtype.name} with no quantisation scale, so it cannot "
                f"hold pixels 0..255 (largest {top}); a model takes raw grey levels 0..255"
            )
    return detail, channels_first


def _scores_output(path: Path, interpreter, k: int) -> int:
    """Index of the output holding the ``k`` class scores: the only output, or the only one
    of ``k`` values among several (a model with an extra head); otherwise refused."""
    outputs = interpreter.get_output_details()
    sizes = [int(np.prod(o["shape"][1:] if len(o["shape"]) > 1 else o["shape"])) for o in outputs]
    fits = [i for i, n in enumerate(sizes) if n == k]
    if len(outputs) == 1 and fits:
        return 0
    shapes = ", ".join(
        f"{o.get('name', i)} {[int(s) for s in o['shape']]}" for i, o in enumerate(outputs)
    )
    if len(fits) == 1:
        log.info(
            "%s: %d outputs (%s); the class scores are %s",
            path.name,
            len(outputs),
            shapes,
            outputs[fits[0]].get("name", fits[0]),
        )
        return fits[0]
    if len(outputs) == 1:
        raise ModelLoadError(
            f"{path}: its output {shapes} holds {sizes[0]} values but the sidecar lists "
            f"{k} labels; the sidecar's labels must name each output score, in order"
        )
    raise ModelLoadError(
        f"{path}: {len(outputs)} outputs ({shapes}) and {len(fits) or 'none'} of them of "
        f"{k} scores (the sidecar's labels); DeepFER reads one output of class scores: "
        "convert the model with that output only"
    )


def as_probabilities(scores: np.ndarray, logits: bool = False) -> np.ndarray:
    """``(n, k)`` model outputs as float32 probabilities: softmax of a model that outputs
    logits (a negative score, or rows not summing to 1), unchanged otherwise. A row holding
    NaN or infinity (a broken model, or logits that overflow) becomes equal scores, so that
    what reaches an event is a number (JSON has no NaN) and says "no idea". ``logits``: the
    model is known to output logits (its sidecar's ``output.kind``): always softmaxed, also
    where they happen to look like probabilities."""
    broken = ~np.isfinite(scores).all(axis=1) if scores.size else None
    if broken is not None and broken.any():
        scores = np.where(broken[:, None], 0.0, scores).astype(np.float32)
        scores[broken] = 1.0 / scores.shape[1]
    if scores.size and (
        logits or (scores < -1e-3).any() or np.abs(scores.sum(1) - 1.0).max() > 0.05
    ):
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores = e / e.sum(axis=1, keepdims=True)
    return scores.astype(np.float32, copy=False)


def resolve_model_path(path: str | Path | None) -> Path:
    """``model.path`` (a file, or a shipped model's name such as ``deepfer-single_int8``), or
    the shipped default model when empty (clear error if absent)."""
    from deepfer.models import default_model_path, shipped_model

    if path:
        given = user_path(path)
        if given.exists():
            return given
        return shipped_model(str(path)) or given  # a missing file is reported by its name

    default = default_model_path()
    if not default.is_file():
        raise ModelNotFound(
            f"no model given and the default model {default} is not installed; pass "
            "--model FILE.tflite (with its .json sidecar beside it) or set model.path in "
            "the config"
        )
    return default


def load_classifier(config) -> EmotionClassifier:
    """The classifier a :class:`deepfer.edge.config.ModelConfig` asks for (logged once)."""
    classifier = EmotionClassifier(
        resolve_model_path(config.path), num_threads=config.threads, runtime_name=config.runtime
    )
    log.info(
        "model %s: %s input %s, %d labels, runtime %s (%d thread(s))",
        classifier.info.name,
        classifier.input_dtype,
        "x".join(map(str, classifier.input_size)),
        len(classifier.labels),
        classifier.runtime,
        config.threads,
    )
    return classifier
