"""Loading the edge daemon's settings: one typed config object, validated at start.

Values come from, lowest to highest priority: the defaults (``sections.py``), one TOML file
(``--config``), environment variables ``DEEPFER_<SECTION>_<KEY>`` (``DEEPFER_DEVICE_ID``
for the top-level ``device_id``) and command-line flags. Every error names the key path,
the value and where the value came from, e.g.::

    detector.scale_factor = 1.0 (from env DEEPFER_DETECTOR_SCALE_FACTOR): must be > 1

docs/edge.md has the reference with an example file; ``deepfer run --print-config`` prints
the effective settings as TOML (a password in a URL as ``***``).
"""

from __future__ import annotations

import difflib
import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepfer.edge.config.mqtt import device_id_problem
from deepfer.edge.config.sections import Config, key_types, sections, top_level_keys
from deepfer.edge.errors import ConfigError
from deepfer.edge.netaddr import redact_url
from deepfer.edge.paths import user_path

ENV_PREFIX = "DEEPFER_"
#: Settings that are URLs: shown through :func:`redact_url` (a camera's password).
URL_KEYS = ("mqtt.url", "source.uri")


# ---------------------------------------------------------------------------------------------
# Reading values


def _origin(where: str) -> str:
    return f" (from {where})" if where else ""


def _coerce(value: Any, typ: type, from_text: bool) -> Any:
    """``value`` as ``typ``; raises ValueError with what was expected."""
    if typ is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str):
            text = value.strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
        raise ValueError("expected true or false")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if from_text and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ValueError("expected an integer")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif from_text and isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise ValueError("expected a number") from None
        else:
            raise ValueError("expected a number")
        if not math.isfinite(number):
            raise ValueError("expected a finite number")
        return number
    if typ is str:
        if isinstance(value, str):
            if "\0" in value:  # no file name, topic or id can hold one (the OS refuses it)
                raise ValueError("a string holding a NUL character (\\u0000)")
            return value
        if from_text or isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. source = 0 in TOML
        raise ValueError("expected a string")
    raise TypeError(f"unsupported config type {typ!r}")


#: Keys that were replaced, and by what (checked before "unknown key").
REPLACED = {
    "tracker.ema_alpha": "tracker.smoothing_s, a half-life in seconds of stream time "
    "(ema_alpha 0.5 at 5 detections a second = 0.2)",
    "tracker.debounce_frames": "tracker.debounce_s, in seconds of stream time "
    "(3 detections at 5 a second = 0.4)",
    "detector.rescan_frames": "detector.rescan_s, in seconds of stream time "
    "(30 frames at 30 frames a second = 1.0)",
    "tracker.max_missed": "tracker.max_missed_s, in seconds of stream time "
    "(10 detections at 5 a second = 2.0)",
}


def _unknown(dotted: str, where: str, options: list[str]) -> str:
    """The problem line for a key we do not have: what replaced it, or the closest name."""
    if dotted in REPLACED:
        return f"{dotted}{_origin(where)}: replaced by {REPLACED[dotted]}"
    return f"{dotted}{_origin(where)}: unknown key" + _suggest(dotted.rpartition(".")[2], options)


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def read_toml(path: str | Path) -> dict[str, Any]:
    """The file as a dict; ConfigError naming the file, line and problem."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    path = user_path(path)
    try:
        data = path.read_bytes()
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise ConfigError(
                [f'config file {path}: UTF-16 text (Windows\' "Unicode"); save it as UTF-8']
            )
        # a UTF-8 byte-order mark (Windows editors write one) is not part of the TOML
        return tomllib.loads(data.decode("utf-8").removeprefix("\ufeff"))
    except FileNotFoundError:
        raise ConfigError([f"config file {path}: not found"]) from None
    except OSError as exc:
        raise ConfigError([f"config file {path}: cannot read ({exc.strerror or exc})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"config file {path}: not valid TOML ({exc})"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"config file {path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]
        ) from None
    except RecursionError:
        raise ConfigError([f"config file {path}: not valid TOML (nested too deep)"]) from None


def env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """``DEEPFER_<SECTION>_<KEY>`` variables -> ``{"section.key": text}`` and problems.

    Variables whose section is not one of ours (``DEEPFER_DATA``...) are not config and
    are left alone; the MQTT password variable is a secret, never a setting.
    """
    secs = sections()
    tops = top_level_keys()
    secret_vars = {"DEEPFER_MQTT_PASSWORD"}
    out: dict[str, str] = {}
    problems: list[str] = []
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or name in secret_vars:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        if rest in tops:
            out[rest] = text
            continue
        section, _, key = rest.partition("_")
        if section not in secs or not key:
            continue
        if key not in key_types(section):
            problems.append(_unknown(f"{section}.{key}", f"env {name}", list(key_types(section))))
            continue
        out[f"{section}.{key}"] = text
    return out, problems


def _flatten(data: Mapping[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    """A TOML document -> ``{"section.key": value}`` and problems (unknown keys)."""
    secs = sections()
    tops = top_level_keys()
    out: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in data.items():
        if name in tops:
            out[name] = value
        elif name in secs:
            if not isinstance(value, dict):
                problems.append(f"{name} = {value!r}{_origin(where)}: must be a [{name}] table")
                continue
            known = key_types(name)
            for key, v in value.items():
                if key not in known:
                    problems.append(_unknown(f"{name}.{key}", where, list(known)))
                else:
                    out[f"{name}.{key}"] = v
        else:
            problems.append(
                f"{name}{_origin(where)}: unknown section or key" + _suggest(name, [*secs, *tops])
            )
    return out, problems


def build_config(
    layers: list[tuple[str, Mapping[str, Any], bool]],
) -> Config:
    """Apply ``(origin, {"section.key": value}, from_text)`` layers in order, then validate."""
    config = Config()
    origins: dict[str, str] = {}
    problems: list[str] = []
    for where, values, from_text in layers:
        for dotted, raw in values.items():
            section, _, key = dotted.rpartition(".")
            if section and section not in sections():
                problems.append(
                    f"{dotted}{_origin(where)}: unknown section {section!r}"
                    + _suggest(section, list(sections()))
                )
                continue
            target = getattr(config, section) if section else config
            typ = key_types(section or None).get(key)
            if typ is None:
                problems.append(_unknown(dotted, where, list(key_types(section or None))))
                continue
            try:
                value = _coerce(raw, typ, from_text)
            except ValueError as exc:
                problems.append(f"{dotted} = {raw!r}{_origin(where)}: {exc}")
                continue
            setattr(target, key, value)
            origins[dotted] = where
    problems += check_config(config, origins)
    if problems:
        raise ConfigError(problems)
    return config


def check_config(config: Config, origins: Mapping[str, str] | None = None) -> list[str]:
    """Every problem with a config, as ``key = value (from ...): what is wrong``."""
    origins = origins or {}
    problems = []

    def report(dotted: str, problem: str) -> None:
        section, _, key = dotted.rpartition(".")
        value = getattr(getattr(config, section) if section else config, key)
        if dotted in URL_KEYS:  # never echo a password put in a URL
            value = redact_url(value)
        problems.append(f"{dotted} = {value!r}{_origin(origins.get(dotted, ''))}: {problem}")

    device_id = config.resolved_device_id()
    problem = device_id_problem(device_id)
    if problem:
        report("device_id", f"{problem} (it names MQTT topics)")
    for name in sections():
        section = getattr(config, name)
        checks = section.check(device_id) if name == "mqtt" else section.check()
        for key, problem in checks:
            report(f"{name}.{key}", problem)
    return problems


def load_config(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    flag_names: Mapping[str, str] | None = None,
    origin: str = "flag",
) -> Config:
    """Defaults < TOML file < ``DEEPFER_*`` env vars < ``overrides`` (flags, ``section.key``).

    ``flag_names`` maps a key to the flag that set it (``{"mqtt.url": "--mqtt"}``) so an
    error names the flag the user typed; by default ``--<last part of the key>``. ``origin``
    names what ``overrides`` are in errors (``flag``; ``argument`` from Python).
    """
    environ = os.environ if environ is None else environ
    layers: list[tuple[str, Mapping[str, Any], bool]] = []
    problems: list[str] = []
    if path:
        flat, bad = _flatten(read_toml(path), str(path))
        problems += bad
        layers.append((str(path), flat, False))
    env, bad = env_overrides(environ)
    problems += bad
    for dotted, text in env.items():
        name = ENV_PREFIX + dotted.replace(".", "_").upper()
        layers.append((f"env {name}", {dotted: text}, True))
    flag_names = flag_names or {}
    for dotted, value in (overrides or {}).items():
        if value is not None:
            flag = flag_names.get(dotted) or "--" + dotted.rpartition(".")[2].replace("_", "-")
            layers.append((f"{origin} {flag}", {dotted: value}, isinstance(value, str)))
    try:
        config = build_config(layers)
    except ConfigError as exc:
        raise ConfigError(problems + exc.problems) from None
    if problems:
        raise ConfigError(problems)
    return config


# ---------------------------------------------------------------------------------------------
# Writing


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string is JSON-compatible for our values


def to_toml(config: Config) -> str:
    """The effective config as a TOML document, a config file to reuse. It holds no secret:
    the MQTT password is never a setting, and a password a URL carries (an IP camera's
    ``rtsp://admin:secret@cam/stream``, a ``pwd=`` in its query) is printed as ``***``, with
    a comment above it saying so and how to give it."""
    lines = []
    data = config.to_dict()
    for key, value in data.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append("")
            lines.append(f"[{key}]")
            for k, v in value.items():
                dotted = f"{key}.{k}"
                if dotted in URL_KEYS and (shown := redact_url(v)) != v:
                    lines.append(
                        f"# {k}: its password is hidden (***); put it back as given in your "
                        f"config, or give the whole URL in {ENV_PREFIX}{key.upper()}_{k.upper()}"
                    )
                    v = shown
                lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"
