"""A real RabbitMQ with its MQTT plugin for tests (Debian ``rabbitmq-server``), on free loopback
ports, with a node of its own: node name, data, logs, cookie and config in a tmp folder, its own
epmd port, every listener on 127.0.0.1. Same interface as :class:`mosquitto.Mosquitto`:

    broker = RabbitMQ(tmp_path); broker.start(); ...; broker.restart(); ...; broker.stop()

RabbitMQ 3.10 (Debian 12) speaks MQTT 3.1.1 only (MQTT 5 came with 3.13): the sink's
``mqtt.protocol = auto`` falls back to 3.1.1 there. A start takes several seconds; the test
session starts it once (tests/edge/conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from broker_process import BrokerProcess, free_port

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
PLUGIN_DIRS = ("/usr/lib/rabbitmq/lib",)


def find_rabbitmq() -> str | None:
    """The server script, or None when rabbitmq-server (with its MQTT plugin) is not installed."""
    if not Path(SERVER).is_file() or shutil.which("epmd") is None:
        return None
    for base in PLUGIN_DIRS:
        if any(Path(base).glob("*/plugins/rabbitmq_mqtt-*")):
            return SERVER
    return None


requires_rabbitmq = pytest.mark.skipif(
    find_rabbitmq() is None,
    reason="rabbitmq-server is not installed (apt-get install rabbitmq-server)",
)


class RabbitMQ(BrokerProcess):
    """One RabbitMQ node with rabbitmq_mqtt; ``restart()`` brings it back on the same ports
    with its data (durable sessions and persistent messages survive)."""

    tls = None  # plain MQTT only
    name = "rabbitmq"

    def __init__(self, workdir: Path, *, port: int | None = None, persistence: bool = True):
        if find_rabbitmq() is None:
            raise FileNotFoundError("rabbitmq-server is not installed")
        super().__init__(workdir, port, "rabbitmq.out")
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"deepfer-test-{self.port}@localhost"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        w = self.workdir
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(w),  # the Erlang cookie
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_MNESIA_BASE=str(w / "mnesia"),
            RABBITMQ_LOG_BASE=str(w / "log"),
            RABBITMQ_CONFIG_FILE=str(w / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(w / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(w / "enabled_plugins"),
            RABBITMQ_CONF_ENV_FILE=str(w / "rabbitmq-env.conf"),
            RABBITMQ_PID_FILE=str(w / "rabbitmq.pid"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    def config_text(self) -> str:
        return "\n".join(
            [
                f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}",
                f"mqtt.listeners.tcp.default = 127.0.0.1:{self.port}",
                "mqtt.allow_anonymous = true",
                # retained messages (status) kept on disk, as a real deployment would
                "mqtt.retained_message_store = rabbit_mqtt_retained_msg_store_dets",
                "loopback_users = none",
                "log.console = true",
                "log.console.level = warning",
                "log.file = false",
                "",
            ]
        )

    def start(self, timeout: float = 60.0) -> RabbitMQ:
        w = self.workdir
        (w / "rabbitmq.conf").write_text(self.config_text())
        (w / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (w / "rabbitmq-env.conf").write_text("")
        self._spawn([SERVER], timeout, poll_s=0.2, env=self.env(), start_new_session=True)
        return self

    def stop(self) -> None:
        """Stops the node (SIGTERM to its process group: the shell wrapper and the Erlang VM)
        and its own epmd."""
        if self.proc is not None:
            if self.proc.poll() is None:
                pgid = self.proc.pid
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGTERM)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pgid, signal.SIGKILL)
                    self.proc.wait(10)
                # the VM may outlive the wrapper for a moment
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and _group_alive(pgid):
                    time.sleep(0.1)
                if _group_alive(pgid):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pgid, signal.SIGKILL)
            self.proc = None
        self._stop_epmd()

    def _stop_epmd(self) -> None:
        epmd = shutil.which("epmd")
        if epmd:
            subprocess.run(
                [epmd, "-kill"], env=self.env(), capture_output=True, timeout=10, check=False
            )


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
