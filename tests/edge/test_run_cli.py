"""`deepfer run` in a subprocess: events on stdout, stats JSON, config checks, clear errors,
SIGTERM (end events, flush, exit 0) and the preview."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from cli_subprocess import deepfer, env_without_settings
from synthetic import write_gif

from deepfer.edge.labels import LABELS
from deepfer.edge.messages import validate_event


def test_run_on_a_video_writes_events_and_stats(media_dir, tiny_tflite_model, tmp_path):
    stats_file = tmp_path / "stats.json"
    proc = deepfer(
        "run", "--source", media_dir / "woman2.mp4", "--model", tiny_tflite_model,
        "--device-id", "bench-1", "--max-frames", 90, "--stats-json", stats_file,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events and [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for ev in events:
        assert validate_event(ev, LABELS) == [] and ev["device_id"] == "bench-1"
    assert events[0]["type"] == "start" and events[-1]["type"] == "end"
    stats = json.loads(stats_file.read_text())
    assert stats["frames"] == 90 and stats["frames_with_face"] >= 85
    assert stats["fps"] > 0 and 0 < stats["peak_rss_mb"] < 250
    assert set(stats["stage_ms_median"]) >= {"capture", "detect", "classify", "track", "total"}
    assert stats["sinks"] == {"stdout": {"events": len(events)}}
    assert stats["stop_reason"] == "max frames"
    # detector.fps = 5: about one frame in six detected, the rest carried by the tracker
    assert 60 <= stats["carried_frames"] <= 80
    assert stats["runtime"] in ("ai-edge-litert", "tflite-runtime")  # never TensorFlow
    assert f"runtime {stats['runtime']}" in proc.stderr  # logged at start


def test_run_turns_a_camera_on_its_side(media_dir, tiny_tflite_model, tmp_path):
    """--rotate 90: faces are found and reported in the turned (portrait) picture."""
    stats_file = tmp_path / "stats.json"
    proc = deepfer(
        "run", "--source", media_dir / "woman2.mp4", "--model", tiny_tflite_model,
        "--rotate", 90, "--max-frames", 30, "--stats-json", stats_file,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events and {e["track_id"] for e in events} == {1}
    for ev in events:
        x, y, w, h = ev["box"]
        assert x >= 0 and x + w <= 336 and y >= 0 and y + h <= 596  # woman2 is 596x336
    assert json.loads(stats_file.read_text())["frames_with_face"] >= 28
    assert "woman2.mp4 turned 90" in proc.stderr  # the source is logged as turned


def test_config_file_env_and_print_config(media_dir, tiny_tflite_model, tmp_path):
    conf = tmp_path / "deepfer.toml"
    conf.write_text(f'device_id = "from-file"\n[model]\npath = "{tiny_tflite_model}"\n')
    env = env_without_settings(DEEPFER_TRACKER_DEBOUNCE_S="0.6")
    proc = deepfer("run", "--config", conf, "--source", "0", "--print-config", env=env)
    assert proc.returncode == 0, proc.stderr
    assert 'device_id = "from-file"' in proc.stdout and "debounce_s = 0.6" in proc.stdout
    assert 'uri = "0"' in proc.stdout
    proc = deepfer("run", "--config", conf, "--validate-config", env=env)
    assert proc.returncode == 0 and "config OK" in proc.stdout


def test_bad_config_value_names_key_value_and_file(tmp_path):
    conf = tmp_path / "bad.toml"
    conf.write_text("[detector]\nmin_neighbors = -2\n")
    proc = deepfer("run", "--config", conf, "--validate-config")
    assert proc.returncode == 2
    assert f"detector.min_neighbors = -2 (from {conf})" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = deepfer("run", "--source", "0", "--preview", "localhost:http")
    assert proc.returncode == 2 and "--preview 'localhost:http'" in proc.stderr
    # a flag's error names the flag as typed, not one made from the key
    proc = deepfer("run", "--mqtt", "ftp://broker", "--validate-config")
    assert proc.returncode == 2
    assert "mqtt.url = 'ftp://broker' (from flag --mqtt): use mqtt://" in proc.stderr


def test_run_stops_quietly_when_the_reader_of_stdout_leaves(media_dir):
    # `deepfer run --loop | head -2`: a looped file never ends by itself
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "deepfer", "run", "--source", str(media_dir / "woman2.mp4"),
            "--loop",  # the shipped model: its emotions change often on this clip
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_without_settings(),
    )  # fmt: skip
    try:
        first = [json.loads(proc.stdout.readline()) for _ in range(2)]
        proc.stdout.close()  # the reader leaves
        assert proc.wait(timeout=60) == 0
        stderr = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert first[0]["type"] == "start"
    assert "Traceback" not in stderr and "Broken pipe" not in stderr
    assert stderr.count("stdout: the reader closed the pipe; no output left, stopping") == 1
    assert "stopped (stdout: the reader closed the pipe)" in stderr


def test_unknown_source_and_bad_model(media_dir, tiny_tflite_model, tmp_path):
    proc = deepfer("run", "--source", "no-such-camera", "--model", tiny_tflite_model)
    assert proc.returncode == 2 and "unknown source 'no-such-camera'" in proc.stderr
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"TFL3 but not really")
    broken.with_suffix(".json").write_text(tiny_tflite_model.with_suffix(".json").read_text())
    proc = deepfer("run", "--source", media_dir / "woman2.mp4", "--model", broken)
    assert proc.returncode == 2 and "not a valid TFLite model" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_camera_or_stream_not_there_exits_75_for_a_later_try(tiny_tflite_model):
    """A live source that cannot be opened at start (a camera unplugged or not yet up at
    boot, a stream's server away) exits 75 (EX_TEMPFAIL), which the unit retries; a wrong
    setting exits 2, which it does not (RestartPreventExitStatus=2)."""
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for source, words in (
        (63, "camera 63: cannot open it (is it plugged in"),
        (f"http://127.0.0.1:{port}/cam.mjpg", "cannot open it as a stream"),
    ):
        proc = deepfer("run", "--source", source, "--model", tiny_tflite_model)
        assert proc.returncode == 75 and words in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_sigterm_ends_tracks_flushes_and_exits_0_with_preview(media_dir, tiny_tflite_model):
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "deepfer", "run", "--source", str(media_dir / "woman2.mp4"),
            "--loop", "--realtime", "--model", str(tiny_tflite_model), "--preview", "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_without_settings(),
    )  # fmt: skip
    stderr_lines: list[str] = []
    reader = threading.Thread(target=lambda: stderr_lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        first = json.loads(proc.stdout.readline())
        assert first["type"] == "start"
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:
            found = re.findall(r"preview on (http://\S+)", "".join(stderr_lines))
            url = found[0] if found else None
            time.sleep(0.1)
        assert url, "".join(stderr_lines)
        with urllib.request.urlopen(url + "frame.jpg", timeout=10) as resp:
            assert resp.read(3) == b"\xff\xd8\xff"  # a JPEG of the annotated frame
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    events = [first] + [json.loads(line) for line in rest.splitlines()]
    assert events[-1]["type"] == "end" and events[-1]["track_id"] == first["track_id"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert "SIGTERM" in "".join(stderr_lines)


def test_view_serves_the_preview_and_prints_its_address(media_dir, tiny_tflite_model, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.jpg").write_bytes((media_dir / "justin.jpg").read_bytes())
    proc = deepfer(
        "view", "--source", folder, "--model", tiny_tflite_model, "--port", 0, "--no-browser",
        "--events",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"preview: http://127\.0\.0\.1:\d+/", proc.stderr)
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["type"] for e in events] == ["start", "end"]


def unreadable_pictures(folder: Path) -> tuple[Path, Path]:
    """A text file named .jpg, and a folder of pictures none of which can be read."""
    text = folder / "notes.jpg"
    text.write_text("not a picture")
    bad = folder / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"")
    (bad / "b.png").write_text("nor this")
    return text, bad


def test_view_says_a_picture_cannot_be_read_before_giving_an_address(
    media_dir, tiny_tflite_model, tmp_path
):
    """A text file named .jpg, or a folder none of whose pictures can be read: the error
    (the file and why, exit 2) and no address (view printed the page's address, then failed;
    run --preview logged it, its outputs started). A folder whose first picture is unreadable
    still runs, its skip said once."""
    text, bad = unreadable_pictures(tmp_path)
    view = ("view", "--model", tiny_tflite_model, "--port", 0, "--no-browser")
    run = ("run", "--model", tiny_tflite_model, "--preview", 0)
    for source, words in (
        (text, f"{text}: cannot read this image (not an image, or corrupt)"),
        (bad, f"{bad}: none of its 2 images can be read"),
    ):
        for command in (view, run):
            proc = deepfer(*command, "--source", source)
            assert proc.returncode == 2, proc.stderr
            assert proc.stderr.rstrip().endswith(words), proc.stderr
            assert "http://" not in proc.stderr and "preview" not in proc.stderr
            assert proc.stderr.count("a.jpg: cannot read this image (the file is empty)") == (
                source == bad
            )
    shutil.copy(media_dir / "justin.jpg", bad / "c.jpg")
    proc = deepfer(*view, "--source", bad, "--events")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"preview: http://127\.0\.0\.1:\d+/", proc.stderr)
    assert proc.stderr.count("b.png: cannot read this image (not an image, or corrupt)") == 1
    assert [json.loads(line)["type"] for line in proc.stdout.splitlines()] == ["start", "end"]


def test_run_on_a_folder_of_photos_reports_the_faces_deepfer_detect_finds(media_dir, tmp_path):
    """Each photo is a picture on its own: a face seen in one photo is a track with a start
    event (two sightings are asked only of video), found as `deepfer detect` finds it (small
    faces of a group photo too), with the same emotion."""
    folder = tmp_path / "snapshots"
    folder.mkdir()
    for name in ("12_angry_men.jpg", "justin.jpg", "no-faces.jpg"):
        shutil.copy(media_dir / name, folder / name)
    detect = deepfer("detect", folder, "--json")
    assert detect.returncode == 0, detect.stderr
    want = json.loads(detect.stdout)
    assert len(want) >= 10  # 12_angry_men's 9 and justin
    proc = deepfer("run", "--source", folder)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    starts = [e for e in events if e["type"] == "start"]
    assert [(e["box"], e["emotion"]) for e in starts] == [(f["box"], f["emotion"]) for f in want]
    assert len({e["track_id"] for e in starts}) == len(starts)
    ends = [e for e in events if e["type"] == "end"]
    assert sorted(e["track_id"] for e in ends) == sorted(e["track_id"] for e in starts)


def test_a_folders_files_that_run_passes_over_are_named_once(
    media_dir, tiny_tflite_model, tmp_path
):
    """`deepfer detect FOLDER` takes a folder's videos and GIFs (a still GIF as a photo);
    `deepfer run --source FOLDER` takes its pictures, the still GIF among them, and passed over
    the rest unsaid: each file passed over is now named, in one warning however often the
    folder is looped (view too)."""
    import cv2

    folder = tmp_path / "mixed"
    folder.mkdir()
    photo = cv2.imread(str(media_dir / "justin.jpg"))
    shutil.copy(media_dir / "justin.jpg", folder / "a.jpg")
    write_gif(folder / "b_still.gif", [photo])
    clip = cv2.VideoWriter(str(folder / "c.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for _ in range(3):
        clip.write(cv2.resize(photo, (64, 48)))
    clip.release()
    (folder / "._a.jpg").write_bytes(b"\0\5\26\7")  # macOS's metadata: passed over by both
    (folder / "notes.txt").write_text("not a picture")  # taken by neither
    model = ("--model", tiny_tflite_model)
    detect = deepfer("detect", folder, *model)
    assert detect.returncode == 0, detect.stderr
    taken = re.findall(r"^(\S+): ", detect.stdout, re.M)
    assert [Path(p).name for p in taken] == ["a.jpg", "b_still.gif", "c.mp4"]
    said = f"{folder}: passing over c.mp4: a folder source takes only the pictures in it"
    stats = tmp_path / "stats.json"
    proc = deepfer("run", "--source", folder, "--stats-json", stats, *model)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(stats.read_text())["frames"] == 2  # the photo and the still GIF
    assert proc.stderr.count(said) == 1, proc.stderr
    proc = deepfer("run", "--source", folder, "--loop", "--max-frames", 4, *model)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count(said) == 1, proc.stderr
    assert "._a.jpg" not in proc.stderr and "notes.txt" not in proc.stderr
    assert "b_still.gif" not in proc.stderr
    assert "give each video as its own --source" in proc.stderr
    view = deepfer("view", "--source", folder, "--port", 0, "--no-browser", *model)
    assert view.returncode == 0, view.stderr
    assert view.stderr.count(said) == 1, view.stderr
    # a folder of pictures alone: nothing said
    (folder / "c.mp4").unlink()
    proc = deepfer("run", "--source", folder, *model)
    assert proc.returncode == 0 and "passing over" not in proc.stderr, proc.stderr


def audio_only_mp4(path: Path, moov_last: bool = False, rate: int = 8000) -> Path:
    """A real MP4 of one second of a 440 Hz tone and no video track (16-bit PCM, 'sowt'),
    written box by box: FFmpeg reads it as one stream, "Audio: pcm_s16le, 8000 Hz, mono"
    (checked with FFmpeg 9). No encoder is needed, so every install can make it.
    ``moov_last``: the track list after the samples, as a recorder that did not move it
    writes it."""
    import math
    import struct

    def box(kind: bytes, *parts: bytes) -> bytes:
        body = b"".join(parts)
        return struct.pack(">I4s", 8 + len(body), kind) + body

    def full(kind: bytes, flags: int, *parts: bytes) -> bytes:
        return box(kind, struct.pack(">I", flags), *parts)

    n = rate
    samples = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(n)
    )
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    ftyp = box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2mp41")
    mvhd = full(
        b"mvhd", 0, struct.pack(">IIIIIH", 0, 0, rate, n, 0x10000, 0x100), b"\0" * 10, matrix,
        b"\0" * 24, struct.pack(">I", 2),
    )  # fmt: skip
    tkhd = full(
        b"tkhd", 3, struct.pack(">IIIII", 0, 0, 1, 0, n), b"\0" * 8,
        struct.pack(">hhHH", 0, 0, 0x100, 0), matrix, struct.pack(">II", 0, 0),
    )  # fmt: skip
    mdhd = full(b"mdhd", 0, struct.pack(">IIIIHH", 0, 0, rate, n, 0x55C4, 0))
    hdlr = full(b"hdlr", 0, struct.pack(">I4s", 0, b"soun"), b"\0" * 12, b"SoundHandler\0")
    sowt = box(b"sowt", b"\0" * 6, struct.pack(">HHHIHHHHI", 1, 0, 0, 0, 1, 16, 0, 0, rate << 16))

    def moov(offset: int) -> bytes:
        stbl = box(
            b"stbl",
            full(b"stsd", 0, struct.pack(">I", 1), sowt),
            full(b"stts", 0, struct.pack(">III", 1, n, 1)),
            full(b"stsc", 0, struct.pack(">IIII", 1, 1, n, 1)),
            full(b"stsz", 0, struct.pack(">II", 2, n)),
            full(b"stco", 0, struct.pack(">II", 1, offset)),
        )
        dinf = box(b"dinf", full(b"dref", 0, struct.pack(">I", 1), full(b"url ", 1)))
        minf = box(b"minf", full(b"smhd", 0, struct.pack(">hH", 0, 0)), dinf, stbl)
        return box(b"moov", mvhd, box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf)))

    mdat = box(b"mdat", samples)
    if moov_last:
        data = ftyp + mdat + moov(len(ftyp) + 8)
    else:
        data = ftyp + moov(len(ftyp) + len(moov(0)) + 8) + mdat
    path.write_bytes(data)
    return path


def test_an_mp4_of_audio_alone_is_said_to_hold_no_video(media_dir, tiny_tflite_model, tmp_path):
    """An MP4 with only an audio track: `deepfer run`, `view` and `detect` say it holds no
    video stream, naming the file, exit 2 (it was "cannot open it as a video file (OpenCV/FFmpeg)",
    as for a damaged file); files with a video track, photos and other files are not
    judged so."""
    import cv2

    from deepfer.edge.capture.inputs import video_header

    model = ("--model", tiny_tflite_model)
    for name, moov_last in (("voice.mp4", False), ("memo.mp4", True)):
        sound = audio_only_mp4(tmp_path / name, moov_last)
        assert cv2.VideoCapture(str(sound)).isOpened() is False
        assert video_header(sound).no_video == "holds no video stream (only audio)"
        for command in (("run",), ("view", "--no-browser", "--port", 0)):
            proc = deepfer(*command, "--source", sound, *model)
            assert proc.returncode == 2, proc.stderr
            assert proc.stderr.rstrip().endswith(
                f"{sound}: holds no video stream (only audio): no pictures to look for faces in"
            ), proc.stderr
            assert "Traceback" not in proc.stderr and "http://" not in proc.stderr
        proc = deepfer("detect", sound, *model)  # said by the source itself
        assert proc.returncode != 0
        assert f"{sound}: holds no video stream (only audio)" in proc.stderr, proc.stderr
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for _ in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    cut = tmp_path / "cut.mp4"  # the track list cut off: nothing can be said
    cut.write_bytes((tmp_path / "voice.mp4").read_bytes()[:200])
    text = tmp_path / "notes.mp4"
    text.write_text("hello, not a video")
    for path in (media_dir / "woman2.mp4", clip, media_dir / "justin.jpg", cut, text):
        assert video_header(path).no_video is None, path
    assert video_header(tmp_path / "gone.mp4").no_video is None
    proc = deepfer("run", "--source", text, *model)  # what it was: the generic words stay
    assert proc.returncode == 2 and "cannot open it as a video file" in proc.stderr


def test_an_mp4_of_audio_made_by_ffmpeg_is_said_to_hold_no_video(tmp_path):
    """The same with an AAC track written by FFmpeg itself, where an FFmpeg is at hand."""
    try:
        import imageio_ffmpeg

        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        pytest.skip("no FFmpeg program (imageio-ffmpeg or ffmpeg on PATH) to write an AAC track")
    from deepfer.edge.capture.inputs import video_header

    sound = tmp_path / "tone.mp4"
    made = subprocess.run(
        [ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", sound],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    assert video_header(sound).no_video == "holds no video stream (only audio)"
    proc = deepfer("run", "--source", sound)
    assert proc.returncode == 2
    assert f"{sound}: holds no video stream (only audio)" in proc.stderr


def test_run_takes_a_file_of_one_picture_as_a_photo(media_dir, tiny_tflite_model, tmp_path):
    """A JPEG without a suffix and a still GIF are photos, as `deepfer detect` has it: each
    face starts a track found as `deepfer detect` finds it (they went through FFmpeg as
    one-frame videos: no track ever started)."""
    import cv2

    shutil.copy(media_dir / "justin.jpg", tmp_path / "no_suffix")
    write_gif(tmp_path / "still.gif", [cv2.imread(str(media_dir / "justin.jpg"))])
    model = ("--model", tiny_tflite_model)
    detect = deepfer("detect", tmp_path / "no_suffix", tmp_path / "still.gif", "--json", *model)
    assert detect.returncode == 0, detect.stderr
    want = {f["input"]: (f["box"], f["emotion"]) for f in json.loads(detect.stdout)}
    assert len(want) == 2
    for name in ("no_suffix", "still.gif"):
        proc = deepfer("run", "--source", tmp_path / name, *model)
        assert proc.returncode == 0, proc.stderr
        events = [json.loads(line) for line in proc.stdout.splitlines()]
        assert [e["type"] for e in events] == ["start", "end"]
        assert (events[0]["box"], events[0]["emotion"]) == want[str(tmp_path / name)]


def test_sources_and_outputs_that_cannot_work_fail_at_start(tiny_tflite_model, tmp_path):
    """A photo that cannot be read, a folder of them, a file that is not there, and a stats
    file that could never be written: exit 2 at start with the file and why (the stats file
    used to fail with a traceback after the whole run)."""
    text, folder = unreadable_pictures(tmp_path)
    for source, words in (
        (text, f"{text}: cannot read this image (not an image, or corrupt)"),
        (folder, f"{folder}: none of its 2 images can be read"),
        (tmp_path / "gone.mp4", f"{tmp_path / 'gone.mp4'}: no such file or folder"),
    ):
        proc = deepfer("run", "--source", source, "--model", tiny_tflite_model)
        assert proc.returncode == 2, proc.stderr
        assert words in proc.stderr and "read failed" not in proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""
    for stats, words in ((tmp_path, "is a folder"), (text / "s.json", "is a file, not a folder")):
        proc = deepfer(
            "run", "--source", text, "--stats-json", stats, "--validate-config",
            "--model", tiny_tflite_model,
        )  # fmt: skip
        assert proc.returncode == 2 and f"run.stats_json = '{stats}'" in proc.stderr
        assert words in proc.stderr
