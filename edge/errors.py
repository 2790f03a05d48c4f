"""Every DeepFER error, under one base class.

:class:`DeepFERError` means "the user's input or setup is wrong": the ``deepfer`` command
prints ``deepfer <command>: error: <message>`` and exits with the error's ``exit_code``.
Any other exception is a bug and keeps its traceback. Desktop stages (train/, convert/)
subclass :class:`DeepFERError` too; the edge errors live here so that each module raises
them without importing its neighbours.
"""

from __future__ import annotations

from collections.abc import Iterable


class DeepFERError(Exception):
    """Base of every error the ``deepfer`` command reports in one line."""

    #: The command's exit status when this error ends it.
    exit_code = 2


class ConfigError(DeepFERError):
    """One or more bad settings; ``problems`` lists them, each naming key, value and origin."""

    def __init__(self, problems: Iterable[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return f"config error: {self.problems[0]}"
        return "config errors:\n  " + "\n  ".join(self.problems)


class MqttConfigError(ConfigError):
    """Bad [mqtt] settings: each problem is ``(key, value, problem)``; ``key``/``value`` are
    the first one's (``mqtt.qos``)."""

    def __init__(self, problems: Iterable[tuple[str, object, str]]):
        self.items = list(problems)
        self.key, self.value, self.problem = self.items[0]
        super().__init__([f"{k} = {v!r}: {p}" for k, v, p in self.items])

    def __str__(self) -> str:
        return "; ".join(self.problems)


class SecretError(DeepFERError):
    """A secret was asked for but cannot be read; the message names where."""


class SourceError(DeepFERError):
    """A source that cannot be opened or is not understood, with what and why."""


class SourceUnavailable(SourceError):
    """A live source (a camera, a stream) that cannot be opened now: unplugged, not yet up
    at boot, its server away. Exit 75 (EX_TEMPFAIL), so that a service manager tries again
    later, where exit 2 (a wrong setting) is not worth retrying."""

    exit_code = 75


class DetectorError(DeepFERError):
    """A detector that cannot be built (missing file, OpenCV without it), saying what to do."""


class ModelNotFound(DeepFERError):
    """No model given and the shipped default is not installed."""


class ModelInfoError(DeepFERError):
    """A missing or invalid sidecar, with the file and what is wrong."""


class ModelLoadError(DeepFERError):
    """A model file that is missing, unreadable or not a TFLite model."""


class RuntimeUnavailable(DeepFERError):
    """No TFLite runtime could be imported."""


class OutputError(DeepFERError):
    """An output that cannot be written or served (a file, the preview's port)."""


class InputError(DeepFERError):
    """An input that is missing or cannot be read: a file, or a picture given from Python."""
