#!/usr/bin/env bash
# Health benchmark: whole-process time of `clmnt molt health-watch` for one
# molt whose gateway answers (target < 50 ms), and `clmnt molt health check
# --all` over 40 molts of which 5 gateways never answer (target: within one
# timeout + 1 s).
#
#   bench/health/run.sh                 # builds the release binary first
#   CLMNT=/path/to/clmnt bench/health/run.sh
#   FLEET_MOLTS=200 HUNG_EVERY=10 bench/health/run.sh   # issue 21: 200 molts, 20 hung
#
# Needs: python3, hyperfine, make-fleet (../shared/tools/make-fleet beside the repo).
# Writes its results to bench/health/results/ and fails when a target is missed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
make_fleet=${MAKE_FLEET:-$repo/../shared/tools/make-fleet}
[ -x "$make_fleet" ] || [ -f "$make_fleet" ] || make_fleet=/work/shared/tools/make-fleet
timeout_s=${TIMEOUT:-2}
runs=${RUNS:-200}

if [ -z "${CLMNT:-}" ]; then
    (cd "$repo" && swift build -c release --scratch-path .build-health --product clmnt >&2)
    CLMNT="$repo/.build-health/release/clmnt"
fi

work=$(mktemp -d /tmp/clmnt-health-bench.XXXXXX)
gw_pid=""
cleanup() { [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

source "$repo/bench/health/gateway-fleet.sh"

mkdir -p "$here/results"
molt=${molts[0]}
echo "== health-watch $molt (gateway answers), $runs runs"
"$CLMNT" molt health-watch "$molt" -d "$work/fleet"
hyperfine --warmup 10 --runs "$runs" --export-json "$here/results/health-watch.json" \
    --export-markdown "$here/results/health-watch.md" \
    "$CLMNT molt health-watch $molt -d $work/fleet"
mean_ms=$(python3 -c "import json;r=json.load(open('$here/results/health-watch.json'))['results'][0];print('%.1f'%(r['mean']*1000))")
max_ms=$(python3 -c "import json;r=json.load(open('$here/results/health-watch.json'))['results'][0];print('%.1f'%(r['max']*1000))")

echo "== check --all over ${#molts[@]} molts, ${#hung[@]} hung, --timeout $timeout_s"
hyperfine --runs 5 -i --export-json "$here/results/check-all.json" --export-markdown "$here/results/check-all.md" \
    "$CLMNT molt health check --all -d $work/fleet --timeout $timeout_s"
all_s=$(python3 -c "import json;r=json.load(open('$here/results/check-all.json'))['results'][0];print('%.3f'%r['max'])")
"$CLMNT" molt health check --all -d "$work/fleet" --timeout "$timeout_s" | awk 'NR==1 || /unhealthy/' || true

echo
echo "health-watch: mean ${mean_ms} ms, max ${max_ms} ms (target < 50 ms)"
echo "check --all:  slowest of 5 runs ${all_s} s (target < $timeout_s + 1 s)"
python3 - "$mean_ms" "$all_s" "$timeout_s" <<'PY'
import sys
mean, slowest, timeout = map(float, sys.argv[1:])
ok = mean < 50 and slowest < timeout + 1
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
