#!/usr/bin/env bash
# Installs what building needs (install-deps.sh) plus the test bench: the tools the tests
# drive, the real-browser check, the benchmarks, and the Debian-package check. For a build or
# CI machine (scripts/test.sh, .ci/run), never for a production host. Everything comes from
# Debian's archive: no pip into the system Python.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/install-deps.sh"
clmnt_apt_install \
  `# tests: GNU tar and the compressors it calls, xattr tools, a SQLite client` \
  tar gzip zstd xz-utils bzip2 attr acl sqlite3 python3 \
  `# age interoperability (Tests/ClmntCoreTests/AgeFormatTests.swift): age, age-keygen, ssh-keygen` \
  age openssh-client \
  `# users, crontabs, mail and processes (restore and health monitoring)` \
  passwd login msmtp python3-aiosmtpd procps \
  `# /metrics checked with the Prometheus client's own parser` \
  python3-prometheus-client \
  `# the dashboard's real-browser check (scripts/browser-check.sh)` \
  chromium chromium-driver python3-selenium curl \
  `# benchmarks` \
  hyperfine time pigz libarchive-tools wrk \
  `# the Debian package and its check in a clean root (scripts/package-deb.sh, scripts/deb-check.sh)` \
  dpkg-dev debootstrap lintian
