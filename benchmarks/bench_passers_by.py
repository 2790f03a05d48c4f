"""People walking past the camera: one track, one start event, per person?

A counter of visitors counts start events. At ``detector.fps`` 5 a face crossing the view
moves further than its own width between two detections once it crosses a 640-px frame in
under about 2.5 s, and a tracker that continues a track only by box overlap starts a new
track, a new "person", at each detection (and, with ``tracker.min_hits`` 2, often sends no
start event at all). This benchmark walks real faces across a real scene and counts.

Faces: ``justin.jpg`` (``--media``) and, with ``--photos`` (the folder of
``registry_photos.py``), the one-face portraits there (astronaut, Grace Hopper, ...), each
cut to a head-and-shoulders square and scaled so that the face is ``--face`` px. Scene:
``no-faces.jpg`` at 640x360. Frames are made in memory at 25 a second and given to the edge
pipeline (``FacePipeline.process``), as the daemon schedules detections (``daemon``:
``detector.fps`` 5, frames between carried by the tracker) and as ``deepfer detect`` runs a
video (``detect``: every frame). Passes:

* ``across-T``: one face crossing left to right in T seconds, at mid height;
* ``diagonal-T``: from the bottom left to the top right in T seconds;
* ``crossing-T``: two faces, from the left and from the right at the same height, passing
  each other in the middle (T seconds each): the case where joining by distance could swap
  two people's ids.

Per pass: ``ids`` (track ids on the faces; 1 per face is right), ``starts`` (start events;
1 per face), ``swaps`` (changes of the id seen on one face from one detection to the next),
``seen`` (share of the frames with the face wholly in view that have a box on it) and
``false`` (boxes on no face). Reported per tracker setting (``--speeds``: values of
``tracker.max_speed``, 0 = overlap only), summed over the faces.

    python benchmarks/bench_passers_by.py --media $DEEPFER_DATA/media --photos /tmp/registry-photos \\
        --json benchmarks/results/detectors/bench_passers_by.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from results_file import write_json

from deepfer.edge.capture.frame import frame_from_image
from deepfer.edge.config import Config
from deepfer.edge.detectors import make_detector, make_photo_detector
from deepfer.edge.model.classifier import load_classifier
from deepfer.edge.pipeline import FacePipeline

FPS = 25
SIZE = (640, 360)
#: One-face photos of registry_photos.py used as walkers (when --photos is given).
PORTRAITS = ("astronaut.png", "grace_hopper.jpg", "Tom_Hanks_54745.png", "camera.png")


def walker(photo: np.ndarray, face_px: int) -> np.ndarray | None:
    """A head-and-shoulders square around the photo's one face, scaled so the face is
    ``face_px`` wide (the photo's border repeated where the square leaves it)."""
    found = make_photo_detector(Config().detector).detect(frame_from_image(photo))
    if len(found) != 1:
        return None
    x, y, w, h = found[0].box
    side = int(2.2 * max(w, h))
    cx, cy = x + w // 2, y + h // 2
    pad = cv2.copyMakeBorder(photo, side, side, side, side, cv2.BORDER_REPLICATE)
    square = pad[cy + side - side // 2 : cy + side + side // 2, cx + side - side // 2 :][:, :side]
    scale = face_px / max(w, h)
    return cv2.resize(square, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def paths(kind: str, seconds: float, side: int) -> list[list[tuple[float, float]]]:
    """Per walker, its sprite's top-left corner per frame (1 s standing off-screen first)."""
    w, h = SIZE
    n = int(round((seconds + 1.0) * FPS))
    out = []

    def walk(x0, y0, x1, y1):
        pts = []
        for i in range(n):
            u = min(1.0, max(0.0, (i / FPS - 0.5) / seconds))
            pts.append((x0 + (x1 - x0) * u, y0 + (y1 - y0) * u))
        return pts

    mid = (h - side) / 2
    if kind == "across":
        out.append(walk(-side, mid, w, mid))
    elif kind == "diagonal":
        out.append(walk(-side, h - side * 0.8, w, -side * 0.2))
    elif kind == "crossing":
        out.append(walk(-side, mid, w, mid))
        out.append(walk(w, mid, -side, mid))
    return out


def run_pass(sprites, scene, routes, pipeline) -> dict:
    w, h = SIZE
    last_id: dict[int, int] = {}
    ids: set[int] = set()
    starts = swaps = false = in_view = seen = 0
    for i in range(len(routes[0])):
        frame = scene.copy()
        faces = []  # (sprite index, face box) of this frame
        for k, route in enumerate(routes):
            sprite = sprites[k % len(sprites)]
            x, y = (int(round(v)) for v in route[i])
            sh, sw = sprite.shape[:2]
            x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + sw), min(h, y + sh)
            if x1 > x0 and y1 > y0:
                frame[y0:y1, x0:x1] = sprite[y0 - y : y1 - y, x0 - x : x1 - x]
            side = sw / 2.2
            faces.append((k, (x + sw / 2 - side / 2, y + sh / 2 - side / 2, side, side)))
        result = pipeline.process(frame_from_image(frame, i, i / FPS))
        starts += sum(e.type == "start" for e in result.track_events)
        hit = set()
        for face in result.faces:
            fx, fy, fw, fh = face.box
            cx, cy = fx + fw / 2, fy + fh / 2
            owner = None
            for k, (bx, by, bw, bh) in faces:
                if abs(cx - (bx + bw / 2)) < 0.6 * bw and abs(cy - (by + bh / 2)) < 0.6 * bh:
                    owner = k
            if owner is None:
                false += 1
                continue
            hit.add(owner)
            ids.add(face.track_id)
            if result.detected:
                if owner in last_id and last_id[owner] != face.track_id:
                    swaps += 1
                last_id[owner] = face.track_id
        for k, (bx, by, bw, bh) in faces:
            if bx >= 0 and by >= 0 and bx + bw <= w and by + bh <= h:
                in_view += 1
                seen += k in hit
    pipeline.close()
    return {
        "ids": len(ids),
        "starts": starts,
        "swaps": swaps,
        "seen": round(seen / max(in_view, 1), 4),
        "false": false,
        "walkers": len(routes),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--media", type=Path, required=True)
    ap.add_argument("--photos", type=Path, default=None, help="folder from registry_photos.py")
    ap.add_argument("--face", type=int, default=80, help="face width in px (default 80)")
    ap.add_argument("--seconds", default="4,3,2,1.5,1", help="crossing times, comma-separated")
    ap.add_argument("--speeds", default="0,8", help="tracker.max_speed values, comma-separated")
    ap.add_argument("--modes", default="daemon,detect", help="daemon and/or detect")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    photos = [args.media / "justin.jpg"]
    if args.photos:
        photos += [args.photos / n for n in PORTRAITS if (args.photos / n).is_file()]
    sprites = []
    for path in photos:
        sprite = walker(cv2.imread(str(path)), args.face)
        if sprite is None:
            print(f"{path.name}: not exactly one face found, left out")
        else:
            sprites.append((path.name, sprite))
    scene = cv2.resize(cv2.imread(str(args.media / "no-faces.jpg")), SIZE)
    config = Config()
    classifier = load_classifier(config.model)
    results: dict = {}
    for speed in (float(s) for s in args.speeds.split(",")):
        for mode in args.modes.split(","):
            for kind in ("across", "diagonal", "crossing"):
                for seconds in (float(s) for s in args.seconds.split(",")):
                    total: dict = {}
                    for k, (_, sprite) in enumerate(sprites):
                        # crossing: each face with the next one
                        pair = [sprite, sprites[(k + 1) % len(sprites)][1]]
                        routes = paths(kind, seconds, sprite.shape[1])
                        config = Config()
                        config.tracker.max_speed = speed
                        if mode == "detect":
                            config.detector.fps = 0.0
                        pipeline = FacePipeline.from_config(
                            config, classifier, make_detector(config.detector)
                        )
                        row = run_pass(pair, scene, routes, pipeline)
                        for key, value in row.items():
                            total[key] = total.get(key, 0) + value
                    total["seen"] = round(total["seen"] / len(sprites), 4)
                    key = f"{kind}-{seconds:g}"
                    results.setdefault(f"max_speed={speed:g}", {}).setdefault(mode, {})[key] = total
                    print(
                        f"max_speed={speed:g} {mode:6s} {key:13s} {json.dumps(total)}", flush=True
                    )
    write_json(
        args.json,
        {
            "walkers": [name for name, _ in sprites],
            "face_px": args.face,
            "fps": FPS,
            "size": SIZE,
            "results": results,
        },
        indent=1,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
