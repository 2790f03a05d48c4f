"""``deepfer evaluate model.tflite`` works on an edge install: no TensorFlow, Keras,
scikit-learn or matplotlib (each replaced by a package that refuses to import). The metrics
are numpy's and the plots are skipped with a note."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

MODEL = Path(__file__).resolve().parents[2] / "models" / "deepfer_int8.tflite"
BLOCKER = 'raise ImportError("not installed on an edge install (test stub)")\n'


def edge_only_env(tmp_path: Path) -> dict[str, str]:
    stubs = tmp_path / "stubs"
    for name in ("tensorflow", "keras", "tf_keras", "sklearn", "matplotlib"):
        (stubs / name).mkdir(parents=True)
        (stubs / name / "__init__.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPFER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(stubs), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def test_the_stubs_block(tmp_path):
    env = edge_only_env(tmp_path)
    for name in ("tensorflow", "sklearn", "matplotlib"):
        proc = subprocess.run(
            [sys.executable, "-c", f"import {name}"], env=env, capture_output=True
        )
        assert proc.returncode != 0, name


def test_deepfer_evaluate_a_tflite_model_on_an_edge_install(tmp_path, tiny_fer):
    out = tmp_path / "eval"
    proc = subprocess.run(
        [
            sys.executable, "-m", "deepfer", "evaluate", str(MODEL), "--data", str(tiny_fer),
            "--out", str(out), "--tta", "flip", "--no-progress",
        ],
        capture_output=True, text=True, env=edge_only_env(tmp_path), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "plots: skipped, matplotlib is not installed" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["n"] == 42 and 0.0 <= report["accuracy"] <= 1.0
    assert report["model_type"] == "tflite" and report["runtime"] != "tensorflow"
    assert set(report["tta"]) == {"flip"} and report["plots"] == {}
