"""Training augmentations: the Keras preprocessing layers (:func:`make_augmenter`: flip,
rotation, shift, zoom, brightness, contrast), and the batch augmentations of the published
FER2013 recipes as TensorFlow ops on ``tf.data`` batches:

- :func:`random_crop` (``--crop S``): a random square crop of side between ``S`` and the full
  face, at a random place, resized back to the input size (bilinear). The model's input stays
  the full raw 48x48 face: the uncropped face is one of the views training sees, so nothing
  recipe-specific is needed at inference, and a model built for 48x48 (the shipped
  deepfer-vgg's Flatten/Dense weights) is fine-tuned as it is. A centre crop at test time is
  an option of ``deepfer evaluate`` (``--tta centre``), not a requirement.
- :func:`random_zoom_out` (``--zoom-out F``): half the faces shrink to ``1/s`` of the side,
  ``s`` drawn in ``[1, 1 + F]``, at a random place, the surround filled with the face's own
  border mirrored outwards or with a flat grey of a random level (one or the other per face).
  A detector often frames a face looser than FER2013 did, so the classifier sees the face
  smaller with something around it; this teaches it to answer the same.
- :func:`random_erasing` (``--erase P``): with probability P per face, one rectangle of 2-25% of
  the area (aspect 0.3-3.3) is filled with uniform noise in 0..255 (Zhong et al., 2017).
- :func:`random_gamma` (``--gamma G``): each face's pixels ``p -> 255 (p / 255) ** g``, ``ln g``
  uniform in ``[-G, G]``: the lighting curve of another camera, exposure or backlight.
- :func:`random_noise` (``--noise S``): Gaussian noise of a standard deviation drawn in ``[0,
  S]`` grey levels per face: a camera's sensor noise in dim light (FER2013's faces are clean).
- :func:`mixup` (``--mixup A``): faces and one-hot labels mixed with a partner from the same
  batch, weight drawn from Beta(A, A) per face (Zhang et al., 2018).

Every function takes and returns float pixels 0..255 of shape ``(n, H, W, 1)``; labels are
one-hot (already smoothed by the loss, not here). :func:`make_batch_augment` composes the ones a
:class:`~deepfer.train.config.TrainConfig` turns on, or returns ``None``.
"""

from __future__ import annotations

from collections.abc import Callable

ERASE_AREA = (0.02, 0.25)
ERASE_ASPECT = (0.3, 1 / 0.3)
#: Share of faces :func:`random_zoom_out` shrinks (the rest keep FER2013's framing).
ZOOM_OUT_PROBABILITY = 0.5


def make_augmenter(cfg):
    """Keras preprocessing layers applied to training batches only."""
    import keras

    layers = keras.layers
    aug = []
    if cfg.flip:
        aug.append(layers.RandomFlip("horizontal", seed=cfg.seed))
    if cfg.rotation:
        aug.append(layers.RandomRotation(cfg.rotation, fill_mode="reflect", seed=cfg.seed))
    if cfg.shift:
        aug.append(
            layers.RandomTranslation(cfg.shift, cfg.shift, fill_mode="reflect", seed=cfg.seed)
        )
    if cfg.zoom:
        aug.append(layers.RandomZoom(cfg.zoom, fill_mode="reflect", seed=cfg.seed))
    if cfg.brightness:
        aug.append(layers.RandomBrightness(cfg.brightness, value_range=(0, 255), seed=cfg.seed))
    if cfg.contrast:
        aug.append(layers.RandomContrast(cfg.contrast, value_range=(0, 255), seed=cfg.seed))
    return keras.Sequential(aug, name="augment") if aug else None


def random_crop(x, min_side: int):
    """Random square crops of side in ``[min_side, H]`` (pixels), resized back to ``H x W``."""
    import tensorflow as tf

    n = tf.shape(x)[0]
    height = x.shape[1]
    width = x.shape[2]
    side = tf.random.uniform([n], float(min_side) / height, 1.0)  # fraction of the side
    top = tf.random.uniform([n]) * (1.0 - side)
    left = tf.random.uniform([n]) * (1.0 - side)
    # crop_and_resize samples corner pixel centres: box [y1, x1, y2, x2] in units of (side - 1)
    scale_h = height / max(height - 1, 1)
    scale_w = width / max(width - 1, 1)
    boxes = tf.stack(
        [
            top * scale_h,
            left * scale_w,
            (top + side) * scale_h - 1.0 / max(height - 1, 1),
            (left + side) * scale_w - 1.0 / max(width - 1, 1),
        ],
        axis=1,
    )
    return tf.image.crop_and_resize(x, boxes, tf.range(n), (height, width), method="bilinear")


def _window(start, end, length: int, out: int):
    """``crop_and_resize`` coordinates (pixel centres, ``/ (length - 1)``) of the window
    ``[start, end)`` in pixel-edge units of a side of ``length``, sampled at ``out`` pixels."""
    step = (end - start) / out
    first = start + 0.5 * step - 0.5
    last = start + (out - 0.5) * step - 0.5
    return first / (length - 1), last / (length - 1)


def random_zoom_out(x, extra: float, probability: float = ZOOM_OUT_PROBABILITY):
    """Shrink a share (``probability``) of the faces to ``1/s`` of the side, ``s`` in ``[1, 1
    + extra]``, at a random place; the surround is the face's border mirrored outwards or a
    flat grey of random level (half the shrunk faces each)."""
    import tensorflow as tf

    n = tf.shape(x)[0]
    height, width = x.shape[1], x.shape[2]
    chosen = tf.random.uniform([n]) < probability
    s = tf.where(chosen, 1.0 + tf.random.uniform([n]) * extra, 1.0)
    # the window (side s, in face sides) holds the whole face: its corner in [1 - s, 0]
    top = -tf.random.uniform([n]) * (s - 1.0)
    left = -tf.random.uniform([n]) * (s - 1.0)
    pad_h, pad_w = int(height * extra) + 2, int(width * extra) + 2
    pad_h, pad_w = min(pad_h, height - 1), min(pad_w, width - 1)

    def boxes(off_h, off_w, length_h, length_w):
        y1, y2 = _window(off_h + top * height, off_h + (top + s) * height, length_h, height)
        x1, x2 = _window(off_w + left * width, off_w + (left + s) * width, length_w, width)
        return tf.stack([y1, x1, y2, x2], axis=1)

    index, size = tf.range(n), (height, width)
    # flat grey: the face where the window covers it, a random level elsewhere (weights blend
    # the edge pixels exactly: crop_and_resize is linear in the image)
    plain = boxes(0.0, 0.0, height, width)
    face = tf.image.crop_and_resize(x, plain, index, size, extrapolation_value=0.0)
    cover = tf.image.crop_and_resize(tf.ones_like(x), plain, index, size, extrapolation_value=0.0)
    level = tf.random.uniform([n, 1, 1, 1], 0.0, 255.0)
    flat = face + (1.0 - cover) * level
    # mirrored: the window taken from the face padded with its own mirror image
    padded = tf.pad(x, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]], mode="SYMMETRIC")
    window = boxes(float(pad_h), float(pad_w), height + 2 * pad_h, width + 2 * pad_w)
    mirrored = tf.image.crop_and_resize(padded, window, index, size)
    use_flat = (tf.random.uniform([n]) < 0.5)[:, None, None, None]
    out = tf.where(use_flat, flat, mirrored)
    return tf.where(chosen[:, None, None, None], out, x)


def random_erasing(x, probability: float, area=ERASE_AREA, aspect=ERASE_ASPECT):
    """Fill one random rectangle per face (with ``probability``) with uniform noise 0..255."""
    import tensorflow as tf

    n = tf.shape(x)[0]
    height, width = x.shape[1], x.shape[2]
    fraction = tf.random.uniform([n], *area)
    log_ratio = tf.random.uniform([n], tf.math.log(aspect[0]), tf.math.log(aspect[1]))
    ratio = tf.exp(log_ratio)
    eh = tf.minimum(tf.sqrt(fraction * ratio) * height, float(height))
    ew = tf.minimum(tf.sqrt(fraction / ratio) * width, float(width))
    top = tf.random.uniform([n]) * (height - eh)
    left = tf.random.uniform([n]) * (width - ew)
    rows = tf.range(height, dtype=tf.float32)[None, :, None]
    cols = tf.range(width, dtype=tf.float32)[None, None, :]
    inside = (
        (rows >= top[:, None, None])
        & (rows < (top + eh)[:, None, None])
        & (cols >= left[:, None, None])
        & (cols < (left + ew)[:, None, None])
    )
    chosen = tf.random.uniform([n]) < probability
    mask = tf.logical_and(inside, chosen[:, None, None])[..., None]
    noise = tf.random.uniform(tf.shape(x), 0.0, 255.0)
    return tf.where(mask, noise, x)


def random_gamma(x, spread: float):
    """Per face, ``p -> 255 * (p / 255) ** g`` with ``ln g`` uniform in ``[-spread, spread]``."""
    import tensorflow as tf

    n = tf.shape(x)[0]
    g = tf.exp(tf.random.uniform([n, 1, 1, 1], -spread, spread))
    return 255.0 * tf.pow(tf.clip_by_value(x, 0.0, 255.0) / 255.0, g)


def random_noise(x, sigma: float):
    """Gaussian pixel noise, its standard deviation uniform in ``[0, sigma]`` per face."""
    import tensorflow as tf

    n = tf.shape(x)[0]
    s = tf.random.uniform([n, 1, 1, 1], 0.0, sigma)
    return x + s * tf.random.normal(tf.shape(x))


def mixup(x, y, alpha: float):
    """Mix each face and label with a random partner of the batch, weight ~ Beta(alpha, alpha)."""
    import tensorflow as tf

    n = tf.shape(x)[0]
    a = tf.random.gamma([n], alpha)
    b = tf.random.gamma([n], alpha)
    lam = a / (a + b)
    lam = tf.maximum(lam, 1.0 - lam)  # the face keeps the larger share: its label dominates
    partner = tf.random.shuffle(tf.range(n))
    lx = tf.reshape(lam, [-1, 1, 1, 1])
    ly = tf.reshape(lam, [-1, 1])
    x = lx * x + (1.0 - lx) * tf.gather(x, partner)
    y = ly * y + (1.0 - ly) * tf.gather(y, partner)
    return x, y


def make_batch_augment(cfg) -> Callable | None:
    """``fn(x, y) -> (x, y)`` applying the zoom-out, crop, erasing, gamma, noise and mixup
    ``cfg`` asks for (in that order), or None."""
    zoom_out = float(getattr(cfg, "zoom_out", 0.0) or 0.0)
    crop = int(getattr(cfg, "crop", 0) or 0)
    erase = float(getattr(cfg, "erase", 0.0) or 0.0)
    gamma = float(getattr(cfg, "gamma", 0.0) or 0.0)
    noise = float(getattr(cfg, "noise", 0.0) or 0.0)
    alpha = float(getattr(cfg, "mixup", 0.0) or 0.0)
    if crop >= cfg.input_size:
        crop = 0
    if not (zoom_out or crop or erase or gamma or noise or alpha):
        return None

    def augment(x, y):
        import tensorflow as tf

        if zoom_out:
            x = random_zoom_out(x, zoom_out)
        if crop:
            x = random_crop(x, crop)
        if erase:
            x = random_erasing(x, erase)
        if gamma:
            x = random_gamma(x, gamma)
        if noise:
            x = random_noise(x, noise)
        if alpha:
            x, y = mixup(x, y, alpha)
        return tf.clip_by_value(x, 0.0, 255.0), y

    return augment
