"""Importing picamera2, and saying why it cannot be imported.

On Raspberry Pi OS picamera2 and its helpers (simplejpeg, libcamera's bindings) come from
apt, built against the system's numpy, and reach the venv through
``--system-site-packages``. A second numpy that pip installed into the venv (numpy 2 where
the system has 1.x, as OpenCV >= 4.12 asks for) shadows the system one, and the apt
packages' compiled parts then fail to import ("numpy.dtype size changed"). That is not a
missing camera: it is named, with both numpys and the fix, instead of falling back to a USB
camera that is not there.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from deepfer.edge.errors import SourceError

MISSING = (
    "on Raspberry Pi OS run `sudo apt install python3-picamera2` and make the venv with "
    "--system-site-packages (deploy/install.sh does both)"
)


def installed() -> bool:
    """Is there a picamera2 to import (whether or not it imports)?"""
    try:
        return importlib.util.find_spec("picamera2") is not None
    except (ImportError, ValueError):  # a stand-in module without a spec
        return True


def numpys() -> list[tuple[str, str]]:
    """(version, folder) of each numpy installed where this Python looks, first wins."""
    found = []
    for dist in importlib.metadata.distributions():
        if (dist.metadata["Name"] or "").lower() == "numpy":
            found.append((dist.version, str(Path(str(dist.locate_file(""))).resolve())))
    return found


def why_broken(exc: BaseException) -> str:
    """Words for picamera2 failing to import: the numpy clash where that is the cause."""
    text = f"{type(exc).__name__}: {exc}"
    have = numpys()
    clash = len({version for version, _ in have}) > 1
    if clash or "numpy" in text.lower():
        where = ", ".join(f"numpy {v} in {folder}" for v, folder in have) or "numpy"
        system = [v for v, folder in have if "dist-packages" in folder]
        pin = f"'numpy=={system[0]}'" if system else "the system's numpy version"
        old = system and system[0].split(".")[0].isdigit() and int(system[0].split(".")[0]) < 2
        cv = " 'opencv-python-headless<4.12'" if old else ""  # (4.12 on want numpy 2)
        return (
            f"picamera2 is installed but cannot be imported ({text}): its apt packages were "
            f"built for the system's numpy, and the venv has another ({where}). Put the "
            f"system's back: <venv>/bin/pip install {pin}{cv} (deploy/install.sh does this "
            "on a Pi), or rerun deploy/install.sh"
        )
    return f"picamera2 is installed but cannot be imported ({text}): check its apt packages"


def import_picamera2():
    """The ``Picamera2`` class; SourceError saying why when it cannot be had."""
    try:
        from picamera2 import Picamera2
    except ModuleNotFoundError as exc:
        if exc.name == "picamera2" or not installed():
            raise SourceError(f"picamera2 is not installed ({exc}): {MISSING}") from None
        raise SourceError(why_broken(exc)) from None
    except Exception as exc:  # a compiled part built for another numpy, a broken libcamera
        raise SourceError(why_broken(exc)) from None
    return Picamera2
