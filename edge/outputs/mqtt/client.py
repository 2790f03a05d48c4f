"""The paho-mqtt 2.x client of the MQTT sink: TLS context, credentials, last will, MQTT 5 or
3.1.1, and the background connect; what went wrong, in words. The sink (``sink.py``) owns the
callbacks, the outbox and the threads; this module only builds and connects clients.
Imported when a sink starts (paho is imported inside the functions).
"""

from __future__ import annotations

import logging
import ssl
import sys
from typing import Any

from deepfer.edge.config.mqtt import MqttConfig, MqttSettings
from deepfer.edge.errors import MqttConfigError
from deepfer.edge.paths import user_path

log = logging.getLogger("deepfer.edge.outputs.mqtt.sink")


def tls_context(s: MqttConfig) -> ssl.SSLContext:
    """Verifies the broker against tls_ca (else the system CAs); optional client certificate."""
    try:
        ctx = ssl.create_default_context(cafile=user_path(s.tls_ca) if s.tls_ca else None)
    except (ssl.SSLError, OSError) as exc:
        raise MqttConfigError([("mqtt.tls_ca", s.tls_ca, f"not a usable CA file ({exc})")]) from exc
    if s.tls_cert:
        try:
            ctx.load_cert_chain(user_path(s.tls_cert), user_path(s.tls_key) if s.tls_key else None)
        except (ssl.SSLError, OSError) as exc:
            problem = f"cannot load the client certificate/key ({exc})"
            raise MqttConfigError([("mqtt.tls_cert", s.tls_cert, problem)]) from exc
    if s.tls_insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


#: Python's default TLS context (``tls_context``) checks certificates strictly from 3.13 on
#: (``ssl.create_default_context`` adds VERIFY_X509_STRICT): what OpenSSL says for a hand-made
#: CA that older Pythons took. (Read from the version, not from a default context made at
#: import: that loads the system's CA store, 65 ms of every start for an error's hint.)
STRICT_X509 = sys.version_info >= (3, 13)
STRICT_WORDS = (
    "key usage",
    "Authority Key Identifier",
    "Basic Constraints",
    "Subject Key Identifier",
)


def describe_connect_error(exc: BaseException | None) -> str:
    if exc is None:
        return "connection failed"
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = f"TLS: the broker's certificate cannot be verified ({exc.verify_message}); "
        if STRICT_X509 and any(w in str(exc.verify_message) for w in STRICT_WORDS):
            return why + (
                "Python 3.13 and later check certificates strictly (RFC 5280): a CA made by "
                "hand needs keyUsage keyCertSign and critical basicConstraints, the broker's "
                "certificate an authorityKeyIdentifier; make them again as docs/mqtt.md (TLS) shows"
            )
        return why + (
            "check mqtt.tls_ca (the CA that signed the broker's certificate) and the host name"
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc}); check mqtt.tls_* and that the port speaks TLS"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the broker running and listening on that port?)"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def new_client(
    settings: MqttSettings,
    protocol: int,
    *,
    password: str | None,
    ssl_context: ssl.SSLContext | None,
    will_topic: str,
    reconnect_delay_s: tuple[float, float],
    max_inflight: int,
) -> Any:
    """A paho client for MQTT 5 (``protocol`` 5) or 3.1.1 (3): credentials, TLS, the retained
    ``offline`` last will on ``will_topic``, reconnect backoff; no callbacks yet."""
    import paho.mqtt.client as mqtt

    s, c = settings, settings.config
    v5 = protocol == 5
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=s.client_id,
        clean_session=None if v5 else True,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
    )
    # paho's own messages are internals (and noisy while reconnecting): debug level only;
    # the sink logs what went wrong in words.
    paho_log = logging.getLogger(f"{log.name}.paho")
    if paho_log.isEnabledFor(logging.DEBUG):
        client.on_log = lambda _c, _u, _level, buf: paho_log.debug("%s", buf)
    if s.username or password:
        client.username_pw_set(s.username or None, password)
    if ssl_context is not None:
        client.tls_set_context(ssl_context)
        if c.tls_insecure:
            client.tls_insecure_set(True)
    client.will_set(will_topic, "offline", qos=1, retain=True)
    client.reconnect_delay_set(*reconnect_delay_s)
    client.max_inflight_messages_set(max_inflight)
    return client


def connect_in_background(client: Any, settings: MqttSettings, state_expiry_s: float) -> Any:
    """Starts connecting in paho's network thread. MQTT 5: a clean start whose session ends
    with the connection (session expiry 0): the outbox, not the broker, keeps what is
    unacknowledged. Returns the PUBLISH properties for state messages (MQTT 5: expiry after
    ``state_expiry_s``) or None (3.1.1)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    kwargs: dict[str, Any] = {}
    state = None
    if client.protocol == 5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
        kwargs = {"clean_start": True, "properties": props}
        state = Properties(PacketTypes.PUBLISH)
        state.MessageExpiryInterval = state_expiry_s
    client.connect_async(
        settings.broker.host, settings.broker.port, keepalive=settings.config.keepalive, **kwargs
    )
    client.loop_start()
    return state
