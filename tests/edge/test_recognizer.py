"""`EmotionRecognizer`, DeepFER from Python: the same faces as `deepfer detect` on photos, one
track per face on video frames, the model's own scores on face crops, clear errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from cli_subprocess import deepfer

from deepfer.edge import EmotionRecognizer
from deepfer.edge.errors import ConfigError, InputError
from deepfer.edge.preprocess import normalise_light


@pytest.fixture(scope="module")
def recognizer():
    return EmotionRecognizer()


def _plain(face) -> dict:
    return {"box": list(face.box), "emotion": face.emotion, "scores": face.scores}


def test_photos_give_the_faces_deepfer_detect_gives(recognizer, media_dir):
    for name in ("justin.jpg", "12_angry_men.jpg", "no-faces.jpg"):
        proc = deepfer("detect", media_dir / name, "--json")
        assert proc.returncode == 0, proc.stderr
        want = json.loads(proc.stdout)
        got = [_plain(f) for f in recognizer.detect(media_dir / name)]
        assert [f["box"] for f in got] == [f["box"] for f in want]
        assert [f["emotion"] for f in got] == [f["emotion"] for f in want]
        for g, w in zip(got, want):
            assert max(abs(g["scores"][k] - w["scores"][k]) for k in w["scores"]) < 1e-3
    assert len(recognizer.detect(media_dir / "12_angry_men.jpg")) >= 9


def test_a_path_a_bgr_array_a_gray_array_and_bgra_agree(recognizer, media_dir):
    path = media_dir / "justin.jpg"
    bgr = cv2.imread(str(path))
    by_path = [_plain(f) for f in recognizer.detect(path)]
    assert len(by_path) == 1 and by_path == [_plain(f) for f in recognizer.detect(str(path))]
    assert [_plain(f) for f in recognizer.detect(bgr)] == by_path
    assert [_plain(f) for f in recognizer.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))] == by_path
    gray = [_plain(f) for f in recognizer.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))]
    assert [f["box"] for f in gray] == [f["box"] for f in by_path]  # (crops from gray: same box)


def test_video_frames_are_tracked_as_deepfer_run_tracks_them(media_dir):
    """woman2's first 90 frames at their 30 fps: one track throughout, a face on every frame
    (carried by the tracker between detections, 5 a second), an end event at close."""
    cap = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
    with EmotionRecognizer(video=True, fps=30) as rec:
        results = []
        for _ in range(90):
            ok, frame = cap.read()
            assert ok
            results.append(rec.process(frame))
        ends = rec.close()
    assert all(len(r.faces) == 1 for r in results)
    assert {r.faces[0].track_id for r in results} == {1}
    assert 15 <= sum(r.detected for r in results) <= 20  # 3 s at detector.fps 5
    assert [e.type for e in ends] == ["end"] and ends[0].track.id == 1
    assert results[-1].faces[0].emotion in rec.labels


def test_classify_face_crops_as_the_model_scores_them(recognizer, data_dir):
    test_dir = data_dir / "fer2013" / "test"
    paths = [sorted((test_dir / label).iterdir())[0] for label in recognizer.labels]
    crops = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths])
    scores = recognizer.classify(crops)
    assert scores.shape == (7, 7)
    # (model.normalise_light: a crop lit outside the training faces' range is brought in)
    lit = np.stack([normalise_light(c) for c in crops])
    assert np.array_equal(scores, recognizer.classifier.infer(lit))
    raw = EmotionRecognizer(settings={"model.normalise_light": False})
    assert np.array_equal(raw.classify(crops), raw.classifier.infer(crops))
    # any size, colour or gray: scaled to the model's input as the training data was
    bigger = [cv2.cvtColor(cv2.resize(c, (96, 96)), cv2.COLOR_GRAY2BGR) for c in crops]
    assert (recognizer.classify(bigger).argmax(1) == scores.argmax(1)).mean() >= 6 / 7
    assert recognizer.classify([]).shape == (0, 7)
    assert recognizer.classify(crops[0]).shape == (1, 7)
    # and the crops themselves as pictures, with no face search
    whole = EmotionRecognizer(detector="none")
    got = np.array([[f.scores[k] for k in whole.labels] for p in paths for f in whole.detect(p)])
    assert np.allclose(got, scores)


def test_settings_and_config_files(media_dir, tmp_path):
    conf = tmp_path / "deepfer.toml"
    conf.write_text('[model]\npath = "deepfer-single_int8"\n[detector]\nbackend = "haar"\n')
    rec = EmotionRecognizer(config=conf, settings={"model.level_above": 90})
    assert rec.classifier.info.name == "deepfer-single_int8" and rec.detector.name == "haar"
    assert rec.config.model.level_above == 90
    assert "deepfer-single_int8" in repr(rec) and "haar" in repr(rec)
    again = EmotionRecognizer(config=rec.config, detector="auto")  # a Config, changed
    assert again.detector.name != "haar" and again.config.model.level_above == 90
    bad = rec.config
    bad.model.margin = 5.0  # a Config changed by hand is checked too, and named
    with pytest.raises(ConfigError, match=r"model.margin = 5.0 \(from argument config=\)"):
        EmotionRecognizer(config=bad)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model": "no-such-model"}, "model.path = 'no-such-model' (from argument model=)"),
        ({"detector": "dlib"}, "detector.backend = 'dlib' (from argument detector=)"),
        ({"settings": {"model.margin": 5}}, "settings['model.margin']): must be in 0..1"),
        ({"settings": {"modle.margin": 0.1}}, "unknown section 'modle'; did you mean 'model'?"),
        ({"settings": {"model.margn": 0.1}}, "unknown key; did you mean 'margin'?"),
    ],
)
def test_bad_arguments_are_clear_config_errors(kwargs, message):
    with pytest.raises(ConfigError) as info:
        EmotionRecognizer(**kwargs)
    assert message in str(info.value)


def test_bad_pictures_are_clear_input_errors(recognizer, tmp_path):
    with pytest.raises(InputError, match="no-such.jpg: cannot read this image \\(no such file\\)"):
        recognizer.detect(tmp_path / "no-such.jpg")
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(InputError, match="text.jpg: cannot read this image \\(not an image"):
        recognizer.detect(tmp_path / "text.jpg")
    with pytest.raises(InputError, match="uint8 image array"):
        recognizer.detect(np.zeros((48, 48), np.float32))


def test_faces_in_a_dim_room_read_as_they_do_in_good_light(data_dir):
    """model.normalise_light (the default): 70 PublicTest faces at 10% and 4% of their
    brightness (a dim room, an underexposed camera) keep most of their readings; without it
    the model reads most of them as something else (nearly all as angry)."""
    test_dir = data_dir / "fer2013" / "test"
    faces = np.stack(
        [
            cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            for label in sorted(d.name for d in test_dir.iterdir())
            for p in sorted((test_dir / label).iterdir())[:10]
        ]
    )
    agree = {}
    for on in (True, False):
        rec = EmotionRecognizer(settings={"model.normalise_light": on})
        good = rec.classify(faces).argmax(1)
        for factor in (0.1, 0.04):
            dim = np.clip(np.rint(faces * factor), 0, 255).astype(np.uint8)
            agree[on, factor] = (rec.classify(dim).argmax(1) == good).mean()
    assert agree[True, 0.1] >= 0.75 and agree[True, 0.04] >= 0.65
    assert agree[False, 0.1] <= 0.5 and agree[False, 0.04] <= 0.3
