"""Models normalising pixels as p / 127.5 - 1 are rewritten to (p - 128) / 128 before
conversion: the same scores, and an int8 graph whose first operation is exact."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from deepfer.convert.exact_input import NEW, exact_input  # noqa: E402
from deepfer.train.models import with_flip_average  # noqa: E402

pytestmark = pytest.mark.slow


def _old_model(bias: bool = False, first=None, seed: int = 0, padding: str = "same"):
    """A small classifier built the way DeepFER's were before 2026-12-04."""
    layers = keras.layers
    inputs = keras.Input((48, 48, 1), name="face")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    x = (first or layers.Conv2D(8, 3, padding=padding, use_bias=bias, name="conv1"))(x)
    if not bias:
        x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same", name="conv2")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(7, activation="softmax", name="emotion")(x)
    model = keras.Model(inputs, outputs, name="old")
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in model.get_weights()])
    if not bias:  # batch-norm statistics that matter: variance > 0, mean off zero
        bn = model.get_layer("bn1")
        g, b, mean, var = bn.get_weights()
        bn.set_weights([g, b, mean, np.abs(var) + 0.5])
    return model


def _faces(n: int = 32, seed: int = 1) -> np.ndarray:
    """Face-like pixels: smooth shapes over the whole 0..255 range, borders included."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:48] / 47.0
    out = []
    for _ in range(n):
        a, b, c = rng.uniform(-1, 1, 3)
        img = 127.5 + 120 * np.sin(3 * a * xx + 2 * b * yy + c) + rng.normal(0, 8, (48, 48))
        out.append(np.clip(img, 0, 255).round())
    return np.stack(out)[..., None].astype("float32")


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_the_rewritten_model_gives_the_same_scores(bias, padding):
    """Exact where the first convolution sees only pixels; with zero padding, its border
    now pads with grey 128 instead of 127.5, a small change."""
    model = _old_model(bias, padding=padding)
    x = _faces()
    rewritten, record = exact_input(model, x)
    assert record["rewritten"] and record["pixels"] == NEW == "(p - 128) / 128"
    tolerance = 1e-5 if padding == "valid" else 5e-3
    assert record["largest_score_change"] < tolerance
    layer = rewritten.get_layer("rescale")
    assert isinstance(layer, keras.layers.Normalization)
    np.testing.assert_allclose(
        rewritten.predict(x, verbose=0), model.predict(x, verbose=0), atol=tolerance
    )
    # the original is left as it was
    assert isinstance(model.get_layer("rescale"), keras.layers.Rescaling)


def test_nested_models_are_rewritten_too():
    """The flip-averaging wrapper (and an ensemble) call the classifier as a nested model."""
    wrapped = with_flip_average(_old_model(padding="valid"))
    x = _faces()
    rewritten, record = exact_input(wrapped, x)
    assert record["rewritten"] and record["layers"] == ["old/rescale"]
    np.testing.assert_allclose(
        rewritten.predict(x, verbose=0), wrapped.predict(x, verbose=0), atol=1e-5
    )


def test_new_models_and_unknown_layouts_are_left_as_they_are():
    from deepfer.train.models import make_model

    new = make_model("deepfer-edge")
    same, record = exact_input(new, _faces(4))
    assert same is new and record == {"pixels": NEW, "rewritten": False}
    dense_first = _old_model(first=keras.layers.Dense(8, name="conv1"))
    same, record = exact_input(dense_first, _faces(4))
    assert same is dense_first and not record["rewritten"] and "Dense" in record["pixels"]


def _first_op_output(model, x) -> tuple[str, float, int]:
    """The int8 graph's first operation and the quantisation of what it writes."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[i : i + 1]] for i in range(len(x)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    op = interpreter._get_ops_details()[0]
    scale, zero = interpreter.get_tensor_details()[op["outputs"][0]]["quantization"]
    return op["op_name"], scale, zero


def test_the_int8_graph_starts_with_an_exact_step():
    """Old: a multiply quantised with a step of about 1.5 grey levels (scale near 3/255).
    Rewritten: p - 128 at scale 1, zero point 0, which holds every pixel exactly."""
    x = _faces(64)
    x[0, 0, 0, 0], x[0, 0, 1, 0] = 0.0, 255.0  # the whole range, as real faces have
    model = _old_model()
    name, scale, _ = _first_op_output(model, x)
    assert name == "MUL" and scale > 1.2 / 127.5  # coarser than one grey level
    rewritten, _ = exact_input(model, x)
    name, scale, zero = _first_op_output(rewritten, x)
    assert (name, scale, zero) == ("SUB", 1.0, 0)
