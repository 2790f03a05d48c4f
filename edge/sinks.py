"""Where events go: a tiny base class, and the stdout sink (JSON lines).

The MQTT publisher (``mqtt_publisher.py``) implements the same interface.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any


class Sink:
    """Receives events and snapshots from the pipeline thread."""

    name = "sink"

    def start(self) -> None:
        """Open connections; must not block on a missing peer."""

    def publish_event(self, event: dict[str, Any]) -> None:
        """A start / change / end message; must not be lost silently."""
        raise NotImplementedError

    def publish_state(self, state: dict[str, Any]) -> None:
        """The latest faces (may be rate-limited or ignored)."""

    def stats(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        """Flush what is pending and release resources."""


class StdoutSink(Sink):
    """JSON lines on stdout (or another text stream), one message per line."""

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
