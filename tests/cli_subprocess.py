"""Run the `deepfer` command in a subprocess, as a user would, without the caller's settings."""

from __future__ import annotations

import os
import subprocess
import sys


def env_without_settings(**extra: str) -> dict[str, str]:
    """This process's environment without ``DEEPFER_*`` settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPFER_")}
    env.update(extra)
    return env


def deepfer(*args, env=None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m deepfer ARGS`` with text output captured."""
    return subprocess.run(
        [sys.executable, "-m", "deepfer", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or env_without_settings(),
    )
