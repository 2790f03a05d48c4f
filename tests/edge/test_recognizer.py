"""`EmotionRecognizer`, DeepFER from Python: the same faces as `deepfer detect` on photos, one
track per face on video frames, the model's own scores on face crops, clear errors."""

from __future__ import annotations

import dataclasses
import json
import threading

import cv2
import numpy as np
import pytest
from cli_subprocess import deepfer

from deepfer.edge import EmotionRecognizer
from deepfer.edge.errors import ConfigError, InputError, ModelInfoError, ModelLoadError
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
    with pytest.raises(InputError, match="float pictures are taken as 0..1"):
        recognizer.detect(np.full((48, 48), 200.0, np.float32))


def _justin(media_dir):
    return cv2.imread(str(media_dir / "justin.jpg"))


def test_arrays_of_every_kind_give_the_faces_of_the_uint8_picture(recognizer, media_dir, tmp_path):
    """16-bit (a PNG read unchanged: its top 8 bits, as cv2.imread reads it), float 0..1,
    integers within 0..255, one channel, views of any strides and Fortran order: the same
    faces and scores as the file itself."""
    bgr = _justin(media_dir)
    want = [_plain(f) for f in recognizer.detect(media_dir / "justin.jpg")]
    assert len(want) == 1
    cv2.imwrite(str(tmp_path / "justin16.png"), bgr.astype(np.uint16) * 257)
    deep = cv2.imread(str(tmp_path / "justin16.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16
    same = {
        "uint16": deep,
        "float32 0..1": bgr.astype(np.float32) / 255,
        "float64 0..1": bgr / 255.0,
        "int64 from a list": np.array(bgr.tolist()),
        "fortran order": np.asfortranarray(bgr),
        "BGRA view": cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)[:, :, :],
    }
    for name, picture in same.items():
        assert [_plain(f) for f in recognizer.detect(picture)] == want, name
    assert [_plain(f) for f in recognizer.detect(tmp_path / "justin16.png")] == want
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    by_gray = [_plain(f) for f in recognizer.detect(gray)]
    assert [_plain(f) for f in recognizer.detect(gray[:, :, None])] == by_gray
    big = np.zeros((2 * bgr.shape[0], 2 * bgr.shape[1], 3), np.uint8)
    big[::2, ::2] = bgr
    assert [_plain(f) for f in recognizer.detect(big[::2, ::2])] == want  # a strided view


def test_rgb_pictures_are_said_so_and_pil_images_are_read_as_rgb(media_dir):
    """BGR is assumed (OpenCV's order); ``rgb=True`` says arrays are RGB(A); a PIL image is
    converted from its own mode: each gives the faces and scores of the file."""
    bgr = _justin(media_dir)
    bgr_rec, rgb_rec = EmotionRecognizer(), EmotionRecognizer(rgb=True)
    want = [_plain(f) for f in bgr_rec.detect(media_dir / "justin.jpg")]
    rgb = bgr[:, :, ::-1]  # (a view with a negative stride)
    assert [_plain(f) for f in rgb_rec.detect(rgb)] == want
    assert [_plain(f) for f in rgb_rec.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA))] == want
    assert [_plain(f) for f in rgb_rec.detect(media_dir / "justin.jpg")] == want  # files: as read
    assert [_plain(f) for f in bgr_rec.detect(rgb)] != want  # RGB taken for BGR: other grey
    crop = bgr[100:290, 90:280]
    assert np.array_equal(rgb_rec.classify(crop[:, :, ::-1]), bgr_rec.classify(crop))
    image = pytest.importorskip("PIL.Image")
    photo = image.open(media_dir / "justin.jpg")
    for rec in (bgr_rec, rgb_rec):
        assert [_plain(f) for f in rec.detect(photo)] == want
        assert [_plain(f) for f in rec.detect(photo.convert("RGBA"))] == want
    gray = [_plain(f) for f in bgr_rec.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))]
    assert [_plain(f) for f in bgr_rec.detect(photo.convert("L"))] == gray


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda b: b.astype(np.float32), r"a picture: float32 values 0..255, but float pictures"),
        (lambda b: np.full(b.shape, np.nan), "not numbers"),
        (lambda b: b > 128, r"a bool array \(a mask\?\) is not a picture"),
        (lambda b: b.astype(np.int16) - 128, r"int16 values -128..127, but pictures are uint8"),
        (lambda b: np.ascontiguousarray(b.transpose(2, 0, 1)), "channels first"),
        (lambda b: b[None], "a batch of one"),
        (lambda b: b[:, :, :2], r"got uint8 \(384, 381, 2\)"),
        (lambda b: b[:0], r"a picture is empty: uint8 \(0, 381, 3\)"),
        (lambda b: b[0, 0], r"got uint8 \(3,\)"),
        (lambda b: None, r"a picture is None \(a camera read that failed\?"),
        (lambda b: b"photo.jpg", "decode the file's bytes first: cv2.imdecode"),
    ],
)
def test_pictures_that_cannot_be_read_say_why(recognizer, media_dir, make, message):
    with pytest.raises(InputError, match=message):
        recognizer.detect(make(_justin(media_dir)))


def test_a_video_or_a_folder_given_as_a_picture_says_what_it_is(recognizer, media_dir):
    with pytest.raises(InputError, match="woman2.mp4: a video, not a picture: give its frames"):
        recognizer.detect(media_dir / "woman2.mp4")
    with pytest.raises(InputError, match="a folder, not an image"):
        recognizer.detect(media_dir)


def test_classify_takes_one_crop_or_many_of_any_kind(recognizer, data_dir):
    """One BGR crop is one crop (not h crops of width 3); paths, float 0..1 and 16-bit crops
    score as the uint8 crops do; a crop that cannot be read is named by its place."""
    test_dir = data_dir / "fer2013" / "test"
    paths = [sorted((test_dir / label).iterdir())[0] for label in recognizer.labels]
    crops = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths])
    scores = recognizer.classify(crops)
    colour = cv2.cvtColor(crops[3], cv2.COLOR_GRAY2BGR)
    assert np.array_equal(recognizer.classify(colour), scores[3:4])
    assert np.array_equal(recognizer.classify(paths[3]), scores[3:4])
    assert np.array_equal(recognizer.classify(paths), scores)
    assert np.array_equal(recognizer.classify(crops / 255.0), scores)
    assert np.array_equal(recognizer.classify(crops.astype(np.uint16) << 8), scores)
    assert np.array_equal(recognizer.classify(crops[..., None]), scores)  # (n, h, w, 1)
    with pytest.raises(InputError, match="crop 2: float32 values .*0..1"):
        recognizer.classify(list(crops[:2] / 255.0) + [crops[2].astype(np.float32)])
    with pytest.raises(InputError, match=r"crop 1 is empty"):
        recognizer.classify([crops[0], crops[1][:0]])
    with pytest.raises(InputError, match=r"crops is an array \(48,\)"):
        recognizer.classify(crops[0, 0])
    with pytest.raises(InputError, match="crops is None"):
        recognizer.classify(None)


def test_a_camera_changing_resolution_starts_a_new_stream(media_dir):
    """A frame of another size ends the open tracks (their end events come with it) and is
    searched at once: a new track, in the new frame's pixels, not the old box carried."""
    cap = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
    frames = [cap.read()[1] for _ in range(30)]
    half = [cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2)) for f in frames[15:]]
    with EmotionRecognizer(video=True, fps=30) as rec:
        before = [rec.process(f) for f in frames[:15]]
        after = [rec.process(f) for f in half]
    assert {r.faces[0].track_id for r in before} == {1}
    assert [e.type for e in after[0].track_events] == ["end"]
    assert after[0].track_events[0].track.id == 1
    assert after[0].detected and [f.track_id for f in after[0].faces] == [2]
    old = np.array(before[-1].faces[0].box)
    new = np.array(after[0].faces[0].box)
    assert np.abs(new - old / 2).max() <= 8  # the same face, at half the size
    assert all(r.faces[0].track_id == 2 for r in after)
    plain = json.loads(json.dumps(after[0].to_dict()))  # a result is plain data too
    assert [(e["type"], e["track_id"]) for e in plain["track_events"]] == [("end", 1)]
    assert plain["track_events"][0]["histogram"] and plain["faces"][0]["track_id"] == 2
    assert plain["size"] == list(half[0].shape[1::-1]) and plain["detected"] is True


def test_close_ends_the_tracks_and_the_next_frame_starts_anew(media_dir):
    cap = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
    frames = [cap.read()[1] for _ in range(12)]
    rec = EmotionRecognizer(video=True, fps=30)
    for f in frames[:10]:
        rec.process(f)
    assert [e.type for e in rec.close()] == ["end"]
    assert rec.close() == []  # twice: nothing more to end
    again = rec.process(frames[10])
    assert again.detected and [f.track_id for f in again.faces] == [2]
    # the with-block's exception is not hidden by close()
    with pytest.raises(KeyError), EmotionRecognizer(video=True, fps=30) as other:
        other.process(frames[0])
        raise KeyError("the caller's")


@pytest.mark.parametrize("fps", [-5, float("nan"), float("inf"), "30", True])
def test_bad_frame_rates_are_config_errors(fps):
    with pytest.raises(ConfigError, match=r"fps = .* \(from argument fps=\): must be the frames"):
        EmotionRecognizer(video=True, fps=fps)


def test_a_picture_path_with_a_tilde_is_read_as_written_and_says_so(recognizer, tmp_path):
    """~ is not expanded in a picture's path (as cv2.imread and PIL do not): a missing one
    says how to expand it; a file really named so in the working folder is read."""
    with pytest.raises(InputError, match=r"no such file\); a path's leading ~ is not expanded"):
        recognizer.detect("~/deepfer-no-such-photo.jpg")
    (tmp_path / "~").mkdir()
    cv2.imwrite(str(tmp_path / "~" / "grey.png"), np.full((60, 60), 128, np.uint8))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        assert recognizer.detect("~/grey.png") == []


def test_a_frame_rate_without_video_is_a_config_error():
    """fps is the frames' rate of one stream (video=True); for photos it would be ignored."""
    with pytest.raises(
        ConfigError, match=r"fps = 30 \(from argument fps=\): only applies with video=True"
    ):
        EmotionRecognizer(fps=30)


@pytest.mark.parametrize("t", [float("nan"), float("inf"), "1.5", None])
def test_bad_frame_times_are_input_errors(recognizer, media_dir, t):
    if t is None:  # (None: the default, fine)
        assert recognizer.detect(_justin(media_dir), t) != []
        return
    with pytest.raises(InputError, match="a frame's time must be a finite number of seconds"):
        recognizer.detect(_justin(media_dir), t)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"settings": [("model.margin", 0.1)]}, "settings=list: give a mapping"),
        ({"settings": {1: 2}}, r"settings\[1\]: keys are 'section.key' strings"),
        ({"config": {"model": {"margin": 0.1}}}, "config=dict: give a Config or a TOML file"),
    ],
)
def test_arguments_of_the_wrong_kind_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        EmotionRecognizer(**kwargs)


def test_a_model_file_without_its_sidecar_or_corrupt_says_so(tmp_path):
    shipped = EmotionRecognizer(model="deepfer-single_int8").classifier.path
    (tmp_path / "alone.tflite").write_bytes(shipped.read_bytes())
    with pytest.raises(ModelInfoError, match="alone.tflite: no sidecar alone.json beside it"):
        EmotionRecognizer(model=tmp_path / "alone.tflite")
    (tmp_path / "broken.tflite").write_bytes(b"not a model" * 100)
    (tmp_path / "broken.json").write_bytes(shipped.with_suffix(".json").read_bytes())
    with pytest.raises(ModelLoadError, match="broken.tflite: not a valid TFLite model"):
        EmotionRecognizer(model=tmp_path / "broken.tflite")


def test_recognizers_in_threads_give_what_they_give_one_after_another(media_dir):
    """One recognizer per thread, or one shared (its calls taken one at a time): the same
    faces as the same calls made in turn."""
    names = ("justin.jpg", "12_angry_men.jpg", "no-faces.jpg") * 3
    photos = [cv2.imread(str(media_dir / n)) for n in names]
    alone = EmotionRecognizer()
    want = [[_plain(f) for f in alone.detect(p)] for p in photos]

    def job(rec, out, i):
        out[i] = [[_plain(f) for f in rec.detect(p)] for p in photos]

    for shared in (False, True):
        out: dict[int, list] = {}
        threads = [
            threading.Thread(target=job, args=(alone if shared else EmotionRecognizer(), out, i))
            for i in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [out[i] for i in range(4)] == [want] * 4, f"shared={shared}"


def test_faces_are_plain_data_that_json_writes(recognizer, media_dir):
    face = recognizer.detect(media_dir / "justin.jpg")[0]
    assert all(type(v) is int for v in face.box) and type(face.score) is float
    assert list(face.scores) == recognizer.labels
    assert all(type(v) is float for v in face.scores.values())
    again = json.loads(json.dumps(dataclasses.asdict(face)))
    assert again["box"] == list(face.box) and again["scores"] == face.scores
    result = json.loads(json.dumps(recognizer.process(media_dir / "justin.jpg").to_dict()))
    assert result["faces"] == [again] and result["track_events"] == []
    assert set(result["timings"]) == {"detect", "classify", "track"}


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
