"""The default output: event messages as JSON lines on stdout (or another text stream)."""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from deepfer.edge.outputs.base import Sink


class StdoutSink(Sink):
    """One event message per line."""

    name = "stdout"

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream or sys.stdout
        self.count = 0

    def publish_event(self, event: dict[str, Any]) -> None:
        self.stream.write(json.dumps(event, separators=(",", ":")) + "\n")
        self.stream.flush()
        self.count += 1

    def stats(self) -> dict[str, Any]:
        return {"events": self.count}

    def close(self) -> None:
        self.stream.flush()
