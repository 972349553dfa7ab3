#!/usr/bin/env bash
# Bundles through a registry (docs/registry.md), against Debian's docker-registry on loopback:
#  1. `install oci://` of a large release against `install` of the same bundle file, side by
#     side in each round, each into a fresh site root: wall time and peak RSS (GNU time);
#  2. a pull killed once half the layer is on disk, then run again: the share of the bundle the
#     second run fetched;
#  3. HOSTS site roots installing the release from the registry at once: wall time (each host
#     fetches the whole layer once; the registry's own count of bytes served is not read yet).
#
# Targets (issue 13): install oci:// within 1.2x of install from a file, peak RSS under 64 MiB;
# a resumed download after a cut at 50% fetches under 55% of the bundle again. The time target
# PASSes when every round's ratio is at most 1.2, FAILs when every round's is above, and is
# otherwise not established (this machine drifts).
#
# Settings, from the environment: REG_MIB (2048) weights in MiB; REG_ROUNDS (3); REG_HOSTS (8);
# REG_WORK (a new folder, removed at the end).
# Exit status: 0 when the targets pass; 1 when one does not; 2 when a command failed.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 AIRLOCK_BINARY" >&2
  exit 64
fi
AIRLOCK=$(realpath -e -- "$1")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MIB=${REG_MIB:-2048}
ROUNDS=${REG_ROUNDS:-3}
HOSTS=${REG_HOSTS:-8}
WORK=${REG_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/airlock-bench-registry-XXXXXX")}
mkdir -p "$WORK"
REGISTRY=
cleanup() {
  [ -n "$REGISTRY" ] && kill "$REGISTRY" 2>/dev/null || true
  [ -n "${REG_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "error: $*" >&2; exit 2; }

cd "$WORK"
cp -R "$ROOT/bundles/example-agent" release
"$ROOT/bundles/example-agent/make-weights.sh" release/model/weights.safetensors "$MIB" >/dev/null
"$AIRLOCK" key generate --out vendor >/dev/null 2>&1
SOURCE_DATE_EPOCH=1767225600 "$AIRLOCK" pack release --key vendor.key --out bundle.airlock >/dev/null 2>&1 || fail "pack failed"
SIZE=$(stat -c %s bundle.airlock)

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p registry
cat > registry/config.yml <<YAML
version: 0.1
log: {level: info, formatter: text}
storage: {filesystem: {rootdirectory: $WORK/registry/data}}
http: {addr: "127.0.0.1:$PORT"}
YAML
docker-registry serve registry/config.yml > registry/log 2>&1 &
REGISTRY=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
REF=oci://127.0.0.1:$PORT/bench/agent:1.0.0
"$AIRLOCK" push bundle.airlock "$REF" --insecure >/dev/null || fail "push failed"

site() {
  rm -rf "$1"
  "$AIRLOCK" trust add vendor.pub --root "$1" >/dev/null
  "$AIRLOCK" trust allow kb.internal:443 orders.internal:8443 tickets.internal:443 --root "$1" >/dev/null
}
measure() { # ROOT SOURCE -> "seconds kib"
  # The other install's 2 GiB of dirty pages would otherwise be written back during this one.
  sync
  /usr/bin/time -f '%e %M' -o time.out "$AIRLOCK" install "$2" --root "$1" --insecure >/dev/null || fail "install $2 failed"
  cat time.out
}

echo "# Registry benchmark: $(date -u +%FT%TZ), bundle $((SIZE >> 20)) MiB, docker-registry $(docker-registry --version | awk '{print $3}') on loopback"
echo
echo "| round | install FILE s | install oci:// s | ratio | RSS FILE MiB | RSS oci:// MiB |"
echo "|---|---|---|---|---|---|"
ratios=()
rss_max=0
for r in $(seq "$ROUNDS"); do
  site file-site; site oci-site
  if (( r % 2 )); then
    read -r tf mf < <(measure file-site bundle.airlock); read -r to mo < <(measure oci-site "$REF")
  else
    read -r to mo < <(measure oci-site "$REF"); read -r tf mf < <(measure file-site bundle.airlock)
  fi
  ratio=$(python3 -c "print(f'{$to / $tf:.2f}')")
  ratios+=("$ratio")
  (( mo > rss_max )) && rss_max=$mo
  echo "| $r | $tf | $to | $ratio | $((mf >> 10)) | $((mo >> 10)) |"
  rm -rf file-site oci-site
done

# A pull killed at half the layer, then run again.
DIGEST=$(sha256sum bundle.airlock | cut -c1-16)
rm -f pulled.airlock pulled.airlock.*.partial
"$AIRLOCK" pull "$REF" --out pulled.airlock --insecure >/dev/null 2>&1 &
PULL=$!
while kill -0 "$PULL" 2>/dev/null; do
  got=$(stat -c %s "pulled.airlock.$DIGEST.partial" 2>/dev/null || echo 0)
  (( got * 2 >= SIZE )) && { kill -9 "$PULL"; break; }
  sleep 0.02
done
wait "$PULL" 2>/dev/null || true
kept=$(stat -c %s "pulled.airlock.$DIGEST.partial" 2>/dev/null || echo 0)
second=$("$AIRLOCK" pull "$REF" --out pulled.airlock --insecure --json) || fail "resumed pull failed"
received=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["bytes_received"])' "$second")
cmp -s pulled.airlock bundle.airlock || fail "the resumed pull differs from the bundle"
share=$(python3 -c "print(f'{100 * $received / $SIZE:.1f}')")
rm -f pulled.airlock
echo
echo "Resumed pull: killed with $((kept >> 20)) MiB of $((SIZE >> 20)) MiB on disk; the second run fetched $((received >> 20)) MiB = $share% of the bundle (target < 55%)."

# HOSTS sites at once.
for h in $(seq "$HOSTS"); do site "host-$h"; done
start=$(date +%s.%N)
pids=()
for h in $(seq "$HOSTS"); do "$AIRLOCK" install "$REF" --root "host-$h" --insecure --activate >/dev/null & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent install failed"; done
wall=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
rm -rf host-*
echo "$HOSTS hosts installing at once: ${wall} s wall, $((HOSTS * SIZE >> 20)) MiB of layer fetched in all."

echo
verdict=0
over=0; under=0
for x in "${ratios[@]}"; do python3 -c "import sys; sys.exit(0 if $x <= 1.2 else 1)" && under=$((under + 1)) || over=$((over + 1)); done
lo=$(printf '%s\n' "${ratios[@]}" | sort -n | head -1); hi=$(printf '%s\n' "${ratios[@]}" | sort -n | tail -1)
if (( over == 0 )); then t="PASS"; elif (( under == 0 )); then t="FAIL"; verdict=1; else t="not established"; verdict=1; fi
echo "install oci:// / install FILE: min $lo, max $hi over $ROUNDS rounds (target <= 1.2): $t"
if (( rss_max < 64 << 10 )); then echo "peak RSS of install oci://: $((rss_max >> 10)) MiB (target < 64 MiB): PASS"; else echo "peak RSS of install oci://: $((rss_max >> 10)) MiB (target < 64 MiB): FAIL"; verdict=1; fi
if python3 -c "import sys; sys.exit(0 if $share < 55 else 1)"; then echo "resumed pull: $share% (target < 55%): PASS"; else echo "resumed pull: $share% (target < 55%): FAIL"; verdict=1; fi
exit $verdict
