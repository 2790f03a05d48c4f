"""Outputs: every one is a :class:`~deepfer.edge.outputs.base.Sink` (``base.py``):
``stdout.py`` (JSON lines), ``mqtt/`` (broker: ``sink.py``, ``ha_discovery.py``,
``credentials.py``), ``preview/`` (the live page), ``summary.py`` (period counts)."""
