"""Sources and the capture loop: picamera2 (through a stand-in module), files, folders,
reopening a failed camera with backoff, and clear errors for unknown sources."""

from __future__ import annotations

import logging
import re
import sys
import textwrap
import threading
import time
from itertools import islice

import cv2
import numpy as np
import pytest
from synthetic import moving_square_frames, retime_mp4, write_gif, write_video

from deepfer.edge.capture.frame import Frame, frame_from_image
from deepfer.edge.capture.imagefile import cut_short, load_image
from deepfer.edge.capture.inputs import PHOTO, input_kind, video_header
from deepfer.edge.capture.reader import FrameReader
from deepfer.edge.capture.sources import (
    ImageFolderSource,
    OpenCVSource,
    PhotoSource,
    Picamera2Source,
    RotatedSource,
    Source,
    make_source,
)
from deepfer.edge.config import SourceConfig
from deepfer.edge.errors import InputError, SourceError
from deepfer.edge.netaddr import redact_url

# The calls DeepFER makes, and nothing else. Like a real camera it gives a new picture every
# frame: a bright square that moves 8 lores pixels a frame, drawn in both streams. Every
# capture (capture_array or capture_request) takes the next camera frame, so arrays from two
# captures belong to two frames. lores is YUV420: a (h*3/2, w) array whose first h rows are
# the Y plane (here with padded rows, as real strides can be).
FAKE_PICAMERA2 = textwrap.dedent(
    """
    import numpy as np

    CALLS = []

    def square_x(n, lores_width):
        return (8 * n) % (lores_width // 2)

    class Request:
        def __init__(self, cam, n):
            self.cam, self.n, self.released = cam, n, False

        def make_array(self, name):
            assert not self.released, "make_array after release"
            CALLS.append(("make_array", name))
            return self.cam.picture(name, self.n)

        def release(self):
            CALLS.append("release")
            self.released = True

    class Picamera2:
        def __init__(self):
            CALLS.append("init")
            self.config = None
            self.started = False
            self.frame = 0

        def create_video_configuration(self, main=None, lores=None, **kwargs):
            CALLS.append(("config", main, lores, kwargs))
            return {"main": main, "lores": lores}

        def configure(self, config):
            self.config = config

        def start(self):
            self.started = True
            CALLS.append("start")

        def next_frame(self):
            assert self.started
            self.frame += 1
            return self.frame

        def picture(self, name, n):
            lw, lh = self.config["lores"]["size"]
            x = square_x(n, lw)
            if name == "lores":
                yuv = np.full((lh * 3 // 2, lw + 16), 128, np.uint8)
                yuv[:lh, :lw] = 50
                yuv[lh // 4 : lh // 2, x : x + lw // 4] = 200  # a bright square in Y
                return yuv
            w, h = self.config["main"]["size"]
            frame = np.zeros((h, w, 3), np.uint8)
            frame[..., 2] = 255  # red, BGR order
            sx, sy = w // lw, h // lh
            frame[sy * lh // 4 : sy * lh // 2, sx * x : sx * (x + lw // 4)] = 255  # white
            return frame

        def capture_array(self, name="main"):
            CALLS.append(("capture_array", name))
            return self.picture(name, self.next_frame())

        def capture_request(self):
            CALLS.append("capture_request")
            return Request(self, self.next_frame())

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


def square_left(plane: np.ndarray) -> int:
    """Left edge of the bright square (the first column with a pixel above 150)."""
    return int(np.flatnonzero((plane > 150).any(axis=0))[0])


def test_picamera2_takes_grey_and_colour_from_one_request_per_frame(fake_picamera2):
    cfg = SourceConfig(uri="auto", width=640, height=480, lores_width=320, lores_height=240)
    source = make_source("auto", cfg)  # auto takes picamera2 when it imports
    assert isinstance(source, Picamera2Source)
    calls = fake_picamera2.CALLS
    frames = []
    reader = FrameReader(source)
    for frame in reader:
        frames.append(frame)
        if len(frames) == 3:
            break
    assert calls[0] == "init"
    _, main, lores, _ = calls[1]
    assert main == {"size": (640, 480), "format": "RGB888"}
    assert lores == {"size": (320, 240), "format": "YUV420"}
    frame = frames[0]
    assert frame.gray.shape == (240, 320) and frame.gray.dtype == np.uint8
    assert frame.gray[0, 0] == 50 and frame.gray[90, 40] == 200  # the Y plane, not U/V
    assert frame.size == (640, 480) and frame.scale == (2.0, 2.0)
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[1].t >= frames[0].t
    lefts = [square_left(f.gray) for f in frames]
    assert len(set(lefts)) == 3  # a new picture every frame
    for f, left in zip(frames, lefts):
        bgr = f.bgr()
        assert bgr.shape == (480, 640, 3) and tuple(bgr[0, 0]) == (0, 0, 255)
        # the colour image is the same camera frame as the grey plane the faces are found in
        assert square_left(bgr[..., 0]) == 2 * left
        assert f.crop_plane().shape == (480, 640)
    assert calls.count("capture_request") == calls.count("release") == 3  # one per frame
    assert not [c for c in calls if c[0] == "capture_array"]
    reader.stop()
    assert "stop" in calls and "close" in calls  # the loop closes the camera


def test_picamera2_frames_nobody_looks_at_copy_nothing_out(fake_picamera2):
    source = make_source("picamera2")
    calls = fake_picamera2.CALLS
    counter = iter(range(100))
    frames = []
    reader = FrameReader(source, pixels=lambda t: next(counter) % 3 == 0)
    for frame in reader:
        frames.append(frame)
        if len(frames) == 6:
            break
    reader.stop()
    assert [f.has_pixels for f in frames] == [True, False, False, True, False, False]
    assert all(f.size == (640, 480) for f in frames)
    # one request per frame, each released; arrays made for the decoded frames only
    assert calls.count("capture_request") == calls.count("release") == 6
    assert calls.count(("make_array", "main")) == calls.count(("make_array", "lores")) == 2
    assert square_left(frames[3].gray) != square_left(frames[0].gray)  # still a new picture


def test_a_camera_on_its_side_turns_both_planes_of_each_frame(fake_picamera2):
    """source.rotate = 90: the Pi camera's lores plane and main image are turned together, so
    the face search (lores) and the crops (main) still see the same picture."""
    cfg = SourceConfig(rotate=90)
    source = make_source("picamera2", cfg)
    assert isinstance(source, RotatedSource) and source.live
    counter = iter(range(100))
    reader = FrameReader(source, pixels=lambda t: next(counter) % 2 == 0)
    frames = []
    for frame in reader:
        frames.append(frame)
        if len(frames) == 4:
            break
    reader.stop()
    assert "close" in fake_picamera2.CALLS  # closing goes through to the camera
    assert [f.index for f in frames] == [0, 1, 2, 3] and frames[1].t >= frames[0].t
    assert all(f.size == (480, 640) for f in frames)  # width and height swapped
    assert [f.has_pixels for f in frames] == [True, False, True, False]
    tops = []
    for f in frames[::2]:
        assert f.gray.shape == (320, 240) and f.scale == (2.0, 2.0)
        assert f.bgr().shape == (640, 480, 3) and f.crop_plane().shape == (640, 480)
        # the square moves along x in the camera: down the turned picture's rows
        top = int(np.flatnonzero((f.gray > 150).any(axis=1))[0])
        assert int(np.flatnonzero((f.bgr()[..., 0] > 150).any(axis=1))[0]) == 2 * top
        tops.append(top)
    assert tops[0] != tops[1]  # still a new picture every frame


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_turned_video_is_the_same_pictures_turned(media_dir, degrees):
    video = str(media_dir / "woman2.mp4")
    turned = list(islice(FrameReader(make_source(video, SourceConfig(rotate=degrees))), 5))
    plain = list(islice(FrameReader(make_source(video)), 5))
    code = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
    for a, b in zip(turned, plain, strict=True):
        assert np.array_equal(a.bgr(), cv2.rotate(b.bgr(), code[degrees]))
        assert a.size == (a.bgr().shape[1], a.bgr().shape[0]) and (a.index, a.t) == (b.index, b.t)
    with pytest.raises(ValueError, match="90, 180 or 270"):
        RotatedSource(make_source(video), 45)


def test_video_frames_nobody_looks_at_are_grabbed_not_decoded(media_dir):
    video = str(media_dir / "woman2.mp4")
    asked = []

    def pixels(t):
        asked.append(t)
        return len(asked) % 10 == 1

    frames = list(FrameReader(make_source(video), pixels=pixels))
    every = list(FrameReader(make_source(video)))
    assert len(frames) == len(every) == len(asked) == 464
    assert [f.t for f in frames] == [f.t for f in every] == asked  # asked in order, as timed
    assert [f.index for f in frames if f.has_pixels] == list(range(0, 464, 10))
    assert all(f.size == (596, 336) for f in frames)
    for f in frames[::10]:  # a decoded frame is the same picture as without skipping
        assert np.array_equal(f.bgr(), every[f.index].bgr())
    with pytest.raises(SourceError, match="frame 1 .*without its pixels"):
        frames[1].bgr()


def test_picamera2_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails
    source = make_source("picamera2")
    with pytest.raises(SourceError, match="python3-picamera2"):
        source.open()
    assert isinstance(make_source("auto"), OpenCVSource)  # auto falls back to camera 0


def test_picamera2_built_for_another_numpy_is_named_not_passed_over(tmp_path, monkeypatch):
    """On a Pi, picamera2's apt packages (simplejpeg) are built for the system's numpy; a
    numpy 2 that pip put in the venv makes them fail to import. auto used to fall back to a
    USB camera 0 the owner of a Pi camera does not have; now both say why and the fix."""
    pkg = tmp_path / "broken" / "picamera2"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "raise ValueError('numpy.dtype size changed, may indicate binary incompatibility. "
        "Expected 96 from C header, got 88 from PyObject')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "broken"))
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    for spec in ("picamera2", "auto"):
        with pytest.raises(SourceError) as err:
            make_source(spec).open()
        words = str(err.value)
        assert "picamera2 is installed but cannot be imported" in words, words
        assert "numpy.dtype size changed" in words and f"numpy {np.__version__}" in words
        assert "pip install" in words and "deploy/install.sh" in words
    assert "give a camera index" in words  # auto's way out


def test_pipeline_on_picamera2_boxes_in_main_pixels(fake_picamera2, tiny_tflite_model):
    from deepfer.edge.detectors.base import Detector, Found
    from deepfer.edge.model.classifier import EmotionClassifier
    from deepfer.edge.pipeline import FacePipeline

    class OneBox(Detector):  # a detector stand-in: a box in the fake lores frame
        def find(self, gray, min_size=0, coarse=False):
            assert gray.shape == (240, 320)  # faces are looked for in the lores plane
            return Found(np.array([[80, 60, 80, 60]], np.int32))

    pipeline = FacePipeline(OneBox(), EmotionClassifier(tiny_tflite_model))
    source = make_source("picamera2")
    source.open()
    faces = pipeline.process(source.read()).faces
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


class OneFrameSource(FlakySource):
    """A camera that opens, gives one frame and fails, again and again (a failing USB port,
    a stream server that hangs up at once)."""

    def open(self):
        self.opens += 1
        self.open_times.append(time.monotonic())
        self.reads = 0

    def read(self):
        self.reads += 1
        return Frame(gray=np.zeros((4, 4), np.uint8), size=(4, 4)) if self.reads == 1 else None


def test_a_camera_that_fails_at_once_after_each_reopen_is_backed_off_not_spun(caplog):
    source = OneFrameSource()
    reader = FrameReader(source, reopen_min_s=0.01, reopen_max_s=0.08)
    with caplog.at_level(logging.DEBUG, logger="deepfer.edge.capture.reader"):
        frames = []
        for frame in reader:
            frames.append(frame)
            if len(frames) == 7:
                break
    assert len(frames) == 7 and reader.failures == 6
    gaps = np.diff(source.open_times)  # each wait doubles, up to reopen_max_s
    assert list(gaps >= [0.009, 0.019, 0.039, 0.079, 0.079, 0.079]) == [True] * 6, gaps
    assert caplog.text.count("reopening in") == 6  # a line per failure, not per frame


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


# -- stream time: a file's frames timed by its container ----------------------------------------

FAST, SLOW = 120, 30  # frames at 60 fps, then at 10 fps: a phone's recording slowing down
#: Where each frame of the variable-rate clip starts, seconds.
VFR_TIMES = np.concatenate([np.arange(FAST) / 60, FAST / 60 + 0.1 * np.arange(SLOW)])


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The same 150 frames at a constant 29.97 fps, and at a variable rate (60 fps, then 10;
    written at 29.97 by OpenCV, then the mp4's timing tables rewritten), as phones record."""
    folder = tmp_path_factory.mktemp("vfr")
    frames = moving_square_frames(FAST + SLOW)
    cfr = write_video(folder / "cfr.mp4", frames, 29.97)
    vfr = write_video(folder / "vfr.mp4", frames, 29.97)
    retime_mp4(vfr, np.diff(VFR_TIMES, append=5.0).tolist())
    return cfr, vfr


def times(spec: str, **kwargs) -> np.ndarray:
    return np.array([f.t for f in FrameReader(make_source(spec), **kwargs)])


def test_a_variable_frame_rate_video_is_timed_by_its_container(clips):
    cfr, vfr = clips
    t = times(str(vfr))
    assert len(t) == FAST + SLOW and (np.diff(t) > 0).all()
    assert np.abs(t - VFR_TIMES).max() < 1e-3  # not index / fps (frame 60 at 2.0 s, 120 at 4.0)
    assert t[60] == pytest.approx(1.0, abs=1e-3) and t[120] == pytest.approx(2.0, abs=1e-3)
    # the same times turned, decoded on this thread, and for frames taken without pixels
    asked = []

    def pixels(at):
        asked.append(at)
        return len(asked) % 7 == 1

    turned = FrameReader(make_source(str(vfr), SourceConfig(rotate=90)), pixels=pixels, prefetch=0)
    assert [f.t for f in turned] == asked == t.tolist()
    # the same frames at a constant rate: index / fps, as they were before
    assert np.abs(times(str(cfr)) - np.arange(FAST + SLOW) / 29.97).max() < 1e-4
    # its rate is its average (150 frames in 5 s) on every OpenCV (4.8 names 60, its base rate)
    for clip, fps in ((vfr, 30.0), (cfr, 29.97)):
        source = make_source(str(clip))
        source.open()
        assert video_header(clip).rate == pytest.approx(fps) and source.fps == pytest.approx(fps)
        source.close()


def test_a_broken_mp4s_rate_is_none_and_a_huge_timing_table_is_read_in_little_memory(
    clips, tmp_path
):
    """video_header's rate on the VFR clip made odd (moov after mdat, a zero time scale, an
    ``stts`` claiming more entries than it holds, cut in it, not an MP4): the rate or None,
    never an error. A 64 MiB ``stts`` (sparse) is summed whole in a few MiB of memory: it was
    unpacked into one tuple of Python ints (several times its size; a broken file may claim
    gigabytes)."""
    import struct
    import tracemalloc

    data = clips[1].read_bytes()
    top, at = {}, 0
    while at < len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        top[kind], at = data[at : at + size], at + size
    stts, mdhd = data.index(b"stts") + 4, data.index(b"mdhd") + 4
    scale_at = mdhd + 4 + (16 if data[mdhd] == 1 else 8)

    def put(at: int, value: int) -> bytes:
        return data[:at] + struct.pack(">I", value) + data[at + 4 :]

    odd = {
        "moov_last": (top[b"ftyp"] + top[b"mdat"] + top[b"moov"], 30.0),
        "zero_scale": (put(scale_at, 0), None),
        "stts_claims_more": (put(stts + 4, 0xFFFFFFFF), None),
        "cut_in_stts": (data[: stts + 12], None),
        "not_mp4": (b"\0\0\0\x08junk" * 100, None),
    }
    for name, (body, rate) in odd.items():
        path = tmp_path / f"{name}.mp4"
        path.write_bytes(body)
        assert video_header(path).rate == (rate and pytest.approx(rate)), name

    def box(kind: bytes, size: int, body: bytes = b"") -> bytes:
        return struct.pack(">I4s", size, kind) + body

    n = 8 << 20  # entries: 64 MiB, zeros but the first and the last (100 + 50 frames of 1/30 s)
    table = 16 + 8 * n
    mdhd_box = box(b"mdhd", 32, struct.pack(">4I", 0, 0, 0, 30000) + bytes(8))
    hdlr = box(b"hdlr", 33, bytes(8) + b"vide" + bytes(13))
    mdia = 8 + len(mdhd_box) + len(hdlr) + 16 + table
    head = (
        box(b"ftyp", 16, b"isom" + bytes(4))
        + box(b"moov", 16 + mdia) + box(b"trak", 8 + mdia) + box(b"mdia", mdia) + mdhd_box + hdlr
        + box(b"minf", 16 + table) + box(b"stbl", 8 + table)
        + box(b"stts", table, struct.pack(">3I", 0, n, 100) + struct.pack(">I", 1000))
    )  # fmt: skip
    huge = tmp_path / "huge_stts.mp4"
    with open(huge, "wb") as fh:
        fh.write(head)
        fh.seek(len(head) + 8 * (n - 2))
        fh.write(struct.pack(">2I", 50, 1000))
    tracemalloc.start()
    try:
        assert video_header(huge).rate == pytest.approx(30.0)
        assert tracemalloc.get_traced_memory()[1] < 8 << 20
    finally:
        tracemalloc.stop()


def test_a_constant_frame_rate_file_keeps_its_times(media_dir):
    t = times(str(media_dir / "woman2.mp4"))
    assert len(t) == 464 and np.abs(t - np.arange(464) / 29.97).max() < 1e-4


def test_each_pass_of_a_looped_file_starts_one_frame_after_the_last(clips):
    cfr, vfr = clips
    n = FAST + SLOW

    def three_passes(clip) -> np.ndarray:
        frames = FrameReader(make_source(str(clip)), loop=True)
        looped = np.array([f.t for f in islice(frames, 3 * n)])
        assert (np.diff(looped) > 0).all()
        return looped

    for clip, gap in ((vfr, 0.1), (cfr, 1 / 29.97)):  # the last two frames' gap
        looped = three_passes(clip)
        once = looped[:n]
        for k in (1, 2):
            start = k * (once[-1] + gap)
            assert np.abs(looped[k * n : (k + 1) * n] - once - start).max() < 1e-3
    # a constant rate: index / fps throughout, as before
    assert np.abs(three_passes(cfr) - np.arange(3 * n) / 29.97).max() < 1e-4


def test_a_file_that_cannot_seek_back_still_loops(tmp_path):
    """An MPEG program stream of MPEG-4 video says it went back to frame 0 and then gives no
    frame: a looped run used to end after one pass. Each pass now opens the file again."""
    clip = tmp_path / "clip.mpg"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48))
    for i in range(20):
        writer.write(np.full((48, 64, 3), 10 * i, np.uint8))
    writer.release()
    frames = list(islice(FrameReader(make_source(str(clip)), loop=True), 50))
    assert len(frames) == 50
    levels = [int(f.bgr()[0, 0, 0]) for f in frames]
    assert abs(levels[20] - levels[0]) <= 4 and abs(levels[40] - levels[0]) <= 4


class StampedFile(Source):
    """A file whose frames have these container timestamps (None: none), at ``fps``."""

    name = "stamped.mp4"

    def __init__(self, stamps: list[float | None], fps: float | None = 10.0):
        self.stamps, self.fps = stamps, fps
        self.next = 0

    def open(self):
        self.next = 0

    def read(self):
        if self.next >= len(self.stamps):
            return None
        self.next += 1
        return Frame(gray=np.zeros((4, 4), np.uint8), size=(4, 4))

    def position_s(self):
        return self.stamps[self.next - 1]


def test_frames_without_a_usable_timestamp_are_counted_on_from_the_last_one():
    def stream_times(stamps, fps=10.0):
        return [round(f.t, 9) for f in FrameReader(StampedFile(stamps, fps))]

    nan, inf = float("nan"), float("inf")
    # none (a raw H.264 stream), or 0 for all (what OpenCV says for none): index / fps exactly
    assert [f.t for f in FrameReader(StampedFile([None] * 5))] == [i / 10.0 for i in range(5)]
    assert [f.t for f in FrameReader(StampedFile([0.0] * 5, None))] == [i / 30 for i in range(5)]
    # missing, not finite, negative, going back or standing still: counted on from the last
    # timestamped frame, at the gap between the last two timestamped ones (0.05) where that
    # is under 1 / fps, so the container's next time is not behind the count
    stamps = [0.0, 0.05, None, nan, -1.0, 0.1, 0.3, 0.3, 0.5, inf]
    assert stream_times(stamps) == [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.5, 0.55]
    assert stream_times([0.0, 0.5, None, None]) == [0.0, 0.5, 0.6, 0.7]  # at most 1 / fps
    assert stream_times([0.0, 0.01, None, 0.03, 0.04]) == [0.0, 0.01, 0.02, 0.03, 0.04]
    # a pass starts where the last one's next frame would have: its last two frames' gap on
    looped = FrameReader(StampedFile([0.0, 0.05, 0.25, None]), loop=True)
    assert [round(f.t, 9) for f in islice(looped, 8)] == [0, 0.05, 0.25, 0.35, 0.45, 0.5, 0.7, 0.8]
    one = FrameReader(StampedFile([0.2]), loop=True)  # one frame a pass: 1 / fps apart
    assert [round(f.t, 9) for f in islice(one, 3)] == [0.2, 0.5, 0.8]


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
    (tmp_path / "d.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(100))
    assert len(list(FrameReader(make_source(str(tmp_path))))) == 2
    assert "d.heic: HEIC/HEIF photos (an iPhone's default) cannot be read" in caplog.text
    (tmp_path / "d.heic").unlink()
    # a source that cannot skip decoding gives its frames as they are, pixels and all
    asked = list(FrameReader(make_source(str(tmp_path)), pixels=lambda t: False))
    assert [f.size for f in asked] == [(30, 20), (10, 10)]
    assert all(f.has_pixels for f in asked) and asked[1].gray[0, 0] == 9
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no images"):
        make_source(str(empty))
    # macOS's "._a.png" beside a photo copied from a Mac (metadata, no picture): passed over
    caplog.clear()
    (tmp_path / "._a.png").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    assert len(list(FrameReader(make_source(str(tmp_path))))) == 2
    assert "._a.png" not in caplog.text


def test_a_file_of_one_picture_is_a_photo_source_whatever_its_suffix(tmp_path, media_dir):
    """`run --source` tells photos from videos as `deepfer detect` does (capture/inputs.py):
    a JPEG without a suffix, a still GIF and a one-frame clip are one picture each (they
    used to go through FFmpeg as one-frame videos, searched as video: no track started); two
    frames are a video. A photo that cannot be read ends the run naming it; in a folder it is
    skipped."""
    photo = cv2.imread(str(media_dir / "justin.jpg"))[:380, :380]  # even sides for mp4
    (tmp_path / "no_suffix").write_bytes(cv2.imencode(".jpg", photo)[1].tobytes())
    write_gif(tmp_path / "still.gif", [photo])
    write_video(tmp_path / "one.mp4", [photo], 30)
    write_video(tmp_path / "two.mp4", [photo, photo], 30)
    for name in ("no_suffix", "still.gif", "one.mp4"):
        source = make_source(str(tmp_path / name), SourceConfig(rotate=90))
        assert source.stills and not source.live, name
        (frame,) = FrameReader(source)
        assert frame.size == (photo.shape[0], photo.shape[1])  # turned
        assert input_kind(tmp_path / name) == PHOTO
    assert isinstance(make_source(str(tmp_path / "no_suffix")), PhotoSource)
    video = make_source(str(tmp_path / "two.mp4"))
    assert isinstance(video, OpenCVSource) and not video.stills
    assert len(list(FrameReader(video))) == 2
    looped = FrameReader(make_source(str(tmp_path / "still.gif")), loop=True)
    assert len(list(islice(looped, 3))) == 3  # one frame a pass
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(SourceError, match=re.escape(f"{bad}: cannot read this image (not an")):
        list(FrameReader(make_source(str(bad))))
    only_bad = ImageFolderSource([bad, bad], "two bad")
    with pytest.raises(SourceError, match="two bad: none of its 2 images can be read"):
        list(FrameReader(only_bad))


def test_image_folder_reads_a_photo_cut_short_and_says_so(tmp_path, media_dir, caplog):
    """A JPEG cut short is still read (its faces above the cut count), with a warning naming
    the file; whole files, padded ones and ones with a trailer (a phone's "motion photo") give
    none. OpenCV cannot decode a PNG cut short: it is skipped, the warning saying why."""
    photo = cv2.imread(str(media_dir / "justin.jpg"))
    jpeg = cv2.imencode(".jpg", photo)[1].tobytes()
    png = cv2.imencode(".png", photo)[1].tobytes()
    (tmp_path / "a_whole.jpg").write_bytes(jpeg)
    (tmp_path / "b_padded.jpg").write_bytes(jpeg + b"\x00" * 100 + b"\r\n")
    (tmp_path / "c_trailer.jpg").write_bytes(jpeg + b"\x00\x00\x00\x18ftypmp42" + bytes(5000))
    (tmp_path / "d_cut.jpg").write_bytes(jpeg[: len(jpeg) * 2 // 3])
    (tmp_path / "e_whole.png").write_bytes(png)
    (tmp_path / "f_cut.png").write_bytes(png[: len(png) * 2 // 3])
    frames = list(FrameReader(make_source(str(tmp_path))))
    assert len(frames) == 5 and all(f.size == (photo.shape[1], photo.shape[0]) for f in frames)
    warned = {r.getMessage().split(": ")[0] for r in caplog.records if "cut short" in r.message}
    assert warned == {str(tmp_path / "d_cut.jpg"), str(tmp_path / "f_cut.png")}
    assert "f_cut.png: cannot read this image (the file is cut short" in caplog.text
    assert "cannot be decoded); skipped" in caplog.text
    # above the cut the picture is the whole file's; at the bottom it is not
    top = slice(0, photo.shape[0] // 3)
    assert (frames[3].bgr()[top] == frames[0].bgr()[top]).all()
    assert (frames[3].bgr()[-10:] != frames[0].bgr()[-10:]).any()


@pytest.mark.parametrize(
    "spec, words",
    [
        ("nonsense", "unknown source 'nonsense'"),
        ("cam0", "unknown source 'cam0'"),
        ("/no/such/clip.mp4", "/no/such/clip.mp4: no such file or folder"),
        ("clip.mp4", "clip.mp4: no such file or folder"),
    ],
)
def test_unknown_sources_are_clear_errors(spec, words):
    with pytest.raises(SourceError, match=re.escape(words)):
        make_source(spec)


def test_corrupt_video_cannot_be_opened(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(SourceError, match="cannot open it as a video file"):
        make_source(str(bad)).open()


def test_daemon_ends_tracks_when_the_camera_fails_and_goes_on(media_dir, tiny_tflite_model):
    from deepfer.edge.config import load_config
    from deepfer.edge.daemon import Daemon
    from deepfer.edge.messages import validate_event

    image = cv2.imread(str(media_dir / "justin.jpg"))

    class Camera(FlakySource):
        def read(self):
            frame = super().read()
            return None if frame is None else frame_from_image(image)

    from deepfer.edge.outputs.base import Sink

    class Collect(Sink):
        name = "collect"

        def __init__(self):
            self.events, self.states = [], 0

        def publish_event(self, event):
            self.events.append(event)

        def on_frame(self, result):
            self.states += 1

        def stats(self):
            return {"events": len(self.events)}

    config = load_config(
        None,
        environ={},
        overrides={
            "model.path": str(tiny_tflite_model),
            "run.max_frames": 10,
            "detector.fps": 0,  # detect on each of the 10 frames (the rate has its own tests)
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


@pytest.mark.parametrize("preview", [False, True])
def test_daemon_decodes_only_what_its_outputs_look_at(media_dir, tiny_tflite_model, preview):
    """Without an output that looks at every frame (the preview), frames between detections
    reach the outputs without their pixels; with one, every frame is decoded."""
    from deepfer.edge.config import load_config
    from deepfer.edge.daemon import Daemon
    from deepfer.edge.outputs.base import Sink
    from deepfer.edge.outputs.preview.server import PreviewServer

    assert PreviewServer.wants_pixels  # the live page draws on every frame

    class Collect(Sink):
        name = "collect"
        wants_pixels = preview

        def __init__(self):
            self.frames = []

        def on_frame(self, result):
            self.frames.append((result.detected, result.frame.has_pixels, len(result.faces)))

    config = load_config(
        None,
        environ={},
        overrides={
            "model.path": str(tiny_tflite_model),
            "source.uri": str(media_dir / "woman2.mp4"),
            "detector.backend": "haar",
            "detector.fps": 5,
            "run.max_frames": 60,
        },
    )
    sink = Collect()
    Daemon(config, sinks=[sink]).run()
    assert len(sink.frames) == 60
    assert all(faces == 1 for *_, faces in sink.frames)  # carried frames keep the face
    detected = [has for det, has, _ in sink.frames if det]
    assert len(detected) == 10 and all(detected)
    carried = [has for det, has, _ in sink.frames if not det]
    assert carried and all(carried) == preview and any(carried) == preview


class NumberedFile(Source):
    """A file-like source of ``count`` frames, each filled with its number; it records which
    thread reads and closes it, and can fail on one read."""

    name = "numbered.mp4"

    def __init__(self, count: int = 50, fail_at: int = -1):
        self.count, self.fail_at = count, fail_at
        self.next = 0
        self.read_threads: set[int] = set()
        self.closed_on: int | None = None

    def read(self):
        self.read_threads.add(threading.get_ident())
        if self.next == self.fail_at:
            raise OSError("bad packet")
        if self.next >= self.count:
            return None
        self.next += 1
        return Frame(gray=np.full((4, 4), self.next - 1, np.uint8), size=(4, 4))

    def close(self):
        self.closed_on = threading.get_ident()


def capture_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("capture ")]


def test_files_are_decoded_ahead_on_a_capture_thread_in_order(media_dir):
    source = NumberedFile(50)
    reader = FrameReader(source)
    assert reader.prefetch > 0
    frames = list(reader)
    assert [int(f.gray[0, 0]) for f in frames] == list(range(50))  # nothing dropped, in order
    assert [f.index for f in frames] == list(range(50))
    assert source.read_threads and threading.get_ident() not in source.read_threads
    assert source.closed_on in source.read_threads  # closed by the thread that read it
    assert not capture_threads()
    # the same frames and times as reading on this thread
    video = str(media_dir / "woman2.mp4")
    ahead = list(FrameReader(make_source(video)))
    here = list(FrameReader(make_source(video), prefetch=0))
    assert len(ahead) == len(here) == 464
    assert all(a.t == b.t and np.array_equal(a.gray, b.gray) for a, b in zip(ahead, here))


def test_leaving_a_prefetched_file_early_closes_it_and_ends_the_thread():
    source = NumberedFile(10**6)
    for frame in FrameReader(source):
        if frame.index == 3:
            break
    assert source.closed_on is not None and source.next < 100  # a few frames ahead at most
    assert not capture_threads()


def test_a_read_error_on_the_capture_thread_reaches_the_caller():
    source = NumberedFile(50, fail_at=7)
    seen = []
    with pytest.raises(SourceError, match=r"numbered.mp4: read failed \(bad packet\)"):
        for frame in FrameReader(source):
            seen.append(frame.index)
    assert seen == list(range(7)) and source.closed_on is not None
    assert not capture_threads()


def test_stop_ends_a_prefetched_file_while_the_caller_works():
    source = NumberedFile(10**6)
    reader = FrameReader(source, realtime=False)
    got = 0
    for _ in reader:
        got += 1
        if got == 5:
            reader.stop()  # e.g. SIGTERM while a frame is being processed
    assert got < 5 + 2 * reader.prefetch and source.closed_on is not None
    assert not capture_threads()


def test_live_sources_are_read_on_the_calling_thread():
    source = FlakySource(good_before=100)
    reader = FrameReader(source, prefetch=8)
    assert reader.prefetch == 0
    for frame in reader:
        if frame.index == 2:
            break
    assert not capture_threads()


def test_cut_short_knows_a_truncated_jpeg_from_one_with_a_thumbnail_or_trailer(media_dir):
    """A progressive JPEG with a thumbnail in its header (the thumbnail's own end marker sits
    there) is whole; cut anywhere it is not; padding or a motion photo's video after the end
    is fine. PNG: its IEND chunk."""
    photo = cv2.imread(str(media_dir / "justin.jpg"))
    main = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    thumb = cv2.imencode(".jpg", cv2.resize(photo, (96, 96)))[1].tobytes()
    app1 = b"Exif\x00\x00" + thumb  # (not a valid EXIF block: the walker only needs its length)
    data = main[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + main[2:]
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == photo.shape
    assert data.count(b"\xff\xd9") >= 2  # the thumbnail's end marker, then the image's
    assert not cut_short(data)
    assert all(cut_short(data[: int(len(data) * f)]) for f in (0.001, 0.05, 0.3, 0.7, 0.999))
    assert not cut_short(data + b"\x00" * 5000)
    assert not cut_short(data + b"\x00\x00\x00\x18ftypmp42" + bytes(5000))
    png = cv2.imencode(".png", photo)[1].tobytes()
    assert not cut_short(png) and cut_short(png[:-20])
    assert not cut_short(b"BM" + bytes(100))  # other formats: the decoder decides


def test_a_camera_password_in_the_stream_url_stays_out_of_messages():
    """``rtsp://admin:secret@cam/stream`` (how IP cameras are addressed): the source's name,
    used in logs, errors and run stats, hides the password; OpenCV is given the real URL."""
    from broker_process import free_port

    url = f"rtsp://admin:s3cret@127.0.0.1:{free_port()}/stream"
    source = make_source(url)
    assert source.name == url.replace("s3cret", "***") and source.target == url
    with pytest.raises(SourceError) as err:
        source.open()
    assert "admin:***@" in str(err.value) and "s3cret" not in str(err.value)
    with pytest.raises(SourceError, match=re.escape("unknown source 'srt://u:***@h:9000'")):
        make_source("srt://u:pw@h:9000")
    # the user part ends at the last "@" (as FFmpeg reads it); a camera's pwd= in the query
    assert redact_url("rtsp://admin:p@ss@cam/s") == "rtsp://admin:***@cam/s"
    assert redact_url("http://cam/video.cgi?user=admin&pwd=x#f") == (
        "http://cam/video.cgi?user=admin&pwd=***#f"
    )
    for plain in ("mqtt://user@host:1883", "/videos/a:b@c.mp4", "http://cam/a@b/c?x=1"):
        assert redact_url(plain) == plain


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` x ``height`` grey pixels (no picture data)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", zlib.crc32(chunk[4:]))


def test_a_picture_too_large_for_memory_is_refused_from_its_header(tmp_path, media_dir):
    """A PNG of a few kB can unpack to gigabytes; decoding past the memory there is kills the
    process with no message (a Pi Zero 2 W has 512 MB). Its size is read from the header
    (PNG, JPEG, after any EXIF) and checked against the memory available before decoding."""
    from deepfer.edge.capture.imagefile import picture_size, too_large

    for name in ("justin.jpg", "12_angry_men.jpg", "no-faces.jpg"):
        image = cv2.imread(str(media_dir / name), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        assert picture_size((media_dir / name).read_bytes()) == image.shape[1::-1], name
    png = cv2.imencode(".png", np.zeros((30, 40), np.uint8))[1].tobytes()
    assert picture_size(png) == (40, 30) and picture_size(b"GIF89a") is None
    assert picture_size(_png_header(100_000, 100_000)) == (100_000, 100_000)
    why = too_large((20_000, 20_000), 512 * 2**20)
    assert why == (
        "20000x20000 pixels would need 1,526 MiB of memory to decode and search; 512 MiB is "
        "available: shrink the picture first"
    )
    assert too_large((4000, 3000), 512 * 2**20) is None and too_large((9, 9), None) is None
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(100_000, 100_000))  # 38 GB decoded: refused here, or by
    with pytest.raises(InputError, match=r"bomb.png: cannot read this image \("):  # OpenCV
        load_image(bomb)
