#!/usr/bin/env bash
# Benchmarks `clmnt fleet restore` against `tar -xf` (and `bsdtar -xpf`) of the same
# archive, in one run, and times `--dry-run` on a multi-GB archive.
# Usage (as root): bash bench/restore/run.sh
#   BENCH_DIR  data and scratch (default /var/tmp/clmnt-bench-restore; needs ~8 GB free)
#   RUNS       hyperfine runs per command (default 5)
#   BIG_MIB    size of the incompressible blob that makes the dry-run archive multi-GB (default 2600)
#   CLMNT      a clmnt binary to use instead of building .build/release/clmnt
# Prints a Markdown report; bench/restore/results/ keeps hyperfine's JSON.
set -euo pipefail
cd "$(dirname "$0")/../.."
bench_dir=${BENCH_DIR:-/var/tmp/clmnt-bench-restore}
make_fleet=${MAKE_FLEET:-../shared/tools/make-fleet}
runs=${RUNS:-5}
big_mib=${BIG_MIB:-2600}
results=bench/restore/results
mkdir -p "$bench_dir" "$results"

if [ -n "${CLMNT:-}" ]; then
  clmnt=$CLMNT
else
  swift build -c release >&2
  clmnt="$PWD/.build/release/clmnt"
fi
if ! "$clmnt" fleet restore --help > /dev/null 2>&1; then
  echo "clmnt has no 'fleet restore' (add Restore.self to Fleet's subcommands)" >&2
  exit 1
fi

# The medium fleet, and its backup made by clmnt itself (default gzip).
fleet="$bench_dir/medium"
[ -f "$fleet/molts.json" ] || python3 "$make_fleet" --out "$fleet" --scale medium --seed 7 >&2
archive="$bench_dir/medium.tar.gz"
[ -f "$archive" ] || "$clmnt" fleet backup -d "$fleet" -o "$archive" -q

# A multi-GB archive for --dry-run: the medium fleet plus a molt holding an incompressible blob.
big="$bench_dir/big"
big_archive="$bench_dir/big.tar.gz"
if [ ! -f "$big_archive" ]; then
  rm -rf "$big" && cp -al "$fleet" "$big"
  mkdir -p "$big/zz-blob"
  printf 'MOLT_NAME=zz-blob\nMOLT_PORT=19981\n' > "$big/zz-blob/.molt-info"
  head -c "${big_mib}M" /dev/urandom > "$big/zz-blob/blob.bin"
  "$clmnt" fleet backup -d "$big" -o "$big_archive" --level 1 -q
  rm -rf "$big"
fi

out="$bench_dir/out"
cat "$archive" > /dev/null  # page cache: every command reads from memory alike

echo "# fleet restore benchmark ($(date -u +%Y-%m-%dT%H:%MZ))"
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), $(df -T "$bench_dir" | awk 'NR==2 {print $2}')."
echo "Archive: $(stat -c %s "$archive") bytes (gzip, written by clmnt fleet backup) of make-fleet --scale medium --seed 7;"
echo "dry-run archive: $(stat -c %s "$big_archive") bytes."
echo

hyperfine --runs "$runs" --warmup 1 --export-json "$results/restore-medium.json" \
  --prepare "rm -rf $out && mkdir -p $out" \
  -n "tar -xf" "tar -xf $archive -C $out" \
  -n "clmnt fleet restore" "$clmnt fleet restore --from $archive -d $out --yes --skip-users --json" \
  -n "bsdtar -xpf" "bsdtar -xpf $archive -C $out" >&2
rm -rf "$out"

# The same on tmpfs, where the disk does not hide the CPU cost (decompression, SHA-256, syscalls).
ram_out=/dev/shm/clmnt-bench-restore-out
hyperfine --runs "$runs" --warmup 1 --export-json "$results/restore-medium-tmpfs.json" \
  --prepare "rm -rf $ram_out && mkdir -p $ram_out" \
  -n "tar -xf" "tar -xf $archive -C $ram_out" \
  -n "clmnt fleet restore" "$clmnt fleet restore --from $archive -d $ram_out --yes --skip-users --json" \
  -n "bsdtar -xpf" "bsdtar -xpf $archive -C $ram_out" >&2
rm -rf "$ram_out"

hyperfine -N --runs 20 --warmup 3 --export-json "$results/dry-run-big.json" \
  -n "clmnt fleet restore --dry-run (multi-GB)" "$clmnt fleet restore --from $big_archive -d $out --dry-run" >&2

python3 - "$results" <<'PY'
import json, sys
results = sys.argv[1]
for file, where in [("restore-medium", "into ext4 (the bench dir)"), ("restore-medium-tmpfs", "into tmpfs (/dev/shm)")]:
    rows = {r["command"]: r for r in json.load(open(f"{results}/{file}.json"))["results"]}
    base = rows["tar -xf"]["median"]
    print(f"## Restore vs tar -xf, {where} (median of runs; ratio = command / `tar -xf`)\n")
    print("| command | median s | mean ± σ s | user s | sys s | ratio |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['median']:.2f} | {r['mean']:.2f} ± {r['stddev']:.2f} | {r['user']:.2f} | {r['system']:.2f} | {r['median'] / base:.2f} |")
    print()
dry = json.load(open(f"{results}/dry-run-big.json"))["results"][0]
print(f"## --dry-run on the multi-GB archive\n\nmedian {dry['median'] * 1000:.1f} ms, max {dry['max'] * 1000:.1f} ms over {len(dry['times'])} runs (limit: 100 ms)\n")
PY
