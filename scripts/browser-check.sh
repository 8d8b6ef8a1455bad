#!/usr/bin/env bash
# Real-browser check of the dashboard page (Debian's chromium + chromedriver, Selenium):
# badges, live update through /api/events, narrow and dark layouts; saves docs/dashboard.png.
# Run by scripts/test.sh after the unit tests; exits non-zero when any check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
clmnt=${CLMNT:-.build/debug/clmnt}
screenshot=${SCREENSHOT:-docs/dashboard.png}
# Debian's python3: python3-selenium is installed for it.
/usr/bin/python3 scripts/browser_check.py --clmnt "$clmnt" --screenshot "$screenshot"
