#!/usr/bin/env bash
# Time and peak memory (RSS) of clmnt's backup, restore and verify against GNU tar, zstd -t
# and sha256sum on the same data, one command after the other in one run, as the fleet grows.
# Usage (as root): bash bench/scale/run.sh
#   BENCH_DIR  data (default /var/tmp/clmnt-bench); the 1,000,000-file fleet is made there
#              once (bench/scale/make-million.sh, 20 molts x 50,000 small session files)
#   SIZES      molts of that fleet to take per point (default "2 5 10 20": 100k ... 1M files)
#   OUT_DIR    archives and restores (default $BENCH_DIR/scale-out, on the same disk)
#   CLMNT      a clmnt binary to use instead of building .build/release/clmnt
# Writes bench/scale/results/scale.csv, prints a Markdown table, and draws docs/scaling.png
# (bench/scale/plot.py, matplotlib installed into $BENCH_DIR/venv from PyPI the first time).
#   RAM=1      archives and restores on a tmpfs mounted at $BENCH_DIR/ram (the disk left out:
#              restores then measure CPU, not writeback; clmnt refuses to restore below /dev)
set -euo pipefail
cd "$(dirname "$0")/../.."
bench_dir=${BENCH_DIR:-/var/tmp/clmnt-bench}
sizes=${SIZES:-2 5 10 20}
out=${OUT_DIR:-$bench_dir/scale-out}
if [ "${RAM:-0}" = 1 ]; then
  out="$bench_dir/ram"
  mkdir -p "$out"
  mountpoint -q "$out" || mount -t tmpfs -o size=16g,mode=0755 tmpfs "$out"
fi
results=bench/scale/results
mkdir -p "$results"
fleet="$bench_dir/million"
MAKE_FLEET=${MAKE_FLEET:-$PWD/../shared/tools/make-fleet} bash bench/scale/make-million.sh "$fleet"
if [ -n "${CLMNT:-}" ]; then clmnt=$CLMNT; else swift build -c release >&2; clmnt="$PWD/.build/release/clmnt"; fi

# Runs "$@" under /usr/bin/time; prints "<seconds> <peak RSS in KiB>".
measure() {
  local log; log=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$log" "$@" > /dev/null 2>&1 || { echo "failed: $*" >&2; cat "$log" >&2; rm -f "$log"; return 1; }
  tail -1 "$log"; rm -f "$log"
}

csv="$results/scale.csv"
echo "molts,files,bytes,step,tool,seconds,rss_kib" > "$csv"
names=$(python3 -c "import json,sys; print(' '.join(json.load(open(sys.argv[1]))['molts']))" "$fleet/molts.json")
for count in $sizes; do
  selected=$(echo $names | tr ' ' '\n' | sort | head -n "$count")
  files=$(cd "$fleet" && find $selected -type f | wc -l)
  bytes=$(cd "$fleet" && du -sb $selected | awk '{s += $1} END {print s}')
  rm -rf "${out:?}"/* && mkdir -p "$out"
  # Page cache, alike for every command (through a pipe: GNU tar skips reading files into /dev/null).
  (cd "$fleet" && tar -cf - $selected | cat > /dev/null)
  selected=$(echo $selected)
  row() { echo "$count,$files,$bytes,$1,$2,${3/ /,}" >> "$csv"; echo "  $1 $2: $3 (s, KiB)" >&2; }

  row backup tar "$(measure tar -I 'zstd -3 -T0' -cf "$out/t.tar.zst" -C "$fleet" $selected)"
  row backup clmnt "$(measure "$clmnt" fleet backup -d "$fleet" --select "$(echo $selected | tr ' ' ,)" \
                       --compress zstd --include-caches -o "$out/c.tar.zst" -q)"
  sync
  mkdir -p "$out/tar-x" "$out/clmnt-x"
  row restore tar "$(measure tar -xf "$out/c.tar.zst" -C "$out/tar-x")"
  rm -rf "$out/tar-x" && mkdir -p "$out/tar-x" && sync
  # clmnt syncs the restored trees before it swaps them in (a power cut must not leave empty
  # files behind); tar does not: this row is tar with the same guarantee.
  row restore "tar+sync" "$(measure bash -c "tar -xf '$out/c.tar.zst' -C '$out/tar-x' && sync")"
  row restore clmnt "$(measure "$clmnt" fleet restore --from "$out/c.tar.zst" -d "$out/clmnt-x" --yes --skip-users)"
  row verify "zstd-t+sha256sum" "$(measure bash -c "zstd -qt '$out/c.tar.zst' && cd '$fleet' && find $selected -type f -print0 | xargs -0 -n 2000 sha256sum > /dev/null")"
  row verify clmnt "$(measure "$clmnt" fleet verify "$out/c.tar.zst")"
  rm -rf "${out:?}"/*
done

python3 - "$csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("| molts | files | step | clmnt s | reference s | ratio | clmnt peak RSS | reference peak RSS |")
print("|---|---|---|---|---|---|---|---|")
points = sorted({(int(r["molts"]), int(r["files"])) for r in rows})
for molts, files in points:
    for step in ["backup", "restore", "verify"]:
        mine = next(r for r in rows if int(r["molts"]) == molts and r["step"] == step and r["tool"] == "clmnt")
        for ref in (r for r in rows if int(r["molts"]) == molts and r["step"] == step and r["tool"] != "clmnt"):
            s, t = float(mine["seconds"]), float(ref["seconds"])
            print(f"| {molts} | {files:,} | {step} | {s:.1f} | {t:.1f} ({ref['tool']}) | {s / t:.2f} | "
                  f"{int(mine['rss_kib']) / 1024:.0f} MiB | {int(ref['rss_kib']) / 1024:.0f} MiB |")
PY

# The scaling plot (docs/scaling.png), with matplotlib from a venv beside the data.
venv="$bench_dir/venv"
[ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import matplotlib' 2>/dev/null \
  || { python3 -m venv "$venv" && "$venv/bin/pip" install -q matplotlib; } >&2
"$venv/bin/python" bench/scale/plot.py "$csv" docs/scaling.png
