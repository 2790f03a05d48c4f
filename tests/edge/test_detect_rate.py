"""``detector.fps``: detect (and classify) a few times a second of stream time, the tracker
carrying the faces in between. Real BlazeFace file, real video, real photo, the tiny int8
model."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from deepfer.edge.capture.frame import Frame, frame_from_image
from deepfer.edge.capture.reader import FrameReader
from deepfer.edge.capture.sources import make_source
from deepfer.edge.config import Config
from deepfer.edge.detect_files import FileDetector
from deepfer.edge.detectors import files, make_detector
from deepfer.edge.errors import SourceError
from deepfer.edge.model.classifier import EmotionClassifier
from deepfer.edge.pipeline import FacePipeline, Interval
from deepfer.edge.tracker import Track

needs_blazeface = pytest.mark.skipif(
    not files.available("blazeface-full"), reason="run `deepfer detectors install`"
)


@pytest.fixture(scope="module")
def classifier(tiny_tflite_model):
    return EmotionClassifier(tiny_tflite_model)


def counting(detector):
    """The real detector, its calls counted and the frames they searched kept (a subclass
    instance, not a mock): ``calls`` full searches, ``near_calls`` near searches."""

    class Counting(type(detector)):
        calls = 0
        near_calls = 0
        searched: list = []

        def detect(self, frame, *args, **kwargs):
            type(self).calls += 1
            type(self).searched.append(getattr(frame, "index", None))
            return super().detect(frame, *args, **kwargs)

        def detect_near(self, frame, *args, **kwargs):
            type(self).near_calls += 1
            type(self).searched.append(getattr(frame, "index", None))
            return super().detect_near(frame, *args, **kwargs)

    Counting.searched = []

    detector.__class__ = Counting
    return detector


def pipeline_at(classifier, fps: float, jitter: float | None = None) -> FacePipeline:
    config = Config()
    config.detector.backend = "blazeface"
    config.detector.fps = fps
    if jitter is not None:
        config.detector.jitter = jitter
    detector = counting(make_detector(config.detector))
    return FacePipeline.from_config(config, classifier, detector)


@needs_blazeface
def test_detects_at_the_set_rate_and_carries_the_track_between(media_dir, classifier):
    pipeline = pipeline_at(classifier, fps=5, jitter=0.3)
    results = []
    for frame in FrameReader(make_source(str(media_dir / "woman2.mp4"))):
        results.append(pipeline.process(frame))
        if frame.t >= 4.0:
            break
    detected = [r for r in results if r.detected]
    # one detection per 0.2 s of stream time on average (the first frame included); the
    # detector searched those frames only (the whole frame, or near the tracked face)
    assert sorted(set(pipeline.detector.searched)) == [r.frame.index for r in detected]
    assert abs(len(detected) - (results[-1].frame.t / 0.2 + 1)) < 1.5
    # the intervals spread by detector.jitter (0.3 here; 0 by default) around 0.2 s
    gaps = np.diff([r.frame.t for r in detected])
    assert Config().detector.jitter == 0.0
    assert gaps.min() > 0.2 * 0.7 - 1 / 30 and gaps.max() < 0.2 * 1.3 + 1 / 30
    assert len(set(np.round(gaps * 30).astype(int))) >= 3  # 5 to 8 frames apart, not always 6
    carried = [r for r in results if not r.detected]
    assert len(carried) == pipeline.carried > 2 * len(detected)
    # the one face keeps its track through the frames in between, its box in the frame
    ids = {f.track_id for r in results for f in r.faces}
    assert len(ids) == 1 and all(r.faces for r in results[1:])
    for r in carried:
        assert r.track_events == [] and r.timings["detect"] == 0.0
        x, y, w, h = r.faces[0].box
        assert x >= 0 and y >= 0 and x + w <= 596 and y + h <= 336
    # scores are held between detections
    last = {}
    for r in results:
        if r.detected:
            last = r.faces[0].scores if r.faces else {}
        else:
            assert r.faces[0].scores == last


@needs_blazeface
def test_a_new_face_is_found_within_one_interval(media_dir, classifier):
    photo = cv2.imread(str(media_dir / "justin.jpg"))
    empty = np.full_like(photo, 128)
    pipeline = pipeline_at(classifier, fps=4, jitter=0.0)  # every 0.25 s
    first_seen = None
    for i in range(30):
        t = i / 30
        result = pipeline.process(frame_from_image(photo if t >= 0.4 else empty, i, t))
        if result.faces and first_seen is None:
            first_seen = t
    assert first_seen is not None and 0.4 <= first_seen <= 0.4 + 0.25
    # t = 0, 0.25, 0.5 search the whole frame; at 0.75 the tracked face is looked for near
    # where it was (short-range model), with the full search due again at 1.5 (rescan_s)
    assert pipeline.detector.calls == 3 and pipeline.detector.near_calls == 1


@pytest.mark.parametrize("fps", [2.0, 5.0, 7.0, 12.0])
def test_the_schedule_keeps_its_mean_rate_with_or_without_jitter(fps):
    """``detector.fps`` detections per second of stream time on average, whatever the spread
    and even where the frame rate is no multiple of it (7 a second from 30 frames a second,
    not 6); with jitter each gap is within (1 -+ jitter) / fps, give or take a frame."""
    frame_rate, seconds = 30, 600
    times = [i / frame_rate for i in range(frame_rate * seconds)]
    for jitter in (0.0, 0.3, 0.9):
        clock = Interval(1 / fps, jitter)
        taken = [t for t in times if clock.take(t)]
        expected = seconds * fps + 1
        if jitter == 0:
            assert abs(len(taken) - expected) <= 1, len(taken)
        else:  # a sum of random steps: within 2% over ten minutes
            assert abs(len(taken) / expected - 1) < 0.02, (jitter, len(taken))
        gaps = np.diff(taken)
        assert gaps.min() > (1 - jitter) / fps - 1 / frame_rate - 1e-9
        assert gaps.max() < (1 + jitter) / fps + 1 / frame_rate + 1e-9
    # a stream slower than the schedule is detected on every frame, never in a burst after
    slow = Interval(1 / 5, 0.3)
    assert all(slow.take(i / 3) for i in range(30))


def test_jitter_moves_the_phase_of_detections_in_the_frames():
    """At 5 detections a second of a 30-frames-a-second stream, evenly spaced detections fall
    on the same frame of every six; spread ones (jitter 0.3) on each of the six within
    half a minute (over 200 seeds: half of them within 4.6 s, nine in ten within 9.7 s)."""

    def phases(jitter):
        clock = Interval(0.2, jitter)
        return {i % 6 for i in range(30 * 30) if clock.take(i / 30)}

    assert phases(0.0) == {0}
    assert phases(0.3) == set(range(6))
    # two copies made alike give the same times (the capture loop decodes the frames its copy
    # names, the pipeline detects on them)
    a, b = Interval(0.2, 0.3), Interval(0.2, 0.3)
    assert [a.take(i / 30) for i in range(300)] == [b.take(i / 30) for i in range(300)]


@needs_blazeface
def test_a_light_beating_with_the_frame_rate_does_not_hide_the_face(media_dir, classifier):
    """Mains light beating with the camera's frame rate leaves one frame in three dark (100 Hz
    flicker at 30 frames a second, a short exposure: black here, as BlazeFace finds a face even
    at 3% of its light). Evenly spaced, detections every sixth frame all fall on dark frames
    and the face is never found; spread (jitter 0.3), they fall on lit frames too, and the
    face is found and tracked, seen but on the frames after a detection that fell on a dark
    one (a miss: the face is hidden until it is seen again)."""
    photo = cv2.imread(str(media_dir / "justin.jpg"))
    dark = np.zeros_like(photo)
    seen = {}
    for jitter in (0.0, 0.3):
        pipeline = pipeline_at(classifier, fps=5, jitter=jitter)
        results = [
            pipeline.process(frame_from_image(dark if i % 3 == 0 else photo, i, i / 30))
            for i in range(120)
        ]
        seen[jitter] = [r for r in results if any(f.confirmed for f in r.faces)]
        if jitter:
            assert {f.track_id for r in results for f in r.faces} == {1}
    assert seen[0.0] == []
    assert len(seen[0.3]) >= 60  # of 120 frames (about one detection in three is dark)


def _two_faces(photo: np.ndarray, second: bool) -> np.ndarray:
    """justin.jpg beside a grey panel, or beside its own mirror image (a second face)."""
    other = cv2.flip(photo, 1) if second else np.full_like(photo, 128)
    return np.hstack([photo, other])


@needs_blazeface
def test_a_face_joining_a_tracked_one_is_found_by_the_next_full_search(media_dir, classifier):
    photo = cv2.imread(str(media_dir / "justin.jpg"))
    pipeline = pipeline_at(classifier, fps=5)
    assert pipeline.rescan_s == 1.0 and pipeline.detector.supports_near
    seen = []
    for i in range(60):  # 2 s at 30 frames a second; the second face from 0.3 s
        t = i / 30
        result = pipeline.process(frame_from_image(_two_faces(photo, t >= 0.3), i, t))
        seen.append((t, len(result.faces)))
    first_two = min(t for t, n in seen if n == 2)
    assert 0.3 <= first_two <= 1.0 + 0.2 + 1e-6  # the full search at t = 1.0 (rescan_s)
    assert pipeline.detector.near_calls >= 3  # between the full searches: near the face
    assert pipeline.near_scans >= 3 and pipeline.full_scans >= 2


@needs_blazeface
def test_a_face_that_moved_away_is_found_by_a_full_search_on_the_same_frame(media_dir, classifier):
    photo = cv2.imread(str(media_dir / "justin.jpg"))
    blank = np.full_like(photo, 128)
    pipeline = pipeline_at(classifier, fps=5, jitter=0.0)  # both frames detected on
    left = pipeline.process(frame_from_image(np.hstack([photo, blank]), 0, 0.0))
    assert len(left.faces) == 1
    moved = pipeline.process(frame_from_image(np.hstack([blank, photo]), 1, 0.2))
    assert moved.detected and len(moved.faces) == 1
    assert moved.faces[0].box[0] >= photo.shape[1] - 10  # found on the right, at once
    assert pipeline.detector.near_calls == 1 and pipeline.detector.calls == 2


@needs_blazeface
def test_a_near_search_gives_a_track_its_own_face_and_nothing_else(media_dir, classifier):
    """An ear, a hand or a face-like patch the short-range model also reports inside the
    square around a tracked face (a multi-face pan over a group photo showed ears) must not
    start a track that near searches then keep alive: the real detector, its near search
    also reporting such a box beside the face; only the tracked face comes back, and the
    extra box never becomes a track."""
    from deepfer.edge.detectors.base import Detection

    photo = cv2.imread(str(media_dir / "justin.jpg"))
    pipeline = pipeline_at(classifier, fps=4)
    real = type(pipeline.detector)

    class EarToo(real):
        def detect_near(self, frame, box):
            found = super().detect_near(frame, box)
            x, y, w, h = (int(v) for v in box)
            ear = Detection(box=(x + w, y + h // 3, w // 3, w // 3), score=0.51)
            return found + [ear]

    pipeline.detector.__class__ = EarToo
    ids = set()
    for i in range(60):  # two seconds: full searches at 0 and 1 s, near searches between
        result = pipeline.process(frame_from_image(photo, i, i / 30))
        ids.update(f.track_id for f in result.faces)
    assert len(ids) == 1 and len(pipeline.tracker.tracks) == 1
    assert pipeline.near_scans >= 4


@needs_blazeface
def test_near_search_is_off_with_rescan_zero_or_many_faces(media_dir, classifier):
    photo = cv2.imread(str(media_dir / "justin.jpg"))
    config = Config()
    config.detector.backend = "blazeface"
    config.detector.rescan_s = 0.0
    detector = counting(make_detector(config.detector))
    pipeline = FacePipeline.from_config(config, classifier, detector)
    for i in range(3):  # a frame every 0.2 s: each detected on
        pipeline.process(frame_from_image(photo, i, i * 0.2))
    # rescan_s = 0: every detection searches the whole frame (near searches may precede it)
    assert detector.calls == 3

    row = np.hstack([photo, cv2.flip(photo, 1), photo])  # three faces: more than max_near_faces
    detector = counting(make_detector(Config().detector))
    pipeline = FacePipeline.from_config(Config(), classifier, detector)
    for i in range(3):
        result = pipeline.process(frame_from_image(row, i, i * 0.2))
    assert len(result.faces) == 3 > detector.max_near_faces
    assert detector.near_calls == 0 and detector.calls == 3


@needs_blazeface
def test_time_going_back_detects_at_once(media_dir, classifier):
    photo = cv2.imread(str(media_dir / "justin.jpg"))
    pipeline = pipeline_at(classifier, fps=2)
    for t in (5.0, 5.1, 5.2, 0.0, 0.1):  # a looped file starts again
        pipeline.process(frame_from_image(photo, 0, t))
    assert pipeline.detector.calls == 2


def test_every_frame_is_detected_without_a_rate_or_a_tracker(media_dir, classifier):
    photo = cv2.imread(str(media_dir / "justin.jpg"))
    config = Config()
    config.detector.backend = "haar"
    for fps, track in ((0.0, True), (5.0, False)):
        config.detector.fps = fps
        detector = counting(make_detector(config.detector))
        pipeline = FacePipeline.from_config(config, classifier, detector, track=track)
        for i in range(5):
            assert pipeline.process(frame_from_image(photo, i, i / 30)).detected
        assert detector.calls >= 5 - 4 * track  # Haar may search near the face instead


def test_a_folder_of_photos_is_detected_and_classified_photo_by_photo(
    media_dir, classifier, tmp_path
):
    justin = cv2.imread(str(media_dir / "justin.jpg"))
    for i in range(4):  # the same place, two different pictures in turn
        cv2.imwrite(str(tmp_path / f"{i}.png"), justin if i % 2 else (justin * 0.5).astype("uint8"))
    source = make_source(str(tmp_path))
    assert source.stills and not make_source(str(media_dir / "woman2.mp4")).stills
    config = Config()
    config.detector.backend = "haar"
    config.detector.fps = 5.0
    detector = make_detector(config.detector)
    pipeline = FacePipeline.from_config(config, classifier, detector, stills=source.stills)
    results = [pipeline.process(frame) for frame in FrameReader(source)]
    assert len(results) == 4 and all(r.detected for r in results) and pipeline.carried == 0
    # each photo's emotion is its own: not smoothed with the photo before it
    alone = FacePipeline.from_config(config, classifier, detector, track=False)
    for result, frame in zip(results, FrameReader(make_source(str(tmp_path)))):
        own = alone.process(frame).faces[0].scores
        assert result.faces[0].track_id == 1
        assert result.faces[0].scores == pytest.approx(own, abs=1e-6)
    assert results[0].faces[0].scores != pytest.approx(results[1].faces[0].scores, abs=1e-3)


@needs_blazeface
def test_frames_between_detections_are_not_decoded_and_nothing_changes(media_dir, classifier):
    """The capture loop, given the pipeline's pixel clock, decodes only the frames detected
    on; the faces of every frame are the same as when every frame is decoded."""
    video = str(media_dir / "woman2.mp4")
    runs = {}
    for name in ("all decoded", "skipped"):
        pipeline = pipeline_at(classifier, fps=5)
        clock = pipeline.pixel_clock() if name == "skipped" else None
        results = []
        for frame in FrameReader(make_source(video), pixels=clock):
            results.append(pipeline.process(frame))
            if frame.t >= 6.0:
                break
        runs[name] = results
    all_decoded, skipped = runs["all decoded"], runs["skipped"]
    assert all(r.frame.has_pixels for r in all_decoded)
    decoded = [r.frame.index for r in skipped if r.frame.has_pixels]
    assert decoded == [r.frame.index for r in skipped if r.detected]  # exactly those
    assert len(decoded) < len(skipped) / 4  # 5 of woman2's 30 frames a second
    for a, b in zip(all_decoded, skipped, strict=True):
        assert (a.frame.index, a.frame.size, a.frame.t) == (b.frame.index, b.frame.size, b.frame.t)
        assert a.detected == b.detected
        assert [(f.box, f.emotion, f.track_id) for f in a.faces] == [
            (f.box, f.emotion, f.track_id) for f in b.faces
        ]
    with pytest.raises(SourceError, match="without its pixels"):
        next(r.frame for r in skipped if not r.frame.has_pixels).gray  # noqa: B018


def test_a_frame_without_pixels_is_carried_and_the_next_one_detected(classifier):
    config = Config()
    config.detector.backend = "haar"
    config.detector.fps = 5.0
    config.detector.jitter = 0.0  # evenly spaced: every 0.2 s
    pipeline = FacePipeline.from_config(config, classifier, make_detector(config.detector))
    image = np.full((240, 320, 3), 128, np.uint8)
    first = pipeline.process(frame_from_image(image, t=0.0))
    assert first.detected
    skipped = Frame.skipped((320, 240))
    skipped.t = 0.25  # due, but nothing to look at: carried
    assert not pipeline.process(skipped).detected
    assert pipeline.process(frame_from_image(image, t=0.3)).detected
    clock = pipeline.pixel_clock()
    assert [clock(t) for t in (0.0, 0.1, 0.2, 0.3, 0.4, 0.1)] == [1, 0, 1, 0, 1, 1]
    config.detector.fps = 0  # every frame: every frame decoded
    every = FacePipeline.from_config(config, classifier, make_detector(config.detector))
    assert every.pixel_clock() is None


def test_deepfer_detect_detects_every_frame_it_looks_at(classifier):
    config = Config()
    config.detector.backend = "haar"
    config.detector.fps = 5.0
    pipeline = FileDetector(config, classifier).pipeline(320, track=True)
    assert pipeline.tracker is not None and pipeline.detect_interval == 0.0


def test_track_predicts_with_its_velocity_and_stays_in_the_frame():
    tr = Track(1, (100, 100, 50, 50), np.ones(3, np.float32) / 3, "happy", 0.0, 0.0)
    tr.moved((110, 100, 50, 50), 0.1)  # 100 px/s to the right: the first step is its velocity
    assert tr.last_t == 0.1
    assert tr.velocity[0] == pytest.approx(100.0)
    assert tr.predict(0.2, (640, 480)) == (120, 100, 50, 50)
    assert tr.predict(0.1, (640, 480)) == (110, 100, 50, 50)
    assert tr.predict(10.0, (640, 480)) == (160, 100, 50, 50)  # at most 0.5 s ahead
    tr.hits = 2  # (the tracker counts them) later steps are mixed evenly with the velocity
    tr.moved((110, 100, 50, 50), 0.2)
    assert tr.velocity[0] == pytest.approx(50.0)
    tr.velocity[:] = (-5000, -5000, 0, 0)
    assert tr.predict(0.6, (640, 480)) == (0, 0, 50, 50)
    tr.velocity[:] = (5000, 5000, 0, 0)
    assert tr.predict(0.6, (640, 480)) == (590, 430, 50, 50)


@needs_blazeface
def test_a_face_walking_past_stays_one_track(media_dir, classifier):
    """Someone walking past the camera, seen 5 times a second: Justin's photo (face about 90
    px) crossing a 640x360 frame in 1.5 s moves about a face width between two detections,
    so his boxes do not overlap enough to match; he is still one track with one start event
    (one person for a counter of visitors), found near where he was heading."""
    from deepfer.edge.boxes import iou

    photo = cv2.resize(cv2.imread(str(media_dir / "justin.jpg")), None, fx=0.5, fy=0.5)
    ph, pw = photo.shape[:2]
    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur((rng.random((360, 640, 3)) * 255).astype(np.uint8), (0, 0), 8)
    pipeline = pipeline_at(classifier, fps=5)
    ids, starts, overlaps, last = set(), 0, [], None
    for i in range(40):  # 1.6 s at 25 frames a second
        t = i / 25
        x = int(-pw / 2 + 640 * t / 1.5)
        frame = scene.copy()
        x0, x1 = max(0, x), min(640, x + pw)
        frame[90 : 90 + ph, x0:x1] = photo[:, x0 - x : x1 - x]
        result = pipeline.process(frame_from_image(frame, i, t))
        ids |= {f.track_id for f in result.faces}
        starts += sum(e.type == "start" for e in result.track_events)
        if result.detected and len(result.faces) == 1:
            if last is not None:
                overlaps.append(iou(last, result.faces[0].box))
            last = result.faces[0].box
    assert len(overlaps) >= 5 and max(overlaps) < pipeline.tracker.iou_threshold
    assert ids == {1} and starts == 1
    assert pipeline.near_scans >= 2  # looked for where he was heading, and found there
