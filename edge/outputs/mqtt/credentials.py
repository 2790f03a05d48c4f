"""Secrets (the MQTT password) from a file, an environment variable or systemd credentials.

Never from a command-line argument: those show up in ``ps`` and shell history.
Order: an explicit file, then the named environment variable, then
``$CREDENTIALS_DIRECTORY/<credential>`` (systemd ``LoadCredential=``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from deepfer.edge.config.mqtt import MQTT_CREDENTIAL
from deepfer.edge.errors import SecretError
from deepfer.edge.paths import user_path


@dataclass(frozen=True)
class Secret:
    value: str | None
    source: str  # where it came from, for logs (never the value)

    def __repr__(self) -> str:  # keep the value out of logs and tracebacks
        return f"Secret(source={self.source!r}, value={'***' if self.value else None})"


def _read_secret_file(path: Path, key: str, allow_empty: bool = False) -> str:
    try:
        text = path.read_text(encoding="utf-8-sig")  # (a Windows editor's byte-order mark)
    except OSError as exc:
        raise SecretError(f"{key} = {str(path)!r}: cannot read it ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise SecretError(
            f"{key} = {str(path)!r}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    value = text.rstrip("\r\n")
    if not value and not allow_empty:
        raise SecretError(f"{key} = {str(path)!r}: the file is empty")
    return value


def resolve_secret(
    *,
    file: str | os.PathLike | None = None,
    env: str | None = None,
    credential: str | None = MQTT_CREDENTIAL,
    key: str = "mqtt",
    environ: dict[str, str] | None = None,
) -> Secret:
    """The secret and where it came from; ``Secret(None, "none")`` when none is configured.

    ``key`` is the config section used in error messages (``mqtt.password_file``).
    A configured file that cannot be read is an error; a named variable that is not set
    falls through to the systemd credential.
    """
    environ = os.environ if environ is None else environ
    if file:
        path = user_path(file)
        return Secret(_read_secret_file(path, f"{key}.password_file"), f"file {path}")
    if env:
        value = environ.get(env)
        if value:
            return Secret(value, f"environment variable {env}")
    cred_dir = environ.get("CREDENTIALS_DIRECTORY")
    empty = ""
    if credential and cred_dir:
        path = Path(cred_dir) / credential
        if path.is_file():
            value = _read_secret_file(path, "CREDENTIALS_DIRECTORY", allow_empty=True)
            if value:  # an empty credential (install.sh makes the file empty) means no password
                return Secret(value, f"systemd credential {credential}")
            empty = ": empty"
    tried = [f"${env}"] if env else []
    tried.append(f"$CREDENTIALS_DIRECTORY/{credential}{empty}" if credential else "no credential")
    return Secret(None, "none (looked at " + ", ".join(tried) + ")")
