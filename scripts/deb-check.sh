#!/usr/bin/env bash
# CI check of the Debian package: builds clmnt_<version>_amd64.deb, installs it with apt-get
# into a clean Debian 12 root (debootstrap, minbase, no Swift toolchain), and there runs
# `clmnt --version`, restores an archive made on this machine, backs the restored fleet up,
# restores that into a second base dir (same files, owners and modes), and runs `fleet doctor`.
#
# As root. The pristine root is cached in $CLMNT_CHROOT_CACHE (default /var/cache/clmnt-ci):
# the first run bootstraps it (a few minutes, from deb.debian.org), later runs put a
# throw-away overlay on top of it. Every mount is undone on exit, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "deb-check: run this as root (debootstrap, chroot and mounts need it)" >&2
  exit 1
fi

cache=${CLMNT_CHROOT_CACHE:-/var/cache/clmnt-ci}
suite=bookworm
mirror=${CLMNT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
pristine=$cache/$suite-minbase
started=$(date +%s)

step() { echo "== deb-check: $* ($(( $(date +%s) - started )) s)"; }

# 1. The package.
step "building the .deb"
mkdir -p "$cache"
deb=$(bash scripts/package-deb.sh 2>"$cache/package-deb.log" | tail -n 1) \
  || { tail -n 40 "$cache/package-deb.log" >&2; exit 1; }
[ -f "$deb" ] || { echo "deb-check: package-deb.sh did not print the .deb's path" >&2; exit 1; }
step "lintian"
if ! lintian_output=$(lintian --fail-on error,warning "$deb" 2>&1); then
  echo "$lintian_output" >&2
  echo "deb-check: lintian found errors or warnings in $deb" >&2
  exit 1
fi

# 2. The release binary needs nothing of the toolchain: no library under /opt/swift, and it
# runs with an empty LD_LIBRARY_PATH.
binary=$(swift build -c release --static-swift-stdlib --show-bin-path)/clmnt
if ldd "$binary" | grep -q '/opt/swift'; then
  echo "deb-check: $binary links libraries of the Swift toolchain:" >&2
  ldd "$binary" | grep '/opt/swift' >&2
  exit 1
fi
LD_LIBRARY_PATH= "$binary" --version >/dev/null

# 3. A pristine Debian root, made once per machine.
if [ ! -f "$pristine/.clmnt-complete" ]; then
  step "bootstrapping $suite (minbase) into $pristine: first run on this machine"
  rm -rf "$pristine"
  mkdir -p "$cache"
  debootstrap --variant=minbase "$suite" "$pristine" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -n 30 "$cache/debootstrap.log" >&2; exit 1; }
  # Installing packages in a chroot must not start their daemons (cron) on this machine.
  printf '#!/bin/sh\nexit 101\n' >"$pristine/usr/sbin/policy-rc.d"
  chmod 0755 "$pristine/usr/sbin/policy-rc.d"
  touch "$pristine/.clmnt-complete"
fi

# 4. A throw-away root: an overlay on the pristine one (a copy where overlayfs is missing).
work=$(mktemp -d /var/tmp/clmnt-deb-check.XXXXXX)
root=$work/root
mounts=()
cleanup() {
  local index
  for (( index=${#mounts[@]}-1; index>=0; index-- )); do
    umount "${mounts[index]}" 2>/dev/null || umount -l "${mounts[index]}" 2>/dev/null || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
mkdir -p "$root" "$work/upper" "$work/overlay-work" "$cache/apt-archives/partial"
if mount -t overlay overlay -o "lowerdir=$pristine,upperdir=$work/upper,workdir=$work/overlay-work" "$root" 2>/dev/null; then
  mounts+=("$root")
else
  cp -a "$pristine/." "$root/"
fi
mount -t proc proc "$root/proc"; mounts+=("$root/proc")
mount --bind /dev "$root/dev"; mounts+=("$root/dev")
mount --bind /dev/pts "$root/dev/pts"; mounts+=("$root/dev/pts")
# Downloaded .debs persist between runs, so only the first run fetches libarchive and friends.
mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"; mounts+=("$root/var/cache/apt/archives")
cp /etc/resolv.conf "$root/etc/resolv.conf"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 "$@"; }

step "installing $(basename "$deb") with apt-get in the clean root"
cp "$deb" "$root/tmp/"
in_root apt-get -qq update
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "/tmp/$(basename "$deb")" >/dev/null
[ ! -e "$root/opt/swift" ] || { echo "deb-check: the clean root has a Swift toolchain" >&2; exit 1; }

step "running clmnt there"
in_root clmnt --version
in_root test -f /usr/share/man/man1/clmnt.1.gz
in_root test -f /usr/share/bash-completion/completions/clmnt

# An archive made on this machine (the "old host"), restored on the new one.
fleet=$work/demo-fleet
cp -a Fixtures/demo-fleet "$fleet"
"$binary" fleet backup -q -d "$fleet" -o "$root/tmp/from-old-host.tar.gz"
in_root clmnt fleet restore --from /tmp/from-old-host.tar.gz -d /srv/molts --yes
in_root clmnt fleet verify /tmp/from-old-host.tar.gz >/dev/null
# Back the restored fleet up there and restore it into a second base dir: same files.
in_root clmnt fleet backup -q -d /srv/molts --backup-dir /var/backups/clmnt --compress zstd
archive=$(in_root sh -c 'ls /var/backups/clmnt/*.tar.zst')
in_root clmnt fleet restore --from "$archive" -d /srv/molts-copy --yes --force >/dev/null
# Same files, byte for byte, except those naming the home (rewritten to the new base dir).
for molt in assistant-1 mailbot-2 commander; do
  diff -r -x openclaw.json -x .molt-info "$root/srv/molts/$molt" "$root/srv/molts-copy/$molt" >&2 \
    || { echo "deb-check: $molt differs after backup and restore in the clean root" >&2; exit 1; }
done
owners() { (cd "$1" && find . -printf '%u:%g %m %p\n' | LC_ALL=C sort); }
diff <(owners "$root/srv/molts") <(owners "$root/srv/molts-copy") >&2 \
  || { echo "deb-check: owners or modes differ after backup and restore in the clean root" >&2; exit 1; }
in_root clmnt fleet list-backups -d /srv/molts --backup-dir /var/backups/clmnt

# fleet doctor passes there once the homes belong to their molts (the demo fleet's files are
# root's in git, so the archive from this machine carries root as their owner).
for molt in assistant-1 mailbot-2 commander; do in_root chown -R "$molt:$molt" "/srv/molts/$molt"; done
in_root clmnt fleet backup -q -d /srv/molts --backup-dir /var/backups/clmnt --compress zstd
in_root clmnt fleet doctor -d /srv/molts --backup-dir /var/backups/clmnt \
  || { echo "deb-check: fleet doctor failed in the clean root" >&2; exit 1; }
step "passed"
