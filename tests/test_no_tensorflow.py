"""The edge runs where TensorFlow cannot be imported (a Pi has none)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

BLOCKER = """
raise ImportError("TensorFlow/Keras must not be imported by the DeepFER edge (test stub)")
"""


def blocked_env(tmp_path) -> dict[str, str]:
    stubs = tmp_path / "stubs"
    for name in ("tensorflow", "keras", "tf_keras"):
        (stubs / name).mkdir(parents=True)
        (stubs / name / "__init__.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPFER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(stubs), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def test_the_stub_really_blocks_tensorflow(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", "import tensorflow"], capture_output=True, text=True,
        env=blocked_env(tmp_path),
    )  # fmt: skip
    assert proc.returncode != 0 and "must not be imported" in proc.stderr


def test_deepfer_run_without_tensorflow(tmp_path, media_dir, tiny_tflite_model):
    stats = tmp_path / "stats.json"
    proc = subprocess.run(
        [
            sys.executable, "-m", "deepfer.edge", "run", "--source", str(media_dir / "woman2.mp4"),
            "--max-frames", "60", "--model", str(tiny_tflite_model), "--stats-json", str(stats),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=blocked_env(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(stats.read_text())["frames"] == 60
    assert json.loads(proc.stdout.splitlines()[0])["type"] == "start"


def test_edge_modules_import_without_tensorflow(tmp_path):
    code = (
        "import sys, importlib\n"
        "for m in ['cli', 'commands', 'config', 'capture', 'detector', 'tracker', 'pipeline',"
        " 'daemon', 'stats', 'classifier', 'runtime', 'events', 'sinks', 'preprocess']:\n"
        "    importlib.import_module('deepfer.edge.' + m)\n"
        "from deepfer.edge.cli import build_parser\n"
        "build_parser()\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'matplotlib')]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=blocked_env(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
