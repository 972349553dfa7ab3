#!/usr/bin/env bash
# Routing through `airlock serve`, side by side with HAProxy, measured with wrk on loopback
# (docs/benchmarks.md, "Routing through airlock serve"). `make bench-routing` runs it.
#
#   scripts/bench-routing.sh AIRLOCK_BINARY
#
# It makes a site in a fresh folder with two releases (1.0.0, 2.0.0) whose serve command is a
# HAProxy answering every request itself (bench/routing/backend.cfg), activates 1.0.0, starts
# `airlock serve` and a canary of 2.0.0 at 5% (`--steps 5,100`; no outcome is reported and the
# policy's horizon is 1,000,000, so the canary cannot decide), then:
#   1. first pass via serve: every task of the space twice (wrk, bench/routing/tasks.lua);
#      stickiness, the candidate's share of distinct tasks, the journal; serve's VmRSS;
#   2. SIGTERM serve, start it again, and check a sample of tasks against the journal;
#   3. HAProxy on the same two backend ports (bench/routing/router.cfg.in), first pass likewise;
#   4. latency rounds at a moderate concurrency: direct to the 1.0.0 backend, via serve, via
#      HAProxy (and a second HAProxy, the A/A control), in the orders of a balanced Latin
#      square, each round after an unmeasured warm-up run; the report pools each target's
#      latency histograms over the rounds; then peak throughput rounds at a higher concurrency;
#   5. the report (bench/routing/check.py report) to stdout.
#
# Settings, from the environment:
#   ROUTING_TASKS (100000)        task space
#   ROUTING_TASK_PREFIX (t)       task ids are PREFIX0 ... PREFIX99999 (a longer prefix makes
#                                 ids like UUIDs: Swift keeps strings of up to 15 bytes inline)
#   ROUTING_WEIGHT (5)            the canary's weight in percent (HAProxy: weights 100-W / W)
#   ROUTING_THREADS (2)           wrk threads
#   ROUTING_CONC (8)              connections of the latency runs
#   ROUTING_SECONDS (2)           length of a latency run
#   ROUTING_DELAY_MS (2)          pause of each connection between a response and its next
#                                 request in the latency runs (0: back to back, which saturates
#                                 both cores when direct, see docs/benchmarks.md)
#   ROUTING_ROUNDS (16)           latency rounds (each: direct, serve, haproxy and the control,
#                                 in the orders of a balanced Latin square); rounded up to a
#                                 multiple of its rows (4, or 6 without the control)
#   ROUTING_PEAK_CONC (64)        connections of the throughput runs
#   ROUTING_PEAK_SECONDS (5)      length of a throughput run
#   ROUTING_PEAK_ROUNDS (3)       throughput rounds
#   ROUTING_PASSES (2)            requests per task in the first passes
#   ROUTING_PASS_TIMEOUT (150)    seconds a first pass may take at most
#   ROUTING_SAMPLE (2000)         tasks checked after the restart
#   ROUTING_SERVE_THREADS         serve's --threads (default: serve's own, one per core)
#   ROUTING_WORK                  work folder, kept (default: a new folder under ${TMPDIR:-/tmp},
#                                 removed at the end)
#   ROUTING_KEEP (0)              1: keep the new work folder (logs, maps, the journal)
#   ROUTING_CONTROL (1)           1: an A/A control in every latency round: a second HAProxy
#                                 router with the same configuration, measured like the others;
#                                 the report gives its p99 ratio to the first and the interval,
#                                 what this method tells apart between two identical routers
#
# Exit status: 0 when every hard target passes (every task assigned in the first pass,
# stickiness, split, restart stickiness, memory, no failed request via serve); 1 when one FAILs
# (the report is complete); 2 when a command failed (no report). The latency ratio's verdict is
# reported, never the exit status.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 AIRLOCK_BINARY" >&2
  exit 64
fi
AIRLOCK=$(realpath "$1")
REPO=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$REPO/bench/routing
CHECK=(python3 "$BENCH/check.py")

TASKS=${ROUTING_TASKS:-100000}
PREFIX=${ROUTING_TASK_PREFIX:-t}
WEIGHT=${ROUTING_WEIGHT:-5}
THREADS=${ROUTING_THREADS:-2}
CONC=${ROUTING_CONC:-8}
SECONDS_PER_RUN=${ROUTING_SECONDS:-2}
DELAY_MS=${ROUTING_DELAY_MS:-2}
ROUNDS=${ROUTING_ROUNDS:-16}
PEAK_CONC=${ROUTING_PEAK_CONC:-64}
PEAK_SECONDS=${ROUTING_PEAK_SECONDS:-5}
PEAK_ROUNDS=${ROUTING_PEAK_ROUNDS:-3}
PASSES=${ROUTING_PASSES:-2}
PASS_TIMEOUT=${ROUTING_PASS_TIMEOUT:-150}
SAMPLE=${ROUTING_SAMPLE:-2000}
KEEP=${ROUTING_KEEP:-0}
SERVE_THREADS=${ROUTING_SERVE_THREADS:-}
CONTROL=${ROUTING_CONTROL:-1}
HIST= # the latency histogram file of the run in progress (run_wrk), none outside the rounds
NAME=bench

log() { echo "bench-routing: $*" >&2; }

HAPROXY=$(command -v haproxy || true)
[ -n "$HAPROXY" ] || { [ -x /usr/sbin/haproxy ] && HAPROXY=/usr/sbin/haproxy; } || true
WRK=$(command -v wrk || true)
for tool in "$HAPROXY" "$WRK" "$(command -v python3 || true)" "$(command -v ss || true)"; do
  [ -n "$tool" ] || { log "error: needs haproxy, wrk, python3 and ss (make deps installs haproxy and wrk)"; exit 2; }
done
[ -x "$AIRLOCK" ] || { log "error: $AIRLOCK is not an executable"; exit 2; }

if [ -n "${ROUTING_WORK:-}" ]; then
  WORK=$ROUTING_WORK
  KEEP=1 # never remove a folder this script did not make
  mkdir -p "$WORK"
else
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/airlock-bench-routing.XXXXXX")
fi
chmod 755 "$WORK" # the runtimes run as nobody when this runs as root
ROOT=$WORK/root
RUNS=$WORK/runs
mkdir -p "$RUNS"
: >"$WORK/order.txt"
: >"$WORK/facts.kv"

SERVE_PID=""
ROUTER_PID=""
ROUTER2_PID=""
WRK_PID=""
RUNTIME_PIDS=()
CURRENT_RUNTIMES=()

# Ends what this script started: wrk, the HAProxy router, serve (which stops its runtimes), and
# any runtime left behind (checked by its command line, in case its pid was reused).
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  if [ -n "$WRK_PID" ]; then kill -TERM "$WRK_PID" 2>/dev/null; wait "$WRK_PID" 2>/dev/null; fi
  if [ -n "$ROUTER_PID" ]; then kill -TERM "$ROUTER_PID" 2>/dev/null; wait "$ROUTER_PID" 2>/dev/null; fi
  if [ -n "$ROUTER2_PID" ]; then kill -TERM "$ROUTER2_PID" 2>/dev/null; wait "$ROUTER2_PID" 2>/dev/null; fi
  stop_serve
  for p in "${RUNTIME_PIDS[@]}"; do
    if grep -qa haproxy "/proc/$p/cmdline" 2>/dev/null; then kill -TERM "$p" 2>/dev/null || true; fi
  done
  if [ "$KEEP" = 1 ]; then log "work folder kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

die() {
  log "error: $*"
  if [ -f "$WORK/serve.log" ]; then
    log "the end of serve's log:"
    tail -n 20 "$WORK/serve.log" >&2
  fi
  exit 2
}

fact() { echo "$1=$2" >>"$WORK/facts.kv"; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

stop_serve() {
  if [ -n "$SERVE_PID" ] && kill -0 "$SERVE_PID" 2>/dev/null; then
    kill -TERM "$SERVE_PID"
    for _ in $(seq 1 150); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
  fi
  SERVE_PID=""
}

# Starts serve, waits until the current and the candidate runtimes are ready, and reads their
# ports (pid in /_airlock/status, its listening socket from ss).
start_serve() {
  "$AIRLOCK" serve "$NAME" --root "$ROOT" --listen "127.0.0.1:$SERVE_PORT" ${SERVE_THREADS:+--threads "$SERVE_THREADS"} >>"$WORK/serve.log" 2>&1 &
  SERVE_PID=$!
  "${CHECK[@]}" status "$SERVE_URL" "$ROOT/.serve-token" "$NAME" 60 "$WORK/status.json" || die "serve did not start"
  ss -ltnpH >"$WORK/ss.txt"
  read -r INCUMBENT INCUMBENT_PORT CANDIDATE CANDIDATE_PORT < <("${CHECK[@]}" ports "$WORK/status.json" "$NAME" "$WORK/ss.txt") ||
    die "cannot find the runtimes' ports"
  CURRENT_RUNTIMES=($(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["names"][sys.argv[2]]; print(s["pid"], s["canary"]["runtime"]["pid"])' "$WORK/status.json" "$NAME"))
  RUNTIME_PIDS+=("${CURRENT_RUNTIMES[@]}")
}

rss_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

kv() { awk -F= -v k="$2" '$1 == k {print $2}' "$1"; }

# CPU time (user + system) of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# The machine's busy CPU time (all cores; idle and iowait left out), in clock ticks.
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# CPU time of what this script runs: serve, the router, the runtimes it knows, and every child
# it has waited for (wrk, via the shell's `times`), in clock ticks; written to $WORK/mine.
mine_ticks() {
  local t=0 p hz
  hz=$(getconf CLK_TCK)
  for p in $SERVE_PID $ROUTER_PID $ROUTER2_PID "${CURRENT_RUNTIMES[@]}"; do t=$((t + $(cpu_ticks "$p"))); done
  times >"$WORK/times.txt"
  echo $((t + $(awk -v hz="$hz" 'NR == 2 {
    n = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += a[1] * 60 + a[2] } printf "%d", n * hz }' "$WORK/times.txt"))) >"$WORK/mine"
}

# run_wrk LABEL URL PATH HEADER MODE PASSES CONNECTIONS SECONDS OFFSET [MAP [DELAY_MS [ROUTER_PID]]]
# ROUTER_PID: the router whose CPU time per request goes into the results. Every run also records
# how much of the machine other processes used meanwhile (others_cpu_pct). With HIST set (the
# latency rounds), wrk's whole latency histogram goes to that file.
run_wrk() {
  local label=$1 url=$2 path=$3 header=$4 mode=$5 passes=$6 conc=$7 secs=$8 offset=$9 map=${10:-} delay=${11:-0} router=${12:-}
  local cpu0=0 busy0 mine0 t0
  [ -n "$router" ] && cpu0=$(cpu_ticks "$router")
  t0=$(date +%s.%N)
  busy0=$(busy_ticks)
  mine_ticks
  mine0=$(cat "$WORK/mine")
  echo "$label" >>"$WORK/order.txt"
  rm -f "$RUNS/$label".done.*
  env BR_TASKS="$TASKS" BR_THREADS="$THREADS" BR_PREFIX="$PREFIX" BR_PATH="$path" BR_HEADER="$header" BR_MODE="$mode" \
    BR_PASSES="$passes" BR_SPAN="${SPAN:-0}" BR_OFFSET="$offset" BR_OUT="$RUNS/$label.kv" BR_MAP="$map" BR_DONE="$RUNS/$label.done" BR_DELAY_MS="$delay" BR_HIST="${HIST:-}" \
    "$WRK" -t"$THREADS" -c"$conc" -d"${secs}s" --timeout 10s -s "$BENCH/tasks.lua" "$url" >"$RUNS/$label.out" 2>&1 &
  WRK_PID=$!
  if [ "$passes" -gt 0 ]; then
    # Every thread writes its marker once each of its tasks has its answers; wrk itself would
    # sleep out its whole -d, so end it with SIGINT (it then reports as usual). Via serve, the
    # journal's length is sampled every second: assignments per second as the book grows.
    local ticks=0
    while kill -0 "$WRK_PID" 2>/dev/null; do
      if [ "$(find "$RUNS" -name "$label.done.*" | wc -l)" -ge "$THREADS" ]; then
        kill -INT "$WRK_PID"
        break
      fi
      if [ "$label" = assign-serve ] && [ $((ticks % 10)) = 0 ] && [ -f "$JOURNAL" ]; then
        echo "$(date +%s.%N) $(wc -l <"$JOURNAL")" >>"$WORK/progress.txt"
      fi
      ticks=$((ticks + 1))
      sleep 0.1
    done
  fi
  wait "$WRK_PID" || die "wrk failed on $label: $(tail -n 5 "$RUNS/$label.out")"
  WRK_PID=""
  [ -s "$RUNS/$label.kv" ] || die "wrk wrote no results for $label: $(tail -n 5 "$RUNS/$label.out")"
  local busy1 mine1
  busy1=$(busy_ticks)
  mine_ticks
  mine1=$(cat "$WORK/mine")
  awk -v b="$((busy1 - busy0))" -v m="$((mine1 - mine0))" -v t0="$t0" -v t1="$(date +%s.%N)" -v hz="$(getconf CLK_TCK)" -v cpus="$(nproc)" \
    'BEGIN {o = b - m; if (o < 0) o = 0; printf "others_cpu_pct=%.1f\n", 100 * o / ((t1 - t0) * hz * cpus)}' >>"$RUNS/$label.kv"
  if [ -n "$router" ]; then
    echo "cpu_us_per_request=$(awk -v a="$cpu0" -v b="$(cpu_ticks "$router")" -v hz="$(getconf CLK_TCK)" -v n="$(kv "$RUNS/$label.kv" requests)" \
      'BEGIN {printf "%.1f", (b - a) * 1e6 / hz / (n > 0 ? n : 1)}')" >>"$RUNS/$label.kv"
  fi
  log "$label: $(tr '\n' ' ' <"$RUNS/$label.kv" | cut -c1-200)"
}

# ---- the site --------------------------------------------------------------------------------

log "work folder $WORK"
fact date "$(date -u +%Y-%m-%dT%H:%MZ)"
fact command "${ROUTING_COMMAND:-scripts/bench-routing.sh $1}"
fact machine "$(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
fact load_before "$(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
fact airlock "$AIRLOCK ($("$AIRLOCK" --version 2>/dev/null | head -n 1))"
fact haproxy "$("$HAPROXY" -v | head -n 1)"
fact wrk "$("$WRK" -v 2>&1 | head -n 1)"
fact tasks "$TASKS"
fact task_ids "${PREFIX}0 to ${PREFIX}$((TASKS - 1))"
fact weight "$WEIGHT"
fact serve_threads "${SERVE_THREADS:-one per core (default)}"
fact threads "$THREADS"
fact conc "$CONC"
fact seconds "$SECONDS_PER_RUN"
fact delay_ms "$DELAY_MS"
fact peak_conc "$PEAK_CONC"
fact peak_seconds "$PEAK_SECONDS"
fact pass_timeout "$PASS_TIMEOUT"
fact passes "$PASSES"

mkdir -p "$WORK/rel/code" "$ROOT/.trust"
cp "$BENCH/backend.cfg" "$WORK/rel/code/backend.cfg"
chmod 644 "$WORK/rel/code/backend.cfg"
"$AIRLOCK" key generate --out "$WORK/vendor" >/dev/null 2>&1 || die "key generate failed"
cp "$WORK/vendor.pub" "$ROOT/.trust/vendor.pub"
# No outcome is reported, so the canary cannot decide; the horizon, the outcome deadline (a task
# without an outcome counts as a failure after it) and metrics-only breakers make sure of it
# however long the run takes.
cat >"$ROOT/.trust/policy.json" <<'EOF'
{"rollout": {"defaults": {"outcome_deadline_seconds": 604800, "decision": {"horizon": 1000000},
  "breaker": {"metrics_only": true}}}}
EOF
for version in 1.0.0 2.0.0; do
  cat >"$WORK/rel/airlock.yaml" <<EOF
name: $NAME
version: $version
sequence: ${version%%.*}
components: { code: code/ }
serve: { command: exec haproxy -db -f code/backend.cfg, ready: /ready }
EOF
  "$AIRLOCK" pack "$WORK/rel" --key "$WORK/vendor.key" --out "$WORK/$version.airlock" >"$WORK/pack-$version.log" 2>&1 ||
    die "pack $version failed: $(tail -n 3 "$WORK/pack-$version.log")"
  activate=()
  [ "$version" = 1.0.0 ] && activate=(--activate)
  "$AIRLOCK" install "$WORK/$version.airlock" --root "$ROOT" "${activate[@]}" >"$WORK/install-$version.log" 2>&1 ||
    die "install $version failed: $(tail -n 3 "$WORK/install-$version.log")"
done
"$AIRLOCK" canary start "$NAME" 2.0.0 --steps "$WEIGHT,100" --root "$ROOT" >"$WORK/canary.log" 2>&1 ||
  die "canary start failed: $(tail -n 3 "$WORK/canary.log")"

SERVE_PORT=$(free_port)
SERVE_URL=http://127.0.0.1:$SERVE_PORT
start_serve
log "serve pid $SERVE_PID on $SERVE_PORT; $INCUMBENT on $INCUMBENT_PORT, $CANDIDATE on $CANDIDATE_PORT"
fact incumbent "$INCUMBENT"
fact candidate "$CANDIDATE"
fact setup "releases $INCUMBENT (current) and $CANDIDATE (canary at $WEIGHT%, --steps $WEIGHT,100); backends: haproxy -db, nbthread 1, answering itself; router haproxy: balance hdr(X-Task-Id), hash-type consistent sdbm avalanche, weights $((100 - WEIGHT))/$WEIGHT"

# ---- 1. the first pass via serve -------------------------------------------------------------

log "first pass via serve: $TASKS tasks, $PASSES requests each"
JOURNAL=$ROOT/$NAME/.serve/tasks.log
echo "$(date +%s.%N) 0" >"$WORK/progress.txt"
run_wrk assign-serve "$SERVE_URL" "/$NAME/v1/answer" x-airlock-release check "$PASSES" "$CONC" "$PASS_TIMEOUT" 0 "$RUNS/assign-serve.map" 0 "$SERVE_PID"
echo "$(date +%s.%N) $(wc -l <"$JOURNAL")" >>"$WORK/progress.txt"
"${CHECK[@]}" journal "$JOURNAL" >>"$WORK/facts.kv" || die "cannot read the journal"
fact rss_after_assign_kib "$(rss_kib "$SERVE_PID" VmRSS)"
compared=0
differ=0
add_compare() { # MAP REFERENCE: adds to the serve (journal) counters
  local out
  out=$("${CHECK[@]}" compare "$1" "$2")
  compared=$((compared + $(sed 's/.*compared=\([0-9]*\).*/\1/' <<<"$out")))
  differ=$((differ + $(sed 's/.*differ=\([0-9]*\).*/\1/' <<<"$out") + $(sed 's/.*missing=\([0-9]*\).*/\1/' <<<"$out")))
}
add_compare "$RUNS/assign-serve.map" "$JOURNAL"
# The later runs cycle over tasks the first pass assigned (all of them, unless it ran out of time).
SPAN=$("${CHECK[@]}" span "$RUNS/assign-serve.map" "$TASKS" "$THREADS" "$PREFIX")
fact span "$SPAN"
[ "$SPAN" -gt 0 ] || die "the first pass via serve assigned no complete prefix of tasks"

# ---- 2. sticky across a restart ----------------------------------------------------------------

log "restarting serve (SIGTERM)"
stop_serve
restart_began=$(date +%s.%N)
start_serve
fact restart_ready_seconds "$(python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.2f}")' "$restart_began" "$(date +%s.%N)")"
log "serve pid $SERVE_PID; $INCUMBENT on $INCUMBENT_PORT, $CANDIDATE on $CANDIDATE_PORT"
fact rss_after_restart_kib "$(rss_kib "$SERVE_PID" VmRSS)"
sample=$("${CHECK[@]}" sample "$SERVE_URL" "$NAME" "$JOURNAL" "$SAMPLE" 1) || die "the restart check failed"
log "after the restart: $sample"
for k in sampled differ errors; do fact "restart_$k" "$(sed -n "s/.*$k=\([0-9]*\).*/\1/p" <<<"$sample" | head -n 1)"; done

# ---- 3. HAProxy on the same backends -----------------------------------------------------------

# Starts a HAProxy router from router.cfg.in listening on PORT, its configuration and log named
# LABEL.cfg and LABEL.log in the work folder, and sets the variable named PID_VAR to its pid
# (at once, so that the cleanup stops it whatever happens next).
start_router() {
  local label=$1 port=$2 pid_var=$3 i
  sed -e "s/@LISTEN_PORT@/$port/" -e "s/@NAME@/$NAME/" \
    -e "s/@INCUMBENT@/$INCUMBENT/" -e "s/@INCUMBENT_PORT@/$INCUMBENT_PORT/" -e "s/@INCUMBENT_WEIGHT@/$((100 - WEIGHT))/" \
    -e "s/@CANDIDATE@/$CANDIDATE/" -e "s/@CANDIDATE_PORT@/$CANDIDATE_PORT/" -e "s/@CANDIDATE_WEIGHT@/$WEIGHT/" \
    "$BENCH/router.cfg.in" >"$WORK/$label.cfg"
  "$HAPROXY" -c -q -f "$WORK/$label.cfg" || die "the $label configuration does not load"
  "$HAPROXY" -db -f "$WORK/$label.cfg" >"$WORK/$label.log" 2>&1 &
  printf -v "$pid_var" %s "$!"
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "${!pid_var}" 2>/dev/null && [ "$i" -lt 100 ] || die "the haproxy $label did not start: $(tail -n 3 "$WORK/$label.log")"
    sleep 0.05
  done
}

ROUTER_PORT=$(free_port)
start_router router "$ROUTER_PORT" ROUTER_PID
ROUTER_URL=http://127.0.0.1:$ROUTER_PORT
DIRECT_URL=http://127.0.0.1:$INCUMBENT_PORT
if [ "$CONTROL" = 1 ]; then
  # The A/A control: the same router again, on its own port.
  ROUTER2_PORT=$(free_port)
  start_router router2 "$ROUTER2_PORT" ROUTER2_PID
  ROUTER2_URL=http://127.0.0.1:$ROUTER2_PORT
  fact control "a second haproxy router, the same configuration (router2.cfg), with its own first pass, measured in every latency round like the others"
fi

log "first pass via haproxy"
run_wrk assign-haproxy "$ROUTER_URL" "/$NAME/v1/answer" x-airlock-release check "$PASSES" "$CONC" "$PASS_TIMEOUT" 0 "$RUNS/assign-haproxy.map" 0 "$ROUTER_PID"
if [ "$CONTROL" = 1 ]; then
  # The control gets the same history as the router it is compared with (every task of the
  # space, the connections to the backends it keeps): only then are the two alike.
  log "first pass via the second haproxy"
  run_wrk assign-haproxy2 "$ROUTER2_URL" "/$NAME/v1/answer" x-airlock-release check "$PASSES" "$CONC" "$PASS_TIMEOUT" 0 "$RUNS/assign-haproxy2.map" 0 "$ROUTER2_PID"
  out=$("${CHECK[@]}" compare "$RUNS/assign-haproxy2.map" "$RUNS/assign-haproxy.map")
  fact control_map_differ "$(sed 's/.*differ=\([0-9]*\).*/\1/' <<<"$out")"
fi

# ---- 4. latency and throughput rounds ----------------------------------------------------------

hap_differ=0
# The targets of a round, in the orders of a balanced Latin square (a Williams design): over
# its rows each target runs once at each position and right after each other target once
# (with three targets: twice). Every round starts after an unmeasured warm-up run direct to the
# backend, so that the first target of a round always follows the same thing and the balance
# holds over the whole sequence of runs, not only within the rounds: neither the machine's
# drift nor what one run leaves behind for the next (serve's connections closing, a cold cache)
# falls on one target more than on another. The rounds are a whole number of the square's
# rows. Every latency run also keeps wrk's whole latency histogram, and the report pools them
# per target (check.py).
TARGETS=(direct serve haproxy)
ORDERS=("0 1 2" "1 2 0" "2 0 1" "2 1 0" "0 2 1" "1 0 2")
if [ "$CONTROL" = 1 ]; then
  TARGETS+=(haproxy2)
  ORDERS=("0 1 3 2" "1 2 0 3" "2 3 1 0" "3 0 2 1")
fi
rows=${#ORDERS[@]}
if [ $((ROUNDS % rows)) != 0 ]; then
  ROUNDS=$(((ROUNDS + rows - 1) / rows * rows))
  log "latency rounds rounded up to $ROUNDS, a whole number of the order's $rows rows"
fi
fact rounds "$ROUNDS"
fact orders "$(printf '%s, ' "${ORDERS[@]}" | sed 's/, $//') (indices into: ${TARGETS[*]}); each round after a 1 s warm-up run direct, not measured"
for r in $(seq 1 "$ROUNDS"); do
  env BR_OUT=/dev/null BR_TASKS="$TASKS" BR_THREADS="$THREADS" BR_PREFIX="$PREFIX" BR_PATH=/v1/answer BR_HEADER=none BR_MODE=fast BR_PASSES=0 \
    BR_DELAY_MS="$DELAY_MS" "$WRK" -t"$THREADS" -c"$CONC" -d1s --timeout 10s -s "$BENCH/tasks.lua" "$DIRECT_URL" >/dev/null 2>&1 \
    || die "the warm-up run before latency round $r failed"
  offset=$((r * 9973))
  for i in ${ORDERS[$(((r - 1) % ${#ORDERS[@]}))]}; do
    t=${TARGETS[$i]}
    HIST="$RUNS/lat-$r-$t.hist"
    case $t in
      direct)
        run_wrk "lat-$r-direct" "$DIRECT_URL" /v1/answer none check 0 "$CONC" "$SECONDS_PER_RUN" "$offset" "" "$DELAY_MS"
        ;;
      serve)
        run_wrk "lat-$r-serve" "$SERVE_URL" "/$NAME/v1/answer" x-airlock-release check 0 "$CONC" "$SECONDS_PER_RUN" "$offset" "$RUNS/lat-$r-serve.map" "$DELAY_MS" "$SERVE_PID"
        ;;
      haproxy)
        run_wrk "lat-$r-haproxy" "$ROUTER_URL" "/$NAME/v1/answer" x-airlock-release check 0 "$CONC" "$SECONDS_PER_RUN" "$offset" "$RUNS/lat-$r-haproxy.map" "$DELAY_MS" "$ROUTER_PID"
        ;;
      haproxy2)
        run_wrk "lat-$r-haproxy2" "$ROUTER2_URL" "/$NAME/v1/answer" x-airlock-release check 0 "$CONC" "$SECONDS_PER_RUN" "$offset" "" "$DELAY_MS" "$ROUTER2_PID"
        ;;
    esac
  done
done
HIST=
# The task maps of the latency runs against the journal (serve) and the first pass (HAProxy),
# once all of them ran: no check's own work lands just before a timed run.
for r in $(seq 1 "$ROUNDS"); do
  add_compare "$RUNS/lat-$r-serve.map" "$JOURNAL"
  out=$("${CHECK[@]}" compare "$RUNS/lat-$r-haproxy.map" "$RUNS/assign-haproxy.map")
  hap_differ=$((hap_differ + $(sed 's/.*differ=\([0-9]*\).*/\1/' <<<"$out")))
done
for r in $(seq 1 "$PEAK_ROUNDS"); do
  run_wrk "peak-$r-direct" "$DIRECT_URL" /v1/answer none fast 0 "$PEAK_CONC" "$PEAK_SECONDS" 0
  run_wrk "peak-$r-serve" "$SERVE_URL" "/$NAME/v1/answer" x-airlock-release fast 0 "$PEAK_CONC" "$PEAK_SECONDS" 0 "" 0 "$SERVE_PID"
  run_wrk "peak-$r-haproxy" "$ROUTER_URL" "/$NAME/v1/answer" x-airlock-release fast 0 "$PEAK_CONC" "$PEAK_SECONDS" 0 "" 0 "$ROUTER_PID"
done

fact serve_journal_compared "$compared"
fact serve_journal_differ "$differ"
fact haproxy_map_differ "$hap_differ"
fact rss_end_kib "$(rss_kib "$SERVE_PID" VmRSS)"
fact hwm_end_kib "$(rss_kib "$SERVE_PID" VmHWM)"
fact load_after "$(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"

# ---- 5. the report -----------------------------------------------------------------------------

set +e
"${CHECK[@]}" report "$WORK" | tee "$WORK/report.md"
status=${PIPESTATUS[0]}
set -e
[ "$status" -le 1 ] || die "the report failed"
exit "$status"
