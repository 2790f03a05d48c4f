"""Model zoo: ``make_model(name, input_shape, num_classes)``.

Every model takes raw grayscale pixels 0..255; scaling is its first layer.

| name | what | params | expected FER2013 PublicTest accuracy |
|---|---|---|---|
| ``deepfer-cnn`` | the seed's 4-block CNN (64-128-256-512) | ~1.72M | ~60-63% (under-fits with its dropout) |
| ``deepfer-vgg`` | 8 conv VGG-style, 32-64-128-256, two convs per block | ~1.77M | 65.5% in 40 epochs; 68.7% after 88 epochs, SWA and flip averaging (models/MODEL_CARD.md) |
| ``deepfer-edge`` | depthwise-separable, int8-friendly, few MACs | ~0.14M | a few points below deepfer-vgg |
| ``mobilenetv3small`` | keras.applications backbone (minimalistic) at 96x96, for transfer learning | ~0.45M | needs ImageNet weights to shine |
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from deepfer.edge.errors import DeepFERError
from deepfer.edge.labels import NUM_CLASSES
from deepfer.edge.preprocess import PIXEL_CENTRE, PIXEL_SCALE
from deepfer.evaluate.model_file import keras_file_problem

log = logging.getLogger(__name__)


class ModelFileError(DeepFERError, ValueError):
    """A Keras model file that is missing or cannot be loaded; the message names the file."""


def _keras():
    import keras

    return keras


# Raw pixels p (0..255) become (p - 128) / 128, in [-1, 1). The int8 graph's input holds
# p - 128 exactly, so the subtraction is exact in int8 and the division folds into the
# first convolution. ``p / 127.5 - 1`` (models before 2026-12-04) cannot be exact: its
# 256 values sit half a step off any int8 grid, and the converter quantised it through
# a 1.5-grey-level step (``deepfer.convert.exact_input`` rewrites such models).


def _scale(x):
    """Raw 0..255 pixels -> [-1, 1); the only normalisation, inside the model."""
    layers = _keras().layers
    return layers.Normalization(mean=PIXEL_CENTRE, variance=PIXEL_SCALE**2, name="rescale")(x)


def _conv_bn_relu(x, filters, name, kernel=3, separable=False, l2=0.0):
    keras = _keras()
    layers = keras.layers
    reg = keras.regularizers.l2(l2) if l2 else None
    if separable:
        x = layers.SeparableConv2D(
            filters,
            kernel,
            padding="same",
            use_bias=False,
            name=f"{name}_sepconv",
            depthwise_regularizer=reg,
            pointwise_regularizer=reg,
        )(x)
    else:
        x = layers.Conv2D(
            filters,
            kernel,
            padding="same",
            use_bias=False,
            name=f"{name}_conv",
            kernel_regularizer=reg,
        )(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def deepfer_cnn(input_shape=(48, 48, 1), num_classes=NUM_CLASSES, dropout=0.25):
    """The seed projects' 4-block CNN: Conv-BN-ReLU-MaxPool-Dropout x4, dense 256-128."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="face")
    x = _scale(inputs)
    for i, filters in enumerate((64, 128, 256, 512), 1):
        x = _conv_bn_relu(x, filters, f"block{i}")
        x = layers.MaxPooling2D(name=f"block{i}_pool")(x)
        x = layers.Dropout(dropout, name=f"block{i}_drop")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    for units in (256, 128):
        x = layers.Dense(units, use_bias=False, name=f"fc{units}")(x)
        x = layers.BatchNormalization(name=f"fc{units}_bn")(x)
        x = layers.ReLU(name=f"fc{units}_relu")(x)
        x = layers.Dropout(dropout, name=f"fc{units}_drop")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="emotion", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="deepfer_cnn")


def deepfer_vgg(
    input_shape=(48, 48, 1),
    num_classes=NUM_CLASSES,
    widths=(32, 64, 128, 256),
    dropout=0.3,
    block_dropout=(0.0, 0.0, 0.1, 0.2),
    l2=1e-5,
):
    """VGG-style: two 3x3 Conv-BN-ReLU per block, max-pool, light dropout late.

    Deeper than deepfer-cnn at a similar cost (about 140M MACs per face), and
    regularised mainly by augmentation so that it does not under-fit.
    """
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="face")
    x = _scale(inputs)
    for i, filters in enumerate(widths, 1):
        x = _conv_bn_relu(x, filters, f"block{i}a", l2=l2)
        x = _conv_bn_relu(x, filters, f"block{i}b", l2=l2)
        x = layers.MaxPooling2D(name=f"block{i}_pool")(x)
        if block_dropout[i - 1]:
            x = layers.Dropout(block_dropout[i - 1], name=f"block{i}_drop")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(
        256,
        use_bias=False,
        name="fc256",
        kernel_regularizer=keras.regularizers.l2(l2) if l2 else None,
    )(x)
    x = layers.BatchNormalization(name="fc256_bn")(x)
    x = layers.ReLU(name="fc256_relu")(x)
    x = layers.Dropout(dropout, name="fc256_drop")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="emotion", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="deepfer_vgg")


def deepfer_edge(input_shape=(48, 48, 1), num_classes=NUM_CLASSES, dropout=0.2):
    """Edge-first: a plain conv stem, then depthwise-separable blocks.

    ReLU only, BatchNorm folded at conversion, no exotic ops: every layer has
    an int8 kernel, and the MAC count is a fraction of deepfer-cnn's.
    """
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="face")
    x = _scale(inputs)
    x = _conv_bn_relu(x, 32, "stem")
    x = layers.MaxPooling2D(name="stem_pool")(x)
    for i, filters in enumerate((64, 128, 256), 1):
        x = _conv_bn_relu(x, filters, f"block{i}a", separable=True)
        x = _conv_bn_relu(x, filters, f"block{i}b", separable=True)
        x = layers.MaxPooling2D(name=f"block{i}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="drop")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="emotion", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="deepfer_edge")


def mobilenetv3small(
    input_shape=(48, 48, 1),
    num_classes=NUM_CLASSES,
    weights: str | None = None,
    backbone_size: int = 96,
    dropout=0.2,
    trainable_backbone: bool = True,
):
    """Transfer learning: MobileNetV3Small on the face upscaled and made 3-channel.

    ``weights='imagenet'`` downloads ImageNet weights (needs internet);
    ``weights=None`` trains from scratch. MobileNetV3's own preprocessing
    layer takes the raw 0..255 pixels.
    """
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="face")
    x = inputs
    if input_shape[-1] == 1:
        x = layers.Concatenate(name="to_rgb")([x, x, x])
    if input_shape[0] != backbone_size or input_shape[1] != backbone_size:
        x = layers.Resizing(backbone_size, backbone_size, name="upscale")(x)
    backbone = keras.applications.MobileNetV3Small(
        input_shape=(backbone_size, backbone_size, 3),
        include_top=False,
        weights=weights,
        include_preprocessing=True,
        minimalistic=True,
    )
    backbone.trainable = trainable_backbone
    x = backbone(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="drop")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="emotion", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="mobilenetv3small")


MODELS: dict[str, Callable] = {
    "deepfer-cnn": deepfer_cnn,
    "deepfer-vgg": deepfer_vgg,
    "deepfer-edge": deepfer_edge,
    "mobilenetv3small": mobilenetv3small,
}


def make_model(name: str, input_shape=(48, 48, 1), num_classes: int = NUM_CLASSES, **kwargs):
    """Build a model of the zoo by name."""
    try:
        builder = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None
    return builder(input_shape=tuple(input_shape), num_classes=num_classes, **kwargs)


def load_keras_model(path, compile: bool = False, error: type[Exception] = ModelFileError):
    """``keras.models.load_model(path)``, a file that is not a model refused with one line
    naming it (``error``: the caller's DeepFERError subclass)."""
    problem = keras_file_problem(path)
    if problem:
        raise error(f"{path}: {problem}")
    keras = _keras()
    try:
        return keras.models.load_model(path, compile=compile)
    except Exception as exc:  # Keras raises many types for a file it cannot read
        text = " ".join(str(exc).split())
        text = text if len(text) <= 300 else text[:297] + "..."
        raise error(f"{path}: not a Keras model file (cannot be loaded: {text})") from None


def load_for_finetune(path, num_classes: int = NUM_CLASSES, error=ModelFileError):
    """Load a DeepFER ``.keras`` model to fine-tune; a new head if the class count differs
    (logged as a warning: that head starts from random weights)."""
    keras = _keras()
    model = load_keras_model(path, error=error)
    outputs = model.output_shape[-1] if not isinstance(model.output_shape, list) else None
    if outputs == num_classes:
        return model
    log.warning(
        "%s: the model gives %s, not %d scores: fine-tuning it with a new %d-class output "
        "layer in place of its last one, starting from random weights",
        path,
        f"{outputs} scores" if outputs is not None else "several outputs",
        num_classes,
        num_classes,
    )
    features = model.layers[-2].output
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", name="emotion_new", dtype="float32"
    )(features)
    return keras.Model(model.input, outputs, name=f"{model.name}_finetune")


def with_flip_average(model):
    """Wrap ``model`` so it averages its scores on the face and its mirror image.

    Test-time flip augmentation inside the model, built from stock Keras layers
    (the mirror is a fixed anti-identity Dense over the width axis, exact in
    int8), so the wrapped model saves, loads and converts like any other. The
    weights are shared: the file barely grows, inference costs two passes. The
    input contract is unchanged: raw 0..255 pixels.
    """
    import numpy as np

    keras = _keras()
    width = model.input_shape[2]
    inputs = keras.Input(shape=model.input_shape[1:], name="face")
    x = keras.layers.Permute((1, 3, 2), name="width_last")(inputs)
    mirror = keras.layers.Dense(width, use_bias=False, trainable=False, name="mirror")
    x = mirror(x)
    mirror.set_weights([np.eye(width, dtype="float32")[::-1]])
    mirrored = keras.layers.Permute((1, 3, 2), name="width_back")(x)
    outputs = keras.layers.Average(name="flip_average")([model(inputs), model(mirrored)])
    return keras.Model(inputs, outputs, name=f"{model.name}_flipavg")


#: ``--precision`` -> Keras dtype policy while training (weights stay float32 in both).
PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16"}
