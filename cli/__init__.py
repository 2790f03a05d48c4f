"""The ``deepfer`` command: global flags and logging, subcommands from every installed stage.

Subcommands are registered through the entry-point group ``deepfer.commands`` (see
pyproject.toml): each entry point names a ``register(subparsers)`` function in a light
module (argparse only at import time) that adds its subcommand(s) with
``parser.set_defaults(handler=fn)``; ``fn(args) -> int`` imports what it needs when it runs.
So ``deepfer --help`` and ``deepfer run`` on a device never load the desktop stages, and a
Pi install without train/ simply has fewer subcommands.

A :class:`deepfer.edge.errors.DeepFERError` ends the command with
``deepfer <command>: error: <message>`` and the error's ``exit_code``; any other exception
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import entry_points

from deepfer.edge import __version__
from deepfer.edge.errors import DeepFERError

#: The entry-point group subcommands are registered in.
GROUP = "deepfer.commands"
#: Entry points listed first in ``deepfer --help`` (the rest follow by name).
FIRST = ("edge", "train", "convert")


def _registrars() -> list:
    found = sorted(entry_points(group=GROUP), key=lambda ep: ep.name)
    return sorted(found, key=lambda ep: FIRST.index(ep.name) if ep.name in FIRST else len(FIRST))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfer",
        description="DeepFER: facial emotion recognition for small devices.",
    )
    parser.add_argument("--version", action="version", version=f"deepfer {__version__}")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    loud.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    registrars = _registrars()
    if not registrars:  # metadata from before the entry points existed, or no install at all
        parser.exit(
            2,
            f"deepfer: no subcommands are registered (entry-point group {GROUP!r}); "
            "reinstall DeepFER: pip install -e . (or pip install 'deepfer[edge]')\n",
        )
    for ep in registrars:
        ep.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.WARNING - 10 * min(args.verbose + 1, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except DeepFERError as exc:
        print(f"deepfer {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `deepfer detect photo.jpg | head -1`: the reader left; stop quietly, as cat does
        from deepfer.edge.outputs.stdout import silence_stdout

        silence_stdout()
        return 141


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
