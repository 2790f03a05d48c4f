"""The recipe's augmentations of one face, on the GPU (one warp, then pixel operations)."""

from __future__ import annotations

import math

from .model import SIZE

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
