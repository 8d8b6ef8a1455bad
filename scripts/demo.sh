#!/usr/bin/env bash
# Sets everything up, then backs up the bundled demo fleet, lists and verifies the backup,
# and shows the plan of restoring it on a new host (dry run).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
swift build -c release --product clmnt
clmnt=.build/release/clmnt
out=$(mktemp -d /tmp/clmnt-demo.XXXXXX)
echo "== clmnt fleet backup (demo fleet in Fixtures/demo-fleet)"
"$clmnt" fleet backup -d Fixtures/demo-fleet -o "$out/fleet-demo.tar.gz"
"$clmnt" fleet backup -d Fixtures/demo-fleet --compress zstd -o "$out/fleet-demo.tar.zst"
echo "== clmnt fleet list-backups"
"$clmnt" fleet list-backups --backup-dir "$out"
echo "== clmnt fleet verify"
"$clmnt" fleet verify "$out/fleet-demo.tar.gz"
"$clmnt" fleet verify "$out/fleet-demo.tar.zst"
echo "== clmnt fleet restore --dry-run (into a new base dir: nothing is changed)"
"$clmnt" fleet restore --from "$out/fleet-demo.tar.zst" -d "$out/new-host" --dry-run
echo "== archives are in $out"
