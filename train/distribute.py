"""Scale-out training on TensorFlow's own engine (``deepfer train --distribute``).

- ``mirrored``: :class:`tf.distribute.MirroredStrategy` over this machine's accelerators
  (every GPU), or, with none, every *logical* CPU device (so two logical CPUs made with
  ``tf.config.set_logical_device_configuration`` exercise the same code on any machine).
- ``multiworker``: :class:`tf.distribute.MultiWorkerMirroredStrategy`, the cluster read from the
  ``TF_CONFIG`` environment variable (``{"cluster": {"worker": [...]}, "task": {"type":
  "worker", "index": i}}``), run the same command on every machine. Worker 0 (the chief)
  writes the run folder; the others write theirs to ``OUT/worker-<i>`` so files never clash.

:func:`set_threads` sets TensorFlow's CPU thread pools (``--threads``) for either.

``--batch-size`` and ``--lr`` are per replica: the global batch is ``batch_size x replicas`` and
the peak learning rate ``lr x replicas`` (the linear scaling rule, Goyal et al. 2017; keep the
warm-up epoch). :func:`scaled` returns the config training runs with.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace

DISTRIBUTE = ("", "none", "mirrored", "multiworker")


def make_strategy(kind: str):
    """The ``tf.distribute`` strategy for ``kind`` (``""``/``"none"``: ``None``)."""
    if kind in ("", "none"):
        return None
    import tensorflow as tf

    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if kind == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown --distribute {kind!r}; choose mirrored or multiworker")


def worker_index() -> int:
    """This process's worker index in ``TF_CONFIG`` (0 without one: the chief)."""
    try:
        task = json.loads(os.environ.get("TF_CONFIG", "") or "{}").get("task", {})
        return int(task.get("index", 0)) if task.get("type", "worker") in ("worker", "chief") else 0
    except (ValueError, AttributeError):
        return 0


def scaled(cfg, replicas: int):
    """``cfg`` with the global batch and learning rate for ``replicas`` replicas."""
    if replicas <= 1:
        return cfg
    return replace(cfg, batch_size=cfg.batch_size * replicas, lr=cfg.lr * replicas)


def prepare_model(model, strategy, input_shape, num_classes: int) -> None:
    """Work around two Keras 3 faults under MultiWorkerMirroredStrategy.

    Before the first epoch, Keras' TensorFlow trainer (3.15) ``strategy.reduce``s the first
    ``(faces, labels)`` batch to learn its shapes; MultiWorkerMirroredStrategy cannot reduce a
    tuple and fit fails ("Attempt to convert a value (PerReplica...)"). The shapes are known,
    so the model builds its loss and metrics from a zero batch of the same shapes instead.
    Other strategies are left alone.
    """
    import numpy as np
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    batch = (
        np.zeros((1, *input_shape), np.float32),
        np.zeros((1, num_classes), np.float32),
    )

    def symbolic_build(iterator=None, data_batch=None):
        with strategy.scope():
            model._symbolic_build(data_batch=batch)

    model._maybe_symbolic_build = symbolic_build
    # Keras then reduces each scalar log over the workers with axis=0, which a scalar does not
    # have ("Invalid reduction dimension 0", tensorflow/tensorflow#72388): give the logs one.
    train_step, test_step = model.train_step, model.test_step

    def shaped(logs):
        return {k: tf.reshape(v, [1]) if v.shape.rank == 0 else v for k, v in logs.items()}

    model.train_step = lambda data: shaped(train_step(data))
    model.test_step = lambda data: shaped(test_step(data))


def set_threads(threads: int) -> None:
    """TensorFlow's intra-op threads (``--threads``; 0 = its default); call before any op."""
    if threads:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
        except RuntimeError:  # TensorFlow already ran in this process (train() called again)
            logging.getLogger(__name__).warning(
                "--threads %d ignored: TensorFlow is already running in this process", threads
            )
