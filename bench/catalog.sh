#!/usr/bin/env bash
# `fleet list-backups` and `fleet restore --dry-run` in a backup dir holding a year of
# nightlies: 365 archives of the large fleet (targets: < 50 ms and < 100 ms).
# Both read only the first entry of an archive (its manifest), so the 365 files are the
# first $HEAD_MIB MiB (default 8) of one real zstd archive of the large fleet, each
# extended to that archive's full size with a hole: the bytes either command reads are
# real, and 365 x 1.2 GB need not be on disk.
# Usage (as root): bash bench/catalog.sh    (data in $BENCH_DIR, default /var/tmp/clmnt-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
scale=large
. bench/prepare-fleet.sh
dir="$bench_dir/catalog-365"
head_mib=${HEAD_MIB:-8}
if [ ! -f "$dir/.complete" ]; then
  rm -rf "$dir" && mkdir -m 700 -p "$dir"
  "$clmnt" fleet backup -d "$fleet" --compress zstd -o "$bench_dir/catalog-source.tar.zst" --force -q
  size=$(stat -c %s "$bench_dir/catalog-source.tar.zst")
  for day in $(seq 0 364); do
    name="$dir/fleet-$(date -u -d "2026-12-07 - $day days" +%F).tar.zst"
    head -c "${head_mib}M" "$bench_dir/catalog-source.tar.zst" > "$name"
    truncate -s "$size" "$name"
    chmod 600 "$name"
  done
  rm -f "$bench_dir/catalog-source.tar.zst"
  touch "$dir/.complete"
fi
newest="$dir/fleet-2026-12-07.tar.zst"
echo "# list-backups and restore --dry-run, $(ls "$dir" | grep -c tar.zst) archives of the large fleet ($(date -u +%Y-%m-%dT%H:%MZ))"
hyperfine -N --warmup 3 --runs 20 --export-json bench/results/catalog-365.json \
  -n "list-backups (365 archives)" "$clmnt fleet list-backups --backup-dir $dir" \
  -n "restore --dry-run (newest of 365)" "$clmnt fleet restore --from $newest -d /var/tmp/clmnt-bench-none --dry-run" >&2
python3 - <<'PY'
import json
for r in json.load(open("bench/results/catalog-365.json"))["results"]:
    print(f"- {r['command']}: median {r['median'] * 1000:.1f} ms, max {r['max'] * 1000:.1f} ms")
PY
