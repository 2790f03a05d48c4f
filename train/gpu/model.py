"""deepfer-vgg in JAX: weights under Keras layer names, the forward pass."""

from __future__ import annotations

import math

SIZE = 48
NUM_CLASSES = 7
WIDTHS = (32, 64, 128, 256)
BLOCK_DROPOUT = (0.0, 0.0, 0.1, 0.2)
FC_DROPOUT = 0.3
L2 = 1e-5
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
#: pixels p become (p - 128) / 128, as deepfer.edge.preprocess says (the parity test checks)
PIXEL_CENTRE = PIXEL_SCALE = 128.0


def conv_names() -> list[str]:
    return [f"block{i}{s}" for i in range(1, len(WIDTHS) + 1) for s in "ab"]


def layer_weights() -> dict[str, list[str]]:
    """Keras layer name -> the names of its weights here, in ``layer.get_weights()`` order."""
    out: dict[str, list[str]] = {}
    for name in conv_names():
        out[f"{name}_conv"] = [f"{name}_conv/kernel"]
        out[f"{name}_bn"] = [f"{name}_bn/{w}" for w in ("gamma", "beta", "mean", "var")]
    out["fc256"] = ["fc256/kernel"]
    out["fc256_bn"] = [f"fc256_bn/{w}" for w in ("gamma", "beta", "mean", "var")]
    out["emotion"] = ["emotion/kernel", "emotion/bias"]
    return out


def split_state(weights: dict) -> tuple[dict, dict]:
    """``(trainable parameters, batch-norm moving statistics)``."""
    params = {k: v for k, v in weights.items() if not k.endswith(("/mean", "/var"))}
    state = {k: v for k, v in weights.items() if k.endswith(("/mean", "/var"))}
    return params, state


def init_weights(key):
    """Keras' initialisers: Glorot-uniform kernels, zero biases, BN gamma 1 beta 0 mean 0 var 1."""
    import jax
    import jax.numpy as jnp

    def glorot(k, shape, fan_in, fan_out):
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return jax.random.uniform(k, shape, jnp.float32, -limit, limit)

    keys = iter(jax.random.split(key, 16))
    w: dict = {}

    def bn(name, n):
        w[f"{name}/gamma"] = jnp.ones(n)
        w[f"{name}/beta"] = jnp.zeros(n)
        w[f"{name}/mean"] = jnp.zeros(n)
        w[f"{name}/var"] = jnp.ones(n)

    cin = 1
    for i, width in enumerate(WIDTHS, 1):
        for s in "ab":
            name = f"block{i}{s}"
            w[f"{name}_conv/kernel"] = glorot(next(keys), (3, 3, cin, width), 9 * cin, 9 * width)
            bn(f"{name}_bn", width)
            cin = width
    side = SIZE // 2 ** len(WIDTHS)
    flat = side * side * WIDTHS[-1]
    w["fc256/kernel"] = glorot(next(keys), (flat, 256), flat, 256)
    bn("fc256_bn", 256)
    w["emotion/kernel"] = glorot(next(keys), (256, NUM_CLASSES), 256, NUM_CLASSES)
    w["emotion/bias"] = jnp.zeros(NUM_CLASSES)
    return w


def forward(params, state, x, key, mode: str, dtype):
    """Logits of faces ``x`` (n, 48, 48) float 0..255, and the new batch-norm state.

    ``mode``: ``train`` (batch statistics, moving averages updated, dropout), ``eval``
    (moving statistics), ``collect`` (batch statistics, returned as the state; no dropout).
    """
    import jax
    import jax.numpy as jnp
    from jax import lax

    h = ((x[..., None] - PIXEL_CENTRE) / PIXEL_SCALE).astype(jnp.float32)  # the Keras model's
    new_state = {}
    keys = iter(jax.random.split(key, 8)) if key is not None else None

    def batchnorm(h, name):
        gamma, beta = params[f"{name}/gamma"], params[f"{name}/beta"]
        if mode == "eval":
            mean, var = state[f"{name}/mean"], state[f"{name}/var"]
        else:
            axes = tuple(range(h.ndim - 1))
            mean, var = h.mean(axes), h.var(axes)
            if mode == "train":
                m = BN_MOMENTUM
                new_state[f"{name}/mean"] = state[f"{name}/mean"] * m + mean * (1 - m)
                new_state[f"{name}/var"] = state[f"{name}/var"] * m + var * (1 - m)
            else:
                new_state[f"{name}/mean"], new_state[f"{name}/var"] = mean, var
        return (h - mean) * lax.rsqrt(var + BN_EPSILON) * gamma + beta

    def dropout(h, rate):
        if mode != "train" or not rate:
            return h
        keep = jax.random.bernoulli(next(keys), 1.0 - rate, h.shape)
        return jnp.where(keep, h / (1.0 - rate), 0.0)

    def conv(h, kernel):
        return lax.conv_general_dilated(
            h.astype(dtype),
            kernel.astype(dtype),
            (1, 1),
            "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            preferred_element_type=jnp.float32,
        )

    for i in range(1, len(WIDTHS) + 1):
        for s in "ab":
            name = f"block{i}{s}"
            h = jax.nn.relu(batchnorm(conv(h, params[f"{name}_conv/kernel"]), f"{name}_bn"))
        h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        h = dropout(h, BLOCK_DROPOUT[i - 1])
    h = h.reshape(h.shape[0], -1)
    h = jnp.dot(
        h.astype(dtype), params["fc256/kernel"].astype(dtype), preferred_element_type=jnp.float32
    )
    h = dropout(jax.nn.relu(batchnorm(h, "fc256_bn")), FC_DROPOUT)
    logits = jnp.dot(h, params["emotion/kernel"]) + params["emotion/bias"]
    return logits, new_state
