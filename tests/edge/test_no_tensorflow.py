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
            sys.executable, "-m", "deepfer", "run", "--source", str(media_dir / "woman2.mp4"),
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


#: Desktop modules the command may load to list its subcommands: the light registrars only.
REGISTRARS = {
    "deepfer.train",
    "deepfer.train.cli",
    "deepfer.evaluate",
    "deepfer.evaluate.cli",
    "deepfer.convert",
    "deepfer.convert.cli",
}
#: Module prefixes of the desktop stages.
DESKTOP = ("deepfer.data", "deepfer.evaluate", "deepfer.train", "deepfer.convert")


def test_every_edge_module_imports_without_tensorflow(tmp_path):
    code = (
        "import sys, importlib, pkgutil\n"
        "import deepfer.edge\n"
        "names = [m.name for m in pkgutil.walk_packages(deepfer.edge.__path__, 'deepfer.edge.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "assert len(names) > 30, names\n"
        "from deepfer.cli import build_parser\n"
        "build_parser()\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'matplotlib')]\n"
        "assert not heavy, heavy\n"
        f"desktop = [m for m in sys.modules if m.startswith({DESKTOP!r})"
        f" and m not in {sorted(REGISTRARS)!r}]\n"
        "assert not desktop, desktop\n"
        "print(len(names))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=blocked_env(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr


def imported(importtime_stderr: str) -> set[str]:
    """Module names from ``python -X importtime`` output."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_help_imports_no_desktop_code_and_nothing_heavy(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "deepfer", "--help"],
        capture_output=True, text=True, env=blocked_env(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0 and "detect" in proc.stdout and "run" in proc.stdout
    names = imported(proc.stderr)
    assert "deepfer.cli" in names
    desktop = {n for n in names if n.startswith(DESKTOP)}
    assert desktop <= REGISTRARS, desktop
    assert not {n for n in names if n.split(".")[0] in ("numpy", "cv2", "tensorflow", "keras")}


def test_run_imports_no_desktop_code(tmp_path, media_dir, tiny_tflite_model):
    proc = subprocess.run(
        [
            sys.executable, "-X", "importtime", "-m", "deepfer", "run", "--source",
            str(media_dir / "woman2.mp4"), "--max-frames", "3", "--model", str(tiny_tflite_model),
        ],
        capture_output=True, text=True, timeout=120, env=blocked_env(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = imported(proc.stderr)
    assert {"deepfer.edge.daemon", "deepfer.edge.pipeline", "cv2"} <= names
    desktop = {n for n in names if n.startswith(DESKTOP)}
    assert desktop <= REGISTRARS, desktop
