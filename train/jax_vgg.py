"""deepfer-vgg trained in JAX on one GPU: several models at once, then students distilled
from their ensemble.

Why it exists: TensorFlow does not reach the GPU machines this project is sometimes lent
(no TensorFlow there, and its wheel is far over what can be carried), while JAX is installed
on them. This file is the ``deepfer train`` recipe of ``j12-long`` re-stated in JAX, so that
minutes of a GPU replace days of the desktop's two cores:

- the model is :func:`deepfer.train.models.deepfer_vgg` (same layers, names, initialisers,
  batch-norm epsilon and momentum, dropout, L2 on the kernels), so the weights it writes load
  into the Keras model unchanged (``train/jax_bridge.py``);
- SGD with Nesterov momentum 0.9 and Keras' decoupled weight decay, label smoothing 0.1, one
  cosine cycle (to 1% of the peak) after a linear warm-up, as ``train/config.learning_rate``;
- the augmentations of that run: flip, rotation (reflected fill), brightness, contrast, a
  random square crop of side 44..48 resized back, random erasing. Here they are one affine warp
  (flip, rotation and crop sampled together, bilinear) and pixel operations, on the GPU;
- weight averaging of the last epochs with batch-norm statistics recomputed on the training
  faces (``train/averaging.py``).

``--models M`` models train side by side (``jax.vmap``: each its own seed, shuffling and
augmentations), then ``--students S`` students start from the best of them and learn the
ensemble's flip-averaged scores on the same augmented views (``teacher_weight * scores + (1 -
teacher_weight) * label``, as ``train/distill.py``); the second student sees the views
degraded photometrically (brightness, contrast, gamma, sensor noise) while the teacher scores
the clean view, so it learns to answer on a dim or noisy face what the teacher says of the
clean one. Epoch counts follow a wall-clock ``--budget``: the second epoch of each phase is
timed and the cosine cycle is sized to what fits.

Self-contained on purpose (numpy, jax, opencv; no ``deepfer`` import) so that it runs from a
copied tree on a machine where nothing else is installed. Input: the ``.npz`` that ``python -m
deepfer.train.jax_bridge pack`` writes; output: ``teachers-K.npz``, ``students.npz`` (weights
under Keras layer names) and ``log.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import operator
import os
import sys
import time
from pathlib import Path

import numpy as np

SIZE = 48
NUM_CLASSES = 7
WIDTHS = (32, 64, 128, 256)
BLOCK_DROPOUT = (0.0, 0.0, 0.1, 0.2)
FC_DROPOUT = 0.3
L2 = 1e-5
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
MOMENTUM = 0.9

#: the j12-long recipe (benchmarks/results/j12-long/config.json)
RECIPE = {
    "lr": 0.01,
    "weight_decay": 5e-4,
    "warmup_epochs": 3,
    "label_smoothing": 0.1,
    "batch_size": 64,
    "rotation": 0.03,
    "brightness": 0.1,
    "contrast": 0.1,
    "crop": 44,
    "erase": 0.5,
}
#: the students' photometric views (the recipe pre-registered for the lighting probe)
PHOTOMETRIC = {"brightness": 0.3, "contrast": 0.5, "gamma": 0.4, "noise": 10.0}
ERASE_AREA = (0.02, 0.25)
ERASE_ASPECT = (0.3, 1 / 0.3)


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


# --------------------------------------------------------------------------- the model


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

    h = (x[..., None] / 127.5 - 1.0).astype(jnp.float32)
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


# --------------------------------------------------------------------------- augmentation


def augment_face(img, key, recipe: dict):
    """One face (48, 48) float 0..255 with the recipe's augmentations (module docstring)."""
    import jax
    import jax.numpy as jnp
    from jax.scipy.ndimage import map_coordinates

    k = jax.random.split(key, 12)
    n = SIZE
    flip = jax.random.bernoulli(k[0])
    turn = recipe["rotation"] * 2 * math.pi
    angle = jax.random.uniform(k[1], (), minval=-turn, maxval=turn)
    side = jax.random.uniform(k[2], (), minval=min(recipe["crop"], n) / n, maxval=1.0)
    top = jax.random.uniform(k[3]) * (1.0 - side)
    left = jax.random.uniform(k[4]) * (1.0 - side)
    # crop: samples from top*n to (top+side)*n - 1 (pixel indices) like crop_and_resize there
    step = (side * n - 1.0) / (n - 1)
    grid = jnp.arange(n, dtype=jnp.float32)
    rows, cols = jnp.meshgrid(top * n + grid * step, left * n + grid * step, indexing="ij")
    c = (n - 1) / 2.0
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    y = cos * (rows - c) - sin * (cols - c) + c
    x = sin * (rows - c) + cos * (cols - c) + c
    x = jnp.where(flip, (n - 1) - x, x)
    out = map_coordinates(img, [y, x], order=1, mode="reflect")
    b = recipe["brightness"] * 255.0
    out = jnp.clip(out + jax.random.uniform(k[5], (), minval=-b, maxval=b), 0.0, 255.0)
    f = jax.random.uniform(k[6], (), minval=1 - recipe["contrast"], maxval=1 + recipe["contrast"])
    mean = out.mean()
    out = jnp.clip((out - mean) * f + mean, 0.0, 255.0)
    if recipe["erase"]:
        frac = jax.random.uniform(k[7], (), minval=ERASE_AREA[0], maxval=ERASE_AREA[1])
        lo, hi = math.log(ERASE_ASPECT[0]), math.log(ERASE_ASPECT[1])
        ratio = jnp.exp(jax.random.uniform(k[8], (), minval=lo, maxval=hi))
        eh = jnp.minimum(jnp.sqrt(frac * ratio) * n, n)
        ew = jnp.minimum(jnp.sqrt(frac / ratio) * n, n)
        et = jax.random.uniform(k[9]) * (n - eh)
        el = jax.random.uniform(k[10]) * (n - ew)
        inside = (
            (grid[:, None] >= et)
            & (grid[:, None] < et + eh)
            & (grid[None] >= el)
            & (grid[None] < el + ew)
        )
        chosen = jax.random.uniform(k[11]) < recipe["erase"]
        noise = jax.random.uniform(jax.random.fold_in(key, 99), (n, n), minval=0.0, maxval=255.0)
        out = jnp.where(inside & chosen, noise, out)
    return out


def degrade_face(img, key, p: dict):
    """Brightness, contrast, gamma and sensor noise (``PHOTOMETRIC``) on one face."""
    import jax
    import jax.numpy as jnp

    k = jax.random.split(key, 5)
    b = p["brightness"] * 255.0
    out = jnp.clip(img + jax.random.uniform(k[0], (), minval=-b, maxval=b), 0.0, 255.0)
    f = jax.random.uniform(k[1], (), minval=1 - p["contrast"], maxval=1 + p["contrast"])
    mean = out.mean()
    out = jnp.clip((out - mean) * f + mean, 0.0, 255.0)
    g = jnp.exp(jax.random.uniform(k[2], (), minval=-p["gamma"], maxval=p["gamma"]))
    out = 255.0 * (out / 255.0) ** g
    sigma = jax.random.uniform(k[3], (), minval=0.0, maxval=p["noise"])
    return jnp.clip(out + sigma * jax.random.normal(k[4], img.shape), 0.0, 255.0)


# --------------------------------------------------------------------------- training


def lr_at(epoch: int, epochs: int, peak: float, warmup: int) -> float:
    """``train/config.learning_rate``: linear warm-up, then cosine to 1% of the peak."""
    if warmup and epoch < warmup:
        return peak * (epoch + 1) / (warmup + 1)
    t = (epoch - warmup) / max(epochs - warmup, 1)
    return peak * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0))))


def over_models(fn, layout: str, in_axes):
    """``fn`` over the leading (model) axis of the arguments whose ``in_axes`` is 0.

    ``vmap``: one batched computation (convolutions become grouped ones: fast where the
    backend has grouped kernels, as cuDNN does; XLA:CPU's are slow); ``unrolled``: one copy
    of ``fn`` per model in the graph (plain convolutions, more kernels to launch).
    """
    import jax
    import jax.numpy as jnp

    if layout == "vmap":
        return jax.vmap(fn, in_axes=in_axes)

    def unrolled(*args):
        mapped = [a for a, ax in zip(args, in_axes) if ax == 0]
        m = jax.tree.leaves(mapped[0])[0].shape[0]
        outs = []
        for i in range(m):
            one = [
                jax.tree.map(operator.itemgetter(i), a) if ax == 0 else a
                for a, ax in zip(args, in_axes)
            ]
            outs.append(fn(*one))
        return jax.tree.map(lambda *t: jnp.stack(t), *outs)

    return unrolled


def make_functions(
    recipe: dict, dtype_name: str, teacher_weight: float = 0.7, layout: str = "vmap"
):
    """The jitted step, evaluation and statistics functions (closures over the recipe)."""
    import jax
    import jax.numpy as jnp

    dtype = jnp.bfloat16 if dtype_name == "bf16" else jnp.float32
    ls = recipe["label_smoothing"]
    wd = recipe["weight_decay"]
    reg_keys = [f"{n}_conv/kernel" for n in conv_names()] + ["fc256/kernel"]

    def loss_fn(params, state, x, target, key):
        logits, new_state = forward(params, state, x, key, "train", dtype)
        target = target * (1.0 - ls) + ls / NUM_CLASSES
        ce = -(target * jax.nn.log_softmax(logits)).sum(-1).mean()
        reg = L2 * sum((params[k] ** 2).sum() for k in reg_keys)
        return ce + reg, (new_state, logits)

    def sgd(params, momenta, grads, lr):
        def one(p, m, g):
            p = p - p * wd * lr  # Keras: decoupled weight decay, scaled by the learning rate
            m = MOMENTUM * m - lr * g
            return p + MOMENTUM * m - lr * g, m

        out = jax.tree.map(one, params, momenta, grads)
        is_pair = lambda t: isinstance(t, tuple)  # noqa: E731
        return (
            jax.tree.map(lambda t: t[0], out, is_leaf=is_pair),
            jax.tree.map(lambda t: t[1], out, is_leaf=is_pair),
        )

    def views(x, key, photometric: bool):
        keys = jax.random.split(key, x.shape[0])
        v = jax.vmap(lambda im, k: augment_face(im, k, recipe))(x, keys)
        if photometric:
            keys = jax.random.split(jax.random.fold_in(key, 1), x.shape[0])
            v = jax.vmap(lambda im, k: degrade_face(im, k, PHOTOMETRIC))(v, keys)
        return v

    def model_step(params, state, momenta, x, target, key, lr):
        (loss, (new_state, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, state, x, target, key
        )
        params, momenta = sgd(params, momenta, grads, lr)
        hit = (logits.argmax(-1) == target.argmax(-1)).mean()
        return params, new_state, momenta, loss, hit

    def teacher_step(carry, faces, labels, idx, key, lr):
        """One step of M models side by side; ``idx`` (M, batch)."""
        params, state, momenta = carry
        m = idx.shape[0]
        x = faces[idx].astype(jnp.float32)  # (M, batch, 48, 48)
        target = jax.nn.one_hot(labels[idx], NUM_CLASSES)
        ks = jax.random.split(key, 2 * m)
        x = jax.vmap(lambda xi, ki: views(xi, ki, False))(x, ks[:m])
        params, state, momenta, loss, hit = over_models(model_step, layout, (0,) * 6 + (None,))(
            params, state, momenta, x, target, ks[m:], lr
        )
        return (params, state, momenta), loss, hit

    def ensemble_scores(t_params, t_state, x):
        """Mean over the teachers of face and mirror softmax (x: batch, 48, 48)."""

        def one(p, s):
            a = jax.nn.softmax(forward(p, s, x, None, "eval", dtype)[0])
            b = jax.nn.softmax(forward(p, s, x[:, :, ::-1], None, "eval", dtype)[0])
            return (a + b) / 2

        return over_models(one, layout, (0, 0))(t_params, t_state).mean(0)

    def student_step(carry, teachers, faces, labels, idx, key, lr):
        """One step of S students on a shared batch ``idx`` (batch,); student 0 sees the
        clean views, student 1 (if any) the photometrically degraded ones."""
        t_params, t_state = teachers
        params, state, momenta = carry
        s = jax.tree.leaves(params)[0].shape[0]
        k1, k2, k3 = jax.random.split(key, 3)
        clean = views(faces[idx].astype(jnp.float32), k1, False)
        scores = ensemble_scores(t_params, t_state, clean)
        onehot = jax.nn.one_hot(labels[idx], NUM_CLASSES)
        target = teacher_weight * scores + (1.0 - teacher_weight) * onehot
        degraded = views_photometric(clean, k2)
        x = jnp.stack([clean, degraded][:s]) if s <= 2 else jnp.stack([clean] * s)
        targets = jnp.broadcast_to(target, (s, *target.shape))
        ks = jax.random.split(k3, s)
        params, state, momenta, loss, hit = over_models(model_step, layout, (0,) * 6 + (None,))(
            params, state, momenta, x, targets, ks, lr
        )
        return (params, state, momenta), loss, hit

    def views_photometric(x, key):
        keys = jax.random.split(key, x.shape[0])
        return jax.vmap(lambda im, k: degrade_face(im, k, PHOTOMETRIC))(x, keys)

    @jax.jit
    def predict(params, state, x):
        """Softmax of M models on x and on its mirror: (M, n, 7) each."""

        def one(p, s):
            a = jax.nn.softmax(forward(p, s, x, None, "eval", dtype)[0])
            b = jax.nn.softmax(forward(p, s, x[:, :, ::-1], None, "eval", dtype)[0])
            return a, b

        return over_models(one, layout, (0, 0))(params, state)

    @jax.jit
    def batch_stats(params, state, x):
        """Per-model batch-norm batch statistics on x (no augmentation, no dropout)."""
        collect = lambda p, s: forward(p, s, x, None, "collect", dtype)[1]  # noqa: E731
        return over_models(collect, layout, (0, 0))(params, state)

    return {
        "teacher_step": jax.jit(teacher_step, donate_argnums=(0,)),
        "student_step": jax.jit(student_step, donate_argnums=(0,)),
        "predict": predict,
        "batch_stats": batch_stats,
    }


def run_epoch(step, carry, index, key, lr, *args):
    """``step`` over the batches ``index`` (steps, ...) in a Python loop (XLA:CPU runs
    convolutions inside ``lax.scan`` some 40x slower; a GPU does not mind either way).
    Returns the carry and the mean loss and training accuracy per model."""
    import jax
    import jax.numpy as jnp

    losses, hits = [], []
    for i in range(index.shape[0]):
        carry, loss, hit = step(carry, *args, index[i], jax.random.fold_in(key, i), lr)
        losses.append(loss)
        hits.append(hit)
    return carry, jnp.stack(losses).mean(0), jnp.stack(hits).mean(0)


def running_mean(mean, new, n: int):
    """The mean of ``n`` trees given that of the first ``n - 1`` (None when ``n == 1``).
    A copy either way: the training carry's buffers are donated to the next step."""
    import jax
    import jax.numpy as jnp

    if mean is None:
        return jax.tree.map(jnp.copy, new)
    return jax.tree.map(lambda a, b: a + (b - a) / n, mean, new)


def stack(trees):
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda *a: jnp.stack(a), *trees)


def recompute_batchnorm(fns, params, state, faces, batch: int = 256):
    """Moving statistics = the mean of the batch statistics over the training faces (as
    ``train/averaging.recompute_batchnorm``)."""
    import jax
    import jax.numpy as jnp

    total, n = None, 0
    batch = min(batch, len(faces))
    for start in range(0, len(faces) - batch + 1, batch):
        x = jnp.asarray(faces[start : start + batch], jnp.float32)
        stats = fns["batch_stats"](params, state, x)
        total = stats if total is None else jax.tree.map(jnp.add, total, stats)
        n += 1
    return jax.tree.map(lambda t: t / n, total)


def evaluate(fns, params, state, faces, labels, batch: int = 1024) -> dict:
    """Per model: one-pass and flip-averaged accuracy; and of the models' mean."""
    a_all, b_all = [], []
    for start in range(0, len(faces), batch):
        a, b = fns["predict"](params, state, np.asarray(faces[start : start + batch], np.float32))
        a_all.append(np.asarray(a))
        b_all.append(np.asarray(b))
    a, b = np.concatenate(a_all, 1), np.concatenate(b_all, 1)
    single = (a.argmax(-1) == labels[None]).mean(1)
    flip = ((a + b).argmax(-1) == labels[None]).mean(1)
    both = (a + b).mean(0)
    return {
        "single": [round(float(s), 4) for s in single],
        "flip": [round(float(s), 4) for s in flip],
        "ensemble_flip": round(float((both.argmax(-1) == labels).mean()), 4),
    }


# --------------------------------------------------------------------------- data and files


def decode(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    import cv2

    out = np.empty((len(offsets) - 1, SIZE, SIZE), np.uint8)
    for i in range(len(offsets) - 1):
        img = cv2.imdecode(blob[offsets[i] : offsets[i + 1]], cv2.IMREAD_GRAYSCALE)
        if img is None or img.shape != (SIZE, SIZE):
            raise ValueError(f"face {i}: not a {SIZE}x{SIZE} grayscale JPEG")
        out[i] = img
    return out


def load_faces(path: Path) -> dict:
    """The packed faces, checked against the pixels' checksums the desktop loader gave."""
    with np.load(path) as d:
        data = {k: d[k] for k in d.files}
    out = {}
    for split in ("train", "val"):
        x = decode(data[f"{split}_jpeg"], data[f"{split}_offsets"])
        digest = hashlib.sha256(x.tobytes()).hexdigest()
        out[f"{split}_same_pixels"] = digest == str(data[f"{split}_sha256"])
        out[split] = (x, data[f"{split}_y"].astype(np.int32))
    return out


def load_models(paths) -> tuple[dict, dict]:
    """Every model of the weight files ``paths`` (``m<i>/<name>``), stacked, as float32."""
    import jax.numpy as jnp

    models = []
    for path in paths:
        with np.load(path) as d:
            for i in sorted({int(k.split("/")[0][1:]) for k in d.files}):
                models.append(
                    {
                        k.split("/", 1)[1]: d[k].astype(np.float32)
                        for k in d.files
                        if k.startswith(f"m{i}/")
                    }
                )
    weights = {k: jnp.asarray(np.stack([m[k] for m in models])) for k in models[0]}
    return split_state(weights)


def save_models(path: Path, params, state, index) -> None:
    """Models ``index`` of stacked (params, state) as ``m<i>/<weight name>`` arrays."""
    arrays = {}
    for i in index:
        for k, v in {**params, **state}.items():
            arrays[f"m{i}/{k}"] = np.asarray(v[i], np.float32)
    np.savez(path, **arrays)


# --------------------------------------------------------------------------- the run


def run(args) -> dict:
    import jax
    import jax.numpy as jnp

    started = time.time()
    deadline = started + args.budget
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log: dict = {"args": vars(args), "recipe": RECIPE, "photometric": PHOTOMETRIC}
    log["devices"] = [str(d) for d in jax.devices()]
    log["jax"] = jax.__version__
    log["script_sha256"] = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()

    def say(text):
        print(f"[{time.time() - started:6.1f}s] {text}", flush=True)

    def write_log():
        (out / "log.json").write_text(json.dumps(log, indent=1))

    data = load_faces(Path(args.data))
    x_train, y_train = data["train"]
    x_val, y_val = data["val"]
    if args.max_faces:
        x_train, y_train = x_train[: args.max_faces], y_train[: args.max_faces]
    log["faces"] = {"train": len(y_train), "val": len(y_val)}
    log["same_pixels"] = {s: bool(data[f"{s}_same_pixels"]) for s in ("train", "val")}
    say(
        f"{len(y_train)} training, {len(y_val)} validation faces; same pixels: {log['same_pixels']}"
    )
    say(f"devices {log['devices']}")
    faces, labels = jnp.asarray(x_train), jnp.asarray(y_train)
    batch = RECIPE["batch_size"]
    steps = len(y_train) // batch
    m = args.models
    rng = np.random.default_rng(args.seed)

    def epoch_index(models: int):
        perms = np.stack([rng.permutation(len(y_train))[: steps * batch] for _ in range(models)])
        return jnp.asarray(perms.reshape(models, steps, batch).transpose(1, 0, 2))

    if args.resume:  # every model starts from the checkpoint (its own augmentations after)
        params, state = load_models([args.resume])
        params, state = (
            jax.tree.map(lambda a: jnp.concatenate([a[:1]] * m), t) for t in (params, state)
        )
        log["resumed"] = {"weights": args.resume, "epochs": args.resume_epochs}
    else:
        weights = stack([init_weights(jax.random.key(args.seed + i)) for i in range(m)])
        params, state = split_state(weights)
    momenta = jax.tree.map(jnp.zeros_like, params)
    first = (params, state, momenta)
    layouts = ("vmap", "unrolled") if args.layout == "auto" else (args.layout,)
    if len(layouts) > 1:  # time a few steps of each on copies of the models; keep the faster
        probe, index, timing = {}, epoch_index(m), {}
        for layout in layouts:
            f = make_functions(RECIPE, args.dtype, args.teacher_weight, layout)
            c = jax.tree.map(jnp.copy, first)
            t = time.time()
            c, loss, _ = f["teacher_step"](
                c, faces, labels, index[0], jax.random.key(1), jnp.float32(0.001)
            )
            loss.block_until_ready()
            compiled = time.time() - t
            t = time.time()
            for i in range(1, 1 + args.probe_steps):
                c, loss, _ = f["teacher_step"](
                    c, faces, labels, index[i % len(index)], jax.random.key(1), jnp.float32(0.001)
                )
            loss.block_until_ready()
            timing[layout] = {
                "compile_s": round(compiled, 2),
                "step_ms": round(1000 * (time.time() - t) / args.probe_steps, 3),
            }
            probe[layout] = f
            say(f"layout {layout}: {timing[layout]}")
        log["layouts"] = timing
        layout = min(timing, key=lambda k: timing[k]["step_ms"])
        fns = probe[layout]
    else:
        layout = layouts[0]
        fns = make_functions(RECIPE, args.dtype, args.teacher_weight, layout)
    log["layout"] = layout

    def teachers_phase():
        carry = first
        # ---- phase 1: M models side by side
        phase1_end = started + args.budget * (args.teacher_share if args.students else 0.9)
        epochs, epoch, swa, swa_n, history = args.max_epochs, 0, None, 0, []
        if args.resume:  # a run's checkpoint goes on to the end of its fixed schedule
            epochs, epoch = args.resume_epochs[1], args.resume_epochs[0]
        warm = RECIPE["warmup_epochs"]
        while epoch < epochs:
            t = time.time()
            lr = lr_at(epoch, epochs, RECIPE["lr"], warm)
            carry, loss, hit = run_epoch(
                fns["teacher_step"],
                carry,
                epoch_index(m),
                jax.random.key(10_000 + epoch),
                jnp.float32(lr),
                faces,
                labels,
            )
            loss = np.asarray(loss)
            seconds = time.time() - t
            if epoch == 1:  # the first epoch compiled; the second is the speed
                left = phase1_end - time.time() - 3 * seconds - 20  # averaging, BN, evaluation
                epochs = int(min(args.max_epochs, max(args.min_epochs, 2 + left // seconds)))
                log["teacher_epoch_seconds"] = round(seconds, 3)
                log["teacher_epochs"] = epochs
                say(f"{m} models: {seconds:.2f} s per epoch -> {epochs} epochs")
            tail = max(1, int(round(epochs * args.swa_share)))
            if epoch >= epochs - tail:
                p = carry[0]
                swa_n += 1
                swa = running_mean(swa, p, swa_n)
            row = {
                "epoch": epoch + 1,
                "lr": round(lr, 6),
                "loss": [round(float(v), 4) for v in loss],
            }
            row["train_acc"] = [round(float(v), 4) for v in np.asarray(hit)]
            if (epoch + 1) % args.eval_every == 0 or epoch + 1 == epochs:
                row["val"] = evaluate(fns, carry[0], carry[1], x_val, y_val)
            history.append(row)
            say(
                f"epoch {epoch + 1}/{epochs} lr {lr:.5f} loss {loss.mean():.3f} {row.get('val', '')}"
            )
            epoch += 1
            if epoch < epochs and time.time() > deadline - 60:
                say(f"out of time in phase 1 after {epoch} of {epochs} epochs")
                log["teachers_cut_short"] = epoch
                break
        log["teacher_history"] = history
        final_val = evaluate(fns, carry[0], carry[1], x_val, y_val)
        swa_state = recompute_batchnorm(fns, swa, carry[1], x_train)
        swa_val = evaluate(fns, swa, swa_state, x_val, y_val)
        log["teachers"] = {"final": final_val, "swa": swa_val, "swa_epochs": swa_n}
        say(f"teachers final {final_val}")
        say(f"teachers swa({swa_n}) {swa_val}")
        use_swa = np.mean(swa_val["flip"]) > np.mean(final_val["flip"])
        log["teachers"]["saved"] = "swa" if use_swa else "final"
        t_params, t_state = (swa, swa_state) if use_swa else (carry[0], carry[1])
        for k in range(0, m, 2):
            save_models(out / f"teachers-{k // 2}.npz", t_params, t_state, range(k, min(k + 2, m)))
        write_log()
        return t_params, t_state

    if args.teachers:  # the teachers are given: straight to the students
        t_params, t_state = load_models(args.teachers)
        given = evaluate(fns, t_params, t_state, x_val, y_val)
        log["teachers"] = {"given": args.teachers, "val": given}
        say(f"{len(args.teachers)} teacher file(s): {given}")
    else:
        t_params, t_state = teachers_phase()
    if not args.students or time.time() > deadline - 90:
        log["seconds"] = round(time.time() - started, 1)
        write_log()
        return log

    # ---- phase 2: students from the best teacher, learning the ensemble on the same views
    s = args.students
    if args.student_init:
        i_params, i_state = load_models([args.student_init])
        best = 0
        log["student_init"] = args.student_init
    else:
        i_params, i_state = t_params, t_state
        best = int(np.argmax(evaluate(fns, t_params, t_state, x_val, y_val)["flip"]))
        log["student_init"] = f"teacher {best}"
    params = jax.tree.map(lambda a: jnp.stack([a[best]] * s), i_params)
    state = jax.tree.map(lambda a: jnp.stack([a[best]] * s), i_state)
    carry = (params, state, jax.tree.map(jnp.zeros_like, params))
    teachers = (t_params, t_state)
    phase2_end = deadline - 30
    epochs, epoch, swa, swa_n, history = args.max_epochs, 0, None, 0, []
    while epoch < epochs:
        t = time.time()
        lr = lr_at(epoch, epochs, args.student_lr, 0)
        perm = rng.permutation(len(y_train))[: steps * batch].reshape(steps, batch)
        carry, loss, hit = run_epoch(
            fns["student_step"],
            carry,
            jnp.asarray(perm),
            jax.random.key(20_000 + epoch),
            jnp.float32(lr),
            teachers,
            faces,
            labels,
        )
        loss = np.asarray(loss)
        seconds = time.time() - t
        if epoch == 1:
            left = phase2_end - time.time() - 3 * seconds - 15
            epochs = int(min(args.max_epochs, max(3, 2 + left // seconds)))
            log["student_epoch_seconds"] = round(seconds, 3)
            log["student_epochs"] = epochs
            say(f"{s} students: {seconds:.2f} s per epoch -> {epochs} epochs")
        tail = max(1, int(round(epochs * args.swa_share)))
        if epoch >= epochs - tail:
            p = carry[0]
            swa_n += 1
            swa = running_mean(swa, p, swa_n)
        row = {"epoch": epoch + 1, "lr": round(lr, 6), "loss": [round(float(v), 4) for v in loss]}
        if (epoch + 1) % args.eval_every == 0 or epoch + 1 == epochs:
            row["val"] = evaluate(fns, carry[0], carry[1], x_val, y_val)
        history.append(row)
        say(
            f"student epoch {epoch + 1}/{epochs} lr {lr:.5f} loss {loss.mean():.3f} {row.get('val', '')}"
        )
        epoch += 1
        if epoch < epochs and time.time() > deadline - 25:
            say(f"out of time in phase 2 after {epoch} of {epochs} epochs")
            log["students_cut_short"] = epoch
            break
    log["student_history"] = history
    final_val = evaluate(fns, carry[0], carry[1], x_val, y_val)
    if swa is None:
        swa = carry[0]
    swa_state = recompute_batchnorm(fns, swa, carry[1], x_train)
    swa_val = evaluate(fns, swa, swa_state, x_val, y_val)
    log["students"] = {"final": final_val, "swa": swa_val, "swa_epochs": swa_n}
    say(f"students final {final_val}")
    say(f"students swa({swa_n}) {swa_val}")
    save_models(out / "students.npz", carry[0], carry[1], range(s))
    save_models(out / "students-swa.npz", swa, swa_state, range(s))
    log["seconds"] = round(time.time() - started, 1)
    write_log()
    return log


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="faces .npz from `jax_bridge pack`")
    ap.add_argument("--out", required=True, help="folder for the weights and log.json")
    ap.add_argument("--budget", type=float, default=500.0, help="wall-clock seconds in all")
    ap.add_argument("--models", type=int, default=6, help="models trained side by side")
    ap.add_argument("--students", type=int, default=2, help="students distilled (0: none)")
    ap.add_argument("--teacher-share", type=float, default=0.6, help="share of the budget")
    ap.add_argument("--teacher-weight", type=float, default=0.7)
    ap.add_argument("--student-lr", type=float, default=0.003)
    ap.add_argument("--swa-share", type=float, default=0.1, help="last share of epochs averaged")
    ap.add_argument("--min-epochs", type=int, default=3)
    ap.add_argument("--max-epochs", type=int, default=300)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--teachers", nargs="*", default=[], help="weight files: skip phase 1")
    ap.add_argument(
        "--resume",
        default="",
        help="weight file (m0): phase 1 goes on from it (with --resume-epochs)",
    )
    ap.add_argument(
        "--resume-epochs",
        type=int,
        nargs=2,
        default=(0, 0),
        metavar=("DONE", "TOTAL"),
        help="epochs the checkpoint has run, and its schedule's total",
    )
    ap.add_argument("--student-init", default="", help="weight file (m0) the students start from")
    ap.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    ap.add_argument(
        "--layout",
        choices=("auto", "vmap", "unrolled"),
        default="auto",
        help="models batched (vmap) or one graph copy each; auto: time both, keep the faster",
    )
    ap.add_argument("--probe-steps", type=int, default=10)
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--max-faces", type=int, default=0, help="first N training faces (trials)")
    args = ap.parse_args(argv)
    try:
        run(args)
    except (OSError, ValueError, KeyError) as e:
        print(f"jax_vgg: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    sys.exit(main())
