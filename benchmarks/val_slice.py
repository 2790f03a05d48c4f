"""Write the validation slice of a `deepfer train` run as a `<class>/` folder of PNG files.

`deepfer train` holds out a stratified fraction of the Training split (``--val-split``, seeded by
``--seed``); checkpoints, averages and recipes are chosen on it. This script writes exactly those
faces (lossless PNG, same pixels) so that `deepfer evaluate MODEL --data FOLDER` and
`deepfer convert ... --check-data FOLDER` measure on the validation slice instead of PublicTest.
Where the data folder has FER+ votes (``ferplus_train.csv``), their rows for these faces are
written as ``FOLDER/ferplus_val.csv`` under the new names, for ``deepfer evaluate MODEL --data
FOLDER --labels ferplus --ferplus-votes FOLDER/ferplus_val.csv``.

    python benchmarks/val_slice.py /work/shared/data/fer2013 /work/runs/val-slice-1337
    python benchmarks/val_slice.py --run /work/runs/j12-ft-crop44 /work/runs/val-slice-1337
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2

from deepfer.data.ferplus import FERPLUS_COLUMNS, load_ferplus_votes
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
    names = []
    for i, (face, y) in enumerate(zip(val.x, val.y)):
        names.append(f"{LABELS[int(y)]}/val_{i:05d}.png")
        cv2.imwrite(str(out / names[-1]), face[..., 0])
    print(f"{out}: {len(val):,} faces of {val.name} (seed {cfg.seed})")
    votes_file = Path(cfg.data) / "ferplus_train.csv"
    if votes_file.is_file() and val.files:
        votes = load_ferplus_votes(votes_file)
        rows = [
            ",".join([new, *map(str, votes[old])])
            for new, old in zip(names, val.files)
            if old in votes
        ]
        header = ",".join(["file", *FERPLUS_COLUMNS])
        (out / "ferplus_val.csv").write_text("\n".join([header, *rows]) + "\n")
        print(f"{out / 'ferplus_val.csv'}: FER+ votes of {len(rows):,} of these faces")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
