"""Keras model -> TFLite: full-integer int8 (calibrated on real faces) and float32, with sidecars.

:func:`convert_model` is the whole ``deepfer convert`` stage:

1. load the Keras model and check it is a DeepFER emotion classifier
   (one ``(n, H, W, C)`` image input, one ``(n, 7)`` output);
2. draw a balanced, deterministic representative set of real faces from the
   calibration data's training split (:mod:`deepfer.data.sampling`);
3. convert to each requested format: ``int8`` (int8 input and output,
   ``TFLITE_BUILTINS_INT8`` only, verified op by op by :mod:`deepfer.convert.inspect`),
   ``float32``, and on request ``float16`` and ``dynamic`` (dynamic-range: int8 weights,
   float I/O); int8 FULLY_CONNECTED ops without a bias get a zero one, checked bit-identical
   on the calibration faces (:mod:`deepfer.convert.zero_bias`: tflite-runtime 2.14 crashes
   on aarch64 without it);
4. write each ``.tflite`` with a JSON sidecar of the same stem (:mod:`deepfer.convert.sidecar`);
5. check every converted model against the float one on held-out faces
   (:mod:`deepfer.convert.check`: top-1 agreement and both accuracies), store the numbers
   in the sidecars,
   and fail when int8 loses more than ``max_drop`` accuracy points or agrees with float
   on fewer than ``min_agreement`` percent of the faces (unless ``force``).

Everything that can be checked before converting is: the options, that every output can be
written, the model, the calibration faces and the held-out faces.

TensorFlow is imported only inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deepfer.convert import sidecar
from deepfer.convert.check import (
    DEFAULT_MAX_DROP,
    DEFAULT_MIN_AGREEMENT,
    check_models,
    check_set,
    data_problem,
    warn_about_calibration,
)
from deepfer.convert.errors import ConvertError
from deepfer.convert.exact_input import exact_input
from deepfer.convert.inspect import check_full_integer, inspect_tflite
from deepfer.convert.source import (
    SourceModel,
    load_source_model,
    model_file,
    short,
    training_record,
)
from deepfer.convert.zero_bias import with_zero_biases
from deepfer.data.sampling import (
    DEFAULT_CALIBRATION_SIZE,
    DEFAULT_SEED,
    CalibrationSet,
    load_source,
    representative_set,
)
from deepfer.edge.model.sidecar import update_metrics, write_sidecar
from deepfer.evaluate.outputs import file_problem

#: Format name -> how it is described in the sidecar.
FORMATS: dict[str, str] = {
    "int8": "full-integer int8 (int8 input and output, TFLITE_BUILTINS_INT8 only)",
    "float32": "float32 (no quantisation)",
    "float16": "float16 weights, float32 input and output",
    "dynamic": "dynamic-range (int8 weights, float32 input and output)",
}
DEFAULT_FORMATS = ("int8", "float32")


class AccuracyDropError(ConvertError):
    """int8 failed the check (lost more accuracy than allowed, or agrees with float on too few
    faces); the files are written, ``result`` has the numbers."""

    def __init__(self, message: str, result: ConvertResult):
        super().__init__(message)
        self.result = result


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
            f"{source.path}: {fmt} conversion failed: {short(failure, 600)}.{hint}"
            + (f"\nconverter log (last lines):\n{tail}" if tail else "")
        )
    return data


def output_paths(
    out_stem: str | Path, formats: Sequence[str], model_path: str | Path | None = None
) -> dict[str, Path]:
    """``models/NAME`` -> ``{"int8": models/NAME_int8.tflite, ...}``; a folder (one that exists,
    or written with a trailing ``/``) -> ``FOLDER/<model stem>_int8.tflite``."""
    text = os.fspath(out_stem)
    stem = Path(text)
    if text.endswith(("/", os.sep)) or stem.is_dir():
        if model_path is None:
            raise ConvertError(f"--out {text}: a folder; give an output stem (folder/NAME)")
        stem = stem / Path(model_path).stem
    elif stem.suffix.lower() in (".tflite", ".json"):
        stem = stem.with_suffix("")
    if not stem.name:
        raise ConvertError(f"--out {text!r}: give an output stem such as models/NAME")
    return {fmt: stem.parent / f"{stem.name}_{fmt}.tflite" for fmt in formats}


def check_outputs(out_stem: str | Path, paths: dict[str, Path]) -> None:
    """Raise :class:`ConvertError` when a model or sidecar of ``paths`` cannot be written."""
    for path in paths.values():
        for target in (path, path.with_suffix(".json")):
            why = file_problem(target)
            if why:
                raise ConvertError(f"--out {out_stem}: cannot write {target}: {why}")


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
    training_from: str | Path | None = None,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
) -> ConvertResult:
    """Convert ``keras_path`` to the ``formats`` as ``<out_stem>_<format>.tflite`` + ``.json``
    (``out_stem`` a folder: ``<folder>/<model stem>_<format>.tflite``).

    Raises :class:`ConvertError` for bad input (before anything is converted or written), and
    :class:`AccuracyDropError` (after writing everything) when int8 loses more than
    ``max_drop`` points of accuracy against float on the held-out faces, or gives float's
    top-1 class on fewer than ``min_agreement`` percent of them, and ``force`` is false.
    ``echo`` (e.g. ``print``) receives progress lines; warnings (few calibration faces, a
    class without any) are logged.
    """
    say = echo or (lambda *_: None)
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ConvertError(
            f"unknown format(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(FORMATS)}"
        )
    if n_calibration < 1:
        raise ConvertError(f"--calibration-size {n_calibration}: must be at least 1")
    if check_size < 0:
        raise ConvertError(f"--check-size {check_size}: must be at least 0 (0: all the faces)")
    if not 0 <= min_agreement <= 100:
        raise ConvertError(f"--min-agreement {min_agreement:g}: must be between 0 and 100")
    calibration_dir = Path(calibration_dir)
    if "int8" in formats and not calibration_dir.exists():
        raise ConvertError(
            f"{calibration_dir}: calibration data not found (no such file or folder)"
        )
    for flag, given in (("--calibration-data", calibration_dir), ("--check-data", check_data)):
        if given is not None and (flag != "--check-data" or check):
            why = data_problem(Path(given))
            if why:
                raise ConvertError(f"{flag} {given}: {why}")
    keras_file = model_file(keras_path)
    if not keras_file.is_file():
        raise ConvertError(f"{keras_file}: model file not found")
    paths = output_paths(out_stem, formats, keras_file)
    check_outputs(out_stem, paths)

    source = load_source_model(keras_file, trained_on)
    if training_from is not None:
        source.trained_on, source.training = training_record(training_from)
    say(
        f"model: {source.path} ({source.model.name}, {source.model.count_params():,} parameters, "
        f"input {source.input_size[0]}x{source.input_size[1]}x{source.channels}); "
        f"trained on: {source.trained_on}"
    )
    splits = load_source(calibration_dir, source.input_size[0], progress)
    calib = representative_set(splits, calibration_dir, n_calibration, seed)
    asked = f" of {n_calibration} asked for" if len(calib) < n_calibration else ""
    say(
        f"calibration: {len(calib)} real faces{asked} from {calibration_dir} ({calib.where()}, "
        f"seed {seed}): " + ", ".join(f"{k} {v}" for k, v in calib.per_class().items())
    )
    warn_about_calibration(calib, calibration_dir, n_calibration)
    held = None
    if check:  # the held-out faces are found before anything is written
        held = check_set(
            check_data,
            calibration_dir,
            splits,
            calib,
            source.input_size[0],
            check_size,
            seed,
            progress,
        )

    source.model, source.pixels = exact_input(source.model, calib.faces(source.channels)[:64])
    if source.pixels["rewritten"]:
        say(
            f"pixels: p / 127.5 - 1 rewritten as {source.pixels['pixels']}, exact in int8 "
            f"(largest score change {source.pixels['largest_score_change']:.1e} on "
            f"{source.pixels['checked_on_faces']} calibration faces)"
        )
    else:
        say(f"pixels: {source.pixels['pixels']}")

    next(iter(paths.values())).parent.mkdir(parents=True, exist_ok=True)
    models: dict[str, ConvertedModel] = {}
    for fmt, path in paths.items():
        say(f"converting to {fmt} ...")
        data = tflite_bytes(source, fmt, calib if fmt == "int8" else None)
        zero_biases = None
        if fmt == "int8":
            data, zero_biases = with_zero_biases(data, calib.faces(source.channels), str(path))
            if zero_biases["fully_connected_zero_biases"]:
                say(
                    f"  zero biases: {zero_biases['fully_connected_zero_biases']} int8 "
                    "FULLY_CONNECTED without a bias given one (for tflite-runtime on aarch64); "
                    f"outputs bit-identical on {zero_biases['checked_on_faces']} calibration faces"
                )
        path.write_bytes(data)
        details = inspect_tflite(path)
        if fmt == "int8":
            check_full_integer(path, details)
        info = sidecar.compose(
            source, fmt, FORMATS[fmt], path, details, calib if fmt == "int8" else None
        )
        if zero_biases is not None:
            info["zero_biases"] = {**zero_biases, "checked_on": "calibration faces"}
        sidecar_path = write_sidecar(path, info)
        models[fmt] = ConvertedModel(fmt, path, sidecar_path, len(data))
        say(f"  wrote {path} ({len(data) / 1024:,.0f} KiB) and {sidecar_path.name}")

    result = ConvertResult(models, calib.describe())
    if held is None:
        return result
    reference = paths.get("float32") or source.path
    note = f"; {held.note}" if held.note else ""
    say(
        f"checking against float ({Path(reference).name}) on {len(held.data)} held-out faces "
        f"({held.source}, {held.where()}{note}) ..."
    )
    result.check = check_models(paths, held, Path(reference), max_drop, min_agreement)
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
        raise AccuracyDropError(
            "; ".join(result.check["failures"])
            + f" on {len(held.data)} held-out faces. The files are written; check the "
            "model and the calibration data, or pass --force to accept them.",
            result,
        )
    return result
