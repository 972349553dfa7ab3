#!/bin/bash
# Runs every fuzz target (docs/fuzzing.md) with libFuzzer for a time budget and prints, per
# target, executions, coverage and findings; adds the executions to the running totals.
#
#   scripts/fuzz.sh FUZZ-BINARY SECONDS-PER-TARGET [TARGET...]
#
# FUZZ-BINARY is airlock-fuzz built by `make fuzz-build` (-sanitize=fuzzer,address). Per target:
# seeds are written by the binary itself (AIRLOCK_FUZZ_SEEDS) into $FUZZ_WORK/seeds/TARGET, the
# corpus grows in $FUZZ_WORK/corpus/TARGET, the committed inputs (Fuzz/regressions/TARGET, the
# inputs that found bugs) are read too, and a finding is saved as $FUZZ_WORK/findings/TARGET-*.
# Limits per input: -max_len (the target's bound), -timeout=$FUZZ_TIMEOUT s, one allocation at
# most the target's memory bound (-malloc_limit_mb), the process at most $FUZZ_RSS_MB.
#
# Settings, from the environment: FUZZ_RUNS (stop a target after this many executions, or at
# the time budget, whichever comes first), FUZZ_WORK (.build-fuzz/work), FUZZ_TIMEOUT (2),
# FUZZ_RSS_MB (2048), FUZZ_SMOKE (1: run over the seeds and the committed inputs for the budget,
# and do not add to the totals: the `make test` smoke run).
#
# Exit status: 0 when no target found anything, 1 when one did (the others still ran), 2 when a
# target could not run.
set -u -o pipefail

BIN=${1:?usage: scripts/fuzz.sh FUZZ-BINARY SECONDS-PER-TARGET [TARGET...]}
SECONDS_EACH=${2:?usage: scripts/fuzz.sh FUZZ-BINARY SECONDS-PER-TARGET [TARGET...]}
shift 2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${FUZZ_WORK:-$ROOT/.build-fuzz/work}
TIMEOUT=${FUZZ_TIMEOUT:-2}
RSS_MB=${FUZZ_RSS_MB:-2048}
SMOKE=${FUZZ_SMOKE:-0}
RUNS=()
[ -n "${FUZZ_RUNS:-}" ] && RUNS=(-runs="$FUZZ_RUNS")

[ -x "$BIN" ] || { echo "error: $BIN is not built; run make fuzz-build" >&2; exit 2; }
mkdir -p "$WORK/findings" "$WORK/logs" || { echo "error: cannot create $WORK" >&2; exit 2; }
TOTALS=$WORK/totals.tsv

# name, -max_len and memory bound of every target, from the binary.
list=$(AIRLOCK_FUZZ_TARGET=list "$BIN" 2>/dev/null) || { echo "error: $BIN did not list its targets" >&2; exit 2; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cut -f1 <<<"$list")

status=0
printf '%-10s %12s %10s %8s %8s %s\n' target executions exec/s cov ft findings
for t in "${targets[@]}"; do
  line=$(awk -F'\t' -v t="$t" '$1 == t' <<<"$list")
  [ -n "$line" ] || { echo "error: no fuzz target $t (targets: $(cut -f1 <<<"$list" | tr '\n' ' '))" >&2; status=2; continue; }
  max_len=$(cut -f2 <<<"$line")
  mem_mb=$(cut -f3 <<<"$line")
  seeds=$WORK/seeds/$t
  corpus=$WORK/corpus/$t
  mkdir -p "$seeds" "$corpus"
  AIRLOCK_FUZZ_TARGET=$t AIRLOCK_FUZZ_SEEDS=$seeds "$BIN" >/dev/null 2>&1 || { echo "error: $t: writing the seeds failed" >&2; status=2; continue; }
  dirs=("$corpus" "$seeds")
  [ -d "$ROOT/Fuzz/regressions/$t" ] && dirs+=("$ROOT/Fuzz/regressions/$t")
  # The threat model's hostile bundles, written by ThreatModelTests (make test) to this fixed
  # folder, whatever FUZZ_WORK is.
  threats=$ROOT/.build-fuzz/work/seeds/bundle-threats
  [ "$t" = bundle ] && [ -d "$threats" ] && dirs+=("$threats")
  dict=()
  [ -f "$ROOT/Fuzz/dictionaries/$t.dict" ] && dict=(-dict="$ROOT/Fuzz/dictionaries/$t.dict")
  log=$WORK/logs/$t.log
  AIRLOCK_FUZZ_TARGET=$t ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=0 "$BIN" \
    -max_total_time="$SECONDS_EACH" -max_len="$max_len" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" -malloc_limit_mb="$mem_mb" \
    -print_final_stats=1 -artifact_prefix="$WORK/findings/$t-" "${RUNS[@]}" "${dict[@]}" "${dirs[@]}" >"$log" 2>&1
  rc=$?
  runs=$(awk '/stat::number_of_executed_units/ {print $NF}' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  secs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 | awk '{print $5}')
  secs=${secs:-$SECONDS_EACH}
  rate=$([ -n "$runs" ] && echo $((runs / (secs > 0 ? secs : 1))) || echo -)
  found=$(grep -cE '^(==[0-9]+==ERROR|SUMMARY: libFuzzer|Fatal error|.*airlock-fuzz [a-z]+: )' "$log")
  if [ $rc -ne 0 ] && grep -q 'libFuzzer: run interrupted' "$log"; then
    found=0
    echo "  $t: interrupted; its executions count" >&2
  elif [ $rc -ne 0 ]; then
    found=$((found > 0 ? found : 1))
    status=$((status > 1 ? status : 1))
    echo "  $t: libFuzzer stopped with status $rc; the input is in $WORK/findings/$t-*; the log is $log" >&2
    grep -E 'ERROR|Fatal error|airlock-fuzz [a-z]+: |SUMMARY' "$log" | head -5 | sed 's/^/    /' >&2
  else
    found=0
  fi
  printf '%-10s %12s %10s %8s %8s %s\n' "$t" "${runs:--}" "$rate" "${cov:--}" "${ft:--}" "$found"
  if [ "$SMOKE" != 1 ] && [ -n "$runs" ]; then
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$t" "$runs" "${cov:-}" "${ft:-}" "$found" >>"$TOTALS"
  fi
done
if [ "$SMOKE" != 1 ] && [ -f "$TOTALS" ]; then
  echo
  echo "executions so far ($TOTALS):"
  awk -F'\t' '{n[$2] += $3; c[$2] = $4; f[$2] += $6} END {for (t in n) printf "  %-10s %12d  cov %s  findings %d\n", t, n[t], c[t], f[t]}' "$TOTALS" | sort
fi
exit $status
