"""``deepfer detect``: faces and their emotions in image and video files.

Images are searched at 640 pixels wide by default (``--detect-width``), videos with the
daemon's pipeline (tracker included) at ``detector.detect_width``. Faces are printed as
text, or as JSON (``messages.face_message`` with ``input``, and ``frame``/``t`` for
videos); ``--out`` writes the annotated image or video.

Recordings to data: ``--csv``/``--jsonl`` write one row per face per frame as it is found
(``recording.py``), ``--summary`` one row per track, ``--plot`` a timeline
(``timeline.py``); ``--every N`` samples frames (each one looked at is detected:
``detector.fps`` is the daemon's), ``--jobs N`` runs one process per input;
a progress bar with ETA is drawn on stderr when it is a terminal (``progress.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from deepfer.edge.annotated_video import AnnotatedVideo
from deepfer.edge.capture.frame import Frame, rotate_image
from deepfer.edge.capture.imagefile import is_hidden, is_photo
from deepfer.edge.capture.inputs import PHOTO, VIDEO, VIDEO_EXTS, input_kind, read_picture
from deepfer.edge.capture.reader import DEFAULT_FPS, FrameReader
from deepfer.edge.capture.sources import OpenCVSource, Source, stated_fps, turned
from deepfer.edge.config import Config
from deepfer.edge.detectors import Detector, make_detector, make_photo_detector
from deepfer.edge.drawing import draw_faces
from deepfer.edge.errors import DeepFERError, InputError, OutputError
from deepfer.edge.messages import face_message
from deepfer.edge.model.classifier import EmotionClassifier, load_classifier
from deepfer.edge.pipeline import FacePipeline
from deepfer.edge.progress import Progress
from deepfer.edge.recording import RowWriter, TrackBook, TrackSummary, write_summary
from deepfer.edge.timeline import import_figure, plot_timeline

log = logging.getLogger(__name__)

#: Suffixes ``--out`` writes videos as (others get ``.mp4`` in an output folder).
VIDEO_OUT_EXTS = (".mp4", ".avi")

#: A picture this small (longer side, pixels) where no face is found, or one face filling
#: most of it, may be a face crop already: the log says how to classify it whole.
CROP_HINT_SIDE = 256
#: ... "filling most of it": the face's box side over the picture's shorter side (on FER2013's
#: 48-px crops BlazeFace's box is 0.64-1.19 of the side for 90% of faces; 0.86 on a 112-px
#: aligned crop).
CROP_HINT_FILL = 0.6


class FileDetector:
    """Detects in files with one config: one classifier, one detector per search width."""

    def __init__(self, config: Config, classifier: EmotionClassifier | None = None):
        self.config = config
        self.classifier = classifier or load_classifier(config.model)
        self._detectors: dict[tuple[int, bool], Detector] = {}
        self._crop_hinted = False

    def pipeline(self, detect_width: int | None, track: bool) -> FacePipeline:
        """Photos (``track`` False) get the detector that finds small faces, ``detect_width``
        None: the photo default; videos the daemon's [detector] at ``detect_width``."""
        key = (detect_width, not track)
        if key not in self._detectors:
            if track:
                video = dataclasses.replace(self.config.detector, detect_width=detect_width)
                self._detectors[key] = make_detector(video)
            else:
                self._detectors[key] = make_photo_detector(self.config.detector, detect_width)
        detector = self._detectors[key]
        # recordings: every frame looked at (``--every``) is detected, not ``detector.fps``
        return FacePipeline.from_config(
            self.config, self.classifier, detector, track=track, every_frame=True
        )

    def image(self, path: Path, detect_width: int | None, target: Path | None) -> list[dict]:
        """Faces in a photo (or another file of one picture: :func:`read_picture`)."""
        image = rotate_image(read_picture(path), self.config.source.rotate)
        pipeline = self.pipeline(detect_width, track=False)
        faces = pipeline.process(image).faces
        self._crop_hint(path, image, faces, pipeline.detector)
        if target is not None:
            try:
                written = cv2.imwrite(str(target), draw_faces(image, faces))
            except cv2.error as exc:
                raise OutputError(f"--out {target}: cannot write the image ({exc.err})") from None
            if not written:
                raise OutputError(f"--out {target}: cannot write the image there")
            log.info("wrote %s", target)
        return [{"input": str(path), **face_message(face)} for face in faces]

    def _crop_hint(self, path: Path, image, faces, detector: Detector) -> None:
        """Small pictures that may be face crops already (a FER2013-style data set): say how to
        classify them whole, as the model was trained (on every such picture with no face
        found; once per run for pictures that one face fills)."""
        h, w = image.shape[:2]
        if max(h, w) > CROP_HINT_SIDE or detector.boxes_are_crops:
            return
        if not faces:
            log.warning(
                "%s: no face found in this %dx%d picture; if it is already a face crop, "
                "--detector none classifies it whole",
                path,
                w,
                h,
            )
        elif (
            not self._crop_hinted
            and len(faces) == 1
            and max(faces[0].box[2:4]) >= CROP_HINT_FILL * min(h, w)
        ):
            self._crop_hinted = True
            log.warning(
                "%s: one face fills this %dx%d picture; if your pictures are face crops "
                "already (like FER2013's), --detector none classifies each whole, as the "
                "model was trained (said once)",
                path,
                w,
                h,
            )

    def video_source(self, path: Path) -> Source:
        """A video file, its frames turned by ``source.rotate``."""
        return turned(OpenCVSource(str(path), live=False), self.config.source.rotate)

    def video_frames(
        self,
        path: Path,
        detect_width: int | None,
        target: Path | None,
        every: int = 1,
        source: Source | None = None,
    ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """``(frame index, faces)`` for every ``every``-th frame of a video, as they are found
        (nothing kept); ``--out`` gets the sampled frames with boxes drawn, each at its time
        in the input (:class:`AnnotatedVideo`: a variable frame rate's copy keeps time)."""
        width = self.config.detector.detect_width if detect_width is None else detect_width
        pipeline = self.pipeline(width, track=True)
        source = source or self.video_source(path)
        every = max(1, every)
        # the frames --every skips are grabbed, not decoded
        reader = FrameReader(source, pixels=None if every == 1 else _nth(every))
        copy: AnnotatedVideo | None = None
        try:
            for frame in reader:
                if frame.index % every:
                    if copy is not None:
                        copy.seen(frame.t)
                    continue
                faces = pipeline.process(frame).faces
                where = {"input": str(path), "frame": frame.index, "t": round(frame.t, 3)}
                yield frame.index, [{**where, **face_message(face)} for face in faces]
                if target is not None:
                    fps = (source.fps or DEFAULT_FPS) / every  # (known once it is open)
                    copy = copy or AnnotatedVideo(target, fps, _drawn)
                    copy.add(frame.t, (frame, faces))
        finally:
            try:
                if copy is not None:
                    copy.close()
                    log.info("wrote %s (%d frames at %g/s)", target, copy.frames, copy.slots.fps)
            finally:
                pipeline.close()

    def video(self, path: Path, detect_width: int | None, target: Path | None) -> list[dict]:
        out: list[dict[str, Any]] = []
        for _, faces in self.video_frames(path, detect_width, target):
            out += faces
        if not out and target is None:
            log.info("%s: no faces", path)
        return out


@dataclass
class Recording:
    """What ``deepfer detect`` writes besides its printout (all optional)."""

    csv: str | None = None
    jsonl: str | None = None
    summary: str | None = None
    plot: str | None = None
    every: int = 1
    jobs: int = 1
    #: progress bar on stderr: None = when stderr is a terminal
    progress: bool | None = None

    @property
    def streaming(self) -> bool:
        """True when faces go to files as they are found (the printout is one line per input)."""
        return bool(self.csv or self.jsonl or self.summary or self.plot)


@dataclass
class InputResult:
    """One input's outcome, small enough to send back from a worker process."""

    path: str
    photo: bool = False
    faces: list[dict[str, Any]] | None = None  # kept only when printed (no --csv etc.)
    frames: int = 0
    rows: int = 0
    tracks: list[TrackSummary] = field(default_factory=list)
    error: str | None = None


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given; a folder becomes its images and videos (sorted, not recursive; photos
    OpenCV cannot decode too, so that each is reported with what to do; hidden files not:
    :func:`~deepfer.edge.capture.imagefile.is_hidden`)."""
    paths: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir()
                if p.is_file() and not is_hidden(p)
                and (is_photo(p) or p.suffix.lower() in VIDEO_EXTS)
            )  # fmt: skip
            if not found:
                log.warning("%s: no images or videos in this folder", path)
            paths += found
        else:
            paths.append(path)
    return paths


def frame_count(path: Path) -> int:
    """Frames in a video as its container says (0 when unknown), 1 for an image. A WebM
    recorded by a browser (MediaRecorder) gives no frame rate: OpenCV reports 1000 fps and
    a count of its duration in milliseconds, which is no count at all (unknown)."""
    if is_photo(path):
        return 1
    cap = cv2.VideoCapture(str(path))
    try:
        if stated_fps(cap) is None:  # then its count is a guess from the duration
            return 0
        return max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    finally:
        cap.release()


def plan_outputs(
    inputs: list[str], paths: list[Path], kinds: list[str], out: str | None
) -> list[Path | None]:
    """Where ``--out`` writes each input's annotated copy, checked before any work (and any
    folder is made only once all is checked).

    ``out`` is a folder when there are several inputs, an input is a folder, ``out`` is an
    existing folder or ends with ``/``: each copy keeps its input's name (a photo whose type
    OpenCV cannot write becomes ``.png``, a video ``.mp4`` unless it is ``.avi``; the same
    name twice gets ``-2``, ``-3``). Otherwise ``out`` is the one input's file, and must be of
    its kind (an image type OpenCV writes; a video ``.mp4`` or ``.avi``). Nothing may
    overwrite an input.
    """
    if not out:
        return [None] * len(paths)
    target = Path(out)
    folder = (
        len(paths) > 1
        or any(Path(name).is_dir() for name in inputs)
        or target.is_dir()
        or out.endswith(("/", os.sep))
    )
    if folder:
        targets, used = [], set()
        for path, kind in zip(paths, kinds, strict=True):
            name = Path(path.name)
            if kind == VIDEO and name.suffix.lower() not in VIDEO_OUT_EXTS:
                name = name.with_suffix(".mp4")
            elif kind == PHOTO and not cv2.haveImageWriter(str(name)):
                name = name.with_suffix(".png")
            stem, n = name.stem, 1
            while name.name.lower() in used:
                n += 1
                name = name.with_name(f"{stem}-{n}{name.suffix}")
            if n > 1:
                log.info("--out: %s is written as %s (the name is taken)", path, name)
            used.add(name.name.lower())
            targets.append(target / name)
    else:
        (path,), (kind,) = paths, kinds
        if kind == VIDEO and target.suffix.lower() not in VIDEO_OUT_EXTS:
            raise OutputError(f"--out {out}: {path} is a video; write it as .mp4 or .avi")
        if kind == PHOTO and not cv2.haveImageWriter(out):
            what = "images of this type" if is_photo(path) else f"{path}'s picture this way"
            raise OutputError(
                f"--out {out}: OpenCV cannot write {what}; use .jpg or .png "
                "(or a folder, ending with /)"
            )
        targets = [target]
    for where in targets:
        if (overwritten := _overwrites(where, paths)) is not None:
            raise OutputError(
                f"--out {out}: would write over the input {overwritten}; choose another "
                f"{'folder' if folder else 'file'}"
            )
    _make_folder(target if folder else target.parent, out)
    return targets


def _overwrites(where: Path, paths: list[Path]) -> Path | None:
    """The input that writing ``where`` would overwrite (the same path, a link to it, or the
    same file by another name on a disk that ignores case), or None."""
    at = _resolved(where)
    for path in paths:
        if _resolved(path) == at:
            return path
        with contextlib.suppress(OSError, ValueError):
            if where.exists() and os.path.samefile(where, path):
                return path
    return None


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # (a loop of links: RuntimeError before Python 3.13)
        return path.absolute()


def _make_folder(folder: Path, out: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"--out {out}: cannot make the folder {folder} ({exc.strerror})"
        ) from None


def _process_input(
    files: FileDetector,
    path: Path,
    kind: str,
    target: Path | None,
    detect_width: int | None,
    rec: Recording,
    writer: RowWriter | None,
    keep_faces: bool,
    on_frame=None,
) -> InputResult:
    """Detects in one input; rows go to ``writer`` as they come. Errors end up in the result."""
    result = InputResult(str(path), photo=kind == PHOTO, faces=[] if keep_faces else None)
    every = max(1, rec.every)
    try:
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        if kind == PHOTO:
            frames = iter([(0, files.image(path, detect_width, target))])
            gap_s = 1.0
        else:
            source = files.video_source(path)
            frames = files.video_frames(path, detect_width, target, every, source)
            gap_s = 0.0  # set once the source is open (it knows its fps)
        book = TrackBook(str(path), frame_gap=3 * every)
        for _, faces in frames:
            if not gap_s:
                gap_s = book.gap_s = 3.0 * every / (source.fps or 30.0)
            result.frames += 1
            for face in faces:
                if writer is not None:
                    writer.write(face)
                book.add(face)
            result.rows += len(faces)
            if keep_faces:
                result.faces += faces
            if on_frame is not None:
                on_frame(1)
        result.tracks = book.summaries()
    except DeepFERError as exc:
        result.error = str(exc)
    return result


# -- parallel inputs (--jobs): one process per input -------------------------------------------

_worker: dict[str, Any] = {}


def _worker_init(config: Config, counter) -> None:
    _worker["files"] = FileDetector(config)
    _worker["counter"] = counter


def _worker_run(
    path: Path,
    kind: str,
    target: Path | None,
    detect_width: int | None,
    rec: Recording,
    parts: Path | None,
    keep_faces: bool,
) -> InputResult:
    files: FileDetector = _worker["files"]
    counter = _worker["counter"]

    def on_frame(n: int) -> None:
        with counter.get_lock():
            counter.value += n

    with contextlib.ExitStack() as stack:
        csv_part = jsonl_part = None
        if parts is not None and rec.csv:
            csv_part = stack.enter_context(open(parts.with_suffix(".csv"), "w", newline=""))
        if parts is not None and rec.jsonl:
            jsonl_part = stack.enter_context(open(parts.with_suffix(".jsonl"), "w"))
        writer = None
        if csv_part or jsonl_part:
            writer = RowWriter(files.classifier.labels, csv_part, jsonl_part, header=False)
        return _process_input(
            files, path, kind, target, detect_width, rec, writer, keep_faces, on_frame
        )


def _open_output(name: str | None, flag: str) -> IO[str] | None:
    if not name:
        return None
    try:
        return open(name, "w", newline="")
    except OSError as exc:
        raise OutputError(f"{flag} {name}: cannot write there ({exc.strerror})") from None


def detect_files(
    config: Config,
    inputs: list[str],
    out: str | None = None,
    detect_width: int | None = None,
    as_json: bool = False,
    rec: Recording | None = None,
) -> int:
    """Detect in every input (files, or folders of images and videos).

    Without recording outputs it prints as it goes (text) or at the end (JSON). With
    ``rec`` outputs (CSV, JSON lines, summary, plot) faces stream to the files and the
    printout is one line per input. A bad input is reported and skipped; returns 1 when
    any failed, else 0.
    """
    rec = rec or Recording()
    files = FileDetector(config)  # a bad model or detector is fatal (raised)
    labels = list(files.classifier.labels)
    paths = expand_inputs(inputs)
    if not paths:
        raise InputError(f"{', '.join(inputs)}: no images or videos to look at")
    if rec.plot:
        import_figure()  # fail before hours of work, not after
    kinds = [input_kind(p) for p in paths]
    targets = plan_outputs(inputs, paths, kinds, out)
    for flag, name in (("--csv", rec.csv), ("--jsonl", rec.jsonl), ("--summary", rec.summary),
                       ("--plot", rec.plot)):  # fmt: skip
        if name and (overwritten := _overwrites(Path(name), paths)) is not None:
            raise OutputError(f"{flag} {name}: would write over the input {overwritten}")

    keep_faces = as_json or not rec.streaming
    csv_file = _open_output(rec.csv, "--csv")
    jsonl_file = _open_output(rec.jsonl, "--jsonl")
    writer = RowWriter(labels, csv_file, jsonl_file) if (csv_file or jsonl_file) else None
    jobs = max(1, min(rec.jobs, len(paths)))
    progress = Progress(None, label="deepfer detect", enabled=rec.progress)
    if progress.enabled:  # count frames only for a bar someone sees
        total = sum(frame_count(p) if k == VIDEO else k == PHOTO for p, k in zip(paths, kinds))
        progress.total = -(-total // max(1, rec.every)) if total else None
    results: list[InputResult] = []
    try:
        if jobs == 1:
            done = 0

            def on_frame(n: int) -> None:
                nonlocal done
                done += n
                progress.update(done)

            for path, kind, target in zip(paths, kinds, targets, strict=True):
                result = _process_input(
                    files, path, kind, target, detect_width, rec, writer, keep_faces, on_frame
                )
                _report(result, as_json, rec.streaming)
                results.append(result)
        else:
            results = _run_parallel(
                config, paths, kinds, targets, detect_width, rec, jobs, keep_faces, writer,
                csv_file, jsonl_file, progress, as_json,
            )  # fmt: skip
    finally:
        progress.close()
        for f in (csv_file, jsonl_file):
            if f is not None:
                f.close()
    tracks = [t for r in results for t in r.tracks]
    if rec.summary:
        try:
            write_summary(Path(rec.summary), tracks, labels)
        except OSError as exc:
            raise OutputError(f"--summary {rec.summary}: cannot write there ({exc})") from None
    if rec.plot:
        plot_timeline(tracks, Path(rec.plot), labels)
        log.info("wrote %s", rec.plot)
    if as_json:
        print(json.dumps([f for r in results for f in (r.faces or [])], indent=1))
    return 1 if any(r.error for r in results) else 0


def _run_parallel(
    config, paths, kinds, targets, detect_width, rec, jobs, keep_faces, writer,
    csv_file, jsonl_file, progress, as_json,
) -> list[InputResult]:  # fmt: skip
    """Inputs in ``jobs`` processes; their rows are appended in input order as each input
    finishes (from part files, streamed: the parent never holds a recording's rows)."""
    import multiprocessing as mp
    import shutil
    import tempfile
    import time
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("spawn")  # no forked OpenCV/TFLite threads
    counter = ctx.Value("q", 0)
    results: list[InputResult] = []
    with (
        tempfile.TemporaryDirectory(prefix="deepfer-detect-") as tmp,
        ProcessPoolExecutor(
            jobs, mp_context=ctx, initializer=_worker_init, initargs=(config, counter)
        ) as pool,
    ):
        futures = [
            pool.submit(
                _worker_run,
                path,
                kinds[i],
                targets[i],
                detect_width,
                rec,
                Path(tmp) / f"part{i:05d}" if writer is not None else None,
                keep_faces,
            )  # fmt: skip
            for i, path in enumerate(paths)
        ]
        for i, future in enumerate(futures):
            while not future.done():
                progress.update(counter.value)
                time.sleep(0.1)
            result = future.result()
            progress.update(counter.value)
            part = Path(tmp) / f"part{i:05d}"
            for f, suffix in ((csv_file, ".csv"), (jsonl_file, ".jsonl")):
                if f is not None and part.with_suffix(suffix).exists():
                    with open(part.with_suffix(suffix)) as src:
                        shutil.copyfileobj(src, f)
                    part.with_suffix(suffix).unlink()
            if writer is not None:
                writer.rows += result.rows
            _report(result, as_json, rec.streaming)
            results.append(result)
    return results


def _report(result: InputResult, as_json: bool, streaming: bool) -> None:
    if result.error:
        print(f"deepfer detect: error: {result.error}", file=sys.stderr)
        return
    if as_json:
        return
    if streaming and result.photo:
        print(f"{result.path}: {result.rows} face{'s' if result.rows != 1 else ''}")
    elif streaming:
        n = len(result.tracks)
        print(
            f"{result.path}: {result.frames} frame{'s' if result.frames != 1 else ''}, "
            f"{result.rows} face{'s' if result.rows != 1 else ''}, "
            f"{n} track{'s' if n != 1 else ''}"
        )
    else:
        print_faces(Path(result.path), result.faces or [])


def _drawn(item: tuple[Frame, list]) -> np.ndarray:
    """An annotated copy's picture of a frame: its faces drawn (:class:`AnnotatedVideo`)."""
    frame, faces = item
    return draw_faces(frame.bgr(), faces)


def print_faces(path: Path, faces: list[dict[str, Any]]) -> None:
    """Faces of one input as text: each face of an image, each track of a video that
    started (as the daemon publishes them)."""
    if not faces:
        print(f"{path}: no faces")
        return
    if "frame" not in faces[0]:
        print(f"{path}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
        for face in faces:
            top = sorted(face["scores"].items(), key=lambda kv: -kv[1])[1:3]
            others = ", ".join(f"{k} {v:.0%}" for k, v in top)
            print(f"  {face['emotion']:<8} {face['score']:.0%}  box {face['box']}  ({others})")
        return
    n = len({f["frame"] for f in faces})
    started = {f["track_id"] for f in faces if f.get("confirmed", True)}
    none = "" if started else "; none seen often enough to start a track (tracker.min_hits)"
    print(f"{path}: faces in {n} frame{'s' if n != 1 else ''}{none}")
    tracks: dict[int, dict[str, int]] = {}
    for face in faces:
        hist = tracks.setdefault(face["track_id"], {})
        hist[face["emotion"]] = hist.get(face["emotion"], 0) + 1
    for track_id, hist in sorted(tracks.items()):
        if track_id not in started:  # never started: a face seen once or twice, not listed
            continue
        total = sum(hist.values())
        parts = ", ".join(
            f"{k} {v / total:.0%}" for k, v in sorted(hist.items(), key=lambda kv: -kv[1])
        )
        print(f"  track #{track_id}: {total} frames: {parts}")


def _nth(every: int):
    """For ``FrameReader(pixels=...)``: yes for frames 0, every, 2 * every... (it is asked
    about each frame once, in order)."""
    count = itertools.count()
    return lambda t: next(count) % every == 0
