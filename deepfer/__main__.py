"""``python -m deepfer``: the ``deepfer`` command (deepfer.cli)."""

from deepfer.cli import run

run()
