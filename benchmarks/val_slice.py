"""Write the validation slice of a `deepfer train` run as a `<class>/` folder of PNG files.

`deepfer train` holds out a stratified fraction of the Training split (``--val-split``, seeded by
``--seed``); checkpoints, averages and recipes are chosen on it. This script writes exactly those
faces (lossless PNG, same pixels) so that `deepfer evaluate MODEL --data FOLDER` and
`deepfer convert ... --check-data FOLDER` measure on the validation slice instead of PublicTest.

    python benchmarks/val_slice.py /work/shared/data/fer2013 /work/runs/val-slice-1337
    python benchmarks/val_slice.py --run /work/runs/j12-ft-crop44 /work/runs/val-slice-1337
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2

from deepfer.edge.labels import LABELS
from deepfer.train.config import TrainConfig
from deepfer.train.training import prepare_data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", nargs="?", help="FER2013 data (as `deepfer train --data`)")
    p.add_argument("out", help="folder to write <class>/<n>.png into")
    p.add_argument("--run", help="take data, seed and val-split from this run's config.json")
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument("--val-split", type=float, default=TrainConfig.val_split)
    args = p.parse_args(argv)
    if args.run:
        cfg = TrainConfig.from_json(json.loads((Path(args.run) / "config.json").read_text()))
    else:
        cfg = TrainConfig(data=args.data, seed=args.seed, val_split=args.val_split)
    cfg.max_per_class, cfg.progress = 0, False
    val = prepare_data(cfg)["val"]
    out = Path(args.out)
    for label in LABELS:
        (out / label).mkdir(parents=True, exist_ok=True)
    for i, (face, y) in enumerate(zip(val.x, val.y)):
        cv2.imwrite(str(out / LABELS[int(y)] / f"val_{i:05d}.png"), face[..., 0])
    print(f"{out}: {len(val):,} faces of {val.name} (seed {cfg.seed})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
