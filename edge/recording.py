"""Recordings to data: faces per frame as CSV / JSON lines, a summary per track, a timeline.

``deepfer detect VIDEO --csv FILE`` (``--jsonl``, ``--summary``, ``--plot``) streams: each
frame's faces are written as they are found and never kept, so memory stays flat on an
hours-long recording. What is kept is per *track* (a few numbers each) and the track's
emotion as run-length segments (one entry per debounced change), both small.

One row per face per frame: ``input, frame, t, track_id, confirmed, x, y, w, h, emotion,
score`` and one column per label (the model's seven scores), rounded as ``--json`` rounds
them, so the two agree row by row. ``confirmed`` is False while the face's track has not
started (the daemon publishes such a face nowhere); a track that never starts, usually a
false face seen once or twice, is left out of the summaries. Images give rows with frame 0,
t 0 and no track id.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

#: Columns before the score columns (one per label) of a CSV row.
BASE_COLUMNS = (
    "input",
    "frame",
    "t",
    "track_id",
    "confirmed",
    "x",
    "y",
    "w",
    "h",
    "emotion",
    "score",
)


def face_row(face: dict[str, Any]) -> dict[str, Any]:
    """A ``--json`` face (``input``, ``frame``, ``t``, ``track_id``, ``box``, ...) as a row."""
    x, y, w, h = face["box"]
    row = {
        "input": face["input"],
        "frame": face.get("frame", 0),
        "t": face.get("t", 0.0),
        "track_id": face.get("track_id"),
        "confirmed": face.get("confirmed"),
        "x": x,
        "y": y,
        "w": w,
        "h": h,
        "emotion": face["emotion"],
        "score": face["score"],
    }
    row.update(face["scores"])
    return row


class RowWriter:
    """Writes rows to an open CSV and/or JSON-lines file, one face at a time."""

    def __init__(
        self,
        labels: Sequence[str],
        csv_file: IO[str] | None = None,
        jsonl_file: IO[str] | None = None,
        header: bool = True,
    ):
        self.labels = list(labels)
        self.columns = [*BASE_COLUMNS, *self.labels]
        self._csv = (
            csv.DictWriter(csv_file, self.columns, lineterminator="\n") if csv_file else None
        )
        self._jsonl = jsonl_file
        if self._csv is not None and header:
            self._csv.writeheader()
        self.rows = 0

    def write(self, face: dict[str, Any]) -> None:
        row = face_row(face)
        if self._csv is not None:
            self._csv.writerow(row)
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(row) + "\n")
        self.rows += 1


@dataclass
class TrackSummary:
    """One track of one input: times, frames, emotion histogram, score sums and segments."""

    input: str
    track_id: int
    first_t: float
    last_t: float
    frames: int = 0
    histogram: Counter = field(default_factory=Counter)
    score_sums: dict[str, float] = field(default_factory=dict)
    #: The track's emotion over time: ``[emotion, t_start, t_end]`` runs.
    segments: list[list] = field(default_factory=list)
    #: Whether the track started (a face of it was confirmed); one that never did is left out.
    confirmed: bool = False
    _last_frame: int | None = field(default=None, repr=False)

    def add(
        self,
        t: float,
        emotion: str,
        scores: dict[str, float],
        gap_s: float,
        frame: int | None = None,
        frame_gap: int = 0,
    ) -> None:
        """One face of the track at ``t``. It continues the last segment when the emotion is
        the same and it comes at most ``gap_s`` seconds, or ``frame_gap`` frames of the input,
        after it (frames: a video whose frame rate varies has gaps longer than its nominal
        rate says, and they are no break in the track)."""
        near = frame is not None and self._last_frame is not None
        near = near and frame - self._last_frame <= frame_gap
        self.last_t, self._last_frame = t, frame
        self.frames += 1
        self.histogram[emotion] += 1
        for k, v in scores.items():
            self.score_sums[k] = self.score_sums.get(k, 0.0) + float(v)
        last = self.segments[-1] if self.segments else None
        if last is not None and last[0] == emotion and (t - last[2] <= gap_s or near):
            last[2] = t
        else:
            self.segments.append([emotion, t, t])

    def as_dict(self) -> dict[str, Any]:
        n = max(1, self.frames)
        return {
            "input": self.input,
            "track_id": self.track_id,
            "first_t": round(self.first_t, 3),
            "last_t": round(self.last_t, 3),
            "dwell_s": round(max(0.0, self.last_t - self.first_t), 3),
            "frames": self.frames,
            "dominant_emotion": self.histogram.most_common(1)[0][0] if self.histogram else None,
            "histogram": dict(self.histogram),
            "mean_scores": {k: round(v / n, 4) for k, v in self.score_sums.items()},
        }


class TrackBook:
    """Summaries of the tracks of one input, fed one face at a time."""

    def __init__(self, input_name: str, gap_s: float = 0.5, frame_gap: int = 0):
        self.input = input_name
        self.gap_s = gap_s
        #: Frames of the input a segment bridges whatever the time (see TrackSummary.add).
        self.frame_gap = frame_gap
        self.tracks: dict[int, TrackSummary] = {}

    def add(self, face: dict[str, Any]) -> None:
        track_id = face.get("track_id")
        if track_id is None:
            return
        t = float(face["t"])
        summary = self.tracks.get(track_id)
        if summary is None:
            summary = self.tracks[track_id] = TrackSummary(self.input, track_id, t, t)
        frame = face.get("frame")
        summary.add(t, face["emotion"], face["scores"], self.gap_s, frame, self.frame_gap)
        summary.confirmed = summary.confirmed or bool(face.get("confirmed", True))

    def summaries(self) -> list[TrackSummary]:
        """The tracks that started, in id order (with their frames before the start)."""
        return [self.tracks[k] for k in sorted(self.tracks) if self.tracks[k].confirmed]


SUMMARY_COLUMNS = (
    "input",
    "track_id",
    "first_t",
    "last_t",
    "dwell_s",
    "frames",
    "dominant_emotion",
)


def write_summary(path: Path, tracks: Sequence[TrackSummary], labels: Sequence[str]) -> None:
    """The per-track summary: JSON for ``.json``, else CSV (``mean_<label>`` columns)."""
    rows = [t.as_dict() for t in tracks]
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(rows, indent=1) + "\n")
        return
    columns = [*SUMMARY_COLUMNS, *(f"mean_{k}" for k in labels)]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            row.update({f"mean_{k}": row["mean_scores"].get(k) for k in labels})
            writer.writerow(row)
