"""The JAX trainer (train/gpu/) against the Keras model and recipe it re-states."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("jax", reason="the GPU trainer needs jax (pip install jax)")
pytest.importorskip("keras", reason="the weights go into the Keras model")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from deepfer.train.config import TrainConfig, learning_rate  # noqa: E402
from deepfer.train.gpu import augment, files, run, steps  # noqa: E402
from deepfer.train.gpu import bridge as jax_bridge  # noqa: E402
from deepfer.train.gpu import model as vgg  # noqa: E402


def _faces(n=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48)).astype(np.float32)


def _perturbed_weights(seed=3):
    """Initial weights with batch-norm statistics and biases moved off their defaults."""
    w = vgg.init_weights(jax.random.key(seed))
    rng = np.random.default_rng(seed)
    for k in w:
        if k.endswith(("/mean", "/beta", "/bias")):
            w[k] = w[k] + jnp.asarray(rng.normal(0, 0.1, w[k].shape), jnp.float32)
        elif k.endswith(("/var", "/gamma")):
            w[k] = w[k] * jnp.asarray(rng.uniform(0.5, 1.5, w[k].shape), jnp.float32)
    return w


def test_the_weights_load_into_keras_deepfer_vgg_and_give_its_scores(tmp_path):
    w = _perturbed_weights()
    params, state = vgg.split_state(w)
    stacked = steps.stack([params]), steps.stack([state])
    path = tmp_path / "teachers-0.npz"
    files.save_models(path, *stacked, [0])
    assert jax_bridge.model_indices(path) == [0]
    model = jax_bridge.to_keras(path, 0)
    x = _faces()
    keras_scores = model.predict(x[..., None], verbose=0)
    logits, _ = vgg.forward(params, state, jnp.asarray(x), None, "eval", jnp.float32)
    jax_scores = np.asarray(jax.nn.softmax(logits))
    np.testing.assert_allclose(jax_scores, keras_scores, atol=2e-4)
    assert (jax_scores.argmax(1) == keras_scores.argmax(1)).all()


def test_every_keras_weight_is_mapped():
    from deepfer.train.models import make_model

    model = make_model("deepfer-vgg", (48, 48, 1))
    mapped = vgg.layer_weights()
    with_weights = {layer.name for layer in model.layers if layer.get_weights()}
    assert with_weights == set(mapped)
    for name, names in mapped.items():
        assert len(model.get_layer(name).get_weights()) == len(names)
    w = vgg.init_weights(jax.random.key(0))
    assert sum(int(np.prod(v.shape)) for v in w.values()) == model.count_params()


def test_the_learning_rate_follows_the_desktop_schedule():
    cfg = TrainConfig(epochs=50, lr=0.01, warmup_epochs=3, schedule="cosine")
    for epoch in range(50):
        assert steps.lr_at(epoch, 50, 0.01, 3) == pytest.approx(learning_rate(cfg, epoch))


def _still(**changes):
    recipe = {**augment.RECIPE, "rotation": 0.0, "brightness": 0.0, "contrast": 0.0}
    return {**recipe, "crop": 48, "erase": 0.0, **changes}


def test_with_nothing_random_left_a_view_is_the_face_or_its_mirror():
    face = jnp.asarray(_faces(1)[0])
    seen = set()
    for i in range(12):
        out = np.asarray(augment.augment_face(face, jax.random.key(i), _still()))
        if np.allclose(out, face, atol=1e-3):
            seen.add("face")
        else:
            np.testing.assert_allclose(out, np.asarray(face)[:, ::-1], atol=1e-3)
            seen.add("mirror")
    assert seen == {"face", "mirror"}


def test_views_vary_stay_in_range_and_erase_patches():
    face = jnp.asarray(np.tile(np.linspace(0, 255, 48, dtype=np.float32), (48, 1)))
    outs = [
        np.asarray(augment.augment_face(face, jax.random.key(i), augment.RECIPE)) for i in range(20)
    ]
    assert all(o.min() >= 0 and o.max() <= 255 for o in outs)
    assert len({o.tobytes() for o in outs}) == 20
    # a smooth ramp, brightened, contrasted, rotated and cropped, stays smooth unless erased
    rough = [np.abs(np.diff(o, axis=0)).max() > 60 for o in outs]
    assert 3 <= sum(rough) <= 17  # erasing with probability 0.5


def test_a_degraded_view_is_darker_or_brighter_and_noisy():
    face = jnp.full((48, 48), 128.0)
    outs = [
        np.asarray(augment.degrade_face(face, jax.random.key(i), augment.PHOTOMETRIC))
        for i in range(20)
    ]
    assert np.std([o.mean() for o in outs]) > 10
    assert max(o.std() for o in outs) > 3
    assert all(o.min() >= 0 and o.max() <= 255 for o in outs)


def test_packed_faces_round_trip_with_the_desktop_pixels(tmp_path):
    import cv2

    rng = np.random.default_rng(1)
    root = tmp_path / "fer"
    for label in ("angry", "happy", "sad"):
        (root / "train" / label).mkdir(parents=True)
        for i in range(20):
            face = cv2.GaussianBlur(rng.integers(0, 256, (48, 48), dtype=np.uint8), (5, 5), 0)
            cv2.imwrite(str(root / "train" / label / f"Training_{label}{i}.jpg"), face)
    counts = jax_bridge.pack_faces(str(root), tmp_path / "faces.npz", val_split=0.2)
    assert counts == {"train": 48, "val": 12}
    data = files.load_faces(tmp_path / "faces.npz")
    assert data["train_same_pixels"] and data["val_same_pixels"]
    assert data["train"][0].shape == (48, 48, 48)
    assert sorted(np.bincount(data["val"][1], minlength=7)) == [0, 0, 0, 0, 4, 4, 4]


def _pack_random(path, rng, faces=None):
    """A faces file as ``bridge pack`` writes it, of random faces (128 train, 32 val)."""
    import hashlib

    import cv2

    if faces is None:
        faces = rng.integers(0, 256, (160, 48, 48), dtype=np.uint8)
    blobs = [cv2.imencode(".jpg", f)[1].tobytes() for f in faces]
    decoded = np.stack([cv2.imdecode(np.frombuffer(b, np.uint8), 0) for b in blobs])
    arrays = {}
    for split, sl in (("train", slice(0, 128)), ("val", slice(128, len(faces)))):
        part = blobs[sl]
        arrays[f"{split}_jpeg"] = np.frombuffer(b"".join(part), np.uint8)
        arrays[f"{split}_offsets"] = np.cumsum([0] + [len(b) for b in part])
        arrays[f"{split}_y"] = rng.integers(0, 7, len(part)).astype(np.int8)
        arrays[f"{split}_sha256"] = np.array(hashlib.sha256(decoded[sl].tobytes()).hexdigest())
    np.savez(path, **arrays)
    return path


def test_a_short_run_trains_teachers_and_students_and_writes_loadable_weights(tmp_path):
    """Two models, two students, a few epochs on a few faces: every file is written, the
    log holds each phase, and the weights load into Keras."""
    rng = np.random.default_rng(2)
    n = 160
    faces = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    _pack_random(tmp_path / "faces.npz", rng, faces)
    out = tmp_path / "out"
    argv = ["--data", str(tmp_path / "faces.npz"), "--out", str(out), "--models", "2"]
    argv += ["--students", "2", "--min-epochs", "3", "--max-epochs", "3", "--eval-every", "1"]
    argv += ["--dtype", "fp32", "--budget", "900", "--probe-steps", "1"]
    assert run.main(argv) == 0
    log = json.loads((out / "log.json").read_text())
    assert log["same_pixels"] == {"train": True, "val": True}
    assert log["teacher_epochs"] == 3 and len(log["teacher_history"]) == 3
    assert log["student_epochs"] == 3 and len(log["student_history"]) == 3
    assert len(log["teachers"]["swa"]["flip"]) == 2 and len(log["students"]["swa"]["flip"]) == 2
    assert jax_bridge.model_indices(out / "teachers-0.npz") == [0, 1]
    model = jax_bridge.to_keras(out / "students.npz", 1)
    assert np.isfinite(model.predict(faces[:4, ..., None].astype(np.float32), verbose=0)).all()


def test_a_checkpoint_goes_on_to_the_end_of_its_schedule_and_students_learn_given_teachers(
    tmp_path,
):
    """``--resume`` runs the epochs a checkpoint has left (its schedule's lr), and
    ``--teachers`` / ``--student-init`` skip phase 1 (how j12-long was finished on a GPU)."""
    from deepfer.train.models import make_model

    rng = np.random.default_rng(4)
    faces = _pack_random(tmp_path / "faces.npz", rng)
    start = make_model("deepfer-vgg", (48, 48, 1))
    start_path = tmp_path / "start.keras"
    start.save(start_path)
    jax_bridge.from_keras(start_path, tmp_path / "start.npz", "float16")
    common = ["--data", str(faces), "--dtype", "fp32", "--budget", "900", "--eval-every", "1"]
    common += ["--layout", "unrolled"]
    out = tmp_path / "resumed"
    argv = common + ["--out", str(out), "--models", "2", "--students", "0"]
    argv += ["--resume", str(tmp_path / "start.npz"), "--resume-epochs", "8", "10"]
    assert run.main(argv) == 0
    log = json.loads((out / "log.json").read_text())
    assert [row["epoch"] for row in log["teacher_history"]] == [9, 10]
    assert log["teacher_history"][0]["lr"] == pytest.approx(steps.lr_at(8, 10, 0.01, 3), abs=1e-6)
    assert "teachers_cut_short" not in log
    out2 = tmp_path / "students"
    argv = common + ["--out", str(out2), "--students", "2", "--max-epochs", "3"]
    argv += ["--teachers", str(tmp_path / "start.npz"), "--student-init"]
    argv += [str(out / "teachers-0.npz")]  # two models: student i starts from model i
    assert run.main(argv) == 0
    log = json.loads((out2 / "log.json").read_text())
    assert len(log["teachers"]["val"]["flip"]) == 1
    assert log["student_init"]["weights"].endswith("teachers-0.npz")
    assert log["student_init"]["models"] == [0, 1] and log["student_epochs"] == 3
    assert jax_bridge.model_indices(out2 / "students.npz") == [0, 1]
    assert log["students"]["saved"] in ("final", "swa")
