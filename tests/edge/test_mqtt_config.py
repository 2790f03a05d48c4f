"""[mqtt] settings: URL, device id and prefix rules, TLS files, secrets (no broker needed)."""

from __future__ import annotations

import pytest

from deepfer.edge.config.mqtt import (
    MqttConfig,
    base_topic,
    check_mqtt_config,
    mqtt_problems,
    parse_broker_url,
)
from deepfer.edge.errors import ConfigError, DeepFERError, MqttConfigError, SecretError
from deepfer.edge.messages import dominant_emotion
from deepfer.edge.outputs.mqtt.credentials import resolve_secret
from deepfer.edge.outputs.mqtt.ha_discovery import discovery_messages, node_id
from deepfer.edge.outputs.mqtt.sink import MqttSink


def cfg(**overrides):
    return MqttConfig(**{"url": "mqtt://127.0.0.1", **overrides})


def test_broker_urls():
    u = parse_broker_url("mqtt://broker.lan")
    assert (u.scheme, u.host, u.port, u.username, u.tls) == ("mqtt", "broker.lan", 1883, "", False)
    u = parse_broker_url("mqtts://robot@10.0.0.5:9883")
    assert (u.host, u.port, u.username, u.tls) == ("10.0.0.5", 9883, "robot", True)
    assert parse_broker_url("mqtt://[::1]:1884").host == "::1"


@pytest.mark.parametrize(
    "url, words",
    [
        ("http://broker", "mqtt://"),
        ("broker:1883", "mqtt://"),
        ("mqtt://", "no host"),
        ("mqtt://host:99999", "not a broker URL"),
        ("mqtt://host/topic", "no path"),
        ("mqtt://u:hunter2@host", "no password in the URL"),
    ],
)
def test_bad_urls_are_refused(url, words):
    with pytest.raises(MqttConfigError) as err:
        check_mqtt_config(cfg(url=url), "cam")
    assert words in str(err.value) and str(err.value).startswith("mqtt.url = ")
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize("device_id", ["", "a/b", "cam+1", "cam#", "$SYS", "two words", "x" * 65])
def test_bad_device_ids_are_refused(device_id):
    with pytest.raises(MqttConfigError) as err:
        MqttSink(cfg(), device_id)
    assert str(err.value).startswith(f"device_id = {device_id!r}")


@pytest.mark.parametrize(
    "prefix",
    [
        "deepfer/+/x",
        "deepfer/#",
        "deepfer//{device_id}",
        "/deepfer",
        "deepfer/",
        "",
        "$SYS/x",
        "a/{nope}",
    ],
)
def test_bad_prefixes_are_refused(prefix):
    with pytest.raises(MqttConfigError) as err:
        MqttSink(cfg(prefix=prefix), "cam")
    assert str(err.value).startswith(f"mqtt.prefix = {prefix!r}")


def test_prefix_fills_in_device_id():
    assert base_topic("deepfer/{device_id}", "cam-1") == "deepfer/cam-1"
    assert base_topic("store/7/{device_id}/fer", "door") == "store/7/door/fer"
    assert base_topic("fixed/topic", "door") == "fixed/topic"
    s = check_mqtt_config(cfg(), "cam-1")
    assert s.client_id == "deepfer-cam-1" and s.base == "deepfer/cam-1"
    assert check_mqtt_config(cfg(client_id="mine"), "cam-1").client_id == "mine"


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"qos": 3}, "mqtt.qos"),
        ({"queue_size": 0}, "mqtt.queue_size"),
        ({"queue_size": 2.5}, "mqtt.queue_size"),
        ({"state_hz": -1}, "mqtt.state_hz"),
        ({"summary_interval_s": float("nan")}, "mqtt.summary_interval_s"),
        ({"keepalive": 1}, "mqtt.keepalive"),
        ({"tls_ca": "/etc/hostname"}, "mqtt.tls_ca"),  # TLS on mqtt://
        ({"tls_insecure": True}, "mqtt.tls_insecure"),
        ({"url": "mqtts://h", "tls_ca": "/no/such/ca.pem"}, "mqtt.tls_ca"),
        ({"url": "mqtts://h", "tls_key": "/etc/hostname"}, "mqtt.tls_key"),
        ({"ha_discovery": True, "state_hz": 0}, "mqtt.state_hz"),
        ({"ha_prefix": "home/+"}, "mqtt.ha_prefix"),
        ({"url": "mqtt://a@h", "username": "b"}, "mqtt.username"),
    ],
)
def test_bad_values_name_key_and_value(overrides, key):
    with pytest.raises(MqttConfigError) as err:
        check_mqtt_config(cfg(**overrides), "cam")
    assert err.value.key == key
    assert str(err.value).startswith(f"{key} = ")


def test_every_mqtt_problem_is_reported_at_once():
    bad = cfg(url="mqtt://u@h", username="v", qos=5, keepalive=1, tls_cert="/etc/hostname")
    keys = [key for key, _, _ in mqtt_problems(bad, "cam")]
    assert keys == ["mqtt.username", "mqtt.qos", "mqtt.keepalive", "mqtt.tls_cert"]
    with pytest.raises(MqttConfigError) as err:
        check_mqtt_config(bad, "cam")
    assert err.value.key == "mqtt.username" and len(err.value.problems) == 4
    assert isinstance(err.value, ConfigError) and isinstance(err.value, DeepFERError)


def test_unusable_ca_file_is_a_config_error(tmp_path):
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate")
    with pytest.raises(MqttConfigError, match="mqtt.tls_ca"):
        MqttSink(cfg(url="mqtts://h", tls_ca=str(junk)), "cam")


def test_secret_order(tmp_path):
    f = tmp_path / "pw"
    f.write_text("from-file\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("from-systemd")
    env = {"PW": "from-env", "CREDENTIALS_DIRECTORY": str(creds)}
    assert resolve_secret(file=f, env="PW", environ=env).value == "from-file"
    assert resolve_secret(env="PW", environ=env).value == "from-env"
    got = resolve_secret(env="UNSET", environ=env)
    assert got.value == "from-systemd" and "systemd" in got.source
    (creds / "mqtt-password").write_text("")  # install.sh's empty credential: no password
    empty = resolve_secret(env="UNSET", environ=env)
    assert empty.value is None and "$CREDENTIALS_DIRECTORY/mqtt-password: empty" in empty.source
    none = resolve_secret(env="UNSET", environ={})
    assert none.value is None and "$UNSET" in none.source
    assert "from-env" not in repr(resolve_secret(env="PW", environ=env))
    with pytest.raises(SecretError, match="mqtt.password_file = .*cannot read"):
        resolve_secret(file=tmp_path / "missing", environ={})
    with pytest.raises(MqttConfigError, match="mqtt.password_file"):
        MqttSink(cfg(password_file=str(tmp_path / "missing")), "cam")


def test_a_password_file_written_on_windows_or_not_text(tmp_path):
    """Notepad's byte-order mark and CRLF are not part of the password; a file that is not
    text is named, not a UnicodeDecodeError traceback."""
    f = tmp_path / "pw"
    f.write_bytes(b"\xef\xbb\xbfs3cret\r\n")
    assert resolve_secret(file=f, environ={}).value == "s3cret"
    f.write_bytes(b"\xff\xfes\x003\x00")  # UTF-16
    with pytest.raises(SecretError, match=r"mqtt.password_file = .*: not UTF-8 text"):
        resolve_secret(file=f, environ={})


def test_discovery_payloads():
    msgs = dict(discovery_messages("door.1", "deepfer/door.1", ha_prefix="ha", model="m"))
    assert node_id("door.1") == "deepfer_door_1"
    emotion = msgs["ha/sensor/deepfer_door_1/emotion/config"]
    faces = msgs["ha/sensor/deepfer_door_1/faces/config"]
    for p in (emotion, faces):
        assert p["availability_topic"] == "deepfer/door.1/status"
        assert p["state_topic"] == "deepfer/door.1/state"
        assert p["unique_id"].startswith("deepfer_door_1_")
    assert emotion["value_template"] == "{{ value_json.dominant }}" and "none" in emotion["options"]
    assert faces["value_template"] == "{{ value_json.count }}"
    assert dominant_emotion([]) == "none"
    assert dominant_emotion([{"emotion": "sad", "score": 0.9}, {"emotion": "happy", "score": 0.5},
                             {"emotion": "happy", "score": 0.6}]) == "happy"  # fmt: skip
