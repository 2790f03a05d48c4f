"""The edge config: TOML < env < flags, typed values, errors with key path, value and origin."""

from __future__ import annotations

import dataclasses
import re

import pytest

from deepfer.edge.config import (
    Config,
    ConfigError,
    MqttConfig,
    env_overrides,
    load_config,
    read_toml,
    to_toml,
)


def write(tmp_path, text: str):
    path = tmp_path / "deepfer.toml"
    path.write_text(text)
    return path


def test_defaults_without_file_env_or_flags():
    config = load_config(None, environ={})
    assert config.to_dict() == Config().to_dict()
    assert config.source.uri == "auto" and config.detector.backend == "auto"
    assert config.resolved_device_id()  # the host name


def test_file_then_env_then_flags(tmp_path):
    path = write(
        tmp_path,
        'device_id = "door-1"\n[source]\nuri = "clip.mp4"\nloop = true\n'
        "[tracker]\ndebounce_s = 0.5\nsmoothing_s = 0.25\n",
    )
    env = {
        "DEEPFER_TRACKER_DEBOUNCE_S": "0.7",
        "DEEPFER_SOURCE_REALTIME": "yes",
        "DEEPFER_DEVICE_ID": "door-2",
        "DEEPFER_DATA": "/data",  # not a setting: left alone
        "DEEPFER_MQTT_PASSWORD": "secret",  # a secret, never a setting
    }
    config = load_config(path, environ=env, overrides={"source.uri": "0", "run.max_frames": 9})
    assert config.device_id == "door-2"
    assert config.source.uri == "0" and config.source.loop is True
    assert config.source.realtime is True
    assert config.tracker.debounce_s == 0.7 and config.tracker.smoothing_s == 0.25
    assert config.run.max_frames == 9
    assert "secret" not in to_toml(config)


def test_source_may_be_an_integer_in_toml(tmp_path):
    assert load_config(write(tmp_path, "[source]\nuri = 0\n"), environ={}).source.uri == "0"


@pytest.mark.parametrize(
    "text, words",
    [
        ("[detector]\nscale_factor = 1.0\n", "detector.scale_factor = 1.0 (from "),
        ("[tracker]\nsmoothing_s = -1\n", "tracker.smoothing_s = -1.0"),
        ('[model]\nthreads = "four"\n', "model.threads = 'four'"),
        ("[tracker]\nmin_hits = true\n", "tracker.min_hits = True"),
        ('[detector]\nbackend = "dlib"\n', "detector.backend = 'dlib'"),
        ("[detector]\nfps = -2\n", "detector.fps = -2.0"),
        ("[preview]\nport = 70000\n", "preview.port = 70000"),
        ("[source]\nreopen_min_s = 5\nreopen_max_s = 1\n", "source.reopen_max_s = 1.0"),
        ('[model]\npath = "/no/such/model.tflite"\n', "no such model file"),
        ("[detector]\nscale_facter = 1.2\n", "did you mean 'scale_factor'"),
        ("[detektor]\nbackend = 'haar'\n", "did you mean 'detector'"),
        ('[mqtt]\nurl = "http://broker"\n', "mqtt.url = 'http://broker'"),
        ('device_id = "a/b"\n', "device_id = 'a/b'"),
        ('[mqtt]\ntls_ca = "\\u0000"\n', "mqtt.tls_ca = '\\x00' (from "),  # fuzz found
        ('[model]\npath = "m\\u0000.tflite"\n', "a string holding a NUL character"),
    ],
)
def test_bad_file_values_name_key_value_and_file(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    message = str(err.value)
    assert words in message
    assert str(path) in message


def test_bad_env_and_flag_values_say_where_they_came_from():
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={"DEEPFER_DETECTOR_MIN_NEIGHBORS": "many"})
    assert "detector.min_neighbors = 'many' (from env DEEPFER_DETECTOR_MIN_NEIGHBORS)" in str(
        err.value
    )
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={}, overrides={"run.max_frames": -3})
    assert "run.max_frames = -3 (from flag --max-frames): must be >= 0" in str(err.value)
    with pytest.raises(ConfigError, match="DEEPFER_TRACKER_EMA"):
        load_config(None, environ={"DEEPFER_TRACKER_EMA": "0.3"})


def test_every_problem_is_reported_at_once(tmp_path):
    path = write(tmp_path, "[tracker]\nmin_hits = 0\nmax_missed_s = -1\n[run]\nduration_s = -1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert len(err.value.problems) == 3


def test_keys_counted_in_detections_say_what_replaced_them(tmp_path):
    """Configs written before the tracker counted seconds fail with the new key's name."""
    path = write(
        tmp_path,
        "[tracker]\nema_alpha = 0.5\ndebounce_frames = 3\nmax_missed = 10\n"
        "[detector]\nrescan_frames = 30\n",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={"DEEPFER_TRACKER_DEBOUNCE_FRAMES": "4"})
    text = "\n".join(err.value.problems)
    for old, new in (
        ("tracker.ema_alpha", "tracker.smoothing_s"),
        ("tracker.debounce_frames", "tracker.debounce_s"),
        ("tracker.max_missed", "tracker.max_missed_s"),
        ("env DEEPFER_TRACKER_DEBOUNCE_FRAMES", "tracker.debounce_s"),
        ("detector.rescan_frames", "detector.rescan_s"),
    ):
        assert f"{old}" in text and f"replaced by {new}" in text, text
    assert len(err.value.problems) == 5
    assert "(30 frames at 30 frames a second = 1.0)" in text


def test_crop_jitter_is_checked(tmp_path):
    with pytest.raises(ConfigError, match="model.crop_jitter"):
        load_config(write(tmp_path, "[model]\ncrop_jitter = 0.5\n"), environ={})
    config = load_config(write(tmp_path, "[model]\ncrop_jitter = 0\n"), environ={})
    assert config.model.crop_jitter == 0


def test_rescan_s_is_checked(tmp_path):
    path = write(tmp_path, "[detector]\nrescan_s = -1\n")
    with pytest.raises(ConfigError, match="detector.rescan_s"):
        load_config(path, environ={})
    assert (
        load_config(write(tmp_path, "[detector]\nrescan_s = 0\n"), environ={}).detector.rescan_s
        == 0
    )


def test_source_rotate_takes_quarter_turns_from_file_env_and_flag(tmp_path):
    path = write(tmp_path, "[source]\nrotate = 180\n")
    assert load_config(path, environ={}).source.rotate == 180
    env = {"DEEPFER_SOURCE_ROTATE": "270"}
    assert load_config(path, environ=env).source.rotate == 270
    assert load_config(path, environ=env, overrides={"source.rotate": 90}).source.rotate == 90
    assert load_config(None, environ={}).source.rotate == 0
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "[source]\nrotate = 45\n"), environ={})
    assert "source.rotate = 45" in str(err.value) and "0, 90, 180, 270" in str(err.value)


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[source\nuri = 1\n"), environ={})


def test_config_files_saved_by_windows_editors(tmp_path):
    """A UTF-8 byte-order mark (Notepad) and CRLF line ends are read as the same TOML; UTF-16
    ("Unicode" in Notepad) is named, with the fix."""
    path = tmp_path / "deepfer.toml"
    path.write_bytes(b'\xef\xbb\xbf[detector]\r\nbackend = "haar"\r\n')
    assert load_config(path, environ={}).detector.backend == "haar"
    path.write_bytes('[detector]\nbackend = "haar"\n'.encode("utf-16"))
    with pytest.raises(ConfigError, match=r"deepfer.toml: UTF-16 text .*save it as UTF-8"):
        load_config(path, environ={})


def test_print_config_round_trips(tmp_path):
    config = load_config(None, environ={}, overrides={"source.uri": 'odd "name".mp4'})
    again = load_config(write(tmp_path, to_toml(config)), environ={})
    assert again.to_dict() == config.to_dict()
    assert read_toml(tmp_path / "deepfer.toml")["source"]["uri"] == 'odd "name".mp4'


def test_print_config_hides_a_camera_password_and_stays_a_config_file(tmp_path):
    """`deepfer run --print-config` printed source.uri as given, an IP camera's password
    with it: it is printed as ***, a TOML comment above it says so and how to give it, and
    the output is still a config file that loads (the URL as printed)."""
    from cli_subprocess import deepfer, env_without_settings

    url = "rtsp://admin:secret@cam/stream?pwd=hunter2&channel=1"
    proc = deepfer("run", "--source", url, "--print-config")
    assert proc.returncode == 0, proc.stderr
    assert "secret" not in proc.stdout and "hunter2" not in proc.stdout
    lines = proc.stdout.splitlines()
    at = lines.index('uri = "rtsp://admin:***@cam/stream?pwd=***&channel=1"')
    assert lines[at - 1] == (
        "# uri: its password is hidden (***); put it back as given in your config, or give "
        "the whole URL in DEEPFER_SOURCE_URI"
    )
    printed = write(tmp_path, proc.stdout)
    again = load_config(printed, environ={})
    assert again.source.uri == "rtsp://admin:***@cam/stream?pwd=***&channel=1"
    # the variable the comment names gives the password back over the printed file
    env = env_without_settings(DEEPFER_SOURCE_URI=url)
    assert load_config(printed, environ=env).source.uri == url
    # a URL without a password, and every other value, are printed as they are
    proc = deepfer("run", "--config", printed, "--source", "rtsp://cam/s", "--print-config")
    assert proc.returncode == 0, proc.stderr
    assert 'uri = "rtsp://cam/s"' in proc.stdout and "#" not in proc.stdout
    assert proc.stdout == to_toml(
        load_config(printed, overrides={"source.uri": "rtsp://cam/s"}, environ={})
    )


def test_mqtt_problems_are_all_reported_at_once(tmp_path):
    path = write(
        tmp_path,
        '[mqtt]\nurl = "mqtt://broker"\nqos = 3\nkeepalive = 1\ntls_ca = "/no/ca.pem"\n'
        "[detector]\nmin_neighbors = -1\n",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    keys = sorted(p.split(" = ")[0] for p in err.value.problems)
    assert keys == ["detector.min_neighbors", "mqtt.keepalive", "mqtt.qos", "mqtt.tls_ca"]


def test_mqtt_fields_are_defined_once():
    """[mqtt] keys and defaults come from MqttConfig alone (no copy in the sink)."""
    from deepfer.edge.outputs.mqtt import sink

    assert not hasattr(sink, "DEFAULTS")
    assert [f.name for f in dataclasses.fields(MqttConfig)][:2] == ["url", "username"]


def test_env_names_map_to_sections_and_top_level_keys():
    found, problems = env_overrides(
        {"DEEPFER_MQTT_URL": "mqtt://h", "DEEPFER_DEVICE_ID": "x", "DEEPFER_CONFIG": "f"}
    )
    assert found == {"mqtt.url": "mqtt://h", "device_id": "x"} and problems == []


def test_a_tilde_path_of_an_unknown_user_is_reported_not_raised(tmp_path):
    """``~0/model.tflite``: Path.expanduser raises RuntimeError there; the config check names
    the file instead (found by test_fuzz)."""
    path = write(tmp_path, '[model]\npath = "~no-such-user-0/m.tflite"\n')
    with pytest.raises(ConfigError, match="~no-such-user-0/m.tflite"):
        load_config(path, environ={})


def test_model_path_may_name_a_shipped_model(tmp_path):
    """`model.path = "deepfer-single_int8"` finds the shipped file wherever the package is
    installed; an unknown name fails at start and lists the shipped names."""
    from deepfer.edge.model.classifier import resolve_model_path
    from deepfer.models import MODELS_DIR

    config = load_config(write(tmp_path, '[model]\npath = "deepfer-single_int8"\n'), environ={})
    assert resolve_model_path(config.model.path) == MODELS_DIR / "deepfer-single_int8.tflite"
    assert resolve_model_path("deepfer-single_int8.tflite") == resolve_model_path(config.model.path)
    assert resolve_model_path("") == MODELS_DIR / "deepfer_int8.tflite"
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, '[model]\npath = "deepfer-tiny"\n'), environ={})
    assert "model.path = 'deepfer-tiny'" in str(err.value)
    assert "deepfer-single_int8" in str(err.value) and "deepfer_int8" in str(err.value)


@pytest.mark.parametrize(
    "text, words",
    [
        ("[source]\nwidth = 1e9\n", "source.width = 1000000000"),
        ("[source]\nlores_width = 7\n", "source.lores_width = 7"),
        (
            "[detector]\nmin_face = 99999999999999999999\n",
            "detector.min_face = 99999999999999999999",
        ),
        ("[mqtt]\nqos = 3\n", "mqtt.qos = 3"),
        ("[mqtt]\nkeepalive = -1\n", "mqtt.keepalive = -1"),
    ],
)
def test_bounds_hold_for_every_key_even_with_mqtt_off(tmp_path, text, words):
    """Sizes within what a camera gives, and the [mqtt] keys checked without a broker URL
    too (a config that passes --validate-config must not fail once the URL is added)."""
    with pytest.raises(ConfigError, match=re.escape(words)):
        load_config(write(tmp_path, text), environ={})


def test_settings_used_only_by_an_output_that_is_off_are_not_checked(tmp_path):
    """With no broker URL the MQTT files are not read, so a missing one is no error (turning
    MQTT off by clearing the URL); the stats file is checked when a run starts, not here
    (`deepfer detect` with the daemon's config does not write it)."""
    path = write(
        tmp_path,
        '[mqtt]\npassword_file = "/no/such/pw"\n[run]\nstats_json = "/etc/passwd/x.json"\n',
    )
    config = load_config(path, environ={})
    assert config.mqtt.password_file == "/no/such/pw"
    with pytest.raises(ConfigError, match="mqtt.password_file"):
        load_config(path, environ={"DEEPFER_MQTT_URL": "mqtt://localhost"})
