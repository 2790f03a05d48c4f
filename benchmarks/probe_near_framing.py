"""Per-track near framing (``deepfer.edge.near_framing``): does learning, at each full search,
how a face's near-search box differs from its full-search box make the near searches in
between frame the face as a full search would?

On ``woman2.mp4`` and the variants of ``bench_detectors.py`` (rotated 15 degrees, dimmed,
half size, mirrored and looped), for each backend with a near search: every ``--every``-th
frame (about 5 a second, as the daemon detects) is searched in full and near the face's box
of the previous such frame, when the full search finds one face. The pairs (full box, near
box) are then replayed as the pipeline meets them, a full search every ``--rescan`` of them:
the near box as the detector gives it (BlazeFace's fixed ``NEAR_FRAMING`` mapping applied;
Haar none) against the same box moved by :class:`NearFraming` learnt from the pairs of the
earlier full searches. Reported per clip: the pairs, the mean offset of the full box from the
near one (log side ratio, centre shift in widths) and its spread, the autocorrelation of the
offset one full search apart, and the mean IoU with the full box as given and as learnt.

    python benchmarks/probe_near_framing.py --media $DEEPFER_DATA/media \\
        --json benchmarks/results/detectors/near_framing_per_track.json
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from bench_detectors import VIDEO_VARIANTS, make_video_variant
from results_file import write_json

from deepfer.edge.boxes import box_offset, iou
from deepfer.edge.capture.reader import FrameReader
from deepfer.edge.capture.sources import OpenCVSource
from deepfer.edge.config import Config
from deepfer.edge.detectors import make_detector
from deepfer.edge.near_framing import NearFraming


def pairs(path: Path, detector, every: int) -> list[tuple]:
    """(full box, near box) on the frames searched, the near search around the last full box."""
    out, last = [], None
    for frame in FrameReader(OpenCVSource(str(path), live=False)):
        if frame.index % every:
            continue
        full = detector.detect(frame, 0)
        if len(full) != 1:
            last = None
            continue
        if last is not None:
            near = detector.detect_near(frame, last)
            if len(near) == 1:
                out.append((full[0].box, near[0].box))
        last = full[0].box
    return out


def replay(found: list[tuple], rescan: int) -> dict:
    offsets = np.array([box_offset(f, n) for f, n in found])
    framing = NearFraming()
    given, learnt = [], []
    for i, (full, near) in enumerate(found):
        if i % rescan == 0:  # a full search: learn (its own near box is not scored)
            framing.learn(1, near, full)
            continue
        given.append(iou(full, near))
        learnt.append(iou(full, framing.apply(1, near)))
    lag = [np.corrcoef(offsets[:-rescan, j], offsets[rescan:, j])[0, 1] for j in range(3)]
    return {
        "pairs": len(found),
        "scored": len(given),
        "mean_offset": np.round(offsets.mean(0), 3).tolist(),
        "offset_std": np.round(offsets.std(0), 3).tolist(),
        "autocorr_one_rescan_apart": np.round(lag, 2).tolist(),
        "iou_given": round(float(np.mean(given)), 3),
        "iou_learnt": round(float(np.mean(learnt)), 3),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--media", required=True, type=Path)
    ap.add_argument("--backends", default="blazeface,haar")
    ap.add_argument("--every", type=int, default=6, help="search every N-th frame (6: 5/s)")
    ap.add_argument("--rescan", type=int, default=5, help="a full search every N searches")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    out: dict = {"every": args.every, "rescan": args.rescan, "backends": {}}
    with tempfile.TemporaryDirectory() as tmp:
        src = args.media / "woman2.mp4"
        clips = {v: src if v == "original" else make_video_variant(src, v, Path(tmp))
                 for v in VIDEO_VARIANTS}  # fmt: skip
        for backend in args.backends.split(","):
            config = Config()
            config.detector.backend = backend
            detector = make_detector(config.detector)
            rows = out["backends"][backend] = {}
            for name, path in clips.items():
                rows[name] = replay(pairs(path, detector, args.every), args.rescan)
                print(f"{backend:10s} {name:16s} {rows[name]}", flush=True)
    write_json(args.json, out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
