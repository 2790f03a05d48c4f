"""Argument parsing for ``deepfer detect``, ``deepfer run`` and ``deepfer view``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the edge subcommands (filled in by the edge pipeline work)."""
