"""Several faces in one video: a camera panning and zooming over a group photo, shaking over a
dimming one, and dark frames between the detections, scored against known face positions.

Four 12-second, 25 fps videos (MJPG, made in a temporary folder; the shake is seeded, so
every run makes the same frames):

* ``pan``: a 640x360 window moving left to right over ``t1.jpg`` (a group of 6, from
  ``registry_photos.py``) scaled to 0.8 (faces 78-99 px), easing in and out: faces enter on
  the right and leave on the left;
* ``zoom``: the whole of ``t1.jpg`` at 640 px wide, zoomed into its centre to 2x and back:
  faces grow, leave at the edges and come back;
* ``shake``: ``12_angry_men.jpg`` (``--media``) at 960 px wide, shifted up to 6 px by a
  smoothed random walk, its brightness going 100% -> 50% -> 100% over 8 s;
* ``pan-dark``: the pan with every 5th frame at 4% brightness, the ones between the
  daemon's detections (frames 4, 9, 14, ...; it detects on 0, 5, 10, ...), and the camera
  stalled for 1 s at 5 s (the same frame 25 times), 326 frames.

Ground truth comes from the geometry: the faces that the photo detector
(``make_photo_detector``, as ``deepfer detect`` searches a photo) finds on the whole photo,
mapped through each frame's transform, with the share of each face inside the frame.

Each video goes through the edge pipeline in this process two ways: ``detect``, as
``deepfer detect`` runs a video (a detection on every frame), and ``daemon``, as
``deepfer run`` schedules detections (``detector.fps`` 5, the frames between carried by the
tracker and not decoded); with BlazeFace (the default backend) and Haar, and CenterFace on
the pan. Per run:

* ``recall``: share of the fully visible faces (on frames that are not dark) with a box;
* ``false``: boxes that are on no known face (a detection matches a face when its centre is
  inside the face's box, cut to the frame and grown by 25%, and its size is 0.4-2.5x the
  face's; a second box on a matched face overlapping it by IoU >= 0.3 is a duplicate, not
  false; on ``shake`` two half-hidden faces the photo detector misses count as known) and
  ``false_tracks``, the tracks those boxes belong to;
* ``ids_per_face`` / ``id_switches``: track ids per stretch of a face in view (at least half
  of it) and changes of id within one; ``entry_s``: seconds from a face's first pixel in
  view to its first box (faces that enter or are cut by the edge at the start; median and
  max), ``entries_missed``: entries never boxed;
* ``label_changes_per_s``: emotion label changes per second per track (tracks of 1 s or
  more; mean and max);
* ``fps_per_cpu_s``: frames per CPU-second of the pipeline and the reader (model loading
  left out), also as a ratio to BlazeFace ``detect`` on the same video, same run.

Figures are medians over ``--repeats`` runs (run interleaved, so the machine's load falls on
all alike; everything but the speed repeats exactly).

    python benchmarks/registry_photos.py /tmp/registry-photos
    python benchmarks/bench_multiface_video.py --photos /tmp/registry-photos \\
        --media $DEEPFER_DATA/media --json benchmarks/results/multiface/bench_multiface_video.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from results_file import write_json

from deepfer.edge.boxes import iou
from deepfer.edge.capture.reader import FrameReader
from deepfer.edge.capture.sources import OpenCVSource
from deepfer.edge.config import Config
from deepfer.edge.detectors import files, make_detector, make_photo_detector
from deepfer.edge.model.classifier import load_classifier
from deepfer.edge.pipeline import FacePipeline

FPS = 25
SECONDS = 12.0
PAN_SIZE = (640, 360)
PAN_SCALE = 0.8  # t1.jpg (1280x886) -> 1024x709
PAN_Y = 40.0
DARK = 0.04  # brightness of pan-dark's dark frames
#: Faces on 12_angry_men.jpg that the photo detector misses but a person sees, half hidden
#: (photo pixels x, y, w, h, by eye): boxes there are not false.
MEN_HIDDEN = [(60, 70, 130, 140), (355, 170, 70, 150)]

FULL = 0.999  # share of a face in the frame for "fully visible"
IN_VIEW = 0.5  # ... for the face to be in view (track ids, id switches)

#: video -> detector backends run on it
RUNS = {
    "pan": ("blazeface", "haar", "centerface"),
    "zoom": ("blazeface", "haar"),
    "shake": ("blazeface", "haar"),
    "pan-dark": ("blazeface", "haar"),
}
MODES = ("detect", "daemon")


@dataclass
class Video:
    name: str
    path: Path
    size: tuple[int, int]
    #: per frame: {"dark": bool, "faces": [(box, share in the frame)], "hidden": [box]}
    truth: list[dict]


# -- the videos ---------------------------------------------------------------------------


def photo_faces(path: Path) -> list[tuple[float, ...]]:
    """The faces of a photo as ``deepfer detect`` finds them, left to right."""
    detector = make_photo_detector(Config().detector)
    boxes = [tuple(float(v) for v in f.box) for f in detector.detect(cv2.imread(str(path)))]
    return sorted(boxes)


def through(m: np.ndarray, box) -> tuple[float, ...]:
    """A box through a scale-and-shift transform (2x3, no rotation)."""
    x, y, w, h = box
    return (m[0, 0] * x + m[0, 2], m[1, 1] * y + m[1, 2], m[0, 0] * w, m[1, 1] * h)


def share_inside(box, size) -> float:
    x, y, w, h = box
    ix = max(0.0, min(x + w, size[0]) - max(x, 0.0))
    iy = max(0.0, min(y + h, size[1]) - max(y, 0.0))
    return ix * iy / (w * h)


def ease(t: float) -> float:
    """0 -> 1 for t 0 -> 1, slow at both ends."""
    return 0.5 - 0.5 * np.cos(np.pi * min(max(t, 0.0), 1.0))


def write_video(name, folder, photo, boxes, size, steps, hidden=(), border=cv2.BORDER_CONSTANT):
    """Renders ``photo`` through each step's ``(transform, brightness)`` into an MJPG .avi
    and records where its faces are."""
    path = folder / f"{name}.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, size)
    truth = []
    for m, gain in steps:
        if m[0, 0] < 0.95:  # warpAffine has no area filter: blur before shrinking
            sigma = 0.45 * (1 / m[0, 0] - 1) + 0.2
            image = cv2.GaussianBlur(photo, (0, 0), float(sigma))
        else:
            image = photo
        frame = cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR, borderMode=border)
        if gain != 1.0:
            frame = np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        writer.write(frame)
        faces = [through(m, b) for b in boxes]
        truth.append(
            {
                "dark": gain <= DARK,
                "faces": [(b, share_inside(b, size)) for b in faces],
                "hidden": [through(m, b) for b in hidden],
            }
        )
    writer.release()
    return Video(name, path, size, truth)


def shift(scale: float, dx: float, dy: float) -> np.ndarray:
    return np.array([[scale, 0, dx], [0, scale, dy]], np.float32)


def pan_steps(photo_width: int, dark: bool):
    n = int(SECONDS * FPS) + 1
    source = list(range(n))
    if dark:  # the camera stalls for 1 s at 5 s
        at = int(5 * FPS)
        source[at + 1 : at + 1] = [at] * FPS
    travel = round(photo_width * PAN_SCALE) - PAN_SIZE[0]
    for k, i in enumerate(source):
        x0 = travel * ease(i / FPS / SECONDS)
        yield shift(PAN_SCALE, -x0, -PAN_Y), DARK if dark and k % 5 == 4 else 1.0


def zoom_steps(photo_size, size):
    w, h = photo_size
    base = size[0] / w
    for i in range(int(SECONDS * FPS) + 1):
        t = i / FPS / SECONDS
        s = base * (1 + ease(2 * t if t <= 0.5 else 2 - 2 * t))
        yield shift(s, size[0] / 2 - s * w / 2, size[1] / 2 - s * h / 2), 1.0


def shake_steps(scale: float, seed: int, px: float = 6.0):
    n = int(SECONDS * FPS) + 1
    walk = np.random.default_rng(seed).uniform(-1, 1, (n + 8, 2))
    walk = np.stack([np.convolve(walk[:, j], np.ones(5) / 5, mode="same") for j in (0, 1)], 1)
    walk = walk[4 : 4 + n]
    walk *= px / np.abs(walk).max(0)
    for i, (dx, dy) in enumerate(walk):
        brightness = 0.75 + 0.25 * np.cos(2 * np.pi * i / FPS / 8.0)
        yield shift(scale, dx, dy), float(brightness)


def make_videos(photos: Path, media: Path, folder: Path, seed: int) -> dict[str, Video]:
    t1 = cv2.imread(str(photos / "t1.jpg"))
    men = cv2.imread(str(media / "12_angry_men.jpg"))
    t1_faces = photo_faces(photos / "t1.jpg")
    men_faces = photo_faces(media / "12_angry_men.jpg")
    t1_w, t1_h = t1.shape[1], t1.shape[0]
    zoom_size = (640, round(t1_h * 640 / t1_w))
    men_scale = 960 / men.shape[1]
    men_size = (960, round(men.shape[0] * men_scale))
    videos = [
        write_video("pan", folder, t1, t1_faces, PAN_SIZE, pan_steps(t1_w, False)),
        write_video("zoom", folder, t1, t1_faces, zoom_size, zoom_steps((t1_w, t1_h), zoom_size)),
        write_video(
            "shake",
            folder,
            men,
            men_faces,
            men_size,
            shake_steps(men_scale, seed),
            hidden=MEN_HIDDEN,
            border=cv2.BORDER_REPLICATE,
        ),
        write_video("pan-dark", folder, t1, t1_faces, PAN_SIZE, pan_steps(t1_w, True)),
    ]
    return {v.name: v for v in videos}


# -- running the pipeline -----------------------------------------------------------------


def run(video: Video, backend: str, mode: str, classifier) -> tuple[list[list], float]:
    """Per frame ``[(box, track id, emotion)]``, and frames per CPU-second."""
    config = Config()
    config.detector.backend = backend
    pipeline = FacePipeline.from_config(
        config, classifier, make_detector(config.detector), every_frame=mode == "detect"
    )
    source = OpenCVSource(str(video.path), live=False)
    reader = FrameReader(source, pixels=pipeline.pixel_clock())  # detect: None, all decoded
    seen = []
    cpu0 = time.process_time()
    for frame in reader:
        faces = pipeline.process(frame).faces
        seen.append([(f.box, f.track_id, f.emotion) for f in faces])
    cpu = time.process_time() - cpu0
    pipeline.close()
    if len(seen) != len(video.truth):
        raise RuntimeError(f"{video.path}: {len(seen)} frames read, {len(video.truth)} written")
    return seen, len(seen) / max(cpu, 1e-9)


# -- scoring ------------------------------------------------------------------------------


def cut(box, size):
    """The part of a box inside the frame."""
    x0, y0 = max(box[0], 0), max(box[1], 0)
    x1, y1 = min(box[0] + box[2], size[0]), min(box[1] + box[3], size[1])
    return (x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def same_face(det, face, size) -> float:
    """How well a box matches a face (0: not at all). Detectors frame faces differently and
    box only the visible part of a face cut by the edge, so: the box's centre inside the face
    (cut to the frame) grown by 25% each side, its larger side 0.4-2.5x the face's; the score
    is their IoU (at least 0.01)."""
    gx, gy, gw, gh = cut(face, size)
    if gw <= 0 or gh <= 0:
        return 0.0
    cx, cy = det[0] + det[2] / 2, det[1] + det[3] / 2
    if not (gx - gw / 4 <= cx <= gx + 1.25 * gw and gy - gh / 4 <= cy <= gy + 1.25 * gh):
        return 0.0
    if not 0.4 <= max(det[2], det[3]) / max(gw, gh, 1) <= 2.5:
        return 0.0
    return max(iou(det, (gx, gy, gw, gh)), 0.01)


def match(dets, faces, hidden, size) -> list[tuple[str, int | None]]:
    """Per box: ``("face", id)``, ``("dup", id)``, ``("hidden", k)`` or ``("false", None)``;
    boxes and faces paired best first."""
    pairs = sorted(
        ((same_face(d, f, size), di, fi) for di, d in enumerate(dets) for fi, (f, _) in enumerate(faces)),
        reverse=True,
    )  # fmt: skip
    pairs = [p for p in pairs if p[0] > 0]
    out: list = [None] * len(dets)
    taken = set()
    for _, di, fi in pairs:
        if out[di] is None and fi not in taken:
            out[di] = ("face", fi)
            taken.add(fi)
    for di, d in enumerate(dets):
        if out[di] is not None:
            continue
        dup = [fi for _, dj, fi in pairs if dj == di and iou(d, cut(faces[fi][0], size)) >= 0.3]
        half = [k for k, h in enumerate(hidden) if same_face(d, h, size) > 0 or iou(d, h) > 0.1]
        if dup:
            out[di] = ("dup", dup[0])
        elif half:
            out[di] = ("hidden", half[0])
        else:
            out[di] = ("false", None)
    return out


def stretches(shares: list[float]) -> list[tuple[int, int]]:
    """``(first, last)`` frames of each stretch with at least half the face in view, each
    begun at its first frame with any of the face in view."""
    out: list[tuple[int, int]] = []
    start = None
    for i, share in enumerate([*shares, 0.0]):
        if share >= IN_VIEW and start is None:
            start, floor = i, (out[-1][1] + 1 if out else 0)
            while start > floor and shares[start - 1] > 0:
                start -= 1
        elif share < IN_VIEW and start is not None:
            out.append((start, i - 1))
            start = None
    return out


def median_or_none(values):
    return statistics.median(values) if values else None


def score(video: Video, seen: list[list]) -> dict:
    counts = dict.fromkeys(("full", "missed", "face", "dup", "hidden", "false"), 0)
    dark_with_boxes = 0
    false_tracks = set()
    boxed: dict[int, dict[int, int]] = defaultdict(dict)  # face -> frame -> track id
    labels: dict[int, list[str]] = defaultdict(list)  # track -> emotions, frame by frame
    spans: dict[int, list[int]] = {}  # track -> [first frame, last frame]
    for i, (truth, faces) in enumerate(zip(video.truth, seen)):
        for _, track, emotion in faces:
            labels[track].append(emotion)
            spans.setdefault(track, [i, i])[1] = i
        if truth["dark"]:  # no face is expected on a near-black frame
            dark_with_boxes += bool(faces)
            continue
        kinds = match([box for box, _, _ in faces], truth["faces"], truth["hidden"], video.size)
        full = {k for k, (_, share) in enumerate(truth["faces"]) if share >= FULL}
        counts["full"] += len(full)
        for (_, track, _), (kind, ref) in zip(faces, kinds):
            counts[kind] += 1
            if kind == "face":
                boxed[ref][i] = track
                full.discard(ref)
            elif kind == "false":
                false_tracks.add(track)
        counts["missed"] += len(full)

    ids_per_stretch, switches, entry_s = [], 0, []
    for k in range(len(video.truth[0]["faces"])):
        shares = [truth["faces"][k][1] for truth in video.truth]
        earlier: set[int] = set()  # a track still carried from the face's last time in view
        for a, b in stretches(shares):
            mine = boxed[k]
            found = [(i, mine[i]) for i in range(a, b + 1) if i in mine and mine[i] not in earlier]
            ids = [track for _, track in found]
            earlier |= set(ids)
            if any(shares[i] >= FULL and not video.truth[i]["dark"] for i in range(a, b + 1)):
                ids_per_stretch.append(len(set(ids)))
                switches += sum(x != y for x, y in zip(ids, ids[1:]))
            full_at = next((i for i in range(a, b + 1) if shares[i] >= FULL), None)
            if a > 0 or full_at not in (0, None):  # it enters (or starts cut by the edge)
                entry_s.append((found[0][0] - a) / FPS if found else None)

    rates = []
    for track, emotions in labels.items():
        seconds = (spans[track][1] - spans[track][0] + 1) / FPS
        if seconds >= 1.0:
            rates.append(sum(x != y for x, y in zip(emotions, emotions[1:])) / seconds)
    entered = [s for s in entry_s if s is not None]
    return {
        "recall": round(1 - counts["missed"] / max(counts["full"], 1), 3),
        "false": counts["false"],
        "false_tracks": len(false_tracks),
        "dup": counts["dup"],
        "hidden_face_boxes": counts["hidden"],
        "dark_frames_with_boxes": dark_with_boxes,
        "tracks": len(labels),
        "ids_per_face": round(statistics.mean(ids_per_stretch), 2) if ids_per_stretch else None,
        "id_switches": switches,
        "entries": len(entry_s),
        "entries_missed": len(entry_s) - len(entered),
        "entry_s_median": median_or_none(entered),
        "entry_s_max": max(entered, default=None),
        "label_changes_per_s_mean": round(statistics.mean(rates), 3) if rates else 0.0,
        "label_changes_per_s_max": round(max(rates, default=0.0), 3),
    }


# -- the report ---------------------------------------------------------------------------

COLUMNS = (  # (heading, key, format)
    ("recall", "recall", "{:.3f}"),
    ("false", "false", "{}"),
    ("f.trk", "false_tracks", "{}"),
    ("tracks", "tracks", "{}"),
    ("ids/face", "ids_per_face", "{:.2f}"),
    ("switch", "id_switches", "{}"),
    ("entry s", "entry_s_median", "{:.2f}"),
    ("max", "entry_s_max", "{:.2f}"),
    ("miss", "entries_missed", "{}"),
    ("lbl/s", "label_changes_per_s_mean", "{:.2f}"),
    ("max", "label_changes_per_s_max", "{:.2f}"),
    ("fps/cpu", "fps_per_cpu_s", "{:.1f}"),
    ("ratio", "fps_per_cpu_s_vs_blazeface_detect", "{:.2f}"),
)


def print_table(results: dict) -> None:
    head = f"{'video':9} {'mode':7} {'backend':11}"
    print(head + "".join(f"{h:>9}" for h, _, _ in COLUMNS))
    for name, by_backend in results.items():
        for backend, by_mode in by_backend.items():
            for mode, row in by_mode.items():
                cells = "".join(
                    f"{'-' if row[k] is None else fmt.format(row[k]):>9}" for _, k, fmt in COLUMNS
                )
                print(f"{name:9} {mode:7} {backend:11}" + cells)


def median_row(rows: list[dict]) -> dict:
    out = {}
    for key in rows[0]:
        values = [r[key] for r in rows if r[key] is not None]
        out[key] = statistics.median(values) if values else None
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, required=True, help="folder from registry_photos.py")
    ap.add_argument("--media", type=Path, required=True, help="$DEEPFER_DATA/media")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1, help="the shake's random walk")
    ap.add_argument(
        "--videos", default=",".join(RUNS), help="comma-separated, of " + ",".join(RUNS)
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    missing = [n for n in files.MODEL_FILES if not files.available(n)]
    if missing:
        print(f"missing detector files {missing}: {files.install_hint()}", file=sys.stderr)
        return 2
    names = args.videos.split(",")
    classifier = load_classifier(Config().model)
    rows: dict = defaultdict(list)  # (video, backend, mode) -> per repeat
    with tempfile.TemporaryDirectory(prefix="bench-multiface-") as tmp:
        videos = make_videos(args.photos, args.media, Path(tmp), args.seed)
        for repeat in range(args.repeats):  # interleaved: the machine's load falls on all alike
            for name in names:
                for backend in RUNS[name]:
                    for mode in MODES:
                        seen, fps = run(videos[name], backend, mode, classifier)
                        row = {**score(videos[name], seen), "fps_per_cpu_s": round(fps, 1)}
                        rows[name, backend, mode].append(row)
            print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)
    results: dict = {}
    for (name, backend, mode), runs in rows.items():
        results.setdefault(name, {}).setdefault(backend, {})[mode] = median_row(runs)
    for by_backend in results.values():
        base = by_backend["blazeface"]["detect"]["fps_per_cpu_s"]
        for by_mode in by_backend.values():
            for row in by_mode.values():
                row["fps_per_cpu_s_vs_blazeface_detect"] = round(row["fps_per_cpu_s"] / base, 3)
    print_table(results)
    report = {
        "machine": os.uname().machine,
        "cpus": os.cpu_count(),
        "repeats": args.repeats,
        "seed": args.seed,
        "videos": {
            n: {"frames": len(v.truth), "size": list(v.size), "faces": len(v.truth[0]["faces"])}
            for n, v in videos.items()
            if n in names
        },
        "results": results,
    }
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
