#!/usr/bin/env bash
# The plan's bash approach, for comparison: copy each molt to a temp dir, then tar -czf.
set -euo pipefail
fleet=$1 output=$2
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
mkdir -p "$staging/backup/global"
for home in "$fleet"/*/; do
  [ -f "$home/.molt-info" ] || continue
  cp -a "$home" "$staging/backup/$(basename "$home")"
done
cp -a "$fleet/molts.json" "$staging/backup/global/"
echo '{"version":"1.0"}' > "$staging/backup/manifest.json"
tar -czf "$output" -C "$staging" backup
