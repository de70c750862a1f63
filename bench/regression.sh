#!/usr/bin/env bash
# Before/after figures of a restructure, on this machine, in one sitting (issue 17's "no regression"):
#   1. unseen poses: the bundled mannequin driven by both source videos against the renderer's ground truth
#      (python -m train evaluate --synthetic), body and whole-frame SSIM/PSNR, pose distance;
#   2. offline fps: python -m realtime.offline on source_dance.mp4;
#   3. one live load round: 1 and 2 aiortc clients, SECONDS each, a 480-pixel camera, in a fresh loopback-only
#      network namespace (127.0.0.2), with the server's CPU seconds per generated frame.
#   bash bench/regression.sh OUT_DIR [SECONDS]
# Run it from the checkout to measure (a worktree of the old commit measures "before": checkouts from before the
# light command-line modules, without train/cli.py, get the old spellings of the two commands).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:?usage: bash bench/regression.sh OUT_DIR [SECONDS]}
SECONDS_PER_ROUND=${2:-60}
DATA=../shared/data
ENGINE=realtime/targets/mannequin.onnx
mkdir -p "$OUT"
if [ -f train/cli.py ]; then EVALUATE="train evaluate"; OFFLINE=realtime.offline
else EVALUATE=train.evaluate; OFFLINE=realtime.retarget; fi
echo "== $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"

echo "== 1. unseen poses ($EVALUATE --synthetic), both source videos"
start=$(date +%s)
$PY -m $EVALUATE --synthetic --engine "$ENGINE" --source "$DATA/source_dance.mp4" \
    --source "$DATA/source_dribble.mp4" --out "$OUT/unseen" > "$OUT/unseen.txt" 2>&1
echo "   took $(( $(date +%s) - start )) s"; tail -n 20 "$OUT/unseen.txt"

echo "== 2. offline fps ($OFFLINE, source_dance.mp4)"
$PY -m $OFFLINE --source "$DATA/source_dance.mp4" --out "$OUT/offline.mp4" 2>&1 | tail -n 3

echo "== 3. live load round: 1 and 2 clients, $SECONDS_PER_ROUND s each, 480-pixel camera"
unshare -n bash -c "
  ip link set lo up && ip addr add 127.0.0.2/8 dev lo
  $PY server.py --engine $ENGINE --host 127.0.0.2 --port 8080 --max-sessions 8 --test-stamp > $OUT/server.log 2>&1 &
  for _ in \$(seq 120); do $PY -c 'import socket; socket.create_connection((\"127.0.0.2\", 8080), 1)' \
      2>/dev/null && break; sleep 1; done
  $PY -m bench.loadtest --url ws://127.0.0.2:8080/ws --source $DATA/source_dance.mp4 --clients 1,2 \
      --seconds $SECONDS_PER_ROUND --max-side 480 --stamp --json $OUT/load.json > $OUT/load.txt 2>&1; rc=\$?
  kill -TERM %1; wait; exit \$rc" || echo "load round failed (see $OUT/load.txt)"
$PY - "$OUT/load.json" <<'PYEOF'
import json, sys
report = json.load(open(sys.argv[1]))
rounds = report["rounds"] if isinstance(report, dict) and "rounds" in report else report
for r in rounds:
    frames = sum(c["frames_received"] for c in r["per_client"])
    g2g = r["glass_to_glass_ms"] or {}
    print(f"clients {r['clients']}: fps each {[c['fps'] for c in r['per_client']]}, glass-to-glass p50/p95 "
          f"{g2g.get('p50')}/{g2g.get('p95')} ms, server CPU {r['cpu_s']['server']} s for {frames} frames = "
          f"{1000 * r['cpu_s']['server'] / max(frames, 1):.1f} ms CPU per generated frame, "
          f"rss {r['rss_mib']}")
PYEOF
