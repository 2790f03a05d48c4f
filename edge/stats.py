"""Run statistics: frames, frames with a face, fps, per-stage median milliseconds, peak RSS."""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

import numpy as np

#: Stages the daemon times, in pipeline order (``total`` is the whole frame).
STAGES = ("capture", "detect", "classify", "track", "output", "total")


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB.

    Linux: VmHWM of /proc/self/status, which starts afresh at exec (``ru_maxrss`` keeps the
    peak of the process that spawned us, e.g. a test runner with TensorFlow loaded).
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


class _Ring:
    """The last ``size`` values (float32), for medians over a bounded window."""

    def __init__(self, size: int):
        self.values = np.zeros(size, np.float32)
        self.n = 0

    def add(self, value: float) -> None:
        self.values[self.n % len(self.values)] = value
        self.n += 1

    def median(self) -> float:
        count = min(self.n, len(self.values))
        return float(np.median(self.values[:count])) if count else 0.0


class RunStats:
    """Counts frames and stage times; medians over the last ``window`` frames."""

    def __init__(self, stages: tuple[str, ...] = STAGES, window: int = 10000):
        self.stages = stages
        self.window = window
        self.frames = 0
        self.frames_with_face = 0
        self.faces = 0
        self.started = time.monotonic()
        self.cpu_started = time.process_time()
        self._stopped: tuple[float, float] | None = None
        self._all = {s: _Ring(window) for s in stages}
        self._reset_interval()

    def _reset_interval(self) -> None:
        self._interval = {s: _Ring(2048) for s in self.stages}
        self._interval_frames = 0
        self._interval_faces = 0
        self._interval_start = time.monotonic()

    def start(self) -> None:
        """(Re)start the clock, e.g. when the first frame is asked for."""
        self.started = time.monotonic()
        self.cpu_started = time.process_time()
        self._interval_start = self.started

    def stop(self) -> None:
        """Freeze the clocks (the loop is over; shutdown time is not frame time)."""
        self._stopped = (time.monotonic(), time.process_time())

    def add_frame(self, stage_ms: dict[str, float], faces: int) -> None:
        self.frames += 1
        self.faces += faces
        self.frames_with_face += faces > 0
        self._interval_frames += 1
        self._interval_faces += faces
        for stage, ms in stage_ms.items():
            if stage in self._all:
                self._all[stage].add(ms)
                self._interval[stage].add(ms)

    def interval_line(self) -> str:
        """``fps 28.7 faces/frame 1.0 | capture 1.2 detect 3.1 ... ms`` since the last call."""
        elapsed = max(time.monotonic() - self._interval_start, 1e-9)
        n = self._interval_frames
        stages = " ".join(f"{s} {self._interval[s].median():.1f}" for s in self.stages)
        line = (
            f"fps {n / elapsed:.1f}, frames {self.frames}, faces/frame "
            f"{self._interval_faces / max(n, 1):.2f} | median ms: {stages} | "
            f"peak RSS {peak_rss_mb():.0f} MiB"
        )
        self._reset_interval()
        return line

    def summary(self) -> dict[str, Any]:
        now, cpu_now = self._stopped or (time.monotonic(), time.process_time())
        elapsed = max(now - self.started, 1e-9)
        cpu = max(cpu_now - self.cpu_started, 1e-9)
        return {
            "frames": self.frames,
            "frames_with_face": self.frames_with_face,
            "face_share": round(self.frames_with_face / self.frames, 4) if self.frames else 0.0,
            "faces": self.faces,
            "elapsed_s": round(elapsed, 3),
            "fps": round(self.frames / elapsed, 2),
            "cpu_s": round(cpu, 3),
            "fps_per_cpu_s": round(self.frames / cpu, 2),
            "stage_ms_median": {s: round(self._all[s].median(), 3) for s in self.stages},
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
