"""Where results go: the tiny :class:`Sink` base class every output implements.

The daemon fans out each frame's :class:`~deepfer.edge.pipeline.FrameResult` to every
sink's :meth:`Sink.on_frame` and each event message (``messages.py``) to
:meth:`Sink.publish_event`, all on the pipeline thread. Outputs: ``stdout.py`` (JSON lines),
``mqtt/`` (a broker), ``preview/`` (the live page).
"""

from __future__ import annotations

from typing import Any


class OutputClosed(Exception):
    """An output can take nothing more (e.g. the reader of stdout left): the daemon drops it,
    and stops when no output is left."""


class Sink:
    """Receives results from the pipeline thread; must never block it for long."""

    name = "sink"
    #: Looks at the pixels of every frame (the preview): the capture loop then decodes them
    #: all; otherwise only the frames the pipeline detects on.
    wants_pixels = False

    def start(self) -> None:
        """Open connections and servers; must not block on a missing peer."""

    def next_seq(self) -> int | None:
        """The ``seq`` the next event should carry, for an output that keeps it across
        restarts (the MQTT outbox); None for the others."""
        return None

    def on_frame(self, result: Any) -> None:
        """One processed frame (a FrameResult); may be rate-limited or ignored."""

    def publish_event(self, event: dict[str, Any]) -> None:
        """A start / change / end message; must not be lost silently."""

    def stats(self) -> dict[str, Any]:
        """This sink's figures for the stats line and the run summary."""
        return {}

    def close(self) -> None:
        """Flush what is pending and release resources."""

    def __enter__(self) -> Sink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
