"""edge/drawing.py: boxes and labels drawn on a copy; edge/netaddr.py: [HOST:]PORT parsing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from deepfer.edge.drawing import (
    PALETTE,
    UNKNOWN_COLOR,
    draw_faces,
    emotion_color,
    face_label,
)
from deepfer.edge.labels import LABELS
from deepfer.edge.netaddr import is_loopback, parse_host_port


@dataclass
class FakeFace:  # the attributes deepfer.edge.pipeline.Face has
    box: tuple[int, int, int, int]
    emotion: str
    score: float
    track_id: int | None = None


def frame(h: int = 240, w: int = 320) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(60, 100, (h, w, 3), dtype=np.uint8)


def test_palette_covers_every_label_with_distinct_colours():
    assert set(PALETTE) == set(LABELS)
    assert len(set(PALETTE.values())) == len(LABELS)
    assert emotion_color("HAPPY") == PALETTE["happy"]
    assert emotion_color("contempt") == UNKNOWN_COLOR


def test_draw_changes_box_pixels_and_keeps_the_input():
    img = frame()
    before = img.copy()
    face = FakeFace((100, 80, 80, 80), "happy", 0.87, track_id=3)
    out = draw_faces(img, [face])
    assert np.array_equal(img, before), "draw_faces must not modify its input"
    assert out is not img and out.shape == img.shape and out.dtype == np.uint8
    # the box outline is the emotion's colour; its inside stays untouched
    assert tuple(out[80, 140]) == PALETTE["happy"]  # top edge
    assert tuple(out[120, 100]) == PALETTE["happy"]  # left edge
    assert np.array_equal(out[100:140, 110:170], img[100:140, 110:170])
    # the label sits above the box, on the emotion's colour
    label_area = out[60:80, 100:180]
    assert (np.all(label_area == PALETTE["happy"], axis=-1)).mean() > 0.3
    # and it is text: some pixels are the dark text colour
    assert (label_area.max(axis=-1) < 60).any()


def test_dicts_and_objects_draw_the_same():
    img = frame()
    obj = FakeFace((50, 60, 70, 70), "sad", 0.5, track_id=7)
    as_dict = {"box": [50, 60, 70, 70], "emotion": "sad", "score": 0.5, "track_id": 7}
    assert np.array_equal(draw_faces(img, [obj]), draw_faces(img, [as_dict]))


def test_label_text():
    assert face_label(FakeFace((0, 0, 1, 1), "happy", 0.874, track_id=3)) == "#3 happy 87%"
    assert face_label({"box": (0, 0, 1, 1), "emotion": "fear", "score": 0.5}) == "fear 50%"
    assert face_label({"box": (0, 0, 1, 1), "emotion": "fear"}) == "fear"


def test_empty_list_gives_an_equal_copy():
    img = frame()
    out = draw_faces(img, [])
    assert out is not img and np.array_equal(out, img)


def test_faces_at_the_edges_stay_inside_the_frame():
    img = frame(120, 160)
    faces = [
        FakeFace((-20, -15, 50, 50), "angry", 0.9, track_id=1),  # top-left, partly outside
        FakeFace((150, 40, 40, 40), "surprise", 0.6, track_id=123456),  # right edge
        FakeFace((100, 100, 80, 80), "fear", 0.4),  # bottom-right, partly outside
    ]
    out = draw_faces(img, faces)
    assert out.shape == img.shape
    # a top-left face has its label inside the box (no room above) and its box edges drawn
    assert (np.all(out[:30, :30] == PALETTE["angry"], axis=-1)).any()
    # the long label of the right-edge face is moved left so that it fits
    surprise = np.all(out == PALETTE["surprise"], axis=-1)
    assert surprise[:, :150].any()
    assert surprise[:, -1].any()
    assert (np.all(out == PALETTE["fear"], axis=-1)).any()


def test_faces_wholly_outside_are_skipped():
    img = frame()
    out = draw_faces(img, [FakeFace((400, 300, 50, 50), "happy", 0.9)])
    assert np.array_equal(out, img)


@pytest.mark.parametrize("shape", [(48, 64), (120, 160, 3), (1080, 1920, 3)])
def test_small_large_and_gray_frames(shape):
    img = np.full(shape, 80, np.uint8)
    h, w = shape[:2]
    s = min(h, w) // 3
    out = draw_faces(img, [{"box": (w // 3, h // 3, s, s), "emotion": "neutral", "score": 0.99}])
    assert out.shape == (h, w, 3)
    assert (np.all(out == PALETTE["neutral"], axis=-1)).sum() > 4 * s


def test_big_frames_get_thicker_boxes():
    def outline_pixels(h, w):
        s = min(h, w) // 3
        out = draw_faces(np.zeros((h, w, 3), np.uint8), [{"box": (s, s, s, s), "emotion": "sad"}])
        column = np.all(out[:, s + s // 2] == PALETTE["sad"], axis=-1)
        return column.sum()

    assert outline_pixels(1080, 1920) > outline_pixels(240, 320)


def test_label_override_and_checks():
    img = frame()
    face = FakeFace((100, 80, 80, 80), "happy", 0.87)
    assert not np.array_equal(draw_faces(img, [face], labels=["HI"]), draw_faces(img, [face]))
    with pytest.raises(ValueError, match="labels has 2 entries for 1 faces"):
        draw_faces(img, [face], labels=["a", "b"])
    with pytest.raises(ValueError, match="no box"):
        draw_faces(img, [{"emotion": "happy"}])


def test_score_bar_shows_the_score():
    img = np.zeros((240, 320, 3), np.uint8)
    face = {"box": (100, 60, 100, 100), "emotion": "happy", "score": 0.25}
    with_bar = draw_faces(img, [face])
    without = draw_faces(img, [face], score_bar=False)
    below = np.all(with_bar[162:170, 100:200] == PALETTE["happy"], axis=-1).any(axis=0)
    assert 15 <= below.sum() <= 35  # a quarter of the box width
    assert not np.all(without[162:170, 100:200] == PALETTE["happy"], axis=-1).any()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("8080", ("127.0.0.1", 8080)),
        (8080, ("127.0.0.1", 8080)),
        (" 0.0.0.0:8080 ", ("0.0.0.0", 8080)),
        ("localhost:9000", ("localhost", 9000)),
        ("pi.local:80", ("pi.local", 80)),
        ("[::1]:8080", ("::1", 8080)),
        ("[::]:8080", ("::", 8080)),
        (":8081", ("127.0.0.1", 8081)),
        ("0", ("127.0.0.1", 0)),
    ],
)
def test_parse_host_port(value, expected):
    assert parse_host_port(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("http", "port must be a number"),
        ("host:", "port must be a number"),
        ("99999", "0..65535"),
        ("-1", "port must be a number"),
        ("::1:8080", "brackets"),
        ("[::1]8080", r"\[IPV6\]:PORT"),
        ("[::1", r"\[IPV6\]:PORT"),
        ("[nothost]:80", "not an IPv6 address"),
        ("my host:80", "bad host"),
        (None, "expected"),
        (True, "expected"),
    ],
)
def test_parse_host_port_rejects_bad_values(value, message):
    with pytest.raises(ValueError, match=message):
        parse_host_port(value)


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("pi.local")
