"""The ``deepfer`` command. Subcommands import what they need when they run."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from deepfer.edge import __version__

#: Modules that add subcommands; each has ``register(subparsers)`` and imports
#: only argparse-level code at import time (heavy imports happen in handlers).
COMMAND_MODULES = (
    "deepfer.edge.commands",  # detect, run, view
    "deepfer.train.cli",  # train, evaluate
    "deepfer.convert.cli",  # convert, benchmark
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfer",
        description="DeepFER: facial emotion recognition for small devices.",
    )
    parser.add_argument("--version", action="version", version=f"deepfer {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose + 1, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
