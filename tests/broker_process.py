"""The process side shared by the test brokers (:mod:`mosquitto`, :mod:`rabbitmq`): a free
loopback port, one log file over restarts, start = spawn + wait until the port listens,
``restart()``, ``running()``, ``log()`` and use as a context manager. A subclass writes its
config in ``start()`` and hands the command to :meth:`BrokerProcess._spawn`, and says how to
stop in ``stop()``.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerProcess:
    """One broker process listening on ``self.port``; its output goes to ``self.log_path``."""

    name = "broker"
    proc: subprocess.Popen | None = None
    starts = 0

    def __init__(self, workdir: Path, port: int | None, log_name: str):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log_path = self.workdir / log_name

    def _spawn(self, argv: list[str], timeout: float, poll_s: float, **popen) -> None:
        """Starts ``argv`` (output appended to the log) and returns once the port accepts a
        connection; raises with the log when the process exits or the port stays closed."""
        log = open(self.log_path, "a")  # noqa: SIM115 (the process owns it)
        log.write(f"--- start {self.starts + 1}\n")
        log.flush()
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, **popen)
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(poll_s)
        self.stop()
        raise RuntimeError(
            f"{self.name} did not listen on {self.port} in {timeout} s:\n{self.log()}"
        )

    def start(self, timeout: float = 10.0) -> BrokerProcess:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
