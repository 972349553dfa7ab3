#!/usr/bin/env bash
# Bundles through a registry (docs/registry.md), against Debian's docker-registry on loopback:
#  1. `install oci://` of a large release against `install` of the same bundle file, side by
#     side in each round (the order alternating), each into a fresh site root that is removed
#     before the next install: wall time and peak RSS (GNU time). The site roots are on tmpfs
#     (/dev/shm) unless REG_SITE_DIR says otherwise: on this machine's disk, the write-back of
#     2 GiB decides the time of whichever install comes second, which hides the transport's own
#     cost; in memory the two installs differ only in where the bytes come from;
#  2. a pull killed once half the layer is on disk, then run again: the share of the bundle the
#     second run fetched;
#  3. HOSTS site roots (on disk) installing the release from the registry at once: wall time,
#     and the bytes the registry served, read from its /proc/PID/io (wchar: what it wrote to its
#     sockets; its log is off).
#
# Targets (issue 13): install oci:// within 1.2x of install from a file, peak RSS under 64 MiB;
# a resumed download after a cut at 50% fetches under 55% of the bundle again. The time target
# PASSes when every round's ratio is at most 1.2, FAILs when every round's is above, and is
# otherwise not established (this machine drifts).
#
# Settings, from the environment: REG_MIB (2048) weights in MiB; REG_ROUNDS (6); REG_HOSTS (8);
# REG_WORK (a new folder, removed at the end); REG_SITE_DIR (where the timed installs' site roots
# go: a new folder in /dev/shm when it has room, else in REG_WORK).
# Exit status: 0 when the targets pass; 1 when one does not; 2 when a command failed.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 AIRLOCK_BINARY" >&2
  exit 64
fi
AIRLOCK=$(realpath -e -- "$1")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MIB=${REG_MIB:-2048}
ROUNDS=${REG_ROUNDS:-6}
HOSTS=${REG_HOSTS:-8}
WORK=${REG_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/airlock-bench-registry-XXXXXX")}
mkdir -p "$WORK"
REGISTRY=
SITES=
cleanup() {
  [ -n "$REGISTRY" ] && kill "$REGISTRY" 2>/dev/null || true
  [ -n "${REG_WORK:-}" ] || rm -rf "$WORK"
  [ -n "$SITES" ] && [ -z "${REG_SITE_DIR:-}" ] && rm -rf "$SITES"
  true
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
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/registry/data}}
http: {addr: "127.0.0.1:$PORT"}
YAML
docker-registry serve registry/config.yml > registry/log 2>&1 &
REGISTRY=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
REF=oci://127.0.0.1:$PORT/bench/agent:1.0.0
served() { awk '/^wchar:/ {print $2}' "/proc/$REGISTRY/io"; }
BLOB=http://127.0.0.1:$PORT/v2/bench/agent/blobs/sha256:$(sha256sum bundle.airlock | cut -d' ' -f1)

if [ -n "${REG_SITE_DIR:-}" ]; then
  SITES=$REG_SITE_DIR; mkdir -p "$SITES"
elif [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] && (( $(df --output=avail -B1 /dev/shm | tail -1) > 3 * (MIB << 20) )); then
  SITES=$(mktemp -d /dev/shm/airlock-bench-sites-XXXXXX)
else
  SITES=$WORK/sites; mkdir -p "$SITES"
fi
"$AIRLOCK" push bundle.airlock "$REF" --insecure >/dev/null || fail "push failed"

site() {
  rm -rf "$1"
  "$AIRLOCK" trust add vendor.pub --root "$1" >/dev/null
  "$AIRLOCK" trust allow kb.internal:443 orders.internal:8443 tickets.internal:443 --root "$1" >/dev/null
}
measure() { # SOURCE -> "seconds kib cpu-seconds", into a fresh site root removed afterwards
  site "$SITES/site"
  sync
  if [ "$1" = curl ]; then
    # The standard tool's transport for reference: curl fetches the layer blob into install -.
    /usr/bin/time -f '%e %M %U %S' -o time.out bash -c "set -o pipefail; curl -fsS '$BLOB' | '$AIRLOCK' install - --root '$SITES/site' >/dev/null" \
      || fail "curl | install - failed"
  else
    /usr/bin/time -f '%e %M %U %S' -o time.out "$AIRLOCK" install "$1" --root "$SITES/site" --insecure >/dev/null || fail "install $1 failed"
  fi
  rm -rf "$SITES/site"
  awk '{printf "%s %s %.2f\n", $1, $2, $3 + $4}' time.out
}

echo "# Registry benchmark: $(date -u +%FT%TZ), bundle $((SIZE >> 20)) MiB, docker-registry $(docker-registry --version | awk '{print $3}') on loopback, timed site roots on $(stat -f -c %T "$SITES")"
echo
echo "| round | install FILE s (CPU s) | curl \\| install - s (CPU s) | install oci:// s (CPU s) | oci:// / FILE | oci:// / curl | RSS FILE MiB | RSS oci:// MiB |"
echo "|---|---|---|---|---|---|---|---|"
ratios=()
rss_max=0
# One untimed install of each kind first: the first run of anything here is slow (cold caches, fresh memory).
measure bundle.airlock >/dev/null; measure curl >/dev/null; measure "$REF" >/dev/null
for r in $(seq "$ROUNDS"); do
  if (( r % 2 )); then
    read -r tf mf cf < <(measure bundle.airlock); read -r tc mc cc < <(measure curl); read -r to mo co < <(measure "$REF")
  else
    read -r to mo co < <(measure "$REF"); read -r tc mc cc < <(measure curl); read -r tf mf cf < <(measure bundle.airlock)
  fi
  ratio=$(python3 -c "print(f'{$to / $tf:.2f}')")
  ratios+=("$ratio")
  rcurl=$(python3 -c "print(f'{$to / $tc:.2f}')")
  (( mo > rss_max )) && rss_max=$mo
  echo "| $r | $tf ($cf) | $tc ($cc) | $to ($co) | $ratio | $rcurl | $((mf >> 10)) | $((mo >> 10)) |"
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
before=$(served)
second=$("$AIRLOCK" pull "$REF" --out pulled.airlock --insecure --json) || fail "resumed pull failed"
sent=$(( $(served) - before ))
received=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["bytes_received"])' "$second")
cmp -s pulled.airlock bundle.airlock || fail "the resumed pull differs from the bundle"
share=$(python3 -c "print(f'{100 * $received / $SIZE:.1f}')")
rm -f pulled.airlock
echo
echo "Resumed pull: killed with $((kept >> 20)) MiB of $((SIZE >> 20)) MiB on disk; the second run fetched $((received >> 20)) MiB = $share% of the bundle (target < 55%); the registry sent $((sent >> 20)) MiB for it."

# at_once REF: every host installs and activates REF at the same time; sets wall (seconds) and
# sent (bytes the registry wrote to its sockets meanwhile).
at_once() {
  sync
  local before start pids=() p
  before=$(served)
  start=$(date +%s.%N)
  for h in $(seq "$HOSTS"); do "$AIRLOCK" install "$1" --root "host-$h" --insecure --activate >/dev/null & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || fail "a concurrent install of $1 failed"; done
  wall=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
  sent=$(( $(served) - before ))
}

# HOSTS sites at once.
for h in $(seq "$HOSTS"); do site "host-$h"; done
at_once "$REF"
echo "$HOSTS hosts installing at once: ${wall} s wall; the registry served $((sent >> 20)) MiB = $(python3 -c "print(f'{$sent / $SIZE:.3f}')") bundles ($HOSTS hosts x $((SIZE >> 20)) MiB = $((HOSTS * SIZE >> 20)) MiB of layer)."

# The next release as a delta over the one the hosts run: the prompt changed, the weights did not.
cp -R release release-v2
sed -i -e 's/^version: .*/version: 1.1.0/' -e 's/^sequence: .*/sequence: 2/' release-v2/airlock.yaml
printf '\nAnswer in the customer'"'"'s language.\n' >> release-v2/prompts/system.md
SOURCE_DATE_EPOCH=1767225600 "$AIRLOCK" pack release-v2 --key vendor.key --base bundle.airlock --out delta.airlock >/dev/null 2>&1 || fail "pack of the delta failed"
DSIZE=$(stat -c %s delta.airlock)
DREF=$("$AIRLOCK" push delta.airlock "oci://127.0.0.1:$PORT/bench/agent" --base bundle.airlock --insecure --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["reference"])') || fail "push of the delta failed"
at_once "$DREF"
rm -rf host-*
echo "$HOSTS hosts installing the next release as a delta ($((DSIZE >> 10)) KiB) at once: ${wall} s wall; the registry served $((sent >> 10)) KiB = $(python3 -c "print(f'{$sent / $SIZE * 100:.3f}')")% of one full bundle."


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
