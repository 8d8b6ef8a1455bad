#!/usr/bin/env bash
# Benchmarks `clmnt fleet backup` against GNU tar on the same make-fleet data, in one run.
# Usage: bash bench/backup.sh [medium|large]   (data in $BENCH_DIR, default /var/tmp/clmnt-bench;
#        archives written to $OUT_DIR, default $BENCH_DIR/out: set OUT_DIR=/dev/shm/... to leave the disk out)
# Prints a Markdown report; results/ keeps hyperfine's JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:-medium}
. bench/prepare-fleet.sh
out=${OUT_DIR:-$bench_dir/out}
rm -rf "$out" && mkdir -p "$out"
# Warm the page cache so every command reads from memory alike.
tar -cf - -C "$bench_dir" "$scale" | cat > /dev/null  # a pipe: GNU tar does not read files for /dev/null

echo "# fleet backup benchmark ($scale, $(date -u +%Y-%m-%dT%H:%MZ))"
echo
echo "Archives written to: $out ($(df --output=fstype "$out" | tail -1))"
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); input: $(du -sb "$fleet" | cut -f1) bytes apparent-ish in $(find "$fleet" -type f | wc -l) files"
echo

hyperfine --runs "$((runs + 2))" --warmup 1 --export-json "bench/results/backup-zstd-$scale.json" \
  --prepare "rm -f $out/*; sync" \
  -n "clmnt zstd" "$clmnt fleet backup -d $fleet --compress zstd -o $out/c.tar.zst -q" \
  -n "clmnt zstd --include-caches" "$clmnt fleet backup -d $fleet --compress zstd --include-caches -o $out/c.tar.zst -q" \
  -n "tar zstd -3 -T0" "tar -I 'zstd -3 -T0' -cf $out/t.tar.zst -C $bench_dir $scale" >&2

hyperfine --runs "$runs" --export-json "bench/results/backup-gzip-$scale.json" \
  --prepare "rm -rf $out/*; sync" \
  -n "clmnt gzip" "$clmnt fleet backup -d $fleet -o $out/c.tar.gz -q" \
  -n "clmnt gzip --include-caches" "$clmnt fleet backup -d $fleet --include-caches -o $out/c.tar.gz -q" \
  -n "tar -czf" "tar -czf $out/t.tar.gz -C $bench_dir $scale" \
  -n "tar -I pigz" "tar -I pigz -cf $out/t.tar.gz -C $bench_dir $scale" \
  -n "plan's bash (cp -a + tar -czf)" "bash bench/plan-bash-backup.sh $fleet $out/p.tar.gz" >&2

python3 - "$scale" <<'PY'
import json, sys
scale = sys.argv[1]
def load(name):
    return {r["command"]: r for r in json.load(open(f"bench/results/{name}-{scale}.json"))["results"]}
for title, name, base in [("zstd", "backup-zstd", "tar zstd -3 -T0"), ("gzip", "backup-gzip", "tar -czf")]:
    results = load(name)
    print(f"## {title} (median of runs; ratio = command / `{base}`)\n")
    print("| command | median s | ratio |")
    print("|---|---|---|")
    for command, r in results.items():
        print(f"| {command} | {r['median']:.2f} | {r['median'] / results[base]['median']:.2f} |")
    print()
g = load("backup-gzip")
plan = g["plan's bash (cp -a + tar -czf)"]["median"]
print(f"Plan's bash approach / clmnt gzip: {plan / g['clmnt gzip']['median']:.1f}x faster\n")
PY

echo "## Peak memory (/usr/bin/time -v, maximum resident set size)"
echo
for compression in gzip zstd; do
  rm -f "$out"/*
  rss=$(/usr/bin/time -v "$clmnt" fleet backup -d "$fleet" --compress "$compression" -o "$out/m.$compression" -q 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2}')
  echo "- clmnt $compression: $((rss / 1024)) MiB"
done
echo
rm -f "$out"/*
"$clmnt" fleet backup -d "$fleet" --compress zstd -o "$out/list.tar.zst" -q
"$clmnt" fleet backup -d "$fleet" -o "$out/list.tar.gz" -q
echo "## list-backups (archives of $(du -sh "$out" | cut -f1))"
echo
hyperfine --runs 10 --warmup 2 --export-json "bench/results/list-$scale.json" \
  "$clmnt fleet list-backups --backup-dir $out" >&2
python3 -c "import json; r=json.load(open('bench/results/list-$scale.json'))['results'][0]; print(f\"- list-backups: median {r['median']*1000:.1f} ms\")"
rm -rf "$out"
