"""Zero biases for bias-less int8 FULLY_CONNECTED ops (tflite-runtime 2.14 crashes on aarch64
without them): added by every int8 conversion, checked bit-identical, and the edge's guard
that refuses such a model on tflite-runtime on aarch64 (tested here with the runtime and
machine passed in: it needs a model made by TensorFlow)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepfer.convert.errors import ConvertError
from deepfer.convert.zero_bias import add_zero_biases, check_same_outputs
from deepfer.edge.model import runtime

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:Statistics for quantized inputs"),
]


def _mirror_int8(folder) -> bytes:
    """One bias-less Dense over the rows of a (4, 8) input: the flip average's mirror in small."""
    import keras
    import tensorflow as tf

    inputs = keras.Input(shape=(4, 8))
    mirror = keras.layers.Dense(8, use_bias=False)
    model = keras.Model(inputs, mirror(inputs))
    mirror.set_weights([np.eye(8, dtype="float32")[::-1]])
    rng = np.random.default_rng(0)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [rng.uniform(0, 255, (1, 4, 8)).astype("float32")] for _ in range(16)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def _interpreter(path, data: bytes):
    path.write_bytes(data)
    return runtime.make_interpreter(path, num_threads=1)[0]


def test_the_guard_and_the_zero_bias(tmp_path):
    plain = _mirror_int8(tmp_path)
    before = _interpreter(tmp_path / "plain.tflite", plain)
    assert len(runtime.bias_less_int8_fully_connected(before)) == 1
    why = runtime.runtime_problem("m.tflite", before, "tflite-runtime", machine="aarch64")
    assert "without a bias" in why and "segmentation fault" in why
    assert "ai-edge-litert" in why and "deepfer convert" in why
    for name, machine in (("tflite-runtime", "x86_64"), ("ai-edge-litert", "aarch64")):
        assert runtime.runtime_problem("m.tflite", before, name, machine=machine) is None

    patched, added = add_zero_biases(plain)
    assert added == 1
    after = _interpreter(tmp_path / "patched.tflite", patched)
    assert runtime.bias_less_int8_fully_connected(after) == []
    assert runtime.runtime_problem("m.tflite", after, "tflite-runtime", machine="aarch64") is None
    faces = np.random.default_rng(1).uniform(0, 255, (20, 4, 8)).astype("float32")
    assert check_same_outputs(plain, patched, faces, "m") == 20
    assert add_zero_biases(patched) == (patched, 0)  # nothing left to patch

    # a graph that computes something else is refused: the same bias, made non-zero
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(patched))
    model.buffers[-1].data = np.frombuffer(np.full(8, 1000, "<i4").tobytes(), np.uint8)
    other = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    with pytest.raises(ConvertError, match="changed its outputs .* not written"):
        check_same_outputs(plain, other, faces, "m")


def test_convert_gives_the_flip_average_a_zero_bias(tmp_path, tiny_keras_model, tiny_fer):
    import keras

    from deepfer.convert.quantize import convert_model
    from deepfer.train.models import with_flip_average

    flipped = tmp_path / "flip.keras"
    with_flip_average(keras.models.load_model(tiny_keras_model)).save(flipped)
    result = convert_model(flipped, tiny_fer, tmp_path / "flip", 35, formats=["int8"], check=False)
    path = result.path("int8")
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["zero_biases"] == {
        "fully_connected_zero_biases": 1,
        "checked_on_faces": 35,
        "outputs": "bit-identical",
        "checked_on": "calibration faces",
    }
    interpreter = runtime.make_interpreter(path, num_threads=1)[0]
    assert runtime.bias_less_int8_fully_connected(interpreter) == []
