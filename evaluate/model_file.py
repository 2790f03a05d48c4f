"""Is this file a Keras model? A cheap look at its bytes (no TensorFlow), so that a wrong file
is refused with one line before any data loads, and not with Keras' "File not found" for a
``.keras`` file that exists but is no zip archive.

The one owner of that check: train (``--finetune``, ``--teacher``, ``--resume``, average,
ensemble), convert, evaluate and benchmark all ask :func:`keras_file_problem`; convert,
evaluate and benchmark read a Keras model's own sidecar by :func:`keras_sidecar` and check the
graph by :func:`keras_io_problem`, and against the sidecar by :func:`sidecar_size_problem` and
:func:`output_count_problem`; ensemble members and teachers, whose scores are taken in
DeepFER's order, ask :func:`deepfer_order_problem`.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from deepfer.edge.errors import ModelInfoError
from deepfer.edge.labels import LABELS
from deepfer.edge.model.sidecar import ModelInfo, load_model_info, sidecar_path

#: Suffixes of Keras model files.
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")

#: The 8 bytes an HDF5 file (``.h5``, ``.weights.h5``) starts with, at 0 or after a user block.
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

#: HDF5 puts its signature at 0, 512, 1024, 2048, ... (after a user block of that size).
_HDF5_OFFSETS = (0, *(512 * 2**i for i in range(12)))


def _has_hdf5_signature(fh, size: int) -> bool:
    for offset in _HDF5_OFFSETS:
        if offset + 8 > size:
            break
        fh.seek(offset)
        if fh.read(8) == HDF5_SIGNATURE:
            return True
    return False


def keras_file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be a Keras model (``.keras``, ``.h5``, ``.weights.h5``), or None."""
    path = Path(path)
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "a folder, not a model file"
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            hdf5 = _has_hdf5_signature(fh, size)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if size == 0:
        return "not a Keras model file (the file is empty: 0 bytes)"
    if head[4:8] == b"TFL3":
        return "not a Keras model file (it is a TFLite model; give it a .tflite name)"
    if path.suffix.lower() != ".keras":
        if hdf5:
            return None
        kind = f"a {path.suffix} file" if path.suffix else "a Keras file other than .keras"
        return f"not a Keras model file ({kind} is HDF5; this is not, {size:,} bytes)"
    if not zipfile.is_zipfile(path):
        return (
            f"not a Keras model file (a .keras file is a zip archive; this is not, {size:,} bytes)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile) as exc:
        return f"not a Keras model file (a damaged zip archive: {exc})"
    if "config.json" not in names:
        return "not a Keras model file (the zip archive holds no config.json)"
    return None


def keras_sidecar(path: str | os.PathLike) -> ModelInfo | None:
    """The sidecar beside a Keras model (``<stem>.json``: a model not made by ``deepfer
    train``, whose outputs may be in another order), as :func:`load_model_info` reads and
    checks it (ModelInfoError); None without one (``deepfer train``'s models: DeepFER's order)."""
    return load_model_info(path) if sidecar_path(path).is_file() else None


def sidecar_size_problem(
    path: str | os.PathLike, info: ModelInfo | None, input_hw: tuple[int, int]
) -> str | None:
    """Why a Keras model's sidecar does not fit its graph (``input.size`` is not the graph's
    ``input_hw``), or None (also without a sidecar)."""
    if info is None or info.input_size == tuple(input_hw):
        return None
    return (
        f"{sidecar_path(path)}: input.size {list(info.input_size)} but the model "
        f"{Path(path).name} takes {input_hw[0]}x{input_hw[1]} faces"
    )


def keras_io_problem(path: str | os.PathLike, model) -> str | None:
    """Why a loaded Keras model cannot take a face crop and give its scores: not one input and
    one output, or an input that is not an image ``(n, height, width, channels)``; or None."""
    inputs = model.inputs if isinstance(model.inputs, list) else [model.inputs]
    outputs = model.outputs if isinstance(model.outputs, list) else [model.outputs]
    what = f"{path}: not a DeepFER emotion classifier"
    if len(inputs) != 1 or len(outputs) != 1:
        return (
            f"{what}: expected one input (the face) and one output (the class scores), "
            f"got {len(inputs)} input(s) and {len(outputs)} output(s)"
        )
    shape = tuple(inputs[0].shape)
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        return f"{what}: expected an image input (n, height, width, channels), got {shape}"
    return None


def output_count_problem(
    path: str | os.PathLike, info: ModelInfo | None, output_shape: tuple
) -> str | None:
    """Why a Keras model's one output is not a score per label, ``(n, k)`` with ``k`` the labels
    of its sidecar (DeepFER's seven without one), or None."""
    labels = info.labels if info else list(LABELS)
    shape = tuple(output_shape)
    if len(shape) == 2 and shape[1] == len(labels):
        return None
    named = (
        f"the labels of its sidecar {sidecar_path(path).name}"
        if info
        else "DeepFER's order; a model of other labels or another order needs a sidecar "
        "beside it naming them in output order"
    )
    return (
        f"{path}: not a DeepFER emotion classifier: expected an output of {len(labels)} class "
        f"scores ({', '.join(labels)}: {named}), got shape {shape}"
    )


def deepfer_order_problem(path: str | os.PathLike, output_shape: tuple, use: str) -> str | None:
    """Why a Keras model cannot be used where its scores are taken in DeepFER's order as they
    come (``use``: an ensemble's member, a teacher): not one ``(n, 7)`` output, or a sidecar
    beside it naming other labels or another order; None if it can. A sidecar that cannot be
    read is a problem too (ModelInfoError's message)."""
    try:
        info = keras_sidecar(path)
    except ModelInfoError as exc:
        return str(exc)
    if info is not None and list(info.labels) != list(LABELS):
        return (
            f"{path}: its sidecar {sidecar_path(path).name} names its outputs "
            f"{', '.join(info.labels)}; {use} must output DeepFER's order "
            f"({', '.join(LABELS)})"
        )
    return output_count_problem(path, None, output_shape)
