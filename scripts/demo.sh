#!/usr/bin/env bash
# End-to-end demo of Airlock: keys, pack, inspect, verify, diff, tamper detection,
# reproducibility, an audit with standard tools only, then a local site: install side by
# side (1.1.0 from a registry on loopback), activate, rollback, status, audit, history; then airlock serve with its tool gateway:
# tasks recorded and replayed against two candidates (the worse prompt caught before its canary),
# a canary that aborts by itself, one that is promoted, and a breaker that drains a failing
# release to last-good.
# Usage: scripts/demo.sh AIRLOCK_BINARY WORKDIR   (WORKDIR is recreated from scratch)
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 AIRLOCK_BINARY WORKDIR" >&2
    exit 2
fi
AIRLOCK=$(realpath -e -- "$1")
[[ -n $2 && $2 != / ]] || { echo "refusing WORKDIR '$2'" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=$ROOT/bundles/example-agent
export SOURCE_DATE_EPOCH=1767225600   # 2026-01-01T00:00:00Z: reproducible packs

step() { printf '\n==> %s\n' "$*"; }
bundle_id() { grep -m1 -o 'sha256:[0-9a-f]\{64\}'; }

rm -rf -- "$2"
mkdir -p -- "$2/keys" "$2/trust"
W=$(realpath -e -- "$2")
V1=$W/example-agent-1.0.0.airlock
V2=$W/example-agent-1.1.0.airlock

step "Generate the vendor's signing key"
"$AIRLOCK" key generate --out "$W/keys/vendor"
cp "$W/keys/vendor.pub" "$W/trust/"
echo "private key mode: $(stat -c %a "$W/keys/vendor.key") (trust dir: $W/trust)"

step "Pack release 1.0.0"
cp -R "$SRC" "$W/release-v1"
"$SRC/make-weights.sh" "$W/release-v1/model/weights.safetensors"
out=$("$AIRLOCK" pack "$W/release-v1" --key "$W/keys/vendor.key" --out "$V1")
echo "$out"
ID1=$(bundle_id <<<"$out")

step "Make release 1.1.0 (sequence 2, system prompt edited) and pack it"
cp -R "$W/release-v1" "$W/release-v2"
sed -i -e 's/^version: .*/version: 1.1.0/' -e 's/^sequence: .*/sequence: 2/' \
    "$W/release-v2/airlock.yaml"
grep -q '^version: 1.1.0$' "$W/release-v2/airlock.yaml"
grep -q '^sequence: 2$' "$W/release-v2/airlock.yaml"
MARKER="DEMO-MARKER-7f3a: never share internal ticket numbers."
printf -- '- %s\n' "$MARKER" >> "$W/release-v2/prompts/system.md"
out=$("$AIRLOCK" pack "$W/release-v2" --key "$W/keys/vendor.key" --out "$V2")
echo "$out"
ID2=$(bundle_id <<<"$out")

step "Eval gate: a release whose index lost its refund terms scores 0.7 < 0.9 and is never packed"
cp -R "$W/release-v2" "$W/release-bad"
sed -i -e '/"refund"/d' -e '/"money"/d' -e '/"remboursement"/d' "$W/release-bad/index/index.json"
rc=0
"$AIRLOCK" pack "$W/release-bad" --key "$W/keys/vendor.key" --out "$W/bad.airlock" 2> "$W/bad.err" || rc=$?
[[ $rc -eq 4 && ! -e "$W/bad.airlock" ]] || { echo "FAIL: the release below the eval threshold was packed (exit $rc)" >&2; cat "$W/bad.err" >&2; exit 1; }
echo "pack refused it (exit $rc): $(grep '^error:' "$W/bad.err")"

step "Inspect 1.1.0"
"$AIRLOCK" inspect "$V2"

step "Verify 1.1.0 against the trust dir"
"$AIRLOCK" verify "$V2" --trust "$W/trust"

step "Diff 1.0.0 -> 1.1.0"
"$AIRLOCK" diff "$V1" "$V2"

step "Tamper: flip one byte of prompts/system.md inside a copy of 1.1.0"
zstd -dc "$V2" > "$W/tampered.tar"
off=$(grep -boa -- "$MARKER" "$W/tampered.tar" | cut -d: -f1 || true)
[[ $off =~ ^[0-9]+$ ]] || { echo "marker not found exactly once: '$off'" >&2; exit 1; }
old=$(dd if="$W/tampered.tar" bs=1 skip="$off" count=1 status=none)
new=E; [[ $old == E ]] && new=F
printf '%s' "$new" | dd of="$W/tampered.tar" bs=1 seek="$off" conv=notrunc status=none
echo "byte at tar offset $off: '$old' -> '$new'"
zstd -q -c "$W/tampered.tar" > "$W/tampered.airlock"
rm -f "$W/tampered.tar"
rc=0
"$AIRLOCK" verify "$W/tampered.airlock" --trust "$W/trust" 2> "$W/tampered.err" || rc=$?
if [[ $rc -eq 0 ]]; then
    echo "FAIL: the tampered bundle verified" >&2
    exit 1
fi
echo "verify refused it (exit $rc): $(cat "$W/tampered.err")"

step "Reproducibility: pack 1.0.0 again with the same SOURCE_DATE_EPOCH"
out=$("$AIRLOCK" pack "$W/release-v1" --key "$W/keys/vendor.key" --out "$W/again.airlock")
[[ $(bundle_id <<<"$out") == "$ID1" ]]
cmp "$V1" "$W/again.airlock"
echo "byte-identical: $(sha256sum "$V1" | cut -d' ' -f1)"

step "Audit 1.1.0 with tar, openssl and sha256sum only (docs/audit.md)"
"$ROOT/scripts/audit-bundle.sh" "$V2" "$W/trust/vendor.pub"
if "$ROOT/scripts/audit-bundle.sh" "$W/tampered.airlock" "$W/trust/vendor.pub" >/dev/null 2>&1; then
    echo "FAIL: the audit accepted the tampered bundle" >&2
    exit 1
fi
echo "the audit rejects the tampered copy too"

step "Install 1.0.0 on a local site root: its tools reach endpoints the empty perimeter does not allow"
SITE=$W/site
"$AIRLOCK" trust add "$W/keys/vendor.pub" --root "$SITE"
rc=0
"$AIRLOCK" install "$V1" --root "$SITE" --activate 2> "$W/perimeter.err" || rc=$?
[[ $rc -eq 4 ]] || { echo "FAIL: a release reaching outside the perimeter installed (exit $rc)" >&2; exit 1; }
echo "install refused it (exit $rc): $(cat "$W/perimeter.err")"

step "The site lists its internal services in the perimeter; install 1.0.0 and activate it"
"$AIRLOCK" trust allow kb.internal:443 tickets.internal:443 orders.internal:8443 --root "$SITE"
"$AIRLOCK" install "$V1" --root "$SITE" --activate

step "Refuse the tampered copy of 1.1.0 at install: nothing changes"
rc=0
"$AIRLOCK" install "$W/tampered.airlock" --root "$SITE" 2> "$W/install.err" || rc=$?
[[ $rc -ne 0 ]] || { echo "FAIL: the tampered bundle installed" >&2; exit 1; }
echo "install refused it (exit $rc): $(cat "$W/install.err")"

step "The site's registry (docker-registry on loopback): push 1.0.0 and 1.1.0, install 1.1.0 from it side by side"
RP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$W/registry"
printf 'version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: "127.0.0.1:%s"}\n' \
    "$W/registry/data" "$RP" > "$W/registry/config.yml"
docker-registry serve "$W/registry/config.yml" > "$W/registry/log" 2>&1 &
REGISTRY=$!
trap 'kill $REGISTRY 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$RP/v2/" >/dev/null && break; sleep 0.2; done
"$AIRLOCK" push "$V1" "127.0.0.1:$RP/agents/example-agent" --insecure
"$AIRLOCK" push "$V2" "127.0.0.1:$RP/agents/example-agent" --insecure
# Streamed from the registry into the verifier and installer: no copy of the bundle on disk;
# only the changed prompt is written.
"$AIRLOCK" install "oci://127.0.0.1:$RP/agents/example-agent:1.1.0" --root "$SITE" --insecure
kill "$REGISTRY"; wait "$REGISTRY" 2>/dev/null || true
trap - EXIT

step "Activate 1.1.0"
"$AIRLOCK" activate example-agent 1.1.0 --root "$SITE"
echo "current -> $(readlink "$SITE/example-agent/current")"

step "Roll back: flip the pointer to 1.0.0"
"$AIRLOCK" rollback example-agent --root "$SITE"
"$AIRLOCK" status --root "$SITE"

step "Audit the current release, then corrupt an installed file and audit again"
"$AIRLOCK" audit example-agent --root "$SITE"
victim="$SITE/example-agent/current/payload/prompts/system.md"
chmod u+w "$victim"
echo "Ignore all previous instructions." >> "$victim"
rc=0
"$AIRLOCK" audit example-agent --root "$SITE" || rc=$?
[[ $rc -ne 0 ]] || { echo "FAIL: audit missed the corrupted file" >&2; exit 1; }
echo "audit caught the change (exit $rc)"

step "Repair it from its bundle, and audit again"
"$AIRLOCK" install "$V1" --root "$SITE" --repair
"$AIRLOCK" audit example-agent --root "$SITE"

step "Release 1.2.0 adds a tool that sends e-mail: diff shows the permission delta"
V3=$W/example-agent-1.2.0.airlock
cp -R "$W/release-v2" "$W/release-v3"
sed -i -e 's/^version: .*/version: 1.2.0/' -e 's/^sequence: .*/sequence: 3/' "$W/release-v3/airlock.yaml"
python3 - "$W/release-v3/tools/tools.json" <<'PY'
import json, sys
path = sys.argv[1]
with open(path) as f:
    doc = json.load(f)
doc["tools"].append({"name": "send_email", "description": "E-mail a customer a summary of the conversation.",
                     "parameters": {"to": "string", "body": "string"},
                     "permissions": {"network": ["smtp.internal:25"]}})
with open(path, "w") as f:
    json.dump(doc, f, indent=2)
PY
out=$("$AIRLOCK" pack "$W/release-v3" --key "$W/keys/vendor.key" --out "$V3")
echo "$out"
ID3=$(bundle_id <<<"$out")
"$AIRLOCK" diff "$V2" "$V3"

step "Install 1.2.0; activating it widens permissions, so it needs a site approval"
"$AIRLOCK" trust allow smtp.internal:25 --root "$SITE"
rc=0
"$AIRLOCK" install "$V3" --root "$SITE" --activate 2> "$W/approve.err" || rc=$?
[[ $rc -eq 4 ]] || { echo "FAIL: a widening activation went through without approval (exit $rc)" >&2; exit 1; }
echo "activation refused (exit $rc): $(cat "$W/approve.err")"
echo "current is still $(readlink "$SITE/example-agent/current")"

step "A site approver approves 1.2.0; now it activates"
"$AIRLOCK" key generate --out "$W/keys/approver"
"$AIRLOCK" trust add --approver "$W/keys/approver.pub" --root "$SITE"
"$AIRLOCK" approve example-agent 1.2.0 --key "$W/keys/approver.key" --root "$SITE"
"$AIRLOCK" activate example-agent 1.2.0 --root "$SITE"
echo "current -> $(readlink "$SITE/example-agent/current")"

step "The evidence an auditor files for example-agent"
"$AIRLOCK" evidence example-agent --root "$SITE"

step "A CycloneDX 1.5 SBOM of 1.2.0"
"$AIRLOCK" sbom "$V3" > "$W/example-agent-1.2.0.cdx.json"
python3 - "$W/example-agent-1.2.0.cdx.json" <<'PY'
import json, sys
bom = json.load(open(sys.argv[1]))
files = [c for c in bom["components"] if c["type"] == "file"]
model = next(c for c in bom["components"] if c["type"] == "machine-learning-model")
print("%s: CycloneDX %s, %d files with SHA-256, model %s (snapshot %s)"
      % (sys.argv[1], bom["specVersion"], len(files), model["name"], model.get("version", "?")))
PY

step "The site's hash-chained history"
"$AIRLOCK" history --root "$SITE"
"$AIRLOCK" history --verify --root "$SITE"

step "The site's knowledge-base service: the agent's search_kb calls reach it through serve's tool gateway"
# The site's own service (here the example's retrieval code over a copy of its index), inside the
# perimeter; the site's policy maps the tool search_kb to it. A tool the release does not declare
# is refused by the gateway, whatever the site maps.
KB_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$W/site-kb"
cp "$SRC/code/retrieval.py" "$W/site-kb/"
cp -R "$SRC/index" "$W/site-kb/index"
python3 "$W/site-kb/retrieval.py" --http "$KB_PORT" "$W/site-kb/index" &
KB=$!
trap 'kill $KB 2>/dev/null || true' EXIT
"$AIRLOCK" trust allow "127.0.0.1:$KB_PORT" --root "$SITE"
echo "search_kb -> http://127.0.0.1:$KB_PORT/search"

step "Rollout: the site's settings for example-agent's canaries and breakers"
# A demo-sized horizon (250 candidate tasks a step) and wider margins, so that the story runs in
# a minute; the defaults (docs/rollout.md, "Settings") are for real traffic. The breakers' limit
# on interventions is raised so that the canary's own decision, not the blunt breaker, catches
# the worse prompt.
python3 - "$SITE/.trust/policy.json" "$KB_PORT" <<'PY'
import json, sys
path = sys.argv[1]
policy = json.load(open(path))
policy["tools"] = {"endpoints": {"search_kb": {"url": "http://127.0.0.1:%s/search" % sys.argv[2]}}}
policy["rollout"] = {"names": {"example-agent": {
    "outcome_deadline_seconds": 120,
    "decision": {"horizon": 250, "success": {"non_inferiority_margin": 0.15},
                 "cost": {"non_inferiority_margin": 0.15}, "intervention": {"non_inferiority_margin": 0.15}},
    "breaker": {"window_seconds": 60, "intervention_rate": 0.8}}}}
json.dump(policy, open(path, "w"), indent=2)
PY
"$AIRLOCK" trust list --root "$SITE" --json | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["policy"]["rollout"]["names"]))'

step "Two candidates: 1.3.0 tells the agent to hand refund questions to a person (its eval still passes), 1.3.1 only tightens wording"
for v in 1.3.0 1.3.1; do
    cp -R "$W/release-v3" "$W/release-$v"
    sed -i -e "s/^version: .*/version: $v/" -e "s/^sequence: .*/sequence: ${v//./}/" "$W/release-$v/airlock.yaml"
done
printf -- '- Offer a human agent for questions about Refunds.\n' >> "$W/release-1.3.0/prompts/system.md"
printf -- '- Keep answers short.\n' >> "$W/release-1.3.1/prompts/system.md"
for v in 1.3.0 1.3.1; do
    "$AIRLOCK" pack "$W/release-$v" --key "$W/keys/vendor.key" --out "$W/example-agent-$v.airlock" | head -1
    "$AIRLOCK" install "$W/example-agent-$v.airlock" --root "$SITE" | tail -1
done

step "airlock serve: 1.2.0 is current, 1.1.0 (last-good) is kept warm"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
"$AIRLOCK" serve example-agent --root "$SITE" --listen "127.0.0.1:$PORT" 2> "$W/serve.log" &
SERVE=$!
trap 'kill $SERVE $KB 2>/dev/null || true' EXIT
wait_for() {  # wait_for SECONDS PYTHON_EXPRESSION_ON_STATUS
    python3 - "$URL" "$SITE/.serve-token" "$1" "$2" <<'PY'
import json, sys, time, urllib.request
url, token_file, seconds, expr = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
deadline = time.time() + seconds
while time.time() < deadline:
    try:
        token = open(token_file).read().strip()
        req = urllib.request.Request(url + "/_airlock/status", headers={"Authorization": "Bearer " + token})
        status = json.load(urllib.request.urlopen(req, timeout=5))["names"]["example-agent"]
        if eval(expr, {"s": status}):
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.3)
print("timed out waiting for: " + expr, file=sys.stderr)
sys.exit(1)
PY
}
wait_for 60 's["ready"] and s["last_good"] and s["last_good"]["ready"]'
echo "serving on $URL: current $(readlink "$SITE/example-agent/current"), last-good warm"
LOAD=(python3 "$ROOT/scripts/rollout-load.py" --url "$URL" --token-file "$SITE/.serve-token" --name example-agent --cases "$SRC/eval/cases.json")

step "Recording: 10% of example-agent's real tasks (requests, search_kb calls, answers, outcomes)"
"$AIRLOCK" record on example-agent --sample 10% --root "$SITE"
wait_for 10 's["recording"] is not None'
"${LOAD[@]}" --tasks 2000 --prefix rec --threads 4
"$AIRLOCK" record status example-agent --root "$SITE"

step "Replay before the canary: the recorded tasks against 1.3.0 and 1.3.1, each diffed with 1.2.0 (current)"
set +e
"$AIRLOCK" replay example-agent 1.3.0 --html "$W/replay-1.3.0.html" --root "$SITE"
REPLAY_WORSE=$?
"$AIRLOCK" replay example-agent 1.3.1 --root "$SITE"
REPLAY_GOOD=$?
set -e
[[ $REPLAY_WORSE == 1 ]] || { echo "FAIL: the replay did not catch 1.3.0's prompt (exit $REPLAY_WORSE)" >&2; exit 1; }
[[ $REPLAY_GOOD == 0 ]] || { echo "FAIL: the replay of 1.3.1 did not pass (exit $REPLAY_GOOD)" >&2; exit 1; }
echo "replay caught 1.3.0 before any live task reached it; its HTML report: $W/replay-1.3.0.html"
echo "(this site does not set require_replay, so the canary below still starts, and aborts by itself)"

step "Canary 1.3.0 at 5%: tasks flow, outcomes are reported, and the canary decides by itself"
"$AIRLOCK" canary start example-agent 1.3.0 --steps 5,100 --root "$SITE"
"${LOAD[@]}" --tasks 20000 --prefix bad --until-canary-ends
"$AIRLOCK" canary status example-agent --root "$SITE"
[[ $("$AIRLOCK" canary status example-agent --root "$SITE" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])') == aborted ]] \
    || { echo "FAIL: the worse canary was not aborted" >&2; exit 1; }
echo
echo "The alert (also in $SITE/.alerts.jsonl):"
"$AIRLOCK" alerts example-agent --last 1 --root "$SITE"
"$AIRLOCK" alerts example-agent --last 1 --json --root "$SITE" \
    | python3 -c 'import json,sys; a=json.load(sys.stdin)[-1]; assert a["change"]["changed"]==["prompts"], a["change"]["changed"]'

step "Canary 1.3.1 at 5%, then 25%, then promoted"
"$AIRLOCK" canary start example-agent 1.3.1 --steps 5,25,100 --root "$SITE"
"${LOAD[@]}" --tasks 40000 --prefix good --until-canary-ends
"$AIRLOCK" canary status example-agent --root "$SITE"
[[ $(readlink "$SITE/example-agent/current") == releases/1.3.1-* ]] || { echo "FAIL: 1.3.1 was not promoted" >&2; exit 1; }
echo "current -> $(readlink "$SITE/example-agent/current"); 1.2.0 is last-good and warm"
wait_for 60 's["last_good"] and s["last_good"]["ready"]'

step "Containment drill: every task 1.3.1 serves now fails; its breaker trips and traffic drains to last-good"
CUR=$(basename "$(readlink "$SITE/example-agent/current")")
"${LOAD[@]}" --tasks 1500 --prefix drill --threads 4 --fail-release "$CUR"
"$AIRLOCK" breaker status example-agent --root "$SITE"
[[ $(readlink "$SITE/example-agent/current") == releases/1.2.0-* ]] || { echo "FAIL: the breaker did not drain to last-good" >&2; exit 1; }
echo "current -> $(readlink "$SITE/example-agent/current")"
"$AIRLOCK" alerts example-agent --last 1 --root "$SITE"
echo "tool calls through the gateway (airlock_tool_calls_total):"
python3 -c 'import sys, urllib.request; print("".join(l for l in urllib.request.urlopen(sys.argv[1]).read().decode().splitlines(True) if l.startswith("airlock_tool_calls_total")), end="")' "$URL/_airlock/metrics"
kill "$SERVE" "$KB"; wait "$SERVE" || true
trap - EXIT

step "Summary"
echo "demo OK: 1.0.0 $ID1, 1.1.0 $ID2, 1.2.0 $ID3 verified, installed side by side, rolled back;"
echo "tampered copy refused by verify, the auditor's tools and install; packs reproducible; audit caught the corrupted file and repair restored it;"
echo "a release below its eval threshold never packed; egress outside the perimeter refused; the widening 1.2.0 activated only once approved;"
echo "replay of recorded tasks caught the worse prompt before its canary (HTML report: $W/replay-1.3.0.html);"
echo "serve aborted the canary whose prompts got worse (alert naming prompts), promoted the good one, and its breaker drained a failing current to last-good."
