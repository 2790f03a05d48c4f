"""Argument parsing for ``deepfer convert`` and ``deepfer benchmark``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the conversion subcommands (filled in by the conversion work)."""
