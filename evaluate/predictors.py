"""Models as "uint8 faces in, probabilities in DeepFER's label order out".

:func:`load_predictor` wraps a ``.tflite`` (with its sidecar; run by the edge
classifier on the TFLite ``runtime`` asked for, never TensorFlow unless that is the
runtime), ``.keras`` or ``.h5`` file; everything after it (test-time augmentation,
metrics, benchmarks) is shared.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from deepfer.edge.capture.imagefile import is_hidden
from deepfer.edge.errors import DeepFERError, ModelLoadError
from deepfer.edge.labels import FOLDER_ALIASES, LABELS
from deepfer.edge.model.classifier import as_probabilities
from deepfer.edge.preprocess import prepare_face
from deepfer.evaluate.model_file import (
    KERAS_SUFFIXES,
    keras_file_problem,
    keras_io_problem,
    keras_sidecar,
    output_count_problem,
    sidecar_size_problem,
)

#: Model files by suffix: the one definition (evaluate, benchmark, convert, train).
TFLITE_SUFFIXES = (".tflite",)


class EvaluateError(DeepFERError, RuntimeError):
    """A model or data set that cannot be evaluated, with what and where."""


#: ``np.int32(48)`` -> ``48`` in a message built from numpy values.
_NUMPY_SCALAR = re.compile(r"\bnp\.(?:u?int|float)\d*\(([^()]*)\)")


def plain_numbers(text: str) -> str:
    """``[np.int32(1), np.int32(48)]`` -> ``[1, 48]`` (numpy 2 scalar reprs in a message)."""
    return _NUMPY_SCALAR.sub(r"\1", text)


def resolve_model_file(
    path: str | os.PathLike,
    error: type[Exception],
    suffixes: Sequence[str] | None = None,
    best: Callable[[Path], Path | None] | None = None,
) -> Path:
    """``path``, or for a folder the model in it: ``best(folder)`` when given and found (convert
    passes a ``deepfer train`` run folder's best model), else the only model of ``suffixes`` in
    it (of one model saved as both ``.keras`` and ``.h5``, the ``.keras``); a folder with none
    or several raises ``error`` listing what is there."""
    path = Path(path)
    if not path.is_dir():
        return path
    suffixes = tuple(suffixes or (*KERAS_SUFFIXES, *TFLITE_SUFFIXES))
    chosen = best(path) if best else None
    if chosen is not None and not chosen.is_file() and (path / chosen.name).is_file():
        chosen = path / chosen.name  # a run's summary names it from where training ran
    if chosen is not None and chosen.is_file():
        return chosen
    found = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and p.suffix.lower() in suffixes and not is_hidden(p)
    )  # (not macOS's "._model.keras" beside a model copied from a Mac)
    if found and len({p.stem for p in found}) == 1:
        return min(found, key=lambda p: suffixes.index(p.suffix.lower()))
    listed = ", ".join(p.name for p in found[:8]) + (", ..." if len(found) > 8 else "")
    raise error(
        f"{path}: a folder; give the model file in it "
        f"({'found ' + listed if found else 'no ' + ', '.join(suffixes) + ' file in it'})"
    )


class Predictor:
    """A model as "uint8 faces in, probabilities in :data:`LABELS` order out".

    Subclasses implement :meth:`_raw` (probabilities in the model's own output
    order, ``self.model_labels``); :meth:`predict` checks and resizes the input,
    runs it in batches and reorders the columns to DeepFER's label order.
    ``runtime`` names what runs the model; ``input_dtype`` its input tensor type.
    """

    kind = "model"
    runtime = ""
    input_dtype = ""

    def __init__(self, path: Path, model_labels: Sequence[str], input_size: tuple[int, int]):
        self.path = path
        self.model_labels = list(model_labels)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self._order = label_order(path, self.model_labels)

    @property
    def labels(self) -> list[str]:
        """Column names of :meth:`predict`'s output: always DeepFER's labels."""
        return list(LABELS)

    def _raw(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """``(n, H, W[, 1])`` uint8 faces -> ``(n, 7)`` float32 probabilities in LABELS order."""
        x = as_batch(x, self.input_size)
        k = len(self.model_labels)
        if len(x) == 0:
            return np.zeros((0, len(LABELS)), np.float32)
        parts = [self._raw(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        probs = np.concatenate(parts).astype(np.float32, copy=False)
        if probs.shape != (len(x), k):
            raise EvaluateError(
                f"{self.path}: model returned shape {probs.shape}, expected {(len(x), k)}"
            )
        return probs[:, self._order]


class TFLitePredictor(Predictor):
    """A ``.tflite`` model with its sidecar, run by the edge classifier.

    ``runtime``: the TFLite runtime to use (``auto``, ``ai-edge-litert``,
    ``tflite-runtime`` or ``tensorflow``), as :func:`deepfer.edge.model.runtime.make_interpreter`.
    """

    kind = "tflite"

    def __init__(self, path: Path, threads: int | None = None, runtime: str = "auto"):
        from deepfer.edge.model.classifier import EmotionClassifier

        try:
            self.classifier = EmotionClassifier(path, threads or os.cpu_count(), runtime)
        except ModelLoadError as exc:
            raise ModelLoadError(plain_numbers(str(exc))) from None
        super().__init__(path, self.classifier.labels, self.classifier.input_size)
        self.runtime = self.classifier.runtime
        self.input_dtype = self.classifier.input_dtype

    def _raw(self, batch: np.ndarray) -> np.ndarray:
        return self.classifier.infer(batch)


class KerasPredictor(Predictor):
    """A ``.keras`` / ``.h5`` model. With a sidecar beside it (``<stem>.json``, as a
    ``.tflite`` has) its labels give the output order and its input size is checked against
    the graph; without one (``deepfer train``'s models) the outputs are taken to be in
    :data:`LABELS` order."""

    kind = "keras"

    def __init__(self, path: Path):
        why = keras_file_problem(path)
        if why:
            raise EvaluateError(f"{path}: {why}")
        info = keras_sidecar(path)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import keras
        except ImportError:
            raise EvaluateError(
                f"{path}: evaluating a Keras model needs TensorFlow/Keras "
                "(pip install 'deepfer[train]'); .tflite models do not"
            ) from None
        try:
            self.model = keras.models.load_model(path, compile=False)
        except Exception as exc:  # keras raises many types for a bad file
            raise EvaluateError(f"{path}: cannot load the Keras model ({exc})") from None
        why = keras_io_problem(path, self.model)
        if why:
            raise EvaluateError(why)
        shape = tuple(self.model.inputs[0].shape)
        out_shape = tuple(self.model.outputs[0].shape)
        self.channels = int(shape[3])
        why = output_count_problem(path, info, out_shape) or sidecar_size_problem(
            path, info, (shape[1], shape[2])
        )
        if why:
            raise EvaluateError(why)
        labels = info.labels if info else list(LABELS)
        self.logits = info is not None and info.output_kind == "logits"
        self.runtime = f"keras {keras.__version__}"
        self.input_dtype = "float32"
        super().__init__(path, labels, (shape[1], shape[2]))

    def _raw(self, batch: np.ndarray) -> np.ndarray:
        x = batch.astype(np.float32)
        if self.channels != 1:
            x = np.repeat(x, self.channels, axis=3)
        # compiled once per batch shape: about twice as fast as calling the model eagerly
        scores = np.asarray(self.model.predict_on_batch(x), np.float32)
        return as_probabilities(scores, logits=self.logits)


def load_predictor(
    model_path: str | Path, threads: int | None = None, runtime: str = "auto"
) -> Predictor:
    """Wrap a ``.tflite`` (needs its sidecar; on ``runtime``), ``.keras`` or ``.h5`` model
    (a folder: the model in it, :func:`resolve_model_file`)."""
    path = resolve_model_file(model_path, EvaluateError)
    if not path.is_file():
        raise EvaluateError(f"{path}: model file not found")
    suffix = path.suffix.lower()
    if suffix in TFLITE_SUFFIXES:
        return TFLitePredictor(path, threads, runtime)
    if suffix in KERAS_SUFFIXES:
        return KerasPredictor(path)
    raise EvaluateError(
        f"{path}: unknown model type {suffix or '(no suffix)'}; expected .tflite, .keras or .h5"
    )


def label_order(path: Path, model_labels: Sequence[str]) -> np.ndarray:
    """Column index in the model's output for each of :data:`LABELS`."""
    names = [FOLDER_ALIASES.get(str(x).strip().lower()) for x in model_labels]
    if sorted(n for n in names if n) != sorted(LABELS) or None in names:
        raise EvaluateError(
            f"{path}: the model's labels {list(model_labels)} are not DeepFER's seven emotions "
            f"({', '.join(LABELS)}, in any order), so it cannot be scored on FER2013's labels; "
            "deepfer detect and deepfer run use it with its own labels"
        )
    return np.array([names.index(label) for label in LABELS])


def as_batch(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Faces as a ``(n, H, W, 1)`` uint8 batch at ``size`` (resized the way the device does)."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[3] != 1:
        raise ValueError(f"faces must be a (n, H, W) or (n, H, W, 1) array, got {x.shape}")
    if x.dtype != np.uint8:
        x = np.clip(x, 0, 255).astype(np.uint8)
    if x.shape[1:3] != tuple(size):
        if size[0] != size[1]:
            raise ValueError(f"only square model inputs are supported, got {list(size)}")
        x = np.stack([prepare_face(img[..., 0], size[0]) for img in x])[..., None]
    return x
