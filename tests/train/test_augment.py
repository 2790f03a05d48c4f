"""The recipe's batch augmentations (random crops, zoom-out, random erasing, mixup) on small
synthetic batches."""

from __future__ import annotations

import numpy as np
import pytest

from deepfer.train.config import ConfigError, TrainConfig

tf = pytest.importorskip("tensorflow")

from deepfer.train import augment  # noqa: E402


def batch(n=16, side=48):
    rng = np.random.default_rng(0)
    return tf.constant(rng.integers(0, 256, (n, side, side, 1)).astype(np.float32))


def test_full_side_crop_is_the_identity():
    x = batch()
    out = augment.random_crop(x, 48)
    np.testing.assert_allclose(out.numpy(), x.numpy(), atol=1e-3)


def test_crops_keep_shape_and_range_and_zoom_in():
    # a horizontal ramp: a crop of a smaller side spans fewer grey levels
    ramp = np.tile(np.linspace(0, 255, 48, dtype=np.float32), (48, 1))[None, :, :, None]
    x = tf.constant(np.repeat(ramp, 64, axis=0))
    out = augment.random_crop(x, 40).numpy()
    assert out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 255 + 1e-3
    spans = out[:, 24, -1, 0] - out[:, 24, 0, 0]
    assert (spans <= 255 + 1e-3).all() and (spans >= 255 * 40 / 48 - 6).all()
    assert spans.std() > 1  # the side varies between 40 and 48


def test_zoom_out_off_is_the_identity():
    x = batch()
    np.testing.assert_array_equal(augment.random_zoom_out(x, 0.3, probability=0.0), x)
    np.testing.assert_allclose(augment.random_zoom_out(x, 0.0, probability=1.0), x, atol=1e-3)


def test_zoom_out_shrinks_the_whole_face_into_a_mirrored_or_flat_surround():
    # a bright square face on a dark ramp: the shrunk copy keeps all of it, smaller
    face = np.tile(np.linspace(0, 60, 48, dtype=np.float32), (48, 1))
    face[16:32, 16:32] = 200.0  # far enough from the border that no mirror reaches it
    x = tf.constant(np.repeat(face[None, :, :, None], 400, axis=0))
    tf.random.set_seed(3)
    out = augment.random_zoom_out(x, 0.3, probability=1.0).numpy()[..., 0]
    assert out.shape == (400, 48, 48) and out.min() >= 0 and out.max() <= 255 + 1e-3
    # the surround: a flat level differing face to face, or the face's own border mirrored
    # (the ramp varies along rows; a flat fill leaves a flat top or bottom row: the face sits
    # at most at one edge)
    flat = (np.ptp(out[:, 0, :], axis=1) < 1e-3) | (np.ptp(out[:, -1, :], axis=1) < 1e-3)
    assert 0.3 < flat.mean() < 0.7
    assert np.ptp(out[flat, 0, 0]) > 100  # random levels
    mirrored = out[~flat]
    assert mirrored.max() <= 200 + 1e-3  # the face's own pixels, mirrored: no new levels
    # the square's area shrinks by 1/s^2, s in [1, 1.3] (edges blur by a pixel): 16^2 -> 12^2
    bright = (mirrored > 100).sum((1, 2))
    assert (bright <= 16 * 16 + 100).all() and (bright >= 11 * 11).all()
    assert bright.std() > 5  # the scale varies
    half = augment.random_zoom_out(x, 0.3).numpy()[..., 0]
    unchanged = (half == face).all((1, 2)).mean()
    assert 0.35 < unchanged < 0.65


def test_random_erasing_fills_one_rectangle_with_probability():
    x = tf.zeros((200, 48, 48, 1))
    none = augment.random_erasing(x, 0.0).numpy()
    assert not none.any()
    out = augment.random_erasing(x, 1.0).numpy()
    changed = (out != 0).reshape(200, -1).mean(1)
    assert (changed > 0).all() and (changed <= 0.25 + 0.05).all()
    rows = (out[0, :, :, 0] != 0).any(1).nonzero()[0]
    assert (np.diff(rows) == 1).all()  # one contiguous block
    half = augment.random_erasing(x, 0.5).numpy()
    erased = (half != 0).reshape(200, -1).any(1).mean()
    assert 0.35 < erased < 0.65


def test_mixup_mixes_faces_and_labels_alike():
    x = tf.constant(
        np.arange(8, dtype=np.float32).reshape(8, 1, 1, 1) * np.ones((1, 4, 4, 1), np.float32)
    )
    y = tf.one_hot(np.arange(8) % 7, 7)
    mx, my = augment.mixup(x, y, 0.4)
    mx, my = mx.numpy(), my.numpy()
    np.testing.assert_allclose(my.sum(1), 1.0, atol=1e-5)
    assert (my.max(1) >= 0.5 - 1e-6).all()
    # the face keeps its own label's weight: pixel = lam * i + (1 - lam) * partner
    own = my[np.arange(8), np.arange(8) % 7]
    assert (own >= 0.5 - 1e-6).all()
    assert mx.shape == (8, 4, 4, 1)


def test_random_gamma_keeps_black_white_and_order_and_brightens_or_darkens_per_face():
    ramp = tf.constant(np.tile(np.linspace(0, 255, 48, dtype=np.float32), (64, 48, 1))[..., None])
    out = np.asarray(augment.random_gamma(ramp, 0.5))
    assert np.allclose(out[:, :, 0], 0, atol=1e-3) and np.allclose(out[:, :, -1], 255, atol=1e-2)
    assert (np.diff(out[0, 0, :, 0]) >= 0).all()  # monotone: the face's shading keeps its order
    mid = out[:, 0, 24, 0]
    assert (mid < 124).any() and (mid > 136).any()  # some faces brighter, some darker
    assert np.allclose(np.asarray(augment.random_gamma(ramp, 0.0)), ramp, atol=1e-3)


def test_random_noise_has_a_spread_of_strengths_and_no_bias():
    flat = tf.fill((64, 48, 48, 1), 128.0)
    out = np.asarray(augment.random_noise(flat, 10.0)) - 128.0
    sigmas = out.reshape(64, -1).std(1)
    assert sigmas.max() < 10.5 and sigmas.min() < 3 and sigmas.max() > 7
    assert abs(out.mean()) < 0.2


def test_make_batch_augment_off_by_default_and_composes():
    assert augment.make_batch_augment(TrainConfig()) is None
    assert augment.make_batch_augment(TrainConfig(zoom_out=0.3)) is not None
    assert augment.make_batch_augment(TrainConfig(noise=5.0)) is not None
    fn = augment.make_batch_augment(
        TrainConfig(crop=44, erase=0.5, mixup=0.2, zoom_out=0.3, gamma=0.5, noise=10.0)
    )
    x, y = fn(batch(8), tf.one_hot(np.arange(8) % 7, 7))
    assert x.shape == (8, 48, 48, 1) and y.shape == (8, 7)
    assert float(tf.reduce_min(x)) >= 0 and float(tf.reduce_max(x)) <= 255


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"crop": 60}, "train.crop = 60: must be 0 (off) or between 8"),
        ({"erase": 1.5}, "train.erase = 1.5: must be a probability"),
        ({"mixup": -1.0}, "train.mixup = -1.0: must not be negative"),
        ({"zoom_out": 1.5}, "train.zoom_out = 1.5: must be in"),
        ({"gamma": 2.0}, "train.gamma = 2.0: must be in"),
        ({"noise": -1.0}, "train.noise = -1.0: must be in"),
    ],
)
def test_recipe_options_are_checked(tmp_path, change, message):
    cfg = TrainConfig(data=str(tmp_path), model="deepfer-edge", **change)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cfg.validate()
