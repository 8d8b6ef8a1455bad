#!/usr/bin/env bash
# Sets everything up, then builds and runs the whole test suite (as root: tests create users).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-test-deps.sh
swift build --build-tests
swift test --skip-build 2>&1 | tee /tmp/clmnt-test.log
bash scripts/browser-check.sh
