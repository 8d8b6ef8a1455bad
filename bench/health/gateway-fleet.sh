# Sourced by bench/health/run.sh and bench/dashboard/run.sh: a fleet of $FLEET_MOLTS molts
# (default 40) in $work/fleet (make-fleet, tiny) with a stand-in gateway on every molt's port,
# one in $HUNG_EVERY (default 8: 5 of 40) never answering.
# Needs $work, $make_fleet; sets molts[] and gw_pid (the caller kills it).
fleet_molts=${FLEET_MOLTS:-40}
hung_every=${HUNG_EVERY:-8}
python3 "$make_fleet" --out "$work/fleet" --scale tiny --molts "$fleet_molts" --sparse-mib 1 >/dev/null
mapfile -t molts < <(cd "$work/fleet" && ls -d */ | tr -d / | sort)
[ "${#molts[@]}" -eq "$fleet_molts" ]
healthy=() hung=()
for i in "${!molts[@]}"; do
    port=$(sed -n 's/^MOLT_PORT=//p' "$work/fleet/${molts[$i]}/.molt-info")
    if [ $((i % hung_every)) -eq 3 ]; then hung+=("$port"); else healthy+=("$port"); fi
done
python3 "$(dirname "${BASH_SOURCE[0]}")/gateways.py" --healthy "$(IFS=,; echo "${healthy[*]}")" \
    --hung "$(IFS=,; echo "${hung[*]}")" > "$work/gw.out" &
gw_pid=$!
for _ in $(seq 100); do grep -q ready "$work/gw.out" 2>/dev/null && break; sleep 0.05; done
for m in "${molts[@]}"; do echo "$gw_pid" > "$work/fleet/$m/.openclaw/gateway.pid"; done
