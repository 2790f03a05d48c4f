"""deploy/: the systemd unit passes ``systemd-analyze verify``, install.sh parses and plans the
documented steps, and the example config loads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
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
        "RestartPreventExitStatus=2",  # a wrong setting is not retried (it cannot loop)
        "StartLimitIntervalSec=0",  # a camera not yet there at boot (exit 75) is, always
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
    """The whole plan, whatever this machine holds: a prefix that does not exist (a real
    install in /opt/deepfer has its venv, and no venv would be planned) and a service user
    that does not exist (install.sh sourced, its USER_NAME set, then its main)."""
    prefix = f"/opt/deepfer-plan-{uuid.uuid4().hex[:12]}"  # (not /tmp: the unit cannot see it)
    script = 'source "$INSTALL"; USER_NAME=deepfer-test-nobody; main "$@"'
    env = {**os.environ, "DRY_RUN": "1", "INSTALL": str(DEPLOY / "install.sh")}
    proc = subprocess.run(
        ["bash", "-c", script, "install.sh", "--from", str(DEPLOY.parent), "--prefix", prefix],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"python3 -m venv {prefix}/venv" in out
    assert f"{prefix}/venv/bin/python -m pip install -q --upgrade {DEPLOY.parent}[edge" in out
    assert "/etc/deepfer/deepfer.toml" in out and "/etc/deepfer/mqtt-password" in out
    unit = f"{DEPLOY}/deepfer.service > /etc/systemd/system/deepfer.service"
    assert f"+ sed s#/opt/deepfer/#{prefix}/#g {unit}" in out  # the unit runs the prefix's
    assert "+ useradd --system" in out and "deepfer-test-nobody" in out
    assert not Path(prefix).exists()  # a plan: nothing made


def test_example_config_lists_every_option_and_loads():
    config = pytest.importorskip("deepfer.edge.config")
    data = config.read_toml(DEPLOY / "deepfer.toml")
    missing = [f"{section}.{key}" for section in config.sections() for key in config.key_types(section)
               if key not in data.get(section, {})]  # fmt: skip
    missing += [key for key in config.top_level_keys() if key not in data]
    assert missing == [], f"deploy/deepfer.toml lacks {missing}"
    loaded = config.load_config(DEPLOY / "deepfer.toml", environ={})
    assert loaded.to_dict() == config.Config().to_dict()  # the file shows the defaults


# install.sh for real, where no network and no root are needed: its functions are sourced and
# run on temporary folders (DRY_RUN off); the steps that need both are checked as a plan.
INSTALL = DEPLOY / "install.sh"


def _source_and_call(call: str, here: Path, tmp_path: Path, **env: str):
    """Source install.sh, point it at temporary folders owned by this user, run ``call``."""
    script = (
        'source "$INSTALL"; HERE="$T_HERE"; CONF_DIR="$T/etc"; STATE_DIR="$T/state"; '
        'PREFIX="$T/opt"; UNIT="$T/deepfer.service"; USER_NAME=deepfer-test-nobody; ' + call
    )
    owner = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True, check=True).stdout
    full_env = {**os.environ, "INSTALL": str(INSTALL), "T_HERE": str(here), "T": str(tmp_path),
                "CONF_OWNER": owner.strip(), "CONF_GROUP": group.strip(), "DRY_RUN": "0", **env}  # fmt: skip
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=full_env,
                          timeout=60)  # fmt: skip


def test_install_config_keeps_edits_and_puts_a_changed_shipped_config_next_to_them(tmp_path):
    ship = tmp_path / "ship"
    ship.mkdir()
    (ship / "deepfer.toml").write_text('device_id = ""\n')
    conf = tmp_path / "etc" / "deepfer.toml"
    new = conf.with_name("deepfer.toml.new")
    password = tmp_path / "etc" / "mqtt-password"

    proc = _source_and_call("install_config", ship, tmp_path)  # first install
    assert proc.returncode == 0, proc.stderr
    assert conf.read_text() == 'device_id = ""\n' and oct(conf.stat().st_mode & 0o777) == "0o640"
    assert password.read_text() == "" and oct(password.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "etc").stat().st_mode & 0o777) == "0o750"

    conf.write_text('device_id = "kitchen"\n')  # the user edits both
    password.write_text("s3cret\n")
    proc = _source_and_call("install_config", ship, tmp_path)  # again, same shipped config
    assert proc.returncode == 0, proc.stderr
    assert conf.read_text() == 'device_id = "kitchen"\n' and password.read_text() == "s3cret\n"
    assert not new.exists() and proc.stderr == ""  # nothing to say

    (ship / "deepfer.toml").write_text('device_id = ""\nnew_option = 1\n')  # an update ships
    proc = _source_and_call("install_config", ship, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert conf.read_text() == 'device_id = "kitchen"\n' and password.read_text() == "s3cret\n"
    assert new.read_text() == 'device_id = ""\nnew_option = 1\n'
    assert f"kept your {conf}" in proc.stderr and f"diff -u {conf} {new}" in proc.stderr


def test_install_config_updates_a_config_nobody_edited(tmp_path):
    ship = tmp_path / "ship"
    ship.mkdir()
    (ship / "deepfer.toml").write_text("a = 1\n")
    assert _source_and_call("install_config", ship, tmp_path).returncode == 0
    (ship / "deepfer.toml").write_text("a = 2\n")
    proc = _source_and_call("install_config", ship, tmp_path)
    assert proc.returncode == 0, proc.stderr
    conf = tmp_path / "etc" / "deepfer.toml"
    assert conf.read_text() == "a = 2\n" and not conf.with_name("deepfer.toml.new").exists()
    assert "updated to the shipped one" in proc.stderr


def test_uninstall_removes_only_what_it_made_and_keeps_the_config(tmp_path):
    (tmp_path / "opt" / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "opt" / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (tmp_path / "opt" / "notes.txt").write_text("mine\n")  # not install.sh's: stays
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "deepfer.toml").write_text("a = 1\n")
    (tmp_path / "state").mkdir()
    proc = _source_and_call("do_uninstall", DEPLOY, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "opt" / "venv").exists()
    assert (tmp_path / "opt" / "notes.txt").exists()
    assert (tmp_path / "etc" / "deepfer.toml").read_text() == "a = 1\n"
    assert (tmp_path / "state").is_dir() and "--purge" in proc.stdout

    (tmp_path / "opt" / "notes.txt").unlink()
    proc = _source_and_call("PURGE=1; do_uninstall", DEPLOY, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "etc").exists() and not (tmp_path / "state").exists()
    assert not (tmp_path / "opt").exists()  # empty: removed


def test_uninstall_plan():
    env = {**os.environ, "DRY_RUN": "1"}
    out = subprocess.run(["bash", str(INSTALL), "--uninstall"], capture_output=True, text=True,
                         env=env, timeout=60, check=True).stdout  # fmt: skip
    assert "+ rm -f /etc/systemd/system/deepfer.service" in out
    assert "+ systemctl disable" in out and "+ userdel deepfer" in out
    assert "+ rm -rf /opt/deepfer/venv" in out and "rm -rf /opt/deepfer\n" not in out
    assert "rm -rf /etc/deepfer" not in out and "Kept: /etc/deepfer" in out
    out = subprocess.run(["bash", str(INSTALL), "--uninstall", "--purge"], capture_output=True,
                         text=True, env=env, timeout=60, check=True).stdout  # fmt: skip
    assert "+ rm -rf /etc/deepfer /var/lib/deepfer" in out


def test_install_plan_checks_that_the_service_user_can_run_the_venv():
    env = {**os.environ, "DRY_RUN": "1"}
    proc = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, env=env,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "+ runuser -u deepfer -- /opt/deepfer/venv/bin/python -c ''" in proc.stdout
    if Path("/usr/bin/python3").exists() and not Path("/opt/deepfer/venv").exists():
        # the system Python, not the first python3 on root's PATH (pyenv's under /root)
        assert "+ /usr/bin/python3 -m venv" in proc.stdout
    assert "--uninstall" in proc.stdout


@pytest.mark.skipif(Path("/run/systemd/system").exists(), reason="systemd is running here")
def test_install_start_without_systemd_says_so_and_fails():
    env = {**os.environ, "DRY_RUN": "1"}
    proc = subprocess.run(["bash", str(INSTALL), "--start"], capture_output=True, text=True,
                          env=env, timeout=60)  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "--start: not started, systemd is not running here" in proc.stderr
    if shutil.which("systemctl"):  # enabled offline: it starts at the next boot
        assert "+ systemctl enable deepfer.service" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from"], "--from needs a value"),
        (["--prefix"], "--prefix needs a value"),
        (["--from", "/nonexistent/deepfer"], "no such folder"),
        (["--from", "{tmp}"], "not a Python project"),
        (["--prefix", "opt/deepfer"], "give an absolute path"),
        (["--prefix", "/"], "--prefix / is not allowed"),
        (["--prefix", "/home/pi/deepfer"], "the service cannot see it"),
        (["--prefix", "/tmp/deepfer"], "the service cannot see it"),
        (["--purge"], "--purge goes with --uninstall"),
        (["--uninstall", "--start"], "--uninstall takes only"),
        (["--bogus"], "unknown option --bogus"),
    ],
)
def test_install_script_rejects_bad_options_clearly(tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    # not a dry run: the checks come first, before anything is written or root is asked for
    env = {k: v for k, v in os.environ.items() if k != "DRY_RUN"}
    proc = subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, env=env,
                          timeout=60)  # fmt: skip
    assert proc.returncode in (1, 2), proc.stderr
    assert message in proc.stderr and "unbound variable" not in proc.stderr, proc.stderr


def test_install_script_asks_for_root():
    env = {k: v for k, v in os.environ.items() if k != "DRY_RUN"}
    cmd = ["bash", str(INSTALL)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to drop it")
        cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    if "Permission denied" in proc.stderr:
        pytest.skip("nobody cannot read the checkout")
    assert proc.returncode == 1 and "run it as root" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("python", "message"),
    [("/nonexistent/python3", "--python /nonexistent/python3: not found"),
     ("/bin/false", "DeepFER needs Python 3.10 or later; /bin/false is not runnable")],
)  # fmt: skip
def test_install_script_checks_the_python(python, message):
    env = {**os.environ, "DRY_RUN": "1"}
    proc = subprocess.run(["bash", str(INSTALL), "--python", python], capture_output=True,
                          text=True, env=env, timeout=60)  # fmt: skip
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert "pip install" not in proc.stdout


@pytest.mark.parametrize(
    "numpy, pins",
    [
        ("1.24.2", ["numpy==1.24.2", "opencv-python-headless<4.12"]),  # Pi OS bookworm
        ("2.2.4", ["numpy==2.2.4"]),  # a system on numpy 2: any OpenCV 4.x
        (None, None),  # a Python without numpy: nothing to keep
    ],
)
def test_a_pi_venv_keeps_the_systems_numpy(tmp_path, numpy, pins):
    """On a Pi the venv sees apt's packages (--system-site-packages), and apt's picamera2 and
    simplejpeg are built for the system's numpy: pip's numpy 2 (OpenCV >= 4.12 asks for it)
    would shadow it and they fail to import. install.sh pins the system's numpy, and an
    OpenCV that takes it, in the venv's constraints.txt, which pip installs under."""
    python = tmp_path / "python3"  # the system Python, as far as this step asks it
    answer = f"echo {numpy}" if numpy else "exit 1"
    python.write_text(f"#!/bin/sh\n{answer}\n")
    python.chmod(0o755)
    (tmp_path / "opt" / "venv").mkdir(parents=True)
    proc = _source_and_call('PYTHON="$PY"; if keep_system_numpy; then echo rc=0; else echo rc=1; fi', tmp_path, tmp_path,
                            PY=str(python))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    constraints = tmp_path / "opt" / "venv" / "constraints.txt"
    if pins is None:
        assert "rc=1" in proc.stdout and not constraints.exists()
    else:
        assert "rc=0" in proc.stdout
        lines = [ln for ln in constraints.read_text().splitlines() if not ln.startswith("#")]
        assert lines == pins
    plan = (INSTALL.read_text().split("do_install() {")[1]).split("\n}\n")[0]
    assert 'keep=(-c "$PREFIX/venv/constraints.txt")' in plan and '"${keep[@]}" "$SPEC"' in plan


@pytest.mark.parametrize(
    ("machine", "userland", "bits", "refused"),
    [
        ("armv7l", "armhf", 32, True),  # 32-bit Pi OS on a Zero 2 W or a Pi 3
        ("aarch64", "armhf", 32, True),  # 32-bit Pi OS on a Pi 4 or 5: a 64-bit kernel
        ("aarch64", "arm64", 64, False),  # Raspberry Pi OS (64-bit)
    ],
)
def test_install_script_refuses_a_32_bit_system_first(tmp_path, machine, userland, bits, refused):
    """No wheels of the TFLite runtime, numpy or OpenCV for 32-bit Arm: install.sh says so
    before apt or pip, from uname -m, dpkg and the Python (here answered by stand-ins)."""
    python = tmp_path / "python3"  # answers the version check (exit 0) and the pointer size
    python.write_text(f'#!/bin/sh\ncase "$*" in *calcsize*) echo {bits};; esac\nexit 0\n')
    python.chmod(0o755)
    script = (
        f'source "$INSTALL"; uname() {{ echo {machine}; }}; dpkg() {{ echo {userland}; }}; '
        'USER_NAME=deepfer-test-nobody; main --python "$PY" --prefix /opt/deepfer-arch-test'
    )
    env = {**os.environ, "DRY_RUN": "1", "INSTALL": str(INSTALL), "PY": str(python)}
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                          timeout=60)  # fmt: skip
    if not refused:
        assert proc.returncode == 0 and "pip install" in proc.stdout, proc.stderr
        return
    assert (
        proc.returncode == 1 and "pip install" not in proc.stdout and "apt-get" not in proc.stdout
    )
    said = " ".join(proc.stderr.split())
    assert f"uname -m says {machine}, dpkg --print-architecture {userland}" in said, said
    assert f"{python} is {bits}-bit" in said and "flash Raspberry Pi OS (64-bit)" in said, said
