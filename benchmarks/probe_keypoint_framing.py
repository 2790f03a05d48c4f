"""Would BlazeFace's keypoints frame a FER2013 face better than its box? (issue #11)

On Training faces placed in a canvas (as ``measure_crop_mapping.py``), the known FER2013 crop
is compared with (a) BlazeFace's box and (b) its eye and mouth keypoints: for each, the median
and interquartile range of the crop's side over the reference length (box side; inter-ocular
distance; eye-midpoint-to-mouth distance; their sum) and of the crop centre's offset, plus the
roll of the eye line. A framing rule can only be as good as the spread of these ratios: a
reference with a smaller relative IQR would give crops closer to FER2013's framing.

    python benchmarks/probe_keypoint_framing.py --data $DEEPFER_DATA/fer2013 \\
        --json benchmarks/results/detectors/keypoint_framing.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from measure_crop_mapping import best_match, canvas, faces
from results_file import write_json

from deepfer.edge.config import Config
from deepfer.edge.detectors import make_detector


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, type=Path, help="FER2013 folder with train/")
    ap.add_argument("--per-class", type=int, default=150)
    ap.add_argument("--face", type=int, default=96, help="face side in the canvas, px")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    config = Config()
    config.detector.backend = "blazeface"
    detector = make_detector(config.detector)
    images, _ = faces(args.data / "train", args.per_class)
    rows: dict[str, list[float]] = {}
    for img in images:
        bgr, truth = canvas(img, args.face)
        found = detector.detect(bgr)
        i = best_match([d.box for d in found], truth)
        if i is None or found[i].keypoints is None:
            continue
        x, y, w, h = found[i].box
        right_eye, left_eye, _nose, mouth = found[i].keypoints[:4]
        tx, ty, ts, _ = truth
        cx, cy = tx + ts / 2, ty + ts / 2
        eyes = (right_eye + left_eye) / 2
        iod = float(np.linalg.norm(left_eye - right_eye))
        emd = float(np.linalg.norm(mouth - eyes))
        for key, value in (
            ("side / box side", ts / max(w, h)),
            ("side / inter-ocular", ts / iod),
            ("side / eyes-to-mouth", ts / emd),
            ("side / (inter-ocular + eyes-to-mouth)", ts / (iod + emd)),
            ("centre dx / box width", (cx - (x + w / 2)) / w),
            ("centre dy / box height", (cy - (y + h / 2)) / h),
            ("centre dx from eyes / crop side", (cx - eyes[0]) / ts),
            ("centre dy from eyes / crop side", (cy - eyes[1]) / ts),
            ("centre dx from box / crop side", (cx - (x + w / 2)) / ts),
            ("centre dy from box / crop side", (cy - (y + h / 2)) / ts),
            (
                "eye-line roll, degrees",
                float(np.degrees(np.arctan2(*(left_eye - right_eye)[::-1]))),
            ),
        ):
            rows.setdefault(key, []).append(float(value))
    report = {"faces": len(images), "found": len(next(iter(rows.values()), [])), "ratios": {}}
    print(f"BlazeFace found {report['found']} of {report['faces']} Training faces")
    for key, values in rows.items():
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        rel = (q3 - q1) / abs(med) if key.startswith("side") else None
        report["ratios"][key] = {
            "median": round(float(med), 4),
            "iqr": round(float(q3 - q1), 4),
            "relative_iqr": None if rel is None else round(float(rel), 4),
        }
        extra = f"  relative IQR {rel:.3f}" if rel is not None else ""
        print(f"{key:40} median {med:+.3f}  IQR {q3 - q1:.3f}{extra}")
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
