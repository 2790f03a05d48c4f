"""Recordings to data: `deepfer detect VIDEO --csv/--jsonl/--summary/--plot/--every/--jobs`.

The CSV is checked row by row against `--json` on the real video (woman2.mp4), with a
shipped model, in subprocesses as a user runs them. What is checked here is the files, not the
readings: the runs of the whole video use the single model (half the pair's cost a frame)."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import sys

import cv2
import pytest
from cli_subprocess import deepfer

from deepfer.edge.errors import OutputError
from deepfer.edge.labels import LABELS
from deepfer.edge.progress import Progress, format_seconds
from deepfer.edge.recording import BASE_COLUMNS, TrackBook

#: the shipped single model: the recordings' checks do not depend on the model
SINGLE = ("--model", "deepfer-single_int8")


@pytest.fixture(scope="module")
def video(media_dir):
    path = media_dir / "woman2.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="module")
def json_run(video, tmp_path_factory):
    """One `--json` run of the video that also writes the CSV summary (the video takes seconds
    per run on a slow CPU: the module runs it twice, this and `recorded`)."""
    summary = tmp_path_factory.mktemp("json_run") / "tracks.csv"
    proc = deepfer("detect", video, *SINGLE, "--json", "--summary", summary, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    faces = json.loads(proc.stdout)
    assert len(faces) > 400  # one face in (nearly) every one of the 464 frames
    return faces, summary


@pytest.fixture(scope="module")
def json_faces(json_run):
    return json_run[0]


@pytest.fixture(scope="module")
def recorded(video, tmp_path_factory):
    """One run of the video writing the rows (CSV, JSON lines) and the JSON summary, as a user
    records a video to data: its process, and the three files."""
    folder = tmp_path_factory.mktemp("recorded")
    out_csv, out_jsonl, summary = (
        folder / "faces.csv",
        folder / "faces.jsonl",
        folder / "tracks.json",
    )
    proc = deepfer(
        "detect", video, *SINGLE, "--csv", out_csv, "--jsonl", out_jsonl, "--summary", summary
    )
    return proc, out_csv, out_jsonl, summary


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_and_jsonl_match_json_row_by_row(video, json_faces, recorded):
    proc, out_csv, out_jsonl, _ = recorded
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{video}: 464 frames, {len(json_faces)} faces, 1 track"
    assert "\r" not in proc.stderr and "ETA" not in proc.stderr  # no bar off a terminal
    with open(out_csv, newline="") as f:
        assert next(csv.reader(f)) == [*BASE_COLUMNS, *LABELS]
    rows = read_csv(out_csv)
    lines = [json.loads(line) for line in out_jsonl.read_text().splitlines()]
    assert len(rows) == len(lines) == len(json_faces)
    for row, line, face in zip(rows, lines, json_faces):
        x, y, w, h = face["box"]
        expected = {
            "input": face["input"],
            "frame": face["frame"],
            "t": face["t"],
            "track_id": face["track_id"],
            "confirmed": face["confirmed"],
            "x": x,
            "y": y,
            "w": w,
            "h": h,
            "emotion": face["emotion"],
            "score": face["score"],
            **face["scores"],
        }
        assert line == expected
        assert row == {k: str(v) for k, v in expected.items()}


def test_summary_agrees_with_the_rows(json_run, recorded):
    """The JSON summary (written beside the CSV rows) and the CSV summary (beside --json) hold
    what the rows say of each started track."""
    json_faces, summary_csv = json_run
    proc, _, _, summary_json = recorded
    assert proc.returncode == 0, proc.stderr
    tracks = json.loads(summary_json.read_text())
    ids = sorted({f["track_id"] for f in json_faces if f["confirmed"]})
    assert ids == [1]
    assert [t["track_id"] for t in tracks] == ids
    for track in tracks:
        faces = [f for f in json_faces if f["track_id"] == track["track_id"]]
        assert track["frames"] == len(faces)
        assert track["first_t"] == faces[0]["t"] and track["last_t"] == faces[-1]["t"]
        assert track["dwell_s"] == pytest.approx(faces[-1]["t"] - faces[0]["t"], abs=1e-3)
        counts = {k: sum(f["emotion"] == k for f in faces) for k in LABELS}
        assert track["dominant_emotion"] == max(counts, key=counts.get)
        for k in LABELS:
            mean = sum(f["scores"][k] for f in faces) / len(faces)
            assert track["mean_scores"][k] == pytest.approx(mean, abs=1e-4)
    rows = read_csv(summary_csv)
    assert [int(r["track_id"]) for r in rows] == ids
    assert rows[0]["dominant_emotion"] == tracks[0]["dominant_emotion"]
    assert float(rows[0]["mean_happy"]) == tracks[0]["mean_scores"]["happy"]


def test_a_face_seen_once_is_in_the_rows_but_no_track(media_dir, tmp_path):
    """Justin's photo flashes up for one frame of 30 in an empty room: the frame's row says
    the face was not confirmed (its track never started), and no summary, timeline or
    printout lists a track for it, as the daemon would publish none."""
    room = cv2.resize(cv2.imread(str(media_dir / "no-faces.jpg")), (640, 480))
    justin = cv2.resize(cv2.imread(str(media_dir / "justin.jpg")), (640, 480))
    clip = tmp_path / "flash.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
    for i in range(30):
        writer.write(justin if i == 15 else room)
    writer.release()
    proc = deepfer("detect", clip, "--json")
    assert proc.returncode == 0, proc.stderr
    faces = json.loads(proc.stdout)
    assert [(f["frame"], f["confirmed"]) for f in faces] == [(15, False)]
    out, summary = tmp_path / "rows.csv", tmp_path / "tracks.json"
    proc = deepfer("detect", clip, "--csv", out, "--summary", summary)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{clip}: 30 frames, 1 face, 0 tracks"
    assert [(r["frame"], r["confirmed"]) for r in read_csv(out)] == [("15", "False")]
    assert json.loads(summary.read_text()) == []
    proc = deepfer("detect", clip)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        f"{clip}: faces in 1 frame; none seen often enough to start a track (tracker.min_hits)"
    )


def test_every_samples_frames(video, tmp_path):
    out = tmp_path / "every3.csv"
    proc = deepfer("detect", video, *SINGLE, "--csv", out, "--every", "3")
    assert proc.returncode == 0, proc.stderr
    frames = [int(r["frame"]) for r in read_csv(out)]
    assert frames and all(i % 3 == 0 for i in frames)
    assert len(set(frames)) > 0.9 * math.ceil(464 / 3)
    assert f"{video}: {math.ceil(464 / 3)} frames" in proc.stdout
    bad = deepfer("detect", video, "--csv", out, "--every", "0")
    assert bad.returncode == 2 and "--every 0: must be 1 or more" in bad.stderr


def test_folder_in_parallel_equals_one_by_one(video, tmp_path):
    """--jobs 2 on a folder (a clip, its mirror, an unreadable file): rows in input order,
    the same as each input on its own; the bad file is reported, the others written."""
    folder = tmp_path / "in"
    folder.mkdir()
    cap = cv2.VideoCapture(str(video))
    writers = [
        cv2.VideoWriter(str(folder / n), cv2.VideoWriter_fourcc(*"mp4v"), 30, (596, 336))
        for n in ("a.mp4", "b.mp4")
    ]
    for _ in range(60):
        ok, frame = cap.read()
        assert ok
        writers[0].write(frame)
        writers[1].write(cv2.flip(frame, 1))
    for w in writers:
        w.release()
    (folder / "c.mp4").write_bytes(b"not a video")
    shutil.copy(video.parent / "justin.jpg", folder / "d.jpg")
    out, summary = tmp_path / "all.csv", tmp_path / "all.json"
    proc = deepfer("detect", folder, *SINGLE, "--csv", out, "--summary", summary, "--jobs", "2")
    assert proc.returncode == 1  # c.mp4 failed
    assert "c.mp4: cannot open it as a video file" in proc.stderr
    assert f"{folder / 'a.mp4'}: 60 frames" in proc.stdout and "d.jpg: 1 face\n" in proc.stdout
    rows = read_csv(out)
    expected = []
    for name in ("a.mp4", "b.mp4", "d.jpg"):
        single = tmp_path / f"{name}.csv"
        assert deepfer("detect", folder / name, *SINGLE, "--csv", single).returncode == 0
        expected += read_csv(single)
    assert rows == expected
    assert [r["input"].rsplit("/", 1)[1] for r in rows][::60][:2] == ["a.mp4", "b.mp4"]
    tracks = json.loads(summary.read_text())
    assert {t["input"].rsplit("/", 1)[1] for t in tracks} == {"a.mp4", "b.mp4"}


def test_plot_draws_the_timeline(video, tmp_path):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "timeline.png"
    proc = deepfer("detect", video, "--plot", plot, "--every", "2")
    assert proc.returncode == 0, proc.stderr
    img = cv2.imread(str(plot))
    assert img is not None and img.shape[1] == 1000
    from deepfer.edge.drawing import PALETTE

    happy = (abs(img.astype(int) - PALETTE["happy"]).max(axis=-1) < 30).sum()
    assert happy > 2000, "the happy segments of track #1 are not drawn"


def test_plot_of_no_tracks_draws_an_empty_chart_quietly(tmp_path):
    """A photo (or a clip with no face) has no tracks: an empty chart, no matplotlib warning."""
    pytest.importorskip("matplotlib")
    import warnings

    from deepfer.edge.timeline import plot_timeline

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_timeline([], tmp_path / "none.png", LABELS)
    assert cv2.imread(str(tmp_path / "none.png")) is not None


def test_plot_without_matplotlib_is_clear(monkeypatch):
    from deepfer.edge.timeline import import_figure

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(OutputError, match="--plot needs matplotlib.*pip install matplotlib"):
        import_figure()


def test_bad_output_path_is_clear(video, tmp_path):
    proc = deepfer("detect", video, "--csv", tmp_path / "missing" / "x.csv")
    assert proc.returncode == 2
    assert f"--csv {tmp_path / 'missing' / 'x.csv'}: cannot write there" in proc.stderr


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal():
    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = Progress(100, label="x", stream=stream, interval_s=0)
        bar.start -= 2.0  # two seconds in
        bar.update(50)
        bar.close()
    assert pipe.getvalue() == ""
    text = tty.getvalue()
    assert text.startswith("\r") and text.endswith("\n")
    assert "50/100 frames" in text and "ETA 00:02" in text and "#" * 15 + "-" * 15 in text
    assert format_seconds(3725) == "1:02:05"


def test_a_segment_runs_on_over_the_long_gaps_of_a_variable_frame_rate():
    """A phone that drops from 30 to 5 frames a second: consecutive frames 0.2 s apart are no
    break in the emotion (the gap in seconds, 3 frames at the nominal 30/s, would split every
    frame into a segment of its own); a track missing for longer than 3 frames still is."""
    scores = dict.fromkeys(LABELS, 0.0)
    book = TrackBook("phone.mp4", gap_s=0.1, frame_gap=3)
    for frame in (0, 1, 2, 3, 10, 11):
        book.add({"track_id": 1, "t": 0.2 * frame, "frame": frame, "emotion": "happy",
                  "scores": scores})  # fmt: skip
    (track,) = book.summaries()
    assert [x for s in track.segments for x in s[1:]] == pytest.approx([0.0, 0.6, 2.0, 2.2])
