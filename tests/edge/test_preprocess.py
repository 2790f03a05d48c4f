"""edge/preprocess.crop_face: the square crop keeps a face centred at its size, padding with
the frame's border where the square leaves the frame (a face at the edge of the view)."""

from __future__ import annotations

import cv2
import numpy as np

from deepfer.edge.preprocess import crop_face, prepare_face, square_box


def _frame(h=120, w=160):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w), dtype=np.uint8)


def test_a_crop_inside_the_frame_is_the_square_resized():
    frame = _frame()
    x, y, w, h = square_box((40, 30, 50, 40), margin=0.1)
    assert (w, h) == (60, 60) and (x, y) == (35, 20)  # the longer side, grown by 2 x 10%
    expected = cv2.resize(frame[y : y + h, x : x + w], (48, 48), interpolation=cv2.INTER_AREA)
    assert np.array_equal(crop_face(frame, (40, 30, 50, 40)), expected)


def test_a_face_cut_by_the_frame_stays_centred_with_the_border_repeated():
    frame = _frame()
    box = (-20, -10, 60, 60)  # a third of the face beyond the left edge, a sixth above
    crop = crop_face(frame, box, size=60, margin=0.0)
    padded = cv2.copyMakeBorder(frame, 10, 0, 20, 0, cv2.BORDER_REPLICATE)
    assert np.array_equal(crop, padded[0:60, 0:60])  # not the frame's corner moved inwards
    assert np.array_equal(crop[10:, 20:], frame[0:50, 0:40])


def test_a_face_larger_than_the_frame_keeps_its_size():
    frame = _frame(40, 60)
    crop = crop_face(frame, (-10, -20, 80, 80), size=80, margin=0.0)
    assert crop.shape == (80, 80)
    assert np.array_equal(crop[20:60, 10:70], frame)  # the whole frame, where the face put it


def test_a_box_outside_the_frame_gives_a_crop_not_an_error():
    frame = _frame()
    for box in ((500, 20, 30, 30), (-100, -100, 20, 20), (10, 200, 30, 30)):
        assert crop_face(frame, box).shape == (48, 48)


def test_colour_frames_are_cropped_to_grey():
    frame = cv2.cvtColor(_frame(), cv2.COLOR_GRAY2BGR)
    assert np.array_equal(
        crop_face(frame, (-5, 0, 50, 50)), crop_face(frame[..., 0], (-5, 0, 50, 50))
    )
    assert prepare_face(frame).shape == (48, 48)


def _bar_frame(degrees: float) -> np.ndarray:
    """A grey frame with a dark horizontal bar through (80, 60), turned by ``degrees``
    (counter-clockwise on screen) about that point."""
    frame = np.full((120, 160), 200, np.uint8)
    frame[56:64, 40:120] = 30
    m = cv2.getRotationMatrix2D((80, 60), degrees, 1.0)
    return cv2.warpAffine(frame, m, (160, 120), borderMode=cv2.BORDER_REPLICATE)


def test_a_turned_crop_levels_a_tilted_face():
    box = (55, 35, 50, 50)  # centred on (80, 60)
    upright = crop_face(_bar_frame(0), box, margin=0.0).astype(float)
    tilted = _bar_frame(30)  # the bar's line now runs at -30 degrees (y down)
    assert np.abs(crop_face(tilted, box, margin=0.0) - upright).mean() > 20
    level = crop_face(tilted, box, margin=0.0, angle=-30).astype(float)
    assert level.shape == (48, 48)
    assert np.abs(level - upright).mean() < 6  # the bar is level again (resampling aside)
    assert level[20:28, 5:43].mean() < 60 and level[:16].mean() > 180


def test_a_turned_crop_at_the_frame_edge_repeats_the_border():
    frame = _frame(60, 80)
    crop = crop_face(frame, (-20, -20, 40, 40), size=40, margin=0.0, angle=20)
    assert crop.shape == (40, 40)  # never fails at the edge
    assert np.array_equal(
        crop_face(frame, (10, 10, 30, 30), margin=0.0, angle=0.0),
        crop_face(frame, (10, 10, 30, 30), margin=0.0),
    )


def test_normalise_light_leaves_faces_lit_like_the_training_faces_alone(data_dir):
    """model.normalise_light: a face inside FER2013's range of brightness and contrast comes
    back as the very same array; a dim, bright or flat one is brought just inside the range,
    its grey levels changed by one linear map (their order kept)."""
    from deepfer.edge.preprocess import (
        TRAINING_MEAN_RANGE,
        TRAINING_STD_RANGE,
        normalise_light,
    )

    faces = [
        cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        for p in sorted((data_dir / "fer2013" / "test" / "happy").iterdir())[:40]
    ]
    inside = [
        f
        for f in faces
        if TRAINING_MEAN_RANGE[0] <= f.mean() <= TRAINING_MEAN_RANGE[1]
        and TRAINING_STD_RANGE[0] <= f.std() <= TRAINING_STD_RANGE[1]
    ]
    assert len(inside) >= 25
    assert all(normalise_light(f) is f for f in inside)
    face = inside[0].astype(np.float32)
    for name, changed in {
        "dim": face * 0.04,
        "bright": 0.3 * face + 175,
        "flat": 0.3 * face + 90,
    }.items():
        changed = np.clip(np.rint(changed), 0, 255).astype(np.uint8)
        out = normalise_light(changed).astype(np.float32)
        assert TRAINING_MEAN_RANGE[0] - 1 <= out.mean() <= TRAINING_MEAN_RANGE[1] + 1, name
        assert TRAINING_STD_RANGE[0] - 1 <= out.std() <= TRAINING_STD_RANGE[1] + 1, name
        order = np.argsort(changed.ravel(), kind="stable")
        assert (np.diff(out.ravel()[order]) >= 0).all(), name  # a monotone map
        assert np.corrcoef(out.ravel(), face.ravel())[0, 1] > 0.95, name
