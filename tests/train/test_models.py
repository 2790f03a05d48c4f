"""The model zoo: every name builds with the right shapes, and scales pixels itself."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from deepfer.train.models import MODELS, load_for_finetune, make_model  # noqa: E402


@pytest.mark.parametrize("name", sorted(MODELS))
def test_make_model_builds_every_name(name):
    model = make_model(name)  # mobilenetv3small: weights=None by default, nothing downloaded
    assert model.input_shape == (None, 48, 48, 1)
    assert model.output_shape == (None, 7)
    # raw 0..255 pixels in, probabilities out: the normalisation is a layer of the model
    x = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 1)).astype("float32")
    probs = np.asarray(model(x, training=False))
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    names = [layer.name for layer in model.layers]
    if name == "mobilenetv3small":
        backbone = model.get_layer("MobileNetV3Small")
        assert any(isinstance(la, keras.layers.Rescaling) for la in backbone.layers)
    else:
        assert names[1] == "rescale"
        assert isinstance(model.layers[1], keras.layers.Normalization)
        # (p - 128) / 128: exact in int8 (deepfer.convert.exact_input)
        pixels = np.zeros((1, 48, 48, 1), "float32")
        pixels[0, 0, :3, 0] = (0.0, 128.0, 255.0)
        scaled = np.asarray(keras.Model(model.input, model.layers[1].output)(pixels))
        np.testing.assert_allclose(scaled[0, 0, :3, 0], [-1.0, 0.0, 127 / 128], atol=1e-6)


def test_parameter_counts():
    assert make_model("deepfer-cnn").count_params() == pytest.approx(1.72e6, rel=0.01)
    edge = make_model("deepfer-edge").count_params()
    assert edge < 0.3e6 and edge < make_model("deepfer-vgg").count_params() / 4


def test_input_shape_and_class_count_options():
    model = make_model("deepfer-edge", input_shape=(64, 64, 1), num_classes=3)
    assert model.input_shape == (None, 64, 64, 1) and model.output_shape == (None, 3)
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        make_model("resnet")


@pytest.mark.slow
def test_load_for_finetune(tiny_keras_model):
    same = load_for_finetune(tiny_keras_model)
    assert same.output_shape == (None, 7)
    three = load_for_finetune(tiny_keras_model, num_classes=3)
    assert three.output_shape == (None, 3)
    # the body keeps its trained weights
    body = same.layers[-2].output
    assert three.get_layer(index=-2).output.shape == body.shape


@pytest.mark.slow
def test_with_flip_average_is_the_mean_of_face_and_mirror(tiny_keras_model):
    import numpy as np

    from deepfer.train.models import with_flip_average

    model = keras.models.load_model(tiny_keras_model)
    wrapped = with_flip_average(model)
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1)).astype("float32")
    expected = (model.predict(x, verbose=0) + model.predict(x[:, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), expected, atol=1e-5)
    # the same weights; the only addition is the fixed 48x48 mirror permutation
    assert wrapped.count_params() == model.count_params() + 48 * 48
    assert not wrapped.get_layer("mirror").trainable
