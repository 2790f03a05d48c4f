"""The 3-minute soak (benchmarks/soak.py) as a background run of the suite.

Its minutes are real time, mostly waiting (a video played at its own rate, broker outages),
and one after the other with the rest they were a fifth of the CI run. So when the soak test
is among the collected tests, ``tests/conftest.py`` starts the run as soon as collection ends
and puts the test last; the test then waits for the run's result (or starts it itself when
run alone). Nothing about the run changes: same script, same minutes, same assertions.

Under pytest-xdist (``pytest -n auto``) the controller starts the run, once, when the first
worker reports the soak test among what it collected, in a folder every worker is told of
(``workerinput``); the worker that is given the test waits for the run's files there. So no
worker spends the three minutes waiting while the others work.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from mosquitto import find_mosquitto

ROOT = Path(__file__).resolve().parents[1]
SOAK_TEST = "test_soak_three_minutes_loses_nothing"
MINUTES = 3
_KEY = pytest.StashKey["SoakRun"]()
_FOLDER_KEY = pytest.StashKey[Path]()
#: the ``workerinput`` entry naming the controller's soak folder
WORKER_INPUT = "deepfer_soak_folder"


class SoakRun:
    """``benchmarks/soak.py --minutes 3`` on woman2.mp4, writing its JSON, its log and, when
    it ends, its exit status to ``folder``. ``SoakRun.attach(folder)`` follows a run another
    process started (an xdist worker following the controller's)."""

    def __init__(self, folder: Path, proc: subprocess.Popen | None = None):
        self.folder = Path(folder)
        self.out = self.folder / "soak.json"
        self.log = self.folder / "soak.log"
        self.exit = self.folder / "exit"
        self.proc = proc

    @classmethod
    def start(cls, media_dir: Path, folder: Path) -> SoakRun:
        folder = Path(folder)
        with open(folder / "soak.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--minutes", str(MINUTES),
                 "--video", str(Path(media_dir) / "woman2.mp4"),
                 "--json", str(folder / "soak.json")],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        run = cls(folder, proc)
        # the exit status as a file, for a worker process that cannot wait() on this child
        threading.Thread(target=run._write_exit, daemon=True).start()
        return run

    @classmethod
    def attach(cls, folder: Path) -> SoakRun | None:
        """The run started in ``folder`` by another process, or None if none was."""
        run = cls(folder)
        return run if run.log.is_file() else None

    def _write_exit(self) -> None:
        code = self.proc.wait()
        try:
            (self.folder / "exit.part").write_text(str(code))
            os.replace(self.folder / "exit.part", self.exit)
        except OSError:
            pass  # the folder was removed at the end of the session

    def wait(self, timeout: float) -> tuple[dict | None, int, str]:
        """The run's JSON result (None if it wrote none), exit status and log tail."""
        if self.proc is not None:
            try:
                code = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.stop()
                code = self.proc.returncode
        else:
            deadline = time.monotonic() + timeout
            while not self.exit.is_file() and time.monotonic() < deadline:
                time.sleep(0.5)
            code = int(self.exit.read_text()) if self.exit.is_file() else -1  # -1: timed out
        tail = self.log.read_text(errors="replace")[-3000:]
        result = json.loads(self.out.read_text()) if self.out.is_file() else None
        return result, code, tail

    def stop(self) -> None:
        """Kill the run and what it started (its daemon and broker: a session of their own, so
        that none is left running, as a looping daemon once was, eating a third of a core)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _can_start(config) -> Path | None:
    """The media folder when the soak can run here (mosquitto and woman2.mp4), else None."""
    if config.option.collectonly or not os.environ.get("DEEPFER_DATA"):
        return None
    media = Path(os.environ["DEEPFER_DATA"]) / "media"
    if not (media / "woman2.mp4").is_file() or find_mosquitto() is None:
        return None
    return media


def start_early(config, items) -> None:
    """Start the soak now when its test was collected and can run (not in an xdist worker:
    there the controller starts it, see :func:`start_for_workers`)."""
    if hasattr(config, "workerinput") or not any(item.name == SOAK_TEST for item in items):
        return
    media = _can_start(config)
    if media is not None:
        config.stash[_KEY] = SoakRun.start(media, Path(tempfile.mkdtemp(prefix="deepfer-soak-")))


def worker_folder(config) -> Path:
    """(xdist controller) The folder the controller's run will use, made once."""
    if _FOLDER_KEY not in config.stash:
        config.stash[_FOLDER_KEY] = Path(tempfile.mkdtemp(prefix="deepfer-soak-"))
    return config.stash[_FOLDER_KEY]


def start_for_workers(config, node_ids) -> None:
    """(xdist controller) Start the run once, when a worker collected the soak test."""
    if _KEY in config.stash or not any(i.endswith("::" + SOAK_TEST) for i in node_ids):
        return
    media = _can_start(config)
    if media is not None:
        config.stash[_KEY] = SoakRun.start(media, worker_folder(config))


def started(config) -> SoakRun | None:
    """The run started for this session: by this process, or by the xdist controller."""
    if hasattr(config, "workerinput"):
        folder = config.workerinput.get(WORKER_INPUT)
        return SoakRun.attach(Path(folder)) if folder else None
    return config.stash.get(_KEY, None)


def finish(config) -> None:
    """At the end of the session: stop a run nobody waited for and remove its folder."""
    run = config.stash.get(_KEY, None)
    if run is not None:
        run.stop()
    folder = config.stash.get(_FOLDER_KEY, None) or (run.folder if run is not None else None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
