"""Video files nobody tuned for, made at test time: a phone's portrait video (pixels stored
on their side, a rotation tag to show them upright; from woman2.mp4), a video of non-square
pixels (HDV, DV, DVD), MP4s and AVIs cut short, through ``deepfer detect`` and
``deepfer run --source FILE``."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from cli_subprocess import deepfer, env_without_settings
from synthetic import (
    faststart_mp4,
    moving_square_frames,
    set_mp4_pixel_aspect,
    set_mp4_rotation,
    write_video,
)

W, H = 596, 336  # woman2.mp4


@pytest.fixture(scope="module")
def woman2_frames(media_dir):
    cap = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
    frames = [cap.read()[1] for _ in range(20)]
    cap.release()
    assert all(f is not None and f.shape == (H, W, 3) for f in frames)
    return frames


def _faces(video, model, *flags):
    proc = deepfer("detect", video, "--json", "--model", model, *flags)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _centre(box):
    x, y, w, h = box
    return x + w / 2, y + h / 2


# two encodings of the same frames: a few pixels apart. mp4v's noise moves the tiny model's box
# centre up to 6 px over woman2's 20 frames with OpenCV 4.14's FFmpeg and 6.5 px with 4.11's
# (a mirrored clip); a picture read upside down, mirrored or on its side is 26 px or more off
def _near(a, b, px=8):
    (ax, ay), (bx, by) = _centre(a), _centre(b)
    return abs(ax - bx) <= px and abs(ay - by) <= px


@pytest.mark.parametrize("tag", [90, 270])
def test_a_phone_video_with_a_rotation_tag_is_read_as_players_show_it(
    woman2_frames, tiny_tflite_model, tmp_path, tag
):
    """A phone filming in portrait stores its pixels on their side and tags the video track
    (the tkhd box's display matrix) with the turn that shows them upright. Read upright as
    every player shows it (OpenCV applies the tag): the face is found in every frame, boxes
    are in the upright picture (those of the untagged upright clip), the annotated copy is the
    upright picture with no tag, and run's events have the same boxes."""
    upright = write_video(tmp_path / "upright.mp4", woman2_frames, 30)
    # stored so that turning it `tag` degrees clockwise sets it upright
    store = cv2.ROTATE_90_COUNTERCLOCKWISE if tag == 90 else cv2.ROTATE_90_CLOCKWISE
    phone = write_video(tmp_path / "phone.mp4", [cv2.rotate(f, store) for f in woman2_frames], 30)
    set_mp4_rotation(phone, tag)
    cap = cv2.VideoCapture(str(phone))  # the input is what it says: stored 336 wide, tagged
    assert cap.get(cv2.CAP_PROP_ORIENTATION_META) == tag
    cap.release()

    want = _faces(upright, tiny_tflite_model)
    out = tmp_path / "copy.mp4"
    got = _faces(phone, tiny_tflite_model, "--out", out)
    assert len(want) == 20 and [f["frame"] for f in got] == [f["frame"] for f in want]
    assert {f["track_id"] for f in got} == {1}
    for a, b in zip(got, want, strict=True):
        assert _near(a["box"], b["box"]), (a["box"], b["box"])
    copy = cv2.VideoCapture(str(out))
    assert (copy.get(cv2.CAP_PROP_FRAME_WIDTH), copy.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (W, H)
    assert copy.get(cv2.CAP_PROP_ORIENTATION_META) == 0
    copy.release()

    proc = deepfer("run", "--source", phone, "--model", tiny_tflite_model)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    start = next(e for e in events if e["type"] == "start")
    assert _near(start["box"], want[0]["box"]), (start["box"], want[0]["box"])
    assert "source.rotate" not in proc.stderr  # upright: no camera-turn hint


def test_rotate_turns_a_tagged_video_after_its_tag(woman2_frames, tiny_tflite_model, tmp_path):
    """The file's tag is applied first, then source.rotate (--rotate) turns the picture as
    shown: stored upside down and tagged 90 shows the face on its side (turned 270 in all),
    and --rotate 90 sets it upright, boxes in the upright picture."""
    upright = write_video(tmp_path / "upright.mp4", woman2_frames, 30)
    odd = write_video(
        tmp_path / "odd.mp4", [cv2.rotate(f, cv2.ROTATE_180) for f in woman2_frames], 30
    )
    set_mp4_rotation(odd, 90)
    want = _faces(upright, tiny_tflite_model)
    got = _faces(odd, tiny_tflite_model, "--rotate", "90")
    assert len(want) == 20 and [f["frame"] for f in got] == [f["frame"] for f in want]
    for a, b in zip(got, want, strict=True):
        assert _near(a["box"], b["box"]), (a["box"], b["box"])


def test_an_mp4_cut_short_before_its_index_says_so(tiny_tflite_model, tmp_path):
    """A recording interrupted (or a copy that did not finish) lacks the moov box a camera
    writes last: nothing can play it. detect and run say it is cut short and why, instead of
    'cannot open it as a video file'; the other inputs are still done."""
    whole = write_video(tmp_path / "whole.mp4", moving_square_frames(60), 30)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    for size in (len(data) // 2, 200):  # in its frames; just past the file's header
        cut.write_bytes(data[:size])
        proc = deepfer("detect", cut, whole, "--model", tiny_tflite_model, "--detector", "haar")
        assert proc.returncode == 1, proc.stderr
        assert f"{cut}: is cut short" in proc.stderr and "'moov' box" in proc.stderr
        assert "cannot open it" not in proc.stderr and "Traceback" not in proc.stderr
        assert "whole.mp4: no faces" in proc.stdout
    proc = deepfer("run", "--source", cut, "--model", tiny_tflite_model, "--detector", "haar")
    assert proc.returncode == 2 and f"{cut}: is cut short" in proc.stderr, proc.stderr

    # an AVI cut inside its header: FFmpeg cannot open it; said to be cut short
    avi = write_video(tmp_path / "whole.avi", moving_square_frames(60), 30, "MJPG")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(avi.read_bytes()[:300])
    # (errors="replace": OpenCV's own AVI reader, tried after FFmpeg, prints "Unexpected
    # element. Expected: LIST. Got: " and two bytes from past the file's end, any bytes)
    proc = subprocess.run(
        [sys.executable, "-m", "deepfer", "detect", cut, "--model", tiny_tflite_model,
         "--detector", "haar"],
        capture_output=True, text=True, errors="replace", timeout=120, env=env_without_settings(),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert f"{cut}: is cut short (300 bytes of the" in proc.stderr, proc.stderr


@pytest.mark.parametrize("kind", ["faststart.mp4", "mjpeg.avi"])
def test_a_video_cut_short_in_its_frames_is_read_to_the_cut(tiny_tflite_model, tmp_path, kind):
    """An MP4 whose index comes first (a phone's or web video's "faststart"), or an AVI (read
    without its index), cut in its frames: the frames before the cut are read, with one
    warning that it is cut short (once, however often --loop opens it again); a whole one
    gives no warning."""
    frames = moving_square_frames(60)
    if kind.endswith(".mp4"):
        whole = faststart_mp4(write_video(tmp_path / "made.mp4", frames, 30), tmp_path / kind)
    else:
        whole = write_video(tmp_path / kind, frames, 30, "MJPG")
    data = whole.read_bytes()
    cut = tmp_path / f"cut-{kind}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    model = ("--model", tiny_tflite_model, "--detector", "haar")

    def run(video, *flags):
        stats = tmp_path / "stats.json"
        proc = deepfer("run", "--source", video, "--stats-json", stats, *model, *flags)
        assert proc.returncode == 0, proc.stderr
        return proc.stderr, json.loads(stats.read_text())["frames"]

    said, n = run(whole)
    assert n == 60 and "cut short" not in said
    said, n = run(cut)
    assert 10 < n < 60, n
    assert said.count("is cut short") == 1 and "only its frames before the cut" in said
    said, _ = run(cut, "--loop", "--max-frames", str(3 * n))
    assert said.count("is cut short") == 1, said
    proc = deepfer("detect", cut, *model)
    assert proc.returncode == 0 and proc.stderr.count("is cut short") == 1, proc.stderr


def test_a_video_of_non_square_pixels_is_read_as_players_show_it(
    woman2_frames, tiny_tflite_model, tmp_path
):
    """An HDV or DV camera's video, or a DVD's, stores its picture squeezed (HDV: 1440 wide,
    shown 1920) and names its pixels' shape; players stretch it back. It is read stretched, as
    shown: the boxes of the clip of square pixels, the annotated copy at the shown size, run's
    events alike; a one-frame clip (searched as a photo) too; with a rotation tag, the stored
    width is stretched before the turn (the shown height after it). Read squeezed, faces were
    narrow (woman2 squeezed to 400 px: 31% surprise or fear, none as shown)."""
    want = _faces(write_video(tmp_path / "square.mp4", woman2_frames, 30), tiny_tflite_model)
    squeezed = [cv2.resize(f, (400, H), interpolation=cv2.INTER_AREA) for f in woman2_frames]
    wide = set_mp4_pixel_aspect(write_video(tmp_path / "wide.mp4", squeezed, 30), 149, 100)
    out = tmp_path / "copy.mp4"
    got = _faces(wide, tiny_tflite_model, "--out", out)
    assert len(want) == 20 and [f["frame"] for f in got] == [f["frame"] for f in want]
    for a, b in zip(got, want, strict=True):
        assert _near(a["box"], b["box"]), (a["box"], b["box"])
    copy = cv2.VideoCapture(str(out))
    assert (copy.get(cv2.CAP_PROP_FRAME_WIDTH), copy.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (W, H)
    copy.release()
    proc = deepfer("run", "--source", wide, "--model", tiny_tflite_model)
    assert proc.returncode == 0, proc.stderr
    start = next(json.loads(line) for line in proc.stdout.splitlines() if '"start"' in line)
    assert _near(start["box"], want[0]["box"]), (start["box"], want[0]["box"])
    assert "pixels not square (aspect 1.49): read at 596x336" in proc.stderr

    one = set_mp4_pixel_aspect(write_video(tmp_path / "one.mp4", squeezed[:1], 30), 149, 100)
    (face,) = _faces(one, tiny_tflite_model)
    assert _near(face["box"], want[0]["box"]), (face["box"], want[0]["box"])

    sideways = [cv2.rotate(f, cv2.ROTATE_90_COUNTERCLOCKWISE) for f in woman2_frames]
    stored = [cv2.resize(f, (224, W), interpolation=cv2.INTER_AREA) for f in sideways]
    turned = set_mp4_pixel_aspect(write_video(tmp_path / "turned.mp4", stored, 30), 3, 2)
    set_mp4_rotation(turned, 90)
    got = _faces(turned, tiny_tflite_model)
    assert [f["frame"] for f in got] == [f["frame"] for f in want]
    for a, b in zip(got, want, strict=True):
        assert _near(a["box"], b["box"]), (a["box"], b["box"])


def test_a_pixel_shape_past_any_format_is_ignored(tmp_path):
    """A sample aspect ratio no format has (a writer's mistake: 1000:1) is ignored, read as
    stored, rather than stretched into frames of gigabytes."""
    from deepfer.edge.capture.sources import OpenCVSource

    for shape, want in (((1000, 1), (96, 64)), ((1, 1000), (96, 64)), ((2, 1), (192, 64))):
        clip = write_video(tmp_path / "clip.mp4", moving_square_frames(4), 30)
        source = OpenCVSource(str(set_mp4_pixel_aspect(clip, *shape)), live=False)
        source.open()
        try:
            frame = source.read()
            assert frame.size == want and frame.image.shape[:2] == want[::-1], shape
        finally:
            source.close()


@pytest.mark.parametrize(
    ("matrix", "store"),
    [
        ((-1, 0, 0, 1), lambda f: cv2.flip(f, 1)),  # shown mirrored left to right
        ((0, 1, 1, 0), lambda f: f.swapaxes(0, 1)),  # a quarter turn and a flip
    ],
)
def test_a_mirroring_rotation_tag_is_shown_as_players_show_it(
    woman2_frames, tiny_tflite_model, tmp_path, matrix, store
):
    """A display matrix that mirrors the picture (a front camera's video may carry one): OpenCV
    takes it for a turn alone and read the mirrored picture upside down, where players show
    it mirrored. Read as shown: here the upright picture, the boxes of the upright clip."""
    want = _faces(write_video(tmp_path / "upright.mp4", woman2_frames, 30), tiny_tflite_model)
    frames = [np.ascontiguousarray(store(f)) for f in woman2_frames]
    clip = set_mp4_rotation(write_video(tmp_path / "mirror.mp4", frames, 30), 0, matrix)
    got = _faces(clip, tiny_tflite_model)
    assert len(want) == 20 and [f["frame"] for f in got] == [f["frame"] for f in want]
    for a, b in zip(got, want, strict=True):
        assert _near(a["box"], b["box"]), (a["box"], b["box"])
    # a one-frame clip, searched as a photo, alike
    one = set_mp4_rotation(write_video(tmp_path / "one.mp4", frames[:1], 30), 0, matrix)
    (face,) = _faces(one, tiny_tflite_model)
    assert _near(face["box"], want[0]["box"]), (face["box"], want[0]["box"])
