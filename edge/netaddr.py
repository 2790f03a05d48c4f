"""Network addresses: the ``[HOST:]PORT`` of ``--preview``, whether a host is loopback, and
URLs without their passwords."""

from __future__ import annotations

import ipaddress
import re

#: The preview binds here unless told otherwise: it shows faces.
DEFAULT_HOST = "127.0.0.1"


def parse_host_port(value: str | int, default_host: str = DEFAULT_HOST) -> tuple[str, int]:
    """``"8080"`` | ``"0.0.0.0:8080"`` | ``"[::1]:8080"`` -> ``(host, port)``.

    Without a host, ``default_host`` (loopback). Port 0 means "pick a free port".
    Raises ValueError saying what is wrong with the value.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError(f"expected [HOST:]PORT, got {value!r}")
    if not text:
        raise ValueError("expected [HOST:]PORT, got an empty value")

    if text.startswith("["):  # [IPv6]:PORT
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ValueError(f"expected [IPV6]:PORT such as [::1]:8080, got {value!r}")
        host, port_text = text[1:end], text[end + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in {value!r} is not an IPv6 address") from None
    elif text.count(":") > 1:
        raise ValueError(f"put an IPv6 host in brackets, e.g. [::1]:8080; got {value!r}")
    elif ":" in text:
        host, port_text = text.rsplit(":", 1)
        host = host.strip() or default_host
    else:
        host, port_text = default_host, text

    if any(c.isspace() for c in host) or "/" in host:
        raise ValueError(f"bad host {host!r} in {value!r}")
    port_text = port_text.strip()
    if not port_text.isdigit():
        raise ValueError(f"port must be a number 0..65535, got {port_text!r} in {value!r}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port must be 0..65535, got {port} in {value!r}")
    return host, port


def is_loopback(host: str) -> bool:
    """True for 127.x.x.x, ::1 and ``localhost``; False for 0.0.0.0, :: and the rest."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip()).is_loopback
    except ValueError:
        return False


#: Query keys whose values are secrets in camera URLs (``snapshot.cgi?user=admin&pwd=...``).
SECRET_KEYS = re.compile(r"(?i)^(pass|passwd|password|pwd|token|key|secret|auth|sig)")


def redact_url(url: str) -> str:
    """The URL with any password in it replaced by ``***``, for messages, logs and stats: an
    IP camera's ``rtsp://admin:secret@cam/stream`` (the user part ends at the last ``@``
    before the path, as FFmpeg reads it) and the ``pwd=`` of its query, a broker URL."""
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    user, at, host = netloc.rpartition("@")
    if at and ":" in user:
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    path, q, query = tail.partition("?")
    if q:
        query, h, fragment = query.partition("#")
        pairs = [
            f"{k}=***" if v and SECRET_KEYS.match(k) else f"{k}{e}{v}"
            for k, e, v in (p.partition("=") for p in query.split("&"))
        ]
        tail = f"{path}?{'&'.join(pairs)}{h}{fragment}"
    return f"{scheme}://{netloc}{tail}"
