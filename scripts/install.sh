#!/usr/bin/env bash
# From-source install: builds the release binary (Swift runtime linked in) and installs it with
# its man pages and bash/zsh/fish completions under PREFIX (default /usr/local).
#
#   sudo bash scripts/install.sh                     # /usr/local/bin/clmnt, /usr/local/share/man/man1, ...
#   sudo PREFIX=/opt/clmnt bash scripts/install.sh
#   DESTDIR=/tmp/stage bash scripts/install.sh       # stage for another packager (no root needed)
#   sudo bash scripts/install.sh --uninstall
#
# Builds with the Swift 6 toolchain (/opt/swift); the installed binary needs only Debian's
# libarchive13, libzstd1, libdeflate0, libsqlite3-0, libssl3, and cron for scheduling.
# As root it installs only the Debian packages building and running need (install-deps.sh);
# the test bench (install-test-deps.sh) is for scripts/test.sh on a build machine.
# The build (and the man-page plugin) runs as whoever runs this script; to keep it away from
# root, stage as yourself and copy as root:
#   DESTDIR=$HOME/stage bash scripts/install.sh && sudo cp -a $HOME/stage/usr/local/. /usr/local/
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${PREFIX:-/usr/local}
destdir=${DESTDIR:-}

files=(bin/clmnt share/bash-completion/completions/clmnt share/zsh/site-functions/_clmnt
       share/fish/vendor_completions.d/clmnt.fish)
if [ "${1:-}" = "--uninstall" ]; then
  for file in "${files[@]}"; do rm -f "$destdir$prefix/$file"; done
  rm -f "$destdir$prefix"/share/man/man1/clmnt.1.gz "$destdir$prefix"/share/man/man1/clmnt-*.1.gz
  echo "removed clmnt from $destdir$prefix"
  exit 0
fi
if [ -n "${1:-}" ]; then
  echo "usage: install.sh [--uninstall]   (PREFIX and DESTDIR from the environment)" >&2
  exit 64
fi

if [ -z "$destdir" ] && [ "$(id -u)" -eq 0 ]; then
  source scripts/install-deps.sh
fi
bash scripts/build-release.sh "$destdir" "$prefix"
if [ -z "$destdir" ] && command -v mandb >/dev/null; then mandb -q "$prefix/share/man" 2>/dev/null || true; fi
echo "installed $destdir$prefix/bin/clmnt ($("$destdir$prefix/bin/clmnt" --version))"
