#!/usr/bin/env bash
# Writes the 1,000,000-file fleet of issue 21: make-fleet's tiny fleet scaled to $MOLTS molts
# (default 20), then $PER_MOLT (default 50,000) session-like files of ~170 bytes in each molt's
# sessions directory, as long-lived session logs and Maildirs are. Deterministic; run once.
# Usage: bash bench/scale/make-million.sh OUT_DIR
set -euo pipefail
out=${1:?usage: make-million.sh OUT_DIR}
molts=${MOLTS:-20}
per_molt=${PER_MOLT:-50000}
make_fleet=${MAKE_FLEET:-$(dirname "$0")/../../../shared/tools/make-fleet}
[ -f "$out/molts.json" ] && { echo "make-million: $out already holds a fleet" >&2; exit 0; }
python3 "$make_fleet" --out "$out" --scale tiny --molts "$molts" --seed 7 --sparse-mib 0 >&2
python3 - "$out" "$per_molt" <<'PY'
import json, os, random, sys
out, per_molt = sys.argv[1], int(sys.argv[2])
rng = random.Random(21)
words = "the of and to reply send check list update schedule remind later follow done note".split()
for name in sorted(os.listdir(out)):
    sessions = os.path.join(out, name, ".openclaw/agents/main/sessions")
    if not os.path.isdir(sessions):
        continue
    archive = os.path.join(sessions, "archive")
    os.makedirs(archive, exist_ok=True)
    for i in range(per_molt):
        # 500 files per directory, as a dated session archive would group them.
        d = os.path.join(archive, f"{i // 500:04d}")
        if i % 500 == 0:
            os.makedirs(d, exist_ok=True)
        line = json.dumps({"type": "message", "id": f"{name}-{i}",
                           "text": " ".join(rng.choice(words) for _ in range(18))})
        with open(os.path.join(d, f"s{i:06d}.jsonl"), "w") as f:
            f.write(line[:168] + "\n")
print(f"make-million: {per_molt} session files added to each molt of {out}", file=sys.stderr)
PY
