"""`deepfer detect` in a subprocess: text, JSON, annotated output, and clear errors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_subprocess import deepfer
from synthetic import retime_mp4, write_gif, write_video

from deepfer.edge.annotated_video import FrameSlots


def test_detect_json_on_justin(media_dir, tiny_tflite_model, tmp_path):
    out = tmp_path / "justin_boxes.jpg"
    proc = deepfer(
        "detect", media_dir / "justin.jpg", "--json", "--model", tiny_tflite_model, "--out", out
    )
    assert proc.returncode == 0, proc.stderr
    faces = json.loads(proc.stdout)
    assert isinstance(faces, list) and len(faces) == 1
    face = faces[0]
    assert {"box", "emotion", "score", "scores"} <= set(face)
    x, y, w, h = face["box"]
    # whichever detector `auto` picked: the face, not necessarily a square box
    assert 60 < x < 120 and 60 < y < 120 and 150 < w < 240 and 150 < h < 240
    assert face["emotion"] == max(face["scores"], key=face["scores"].get)
    assert face["score"] == face["scores"][face["emotion"]]
    drawn = cv2.imread(str(out))
    original = cv2.imread(str(media_dir / "justin.jpg"))
    assert drawn.shape == original.shape and (drawn != original).any()


def test_detect_with_a_shipped_model_by_name(media_dir):
    """The single model by its name, as a Pi Zero 2 W would run it (real file, real image)."""
    proc = deepfer(
        "-v", "detect", media_dir / "justin.jpg", "--json", "--model", "deepfer-single_int8"
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == 1
    assert "deepfer-single_int8" in proc.stderr  # the model it loaded is logged


def test_detect_text_several_inputs_and_video(media_dir, tiny_tflite_model, tmp_path):
    clip = tmp_path / "clip.mp4"
    cap = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30, (596, 336))
    for _ in range(20):
        ok, frame = cap.read()
        writer.write(frame)
    writer.release()
    outdir = tmp_path / "out"
    proc = deepfer(
        "detect", media_dir / "12_angry_men.jpg", media_dir / "no-faces.jpg", clip,
        "--model", tiny_tflite_model, "--out", outdir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "12_angry_men.jpg: " in proc.stdout and "no-faces.jpg: no faces" in proc.stdout
    assert "clip.mp4: faces in" in proc.stdout and "track #1" in proc.stdout
    assert sorted(p.name for p in outdir.iterdir()) == [
        "12_angry_men.jpg",
        "clip.mp4",
        "no-faces.jpg",
    ]
    assert cv2.VideoCapture(str(outdir / "clip.mp4")).read()[0]


def test_unreadable_image_and_missing_file(media_dir, tiny_tflite_model, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 this is not really a jpeg")
    proc = deepfer(
        "detect", broken, tmp_path / "missing.png", media_dir / "justin.jpg", "--json",
        "--model", tiny_tflite_model,
    )  # fmt: skip
    assert proc.returncode == 1
    assert f"{broken}: cannot read this image" in proc.stderr
    assert "missing.png: no such file" in proc.stderr
    assert len(json.loads(proc.stdout)) == 1  # the good input still gets its answer


def test_bad_models_are_clear_errors(media_dir, tiny_tflite_model, tmp_path):
    image = media_dir / "justin.jpg"
    proc = deepfer("detect", image, "--model", tmp_path / "nope.tflite")
    assert proc.returncode == 2 and "model.path" in proc.stderr and "nope.tflite" in proc.stderr

    lonely = tmp_path / "lonely.tflite"
    shutil.copy(tiny_tflite_model, lonely)
    proc = deepfer("detect", image, "--model", lonely)
    assert proc.returncode == 2 and "no sidecar lonely.json" in proc.stderr

    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(os.urandom(2048))
    shutil.copy(tiny_tflite_model.with_suffix(".json"), corrupt.with_suffix(".json"))
    proc = deepfer("detect", image, "--model", corrupt)
    assert proc.returncode == 2 and "not a valid TFLite model" in proc.stderr
    assert "Traceback" not in proc.stderr


def _box_centre(face):
    x, y, w, h = face["box"]
    return x + w / 2, y + h / 2


def test_rotate_turns_an_upside_down_camera_upright(media_dir, tiny_tflite_model, tmp_path):
    """--rotate 180, a camera mounted upside down: its photo and clip give the faces, boxes and
    single track of the upright ones (boxes in the turned picture)."""
    photo = cv2.imread(str(media_dir / "justin.jpg"))
    cv2.imwrite(str(tmp_path / "upright.png"), photo)
    cv2.imwrite(str(tmp_path / "upside_down.png"), cv2.rotate(photo, cv2.ROTATE_180))
    cap = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
    size = (596, 336)
    fourcc = cv2.VideoWriter_fourcc(*"mp4v")
    upright = cv2.VideoWriter(str(tmp_path / "upright.mp4"), fourcc, 30, size)
    upside_down = cv2.VideoWriter(str(tmp_path / "upside_down.mp4"), fourcc, 30, size)
    for _ in range(30):
        ok, frame = cap.read()
        upright.write(frame)
        upside_down.write(cv2.rotate(frame, cv2.ROTATE_180))
    upright.release()
    upside_down.release()

    def faces(name, *flags):
        proc = deepfer("detect", tmp_path / name, "--json", "--model", tiny_tflite_model, *flags)
        assert proc.returncode == 0, proc.stderr
        return [{k: v for k, v in face.items() if k != "input"} for face in json.loads(proc.stdout)]

    assert faces("upside_down.png", "--rotate", "180") == faces("upright.png")
    want = faces("upright.mp4")
    got = faces("upside_down.mp4", "--rotate", "180")
    assert len(want) == 30 and [f["frame"] for f in got] == [f["frame"] for f in want]
    assert {f["track_id"] for f in got} == {1}
    for a, b in zip(got, want, strict=True):  # the two clips were encoded apart: a few px
        (ax, ay), (bx, by) = _box_centre(a), _box_centre(b)
        assert abs(ax - bx) <= 6 and abs(ay - by) <= 6

    proc = deepfer("detect", tmp_path / "upright.png", "--rotate", "45")
    assert proc.returncode == 2 and "source.rotate = 45 (from flag --rotate)" in proc.stderr


def test_detector_none_classifies_face_crops_whole(data_dir, tmp_path):
    """A folder of pictures already cropped to a face (FER2013's): the default detector finds
    a face filling a 48x48 crop, or none, and says how to classify them whole (once for the
    faces that fill their picture); `--detector none` gives each picture exactly the scores
    the shipped model gives the crop's own pixels."""
    import numpy as np

    from deepfer.edge.model.classifier import EmotionClassifier, resolve_model_path
    from deepfer.edge.preprocess import normalise_light

    test_dir = data_dir / "fer2013" / "test"
    crops = tmp_path / "crops"
    crops.mkdir()
    for label in sorted(p.name for p in test_dir.iterdir()):
        for src in sorted((test_dir / label).iterdir())[:2]:
            shutil.copy(src, crops / f"{label}_{src.name}")
    names = sorted(p.name for p in crops.iterdir())

    proc = deepfer("detect", crops, "--json")
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found and all(min(f["box"][2:]) >= 0.6 * 48 for f in found)  # each fills its crop
    assert proc.stderr.count("one face fills this 48x48 picture") == 1
    assert "--detector none classifies each whole" in proc.stderr
    missed = set(names) - {os.path.basename(f["input"]) for f in found}
    assert proc.stderr.count("--detector none classifies it whole") == len(missed)

    proc = deepfer("detect", crops, "--json", "--detector", "none")
    assert proc.returncode == 0, proc.stderr
    faces = json.loads(proc.stdout)
    assert [os.path.basename(f["input"]) for f in faces] == names  # one face per picture
    assert all(f["box"] == [0, 0, 48, 48] for f in faces)
    classifier = EmotionClassifier(resolve_model_path(""))
    pixels = np.stack([cv2.imread(str(crops / n), cv2.IMREAD_GRAYSCALE) for n in names])
    # (model.normalise_light: a crop lit outside the training faces' range is brought in)
    want = classifier.infer(np.stack([normalise_light(p) for p in pixels]))
    got = np.array([[f["scores"][k] for k in classifier.labels] for f in faces])
    assert np.abs(got - want).max() < 1e-3  # (JSON rounds the scores)


def test_detect_finds_the_faces_above_the_cut_of_a_photo_cut_short(media_dir, tmp_path):
    """An interrupted download: the face in the top part is found, and stderr says the file is
    cut short (the whole photo says nothing of the kind)."""
    photo = cv2.imread(str(media_dir / "justin.jpg"))
    whole, cut = tmp_path / "whole.jpg", tmp_path / "cut.jpg"
    cv2.imwrite(str(whole), photo)
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.9)])
    got = {}
    for path in (whole, cut):
        proc = deepfer("detect", path, "--json")
        assert proc.returncode == 0, proc.stderr
        got[path.name] = (json.loads(proc.stdout), proc.stderr)
    assert "cut short" not in got["whole.jpg"][1]
    assert f"{cut}: the file is cut short" in got["cut.jpg"][1]
    assert len(got["cut.jpg"][0]) == len(got["whole.jpg"][0]) == 1


def test_an_iphone_heic_photo_says_how_to_convert_it(media_dir, tmp_path):
    """OpenCV cannot decode HEIC: a folder's .HEIC photo is reported with what to do (exit 1)
    and the folder's other photos are still done."""
    (tmp_path / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(2000))
    shutil.copy(media_dir / "justin.jpg", tmp_path / "justin.jpg")
    proc = deepfer("detect", tmp_path)
    assert proc.returncode == 1
    assert (
        "IMG_0001.HEIC: HEIC/HEIF photos" in proc.stderr and "convert them to JPEG" in proc.stderr
    )
    assert "justin.jpg: 1 face" in proc.stdout


def test_out_never_writes_over_an_input(media_dir, tiny_tflite_model, tmp_path, capsys):
    """`--out` naming the input itself (or the folder it came from, a hard link to it) or a
    recording naming it is refused before any work: the original is left as it was (a video
    used to be cut to the frames written). In-process: these end before anything is searched."""
    from deepfer.cli import main

    photo = tmp_path / "photo.jpg"
    shutil.copy(media_dir / "justin.jpg", photo)
    before = photo.read_bytes()
    (tmp_path / "link.jpg").hardlink_to(photo)  # the same file by another name
    model = ["--model", str(tiny_tflite_model)]
    for args, words in (
        ((photo, "--out", photo), f"would write over the input {photo}"),
        ((photo, "--out", tmp_path), f"would write over the input {photo}"),
        ((photo, "--out", tmp_path / "link.jpg"), f"would write over the input {photo}"),
        ((tmp_path, "--out", f"{tmp_path}/"), "would write over the input"),
        ((photo, "--csv", photo), f"--csv {photo}: would write over"),
        ((photo, "--summary", photo), f"--summary {photo}: would write over"),
    ):
        assert main(["detect", *map(str, args), *model]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err
    assert photo.read_bytes() == before


def test_out_as_a_folder_or_a_file(media_dir, tiny_tflite_model, tmp_path):
    """A folder when it is one, ends with /, or the input is a folder (even of one photo);
    two inputs of the same name both kept; a file of the wrong kind is refused up front;
    missing folders above a file are made."""
    justin = media_dir / "justin.jpg"
    run = lambda *args: deepfer("detect", *args, "--model", tiny_tflite_model)  # noqa: E731
    existing = tmp_path / "existing"
    existing.mkdir()
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(justin, one / "x.jpg")
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(media_dir / "no-faces.jpg", other / "x.jpg")
    for args, made in (
        ((justin, "--out", existing), existing / "justin.jpg"),
        ((justin, "--out", f"{tmp_path}/new/"), tmp_path / "new" / "justin.jpg"),
        ((one, "--out", tmp_path / "from_one"), tmp_path / "from_one" / "x.jpg"),
        ((justin, "--out", tmp_path / "deep" / "er" / "j.png"), tmp_path / "deep" / "er" / "j.png"),
    ):
        proc = run(*args)
        assert proc.returncode == 0, proc.stderr
        assert cv2.imread(str(made)).shape == cv2.imread(str(justin)).shape
    proc = run(one / "x.jpg", other / "x.jpg", "--out", tmp_path / "both")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "both").iterdir()) == ["x-2.jpg", "x.jpg"]
    assert "is written as x-2.jpg" in proc.stderr
    clip = tmp_path / "clip.mp4"
    _write_clip(media_dir / "woman2.mp4", clip, 3)
    for args, words in (
        ((justin, "--out", tmp_path / "x"), "OpenCV cannot write images of this type"),
        ((justin, "--out", tmp_path / "x.mp4"), "OpenCV cannot write images of this type"),
        ((clip, "--out", tmp_path / "v.jpg"), "is a video; write it as .mp4 or .avi"),
    ):
        proc = run(*args)
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "v.jpg").exists()
    proc = run(tmp_path / "not_here", "--out", tmp_path / "o.jpg")  # an input error: exit 1
    assert proc.returncode == 1 and "not_here: no such file" in proc.stderr


def _write_clip(source, target, frames: int, fourcc: str = "mp4v") -> None:
    cap = cv2.VideoCapture(str(source))
    writer = None
    for _ in range(frames):
        ok, frame = cap.read()
        assert ok
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*fourcc), 30, (w, h))
        writer.write(frame)
    writer.release()
    cap.release()


def test_one_picture_files_are_searched_as_photos(media_dir, tiny_tflite_model, tmp_path):
    """A .jfif, a still GIF, a JPEG without a suffix and a one-frame clip each hold one
    picture: their face is reported (a tracker never saw it twice, so they used to say no
    track started); a folder scan takes GIFs and .jfif too."""
    photo = cv2.imread(str(media_dir / "justin.jpg"))
    folder = tmp_path / "pictures"
    folder.mkdir()
    shutil.copy(media_dir / "justin.jpg", folder / "photo.jfif")
    write_gif(folder / "still.gif", [photo])
    shutil.copy(media_dir / "justin.jpg", tmp_path / "no_suffix")
    writer = cv2.VideoWriter(
        str(tmp_path / "one.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, photo.shape[1::-1]
    )
    writer.write(photo)
    writer.release()
    proc = deepfer(
        "detect", folder, tmp_path / "no_suffix", tmp_path / "one.mp4", "--json",
        "--model", tiny_tflite_model,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    faces = json.loads(proc.stdout)
    inputs = sorted(os.path.basename(f["input"]) for f in faces)
    assert inputs == ["no_suffix", "one.mp4", "photo.jfif", "still.gif"]
    assert all("frame" not in f for f in faces)  # photos: no frame, t or track
    proc = deepfer("detect", folder / "still.gif", "--csv", tmp_path / "f.csv",
                   "--model", tiny_tflite_model)  # fmt: skip
    assert proc.returncode == 0 and f"{folder / 'still.gif'}: 1 face" in proc.stdout
    proc = deepfer("detect", tmp_path / "one.mp4", "--out", tmp_path / "o.mp4",
                   "--model", tiny_tflite_model)  # fmt: skip
    assert proc.returncode == 2 and "one.mp4's picture this way; use .jpg" in proc.stderr
    # a motion-JPEG stream (an IP camera's dump) is many pictures: a video, though OpenCV
    # decodes its first picture as an image
    ok, jpeg = cv2.imencode(".jpg", photo)
    (tmp_path / "cam.mjpeg").write_bytes(jpeg.tobytes() * 5)
    proc = deepfer("detect", tmp_path / "cam.mjpeg", "--json", "--model", tiny_tflite_model)
    assert proc.returncode == 0, proc.stderr
    assert [f["frame"] for f in json.loads(proc.stdout)] == [0, 1, 2, 3, 4]


def _png_header_only(path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` (a "decompression bomb" to OpenCV,
    which refuses more than 2^30 pixels before decoding)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )  # fmt: skip


def test_images_opencv_refuses_are_reported_by_name(media_dir, tiny_tflite_model, tmp_path):
    """Over OpenCV's pixel limit (an exception inside OpenCV), empty, a PNG cut short: each a
    one-line error naming the file and why; the other inputs are still done (exit 1), and a
    folder given to `deepfer run` skips them and goes on."""
    folder = tmp_path / "photos"
    folder.mkdir()
    _png_header_only(folder / "bomb.png", 40000, 40000)
    (folder / "empty.jpg").write_bytes(b"")
    ok, png = cv2.imencode(".png", cv2.imread(str(media_dir / "no-faces.jpg")))
    (folder / "cut.png").write_bytes(png.tobytes()[: len(png) // 2])
    shutil.copy(media_dir / "justin.jpg", folder / "z.jpg")
    proc = deepfer("detect", folder, "--json", "--model", tiny_tflite_model)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{folder / 'bomb.png'}: cannot read this image (more pixels than OpenCV" in proc.stderr
    assert f"{folder / 'empty.jpg'}: cannot read this image (the file is empty)" in proc.stderr
    assert f"{folder / 'cut.png'}: cannot read this image (the file is cut short" in proc.stderr
    assert [os.path.basename(f["input"]) for f in json.loads(proc.stdout)] == ["z.jpg"]
    proc = deepfer("run", "--source", folder, "--model", tiny_tflite_model)
    assert proc.returncode == 0, proc.stderr
    assert "bomb.png: cannot read this image" in proc.stderr and "skipped" in proc.stderr
    assert [json.loads(line)["type"] for line in proc.stdout.splitlines()] == ["start", "end"]


def test_detect_width_is_checked(media_dir, tiny_tflite_model):
    proc = deepfer(
        "detect", media_dir / "justin.jpg", "--detect-width", "10", "--model", tiny_tflite_model
    )
    assert proc.returncode == 2
    assert "--detect-width 10: must be 0 (no scaling) or >= 48" in proc.stderr


def test_quiet_logs_only_warnings(media_dir, tiny_tflite_model):
    proc = deepfer("-q", "detect", media_dir / "justin.jpg", "--model", tiny_tflite_model)
    assert proc.returncode == 0 and "1 face" in proc.stdout
    assert " INFO deepfer" not in proc.stderr  # (TFLite's own C++ line is not Python's logging)


# -- the annotated copy of a video keeps the input's time ----------------------------------------

FAST, SLOW = 120, 30  # frames at 60 fps, then at 10 fps: a phone's recording slowing down
#: Where each frame of the variable-rate clip starts, seconds (it ends at 5.0).
VFR_TIMES = np.concatenate([np.arange(FAST) / 60, FAST / 60 + 0.1 * np.arange(SLOW)])


def _numbered_frames(n: int) -> list[np.ndarray]:
    """Frame ``i``: a bright bar at x = 2 i + 8 (4 px wide) on a dark picture."""
    frames = []
    for i in range(n):
        frame = np.full((48, 320, 3), 30, np.uint8)
        frame[:, 2 * i + 8 : 2 * i + 12] = 230
        frames.append(frame)
    return frames


def _frame_numbers(video) -> tuple[list[int], float]:
    """Which input frame each frame of ``video`` shows (its bar's centre), and its fps."""
    cap = cv2.VideoCapture(str(video))
    fps, numbers = cap.get(cv2.CAP_PROP_FPS), []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        column = image[:, :, 1].mean(axis=0)
        weight = np.clip(column - 128, 0, None)
        numbers.append(round((weight @ np.arange(len(column)) / weight.sum() - 9.5) / 2))
    cap.release()
    return numbers, fps


def test_the_annotated_copy_of_a_variable_frame_rate_video_keeps_time(
    tiny_tflite_model, tmp_path, capsys
):
    """A phone's clip at 60 fps, then 10 (150 frames, 5 s; FFmpeg says 30 fps on average):
    its copy used to hold the 150 frames evenly at 30 fps, the frame filmed at 2.0 s showing
    at 4.0. Now the copy lasts the input's 5 s and its frame at time s shows the input frame
    on screen at s (the 60 fps part every other frame, the 10 fps part each frame thrice).
    A constant rate comes out one for one as before, with --every too. In-process."""
    from deepfer.cli import main

    frames = _numbered_frames(FAST + SLOW)
    vfr = write_video(tmp_path / "vfr.mp4", frames, 29.97)
    retime_mp4(vfr, np.diff(VFR_TIMES, append=5.0).tolist())
    cfr = write_video(tmp_path / "cfr.mp4", frames, 29.97)
    model = ["--model", str(tiny_tflite_model), "--detector", "haar"]  # (no faces: the fastest)
    for clip, every in ((vfr, 1), (cfr, 1), (cfr, 4)):
        out = tmp_path / f"{clip.stem}-{every}.mp4"
        args = ["-q", "detect", str(clip), "--out", str(out), "--every", str(every), *model]
        assert main(args) == 0
        assert "error" not in capsys.readouterr().err
        shown, fps = _frame_numbers(out)
        if clip == cfr:  # as before: the sampled frames one for one, at the rate over --every
            assert fps == pytest.approx(29.97 / every, abs=0.01)
            assert shown == list(range(0, FAST + SLOW, every))
            continue
        assert fps == 30.0
        assert abs(len(shown) / fps - 5.0) <= 1 / fps  # the input's duration, within a frame
        # frame k (at k / 30 s) shows the input's last frame at or before k / 30 s
        wanted = [int(np.searchsorted(VFR_TIMES, k / fps + 1e-6, side="right")) - 1
                  for k in range(len(shown))]  # fmt: skip
        assert shown == wanted
        assert shown[60] == FAST and shown[63] == FAST + 1 and shown[-1] == FAST + SLOW - 1


def test_a_browser_recording_that_names_no_frame_rate(tiny_tflite_model, tmp_path, capsys):
    """A WebM made by Chromium's MediaRecorder (tests/assets/make_mediarecorder_webm.py: 50
    frames at about 60/s, then 30 at 10/s) names no frame rate: OpenCV says 1000 fps and
    counts its milliseconds as frames. It is a video of its 80 frames (not 3,700 for the
    progress count), its copy is written at 30/s lasting as long as the recording, each frame
    of the copy showing the frame on screen at its time by the stream's own clock."""
    from deepfer.cli import main
    from deepfer.edge.detect_files import frame_count

    clip = Path(__file__).resolve().parents[1] / "assets" / "mediarecorder_vfr.webm"
    cap = cv2.VideoCapture(str(clip))
    assert cap.get(cv2.CAP_PROP_FPS) == 1000.0  # what makes this file odd
    times = []
    while cap.grab():
        times.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000)
    cap.release()
    assert len(times) == 80 and frame_count(clip) == 0  # (unknown, not 3,7xx)
    out = tmp_path / "copy.mp4"
    args = ["-q", "detect", str(clip), "--out", str(out), "--jsonl", str(tmp_path / "f.jsonl")]
    assert main([*args, "--model", str(tiny_tflite_model), "--detector", "haar"]) == 0
    assert "error" not in capsys.readouterr().err
    shown, fps = _frame_numbers(out)
    assert fps == 30.0
    end = times[-1] + (times[-1] - times[-2])  # the input lasts one gap past its last frame
    assert abs(len(shown) / fps - end) <= 1 / fps
    first_slot = np.floor(np.asarray(times) * fps + 0.5)  # each frame from its nearest slot
    wanted = [int(np.searchsorted(first_slot, k, side="right")) - 1 for k in range(len(shown))]
    mismatched = [k for k, (a, b) in enumerate(zip(shown, wanted)) if a != b]
    assert len(mismatched) <= 2, (mismatched, shown, wanted)  # a frame within a millisecond of
    # half-way between two slots may go to either (the container rounds times to milliseconds)
    assert shown[-1] == 79


def test_frame_slots_repeat_and_drop_by_time():
    """The copy's slots: a frame from the slot nearest its time until the next frame's; one
    half-way between two slots goes to the later (where the container's rounding of times
    puts it either side), so every other frame of 60 fps is dropped at 30, not a random one;
    the last frame lasts until the input's end, at least once."""

    def runs(times, fps, end):
        slots = FrameSlots(fps)
        got = [run for i, t in enumerate(times) for run in slots.add(t, i)]
        return got + slots.end(end)

    jitter = np.array([0, 3e-5, -3e-5, 1e-5, -1e-5, 2e-5, 0])  # 1/30000 s: a timescale's rounding
    sixty = (np.arange(7) / 60 + jitter).tolist()
    assert runs(sixty, 30, 7 / 60) == [(0, 1), (2, 1), (4, 1), (6, 1)]
    assert runs([0.0, 0.1, 0.15, 0.4], 30, 0.5) == [(0, 3), (1, 2), (2, 7), (3, 3)]
    assert runs([i / 25 for i in range(5)], 25, 5 / 25) == [(i, 1) for i in range(5)]
    assert runs([2.0], 30, 2.0) == [(0, 1)]  # one frame: shown once, whatever the end
    assert runs([1.0, 1.5], 10, 1.5) == [(0, 5), (1, 1)]  # times count from the first frame


def test_a_folder_copied_from_a_mac_has_no_extra_inputs(media_dir, tmp_path):
    """``._IMG_0001.JPG`` (macOS metadata beside each file on a USB stick) and ``.DS_Store``
    are not inputs: each ``._`` file was an error line ("cannot read this image")."""
    from deepfer.edge.detect_files import expand_inputs

    shutil.copy(media_dir / "justin.jpg", tmp_path / "IMG_0001.JPG")
    (tmp_path / "._IMG_0001.JPG").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (tmp_path / ".hidden.mp4").write_bytes(b"")
    assert expand_inputs([str(tmp_path)]) == [tmp_path / "IMG_0001.JPG"]


def test_a_model_that_gives_nan_scores_still_gives_json(
    tiny_tflite_model, media_dir, tmp_path, capsys, caplog
):
    """A damaged model file (1 kB of its weights overwritten with NaN: the real interpreter
    then outputs NaN) put NaN, which JSON has no word for, into --json, events and MQTT
    payloads. Its faces now get equal scores ("no idea"), and a warning says once what is
    wrong."""
    from deepfer.cli import main
    from deepfer.edge.model.classifier import EmotionClassifier

    data = bytearray((tiny_tflite_model.parent / "tiny_float32.tflite").read_bytes())
    data[4096 : 4096 + 1024] = np.full(256, np.nan, np.float32).tobytes()
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(bytes(data))
    shutil.copy(tiny_tflite_model.parent / "tiny_float32.json", tmp_path / "broken.json")
    classifier = EmotionClassifier(broken)
    raw = classifier._run(classifier._prepare(np.full((1, *classifier.input_size), 99, np.uint8)))
    assert np.isnan(raw).all()  # the damage is real
    photos = [str(media_dir / "justin.jpg"), str(media_dir / "no-faces.jpg")]
    args = ["detect", *photos, "--detector", "none", "--json", "--model", str(broken)]
    assert main(args) == 0
    text = capsys.readouterr().out

    def no_nan(word):
        raise AssertionError(f"{word} in the JSON")

    faces = json.loads(text, parse_constant=no_nan)
    assert len(faces) == 2
    for face in faces:
        assert list(face["scores"].values()) == pytest.approx([1 / 7] * 7, abs=1e-3)
    said = [r.getMessage() for r in caplog.records if "are not numbers" in r.getMessage()]
    assert len(said) == 1 and "broken.tflite gave scores" in said[0]
