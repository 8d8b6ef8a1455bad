#!/usr/bin/env bash
# Installs the Debian packages building clmnt and running it need: nothing else (sourced by
# install.sh and demo.sh). The test bench (browsers, benchmarks, debootstrap, ...) is in
# install-test-deps.sh, which scripts/test.sh and CI use.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "clmnt: run this as root (e.g. sudo bash $0): it installs Debian packages" >&2
  exit 1
fi
clmnt_apt_install() {
  local missing=() package
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}
clmnt_apt_install \
  `# build: libarchive and the compressors clmnt drives itself, SQLite, OpenSSL's SHA-256` \
  pkg-config libarchive-dev libdeflate-dev libzstd-dev libsqlite3-dev libssl-dev libacl1-dev \
  `# run: crontab for schedules; man-db to index the installed man pages` \
  cron man-db
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
command -v swift >/dev/null || { echo "install-deps: Swift 6 toolchain not found (expected /opt/swift)" >&2; exit 1; }
