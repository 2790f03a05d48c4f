"""[mqtt]: the broker settings, their one definition and every check (no paho needed).

``mqtt.url`` "" means no broker (events go to stdout). The checks report every problem at
once, each as ``(key, value, problem)``; :func:`check_mqtt_config` resolves a valid section
for one device (broker address, topic base, client id) or raises
:class:`~deepfer.edge.errors.MqttConfigError` listing them all. Semantics: docs/mqtt.md.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from deepfer.edge.errors import MqttConfigError
from deepfer.edge.netaddr import redact_url
from deepfer.edge.paths import user_path

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
#: mqtt.protocol values: auto = MQTT 5 where the broker offers it, else 3.1.1.
PROTOCOLS = ("auto", "5", "3.1.1")
#: Name of the systemd credential that holds the MQTT password (``LoadCredential=mqtt-password:...``).
MQTT_CREDENTIAL = "mqtt-password"


@dataclass
class MqttConfig:
    """The [mqtt] section (docs/mqtt.md)."""

    #: mqtt://[user@]host[:port] or mqtts://...; "" = no broker (events go to stdout).
    url: str = ""
    username: str = ""
    #: The password comes from this variable, password_file or the systemd credential.
    password_env: str = "DEEPFER_MQTT_PASSWORD"
    password_file: str = ""
    #: "" = deepfer-<device_id>.
    client_id: str = ""
    #: Topic prefix; {device_id} is filled in.
    prefix: str = "deepfer/{device_id}"
    qos: int = 1
    #: auto (MQTT 5 where the broker offers it, else 3.1.1) | 5 | 3.1.1
    protocol: str = "auto"
    #: State messages per second at most (0 = none).
    state_hz: float = 5.0
    #: Seconds between summaries (0 = none).
    summary_interval_s: float = 60.0
    #: Messages kept in the outbox (run.state_dir) until the broker has them; the oldest are
    #: dropped beyond.
    queue_size: int = 10000
    #: Messages older than this are dropped from the outbox (0 = no age limit; 7 days).
    max_age_s: float = 604800.0
    #: Seconds between outbox commits (one disk write each; messages go out once committed).
    commit_interval_s: float = 1.0
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_insecure: bool = False
    keepalive: int = 30
    #: Announce a Home Assistant device (MQTT discovery).
    ha_discovery: bool = False
    ha_prefix: str = "homeassistant"

    def check(self, device_id: str) -> Iterator[tuple[str, str]]:
        """``(key, problem)`` for every bad [mqtt] key (device_id is checked by the caller);
        without a URL (MQTT off) every other key is checked all the same."""
        off = ("mqtt.url", *(f"mqtt.{k}" for k in FILE_KEYS))  # (not read without a URL)
        for key, _value, problem in mqtt_problems(self, device_id):
            if not self.url and key in off:
                continue
            if key.startswith("mqtt."):
                yield key.split(".", 1)[1], problem


@dataclass(frozen=True)
class BrokerUrl:
    scheme: str
    host: str
    port: int
    username: str

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{user}{host}:{self.port}"


@dataclass(frozen=True)
class MqttSettings:
    """A checked [mqtt] section resolved for one device (no secrets in here)."""

    config: MqttConfig
    broker: BrokerUrl
    username: str
    client_id: str
    base: str


def _broker(url: str) -> tuple[BrokerUrl | None, str | None]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return None, f"not a broker URL ({exc})"
    if parts.scheme not in DEFAULT_PORTS:
        return None, "use mqtt://[user@]host[:port] or mqtts://[user@]host[:port]"
    if not parts.hostname:
        return None, "no host"
    if parts.password is not None:
        return None, (
            "no password in the URL: use mqtt.password_env, mqtt.password_file "
            f"or the systemd credential {MQTT_CREDENTIAL!r}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None, "no path or query after host[:port]"
    scheme = parts.scheme
    return BrokerUrl(
        scheme, parts.hostname, port or DEFAULT_PORTS[scheme], parts.username or ""
    ), None


def parse_broker_url(url: str, key: str = "mqtt.url") -> BrokerUrl:
    """``mqtt://[user@]host[:port]`` or ``mqtts://...``; a password in the URL is refused."""
    broker, problem = _broker(url)
    if broker is None:
        raise MqttConfigError([(key, redact_url(url), problem)])
    return broker


def device_id_problem(device_id: str) -> str | None:
    """Why ``device_id`` cannot be one MQTT topic level, or None."""
    if not isinstance(device_id, str) or not device_id:
        return "must not be empty"
    if "/" in device_id:
        return "must be a single topic level (no '/')"
    if "+" in device_id or "#" in device_id:
        return "must not contain the MQTT wildcards '+' or '#'"
    if device_id.startswith("$"):
        return "must not start with '$' (reserved for the broker)"
    if any(c.isspace() or ord(c) < 32 for c in device_id):
        return "must not contain spaces or control characters"
    if len(device_id) > 64:
        return "must be at most 64 characters"
    return None


def topic_problem(topic: str) -> str | None:
    """Why ``topic`` cannot be a topic prefix (wildcards, empty levels, ...), or None."""
    if not topic:
        return "must not be empty"
    if "+" in topic or "#" in topic:
        return "must not contain the MQTT wildcards '+' or '#'"
    if topic.startswith("/") or topic.endswith("/") or "//" in topic:
        return "must not have empty levels (leading, trailing or double '/')"
    if topic.startswith("$"):
        return "must not start with '$' (reserved for the broker)"
    if "\0" in topic or any(ord(c) < 32 for c in topic):
        return "must not contain control characters"
    if len(topic.encode()) > 60000:
        return "is too long"
    return None


def _base(prefix: str, device_id: str, key: str) -> tuple[str | None, list[tuple[str, Any, str]]]:
    problem = device_id_problem(device_id)
    if problem:
        return None, [("device_id", device_id, problem)]
    try:
        topic = prefix.format(device_id=device_id)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        return None, [(key, prefix, f"only {{device_id}} can be filled in ({exc})")]
    problem = topic_problem(topic)
    if problem:
        return None, [(key, prefix, problem if topic == prefix else f"{topic!r} {problem}")]
    return topic, []


def base_topic(prefix: str, device_id: str, key: str = "mqtt.prefix") -> str:
    """The prefix with ``{device_id}`` filled in, validated."""
    topic, problems = _base(prefix, device_id, key)
    if problems:
        raise MqttConfigError(problems)
    return topic  # type: ignore[return-value]


def _number_problem(value: Any, lo: float, hi: float = math.inf, integer: bool = False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if ok and lo <= value <= hi:
        return None
    kind = "an integer" if integer else "a number"
    span = f">= {lo:g}" if hi == math.inf else f"in {lo:g}..{hi:g}"
    return f"must be {kind} {span}"


def _file_problem(path: str) -> str | None:
    full = user_path(path)
    if os.access(full, os.R_OK):
        return None
    return "the file " + ("does not exist" if not os.path.exists(full) else "is not readable")


#: [mqtt] keys naming files that are read when the sink starts.
FILE_KEYS = ("tls_ca", "tls_cert", "tls_key", "password_file")


def mqtt_problems(cfg: MqttConfig, device_id: str) -> list[tuple[str, Any, str]]:
    """Every problem of an [mqtt] section with a URL, as ``(key, value, problem)``.
    Files named for TLS and the password must be readable."""
    problems: list[tuple[str, Any, str]] = []

    def bad(key: str, value: Any, problem: str) -> None:
        problems.append((f"mqtt.{key}" if key != "device_id" else key, value, problem))

    url = str(cfg.url)
    broker, problem = _broker(url)
    if problem:
        bad("url", redact_url(url), problem)
    username = str(cfg.username or "")
    if broker and broker.username and username and broker.username != username:
        bad("username", username, f"differs from the user in mqtt.url ({broker.username!r})")
    _, base_problems = _base(str(cfg.prefix), device_id, "mqtt.prefix")
    problems += base_problems
    if cfg.protocol not in PROTOCOLS:
        bad("protocol", cfg.protocol, f"must be one of {', '.join(PROTOCOLS)}")
    if cfg.qos not in (0, 1, 2) or isinstance(cfg.qos, bool):
        bad("qos", cfg.qos, "must be 0, 1 or 2")
    limits = {
        "state_hz": (0, 1000, False),
        "summary_interval_s": (0, math.inf, False),
        "queue_size": (1, 10_000_000, True),
        "max_age_s": (0, math.inf, False),
        "commit_interval_s": (0.01, 60, False),
        "keepalive": (5, 65535, True),
    }
    for key, (lo, hi, integer) in limits.items():
        value = getattr(cfg, key)
        problem = _number_problem(value, lo, hi, integer)
        if problem:
            bad(key, value, problem)
    tls = {k: str(getattr(cfg, k) or "") for k in ("tls_ca", "tls_cert", "tls_key")}
    for key in ("tls_insecure", "ha_discovery"):
        if not isinstance(getattr(cfg, key), bool):
            bad(key, getattr(cfg, key), "must be true or false")
    if broker is not None and not broker.tls:
        for k, v in tls.items():
            if v:
                bad(k, v, f"TLS needs an mqtts:// URL (mqtt.url is {url!r})")
        if cfg.tls_insecure is True:
            bad("tls_insecure", True, f"only applies to mqtts:// (mqtt.url is {url!r})")
    if tls["tls_key"] and not tls["tls_cert"]:
        bad("tls_key", tls["tls_key"], "needs mqtt.tls_cert (the client certificate)")
    files = {k: str(getattr(cfg, k) or "") for k in FILE_KEYS}
    reported = {key for key, _, _ in problems}
    for k, v in files.items():
        problem = _file_problem(v) if v and f"mqtt.{k}" not in reported else None
        if problem:
            bad(k, v, problem)
    ha_prefix = str(cfg.ha_prefix)
    problem = topic_problem(ha_prefix)
    if problem:
        bad("ha_prefix", ha_prefix, problem)
    state_hz = cfg.state_hz
    if cfg.ha_discovery is True and _number_problem(state_hz, 0, 1000) is None and state_hz <= 0:
        bad("state_hz", state_hz, "Home Assistant discovery reads the state topic: set it > 0")
    return problems


def check_mqtt_config(cfg: MqttConfig, device_id: str) -> MqttSettings:
    """The [mqtt] section checked and resolved for ``device_id``; raises MqttConfigError
    listing every problem (the first one's key is ``err.key``)."""
    problems = mqtt_problems(cfg, device_id)
    if problems:
        raise MqttConfigError(problems)
    broker = parse_broker_url(str(cfg.url))
    return MqttSettings(
        config=cfg,
        broker=broker,
        username=broker.username or str(cfg.username or ""),
        client_id=str(cfg.client_id or "") or f"deepfer-{device_id}",
        base=base_topic(str(cfg.prefix), device_id),
    )
