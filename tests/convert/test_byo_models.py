"""Models DeepFER did not make (bring your own): TFLite files of other kinds run with the
results TensorFlow's own interpreter gives, and a Keras model's sidecar gives its label order.

The models are tiny untrained Keras graphs converted here once per session (seconds): what is
checked is how DeepFER feeds and reads them, not what they have learnt."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import made_once

from deepfer.edge.errors import ModelInfoError, ModelLoadError
from deepfer.edge.labels import LABELS
from deepfer.edge.model.classifier import EmotionClassifier

pytestmark = pytest.mark.slow

CSV_ORDER = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def _faces(n: int = 12, size: int = 48) -> np.ndarray:
    """Face-like crops of varied light (the models are untrained: any pixels do)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (n, size, size), dtype=np.uint8).astype(np.float32)
    return np.clip(base * rng.uniform(0.2, 1.0, (n, 1, 1)), 0, 255).astype(np.uint8)


def _build(nchw: bool = False, softmax: bool = True, two_outputs: bool = False):
    import keras

    keras.utils.set_random_seed(1)
    inp = keras.Input((1, 48, 48) if nchw else (48, 48, 1))
    x = keras.layers.Permute((2, 3, 1))(inp) if nchw else inp
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(x)
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    init = keras.initializers.RandomNormal(stddev=0.5)
    scores = keras.layers.Dense(7, kernel_initializer=init)(x)
    out = keras.layers.Softmax()(scores) if softmax else scores
    return keras.Model(inp, [keras.layers.Dense(2)(x), out] if two_outputs else out)


def _convert(model, path: Path, io_type=None, nchw: bool = False) -> Path:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if io_type is not None:
        shape = (1, 1, 48, 48) if nchw else (1, 48, 48, 1)
        faces = _faces(8).astype(np.float32)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([f.reshape(shape)] for f in faces)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = io_type
    path.write_bytes(converter.convert())
    return path


def _sidecar(path: Path, **extra) -> None:
    info = {"labels": list(LABELS), "input": {"size": [48, 48]}, "trained_on": "nothing"}
    path.with_suffix(".json").write_text(json.dumps({**info, "metrics": {}, **extra}))


@pytest.fixture(scope="session")
def byo_models(tmp_path_factory) -> Path:
    """A folder of tiny models of the kinds other converters write, each with a sidecar."""
    pytest.importorskip("tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    def make(folder: Path) -> Path:
        import tensorflow as tf

        plain = _build()
        plain.save(folder / "plain.keras")
        _convert(plain, folder / "uint8.tflite", tf.uint8)  # Coral-style uint8 input and output
        _convert(_build(nchw=True), folder / "nchw.tflite", nchw=True)
        _convert(_build(two_outputs=True), folder / "two.tflite")
        _convert(_build(softmax=False), folder / "logits.tflite", tf.int8)
        for name in ("uint8", "nchw", "two"):
            _sidecar(folder / f"{name}.tflite")
        _sidecar(folder / "logits.tflite", output={"kind": "logits"})
        return folder

    return made_once(tmp_path_factory, "byo_models", make)


def _reference(path: Path, faces: np.ndarray) -> np.ndarray:
    """TensorFlow's own interpreter on the same crops, fed and read by each tensor's own
    layout, scale and zero point; the 7-score output (softmaxed when it is logits)."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = next(o for o in interpreter.get_output_details() if o["shape"][-1] == 7)
    rows = []
    for face in faces.astype(np.float32):
        x = face.reshape(inp["shape"])  # (1, 48, 48, 1) or (1, 1, 48, 48): one channel
        scale, zero = inp["quantization"]
        if scale:
            x = np.round(x / scale) + zero
        interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])[0].astype(np.float32)
        scale, zero = out["quantization"]
        rows.append((y - zero) * scale if scale else y)
    return np.array(rows)


@pytest.mark.parametrize("name", ["uint8", "nchw", "two", "logits"])
def test_other_kinds_of_tflite_give_tensorflows_results(byo_models, name):
    path = byo_models / f"{name}.tflite"
    faces = _faces()
    got = EmotionClassifier(path).infer(faces)
    want = _reference(path, faces)
    if name == "logits":
        e = np.exp(want - want.max(1, keepdims=True))
        want = e / e.sum(1, keepdims=True)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert len(set(want.argmax(1))) > 1  # the faces tell the model something


def test_logits_said_in_the_sidecar_are_softmaxed_even_when_they_look_like_probabilities(
    byo_models, tmp_path
):
    from deepfer.edge.model.classifier import as_probabilities

    looks_like = np.full((1, 7), 1 / 7, np.float32)
    looks_like[0, 0] += 0.02
    looks_like[0, 1] -= 0.02
    assert as_probabilities(looks_like)[0, 0] == pytest.approx(looks_like[0, 0])
    assert as_probabilities(looks_like, logits=True)[0, 0] < 0.15  # softmax: near-equal
    assert EmotionClassifier(byo_models / "logits.tflite").logits
    assert not EmotionClassifier(byo_models / "uint8.tflite").logits
    copy = tmp_path / "odd.tflite"
    shutil.copy(byo_models / "uint8.tflite", copy)
    _sidecar(copy, output={"kind": "softmax"})
    with pytest.raises(ModelInfoError, match="odd.json: output.kind must be one of"):
        EmotionClassifier(copy)


def test_a_sidecar_that_does_not_fit_the_graph_is_refused_saying_how(byo_models, tmp_path):
    copy = tmp_path / "small.tflite"
    shutil.copy(byo_models / "nchw.tflite", copy)
    _sidecar(copy, input={"size": [44, 44]})
    with pytest.raises(ModelLoadError, match=r"small.tflite: input shape .*set input.size in"):
        EmotionClassifier(copy)
    _sidecar(copy, labels=LABELS[:5])
    with pytest.raises(ModelLoadError, match="holds 7 values but the sidecar lists 5 labels"):
        EmotionClassifier(copy)


def test_a_keras_models_sidecar_gives_its_label_order(byo_models, tmp_path):
    from deepfer.convert.errors import ConvertError
    from deepfer.convert.source import load_source_model
    from deepfer.evaluate.predictors import EvaluateError, load_predictor

    model = tmp_path / "csv.keras"
    shutil.copy(byo_models / "plain.keras", model)
    faces = _faces(6)[..., None]
    as_deepfer = load_predictor(model).predict(faces)  # no sidecar: DeepFER's order
    _sidecar(model, labels=CSV_ORDER)
    columns = [CSV_ORDER.index(label) for label in LABELS]
    np.testing.assert_allclose(load_predictor(model).predict(faces), as_deepfer[:, columns])
    assert load_source_model(model).labels == CSV_ORDER  # what convert writes in its sidecars

    _sidecar(model, input={"size": [64, 64]})
    with pytest.raises(EvaluateError, match=r"csv.json: input.size \[64, 64\] but the model"):
        load_predictor(model)
    with pytest.raises(ConvertError, match=r"csv.json: input.size \[64, 64\] but the model"):
        load_source_model(model)
    model.with_suffix(".json").write_text(json.dumps({"labels": CSV_ORDER}))
    with pytest.raises(ModelInfoError, match="csv.json: missing key"):
        load_predictor(model)
    with pytest.raises(ConvertError, match="csv.json: missing key"):
        load_source_model(model)


def test_a_keras_graph_that_outputs_probabilities_is_said_so():
    """convert writes ``output.kind: probabilities`` where the graph shows it (a softmax, the
    flip average or an ensemble's mean of softmaxes; the shipped models' last op is the
    average, not SOFTMAX), and leaves logits and unnormalised mixes to the converted graph."""
    from deepfer.convert.source import keras_output_kind
    from deepfer.train.ensemble import build_ensemble
    from deepfer.train.models import with_flip_average

    probs, logits = _build(), _build(softmax=False)
    flip = with_flip_average(probs)
    assert keras_output_kind(probs) == "probabilities"
    assert keras_output_kind(flip) == "probabilities"
    assert keras_output_kind(build_ensemble([flip, probs], [1, 1])) == "probabilities"
    assert keras_output_kind(build_ensemble([flip, probs], [0.3, 0.7])) == "probabilities"
    assert keras_output_kind(logits) is None
    assert keras_output_kind(with_flip_average(logits)) is None
    assert keras_output_kind(build_ensemble([probs, logits], [1, 1])) is None
    # weights that do not sum to 1 (build_ensemble normalises them; a hand-made mix may not)
    assert keras_output_kind(build_ensemble([probs, probs], [0.5, 1.0])) is None


def test_keras_graphs_of_other_inputs_or_outputs_are_refused_alike(tmp_path):
    """convert and evaluate refuse a Keras graph that cannot take a face crop and give its
    scores with the same words (evaluate/model_file.keras_io_problem)."""
    import keras

    from deepfer.convert.errors import ConvertError
    from deepfer.convert.source import load_source_model
    from deepfer.evaluate.predictors import EvaluateError, load_predictor

    flat = keras.Input((48 * 48,))
    graphs = {
        "two.keras": (_build(two_outputs=True), r"expected one input \(the face\) and one output "
                      r"\(the class scores\), got 1 input\(s\) and 2 output\(s\)"),
        "flat.keras": (keras.Model(flat, keras.layers.Dense(7)(flat)),
                       r"expected an image input \(n, height, width, channels\), got \(None, 2304\)"),
    }  # fmt: skip
    for name, (model, says) in graphs.items():
        path = tmp_path / name
        model.save(path)
        says = f"{name}: not a DeepFER emotion classifier: {says}"
        with pytest.raises(EvaluateError, match=says):
            load_predictor(path)
        with pytest.raises(ConvertError, match=says):
            load_source_model(path)
