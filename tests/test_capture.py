"""Sources and the capture loop: picamera2 (through a stand-in module), files, folders,
reopening a failed camera with backoff, and clear errors for unknown sources."""

from __future__ import annotations

import sys
import textwrap
import threading
import time

import cv2
import numpy as np
import pytest

from deepfer.edge.capture import (
    Frame,
    FrameReader,
    ImageFolderSource,
    OpenCVSource,
    Picamera2Source,
    Source,
    SourceError,
    make_source,
)
from deepfer.edge.config import SourceConfig

# The calls DeepFER makes, and nothing else. capture_array("lores") is YUV420: a (h*3/2, w)
# array whose first h rows are the Y plane (here with padded rows, as real strides can be).
FAKE_PICAMERA2 = textwrap.dedent(
    """
    import numpy as np

    CALLS = []

    class Picamera2:
        def __init__(self):
            CALLS.append("init")
            self.config = None
            self.started = False

        def create_video_configuration(self, main=None, lores=None, **kwargs):
            CALLS.append(("config", main, lores, kwargs))
            return {"main": main, "lores": lores}

        def configure(self, config):
            self.config = config

        def start(self):
            self.started = True
            CALLS.append("start")

        def capture_array(self, name="main"):
            assert self.started
            CALLS.append(("capture", name))
            w, h = self.config[name]["size"]
            if name == "lores":
                yuv = np.full((h * 3 // 2, w + 16), 128, np.uint8)
                yuv[:h, :w] = 50
                yuv[h // 4 : h // 2, w // 4 : w // 2] = 200  # a bright square in Y
                return yuv
            frame = np.zeros((h, w, 3), np.uint8)
            frame[..., 2] = 255  # red, BGR order
            return frame

        def stop(self):
            CALLS.append("stop")
            self.started = False

        def close(self):
            CALLS.append("close")
    """
)


@pytest.fixture
def fake_picamera2(tmp_path, monkeypatch):
    pkg = tmp_path / "fakecam" / "picamera2"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(FAKE_PICAMERA2)
    monkeypatch.syspath_prepend(str(tmp_path / "fakecam"))
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    import picamera2

    yield picamera2
    sys.modules.pop("picamera2", None)


def test_picamera2_detects_on_lores_y_plane_and_fetches_main_only_when_needed(fake_picamera2):
    cfg = SourceConfig(uri="auto", width=640, height=480, lores_width=320, lores_height=240)
    source = make_source("auto", cfg)  # auto takes picamera2 when it imports
    assert isinstance(source, Picamera2Source)
    calls = fake_picamera2.CALLS
    frames = []
    reader = FrameReader(source)
    for frame in reader:
        frames.append(frame)
        if len(frames) == 3:
            assert ("capture", "main") not in calls  # nobody needed colour yet
            bgr = frames[0].bgr()  # now someone does (preview, drawing)
            assert frames[0].crop_plane().shape == (480, 640)
            break
    assert calls[0] == "init"
    _, main, lores, _ = calls[1]
    assert main == {"size": (640, 480), "format": "RGB888"}
    assert lores == {"size": (320, 240), "format": "YUV420"}
    frame = frames[0]
    assert frame.gray.shape == (240, 320) and frame.gray.dtype == np.uint8
    assert frame.gray[0, 0] == 50 and frame.gray[90, 120] == 200  # the Y plane, not U/V
    assert frame.size == (640, 480) and frame.scale == (2.0, 2.0)
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[1].t >= frames[0].t
    assert bgr.shape == (480, 640, 3) and tuple(bgr[0, 0]) == (0, 0, 255)
    assert calls.count(("capture", "main")) == 1
    reader.stop()
    assert "stop" in calls and "close" in calls  # the loop closes the camera


def test_picamera2_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails
    source = make_source("picamera2")
    with pytest.raises(SourceError, match="python3-picamera2"):
        source.open()
    assert isinstance(make_source("auto"), OpenCVSource)  # auto falls back to camera 0


def test_pipeline_on_picamera2_boxes_in_main_pixels(fake_picamera2, tiny_tflite_model):
    from deepfer.edge.classifier import EmotionClassifier
    from deepfer.edge.pipeline import FacePipeline

    class OneBox:  # a detector stand-in: the bright square of the fake lores frame
        supports_near = False

        def detect(self, gray, min_size=0):
            return np.array([[80, 60, 80, 60]], np.int32)

    pipeline = FacePipeline(OneBox(), EmotionClassifier(tiny_tflite_model))
    source = make_source("picamera2")
    source.open()
    faces = pipeline.process(source.read())
    source.close()
    assert [f.box for f in faces] == [(160, 120, 160, 120)]  # lores x2 -> main pixels


class FlakySource(Source):
    """A camera that gives frames, disappears (reads and reopens fail), then comes back."""

    name = "flaky camera"
    live = True

    def __init__(self, good_before: int = 3, failed_opens: int = 2):
        self.good_before = good_before
        self.failed_opens = failed_opens
        self.reads = 0
        self.opens = 0
        self.unplugged = False
        self.open_times: list[float] = []

    def open(self):
        self.opens += 1
        self.open_times.append(time.monotonic())
        if self.unplugged:
            if self.failed_opens > 0:
                self.failed_opens -= 1
                raise SourceError("camera 9: cannot open it")
            self.unplugged = False

    def read(self):
        self.reads += 1
        if self.reads == self.good_before + 1:
            self.unplugged = True
        if self.unplugged:
            return None
        return Frame(gray=np.zeros((4, 4), np.uint8), size=(4, 4))


def test_camera_that_disappears_is_reopened_with_backoff():
    source = FlakySource(good_before=3, failed_opens=2)
    failed = []
    reader = FrameReader(
        source, reopen_min_s=0.02, reopen_max_s=0.05, on_failure=lambda: failed.append(1)
    )
    frames = []
    for frame in reader:
        frames.append(frame)
        if len(frames) == 6:
            break
    assert len(frames) == 6 and [f.index for f in frames] == list(range(6))
    assert reader.failures == 1 and reader.reopens == 3  # two failed tries, then back
    assert failed == [1]  # the daemon ends open tracks here
    gaps = np.diff(source.open_times[1:])  # waits between reopen attempts double
    assert gaps[0] >= 0.035 and gaps[1] >= 0.045


def test_stop_interrupts_the_backoff():
    source = FlakySource(good_before=0, failed_opens=10**6)
    reader = FrameReader(source, reopen_min_s=30.0, reopen_max_s=30.0)
    threading.Timer(0.2, reader.stop).start()
    t0 = time.monotonic()
    assert list(reader) == []
    assert time.monotonic() - t0 < 5.0


def test_first_open_failure_is_fatal():
    with pytest.raises(SourceError, match="camera 57"):
        FrameReader(make_source("57")).open()


def test_video_file_ends_the_run_or_loops(media_dir):
    video = media_dir / "woman2.mp4"
    frames = list(FrameReader(make_source(str(video))))
    assert len(frames) == 464 and frames[-1].t == pytest.approx(463 / 29.97, rel=1e-3)
    assert frames[0].gray.shape == (336, 596) and frames[0].bgr().shape == (336, 596, 3)
    looped = []
    for frame in FrameReader(make_source(str(video)), loop=True):
        looped.append(frame)
        if len(looped) == 470:
            break
    assert looped[469].t > looped[463].t  # time goes on across the loop


def test_realtime_paces_files(media_dir):
    reader = FrameReader(make_source(str(media_dir / "woman2.mp4")), realtime=True)
    t0 = time.monotonic()
    for frame in reader:
        if frame.index == 9:
            break
    assert time.monotonic() - t0 >= 9 / 29.97 * 0.9


def test_image_folder_skips_unreadable_images(tmp_path, caplog):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((20, 30, 3), 7, np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    cv2.imwrite(str(tmp_path / "c.png"), np.full((10, 10), 9, np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    source = make_source(str(tmp_path))
    assert isinstance(source, ImageFolderSource)
    frames = list(FrameReader(source))
    assert [f.size for f in frames] == [(30, 20), (10, 10)]
    assert "b.jpg: cannot read this image" in caplog.text
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no images"):
        make_source(str(empty))


@pytest.mark.parametrize("spec", ["nonsense", "/no/such/clip.mp4", "cam0"])
def test_unknown_sources_are_clear_errors(spec):
    with pytest.raises(SourceError, match="unknown source"):
        make_source(spec)


def test_corrupt_video_cannot_be_opened(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(SourceError, match="cannot open it as a video file"):
        make_source(str(bad)).open()


def test_daemon_ends_tracks_when_the_camera_fails_and_goes_on(media_dir, tiny_tflite_model):
    from deepfer.edge.capture import frame_from_image
    from deepfer.edge.config import load_config
    from deepfer.edge.daemon import Daemon
    from deepfer.edge.events import validate_event

    image = cv2.imread(str(media_dir / "justin.jpg"))

    class Camera(FlakySource):
        def read(self):
            frame = super().read()
            return None if frame is None else frame_from_image(image)

    class Collect:
        name = "collect"

        def __init__(self):
            self.events, self.states = [], 0

        def start(self):
            pass

        def publish_event(self, event):
            self.events.append(event)

        def publish_state(self, state):
            self.states += 1

        def stats(self):
            return {"events": len(self.events)}

        def close(self):
            pass

    config = load_config(
        None,
        environ={},
        overrides={
            "model.path": str(tiny_tflite_model),
            "run.max_frames": 10,
            "source.reopen_min_s": 0.01,
            "source.reopen_max_s": 0.02,
        },
    )
    sink = Collect()
    stats = Daemon(config, sinks=[sink], source=Camera(good_before=5, failed_opens=1)).run()
    assert [(e["type"], e["track_id"]) for e in sink.events] == [
        ("start", 1), ("end", 1), ("start", 2), ("end", 2),
    ]  # fmt: skip
    assert all(validate_event(e) == [] for e in sink.events)
    assert stats["frames"] == 10 and sink.states == 10
    assert stats["source_failures"] == 1 and stats["source_reopens"] == 2
    assert stats["stop_reason"] == "max frames"
