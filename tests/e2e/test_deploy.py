"""deploy/: the systemd unit passes ``systemd-analyze verify``, install.sh parses and plans the
documented steps, and the example config loads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_unit_has_the_hardening_and_credential():
    text = (DEPLOY / "deepfer.service").read_text()
    for line in (
        "User=deepfer",
        "SupplementaryGroups=video",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "Restart=on-failure",
        "LoadCredential=mqtt-password:/etc/deepfer/mqtt-password",
        "ExecStart=/opt/deepfer/venv/bin/deepfer run --config /etc/deepfer/deepfer.toml",
    ):
        assert line in text.splitlines(), line
    assert "password" not in text.split("ExecStart=")[1].splitlines()[0]


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart exists: point it at this environment's deepfer
    deepfer = Path(sys.executable).with_name("deepfer")
    if not deepfer.exists():
        pytest.skip(f"{deepfer} is missing (pip install -e .)")
    unit = tmp_path / "deepfer.service"
    unit.write_text(
        (DEPLOY / "deepfer.service")
        .read_text()
        .replace("/opt/deepfer/venv/bin/deepfer", str(deepfer))
    )
    proc = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Unknown key" not in proc.stderr and "deepfer.service" not in proc.stderr, proc.stderr


def test_install_script_dry_run():
    env = {**os.environ, "DRY_RUN": "1"}
    proc = subprocess.run(
        ["bash", str(DEPLOY / "install.sh"), "--from", str(DEPLOY.parent)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "python3 -m venv" in out and "/opt/deepfer/venv" in out
    assert "pip install -q --upgrade " + str(DEPLOY.parent) + "[edge" in out
    assert "/etc/deepfer/deepfer.toml" in out and "/etc/deepfer/mqtt-password" in out
    assert "/etc/systemd/system/deepfer.service" in out
    assert "useradd --system" in out or "usermod" in out


def test_example_config_lists_every_option_and_loads():
    config = pytest.importorskip("deepfer.edge.config")
    data = config.read_toml(DEPLOY / "deepfer.toml")
    missing = [f"{section}.{key}" for section in config.sections() for key in config.key_types(section)
               if key not in data.get(section, {})]  # fmt: skip
    missing += [key for key in config.top_level_keys() if key not in data]
    assert missing == [], f"deploy/deepfer.toml lacks {missing}"
    loaded = config.load_config(DEPLOY / "deepfer.toml", environ={})
    assert loaded.to_dict() == config.Config().to_dict()  # the file shows the defaults
