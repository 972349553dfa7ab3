#!/usr/bin/env bash
# Replay of recorded tasks (`airlock replay`, docs/replay.md): 1,000 real tasks of the example
# agent recorded through `airlock serve` and its tool gateway (search_kb mapped to the example's
# knowledge-base service on loopback), then replayed against an unchanged repack and the current
# release, several rounds. Reports, per round, the tasks, the tool calls the replay gateway
# answered from the recording, the time the gateway took per call (p50, p99, max: from a call's
# request head to its answer, as the report measures it) and the replay's wall time.
#
# Target (issue 12): replay of 1,000 recorded tasks against two runtimes completes with the
# gateway adding under 1 ms p99 per tool call. PASS when every round's p99 is under 1 ms, FAIL
# when every round's is over, otherwise not established.
#
# Settings, from the environment:
#   REPLAY_TASKS (1000)   tasks recorded and replayed
#   REPLAY_ROUNDS (5)     replays
#   REPLAY_WORK           work folder, kept (default: a new folder, removed at the end)
#
# Exit status: 0 when the target passes and every task replayed without a divergence; 1 when
# not; 2 when a command failed.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 AIRLOCK_BINARY" >&2
  exit 64
fi
AIRLOCK=$(realpath -e -- "$1")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=$ROOT/bundles/example-agent
TASKS=${REPLAY_TASKS:-1000}
ROUNDS=${REPLAY_ROUNDS:-5}
if [ -n "${REPLAY_WORK:-}" ]; then
  WORK=$REPLAY_WORK
  rm -rf "$WORK"
  mkdir -p "$WORK"
  KEEP=1
else
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/airlock-bench-replay-XXXXXX")
  KEEP=0
fi
chmod 755 "$WORK"
SITE=$WORK/site
SERVE=""
KB=""
log() { echo "bench-replay: $*" >&2; }
die() {
  log "error: $*"
  exit 2
}
cleanup() {
  local status=$?
  set +e
  [ -n "$SERVE" ] && kill "$SERVE" 2>/dev/null && wait "$SERVE" 2>/dev/null
  [ -n "$KB" ] && kill "$KB" 2>/dev/null
  [ "$KEEP" = 1 ] || rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

log "packing and installing example-agent 1.0.0 and its repack 1.0.1 in $WORK"
"$AIRLOCK" key generate --out "$WORK/vendor" >/dev/null 2>&1 || die "key generate failed"
mkdir -p "$SITE/.trust"
cp "$WORK/vendor.pub" "$SITE/.trust/"
"$AIRLOCK" trust allow kb.internal:443 tickets.internal:443 orders.internal:8443 --root "$SITE" >/dev/null || die "trust allow failed"
for v in 1.0.0 1.0.1; do
  rm -rf "$WORK/rel" && cp -R "$SRC" "$WORK/rel"
  "$SRC/make-weights.sh" "$WORK/rel/model/weights.safetensors" 1 >/dev/null
  sed -i -e "s/^version: .*/version: $v/" -e "s/^sequence: .*/sequence: ${v//./}/" "$WORK/rel/airlock.yaml"
  "$AIRLOCK" pack "$WORK/rel" --key "$WORK/vendor.key" --out "$WORK/$v.airlock" >"$WORK/pack-$v.log" 2>&1 || die "pack $v failed: $(tail -n 3 "$WORK/pack-$v.log")"
  activate=()
  [ "$v" = 1.0.0 ] && activate=(--activate)
  "$AIRLOCK" install "$WORK/$v.airlock" --root "$SITE" "${activate[@]}" >"$WORK/install-$v.log" 2>&1 || die "install $v failed: $(tail -n 3 "$WORK/install-$v.log")"
done

KB_PORT=$(free_port)
python3 "$WORK/rel/code/retrieval.py" --http "$KB_PORT" "$WORK/rel/index" &
KB=$!
"$AIRLOCK" trust allow "127.0.0.1:$KB_PORT" --root "$SITE" >/dev/null || die "trust allow failed"
python3 - "$SITE/.trust/policy.json" "$KB_PORT" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["tools"] = {"endpoints": {"search_kb": {"url": "http://127.0.0.1:%s/search" % sys.argv[2]}}}
json.dump(p, open(sys.argv[1], "w"))
PY

PORT=$(free_port)
URL=http://127.0.0.1:$PORT
"$AIRLOCK" serve example-agent --root "$SITE" --listen "127.0.0.1:$PORT" 2>"$WORK/serve.log" &
SERVE=$!
python3 - "$URL" <<'PY' || die "serve did not answer"
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/example-agent/healthz", headers={"X-Task-Id": "warm"}), timeout=2)
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit(1)
PY
"$AIRLOCK" record on example-agent --sample 100% --root "$SITE" >/dev/null || die "record on failed"
sleep 1
log "recording $TASKS tasks through serve"
python3 "$ROOT/scripts/rollout-load.py" --url "$URL" --token-file "$SITE/.serve-token" --name example-agent \
  --cases "$SRC/eval/cases.json" --tasks "$TASKS" --prefix rec --threads 4 >"$WORK/load.log" 2>&1 || die "load failed: $(tail -n 3 "$WORK/load.log")"
sleep 1
kill "$SERVE"
wait "$SERVE" 2>/dev/null || true
SERVE=""
recorded=$("$AIRLOCK" record status example-agent --root "$SITE" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])')
log "recorded: $recorded bytes compressed"

echo "# airlock replay: $TASKS recorded tasks, $ROUNDS rounds"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "- command: ${REPLAY_COMMAND:-scripts/bench-replay.sh $1}"
echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
echo "- airlock: $AIRLOCK ($("$AIRLOCK" --version))"
echo "- recording: $recorded bytes compressed"
echo
echo "| round | tasks | tool calls | gateway p50 ms | gateway p99 ms | gateway max ms | diverged (candidate / baseline) | replay s |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
results=$WORK/rounds.txt
: >"$results"
for r in $(seq 1 "$ROUNDS"); do
  set +e
  "$AIRLOCK" replay example-agent 1.0.1 --root "$SITE" --json >"$WORK/replay-$r.json" 2>"$WORK/replay-$r.err"
  status=$?
  set -e
  [ "$status" -le 1 ] || die "replay failed: $(tail -n 3 "$WORK/replay-$r.err")"
  python3 - "$WORK/replay-$r.json" "$r" "$status" >>"$results" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); g = j["gateway"]
print(sys.argv[2], j["tasks"], g["calls"], g["p50_ms"], g["p99_ms"], g["max_ms"], j["candidate_diverged"], j["baseline_diverged"], j["seconds"], sys.argv[3])
PY
  tail -n 1 "$results" | awk '{printf "| %s | %s | %s | %s | %s | %s | %s / %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9}'
done
echo
python3 - "$results" "$TASKS" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
p99 = [float(r[4]) for r in rows]
complete = all(int(r[1]) == int(sys.argv[2]) and r[6] == "0" and r[7] == "0" and r[9] == "0" for r in rows)
verdict = "PASS" if max(p99) < 1 else "FAIL" if min(p99) >= 1 else "not established"
print(f"Target: the gateway under 1 ms p99 per tool call, replaying {sys.argv[2]} tasks against two runtimes. "
      f"p99 over the rounds {min(p99):.3f} / {sorted(p99)[len(p99) // 2]:.3f} / {max(p99):.3f} ms (min / median / max): **{verdict}**.")
print(f"Every round replayed every task with no divergence (an unchanged repack): {'yes' if complete else 'NO'}.")
sys.exit(0 if verdict == "PASS" and complete else 1)
PY
