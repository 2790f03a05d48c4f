"""A camera on its side or upside down is hinted (`source.rotate`), from real faces found by
the real detector in woman2.mp4 turned; faces that only lean (35 and 45 degrees), and the
upright clip, are not."""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np
import pytest
from cli_subprocess import deepfer

from deepfer.edge.boxes import face_turn
from deepfer.edge.camera_turn import LEAN, PROBE_S, UPRIGHT, WINDOW, TurnHint
from deepfer.edge.capture.frame import frame_from_image
from deepfer.edge.config import Config
from deepfer.edge.detectors import files, make_detector
from deepfer.edge.model.classifier import EmotionClassifier
from deepfer.edge.pipeline import FacePipeline

needs_blazeface = pytest.mark.skipif(
    not files.available("blazeface-full"), reason="run `deepfer detectors install`"
)
HINT = "set source.rotate"
#: `deepfer detect` with the single model: the hint is the detector's alone, the model costs time
SINGLE = ("--model", "deepfer-single_int8")


def test_face_turn_reads_where_the_mouth_lies_from_the_eyes():
    eyes = (40, 50), (60, 50)
    assert face_turn(*eyes, (50, 80)) == pytest.approx(0)  # upright
    assert face_turn(*eyes, [(45, 80), (55, 80)]) == pytest.approx(0)  # two corners
    # the picture turned a quarter clockwise: the chin points to the left
    assert face_turn((50, 40), (50, 60), (20, 50)) == pytest.approx(90)
    assert face_turn((50, 40), (50, 60), (80, 50)) == pytest.approx(-90)
    assert abs(face_turn(*eyes, (50, 20))) == pytest.approx(180)  # upside down


def test_the_hint_waits_for_most_of_a_window_and_speaks_once():
    hint = TurnHint()
    lying = [LEAN + 20] * (WINDOW - 1)
    assert hint.observe(lying) is None  # not enough faces yet
    assert hint.observe([math.nan, math.nan]) is None  # faces without keypoints: skipped
    assert hint.observe([LEAN + 5]) == 270  # turned clockwise: turn the picture 270 more
    assert hint.observe(lying) is None  # once per run
    other = TurnHint()
    assert other.observe([-(LEAN + 10)] * WINDOW) == 90
    mixed = TurnHint()  # people leaning, some of them far: no hint
    assert mixed.observe(([LEAN + 10] * 3 + [20.0] * 2) * 20) is None


def quarter_clip(media_dir, tmp_path, turn, frames=60):
    """woman2.mp4's frames (looped for more than its 464) turned: a cv2.rotate code, or
    degrees about the centre."""
    cap = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
    path = tmp_path / f"turned-{turn}.mp4"
    writer = None
    for _ in range(frames):
        ok, frame = cap.read()
        if not ok:
            cap = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
            ok, frame = cap.read()
        assert ok
        if isinstance(turn, float):
            h, w = frame.shape[:2]
            m = cv2.getRotationMatrix2D((w / 2, h / 2), turn, 1.0)
            frame = cv2.warpAffine(frame, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
        else:
            frame = cv2.rotate(frame, turn)
        if writer is None:
            size = frame.shape[1::-1]
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, size)
        writer.write(frame)
    writer.release()
    return path


@needs_blazeface
def test_deepfer_detect_names_the_turn_for_a_camera_on_its_side(media_dir, tmp_path):
    side = quarter_clip(media_dir, tmp_path, cv2.ROTATE_90_CLOCKWISE)
    proc = deepfer("detect", side, *SINGLE)
    assert proc.returncode == 0, proc.stderr
    assert f"{HINT} = 270 (--rotate 270)" in proc.stderr
    upright = deepfer("detect", side, *SINGLE, "--rotate", "270")  # as the hint says
    assert upright.returncode == 0 and HINT not in upright.stderr
    assert upright.stdout.count("track #") == 1
    for degrees in (35.0, -45.0):  # a face leaning far, not a camera on its side
        leaning = deepfer("detect", quarter_clip(media_dir, tmp_path, degrees), *SINGLE)
        assert leaning.returncode == 0 and HINT not in leaning.stderr, degrees


@needs_blazeface
def test_the_daemons_pipeline_hints_the_other_way_once(media_dir, tiny_tflite_model, caplog):
    config = Config()
    config.detector.backend = "blazeface"
    classifier = EmotionClassifier(tiny_tflite_model)  # the hint is the detector's alone
    pipeline = FacePipeline.from_config(config, classifier, make_detector(config.detector))
    cap = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
    with caplog.at_level(logging.WARNING, logger="deepfer.edge.pipeline"):
        for i in range(300):  # 10 s at 5 detections a second: 50 detections
            ok, frame = cap.read()
            assert ok
            turned = cv2.rotate(frame, cv2.ROTATE_90_COUNTERCLOCKWISE)
            pipeline.process(frame_from_image(turned, i, i / 30))
    hints = [r.getMessage() for r in caplog.records if HINT in r.getMessage()]
    assert len(hints) == 1 and f"{HINT} = 90 (--rotate 90)" in hints[0]
    assert pipeline.turn_hint.given == 90


@needs_blazeface
def test_an_upside_down_camera_is_named_by_the_turned_searches(media_dir, tmp_path):
    """Upside down, the faces' keypoints read upright; the searches of the picture as it is
    and upside down every PROBE_S seconds find the face only upside down (12 s here)."""
    upside = quarter_clip(media_dir, tmp_path, cv2.ROTATE_180, frames=360)
    proc = deepfer("detect", upside, *SINGLE, "--every", "3")
    assert proc.returncode == 0, proc.stderr
    assert "faces are found better in the picture upside down" in proc.stderr
    assert f"{HINT} = 180 (--rotate 180)" in proc.stderr
    upright = deepfer("detect", upside, *SINGLE, "--every", "3", "--rotate", "180")  # 12 s upright
    assert upright.returncode == 0 and HINT not in upright.stderr


@needs_blazeface
def test_the_upside_down_searches_stop_once_upright_and_slow_down_in_an_empty_room(media_dir):
    config = Config()
    config.detector.backend = "blazeface"
    detector = make_detector(config.detector)
    justin = cv2.cvtColor(cv2.imread(str(media_dir / "justin.jpg")), cv2.COLOR_BGR2GRAY)
    hint = TurnHint()
    t = 0.0
    for _ in range(UPRIGHT):  # a face, upright: the picture as it is wins
        assert hint.probe_due(t)
        assert hint.probe(justin, detector, t) is None
        assert not hint.probe_due(t + PROBE_S / 2)
        t += PROBE_S
    assert not hint.probing and not hint.probe_due(t + 100)  # taken to be upright: no more
    room = cv2.cvtColor(cv2.imread(str(media_dir / "no-faces.jpg")), cv2.COLOR_BGR2GRAY)
    empty = TurnHint()
    due = []
    for k in range(40):  # 20 s, a frame every 0.5 s
        if empty.probe_due(k * 0.5):
            empty.probe(room, detector, k * 0.5)
            due.append(k * 0.5)
    assert due == [0.0, 4.0, 12.0]  # no face either way: 2 x the wait each time
    assert empty.probing and empty.probe_due(-1.0)  # time went back: a looped file


def test_detectors_without_a_mouth_are_never_hinted(tiny_tflite_model):
    config = Config()
    config.detector.backend = "haar"
    pipeline = FacePipeline.from_config(
        config, EmotionClassifier(tiny_tflite_model), make_detector(config.detector)
    )
    assert pipeline.turn_hint is None
    pipeline.process(np.zeros((120, 160, 3), np.uint8))  # runs as before


@needs_blazeface
def test_photos_are_not_watched(tiny_tflite_model):
    """A photo is a picture of its own, not a camera's stream: no hint, no extra searches."""
    config = Config()
    config.detector.backend = "blazeface"
    detector, classifier = make_detector(config.detector), EmotionClassifier(tiny_tflite_model)
    for track, stills in ((False, False), (True, True)):
        pipeline = FacePipeline.from_config(config, classifier, detector, track, stills=stills)
        assert pipeline.turn_hint is None
    assert FacePipeline.from_config(config, classifier, detector).turn_hint is not None
