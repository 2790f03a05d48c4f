"""The 3-minute soak (benchmarks/soak.py) as a background run of the suite.

Its minutes are real time, mostly waiting (a video played at its own rate, broker outages),
and one after the other with the rest they were a fifth of the CI run. So when the soak test
is among the collected tests, ``tests/conftest.py`` starts the run as soon as collection ends
and puts the test last; the test then waits for the run's result (or starts it itself when
run alone). Nothing about the run changes: same script, same minutes, same assertions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mosquitto import find_mosquitto

ROOT = Path(__file__).resolve().parents[1]
SOAK_TEST = "test_soak_three_minutes_loses_nothing"
MINUTES = 3
_KEY = pytest.StashKey["SoakRun"]()


class SoakRun:
    """``benchmarks/soak.py --minutes 3`` on woman2.mp4, writing its JSON and log to ``folder``."""

    def __init__(self, media_dir: Path, folder: Path):
        self.folder = Path(folder)
        self.out = self.folder / "soak.json"
        self.log = self.folder / "soak.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--minutes", str(MINUTES),
                 "--video", str(Path(media_dir) / "woman2.mp4"), "--json", str(self.out)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def wait(self, timeout: float) -> tuple[dict | None, int, str]:
        """The run's JSON result (None if it wrote none), exit status and log tail."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        tail = self.log.read_text(errors="replace")[-3000:]
        result = json.loads(self.out.read_text()) if self.out.is_file() else None
        return result, code, tail

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_early(config, items) -> None:
    """Start the soak now when its test was collected and can run (mosquitto, the media)."""
    if not any(item.name == SOAK_TEST for item in items) or config.option.collectonly:
        return
    media = Path(os.environ.get("DEEPFER_DATA", "")) / "media"
    if not os.environ.get("DEEPFER_DATA") or not (media / "woman2.mp4").is_file():
        return
    if find_mosquitto() is None:
        return
    config.stash[_KEY] = SoakRun(media, Path(tempfile.mkdtemp(prefix="deepfer-soak-")))


def started(config) -> SoakRun | None:
    return config.stash.get(_KEY, None)


def finish(config) -> None:
    """At the end of the session: stop a run nobody waited for and remove its folder."""
    run = config.stash.get(_KEY, None)
    if run is not None:
        run.stop()
        shutil.rmtree(run.folder, ignore_errors=True)
