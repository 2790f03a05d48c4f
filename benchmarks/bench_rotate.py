"""A camera mounted upside down or on its side: what ``source.rotate`` gives back.

Made from ``woman2.mp4`` (one person, every frame has her face) and the photos: copies turned
180 degrees (upside down) and 90 degrees anticlockwise (a camera on its side; ``rotate = 90``
turns it back) and 90 clockwise (``rotate = 270``). Each copy is run through ``deepfer
detect``'s pipeline (every frame detected, tracker on) per detector, as it comes (``rotate =
0``) and turned back, and compared with the upright original on the same detector:

* clips: frames with a face, frames with a false face (more than one: one person), tracks,
  and per-frame emotion agreement with the upright clip's reading (frames where both have
  one face). Every copy, the upright one included, is encoded again (mp4v), so some readings
  differ by codec noise alone: the control row compares the upright copy with the original
  H.264 file, the same pictures through another codec;
* photos: faces found, and those within 0.5 IoU of an upright face once mapped back.

    python benchmarks/bench_rotate.py --media $DEEPFER_DATA/media \\
        --json benchmarks/results/detectors/bench_rotate.json
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
from results_file import write_json

from deepfer.edge.boxes import iou
from deepfer.edge.config import load_config
from deepfer.edge.detect_files import FileDetector
from deepfer.edge.detectors import files as detector_files

#: (copy name, how the copy is made from the upright picture, the rotate that undoes it)
TURNS = (
    ("upside-down", cv2.ROTATE_180, 180),
    ("on its side (90 anticlockwise)", cv2.ROTATE_90_COUNTERCLOCKWISE, 90),
    ("on its side (90 clockwise)", cv2.ROTATE_90_CLOCKWISE, 270),
)
PHOTOS = ("justin.jpg", "12_angry_men.jpg", "no-faces.jpg")


def turned_clip(src: Path, dst: Path, code: int | None) -> None:
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    writer = None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frame = frame if code is None else cv2.rotate(frame, code)
        if writer is None:
            size = (frame.shape[1], frame.shape[0])
            writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        writer.write(frame)
    cap.release()
    writer.release()


def detector(backend: str, rotate: int) -> FileDetector:
    overrides = {"detector.backend": backend, "source.rotate": rotate}
    return FileDetector(load_config(None, environ={}, overrides=overrides))


def clip_figures(files: FileDetector, path: Path, upright: dict[int, list] | None) -> dict:
    per_frame = {index: faces for index, faces in files.video_frames(path, None, None)}
    frames = len(per_frame)
    out = {
        "frames": frames,
        "frames_with_face": sum(1 for f in per_frame.values() if f) / frames,
        "frames_with_false_face": sum(1 for f in per_frame.values() if len(f) > 1) / frames,
        "tracks": len({face["track_id"] for f in per_frame.values() for face in f}),
    }
    if upright is not None:
        both = [i for i, f in per_frame.items() if len(f) == 1 and len(upright.get(i, [])) == 1]
        same = sum(per_frame[i][0]["emotion"] == upright[i][0]["emotion"] for i in both)
        out["emotion_agreement_with_upright"] = same / len(both) if both else None
        out["frames_compared"] = len(both)
    return out, per_frame


def unturn_box(box, code: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A box found in the turned copy (as it comes, not turned back), in upright pixels;
    ``size`` is the upright picture's (width, height)."""
    x, y, w, h = box
    width, height = size
    if code == cv2.ROTATE_180:
        return width - x - w, height - y - h, w, h
    if code == cv2.ROTATE_90_COUNTERCLOCKWISE:  # upright (u, v) -> turned (v, width - u)
        return width - y - h, x, h, w
    return y, height - x - w, h, w  # clockwise: upright (u, v) -> turned (height - v, u)


def matched(found: list, upright: list) -> int:
    return sum(any(iou(tuple(a), tuple(b)) >= 0.5 for b in upright) for a in found)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--media", type=Path, required=True)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    files = {"blazeface": "blazeface-full", "centerface": "centerface"}
    backends = [b for b, f in files.items() if detector_files.available(f)] + ["haar"]
    results: dict = {"clip": "woman2.mp4", "backends": backends, "clips": {}, "photos": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        turned_clip(args.media / "woman2.mp4", tmp / "upright.mp4", None)  # same codec
        for _name, code, _ in TURNS:
            turned_clip(args.media / "woman2.mp4", tmp / f"{code}.mp4", code)
        for backend in backends:
            base, upright = clip_figures(detector(backend, 0), tmp / "upright.mp4", None)
            results["clips"].setdefault("upright", {})[backend] = base
            print(f"{backend:10} upright: {base}", flush=True)
            # control: the same upright pictures through another codec (the original file)
            control, _ = clip_figures(detector(backend, 0), args.media / "woman2.mp4", upright)
            results["clips"].setdefault("upright, the original H.264 file", {})[backend] = control
            print(f"{backend:10} upright, original file: {control}", flush=True)
            for name, code, rotate in TURNS:
                row = {}
                for label, r in (("as it comes", 0), (f"rotate = {rotate}", rotate)):
                    row[label], _ = clip_figures(detector(backend, r), tmp / f"{code}.mp4", upright)
                    print(f"{backend:10} {name}, {label}: {row[label]}", flush=True)
                results["clips"].setdefault(name, {})[backend] = row
        for photo in PHOTOS:
            image = cv2.imread(str(args.media / photo))
            size = (image.shape[1], image.shape[0])
            for backend in backends:
                upright = [
                    f["box"] for f in detector(backend, 0).image(args.media / photo, None, None)
                ]
                row = {"upright": len(upright)}
                for name, code, rotate in TURNS:
                    path = tmp / f"{code}_{photo}".replace(".jpg", ".png")
                    cv2.imwrite(str(path), cv2.rotate(image, code))
                    as_is = [f["box"] for f in detector(backend, 0).image(path, None, None)]
                    back = [f["box"] for f in detector(backend, rotate).image(path, None, None)]
                    row[name] = {
                        "as it comes": len(as_is),
                        "as it comes, matching upright": matched(
                            [unturn_box(b, code, size) for b in as_is], upright
                        ),
                        f"rotate = {rotate}": len(back),
                        f"rotate = {rotate}, matching upright": matched(back, upright),
                    }
                results["photos"].setdefault(photo, {})[backend] = row
                print(f"{backend:10} {photo}: {row}", flush=True)
    write_json(args.json, results)


if __name__ == "__main__":
    main()
