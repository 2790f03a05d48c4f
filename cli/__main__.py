"""``python -m deepfer.cli``: the ``deepfer`` command."""

from deepfer.cli import run

run()
