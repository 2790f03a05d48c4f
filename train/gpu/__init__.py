"""deepfer-vgg trained in JAX on one GPU: several models at once, then students distilled
from their ensemble.

Why it exists: TensorFlow does not reach the GPU machines this project is sometimes lent
(no TensorFlow there, and its wheel is far over what can be carried), while JAX is installed
on them. This file is the ``deepfer train`` recipe of ``j12-long`` re-stated in JAX, so that
minutes of a GPU replace days of the desktop's two cores:

- the model is :func:`deepfer.train.models.deepfer_vgg` (same layers, names, initialisers,
  batch-norm epsilon and momentum, dropout, L2 on the kernels), so the weights it writes load
  into the Keras model unchanged (``bridge.py``);
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

Self-contained on purpose (numpy, jax, opencv; relative imports only, no other ``deepfer``
module) so that it runs from a copied tree where nothing else is installed: ``python3 -m
train.gpu`` from the repository root (``python -m deepfer.train.gpu`` where installed).
``bridge.py`` is the desktop side (Keras). Input: the ``.npz`` that ``python -m
deepfer.train.gpu.bridge pack`` writes; output: ``teachers-K.npz``, ``students.npz`` (weights
under Keras layer names) and ``log.json``.
"""
