"""``deepfer detect``: faces and their emotions in image and video files.

Images are searched at 640 pixels wide by default (``--detect-width``), videos with the
daemon's pipeline (tracker included) at ``detector.detect_width``. Faces are printed as
text, or as JSON (``messages.face_message`` with ``input``, and ``frame``/``t`` for
videos); ``--out`` writes the annotated image or video.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
from pathlib import Path
from typing import Any

import cv2

from deepfer.edge.capture.reader import FrameReader
from deepfer.edge.capture.sources import IMAGE_EXTS, OpenCVSource
from deepfer.edge.config import Config
from deepfer.edge.detectors import Detector, make_detector
from deepfer.edge.drawing import draw_faces
from deepfer.edge.errors import DeepFERError, InputError, OutputError
from deepfer.edge.messages import face_message
from deepfer.edge.model.classifier import EmotionClassifier, load_classifier
from deepfer.edge.pipeline import FacePipeline

log = logging.getLogger(__name__)

#: Images are scaled to this width before the face search unless --detect-width says otherwise.
IMAGE_DETECT_WIDTH = 640


class FileDetector:
    """Detects in files with one config: one classifier, one detector per search width."""

    def __init__(self, config: Config, classifier: EmotionClassifier | None = None):
        self.config = config
        self.classifier = classifier or load_classifier(config.model)
        self._detectors: dict[tuple[int, bool], Detector] = {}

    def pipeline(self, detect_width: int, track: bool) -> FacePipeline:
        """Photos (``track`` False) get the detector that finds small faces (``auto``)."""
        key = (detect_width, not track)
        if key not in self._detectors:
            detector_cfg = copy.copy(self.config.detector)
            detector_cfg.detect_width = detect_width
            self._detectors[key] = make_detector(detector_cfg, photos=not track)
        detector = self._detectors[key]
        return FacePipeline.from_config(self.config, self.classifier, detector, track=track)

    def image(self, path: Path, detect_width: int | None, target: Path | None) -> list[dict]:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"{path}: cannot read this image (missing, corrupt or not an image)")
        width = IMAGE_DETECT_WIDTH if detect_width is None else detect_width
        faces = self.pipeline(width, track=False).process(image).faces
        if target is not None:
            if not cv2.imwrite(str(target), draw_faces(image, faces)):
                raise OutputError(f"{target}: could not write the image (unknown extension?)")
            log.info("wrote %s", target)
        return [{"input": str(path), **face_message(face)} for face in faces]

    def video(self, path: Path, detect_width: int | None, target: Path | None) -> list[dict]:
        width = self.config.detector.detect_width if detect_width is None else detect_width
        pipeline = self.pipeline(width, track=True)
        source = OpenCVSource(str(path), live=False)
        reader = FrameReader(source)
        writer = None
        out: list[dict[str, Any]] = []
        try:
            for frame in reader:
                faces = pipeline.process(frame).faces
                for face in faces:
                    where = {"input": str(path), "frame": frame.index, "t": round(frame.t, 3)}
                    out.append({**where, **face_message(face)})
                if target is not None:
                    writer = writer or _video_writer(target, source.fps or 30.0, frame.size)
                    writer.write(draw_faces(frame.bgr(), faces))
        finally:
            if writer is not None:
                writer.release()
                log.info("wrote %s", target)
        pipeline.close()
        if reader.opened and not out and target is None:
            log.info("%s: no faces", path)
        return out


def detect_files(
    config: Config,
    inputs: list[str],
    out: str | None = None,
    detect_width: int | None = None,
    as_json: bool = False,
) -> int:
    """Detect in every input; prints as it goes (text) or at the end (JSON). A bad input is
    reported and skipped; returns 1 when any failed, else 0."""
    files = FileDetector(config)  # a bad model or detector is fatal (raised)
    target_dir = Path(out) if out else None
    if target_dir is not None and len(inputs) > 1:
        target_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    failed = 0
    for name in inputs:
        path = Path(name)
        target = None
        if target_dir is not None:
            target = target_dir / path.name if len(inputs) > 1 else target_dir
        try:
            if not path.is_file():
                raise InputError(f"{path}: no such file")
            if path.suffix.lower() in IMAGE_EXTS:
                faces = files.image(path, detect_width, target)
            else:
                faces = files.video(path, detect_width, target)
        except DeepFERError as exc:
            print(f"deepfer detect: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        results += faces
        if not as_json:
            print_faces(path, faces)
    if as_json:
        print(json.dumps(results, indent=1))
    return 1 if failed else 0


def _video_writer(target: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if str(target).lower().endswith(".avi") else "mp4v"))
    writer = cv2.VideoWriter(str(target), fourcc, fps, size)
    if not writer.isOpened():
        raise OutputError(f"{target}: cannot write a video here (use .mp4 or .avi)")
    return writer


def print_faces(path: Path, faces: list[dict[str, Any]]) -> None:
    """Faces of one input as text: each face of an image, each track of a video."""
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
    frames = {f["frame"] for f in faces}
    print(f"{path}: faces in {len(frames)} frames")
    tracks: dict[int, dict[str, int]] = {}
    for face in faces:
        hist = tracks.setdefault(face["track_id"], {})
        hist[face["emotion"]] = hist.get(face["emotion"], 0) + 1
    for track_id, hist in sorted(tracks.items()):
        total = sum(hist.values())
        parts = ", ".join(
            f"{k} {v / total:.0%}" for k, v in sorted(hist.items(), key=lambda kv: -kv[1])
        )
        print(f"  track #{track_id}: {total} frames: {parts}")
