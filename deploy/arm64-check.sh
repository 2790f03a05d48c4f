#!/usr/bin/env bash
# Check the Raspberry Pi install path on an x86-64 Linux box: an emulated arm64 Debian
# (debootstrap + qemu-user-static) installs this checkout with `pip install ".[edge]"` from
# aarch64 wheels, runs `deepfer detect` on a photo with each detector, and the daemon on a
# video (BlazeFace 5 times a second: near searches, per-track framing, frames between
# detections grabbed without decoding). No Pi, no camera needed.
#
#   sudo deploy/arm64-check.sh [ROOTFS_DIR] [PHOTO] [VIDEO]
#
# ROOTFS_DIR (default /var/tmp/deepfer-arm64) is created once and reused; PHOTO defaults to
# $DEEPFER_DATA/media/justin.jpg, VIDEO to $DEEPFER_DATA/media/woman2.mp4. Needs root, network access to Debian and PyPI, and the
# packages debootstrap, qemu-user-static and binfmt-support. Exits non-zero on any failure,
# and when the install pulls in TensorFlow.
set -euo pipefail
root=${1:-/var/tmp/deepfer-arm64}
photo=${2:-${DEEPFER_DATA:-}/media/justin.jpg}
video=${3:-${DEEPFER_DATA:-}/media/woman2.mp4}
src=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "arm64-check: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it)"
for tool in debootstrap qemu-aarch64-static update-binfmts; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install debootstrap qemu-user-static binfmt-support"
done
[ -f "$photo" ] || die "no photo at '$photo': pass one, or set DEEPFER_DATA"
[ -f "$video" ] || die "no video at '$video': pass one, or set DEEPFER_DATA"

# arm64 binaries run through qemu once binfmt_misc knows about it.
[ -e /proc/sys/fs/binfmt_misc/register ] || mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true

if [ ! -x "$root/usr/bin/python3" ]; then
  echo "== debootstrap arm64 bookworm into $root (a few minutes, once)"
  debootstrap --arch=arm64 --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$root" \
    http://deb.debian.org/debian
fi
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
trap 'umount "$root/proc" 2>/dev/null || true' EXIT

echo "== copy this checkout (tracked files), the photo and the video"
rm -rf "$root/opt/src" && mkdir -p "$root/opt/src" "$root/opt/media"
git -C "$src" archive --format=tar HEAD | tar -x -C "$root/opt/src"
cp "$photo" "$root/opt/media/photo.jpg"
cp "$video" "$root/opt/media/video.${video##*.}"

echo "== pip install .[edge] from aarch64 wheels"
# a clean environment: the host's pip settings (local indexes, find-links) do not apply there
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  "${pip_env[@]}" \
  chroot "$root" /bin/bash -euo pipefail -c '
  [ -d /opt/venv ] || python3 -m venv /opt/venv
  /opt/venv/bin/pip install -q --upgrade pip
  /opt/venv/bin/pip install -q "/opt/src[edge]"
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
'
echo "== arm64 install path OK"
