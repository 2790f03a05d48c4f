"""The pipeline on real media (woman2.mp4, photos) with a real TFLite model, and the tracker."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from deepfer.edge.boxes import iou, nms, suppress_overlaps
from deepfer.edge.capture.reader import FrameReader
from deepfer.edge.capture.sources import make_source
from deepfer.edge.config import Config
from deepfer.edge.detectors import HaarDetector, make_detector
from deepfer.edge.errors import DetectorError
from deepfer.edge.messages import EventBuilder, validate_event
from deepfer.edge.model.classifier import EmotionClassifier
from deepfer.edge.pipeline import FacePipeline, FrameResult
from deepfer.edge.tracker import Tracker

LABELS = ["angry", "happy", "sad"]


def onehot(label: str, p: float = 0.9) -> np.ndarray:
    s = np.full(len(LABELS), (1 - p) / (len(LABELS) - 1), np.float32)
    s[LABELS.index(label)] = p
    return s


# -- tracker ------------------------------------------------------------------------------


def test_tracker_matches_by_iou_and_keeps_ids():
    tr = Tracker(LABELS, iou_threshold=0.3, min_hits=1, max_missed_s=0.1)
    a, b = [10, 10, 50, 50], [200, 10, 50, 50]
    tracks, events = tr.update(np.array([a, b]), np.stack([onehot("happy")] * 2), 0.0)
    assert [t.id for t in tracks] == [1, 2] and [e.type for e in events] == ["start"] * 2
    # both move a little and come in the other order: same ids
    tracks, _ = tr.update(
        np.array([[204, 12, 50, 50], [14, 12, 50, 50]]), np.stack([onehot("happy")] * 2), 0.1
    )
    assert [t.id for t in tracks] == [2, 1]
    # a box far from both starts a new track
    tracks, _ = tr.update(np.array([[400, 300, 50, 50]]), onehot("sad")[None], 0.2)
    assert tracks[0].id == 3
    assert iou(a, a) == 1.0 and iou(a, b) == 0.0


def walk(tracker: Tracker, step: float, n: int = 10, dt: float = 0.2) -> tuple[set, int]:
    """A 50-px face moving ``step`` px to the right between detections ``dt`` s apart:
    (track ids it got, start events)."""
    ids, starts = set(), 0
    for i in range(n):
        box = np.array([[10 + step * i, 100, 50, 50]])
        tracks, events = tracker.update(box, onehot("happy")[None], i * dt)
        ids.add(tracks[0].id)
        starts += sum(e.type == "start" for e in events)
    return ids, starts


def test_a_face_walking_past_keeps_its_track():
    # 60 px (1.2 face sides) between detections 0.2 s apart: no overlap with its last box
    assert walk(Tracker(LABELS), 60) == ({1}, 1)
    # overlap alone: a new track, a new "person", at every detection, none ever started
    assert walk(Tracker(LABELS, max_speed=0), 60) == (set(range(1, 11)), 0)
    # 3 sides a step (15 a second) is too far for the default's first step; with a larger
    # reach the second detection gives the velocity, and the face is expected where it heads
    assert walk(Tracker(LABELS), 150, n=3)[0] != {1}
    assert walk(Tracker(LABELS, max_speed=16), 150) == ({1}, 1)


def test_distance_joins_only_a_face_of_the_tracks_size_within_reach():
    def second(box, dt=0.2, **kwargs) -> int:
        tr = Tracker(LABELS, min_hits=1, **kwargs)
        tr.update(np.array([[100, 100, 50, 50]]), onehot("happy")[None], 0.0)
        return tr.update(np.array([box]), onehot("happy")[None], dt)[0][0].id

    assert second([210, 100, 50, 50]) == 1  # 2.2 sides away in 0.2 s (reach: 12 x 0.2 = 2.4)
    assert second([230, 100, 50, 50]) == 2  # 2.6 sides: too far for 0.2 s
    assert second([230, 100, 50, 50], dt=0.4) == 1  # ... not for 0.4 s (a missed detection)
    assert second([450, 100, 50, 50], dt=2.0) == 2  # 7 sides: reach stops growing at 0.5 s
    assert second([165, 80, 100, 100]) == 2  # twice the size: another face
    assert second([170, 100, 40, 40]) == 1  # a little smaller: the same face


def test_one_detection_flicker_does_not_change_the_emotion():
    tr = Tracker(LABELS, smoothing_s=0.0, debounce_s=0.2, min_hits=1, max_missed_s=0.0)
    box = np.array([[10, 10, 50, 50]])
    seq = ["happy", "happy", "sad", "happy", "sad", "sad", "sad", "sad"]
    emotions, events = [], []
    for i, label in enumerate(seq):
        tracks, evs = tr.update(box, onehot(label)[None], i * 0.1)
        emotions.append(tracks[0].emotion)
        events += evs
    # the lone "sad" at 0.2 s is ignored; the lasting one wins once it has led for 0.2 s
    assert emotions == ["happy", "happy", "happy", "happy", "happy", "happy", "sad", "sad"]
    assert [e.type for e in events] == ["start", "change"]
    assert events[1].emotion == "sad"
    # however long the gap, one detection never changes the emotion
    tracks, evs = tr.update(box, onehot("happy")[None], 0.75)
    assert tracks[0].emotion == "sad" and evs == []


def test_smoothing_is_a_half_life_in_stream_time():
    box = np.array([[10, 10, 50, 50]])
    tr = Tracker(LABELS, smoothing_s=0.2, min_hits=1)
    assert tr.weight(0.2) == pytest.approx(0.5) and tr.weight(0.4) == pytest.approx(0.75)
    assert tr.weight(-1.0) == 1.0  # time went back: the new face alone
    assert Tracker(LABELS, smoothing_s=0.0).weight(0.01) == 1.0
    tr.update(box, onehot("angry", 1.0)[None], 0.0)
    tracks, _ = tr.update(box, onehot("happy", 1.0)[None], 0.2)
    assert tracks[0].scores[LABELS.index("happy")] == pytest.approx(0.5)


def rate_run(fps: float, smoothing_s=0.2, debounce_s=0.4) -> list[tuple[float, str]]:
    """A face that is happy for 2 s, then sad for 2 s, detected ``fps`` times a second:
    (time of each change event, emotion)."""
    tr = Tracker(LABELS, smoothing_s=smoothing_s, debounce_s=debounce_s, min_hits=1)
    box = np.array([[10, 10, 50, 50]])
    changes = []
    for i in range(int(4 * fps)):
        t = i / fps
        _, evs = tr.update(box, onehot("happy" if t < 2.0 else "sad", 0.8)[None], t)
        changes += [(t, e.emotion) for e in evs if e.type == "change"]
    return changes


def test_a_change_takes_the_same_time_at_any_detection_rate():
    at = {fps: rate_run(fps) for fps in (5, 10, 15, 30)}
    assert all(len(c) == 1 and c[0][1] == "sad" for c in at.values())
    delays = [c[0][0] - 2.0 for c in at.values()]
    # the scores cross over after about one half-life, then 0.4 s of debounce: ~0.6 s at
    # every rate (within one detection interval); a count of detections would give
    # 0.4-0.8 s at 5 a second and 0.07-0.13 s at 30
    assert all(0.45 <= d <= 0.8 for d in delays), delays
    assert max(delays) - min(delays) <= 0.2 + 1e-9


def test_smoothing_min_hits_and_end_with_dwell_and_histogram():
    tr = Tracker(LABELS, smoothing_s=0.5, debounce_s=0.0, min_hits=2, max_missed_s=1.0)
    box = np.array([[10, 10, 50, 50]])
    _, ev = tr.update(box, onehot("angry")[None], 1.0)
    assert ev == []  # seen once: not started yet
    _, ev = tr.update(box, onehot("happy", 1.0)[None], 1.5)  # one half-life later
    assert [e.type for e in ev] == ["start"]
    smoothed = ev[0].scores
    assert smoothed["angry"] == pytest.approx(0.5 * 0.9) and smoothed["happy"] == pytest.approx(
        0.5 + 0.025
    )
    for t in (2.0, 2.5):  # gone 0.5 and 1.0 s: still open
        _, ev = tr.update(np.zeros((0, 4)), np.zeros((0, 3)), t)
        assert ev == []
    _, ev = tr.update(np.zeros((0, 4)), np.zeros((0, 3)), 3.0)  # gone 1.5 s > 1.0
    assert [e.type for e in ev] == ["end"]
    assert ev[0].dwell_s == pytest.approx(0.5) and ev[0].histogram == {"happy": 1}
    assert tr.tracks == [] and tr.close() == []


def test_unstarted_tracks_vanish_silently_and_close_ends_the_rest():
    tr = Tracker(LABELS, min_hits=3, max_missed_s=0.0)
    tr.update(np.array([[0, 0, 10, 10]]), onehot("sad")[None], 0.0)
    _, ev = tr.update(np.zeros((0, 4)), np.zeros((0, 3)), 0.1)
    assert ev == [] and tr.tracks == []
    for t in range(3):
        _, ev = tr.update(np.array([[0, 0, 10, 10]]), onehot("sad")[None], t)
    assert [e.type for e in tr.close()] == ["end"]


# -- the pipeline on real media -------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier(tiny_tflite_model):
    return EmotionClassifier(tiny_tflite_model)


def make_pipeline(classifier, track=True, detect_width=None, backend="auto"):
    config = Config()
    config.detector.backend = backend
    if detect_width is not None:
        config.detector.detect_width = detect_width
    return FacePipeline.from_config(config, classifier, make_detector(config.detector), track=track)


def check_event_stream(events, labels):
    for ev in events:
        assert validate_event(ev, labels) == [], ev
    seqs = [ev["seq"] for ev in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # contiguous
    by_track: dict[int, list[str]] = {}
    for ev in events:
        by_track.setdefault(ev["track_id"], []).append(ev["type"])
    for types in by_track.values():
        assert types[0] == "start" and types[-1] == "end"
        assert set(types[1:-1]) <= {"change"}
    return by_track


@pytest.mark.parametrize("backend", ["haar", "auto"])
def test_woman2_faces_events_and_schema(media_dir, classifier, backend):
    pipeline = make_pipeline(classifier, backend=backend)
    builder = EventBuilder("test-device", classifier.info.name)
    frames = with_face = detected = 0
    events = []
    started: set[int] = set()
    for frame in FrameReader(make_source(str(media_dir / "woman2.mp4"))):
        result = pipeline.process(frame)
        detected += result.detected
        assert isinstance(result, FrameResult) and result.frame is frame
        assert set(result.timings) == {"detect", "classify", "track"}
        faces = result.faces
        frames += 1
        with_face += bool(faces)
        events += [builder.from_track_event(ev, frame.ts) for ev in result.track_events]
        started.update(ev.track.id for ev in result.track_events if ev.type == "start")
        for face in faces:
            # confirmed (in MQTT state and summaries) exactly once its start event is out
            assert face.confirmed == (face.track_id in started)
            assert face.emotion in classifier.labels and 0.0 <= face.score <= 1.0
            x, y, w, h = face.box
            assert x >= 0 and y >= 0 and x + w <= 596 + 2 and y + h <= 336 + 2
            assert face.track_id is not None
    events += [builder.from_track_event(ev) for ev in pipeline.close()]
    assert frames == 464
    assert with_face / frames >= 0.98
    tracks = check_event_stream(events, classifier.labels)
    assert len(tracks) <= 3  # one woman, not a new track every few frames
    assert started == set(tracks)
    end = [e for e in events if e["type"] == "end"][0]
    # detector.fps (5 a second by default): detections on about one frame in five or six,
    # the tracker carrying the face in between; the histogram counts classifications
    assert detected + pipeline.carried == frames
    assert 0.1 * frames < detected < 0.3 * frames
    assert end["dwell_s"] > 5 and sum(end["histogram"].values()) > 0.9 * detected
    if pipeline.detector.supports_near:  # Haar: tracked faces are searched for nearby
        assert pipeline.near_scans > pipeline.full_scans
    else:  # a neural detector searches the whole frame at each detection
        assert pipeline.full_scans == detected


@pytest.mark.parametrize(
    "name, least, most", [("justin.jpg", 1, 1), ("12_angry_men.jpg", 5, 14), ("no-faces.jpg", 0, 0)]
)
def test_photos(media_dir, classifier, name, least, most):
    image = cv2.imread(str(media_dir / name))
    faces = make_pipeline(classifier, track=False, detect_width=640).process(image).faces
    assert least <= len(faces) <= most
    for face in faces:
        assert face.track_id is None
        assert sorted(face.scores) == sorted(classifier.labels)
        assert face.emotion == max(face.scores, key=face.scores.get)


def test_float_model_works_too(media_dir, tiny_tflite_model):
    float_model = tiny_tflite_model.with_name("tiny_float32.tflite")
    if not float_model.is_file():
        pytest.skip("the fixture made no float32 model")
    clf = EmotionClassifier(float_model)
    assert clf.input_dtype == "float32"
    image = cv2.imread(str(media_dir / "justin.jpg"))
    faces = make_pipeline(clf, track=False).process(image).faces
    assert len(faces) == 1 and sum(faces[0].scores.values()) == pytest.approx(1.0, abs=0.02)


def test_all_faces_of_a_frame_go_in_one_call(media_dir, classifier):
    calls = []
    real = classifier.infer

    class Counting:
        labels, input_size, info = classifier.labels, classifier.input_size, classifier.info

        def infer(self, faces):
            calls.append(len(faces))
            return real(faces)

    pipeline = make_pipeline(Counting(), track=False, detect_width=640)
    faces = pipeline.process(cv2.imread(str(media_dir / "12_angry_men.jpg"))).faces
    assert calls == [2 * len(faces)]  # one call: both framings (model.crop_jitter) of every face


def test_no_haar_cascades_says_to_use_yunet(monkeypatch):
    monkeypatch.delattr(cv2, "CascadeClassifier")
    with pytest.raises(DetectorError, match="YuNet") as err:
        HaarDetector()
    assert "--yunet" in str(err.value)


def test_missing_yunet_file_is_a_clear_error(tmp_path):
    config = Config().detector
    config.yunet_model = str(tmp_path / "face_detection_yunet.onnx")
    with pytest.raises(DetectorError, match="no such file"):
        make_detector(config)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx model" * 8)
    config.yunet_model = str(junk)
    with pytest.raises(DetectorError, match="not a YuNet ONNX model"):
        make_detector(config)


def test_documented_examples_follow_the_schema():
    import json
    import re
    from pathlib import Path

    from deepfer.edge.labels import LABELS as ALL_LABELS

    text = (Path(__file__).parents[2] / "docs" / "events.md").read_text()
    examples = [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", text, re.S)]
    assert [e["type"] for e in examples] == ["start", "change", "end"]
    for example in examples:
        assert validate_event(example, ALL_LABELS) == [], example


# -- non-maximum suppression (boxes.py) ----------------------------------------------------


def test_nms_keeps_one_box_per_face_also_when_one_box_holds_another():
    face = [100, 100, 100, 100]
    inner = [120, 120, 60, 60]  # the same face found smaller: IoU 0.36, under the threshold
    shifted = [105, 103, 100, 100]  # the same face found again: IoU 0.9
    other = [400, 100, 90, 90]  # another face beside it
    boxes = np.array([inner, face, other, shifted], np.int32)
    assert iou(face, inner) < 0.4  # plain IoU suppression would keep both
    kept = suppress_overlaps(boxes)
    assert kept.tolist() == [face, other]  # one box per face, larger first, input order
    assert nms(boxes, np.array([0.9, 0.8, 0.7, 0.6])).tolist() == [0, 2]  # scores decide


def test_nms_keeps_faces_that_only_touch():
    boxes = np.array([[0, 0, 50, 50], [45, 0, 50, 50], [0, 60, 50, 50]], np.int32)
    assert suppress_overlaps(boxes).tolist() == boxes.tolist()
    assert suppress_overlaps(np.zeros((0, 4), np.int32)).shape == (0, 4)


def test_each_face_is_classified_on_two_framings_averaged(media_dir, classifier):
    """model.crop_jitter: the crops at (1 - j) and (1 + j) times the framed side, one
    classifier call, scores averaged; 0 gives the one crop of before."""
    from deepfer.edge.boxes import crop_box
    from deepfer.edge.capture.frame import frame_from_image
    from deepfer.edge.preprocess import crop_face

    photo = cv2.imread(str(media_dir / "justin.jpg"))
    frame = frame_from_image(photo)
    pipeline = make_pipeline(classifier, track=False)
    assert pipeline.crop_jitter == Config().model.crop_jitter == 0.06
    boxes = pipeline.detect(frame).boxes
    assert len(boxes) == 1
    s, dx, dy = pipeline.detector.crop
    by_hand = []
    for scale in (0.94, 1.06):
        square = crop_box(boxes[0], (s * scale, dx, dy))
        face = crop_face(frame.crop_plane(), square, pipeline.size[0], pipeline.margin)
        by_hand.append(classifier.infer(face[None])[0])
    got = pipeline.classify(frame, boxes)
    np.testing.assert_allclose(got[0], (by_hand[0] + by_hand[1]) / 2, atol=1e-6)
    assert pipeline.process(frame).faces[0].scores == pytest.approx(
        dict(zip(classifier.labels, got[0].tolist())), abs=1e-6
    )
    pipeline.crop_jitter = 0.0
    one = classifier.infer(pipeline.crops(frame, boxes))
    np.testing.assert_allclose(pipeline.classify(frame, boxes), one, atol=1e-6)
    assert not np.allclose(one, got, atol=1e-4)  # the two framings do change the scores


def test_a_tilted_face_is_classified_level(media_dir, classifier):
    """model.level_above: a face whose eyes lean beyond it is cropped turned back to lean that
    much (the detector's eye keypoints); upright faces and level_above = 90 crop as before."""
    from deepfer.edge.capture.frame import frame_from_image
    from deepfer.edge.detectors import files

    if not files.available("blazeface-full"):
        pytest.skip("the neural detectors' files are not installed: `deepfer detectors install`")
    photo = cv2.imread(str(media_dir / "justin.jpg"))
    pipeline = make_pipeline(classifier, track=False, backend="blazeface")
    assert pipeline.level_above == Config().model.level_above == 10.0
    upright = frame_from_image(photo)
    boxes, rolls, _ = pipeline.detect(upright)
    assert len(boxes) == 1 and abs(rolls[0]) < 10
    x, y, w, h = boxes[0]
    turn = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), 30, 1.0)  # about the face
    tilted = frame_from_image(
        cv2.warpAffine(photo, turn, photo.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    )
    tilted_boxes, tilted_rolls, _ = pipeline.detect(tilted)
    assert len(tilted_boxes) == 1 and -40 < tilted_rolls[0] - rolls[0] < -20
    reference = pipeline.crops(upright, boxes).astype(float)
    as_is = pipeline.crops(tilted, tilted_boxes).astype(float)
    level = pipeline.crops(tilted, tilted_boxes, rolls=tilted_rolls).astype(float)
    assert np.abs(level - reference).mean() < 0.8 * np.abs(as_is - reference).mean()
    scores = pipeline.classify(tilted, tilted_boxes, tilted_rolls)
    assert pipeline.process(tilted).faces[0].scores == pytest.approx(
        dict(zip(classifier.labels, scores[0].tolist())), abs=1e-6
    )
    np.testing.assert_array_equal(pipeline.crops(upright, boxes, rolls=rolls), reference)
    pipeline.level_above = 0.0  # level: closer still
    flat = pipeline.crops(tilted, tilted_boxes, rolls=tilted_rolls).astype(float)
    assert np.abs(flat - reference).mean() < 0.6 * np.abs(as_is - reference).mean()
    assert np.abs(flat - reference).mean() < np.abs(level - reference).mean()
    pipeline.level_above = 90.0
    np.testing.assert_array_equal(pipeline.crops(tilted, tilted_boxes, rolls=tilted_rolls), as_is)
