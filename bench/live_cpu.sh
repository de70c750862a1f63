#!/usr/bin/env bash
# The live figures of docs/BENCHMARKS.md (issue 5), on this machine, for one engine:
#   1. glass-to-glass latency in a real browser (Chromium + Playwright), 60 s;
#   2. load: N aiortc clients at once, one round per N (fps each, latency percentiles, server memory);
#   3. faults and fuzzed signaling (every case answered, no session or task leaked).
# Everything runs in fresh loopback-only network namespaces (127.0.0.2); nothing leaves the machine.
#   bash bench/live_cpu.sh [ENGINE] [OUT_DIR] [CLIENT_COUNTS] [SECONDS]
# defaults: the bundled mannequin, bench-out/, 1,2,3,4 clients, 60 s per round.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ENGINE=${1:-realtime/targets/mannequin.onnx}
OUT=${2:-bench-out}
CLIENTS=${3:-1,2,3,4}
SECONDS_PER_ROUND=${4:-60}
SOURCE=../shared/data/source_dance.mp4
mkdir -p "$OUT"
echo "== $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD), engine $ENGINE, $(nproc) cores"

echo "== 1. browser, glass to glass, 60 s"
$PY -m bench.browser --engine "$ENGINE" --seconds 60 --width 256 --json "$OUT/browser.json" > "$OUT/browser.txt" || true
$PY - "$OUT/browser.json" <<'PYEOF'
import json, sys
summary = json.load(open(sys.argv[1]))["summary"]
g2g = summary["glass_to_glass"]
print(json.dumps({k: v for k, v in g2g.items() if k != "samples"}, indent=1))
print(summary["page_stats_text"])
PYEOF

in_netns() {  # run the server and one client inside a new namespace; the server stops when the client ends
  local server_args=$1 client_args=$2
  unshare -n bash -c "
    ip link set lo up && ip addr add 127.0.0.2/8 dev lo
    $PY server.py --engine $ENGINE --host 127.0.0.2 --port 8080 $server_args > $OUT/server.log 2>&1 &
    for _ in \$(seq 120); do $PY -c 'import socket; socket.create_connection((\"127.0.0.2\", 8080), 1)' \
        2>/dev/null && break; sleep 1; done
    $PY -m bench.loadtest --url ws://127.0.0.2:8080/ws --source $SOURCE $client_args; rc=\$?
    kill -TERM %1; wait; exit \$rc"
}

echo "== 2. load: clients $CLIENTS, $SECONDS_PER_ROUND s each"
in_netns "--max-sessions 8 --test-stamp" \
    "--clients $CLIENTS --seconds $SECONDS_PER_ROUND --stamp --json $OUT/load.json" > "$OUT/load.txt" || true
tail -n 60 "$OUT/load.txt"

echo "== 3. faults and fuzzed signaling"
in_netns "--max-sessions 3" "--faults --json $OUT/faults.json" > "$OUT/faults.txt" || true
tail -n 40 "$OUT/faults.txt"
