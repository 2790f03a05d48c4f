"""The default output: event messages as JSON lines on stdout (or another text stream).

When the reader leaves (``deepfer run | head -3``), writing fails with a broken pipe: the sink
points stdout at /dev/null (so the interpreter's final flush does not fail again) and raises
:class:`OutputClosed`, once.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any

from deepfer.edge.outputs.base import OutputClosed, Sink


def silence_stdout() -> None:
    """Point stdout at /dev/null (after a broken pipe), so later writes and the final flush
    do not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


class StdoutSink(Sink):
    """One event message per line."""

    name = "stdout"

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream or sys.stdout
        self.count = 0
        self.reader_gone = False

    def publish_event(self, event: dict[str, Any]) -> None:
        if self.reader_gone:
            return
        try:
            self.stream.write(json.dumps(event, separators=(",", ":")) + "\n")
            self.stream.flush()
        except BrokenPipeError:
            self.reader_gone = True
            if self.stream is sys.stdout:
                silence_stdout()
            raise OutputClosed("stdout: the reader closed the pipe") from None
        self.count += 1

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"events": self.count}
        if self.reader_gone:
            stats["reader_gone"] = True
        return stats

    def close(self) -> None:
        if not self.reader_gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self.reader_gone = True
