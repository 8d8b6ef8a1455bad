#!/usr/bin/env bash
# Dashboard benchmark, on a 40-molt fleet whose state files the real health module wrote
# (`clmnt molt health check --all`, 5 times, against stand-in gateways, 5 of them hung):
#   - GET /api/molts under wrk, 10 connections, 2 threads, 10 s: p50 < 5 ms, p99 < 20 ms
#   - GET / (the page's HTML) under wrk the same way: p99 < 20 ms
#   - health-watch start-up with the server linked into the same binary: mean < 50 ms (hyperfine)
#
#   bench/dashboard/run.sh                 # builds the release binary first
#   CLMNT=/path/to/clmnt bench/dashboard/run.sh
#   FLEET_MOLTS=200 HUNG_EVERY=10 CONNECTIONS=64 STREAMS=1000 P99_MS=10 bench/dashboard/run.sh
#       # issue 21: 200 molts, 64 clients, p99 < 10 ms; 1,000 open /api/events streams held
#       # (the server's peak RSS with them) while /api/molts is measured again
#
# Needs: python3, wrk, hyperfine, make-fleet (../shared/tools/make-fleet beside the repo).
# Writes bench/dashboard/results/ (with the machine's load average before each measurement:
# wrk and the server share the cores, so other work on the machine shows in the tail latencies)
# and fails when a target is missed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
make_fleet=${MAKE_FLEET:-$repo/../shared/tools/make-fleet}
[ -f "$make_fleet" ] || make_fleet=/work/shared/tools/make-fleet
duration=${DURATION:-10s}
connections=${CONNECTIONS:-10}
streams=${STREAMS:-0}
p99_target=${P99_MS:-20}

if [ -z "${CLMNT:-}" ]; then
    (cd "$repo" && swift build -c release --product clmnt >&2)
    CLMNT="$repo/.build/release/clmnt"
fi

work=$(mktemp -d /tmp/clmnt-dashboard-bench.XXXXXX)
gw_pid="" server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

source "$repo/bench/health/gateway-fleet.sh"
for _ in 1 2 3 4 5; do "$CLMNT" molt health check --all -d "$work/fleet" --timeout 1 >/dev/null || true; done
mkdir -p "$work/backups"
"$CLMNT" fleet backup -d "$work/fleet" --backup-dir "$work/backups" --compress zstd >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$CLMNT" dashboard serve -d "$work/fleet" --backup-dir "$work/backups" --port "$port" --no-auth 2> "$work/server.log" &
server_pid=$!
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/api/health" >/dev/null 2>&1 && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$port/api/molts" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["summary"]["total"]==int(sys.argv[1]), d["summary"]; print("fleet:", d["summary"])' "${#molts[@]}" 

mkdir -p "$here/results"
# wrk's own latency distribution: p50/p99 from --latency.
latency() { # name path
    uptime | tee "$here/results/$1.load"
    wrk -t2 -c"$connections" -d"$duration" --latency "http://127.0.0.1:$port$2" | tee "$here/results/$1.txt"
}
echo "== GET /api/molts (${#molts[@]} molts), wrk $connections connections"
latency api-molts /api/molts
echo "== GET / (the page), wrk $connections connections"
latency page /
rss() { awk '/^VmRSS|^VmHWM/ {printf "%s %d MiB  ", $1, $2 / 1024} END {print ""}' "/proc/$server_pid/status"; }
echo "server memory: $(rss)" | tee "$here/results/memory.txt"
if [ "$streams" -gt 0 ]; then
    echo "== $streams open /api/events streams, then GET /api/molts again"
    exec 7> >(python3 "$here/streams.py" "$port" "$streams" > "$work/streams.out")
    for _ in $(seq 600); do grep -q open "$work/streams.out" 2>/dev/null && break; sleep 0.1; done
    echo "streams: $(cat "$work/streams.out"); server memory: $(rss)" | tee -a "$here/results/memory.txt"
    latency api-molts-streams /api/molts
    echo "after: $(rss)" | tee -a "$here/results/memory.txt"
    exec 7>&-
fi

echo "== health-watch start-up, this binary (dashboard linked in)"
uptime | tee "$here/results/health-watch.load"
hyperfine --warmup 10 --runs "${RUNS:-200}" --export-json "$here/results/health-watch.json" \
    "$CLMNT molt health-watch ${molts[0]} -d $work/fleet"

python3 - "$here/results" "$p99_target" "$streams" <<'PY'
import json, os, re, sys
results, p99_target, streams = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
def percentiles(name):
    text = open(f"{results}/{name}.txt").read()
    found = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", text, re.M))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)
    return ms(found["50"]), ms(found["99"]), float(rps)
a50, a99, arps = percentiles("api-molts")
p50, p99, prps = percentiles("page")
hw = json.load(open(f"{results}/health-watch.json"))["results"][0]
mean = hw["mean"] * 1000
print(f"/api/molts: p50 {a50:.2f} ms, p99 {a99:.2f} ms, {arps:.0f} req/s (targets 5 / {p99_target:g} ms)")
ok_streams = True
if streams:
    s50, s99, srps = percentiles("api-molts-streams")
    print(f"/api/molts with {streams} streams open: p50 {s50:.2f} ms, p99 {s99:.2f} ms, {srps:.0f} req/s")
    ok_streams = s99 < p99_target
print(open(f"{results}/memory.txt").read().strip())
print(f"page:       p50 {p50:.2f} ms, p99 {p99:.2f} ms, {prps:.0f} req/s (target p99 < 20 ms)")
print(f"health-watch: mean {mean:.1f} ms, max {hw['max']*1000:.1f} ms (target < 50 ms)")
for name in ("api-molts", "page", "health-watch") + (("api-molts-streams",) if streams else ()):
    load = re.search(r"load average: (.*)", open(f"{results}/{name}.load").read()).group(1)
    print(f"load average (1, 5, 15 min) before {name}: {load}")
ok = a50 < 5 and a99 < p99_target and p99 < 20 and mean < 50 and ok_streams
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
