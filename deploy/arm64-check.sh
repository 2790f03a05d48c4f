#!/usr/bin/env bash
# Check the Raspberry Pi install path on an x86-64 Linux box: an emulated arm64 Debian
# (debootstrap + qemu-user-static). No Pi, no camera needed.
#
#   sudo deploy/arm64-check.sh [ROOTFS_DIR] [PHOTO] [VIDEO]
#   sudo ARM64_CHECK_SUITE=trixie deploy/arm64-check.sh      # what a new Pi gets today
#
# ARM64_CHECK_SUITE: bookworm (the default; Python 3.11 and apt numpy 1.24, as on Pi OS
# Bookworm) or trixie (Python 3.13 and apt numpy 2.x, as on Pi OS Trixie, autumn 2025 on).
#
# Steps (ARM64_CHECK_STEPS, default "pip service pi-numpy tflite-runtime"; each runs even when an
# earlier one failed, and the script exits non-zero when any did):
#   pip             pip install ".[edge]" from aarch64 wheels into /opt/venv, `deepfer detectors
#                   install`, `deepfer detect PHOTO` with each detector, and the daemon on VIDEO
#                   (BlazeFace 5 times a second: near searches, per-track framing, frames between
#                   detections carried); fails when TensorFlow came with it.
#   service         what a Pi owner does: deploy/install.sh --from the checkout (systemd installed
#                   in the chroot but not PID 1: the unit is enabled for the next boot), the Pi
#                   venv checked (no TensorFlow, no PyTorch, no OpenCV besides
#                   opencv-python-headless; its size, the wheels pip picked, `deepfer --version`
#                   started as the user deepfer), `deepfer run --check` as the installer says, then
#                   the config edited (VIDEO looped as the source, an MQTT broker) and the
#                   installed unit's ExecStart run by hand the way systemd would start it (user
#                   deepfer and its groups, Environment=, StateDirectory=, WorkingDirectory=,
#                   LoadCredential=), publishing to the host's mosquitto on a free loopback port
#                   (the chroot shares the host's network): a valid emotion event arrives, the
#                   retained status is online, offline after SIGTERM (exit 0), and the last will
#                   says offline after SIGKILL. Then install.sh again with --start (an update:
#                   exit 3 without systemd, the edited config kept) and --uninstall --purge.
#   pi-numpy        the venv install.sh makes on a Pi (no picamera2 here: it is not in Debian):
#                   --system-site-packages over apt's numpy (python3-numpy: 1.24 on bookworm,
#                   2.x on trixie), pip held to it by install.sh's own constraints
#                   (keep_system_numpy); the constraints, the wheels pip picks then, `pip check`,
#                   and `deepfer detect PHOTO` with BlazeFace and Haar.
#   tflite-runtime  the other documented runtime: a second venv, /opt/venv-tflite, with
#                   tflite-runtime and numpy<2 instead of ai-edge-litert; `deepfer detect PHOTO`.
#                   Where the Python is 3.12 or later (trixie) tflite-runtime has no wheel: the
#                   step checks that pip finds none, as docs/deploy.md says.
#
# ROOTFS_DIR (default /var/tmp/deepfer-arm64, /var/tmp/deepfer-arm64-trixie for trixie) is
# created once and reused; PHOTO defaults to
# $DEEPFER_DATA/media/justin.jpg, VIDEO to $DEEPFER_DATA/media/woman2.mp4. The checkout's tracked
# files are copied as they are in the work tree (uncommitted edits included). Needs root, network
# access to Debian and PyPI, and the packages debootstrap, qemu-user-static and binfmt-support
# (and mosquitto for the service step). Emulated timings say nothing about a Pi's speed.
set -euo pipefail
suite=${ARM64_CHECK_SUITE:-bookworm}
case "$suite" in
  bookworm) root=${1:-/var/tmp/deepfer-arm64} ;;
  trixie) root=${1:-/var/tmp/deepfer-arm64-trixie} ;;
  *) echo "arm64-check: ARM64_CHECK_SUITE=$suite: bookworm or trixie" >&2; exit 1 ;;
esac
photo=${2:-${DEEPFER_DATA:-}/media/justin.jpg}
video=${3:-${DEEPFER_DATA:-}/media/woman2.mp4}
steps=${ARM64_CHECK_STEPS:-pip service pi-numpy tflite-runtime}
src=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "arm64-check: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it)"
for tool in debootstrap qemu-aarch64-static update-binfmts; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install debootstrap qemu-user-static binfmt-support"
done
for step in $steps; do
  case "$step" in pip | service | pi-numpy | tflite-runtime) ;; *) die "unknown step '$step' in ARM64_CHECK_STEPS" ;; esac
done
case " $steps " in
  *" service "*) command -v mosquitto >/dev/null || die "mosquitto is missing (the service step's broker): apt-get install mosquitto" ;;
esac
[ -f "$photo" ] || die "no photo at '$photo': pass one, or set DEEPFER_DATA"
[ -f "$video" ] || die "no video at '$video': pass one, or set DEEPFER_DATA"

# arm64 binaries run through qemu once binfmt_misc knows about it.
[ -e /proc/sys/fs/binfmt_misc/register ] || mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true

if [ ! -x "$root/usr/bin/python3" ]; then
  echo "== debootstrap arm64 $suite into $root (a few minutes, once)"
  debootstrap --arch=arm64 --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates "$suite" "$root" \
    http://deb.debian.org/debian
fi
release=$(. "$root/etc/os-release" && echo "${VERSION_CODENAME:-?}")
[ "$release" = "$suite" ] || die "$root holds Debian $release, not $suite: give another ROOTFS_DIR"
echo "== Debian $suite arm64 in $root: $(chroot "$root" python3 -V)"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# behind a TLS-inspecting proxy (a company's, a CI sandbox's) pip needs the host's CA bundle
host_ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
pip_env=()
if [ -f "$host_ca" ]; then
  cp "$host_ca" "$root/etc/ssl/certs/host-ca-bundle.crt"
  pip_env=(PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt)
fi
# /sys stays unmounted: with the host's CPU list visible, XNNPACK under qemu segfaults
for fs in proc; do mountpoint -q "$root/$fs" || mount --bind "/$fs" "$root/$fs"; done
mosquitto_pid=""
cleanup() {
  if [ -n "$mosquitto_pid" ]; then kill "$mosquitto_pid" 2>/dev/null || true; fi
  umount "$root/proc" 2>/dev/null || true
}
trap cleanup EXIT

echo "== copy this checkout (tracked files as in the work tree), the photo and the video"
rm -rf "$root/opt/src" && mkdir -p "$root/opt/src" "$root/opt/media" "$root/opt/check"
tree=$(git -C "$src" stash create 2>/dev/null || true)   # a commit of the work tree ("" = clean)
git -C "$src" archive --format=tar "${tree:-HEAD}" | tar -x -C "$root/opt/src"
cp "$photo" "$root/opt/media/photo.jpg"
rm -f "$root"/opt/media/video.*
cp "$video" "$root/opt/media/video.${video##*.}"
chmod -R a+rX "$root/opt/media"

# Runs a bash script in the chroot, in a clean environment: the host's pip settings (local
# indexes, find-links) do not apply there.
in_chroot() {
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TIMEFORMAT='%1R s' \
    "${pip_env[@]}" "$@" chroot "$root" /bin/bash -euo pipefail -c "$(cat)"
}

step_pip() {
  echo "== pip install .[edge] from aarch64 wheels"
  in_chroot <<'SH'
  python3 -m venv --clear /opt/venv   # afresh: what a new user's pip picks today
  /opt/venv/bin/pip install -q --upgrade pip
  { time /opt/venv/bin/pip install -q "/opt/src[edge]"; } 2> /tmp/pip.time
  echo "pip install /opt/src[edge]: $(tail -1 /tmp/pip.time)"
  /opt/venv/bin/deepfer detectors install >/dev/null   # BlazeFace + CenterFace files, --no-deps
  echo "machine: $(uname -m)"
  /opt/venv/bin/python -c "import importlib.util as u, sys; sys.exit(1 if u.find_spec(\"tensorflow\") else 0)" \
    || { echo "TensorFlow was installed: the edge install must not pull it in" >&2; exit 1; }
  cd /tmp
  /opt/venv/bin/deepfer --help >/dev/null
  /opt/venv/bin/deepfer detectors
  for d in blazeface centerface haar; do
    time /opt/venv/bin/deepfer detect /opt/media/photo.jpg --detector "$d"   # emulated: slow
  done
  # the daemon on the video: events on stdout, its stats checked
  time /opt/venv/bin/deepfer run --source /opt/media/video.* --detector blazeface \
    --max-frames 150 --stats-json /tmp/stats.json > /tmp/events.jsonl
  /opt/venv/bin/python - <<"PY"
import json, sys
s = json.load(open("/tmp/stats.json"))
events = [json.loads(line) for line in open("/tmp/events.jsonl") if line.strip()]
print({k: s.get(k) for k in ("frames", "frames_with_face", "full_scans", "near_scans", "carried_frames")}, len(events), "events")
ok = s["frames"] == 150 and s["near_scans"] > 0 and s["carried_frames"] > 0 and events
sys.exit(0 if ok else "the daemon on the video: no near searches, carried frames or events")
PY
SH
}

# A free TCP port on the loopback (none answers there); mosquitto listens on it.
free_port() {
  local port
  for _ in $(seq 50); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  return 1
}

# mosquitto on a free loopback port (broker_port), stopped at exit.
start_broker() {
  local dir
  broker_port=$(free_port) || { echo "no free loopback port" >&2; return 1; }
  dir=$(mktemp -d /tmp/arm64-check-mosquitto.XXXXXX)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n' \
    "$broker_port" > "$dir/mosquitto.conf"
  mosquitto -c "$dir/mosquitto.conf" > "$dir/mosquitto.log" 2>&1 &
  mosquitto_pid=$!
  for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$broker_port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  cat "$dir/mosquitto.log" >&2
  return 1
}

# The installed unit's ExecStart, run by hand as systemd would start it (the chroot has no
# systemd running): its user and groups, Environment=, StateDirectory=, WorkingDirectory= and
# LoadCredential=. Checks one event, the retained status, and the last will.
cat > "$root/opt/check/run_unit.py" <<'PY'
import grp, json, os, pwd, shlex, shutil, signal, subprocess, sys, time

import paho.mqtt.client as mqtt

from deepfer.edge.labels import LABELS
from deepfer.edge.messages import validate_event

port, unit = int(sys.argv[1]), sys.argv[2]
service, environment = {}, {}
section = None
for line in open(unit):
    line = line.strip()
    if not line or line[0] in "#;":
        continue
    if line.startswith("["):
        section = line
    elif section == "[Service]":
        key, _, value = line.partition("=")
        if key == "Environment":
            environment.update(kv.split("=", 1) for kv in shlex.split(value))
        else:
            service[key] = value
user = pwd.getpwnam(service["User"])
group = grp.getgrnam(service.get("Group", service["User"])).gr_gid
groups = [grp.getgrnam(g).gr_gid for g in service.get("SupplementaryGroups", "").split()]
state = "/var/lib/" + service["StateDirectory"]
os.makedirs(state, exist_ok=True)
os.chown(state, user.pw_uid, group)
os.chmod(state, 0o755)
credentials = "/run/credentials/deepfer.service"
name, path = service["LoadCredential"].split(":", 1)
os.makedirs(credentials, exist_ok=True)
shutil.copyfile(path, f"{credentials}/{name}")
for p, mode in ((f"{credentials}/{name}", 0o400), (credentials, 0o500)):
    os.chown(p, user.pw_uid, group)
    os.chmod(p, mode)
env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
       "HOME": user.pw_dir, "USER": user.pw_name, "LOGNAME": user.pw_name,
       "SHELL": user.pw_shell, "STATE_DIRECTORY": state, "CREDENTIALS_DIRECTORY": credentials,
       **environment}
command = shlex.split(service["ExecStart"])
print("ExecStart:", " ".join(command), "as", user.pw_name, flush=True)
log = open("/tmp/service.log", "w")


def start():
    return subprocess.Popen(command, user=user.pw_uid, group=group, extra_groups=groups, env=env,
                            cwd=service["WorkingDirectory"], umask=0o027, stdout=log,
                            stderr=subprocess.STDOUT)


messages = []  # (topic, payload, retained) as they arrive


def listener(client_id, topic):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    got = []
    client.on_message = lambda c, u, m: got.append((m.topic, m.payload.decode(), bool(m.retain)))
    client.connect("127.0.0.1", port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    return client, got


def fail(why, proc=None):
    if proc is not None and proc.poll() is None:
        proc.kill()
    log.flush()
    print(open("/tmp/service.log").read()[-4000:], file=sys.stderr)
    sys.exit(f"the service by hand: {why}")


def wait_for(what, until, proc, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = until()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            fail(f"it exited ({proc.returncode}) before {what}")
        time.sleep(0.5)
    fail(f"no {what} in {timeout} s", proc)


def retained_status(topic):
    client, got = listener("arm64-check-retained", topic)
    time.sleep(3)  # (the broker sends retained messages at once)
    client.loop_stop()
    client.disconnect()
    retained = [p for t, p, r in got if r]
    return retained[-1] if retained else None


listen, messages = listener("arm64-check-listener", "deepfer/#")
t0 = time.monotonic()
proc = start()


def first_event():
    for topic, payload, _ in messages:
        if topic.endswith("/events"):
            return topic, json.loads(payload)


topic, event = wait_for("emotion event on deepfer/+/events", first_event, proc, 900)
print(f"first event after {time.monotonic() - t0:.0f} s (emulated) on {topic}:", json.dumps(event))
problems = validate_event(event, LABELS)
if problems:
    fail(f"the event is not valid: {problems}", proc)
status = topic.rsplit("/", 1)[0] + "/status"
if retained_status(status) != "online":
    fail(f"retained {status} is not online while it runs", proc)
print(f"retained {status}: online")
outboxes = [f for f in os.listdir(state) if f.startswith("mqtt-outbox-") and f.endswith(".sqlite3")]
owners = {pwd.getpwuid(os.stat(f"{state}/{f}").st_uid).pw_name for f in outboxes}
if not outboxes or owners != {user.pw_name}:
    fail(f"no outbox of {user.pw_name} in {state}: {outboxes} {owners}", proc)
print(f"outbox: {state}/{outboxes[0]} ({user.pw_name})")

proc.send_signal(signal.SIGTERM)  # systemctl stop
try:
    rc = proc.wait(120)
except subprocess.TimeoutExpired:
    fail("still running 120 s after SIGTERM", proc)
if rc != 0:
    fail(f"exit status {rc} after SIGTERM (0 expected)")
if retained_status(status) != "offline":
    fail(f"retained {status} is not offline after a clean stop")
kinds = sorted({t.rsplit("/", 1)[1] for t, _, _ in messages})
print(f"SIGTERM: exit 0, retained {status}: offline; topics seen: {kinds}")

seen = len(messages)
proc = start()
wait_for("status online again", lambda: any(t == status and p == "online" for t, p, _ in messages[seen:]), proc, 600)
seen = len(messages)
proc.kill()  # a crash or a power cut: no clean disconnect, the broker sends the last will
proc.wait()
wait_for("last will (offline) after SIGKILL", lambda: any(t == status and p == "offline" for t, p, _ in messages[seen:]), None, 120)
if retained_status(status) != "offline":
    fail(f"retained {status} is not offline after the last will")
print(f"SIGKILL: last will published, retained {status}: offline")
listen.loop_stop()
listen.disconnect()
shutil.rmtree(credentials)
PY

step_service() {
  start_broker || { echo "mosquitto did not start" >&2; return 1; }
  echo "== deploy/install.sh --from the checkout, as a Pi owner runs it (broker on 127.0.0.1:$broker_port)"
  in_chroot PORT="$broker_port" <<'SH'
  # a Pi OS system has systemd (not running in this chroot) and ps
  missing=""
  for p in systemd procps; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends $missing; } > /tmp/apt.log 2>&1 \
      || { cat /tmp/apt.log; exit 1; }
  fi
  # what an earlier check left: removed the documented way
  if [ -e /etc/systemd/system/deepfer.service ] || id deepfer >/dev/null 2>&1; then
    /opt/src/deploy/install.sh --uninstall --purge >/dev/null
  fi
  cd /opt/src
  { time deploy/install.sh --from /opt/src > /tmp/install.out 2>&1 || { cat /tmp/install.out; exit 1; }; } 2> /tmp/install.time
  echo "install.sh --from /opt/src: exit 0, $(cat /tmp/install.time)"
  grep -q "systemd is not running here" /tmp/install.out || { cat /tmp/install.out; exit 1; }
  [ -L /etc/systemd/system/multi-user.target.wants/deepfer.service ] \
    || { echo "the unit is not enabled for the next boot" >&2; exit 1; }
  stat -c '%n %U:%G %a' /etc/deepfer/deepfer.toml /etc/deepfer/mqtt-password
  [ "$(stat -c '%U:%G %a' /etc/deepfer/deepfer.toml)" = "root:deepfer 640" ]
  [ "$(stat -c '%U %a' /etc/deepfer/mqtt-password)" = "root 600" ]
  id deepfer

  venv=/opt/deepfer/venv
  echo "-- the Pi venv: $(du -sh "$venv" | cut -f1) ($(du -s --apparent-size -m "$venv" | cut -f1) MB apparent), $("$venv/bin/python" -V)"
  "$venv/bin/python" - <<'PY'
import importlib.metadata as md, importlib.util, sys
dists = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in md.distributions()}
for name in ("numpy", "opencv-python-headless", "ai-edge-litert", "paho-mqtt", "deepfer"):
    print(f"   {name} {dists.get(name, '-')}")
bad = sorted(n for n in dists if n.startswith(("tensorflow", "tf-", "torch", "keras"))
             or (n.startswith("opencv") and n != "opencv-python-headless"))
bad += [m for m in ("tensorflow", "torch") if importlib.util.find_spec(m)]
if bad:
    sys.exit(f"the Pi venv must not hold {bad} (no TensorFlow, no PyTorch, one OpenCV)")
print(f"   {len(dists)} distributions; no TensorFlow, no PyTorch, no OpenCV besides opencv-python-headless")
PY
  cd /
  for run in first second; do   # emulated: qemu translates the code afresh every time
    echo "-- deepfer --version as deepfer ($run): $({ time runuser -u deepfer -- "$venv/bin/deepfer" --version >&2; } 2>&1 | tr '\n' ' ')"
  done
  # the installer's own "check the config" line (sudo -u there; runuser here, no sudo installed)
  runuser -u deepfer -- "$venv/bin/deepfer" run --config /etc/deepfer/deepfer.toml --check

  # the owner's edits (sudoedit): a device name, the looped video as the camera, the broker
  conf=/etc/deepfer/deepfer.toml
  sed -i -e 's|^device_id = .*|device_id = "pi-check"|' \
    -e '/^\[source\]/,/^\[/ s|^uri = .*|uri = "'"$(ls /opt/media/video.*)"'"|' \
    -e '/^\[source\]/,/^\[/ s|^loop = .*|loop = true|' \
    -e '/^\[mqtt\]/,/^\[/ s|^url = .*|url = "mqtt://127.0.0.1:'"$PORT"'"|' "$conf"
  grep -E '^(device_id|uri|loop|url) =' "$conf"
  runuser -u deepfer -- "$venv/bin/deepfer" run --config "$conf" --check
  cd /tmp
  "$venv/bin/python" /opt/check/run_unit.py "$PORT" /etc/systemd/system/deepfer.service

  # an update, with --start: no systemd here, so exit 3; the edited config is kept
  cd /opt/src
  rc=0
  { time deploy/install.sh --from /opt/src --start > /tmp/install2.out 2>&1 || rc=$?; } 2> /tmp/install2.time
  echo "install.sh --from /opt/src --start (again): exit $rc, $(cat /tmp/install2.time)"
  [ "$rc" = 3 ] || { cat /tmp/install2.out; echo "--start without systemd: exit $rc, 3 expected" >&2; exit 1; }
  grep -q 'device_id = "pi-check"' "$conf" || { echo "the update overwrote the edited config" >&2; exit 1; }
  [ ! -e "$conf.new" ] || { echo "a .new config although the shipped one did not change" >&2; exit 1; }
  echo "install.sh --start: exit 3 (systemd not running), edited config kept, no .new"

  deploy/install.sh --uninstall --purge >/dev/null
  for gone in /etc/systemd/system/deepfer.service /opt/deepfer /etc/deepfer /var/lib/deepfer; do
    [ ! -e "$gone" ] || { echo "--uninstall --purge left $gone" >&2; exit 1; }
  done
  ! id deepfer >/dev/null 2>&1 || { echo "--uninstall left the user deepfer" >&2; exit 1; }
  echo "install.sh --uninstall --purge: unit, venv, config, state and user removed"
SH
}

step_pi_numpy() {
  echo "== a Pi's venv: --system-site-packages over apt's numpy, pip held to it by install.sh"
  in_chroot <<'SH'
  if ! dpkg -s python3-numpy >/dev/null 2>&1; then
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends python3-numpy; } > /tmp/apt.log 2>&1 \
      || { cat /tmp/apt.log; exit 1; }
  fi
  python3 -m venv --clear --system-site-packages /opt/pi-like/venv
  # install.sh's own constraints, as it writes them on a Pi (its functions, sourced)
  (source /opt/src/deploy/install.sh && PREFIX=/opt/pi-like PYTHON=/usr/bin/python3 && keep_system_numpy)
  sed 's/^/   constraints: /' /opt/pi-like/venv/constraints.txt
  venv=/opt/pi-like/venv
  "$venv/bin/pip" install -q --upgrade pip
  { time "$venv/bin/pip" install -q --upgrade -c "$venv/constraints.txt" "/opt/src[edge]"; } 2> /tmp/pip.time
  echo "   pip install -c constraints.txt /opt/src[edge]: $(tail -1 /tmp/pip.time)"
  "$venv/bin/pip" check | sed 's/^/   pip check: /'   # (its exit status fails the step)
  "$venv/bin/deepfer" detectors install >/dev/null
  "$venv/bin/python" - <<'PY'
import importlib.metadata as md, sys
import numpy
versions = {n: md.version(n) for n in ("numpy", "opencv-python-headless", "ai-edge-litert")}
print("  ", ", ".join(f"{n} {v}" for n, v in versions.items()), "| numpy from", numpy.__file__)
if not numpy.__file__.startswith("/usr/lib/python3/"):
    sys.exit("pip put a second numpy in the venv over the system's")
PY
  cd /tmp
  for d in blazeface haar; do
    "$venv/bin/deepfer" detect /opt/media/photo.jpg --detector "$d"
  done
SH
}

step_tflite_runtime() {
  echo "== tflite-runtime instead of ai-edge-litert: /opt/venv-tflite with numpy<2"
  in_chroot <<'SH'
  if python3 -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
    # tflite-runtime 2.14.0 (its last release) has wheels for Python 3.8 to 3.11 only
    python3 -m venv --clear /tmp/venv-probe
    if /tmp/venv-probe/bin/pip download -q --no-deps -d /tmp/probe tflite-runtime > /tmp/pip.out 2>&1; then
      echo "pip found a tflite-runtime for $(python3 -V): $(ls /tmp/probe);" \
        "docs/deploy.md says it has none (update it, and run this step's detect)" >&2
      exit 1
    fi
    grep -q "No matching distribution found for tflite-runtime" /tmp/pip.out || { cat /tmp/pip.out; exit 1; }
    echo "   $(python3 -V): pip finds no tflite-runtime (as documented: ai-edge-litert only)"
    rm -rf /tmp/venv-probe /tmp/probe
    exit 0
  fi
  python3 -m venv --clear /opt/venv-tflite
  /opt/venv-tflite/bin/pip install -q --upgrade pip
  /opt/venv-tflite/bin/pip install -q "numpy<2" tflite-runtime "/opt/src"
  /opt/venv-tflite/bin/deepfer detectors install >/dev/null
  /opt/venv-tflite/bin/pip list 2>/dev/null | grep -E '^(numpy|opencv|tflite|ai-edge)' | sed 's/^/   /'
  cd /tmp
  for d in blazeface haar; do
    rc=0
    DEEPFER_MODEL_RUNTIME=tflite-runtime /opt/venv-tflite/bin/deepfer detect /opt/media/photo.jpg \
      --detector "$d" || rc=$?
    if [ "$rc" = 139 ]; then
      echo "tflite-runtime crashed (SIGSEGV) with --detector $d: see docs/deploy.md," \
        "'Check the Pi install path without a Pi'" >&2
    fi
    [ "$rc" = 0 ] || exit 1
  done
SH
}

failed=()
for step in $steps; do
  fn="step_${step//-/_}"
  if "$fn"; then echo "== $step: OK"; else echo "== $step: FAILED" >&2; failed+=("$step"); fi
done
[ ${#failed[@]} = 0 ] || die "failed: ${failed[*]}"
echo "== arm64 install path OK ($steps)"
