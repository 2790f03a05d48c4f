"""Jitted training steps, evaluation and batch-norm statistics of models side by side."""

from __future__ import annotations

import math
import operator

import numpy as np

from .augment import PHOTOMETRIC, augment_face, degrade_face
from .model import L2, NUM_CLASSES, conv_names, forward

#: SGD with Nesterov momentum, as `deepfer train --optimizer sgd`
MOMENTUM = 0.9


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
    recipe: dict,
    dtype_name: str,
    teacher_weight: float = 0.7,
    layout: str = "vmap",
    student_views: str = "clean",
):
    """The jitted step, evaluation and statistics functions (closures over the recipe).
    ``student_views``: "clean" (every student sees the recipe's views) or "mixed" (student 1
    sees them photometrically degraded, as in run 1 of benchmarks/results/j12-gpu)."""
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
        """One step of S students on a shared batch ``idx`` (batch,), each with its own
        dropout; with ``student_views`` "mixed", student 1 sees photometrically degraded views."""
        t_params, t_state = teachers
        params, state, momenta = carry
        s = jax.tree.leaves(params)[0].shape[0]
        k1, k2, k3 = jax.random.split(key, 3)
        clean = views(faces[idx].astype(jnp.float32), k1, False)
        scores = ensemble_scores(t_params, t_state, clean)
        onehot = jax.nn.one_hot(labels[idx], NUM_CLASSES)
        target = teacher_weight * scores + (1.0 - teacher_weight) * onehot
        x = [clean] * s
        if student_views == "mixed" and s > 1:
            x[1] = views_photometric(clean, k2)
        x = jnp.stack(x)
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
