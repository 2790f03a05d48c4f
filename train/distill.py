"""Distillation: ``deepfer train --teacher T.keras`` trains the student on a teacher's scores.

The teacher (one model or a ``deepfer ensemble``) scores ``teacher_views`` fixed views of every
training face once: the face itself, then views made with the run's own augmentations
(flip, shifts, crops, erasing...; mixup never: a mixed face has no label of its own). The
views, their labels and the teacher's scores are cached in the run folder
(``RunFolder.teacher_cache``), keyed by the faces themselves (a digest), not by where they were
read from, so a resumed run (also with ``--data`` after the data moved), or a second student
with the same teacher and views, does not score them again. Each epoch the student sees one of the views of every
face, drawn at random, with the target ``teacher_weight * teacher scores + (1 -
teacher_weight) * one-hot label`` (the run's label smoothing on top; with ``teacher_target =
"face"`` every view takes the teacher's scores on the face itself, and only the faces are
scored); with temperature 1 the
cross-entropy to that target is the usual distillation loss (Hinton et al., 2015) plus the
usual hard-label loss. The validation slice is untouched: the student is chosen on the
labels, like any model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from deepfer.data.dataset import FaceDataset
from deepfer.edge.labels import NUM_CLASSES
from deepfer.edge.paths import file_sha256
from deepfer.evaluate.model_file import deepfer_order_problem

#: Faces scored by the teacher per call.
SCORE_BATCH = 512


def teacher_key(cfg, teacher: Path, ds: FaceDataset) -> dict:
    """What the cached views and scores depend on (a cache made otherwise is not used). The
    training faces count by what they are (:func:`faces_sha256`), not by the path the data was
    read from: the same split through a relative path, from a moved folder or a copy (``train
    --resume --data``) reuses the cache; changed faces or labels are scored again."""
    digest = file_sha256(teacher)
    keys = (
        "teacher_views",
        "seed",
        "data_seed",
        "input_size",
        "max_per_class",
        "val_split",
    )
    keys += ("flip", "shift", "rotation", "zoom", "brightness", "contrast", "crop", "erase")
    keys += ("zoom_out", "gamma", "noise", "teacher_target")
    return {
        "teacher_sha256": digest,
        "faces_sha256": faces_sha256(ds),
        **{k: getattr(cfg, k) for k in keys},
    }


def faces_sha256(ds: FaceDataset) -> str:
    """A digest of the faces (pixels, in order) and their labels."""
    h = hashlib.sha256()
    for a in (np.asarray(ds.x.shape, np.int64), ds.x, np.asarray(ds.y, np.int64)):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _cached(cache: Path, key: dict, ds: FaceDataset) -> tuple[np.ndarray, np.ndarray] | None:
    """The views and scores in ``cache`` when it was made for ``key``, else None. A cache made
    before the faces were keyed by their digest has the data's path instead (left out): it is
    used when its labels, and its first view (the faces themselves), are this split's."""
    key = json.loads(json.dumps(key))  # as it reads back (a tuple is a list in JSON)
    with np.load(cache) as saved:
        made = json.loads(str(saved["key"]))
        if made == key:
            return saved["views"], saved["scores"]
        if "faces_sha256" in made or "data" not in made:
            return None
        made.pop("data")
        if made != {k: v for k, v in key.items() if k != "faces_sha256"}:
            return None
        if not np.array_equal(saved["labels"], ds.y):
            return None
        views = saved["views"]
        return (views, saved["scores"]) if np.array_equal(views[0], ds.x) else None


def make_views(ds: FaceDataset, cfg, augmenter, views: int) -> np.ndarray:
    """``(views, n, H, W, 1)`` uint8: the faces, then ``views - 1`` augmented copies."""
    import keras
    import tensorflow as tf

    from deepfer.train.augment import make_batch_augment

    batch_fn = make_batch_augment(_no_mixup(cfg))
    keras.utils.set_random_seed(cfg.seed)
    out = np.empty((views, *ds.x.shape), np.uint8)
    out[0] = ds.x
    for v in range(1, views):
        for start in range(0, len(ds), SCORE_BATCH):
            x = tf.constant(ds.x[start : start + SCORE_BATCH], tf.float32)
            if augmenter is not None:
                x = augmenter(x, training=True)
            if batch_fn is not None:
                x, _ = batch_fn(x, tf.zeros((tf.shape(x)[0], NUM_CLASSES)))
            out[v, start : start + len(x)] = np.clip(np.rint(np.asarray(x)), 0, 255)
    return out


def _no_mixup(cfg):
    from dataclasses import replace

    return replace(cfg, mixup=0.0)


def load_teacher(path: Path, input_size: int):
    """The teacher model; refused clearly when it cannot score this run's faces."""
    from deepfer.train.config import ConfigError
    from deepfer.train.models import load_keras_model

    model = load_keras_model(path, error=ConfigError)
    shape, out = tuple(model.input_shape), tuple(model.output_shape)
    if shape[1:] != (input_size, input_size, 1) or len(out) != 2 or out[-1] != NUM_CLASSES:
        raise ConfigError(
            f"train.teacher = {str(path)!r}: takes {shape} and gives {out}; the student needs "
            f"(None, {input_size}, {input_size}, 1) faces in and {NUM_CLASSES} scores out"
        )
    if problem := deepfer_order_problem(path, out, "a teacher"):
        raise ConfigError(f"train.teacher: {problem}")
    return model


def teacher_targets(cfg, run, ds: FaceDataset, augmenter) -> tuple[np.ndarray, np.ndarray]:
    """``(views (v, n, H, W, 1) uint8, teacher scores (v, n, 7) float32)``, from the run
    folder's cache when it was made with the same teacher, views and data."""
    teacher = Path(cfg.teacher)
    key = teacher_key(cfg, teacher, ds)
    cache = run.teacher_cache
    if cache.is_file():
        cached = _cached(cache, key, ds)
        if cached is not None:
            print(f"teacher scores: reusing {cache}", flush=True)
            return cached
        print(f"teacher scores: {cache} was made otherwise; scoring again", flush=True)
    model = load_teacher(teacher, cfg.input_size)
    views = make_views(ds, cfg, augmenter, cfg.teacher_views)
    # with teacher_target "face" only the faces themselves (view 0) are scored
    scored = views[:1] if cfg.teacher_target == "face" else views
    flat = scored.reshape(-1, *views.shape[2:]).astype(np.float32)
    print(f"teacher scores: {teacher.name} on {len(flat):,} views", flush=True)
    scores = model.predict(flat, batch_size=SCORE_BATCH, verbose=0).astype(np.float32)
    scores = scores.reshape(scored.shape[0], views.shape[1], NUM_CLASSES)
    scores = np.ascontiguousarray(np.broadcast_to(scores, (views.shape[0], *scores.shape[1:])))
    agree = float((scores[0].argmax(1) == ds.y).mean())
    print(f"teacher scores: the teacher agrees with the labels on {agree:.2%} of faces", flush=True)
    run.path.mkdir(parents=True, exist_ok=True)
    np.savez(cache, views=views, scores=scores, labels=ds.y, key=json.dumps(key))
    return views, scores


def label_targets(cfg, ds: FaceDataset) -> np.ndarray:
    """``(n, 7)`` float32: the label side of each face's target. One-hot FER2013 labels, or
    with ``cfg.soft_labels`` ``(1 - soft_weight) * one-hot + soft_weight * FER+ vote
    shares`` (faces without usable votes keep their one-hot label). Only for training:
    validation always scores the FER2013 labels."""
    from deepfer.data.ferplus import ferplus_distributions, load_ferplus_votes

    onehot = np.eye(NUM_CLASSES, dtype=np.float32)[ds.y]
    votes_file = cfg.soft_labels_file()
    if votes_file is None:
        return onehot
    shares = ferplus_distributions(ds, load_ferplus_votes(votes_file))
    has = shares.sum(1) > 0
    w = float(cfg.soft_weight)
    out = onehot.copy()
    out[has] = (1.0 - w) * onehot[has] + w * shares[has]
    differ = float((shares[has].argmax(1) != ds.y[has]).mean()) if has.any() else 0.0
    print(
        f"soft labels: FER+ votes ({votes_file.name}) on {int(has.sum()):,} of {len(ds):,} "
        f"faces, weight {w:g}; their top vote differs from the FER2013 label on {differ:.1%}",
        flush=True,
    )
    return out


def distilled_dataset(
    cfg, run, ds: FaceDataset, augmenter, batch_size: int, seed: int, labels=None
):
    """The student's training batches: a random view of every face per epoch, with the
    target mixing the teacher's scores and the label (``teacher_weight``; ``labels``: the
    label side, :func:`label_targets`, one-hot when None). The views and
    the cache key follow ``cfg`` (the run's options); ``batch_size`` and ``seed`` are the
    fit's (per replica count; a resumed run's seed moves on with its epochs)."""
    import tensorflow as tf

    views, scores = teacher_targets(cfg, run, ds, augmenter)
    tf.random.set_seed(seed)  # making the views reseeded: the fit goes on from its own seed
    if labels is None:
        labels = np.eye(NUM_CLASSES, dtype=np.float32)[ds.y]
    w = float(cfg.teacher_weight)
    targets = w * scores + (1.0 - w) * labels[None]
    x_all, y_all = tf.constant(views), tf.constant(targets)
    n, v = len(ds), views.shape[0]

    def pick(index):
        view = tf.random.uniform(tf.shape(index), 0, v, dtype=tf.int64)
        at = tf.stack([view, index], axis=1)
        return tf.cast(tf.gather_nd(x_all, at), tf.float32), tf.gather_nd(y_all, at)

    data = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size).map(pick, num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)
