"""Edge tests run on an edge-only install (no TensorFlow): the tiny model is the committed one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="session")
def tiny_tflite_model(tmp_path_factory) -> Path:
    """``tiny_int8.tflite`` (full int8) with its sidecar and ``tiny_float32.tflite`` beside it,
    copied from tests/assets (made by tests/assets/make_tiny_model.py) so tests may not
    change the committed files."""
    folder = tmp_path_factory.mktemp("tiny_tflite")
    for name in ("tiny_int8", "tiny_float32"):
        for suffix in (".tflite", ".json"):
            source = ASSETS / (name + suffix)
            if not source.is_file():
                pytest.fail(f"{source} is missing: run python tests/assets/make_tiny_model.py")
            shutil.copy(source, folder / source.name)
    return folder / "tiny_int8.tflite"


@pytest.fixture(scope="session")
def session_mosquitto(tmp_path_factory):
    """One mosquitto (persistent) for the whole session; tests use topics of their own."""
    from mosquitto import Mosquitto, find_mosquitto

    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"), persistence=True)
    broker.name = "mosquitto"
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def session_rabbitmq(tmp_path_factory):
    """One RabbitMQ node with its MQTT plugin for the whole session (starting one takes seconds)."""
    from rabbitmq import RabbitMQ, find_rabbitmq

    if find_rabbitmq() is None:
        pytest.skip("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
    broker = RabbitMQ(tmp_path_factory.mktemp("rabbitmq"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(params=["mosquitto", "rabbitmq"])
def any_broker(request):
    """The end-to-end MQTT tests run against both brokers."""
    return request.getfixturevalue(f"session_{request.param}")
