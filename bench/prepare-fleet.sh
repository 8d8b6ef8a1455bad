# Sourced by the benchmarks: the make-fleet data of $scale (generated once) and a release build.
# Sets bench_dir, fleet, runs and clmnt.
bench_dir=${BENCH_DIR:-/var/tmp/clmnt-bench}
make_fleet=${MAKE_FLEET:-../shared/tools/make-fleet}
runs=${RUNS:-3}
mkdir -p "$bench_dir" bench/results
fleet="$bench_dir/$scale"
if [ ! -f "$fleet/molts.json" ]; then
  python3 "$make_fleet" --out "$fleet" --scale "$scale" --seed 7 >&2
fi
swift build -c release >&2
clmnt="$PWD/.build/release/clmnt"
