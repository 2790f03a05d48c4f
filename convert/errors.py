"""The conversion stage's error."""

from __future__ import annotations

from deepfer.edge.errors import DeepFERError


class ConvertError(DeepFERError, RuntimeError):
    """A model or data that cannot be converted, with what and where."""
