"""A real mosquitto broker for tests, on a free loopback port, plus a recording subscriber
and a throw-away certificate authority (openssl).

    broker = Mosquitto(tmp_path)          # or Mosquitto(tmp_path, tls=pki, password_file=...)
    broker.start(); ...; broker.restart(); ...; broker.stop()

The broker runs in the foreground as the current user (``user`` is set to it, so a root
run does not drop to the ``mosquitto`` user and lose access to the tmp folder).
"""

from __future__ import annotations

import getpass
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from broker_process import BrokerProcess, free_port  # noqa: F401 (re-exported)


def find_mosquitto() -> str | None:
    """The broker binary, or None when it is not installed."""
    for candidate in (
        shutil.which("mosquitto"),
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


#: Mark for tests that start a real broker: ``pytestmark = requires_mosquitto``.
requires_mosquitto = pytest.mark.skipif(
    find_mosquitto() is None, reason="mosquitto is not installed (apt-get install mosquitto)"
)


@dataclass
class Pki:
    """A CA and a server certificate for 127.0.0.1 / localhost, made by openssl."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


def make_ca(folder: Path, name: str = "ca") -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-subj", f"/CN=DeepFER test {name}", "-keyout", str(key), "-out", str(cert),
             # a CA as RFC 5280 has it (Python 3.13's strict check refuses one without)
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)  # fmt: skip
    return cert, key


def make_pki(folder: Path) -> Pki:
    """CA + server certificate (CN and SAN 127.0.0.1 and localhost) signed by it."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = make_ca(folder, "ca")
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.crt"
    ext = folder / "server.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", str(key), "-out", str(csr), cwd=folder)  # fmt: skip
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert), cwd=folder)  # fmt: skip
    return Pki(ca_cert, ca_key, cert, key)


def make_password_file(path: Path, user: str, password: str) -> Path:
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([tool, "-b", "-c", str(path), user, password], check=True, capture_output=True)
    path.chmod(0o600)
    return path


class Mosquitto(BrokerProcess):
    """One broker process; ``restart()`` brings it back on the same port."""

    name = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        tls: Pki | None = None,
        password_file: Path | None = None,
        persistence: bool = False,
    ):
        binary = find_mosquitto()
        if binary is None:
            raise FileNotFoundError("mosquitto is not installed")
        super().__init__(workdir, port, "mosquitto.log")
        self.binary = binary
        self.tls = tls
        self.password_file = password_file
        self.persistence = persistence

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def config_text(self) -> str:
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if self.password_file else 'true'}",
            f"user {getpass.getuser()}",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "max_queued_messages 100000",
        ]
        if self.password_file:
            lines.append(f"password_file {self.password_file}")
        if self.tls:
            lines += [
                f"cafile {self.tls.ca_cert}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
            ]
        if self.persistence:
            lines += ["persistence true", f"persistence_location {self.workdir}/"]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config_text())
        self._spawn([self.binary, "-c", str(conf)], timeout, poll_s=0.05)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    at: float

    def json(self):
        return json.loads(self.payload)


class Subscriber:
    """Records every message on some topics. With ``session=True`` the broker keeps its
    subscription and queued QoS 1 messages while it is away (use a persistent broker to keep
    them across a broker restart)."""

    def __init__(
        self,
        broker: Mosquitto,
        topics: list[str],
        *,
        client_id: str = "test-subscriber",
        session: bool = False,
        username: str | None = None,
        password: str | None = None,
    ):
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not session
        )
        if username:
            self.client.username_pw_set(username, password)
        if broker.tls:
            self.client.tls_set(ca_certs=str(broker.tls.ca_cert))
        self.client.reconnect_delay_set(0.1, 0.5)
        self.topics = topics

        def on_connect(client, userdata, flags, reason_code, properties):
            if not reason_code.is_failure:
                for topic in self.topics:
                    client.subscribe(topic, qos=1)
                self._connected.set()

        def on_message(client, userdata, msg):
            with self._lock:
                self.messages.append(
                    Received(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos, time.time())
                )

        self.client.on_connect = on_connect
        self.client.on_message = on_message
        self.client.connect_async("127.0.0.1", broker.port, keepalive=10)
        self.client.loop_start()
        if not self._connected.wait(10):
            self.close()
            raise RuntimeError("test subscriber could not connect")
        time.sleep(0.2)  # let the SUBACK arrive

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(
        self, predicate: Callable[[Subscriber], bool], timeout: float = 10.0, what: str = ""
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return
            time.sleep(0.05)
        with self._lock:
            seen = [(m.topic, m.payload[:80]) for m in self.messages[-10:]]
        raise AssertionError(f"timed out waiting for {what or predicate}; last messages: {seen}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def unique_event_seqs(sub: Subscriber, topic: str) -> list[int]:
    """``seq`` of the messages on ``topic`` in arrival order, QoS 1 redeliveries (repeats) left out."""
    seen: set[int] = set()
    out = []
    for msg in sub.on(topic):
        seq = msg.json()["seq"]
        if seq not in seen:
            seen.add(seq)
            out.append(seq)
    return out
