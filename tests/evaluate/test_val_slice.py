"""benchmarks/val_slice.py: the validation slice of a training run written as a class folder
(same pixels), with the FER+ votes of those faces under their new names, so that `deepfer
evaluate --labels ferplus` scores a model on the slice against FER+ too."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfer.cli import main
from deepfer.data.ferplus import FERPLUS_COLUMNS
from deepfer.edge.labels import LABELS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_the_slice_keeps_the_pixels_and_the_ferplus_votes(tiny_fer, tiny_keras_model, tmp_path):
    pytest.importorskip("keras")
    from deepfer.train.config import TrainConfig
    from deepfer.train.training import prepare_data

    data = tmp_path / "fer"
    shutil.copytree(tiny_fer, data)
    cfg = TrainConfig(data=str(data), seed=5, progress=False)
    val = prepare_data(cfg)["val"]
    happy = {c: 0 for c in FERPLUS_COLUMNS} | {"happiness": 10}
    rows = [f"{name}," + ",".join(map(str, happy.values())) for name in val.files[1:]]
    header = "file," + ",".join(FERPLUS_COLUMNS)
    (data / "ferplus_train.csv").write_text("\n".join([header, *rows]) + "\n")

    out = tmp_path / "slice"
    script = ROOT / "benchmarks" / "val_slice.py"
    done = subprocess.run(
        [sys.executable, str(script), str(data), str(out), "--seed", "5"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"FER+ votes of {len(val) - 1:,} of these faces" in done.stdout
    written = sorted(out.glob("*/*.png"))
    assert len(written) == len(val)
    first = cv2.imread(str(out / LABELS[int(val.y[0])] / "val_00000.png"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(first, val.x[0, ..., 0])  # lossless: the same pixels
    votes = (out / "ferplus_val.csv").read_text().splitlines()
    assert votes[0] == header and len(votes) == len(val)  # the header, then every face but one
    assert all(line.split(",")[0].endswith(".png") for line in votes[1:])

    report = tmp_path / "report"
    argv = ["evaluate", str(tiny_keras_model), "--data", str(out), "--labels", "ferplus"]
    argv += ["--ferplus-votes", str(out / "ferplus_val.csv"), "--out", str(report)]
    assert main([*argv, "--tta", "none", "--no-progress"]) == 0
