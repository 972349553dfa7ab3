#!/usr/bin/env bash
# scripts/bench.sh AIRLOCK_BINARY WORKDIR
#
# Benchmarks the airlock CLI against the standard-tools pipeline a vendor or a site would
# otherwise run, side by side in the same run, and prints a markdown report on stdout
# (progress goes to stderr).
#
#   pack:   airlock pack                 vs  openssl dgst -sha256 over every file, then
#                                            tar -cf - | zstd -1 -T0 into a real file
#   verify: airlock verify               vs  zstd -dc | tar -xf - into a fresh dir, then
#                                            openssl dgst -sha256 over every extracted file
#   install: airlock install into a new  vs  zstd -dc | tar -xf - of the same bundle into a
#            site root per run                fresh dir, then sync (the same durability, no
#                                            checks at all)
#
# and, on one site holding two releases of a small (10 MiB) and of the large release, without
# a baseline (their own tables):
#
#   rollback: wall time of one pointer switch (`airlock rollback` and `airlock activate`,
#             alternating) on the small and on the large release, against the process start-up
#             (`airlock --help`); under strace, the time of the switch itself (symlink, rename,
#             fsync of the name's folder). Target: flat in the release size, switch < 10 ms.
#   disk:     what installing a second release that changes one prompt file and shares
#             everything else (the weights) adds to the site (du -sk of the root, hardlinks
#             counted once), against the changed bytes. Target: changed bytes + < 1% of the
#             release size.
#
# and two more tables of their own (airlock only):
#
#   delta:    the second release packed as a delta bundle (`airlock pack --base out.airlock`:
#             the same manifest, only the content the base lacks, plus airlock/delta.json)
#             against the full out-v2.airlock: bundle sizes and the target
#             delta <= zstd -1 of the changed files + the manifest + 64 KiB; pack times of both
#             (alternating); and install times of both into a site that already holds
#             out.airlock (a new site per run, the first release installed untimed).
#   scale:    releases of N small text files (index/shard-NNN/doc-NNNNNN.txt, 200-2000 bytes,
#             1,000 a folder, plus one code and one prompt file), N = 1,000, 10,000 and 100,000
#             (100, 1,000 and 10,000 at BENCH_SCALE below 1): pack, verify, install (a new site
#             per run) and audit, each timed with its peak RSS and CPU time (user + sys), and
#             for reference zstd -dc | tar -x of the same bundle then sync (the file system's
#             own cost of creating the files, the floor under install). Targets:
#             time per file flat (the largest N within 2x of the smallest, or of the middle one
#             when start-up is more than half the smallest N's time), and peak RSS at the
#             largest N minus its manifest's size < 64 MiB.
#
# plus the single-core reference throughputs of SHA-256 (openssl speed) and zstd -1
# (zstd -b1 on the release's prompt text), the CPU bounds the docs compare against.
#
# Method (see shared/design/pitfalls.md, "Benchmarking on these machines"):
#   - airlock and baseline alternate run by run (A B, then B A, ...), BENCH_RUNS times each;
#     the report gives medians and the ratio airlock/baseline (lower is better).
#   - before each timed run its inputs are read once untimed (warm page cache), then `sync`.
#   - wall time is measured by bash ($EPOCHREALTIME) around the whole step; peak memory is
#     GNU time's %M (max RSS) of every process of the step (each pipeline stage and each
#     openssl run under /usr/bin/time); a step's peak RSS is its largest process, and the
#     table shows the maximum over the runs.
#   - the baseline's extraction dirs and airlock's site roots are new per run and deleted only
#     at the end: deleting a large tree slows file creation on this ext4 for minutes, so a run
#     that follows a recent deletion waits (BENCH_SETTLE_SECONDS) before the verify and install
#     rows.
#
# Environment:
#   BENCH_RUNS=3             timed runs per tool and step
#   BENCH_SCALE=1            dataset size factor: 1 is ~2 GiB, 0.05 is ~100 MiB (smoke test)
#   BENCH_SETTLE_SECONDS=360 wait after a previous run's tree deletion before creating trees
#   BENCH_SWITCHES=20        timed pointer switches per release (rollback and activate alternate)
#   BENCH_SCALE_FILES="1000 10000 100000"  file counts of the scale table (default: these at
#                            BENCH_SCALE >= 1, "100 1000 10000" below; ascending)
#   BENCH_SCALE_RUNS_LARGEST=BENCH_RUNS  timed runs of each command at the largest file count
#
# The dataset is generated once per scale into WORKDIR/release-s<scale> (marker file
# WORKDIR/release-s<scale>.ready) and reused, as are its second release
# WORKDIR/release-s<scale>-v2 (hardlinks to the first but for airlock.yaml and one prompt
# file), the small release WORKDIR/small/v1, v2 and the scale releases WORKDIR/scale/n<N>. At BENCH_SCALE below 1 the "large"
# release of the rollback and disk tables is the scaled one. Exit status: 0 when every command succeeded,
# whether or not the targets are met (it is a report); non-zero when a command failed.
#
# Adding a row (e.g. install): write <row>_airlock and <row>_baseline (the timed work, run
# with the run number as $1; wrap each process in `rss`), optionally prep_<row>_airlock /
# prep_<row>_baseline (untimed: warm inputs, fresh dirs) and before_<row> (once before the
# row), then add the row to ROWS and give it a TARGET_RATIO. Tables of their own (delta,
# scale) call time_cmd themselves; run_row ROW SIDE_A SIDE_B alternates other sides than
# airlock/baseline.

set -euo pipefail
export LC_ALL=C

usage() { echo "usage: $0 AIRLOCK_BINARY WORKDIR" >&2; exit 2; }
[ $# -eq 2 ] || usage

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- arguments and settings

AIRLOCK=$1
WORKDIR=$2
case $AIRLOCK in /*) ;; */*) AIRLOCK="$PWD/$AIRLOCK" ;; *) AIRLOCK=$(command -v "$AIRLOCK" || true) ;; esac
[ -n "$AIRLOCK" ] && [ -x "$AIRLOCK" ] && [ -f "$AIRLOCK" ] || die "airlock binary not found or not executable: $1"
mkdir -p "$WORKDIR"
WORKDIR=$(cd "$WORKDIR" && pwd)

RUNS=${BENCH_RUNS:-3}
SCALE=${BENCH_SCALE:-1}
SETTLE=${BENCH_SETTLE_SECONDS:-360}
SWITCHES=${BENCH_SWITCHES:-20}
SCALE_RUNS_LARGEST=${BENCH_SCALE_RUNS_LARGEST:-$RUNS}
EPOCH=1767225600
GEN_VERSION=1

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer (got '$RUNS')"
[[ $SCALE =~ ^([0-9]+([.][0-9]*)?|[.][0-9]+)$ ]] && awk -v s="$SCALE" 'BEGIN{exit !(s>0 && s<=64)}' \
    || die "BENCH_SCALE must be a number in (0, 64] (got '$SCALE')"
[[ $SETTLE =~ ^[0-9]+$ ]] || die "BENCH_SETTLE_SECONDS must be a non-negative integer (got '$SETTLE')"
[[ $SWITCHES =~ ^[1-9][0-9]*$ ]] || die "BENCH_SWITCHES must be a positive integer (got '$SWITCHES')"
[[ $SCALE_RUNS_LARGEST =~ ^[1-9][0-9]*$ ]] \
    || die "BENCH_SCALE_RUNS_LARGEST must be a positive integer (got '$SCALE_RUNS_LARGEST')"
if [ -n "${BENCH_SCALE_FILES:-}" ]; then
    read -r -a SCALE_NS <<<"$BENCH_SCALE_FILES"
elif awk -v s="$SCALE" 'BEGIN{exit !(s>=1)}'; then
    SCALE_NS=(1000 10000 100000)
else
    SCALE_NS=(100 1000 10000)
fi
((${#SCALE_NS[@]} >= 2)) || die "BENCH_SCALE_FILES needs at least two file counts"
for ((i = 0; i < ${#SCALE_NS[@]}; i++)); do
    [[ ${SCALE_NS[i]} =~ ^[1-9][0-9]*$ ]] && ((SCALE_NS[i] <= 10000000)) \
        || die "BENCH_SCALE_FILES: '${SCALE_NS[i]}' is not a file count (1 to 10,000,000)"
    ((i == 0 || SCALE_NS[i] > SCALE_NS[i - 1])) || die "BENCH_SCALE_FILES must be ascending"
done

# Rows, in order, and their targets. RSS target applies to airlock in every row.
ROWS=(pack verify install)
declare -A TARGET_RATIO=([pack]=1.0 [verify]=0.6 [install]=1.3)
TARGET_RSS_MIB=64
TARGET_SWITCH_MS=10      # rollback: the pointer switch itself (symlink + rename + fsync)
TARGET_DISK_PCT=1        # disk: a second release adds its changed bytes + < 1% of its size
TARGET_DELTA_SLACK=65536 # delta: bundle <= zstd -1 of the changed files + manifest + this
TARGET_FLAT=2            # scale: time per file at the largest N <= this x at the smallest
TARGET_SCALE_RSS_MIB=64  # scale: peak RSS at the largest N minus the manifest's size

REL="$WORKDIR/release-s$SCALE"
MARKER="$REL.ready"
KEY_PREFIX="$WORKDIR/vendor"
KEY="$KEY_PREFIX.key"
TRUST="$WORKDIR/trust"
BUNDLE="$WORKDIR/out.airlock"
BASE_TZST="$WORKDIR/baseline.tar.zst"
BASE_SUMS="$WORKDIR/baseline.sums"
EXTRACT="$WORKDIR/extract"            # baseline dirs: verify extract/x1, x2, ...; install i1, i2, ...
SITES="$WORKDIR/sites"                # airlock site roots: install-1, install-2, ...; switch
SWITCH_ROOT="$SITES/switch"           # the rollback and disk rows' site
REL2="$REL-v2"                        # the second release: one prompt file changed
MARKER2="$REL2.ready"
BUNDLE2="$WORKDIR/out-v2.airlock"
SMALL="$WORKDIR/small"                # the small release: small/v1, small/v2
SMALL_MARKER="$SMALL.ready"
SMALL_BUNDLE1="$WORKDIR/small-v1.airlock"
SMALL_BUNDLE2="$WORKDIR/small-v2.airlock"
DELTA_BUNDLE="$WORKDIR/out-v2-delta.airlock"   # the second release as a delta against out.airlock
SCALE_DIR="$WORKDIR/scale"            # scale releases n<N>, markers n<N>.ready, bundles n<N>.airlock
DELETE_STAMP="$WORKDIR/.last-tree-delete"
RES="$WORKDIR/results"                # per-run logs, times and RSS of this invocation

# ---------------------------------------------------------------- tools

for t in zstd openssl tar find xargs awk sort comm sed du cp; do
    command -v "$t" >/dev/null || die "missing tool: $t"
done
HAVE_STRACE=0
command -v strace >/dev/null && HAVE_STRACE=1
# The install, rollback and disk rows need the site commands (a binary built before them has none).
# (Outputs are captured before grep: `grep -q` closes the pipe early, and with pipefail the
# writer's SIGPIPE would fail the check.)
grep -q 'USAGE: airlock install' <<<"$("$AIRLOCK" install --help 2>&1)" \
    || die "$AIRLOCK has no install command: it predates the site commands; rebuild it (make release)"
[ -x /usr/bin/time ] && grep -q GNU <<<"$(/usr/bin/time --version 2>&1)" \
    || die "GNU time is needed at /usr/bin/time (apt-get install time)"
grep -q 'GNU tar' <<<"$(tar --version | head -1)" || die "GNU tar is needed"
# One openssl process for all the files when the kernel allows it (20,000 paths is ~1 MB).
XARGS_S=$(xargs --show-limits </dev/null 2>&1 | awk '/actually use/ {print $NF - 4096}')
[[ $XARGS_S =~ ^[0-9]+$ ]] || XARGS_S=131072

# ---------------------------------------------------------------- helpers

# rss CMD ARGS...: run CMD under GNU time, appending its max RSS (KiB) and its user and system
# CPU seconds to $RSS_FILE ("RSS kib CPU user sys").
RSS_FILE=/dev/null
RSS_FMT='RSS %M CPU %U %S'
rss() { /usr/bin/time -a -o "$RSS_FILE" -f "$RSS_FMT" "$@"; }
# cpu_of NAME RUN: user + system CPU seconds of every process of one timed run.
cpu_of() { awk '$1=="RSS" && $3=="CPU" {c+=$4+$5} END {printf "%.2f", c}' "$RES/$1.$2.rss"; }
# cpu_median NAME: the median over the runs of cpu_of.
cpu_median() {
    local f
    for f in "$RES/$1".[0-9]*.rss; do cpu_of "$1" "$(basename "${f%.rss}" | sed 's/.*\.//')"; echo; done \
        >"$RES/$1.cpu"
    median "$RES/$1.cpu"
}

# hash_tree DIR OUT: openssl dgst -sha256 over every file of DIR (paths ./...), via xargs.
hash_tree() {
    (cd "$1" && find . -type f -print0 \
        | xargs -0 -s "$XARGS_S" /usr/bin/time -a -o "$RSS_FILE" -f "$RSS_FMT" openssl dgst -sha256 >"$2")
}

# warm_tree DIR: read every file of DIR once (through a pipe: tar skips data for /dev/null).
warm_tree() { tar -cf - -C "$1" . | cat >/dev/null; }
warm_file() { cat "$@" >/dev/null; }

# median FILE: median of the numbers in FILE, one a line.
median() {
    sort -g "$1" | awk '{v[NR]=$1} END {if (NR==0) exit 1;
        if (NR%2) printf "%.3f\n", v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2}'
}
# maxval FILE: largest number in FILE.
maxval() { sort -g "$1" | tail -n 1; }
# calc EXPR: floating-point arithmetic.
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b/1048576 }'; }

# time_cmd NAME RUN FUNC: sync, run FUNC RUN timed; record seconds and peak RSS (KiB).
time_cmd() {
    local name=$1 run=$2 fn=$3 t0 t1 rc=0 peak
    RSS_FILE="$RES/$name.$run.rss"
    : >"$RSS_FILE"
    sync
    t0=$EPOCHREALTIME
    "$fn" "$run" >"$RES/$name.$run.log" 2>&1 || rc=$?
    t1=$EPOCHREALTIME
    if [ "$rc" -ne 0 ] || grep -qE 'exited with non-zero|terminated by signal' "$RSS_FILE"; then
        log "$name run $run failed (exit $rc); its output:"
        tail -n 30 "$RES/$name.$run.log" >&2
        grep -vE '^RSS [0-9]+( CPU [0-9.]+ [0-9.]+)?$' "$RSS_FILE" >&2 || true
        exit 1
    fi
    peak=$(awk '$1=="RSS" && $2>m {m=$2} END {print m+0}' "$RSS_FILE")
    calc "$t1 - $t0" >>"$RES/$name.times"; echo >>"$RES/$name.times"
    echo "$peak" >>"$RES/$name.rss"
    log "  $name run $run: $(tail -n 1 "$RES/$name.times") s, peak RSS $(mib $((peak * 1024))) MiB"
}

# measure ROW SIDE RUN: untimed preparation, then the timed step.
measure() {
    local row=$1 side=$2 run=$3
    if declare -F "prep_${row}_${side}" >/dev/null; then
        "prep_${row}_${side}" "$run" || die "preparing ${row}_${side} run $run failed"
    fi
    time_cmd "${row}_${side}" "$run" "${row}_${side}"
}

# run_row ROW [SIDE_A SIDE_B]: BENCH_RUNS runs of each side (airlock and baseline unless
# named), alternating, the order swapped every run.
run_row() {
    local row=$1 a=${2:-airlock} b=${3:-baseline} i
    if declare -F "before_$row" >/dev/null; then "before_$row"; fi
    log "row $row: $RUNS runs each, alternating"
    for ((i = 1; i <= RUNS; i++)); do
        if ((i % 2)); then
            measure "$row" "$a" "$i"; measure "$row" "$b" "$i"
        else
            measure "$row" "$b" "$i"; measure "$row" "$a" "$i"
        fi
    done
}

# Wait until BENCH_SETTLE_SECONDS have passed since this script last deleted a big tree.
settle_after_delete() {
    [ -f "$DELETE_STAMP" ] || return 0
    local then now left
    then=$(cat "$DELETE_STAMP" 2>/dev/null || echo 0)
    [[ $then =~ ^[0-9]+$ ]] || then=0
    now=$(date +%s)
    left=$((then + SETTLE - now))
    if ((left > 0)); then
        log "a file tree was deleted $((now - then)) s ago: waiting ${left} s before creating" \
            "many files (ext4 slows inode allocation after deletions; BENCH_SETTLE_SECONDS=0 skips)"
        SETTLE_WAITED=$left
        sleep "$left"
    fi
}
SETTLE_WAITED=0

delete_tree() {  # delete_tree DIR: delete a (possibly large) tree and remember when
    [ -e "$1" ] || return 0
    # Installed releases are read-only; root deletes them all the same, others need write bits.
    [ "$(id -u)" = 0 ] || chmod -R u+w "$1" 2>/dev/null || true
    rm -rf "$1"
    date +%s >"$DELETE_STAMP"
}

cleanup() { delete_tree "$EXTRACT"; delete_tree "$SITES"; }
trap cleanup EXIT

# ---------------------------------------------------------------- dataset

# Sizes at BENCH_SCALE=1: weights 1.5 GiB; code 300 MiB in 240 files; prompts 100 MiB in
# 60 files; 20,000 index docs of 1-4 KiB (~50 MiB). File counts of code and prompts are
# fixed, their sizes and the number of index docs scale.
MiB=1048576
WEIGHTS_BYTES=$(awk -v s="$SCALE" -v m=$MiB 'BEGIN { printf "%d", 1536*m*s }')
CODE_BYTES=$(awk -v s="$SCALE" -v m=$MiB 'BEGIN { printf "%d", 300*m*s }')
PROMPT_BYTES=$(awk -v s="$SCALE" -v m=$MiB 'BEGIN { printf "%d", 100*m*s }')
INDEX_FILES=$(awk -v s="$SCALE" 'BEGIN { n = int(20000*s + 0.5); printf "%d", (n < 1 ? 1 : n) }')
CODE_FILES=240
PROMPT_FILES=60
INDEX_SHARDS=20
DATASET_DESC="gen=$GEN_VERSION scale=$SCALE weights=$WEIGHTS_BYTES code=$CODE_BYTES/$CODE_FILES prompts=$PROMPT_BYTES/$PROMPT_FILES index=$INDEX_FILES"

generate_text() {  # generate_text DIR: code, prompts and index, in one awk process
    awk -v dir="$1" -v code_bytes="$CODE_BYTES" -v code_files="$CODE_FILES" \
        -v prompt_bytes="$PROMPT_BYTES" -v prompt_files="$PROMPT_FILES" \
        -v index_files="$INDEX_FILES" -v shards="$INDEX_SHARDS" '
    function code_line(f,   r, a, b, k, t) {
        r = int(rand() * 8); a = id[r]; b = id[(r * 3 + f) % 8]; k = int(rand() * 100000)
        t = int(rand() * 7)
        if (t == 0) return sprintf("    let %s_%d = try %s(at: %d, limit: %d)", a, k, b, k % 977, int(rand() * 65536))
        if (t == 1) return sprintf("    if %s_%d > %d { return .failure(.%s(%d)) }", a, k % 1000, int(rand() * 4096), b, k)
        if (t == 2) return sprintf("    // %s: keep %s under %d bytes (see issue #%d)", a, b, int(rand() * 1e6), k % 5000)
        if (t == 3) return sprintf("func %s%d(_ %s: inout [UInt8], count: Int = %d) throws -> Int {", b, k, a, k % 256)
        if (t == 4) return sprintf("    %s[%d] = %s &+ 0x%x", a, k % 64, b, int(rand() * 2147483647))
        if (t == 5) return sprintf("    guard %s.count >= %d else { throw Error.short(%s, %d) }", a, k % 4096, b, k)
        return "}"
    }
    function sentence(   n, s, i) {
        n = 6 + int(rand() * 14); s = word[int(rand() * nw)]
        s = toupper(substr(s, 1, 1)) substr(s, 2)
        for (i = 1; i < n; i++) s = s " " word[int(rand() * nw)]
        if (rand() < 0.2) s = s " " int(rand() * 1000)
        return s "."
    }
    function size_of(avg, i) { return int(avg * (0.5 + (i % 11) / 10)) }
    BEGIN {
        srand(20261001)
        split("value count buffer offset result handle index token", t0, " ")
        for (i = 1; i <= 8; i++) id[i - 1] = t0[i]
        nw = split("the agent must never call a tool without checking its permission list and " \
                   "should answer the user in plain words citing the retrieved documents when " \
                   "relevant if a request is unclear ask one short question before acting keep " \
                   "answers under limit escalate refunds account billing policy model context", word, " ")
        for (i = 1; i <= nw; i++) word[i - 1] = word[i]

        avg = code_bytes / code_files
        for (f = 0; f < code_files; f++) {
            if (f < 4) { fn = sprintf("%s/code/scripts/%s-%02d.sh", dir, id[f], f); print "#!/bin/sh" > fn; w = 10 }
            else { fn = sprintf("%s/code/src/mod%d/%s_%03d.swift", dir, f % 8, id[f % 8], f); w = 0 }
            target = size_of(avg, f)
            while (w < target) { line = code_line(f); print line > fn; w += length(line) + 1 }
            close(fn)
        }
        avg = prompt_bytes / prompt_files
        for (f = 0; f < prompt_files; f++) {
            fn = sprintf("%s/prompts/prompt-%03d.md", dir, f); target = size_of(avg, f)
            line = sprintf("# Prompt %d\n", f); printf "%s", line > fn; w = length(line)
            while (w < target) {
                line = sentence() " " sentence() " " sentence()
                if (rand() < 0.15) line = "\n## Section " int(rand() * 100) "\n\n" line
                print line > fn; w += length(line) + 1
            }
            close(fn)
        }
        for (d = 0; d < index_files; d++) {
            fn = sprintf("%s/index/shard-%02d/doc-%05d.json", dir, d % shards, d)
            target = 1024 + (d * 7919) % 3072
            line = sprintf("{\"id\":\"doc-%05d\",\"shard\":%d,\"title\":\"%s\",\"text\":\"", d, d % shards, sentence())
            while (length(line) < target - 200) line = line sentence() " "
            line = line "\",\"vector\":["
            for (k = 0; k < 12; k++) line = line sprintf("%s%.6f", (k ? "," : ""), rand() * 2 - 1)
            print line "]}" > fn
            close(fn)
        }
    }'
}

generate_dataset() {
    local tmp="$REL.partial" d
    delete_tree "$tmp"
    log "generating the release (${DATASET_DESC}) in $REL"
    mkdir -p "$tmp/code/scripts" "$tmp/model" "$tmp/prompts"
    for ((d = 0; d < 8; d++)); do mkdir -p "$tmp/code/src/mod$d"; done
    for ((d = 0; d < INDEX_SHARDS; d++)); do mkdir -p "$(printf '%s/index/shard-%02d' "$tmp" "$d")"; done
    cat >"$tmp/airlock.yaml" <<'EOF'
name: bench-agent
version: 1.0.0
sequence: 1
components:
  code: code/
  model: { path: model/, name: bench-model, snapshot: 2026-10-01 }
  prompts: prompts/
  index: index/
EOF
    printf '{"architecture":"bench","hidden_size":4096,"layers":32,"dtype":"bfloat16"}\n' \
        >"$tmp/model/config.json"
    # Incompressible weights: AES-CTR keystream (fast). openssl dies of SIGPIPE at the end.
    { openssl enc -aes-128-ctr -pass pass:bench -nosalt -pbkdf2 </dev/zero 2>/dev/null || true; } \
        | head -c "$WEIGHTS_BYTES" >"$tmp/model/weights.safetensors"
    [ "$(stat -c %s "$tmp/model/weights.safetensors")" -eq "$WEIGHTS_BYTES" ] \
        || die "generating the weights file failed"
    generate_text "$tmp"
    chmod 0755 "$tmp"/code/scripts/*.sh
    sync
    mv "$tmp" "$REL"
    echo "$DATASET_DESC" >"$MARKER"
}

# The second release of the large one: hardlinks to every file of the first (the weights
# included) but airlock.yaml (version 1.0.1, sequence 2) and one prompt file, rewritten with
# a line added. Files written anew (not hardlinked) are the only ones with one link.
REL2_DESC="$DATASET_DESC v2=1 changed=prompts/prompt-000.md"
make_second_release() {
    if [ -f "$MARKER2" ] && [ "$(cat "$MARKER2")" = "$REL2_DESC" ] \
        && [ "$REL/model/weights.safetensors" -ef "$REL2/model/weights.safetensors" ]; then
        log "reusing the second release in $REL2"
        return
    fi
    local tmp="$REL2.partial"
    rm -f "$MARKER2"
    delete_tree "$REL2"; delete_tree "$tmp"
    log "making the second release $REL2 (hardlinks, one prompt file changed)"
    cp -al "$REL" "$tmp"
    rm "$tmp/airlock.yaml" "$tmp/prompts/prompt-000.md"
    sed -e 's/^version: .*/version: 1.0.1/' -e 's/^sequence: .*/sequence: 2/' \
        "$REL/airlock.yaml" >"$tmp/airlock.yaml"
    { cat "$REL/prompts/prompt-000.md"
      echo "Never share the refund policy document itself; quote the relevant lines instead."
    } >"$tmp/prompts/prompt-000.md"
    sync
    mv "$tmp" "$REL2"
    echo "$REL2_DESC" >"$MARKER2"
}

# The small release (10 MiB of weights and a few files), twice: v2 changes the system prompt.
SMALL_WEIGHTS=$((10 * MiB))
SMALL_DESC="gen=1 weights=$SMALL_WEIGHTS"
small_yaml() {  # small_yaml VERSION SEQUENCE
    printf 'name: small-agent\nversion: %s\nsequence: %s\ncomponents:\n  code: code/\n' "$1" "$2"
    printf '  model: { path: model/, name: small-model, snapshot: 2026-10-01 }\n  prompts: prompts/\n'
}
make_small_release() {
    if [ -f "$SMALL_MARKER" ] && [ "$(cat "$SMALL_MARKER")" = "$SMALL_DESC" ] && [ -d "$SMALL/v2" ]; then
        return
    fi
    local tmp="$SMALL.partial" i
    rm -rf "$tmp" "$SMALL" "$SMALL_MARKER"   # a few files: no settle needed
    log "generating the small release in $SMALL"
    mkdir -p "$tmp/v1/code" "$tmp/v1/model" "$tmp/v1/prompts"
    small_yaml 1.0.0 1 >"$tmp/v1/airlock.yaml"
    { openssl enc -aes-128-ctr -pass pass:small -nosalt -pbkdf2 </dev/zero 2>/dev/null || true; } \
        | head -c "$SMALL_WEIGHTS" >"$tmp/v1/model/weights.safetensors"
    [ "$(stat -c %s "$tmp/v1/model/weights.safetensors")" -eq "$SMALL_WEIGHTS" ] \
        || die "generating the small weights failed"
    printf '{"architecture":"bench-small","hidden_size":512,"layers":4}\n' >"$tmp/v1/model/config.json"
    printf 'import sys\n\ndef main():\n    print("small agent", sys.argv[1:])\n\nmain()\n' >"$tmp/v1/code/main.py"
    for ((i = 0; i < 40; i++)); do
        echo "Answer in plain words and cite the retrieved documents when relevant (rule $i)."
    done >"$tmp/v1/prompts/system.md"
    cp -al "$tmp/v1" "$tmp/v2"
    rm "$tmp/v2/airlock.yaml" "$tmp/v2/prompts/system.md"
    small_yaml 1.0.1 2 >"$tmp/v2/airlock.yaml"
    { cat "$tmp/v1/prompts/system.md"; echo "Ask one short question when a request is unclear."; } \
        >"$tmp/v2/prompts/system.md"
    sync
    mv "$tmp" "$SMALL"
    echo "$SMALL_DESC" >"$SMALL_MARKER"
}

# ---------------------------------------------------------------- the measured steps

# pack
prep_pack_airlock()  { rm -f "$BUNDLE" && warm_tree "$REL"; }
prep_pack_baseline() { rm -f "$BASE_TZST" "$BASE_SUMS" && warm_tree "$REL"; }
pack_airlock() {
    SOURCE_DATE_EPOCH=$EPOCH rss "$AIRLOCK" pack "$REL" --key "$KEY" --out "$BUNDLE"
}
pack_baseline() {
    hash_tree "$REL" "$BASE_SUMS" || return
    rss tar -cf - -C "$REL" . | rss zstd -1 -T0 -q -o "$BASE_TZST"
}

# verify
before_verify() { settle_after_delete; mkdir -p "$EXTRACT"; }
prep_verify_airlock()  { warm_file "$BUNDLE"; }
prep_verify_baseline() {
    [ ! -e "$EXTRACT/x$1" ] || die "$EXTRACT/x$1 exists already"
    warm_file "$BASE_TZST" && mkdir "$EXTRACT/x$1"
}
verify_airlock() {
    rss "$AIRLOCK" verify "$BUNDLE" --trust "$TRUST"
}
verify_baseline() {
    rss zstd -dc "$BASE_TZST" | rss tar -xf - -C "$EXTRACT/x$1" || return
    hash_tree "$EXTRACT/x$1" "$RES/verify-baseline.$1.sums"
}

# install: airlock into a new site root per run (its trust store set up untimed); the
# baseline extracts the same bundle into a new dir and syncs. Neither is deleted before the end.
before_install() { settle_after_delete; mkdir -p "$EXTRACT" "$SITES"; }
prep_install_airlock() {
    local root="$SITES/install-$1"
    [ ! -e "$root" ] || die "$root exists already"
    mkdir "$root" && "$AIRLOCK" trust add "$KEY_PREFIX.pub" --root "$root" >/dev/null \
        && warm_file "$BUNDLE"
}
install_airlock() {
    rss "$AIRLOCK" install "$BUNDLE" --root "$SITES/install-$1"
}
prep_install_baseline() {
    [ ! -e "$EXTRACT/i$1" ] || die "$EXTRACT/i$1 exists already"
    warm_file "$BUNDLE" && mkdir "$EXTRACT/i$1"
}
install_baseline() {
    rss zstd -dc "$BUNDLE" | rss tar -xf - -C "$EXTRACT/i$1" || return
    rss sync
}

# ---------------------------------------------------------------- the site rows (rollback, disk)

al() { "$AIRLOCK" "$@" --root "$SWITCH_ROOT"; }   # al CMD ARGS...: airlock on the switch site
json_field() { sed -n "s/^ *\"$2\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" "$1" | head -n 1; }
du_k() { du -sk "$1" | awk '{print $1}'; }

# pctl FILE P: the P-th percentile (0-100, linear interpolation) of the numbers in FILE.
pctl() {
    sort -g "$1" | awk -v p="$2" '{v[NR]=$1} END {if (NR==0) exit 1; x=1+(NR-1)*p/100; i=int(x);
        printf "%.3f\n", (i>=NR) ? v[NR] : v[i]+(x-i)*(v[i+1]-v[i])}'
}

# Untimed: the site with both releases of both names, measuring the disk the second large
# release adds on the way; then each name's activation stack is [first, second].
declare -A REL_FIRST REL_SECOND AT_SECOND
site_setup() {
    local f
    log "site rows: packing the second releases (untimed)"
    for f in "$REL2:$BUNDLE2" "$SMALL/v1:$SMALL_BUNDLE1" "$SMALL/v2:$SMALL_BUNDLE2"; do
        SOURCE_DATE_EPOCH=$EPOCH "$AIRLOCK" pack "${f%%:*}" --key "$KEY" --out "${f#*:}" \
            >>"$RES/site-setup.log" 2>&1 || { tail -n 20 "$RES/site-setup.log" >&2; die "packing ${f%%:*} failed"; }
    done
    log "site rows: installing both releases of bench-agent and small-agent into $SWITCH_ROOT (untimed)"
    mkdir -p "$SITES"
    [ ! -e "$SWITCH_ROOT" ] || die "$SWITCH_ROOT exists already"
    mkdir "$SWITCH_ROOT"
    al trust add "$KEY_PREFIX.pub" >>"$RES/site-setup.log" 2>&1 || die "airlock trust add failed"
    sync
    DISK_ROOT_0=$(du_k "$SWITCH_ROOT")
    al install "$BUNDLE" --json >"$RES/site-install-1.json" 2>>"$RES/site-setup.log" || die "installing $BUNDLE failed"
    DISK_ROOT_1=$(du_k "$SWITCH_ROOT"); DISK_OBJ_1=$(du_k "$SWITCH_ROOT/.objects")
    al install "$BUNDLE2" --json >"$RES/site-install-2.json" 2>>"$RES/site-setup.log" || die "installing $BUNDLE2 failed"
    DISK_ROOT_2=$(du_k "$SWITCH_ROOT"); DISK_OBJ_2=$(du_k "$SWITCH_ROOT/.objects")
    REL_FIRST[bench-agent]=$(json_field "$RES/site-install-1.json" release)
    REL_SECOND[bench-agent]=$(json_field "$RES/site-install-2.json" release)
    # One du over the objects and both release folders counts every inode once, at its first
    # appearance: the second folder's figure is its own manifest, signatures and folders.
    DISK_REL2_OWN=$(du -sk "$SWITCH_ROOT/.objects" "$SWITCH_ROOT/bench-agent/releases/${REL_FIRST[bench-agent]}" \
        "$SWITCH_ROOT/bench-agent/releases/${REL_SECOND[bench-agent]}" | awk 'END {print $1}')
    REL2_WRITTEN=$(json_field "$RES/site-install-2.json" bytes_written)
    REL2_SHARED=$(json_field "$RES/site-install-2.json" files_shared)
    REL2_FILES=$(json_field "$RES/site-install-2.json" files)
    CHANGED_BYTES=$(find "$REL2" -type f -links 1 ! -path "$REL2/airlock.yaml" -printf '%s\n' | awk '{s+=$1} END {printf "%d", s}')
    CHANGED_FILES=$(cd "$REL2" && find . -type f -links 1 ! -path ./airlock.yaml | sed 's|^\./||' | paste -sd' ')

    al install "$SMALL_BUNDLE1" --json >"$RES/site-install-s1.json" 2>>"$RES/site-setup.log" || die "installing $SMALL_BUNDLE1 failed"
    al install "$SMALL_BUNDLE2" --json >"$RES/site-install-s2.json" 2>>"$RES/site-setup.log" || die "installing $SMALL_BUNDLE2 failed"
    REL_FIRST[small-agent]=$(json_field "$RES/site-install-s1.json" release)
    REL_SECOND[small-agent]=$(json_field "$RES/site-install-s2.json" release)
    for f in bench-agent small-agent; do
        [ -n "${REL_FIRST[$f]}" ] && [ -n "${REL_SECOND[$f]}" ] && [ "${REL_FIRST[$f]}" != "${REL_SECOND[$f]}" ] \
            || die "could not read the installed releases of $f from airlock install --json"
        al activate "$f" "${REL_FIRST[$f]}" >>"$RES/site-setup.log" 2>&1 || die "airlock activate $f failed"
        al activate "$f" "${REL_SECOND[$f]}" >>"$RES/site-setup.log" 2>&1 || die "airlock activate $f failed"
        AT_SECOND[$f]=1
    done
}

# next_switch NAME: set SWITCH_CMD to NAME's next switch (rollback from the second release to
# the first, or activate the second again) and SWITCH_KIND, and flip the state.
SWITCH_CMD=()
next_switch() {
    if [ "${AT_SECOND[$1]}" = 1 ]; then
        SWITCH_CMD=(rollback "$1"); SWITCH_KIND=rollback; AT_SECOND[$1]=0
    else
        SWITCH_CMD=(activate "$1" "${REL_SECOND[$1]}"); SWITCH_KIND=activate; AT_SECOND[$1]=1
    fi
}

# timed_ms OUTFILE CMD...: sync, run CMD, append its wall time in ms to OUTFILE.
timed_ms() {
    local out=$1 t0 t1 rc=0
    shift
    sync
    t0=$EPOCHREALTIME
    "$@" >>"$RES/switch.log" 2>&1 || rc=$?
    t1=$EPOCHREALTIME
    ((rc == 0)) || { tail -n 5 "$RES/switch.log" >&2; die "$* failed (exit $rc)"; }
    calc "($t1 - $t0) * 1000" >>"$out"; echo >>"$out"
}

# strace_switch TRACE: from an strace -f -ttt -T log of one switch, print "window syscalls" in
# ms: the wall time from the start of the symlink(2) of the new pointer to the end of the fsync
# of the name's folder that follows the rename(2), and the sum of those three calls' times.
strace_switch() {
    awk '$NF !~ /^<[0-9.]+>$/ {next}
        { ts = ""; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+$/) { ts = $i; break }
          d = $NF; gsub(/[<>]/, "", d) }
        !s && /symlink(at)?\(.*\.current\.tmp-/ { s = ts; sum = d; next }
        s && !r && /rename(at2?)?\(.*\.current\.tmp-/ { r = 1; sum += d; next }
        r && !e && /[ ]fsync\(/ { e = ts + d; sum += d }
        END { if (!e) exit 1; printf "%.3f %.3f\n", (e - s) * 1000, sum * 1000 }' "$1"
}

run_switches() {
    local i k n item items rot
    log "row rollback: $SWITCHES timed switches per release, alternating with the start-up reference"
    : >"$RES/switch.log"
    # Untimed warm-up: one round trip per name, the binary and the site in the page cache.
    for n in small-agent bench-agent; do
        next_switch "$n"; al "${SWITCH_CMD[@]}" >>"$RES/switch.log" 2>&1 || die "airlock ${SWITCH_CMD[*]} failed"
        next_switch "$n"; al "${SWITCH_CMD[@]}" >>"$RES/switch.log" 2>&1 || die "airlock ${SWITCH_CMD[*]} failed"
    done
    "$AIRLOCK" --help >/dev/null 2>&1
    items=(small-agent bench-agent help status)
    for ((i = 1; i <= SWITCHES; i++)); do
        for ((k = 0; k < 4; k++)); do
            rot=${items[(k + i) % 4]}
            case $rot in
                help) timed_ms "$RES/switch-help.ms" "$AIRLOCK" --help ;;
                status) timed_ms "$RES/switch-status.ms" al status small-agent ;;
                *)
                    next_switch "$rot"
                    timed_ms "$RES/switch-$rot.ms" al "${SWITCH_CMD[@]}"
                    tail -n 1 "$RES/switch-$rot.ms" >>"$RES/switch-$rot.$SWITCH_KIND.ms"
                    ;;
            esac
        done
    done
    # Peak RSS: one switch each way per name, untimed, under GNU time.
    RSS_FILE="$RES/switch.rss"; : >"$RSS_FILE"
    for n in small-agent bench-agent small-agent bench-agent; do
        next_switch "$n"; rss "$AIRLOCK" "${SWITCH_CMD[@]}" --root "$SWITCH_ROOT" >>"$RES/switch.log" 2>&1 \
            || die "airlock ${SWITCH_CMD[*]} failed"
    done
    RSS_FILE=/dev/null
    # The switch itself, under strace: 6 switches per name (3 rollbacks, 3 activates).
    if ((HAVE_STRACE)); then
        for ((i = 1; i <= 6; i++)); do
            for n in small-agent bench-agent; do
                next_switch "$n"
                strace -f -ttt -T -e trace=symlink,symlinkat,rename,renameat,renameat2,openat,fsync \
                    -o "$RES/switch-$n.strace.$i" "$AIRLOCK" "${SWITCH_CMD[@]}" --root "$SWITCH_ROOT" \
                    >>"$RES/switch.log" 2>&1 || die "airlock ${SWITCH_CMD[*]} under strace failed"
                strace_switch "$RES/switch-$n.strace.$i" >>"$RES/switch-$n.strace" \
                    || die "no pointer switch found in $RES/switch-$n.strace.$i"
            done
        done
    fi
    # Every switch did switch: current is where the alternation says it is.
    local want
    for n in small-agent bench-agent; do
        if [ "${AT_SECOND[$n]}" = 1 ]; then want=${REL_SECOND[$n]}; else want=${REL_FIRST[$n]}; fi
        [ "$(readlink "$SWITCH_ROOT/$n/current")" = "releases/$want" ] \
            || die "$n: current is $(readlink "$SWITCH_ROOT/$n/current"), expected releases/$want"
    done
}

# ---------------------------------------------------------------- the delta table

# deltapack: the second release as a delta against out.airlock, and (the other side) as the
# full out-v2.airlock again; both reproducible, so the bundles are the same every run.
prep_deltapack_delta() { rm -f "$DELTA_BUNDLE" && warm_tree "$REL2" && warm_file "$BUNDLE"; }
prep_deltapack_full()  { rm -f "$BUNDLE2" && warm_tree "$REL2"; }
deltapack_delta() {
    SOURCE_DATE_EPOCH=$EPOCH rss "$AIRLOCK" pack "$REL2" --key "$KEY" --out "$DELTA_BUNDLE" --base "$BUNDLE"
}
deltapack_full() {
    SOURCE_DATE_EPOCH=$EPOCH rss "$AIRLOCK" pack "$REL2" --key "$KEY" --out "$BUNDLE2"
}

# deltainst: install the delta or the full second release into a new site that already holds
# out.airlock (trust store and first release installed untimed).
prep_deltainst() {  # prep_deltainst ROOT
    [ ! -e "$1" ] || die "$1 exists already"
    mkdir "$1" && "$AIRLOCK" trust add "$KEY_PREFIX.pub" --root "$1" >/dev/null \
        && "$AIRLOCK" install "$BUNDLE" --root "$1" >/dev/null
}
prep_deltainst_delta() { prep_deltainst "$SITES/delta-d$1" && warm_file "$DELTA_BUNDLE"; }
prep_deltainst_full()  { prep_deltainst "$SITES/delta-f$1" && warm_file "$BUNDLE2"; }
deltainst_delta() { rss "$AIRLOCK" install "$DELTA_BUNDLE" --root "$SITES/delta-d$1" --json; }
deltainst_full()  { rss "$AIRLOCK" install "$BUNDLE2" --root "$SITES/delta-f$1" --json; }
before_deltainst() { settle_after_delete; mkdir -p "$SITES"; }

# bundle_member BUNDLE MEMBER: the member's bytes on stdout.
bundle_member() { tar --zstd -xOf "$1" "$2"; }

run_delta() {
    run_row deltapack delta full
    run_row deltainst delta full
    log "delta: sizes"
    local f m
    DELTA_BYTES=$(stat -c %s "$DELTA_BUNDLE")
    FULL2_BYTES=$(stat -c %s "$BUNDLE2")
    DELTA_MANIFEST_BYTES=$(bundle_member "$BUNDLE2" airlock/manifest.json | wc -c)
    bundle_member "$BUNDLE2" airlock/manifest.json >"$RES/delta-full.manifest.json"
    bundle_member "$DELTA_BUNDLE" airlock/manifest.json >"$RES/delta-delta.manifest.json"
    cmp -s "$RES/delta-full.manifest.json" "$RES/delta-delta.manifest.json" \
        || NOTES+=("WARNING: the delta bundle's manifest differs from the full bundle's")
    # The changed files: those of the second release not hardlinked to the first.
    (cd "$REL2" && find . -type f -links 1 ! -path ./airlock.yaml | sed 's|^\./||' | sort) >"$RES/delta-changed.list"
    DELTA_CHANGED_FILES=$(paste -sd' ' "$RES/delta-changed.list")
    DELTA_CHANGED_RAW=0; DELTA_CHANGED_ZST=0
    while IFS= read -r f; do
        DELTA_CHANGED_RAW=$((DELTA_CHANGED_RAW + $(stat -c %s "$REL2/$f")))
        DELTA_CHANGED_ZST=$((DELTA_CHANGED_ZST + $(zstd -1 -c "$REL2/$f" | wc -c)))
    done <"$RES/delta-changed.list"
    # What the delta carries: its members, uncompressed, and each one alone through zstd -1.
    tar --zstd -tvf "$DELTA_BUNDLE" | awk '{print $3, $6}' >"$RES/delta-members"
    tar --zstd -tf "$DELTA_BUNDLE" | sed -n 's|^payload/||p' | grep -v '/$' | sort >"$RES/delta-carried.list" || true
    cmp -s "$RES/delta-carried.list" "$RES/delta-changed.list" \
        || NOTES+=("WARNING: the delta bundle carries [$(paste -sd' ' "$RES/delta-carried.list")], the changed files are [$DELTA_CHANGED_FILES]")
    : >"$RES/delta-members.zst"
    while read -r _ m; do
        case $m in */) continue ;; esac
        echo "$m $(bundle_member "$DELTA_BUNDLE" "$m" | wc -c) $(bundle_member "$DELTA_BUNDLE" "$m" | zstd -1 -c | wc -c)" \
            >>"$RES/delta-members.zst"
    done <"$RES/delta-members"
    # Every install installed every file; the delta's took the omitted ones from the store.
    local i n want
    want=$(bundle_member "$BUNDLE2" airlock/SHA256SUMS | wc -l)
    for ((i = 1; i <= RUNS; i++)); do
        for n in deltainst_delta deltainst_full; do
            [ "$(json_field "$RES/$n.$i.log" files)" = "$want" ] \
                || NOTES+=("WARNING: $n run $i installed $(json_field "$RES/$n.$i.log" files) files, the bundle lists $want")
        done
    done
    DELTA_INST_SHARED=$(json_field "$RES/deltainst_delta.1.log" files_shared)
    DELTA_INST_WRITTEN=$(json_field "$RES/deltainst_delta.1.log" bytes_written)
    FULL_INST_SHARED=$(json_field "$RES/deltainst_full.1.log" files_shared)
    FULL_INST_WRITTEN=$(json_field "$RES/deltainst_full.1.log" bytes_written)
    # Both installs gave the same release: the same folder name and the same payload files.
    local rd rf
    rd=$(json_field "$RES/deltainst_delta.1.log" release); rf=$(json_field "$RES/deltainst_full.1.log" release)
    if [ "$rd" != "$rf" ]; then
        NOTES+=("note: the delta installs as release $rd, the full bundle as $rf")
    fi
    if [ -n "$rd" ] && [ -n "$rf" ]; then
        (cd "$SITES/delta-d1/bench-agent/releases/$rd" && find . -printf '%y %s %m %p\n' | sort) >"$RES/delta-d1.tree"
        (cd "$SITES/delta-f1/bench-agent/releases/$rf" && find . -printf '%y %s %m %p\n' | sort) >"$RES/delta-f1.tree"
        cmp -s "$RES/delta-d1.tree" "$RES/delta-f1.tree" \
            || NOTES+=("WARNING: the release installed from the delta differs (names, sizes, modes) from the one installed from the full bundle: diff $RES/delta-d1.tree $RES/delta-f1.tree")
    fi
}

# ---------------------------------------------------------------- the scale table

SCALE_GEN=1
scale_desc() { echo "gen=$SCALE_GEN files=$1 per-folder=1000 sizes=200-2000"; }

# generate_scale N: a release of N index docs (index/shard-NNN/doc-NNNNNN.txt, 1,000 a folder,
# 200-2000 bytes of text each, all different) plus code/main.py and prompts/system.md.
generate_scale() {
    local n=$1 dir="$SCALE_DIR/n$1" tmp="$SCALE_DIR/n$1.partial" d shards
    shards=$(((n + 999) / 1000))
    delete_tree "$tmp"; delete_tree "$dir"; rm -f "$dir.ready"
    settle_after_delete
    log "scale: generating $n files in $dir"
    mkdir -p "$tmp/code" "$tmp/prompts"
    for ((d = 0; d < shards; d++)); do mkdir -p "$(printf '%s/index/shard-%03d' "$tmp" "$d")"; done
    printf 'name: scale-%s\nversion: 1.0.0\nsequence: 1\ncomponents:\n  code: code/\n  prompts: prompts/\n  index: index/\n' \
        "$n" >"$tmp/airlock.yaml"
    printf 'import sys\n\ndef main():\n    print("scale agent", sys.argv[1:])\n\nmain()\n' >"$tmp/code/main.py"
    printf 'Answer from the index; cite the document ids you used.\n' >"$tmp/prompts/system.md"
    awk -v dir="$tmp" -v n="$n" '
    BEGIN {
        srand(20261002)
        nw = split("the agent must never call a tool without checking its permission list and " \
                   "should answer the user in plain words citing the retrieved documents when " \
                   "relevant if a request is unclear ask one short question before acting keep " \
                   "answers under limit escalate refunds account billing policy model context", word, " ")
        for (d = 0; d < n; d++) {
            fn = sprintf("%s/index/shard-%03d/doc-%06d.txt", dir, int(d / 1000), d)
            target = 200 + (d * 7919) % 1801
            s = sprintf("doc %06d:", d)
            while (length(s) < target) s = s " " word[1 + int(rand() * nw)]
            print substr(s, 1, target - 1) > fn
            close(fn)
        }
    }'
    sync
    mv "$tmp" "$dir"
    scale_desc "$n" >"$dir.ready"
}

# The timed commands of the scale table (globals SC_N, SC_REL, SC_BUNDLE, SC_RELEASE).
scale_pack()    { SOURCE_DATE_EPOCH=$EPOCH rss "$AIRLOCK" pack "$SC_REL" --key "$KEY" --out "$SC_BUNDLE"; }
scale_verify()  { rss "$AIRLOCK" verify "$SC_BUNDLE" --trust "$TRUST"; }
scale_install() { rss "$AIRLOCK" install "$SC_BUNDLE" --root "$SITES/scale-$SC_N-$1" --json; }
scale_audit()   { rss "$AIRLOCK" audit "scale-$SC_N" "$SC_RELEASE" --root "$SITES/scale-$SC_N-$1"; }
# The file system's own cost of creating the files: the bundle through zstd -dc | tar -x into
# a new dir, then sync (as the install row's baseline).
scale_tarx()    { rss zstd -dc "$SC_BUNDLE" | rss tar -xf - -C "$EXTRACT/scale-$SC_N-$1" || return; rss sync; }

declare -A SC_MANIFEST SC_RUNS SC_FILES
run_scale() {
    local n runs i root
    mkdir -p "$SCALE_DIR" "$SITES" "$EXTRACT"
    for n in "${SCALE_NS[@]}"; do
        if [ ! -f "$SCALE_DIR/n$n.ready" ] || [ "$(cat "$SCALE_DIR/n$n.ready")" != "$(scale_desc "$n")" ] \
            || [ ! -d "$SCALE_DIR/n$n" ]; then
            generate_scale "$n"
        fi
    done
    settle_after_delete
    for n in "${SCALE_NS[@]}"; do
        SC_N=$n; SC_REL="$SCALE_DIR/n$n"; SC_BUNDLE="$SCALE_DIR/n$n.airlock"
        runs=$RUNS
        [ "$n" = "${SCALE_NS[-1]}" ] && runs=$SCALE_RUNS_LARGEST
        SC_RUNS[$n]=$runs
        log "row scale, $n files: $runs runs of pack, verify, install, audit (and tar -x)"
        for ((i = 1; i <= runs; i++)); do
            rm -f "$SC_BUNDLE"; warm_tree "$SC_REL"
            time_cmd "scale$n-pack" "$i" scale_pack
            warm_file "$SC_BUNDLE"
            time_cmd "scale$n-verify" "$i" scale_verify
            root="$SITES/scale-$n-$i"
            [ ! -e "$root" ] || die "$root exists already"
            mkdir "$root" && "$AIRLOCK" trust add "$KEY_PREFIX.pub" --root "$root" >/dev/null \
                || die "airlock trust add into $root failed"
            warm_file "$SC_BUNDLE"
            time_cmd "scale$n-install" "$i" scale_install
            SC_RELEASE=$(json_field "$RES/scale$n-install.$i.log" release)
            [ -n "$SC_RELEASE" ] || die "could not read the installed release from $RES/scale$n-install.$i.log"
            time_cmd "scale$n-audit" "$i" scale_audit
            [ ! -e "$EXTRACT/scale-$n-$i" ] || die "$EXTRACT/scale-$n-$i exists already"
            mkdir -p "$EXTRACT/scale-$n-$i" && warm_file "$SC_BUNDLE"
            time_cmd "scale$n-tarx" "$i" scale_tarx
        done
        SC_MANIFEST[$n]=$(bundle_member "$SC_BUNDLE" airlock/manifest.json | wc -c)
        SC_FILES[$n]=$(json_field "$RES/scale$n-install.1.log" files)
        [ "${SC_FILES[$n]}" = "$((n + 2))" ] \
            || NOTES+=("WARNING: scale $n: the install reported ${SC_FILES[$n]} files, expected $((n + 2))")
        [ "$(cat "$RES"/scale$n-pack.*.log | grep -oE 'sha256:[0-9a-f]{64}' | sort -u | wc -l)" -le 1 ] \
            || NOTES+=("WARNING: scale $n: the bundle id differed between pack runs")
    done
}

# ---------------------------------------------------------------- reference throughputs

# One core: SHA-256 (openssl speed, 1 MiB blocks) and zstd -1 compression and decompression
# (zstd -b1 on up to 64 MiB of the release's prompt and code text). MB/s = 10^6 bytes per second.
run_reference() {
    log "reference: openssl speed sha256, zstd -b1 (one core)"
    REF_SHA=$(openssl speed -seconds 2 -bytes 1048576 -evp sha256 2>/dev/null \
        | awk '/^sha256 / || /^SHA256 / {v=$NF; sub(/k$/, "", v); printf "%.0f", v * 1000 / 1e6}')
    # tar dies of SIGPIPE once head has its 64 MiB (pipefail would stop the script).
    { tar -cf - -C "$REL" prompts code 2>/dev/null || true; } | head -c $((64 * MiB)) >"$RES/zstd-sample"
    zstd -b1 -e1 -i3 -T1 "$RES/zstd-sample" >"$RES/zstd-bench.log" 2>&1 || true
    # Progress lines, \r-separated; the last full one: "... 67108864 -> 21... (x3.1),  400.1 MB/s, 1200.2 MB/s"
    read -r REF_ZC REF_ZD REF_ZR < <(tr '\r' '\n' <"$RES/zstd-bench.log" | grep -E 'MB/s, *[0-9.]+ MB/s' | tail -n 1 \
        | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^MB\/s/) m[++k] = $(i - 1); r = $0; sub(/.*\(x/, "", r); sub(/\).*/, "", r);
               print (m[1] ? m[1] : "?"), (m[2] ? m[2] : "?"), (r ? r : "?")}') || true
    REF_ZBYTES=$(stat -c %s "$RES/zstd-sample")
    rm -f "$RES/zstd-sample"
}

# ---------------------------------------------------------------- main

START_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)

if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$DATASET_DESC" ] && [ -d "$REL" ]; then
    log "reusing the release in $REL"
else
    if [ -e "$REL" ]; then
        log "$REL is stale or incomplete: regenerating it"
        delete_tree "$REL"
    fi
    rm -f "$MARKER"
    generate_dataset
fi
DATA_BYTES=$(find "$REL" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%d", s}')
DATA_FILES=$(find "$REL" -type f | wc -l)
make_second_release
make_small_release

# Disk: release + 2 bundles + baseline + RUNS verify extraction dirs + RUNS install sites and
# RUNS install extraction dirs + the switch site + 2 RUNS delta sites, with a margin (the
# scale table's releases, bundles and sites are far smaller).
NEED=$(awk -v b="$DATA_BYTES" -v r="$RUNS" 'BEGIN { printf "%d", b * (5 * r + 5) * 1.1 }')
AVAIL=$(df -B1 --output=avail "$WORKDIR" | tail -n 1 | tr -d ' ')
((AVAIL > NEED)) || die "not enough space in $WORKDIR: need ~$(mib "$NEED") MiB, have $(mib "$AVAIL") MiB"

if [ ! -s "$KEY" ] || [ ! -s "$KEY_PREFIX.pub" ]; then
    log "generating the vendor key"
    rm -f "$KEY" "$KEY_PREFIX.pub"
    "$AIRLOCK" key generate --out "$KEY_PREFIX" >"$WORKDIR/keygen.log" 2>&1 \
        || { cat "$WORKDIR/keygen.log" >&2; die "airlock key generate failed"; }
fi
mkdir -p "$TRUST"
cp "$KEY_PREFIX.pub" "$TRUST/vendor.pub"

delete_tree "$EXTRACT"   # leftovers of an interrupted run
delete_tree "$SITES"
rm -rf "$RES"
mkdir -p "$RES"

log "dataset: $(mib "$DATA_BYTES") MiB in $DATA_FILES files; $RUNS runs per step"
NOTES=()
for row in "${ROWS[@]}"; do run_row "$row"; done
site_setup
run_switches
run_delta
run_scale
run_reference

# ---------------------------------------------------------------- untimed sanity checks

# The same inputs and SOURCE_DATE_EPOCH must give the same bundle id every run.
IDS=$(cat "$RES"/pack_airlock.*.log | grep -oE 'sha256:[0-9a-f]{64}' | sort -u || true)
case $(printf '%s' "$IDS" | grep -c . || true) in
    1) BUNDLE_ID=$IDS ;;
    0) BUNDLE_ID="(not printed)"; NOTES+=("airlock pack printed no bundle id") ;;
    *) BUNDLE_ID="(varies)"; NOTES+=("WARNING: the bundle id differed between pack runs: $(echo $IDS)") ;;
esac
# Baseline: the extracted tree must hash like the source tree.
sums_norm() { sed -n 's/^SHA2\{0,1\}-\{0,1\}256(\.\/\(.*\))= \([0-9a-f]\{64\}\)$/\2  \1/p' "$1" | sort; }
sums_norm "$BASE_SUMS" >"$RES/pack-baseline.norm"
for ((i = 1; i <= RUNS; i++)); do
    sums_norm "$RES/verify-baseline.$i.sums" | cmp -s - "$RES/pack-baseline.norm" \
        || die "baseline verify run $i: extracted files hash differently from the release"
done
[ "$(wc -l <"$RES/pack-baseline.norm")" -eq "$DATA_FILES" ] \
    || NOTES+=("WARNING: baseline sums cover $(wc -l <"$RES/pack-baseline.norm") of $DATA_FILES files")
# airlock: its SHA256SUMS must agree with openssl's hashes of the release files.
if tar -xOf "$BUNDLE" --occurrence=1 airlock/SHA256SUMS 2>/dev/null | sort >"$RES/airlock.sums" \
    && [ -s "$RES/airlock.sums" ]; then
    BAD=$(comm -23 "$RES/airlock.sums" "$RES/pack-baseline.norm" | wc -l)
    PAYLOAD_FILES=$(wc -l <"$RES/airlock.sums")
    ((BAD == 0)) || NOTES+=("WARNING: $BAD lines of the bundle's SHA256SUMS differ from openssl's hashes of the release")
    ((PAYLOAD_FILES >= DATA_FILES - 1)) \
        || NOTES+=("WARNING: the bundle lists $PAYLOAD_FILES payload files, the release has $DATA_FILES")
else
    PAYLOAD_FILES="?"
    NOTES+=("could not read airlock/SHA256SUMS from the bundle with GNU tar")
fi
# install: every run installed (airlock) or extracted (baseline) every payload file.
for ((i = 1; i <= RUNS; i++)); do
    n=$(find "$SITES/install-$i" -path '*/releases/*/payload/*' -type f | wc -l)
    [ "$n" = "$PAYLOAD_FILES" ] || NOTES+=("WARNING: install run $i: the site holds $n payload files, the bundle lists $PAYLOAD_FILES")
    n=$(find "$EXTRACT/i$i/payload" -type f 2>/dev/null | wc -l)
    [ "$n" = "$PAYLOAD_FILES" ] || NOTES+=("WARNING: baseline install run $i: $n payload files extracted, the bundle lists $PAYLOAD_FILES")
done
# disk: the second release shares every file but the changed one(s).
if [ "$REL2_SHARED" != "$((REL2_FILES - 1))" ]; then
    NOTES+=("WARNING: the second release shared $REL2_SHARED of $REL2_FILES files with the first (expected all but the changed one)")
fi

# ---------------------------------------------------------------- report

verdict() { if [ "$1" = 1 ]; then echo PASS; else echo FAIL; fi; }
CPU_MODEL=$(grep -m1 '^model name' /proc/cpuinfo | sed 's/^[^:]*: *//' || true)
MEM_GIB=$(awk '/^MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo)
BUNDLE_BYTES=$(stat -c %s "$BUNDLE")
BASE_BYTES=$(stat -c %s "$BASE_TZST")
AIRLOCK_VERSION=$(timeout 10 "$AIRLOCK" --version 2>/dev/null | head -n 1 || true)

echo "## Airlock benchmark"
echo
echo "- date: $START_DATE"
echo "- machine: $(nproc) cores, ${CPU_MODEL:-unknown CPU}, ${MEM_GIB} GiB RAM, $(uname -sr), $(df -T "$WORKDIR" | awk 'NR==2 {print $2}') at $WORKDIR"
echo "- airlock: $AIRLOCK${AIRLOCK_VERSION:+ ($AIRLOCK_VERSION)}"
echo "- tools: $(openssl version | awk '{print $1, $2}'), $(zstd --version | grep -oE 'v[0-9.]+' | head -1 | sed 's/^/zstd /'), $(tar --version | head -1)"
echo "- dataset: BENCH_SCALE=$SCALE, $(mib "$DATA_BYTES") MiB in $DATA_FILES files ($(mib "$WEIGHTS_BYTES") MiB incompressible weights, $INDEX_FILES index docs)"
echo "- runs: $RUNS per tool and step, alternating; medians"
echo
echo "| step | airlock (s) | baseline (s) | ratio | airlock peak RSS (MiB) | baseline peak RSS (MiB) | target |"
echo "|---|---:|---:|---:|---:|---:|---|"
for row in "${ROWS[@]}"; do
    a=$(median "$RES/${row}_airlock.times")
    b=$(median "$RES/${row}_baseline.times")
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", a/b; else print "inf" }')
    ra=$(maxval "$RES/${row}_airlock.rss"); rb=$(maxval "$RES/${row}_baseline.rss")
    ra_mib=$(mib $((ra * 1024))); rb_mib=$(mib $((rb * 1024)))
    tr=${TARGET_RATIO[$row]}
    ok_ratio=$(awk -v r="$ratio" -v t="$tr" 'BEGIN { print (r != "inf" && r+0 <= t+0) ? 1 : 0 }')
    ok_rss=$(awk -v r="$ra" -v t="$TARGET_RSS_MIB" 'BEGIN { print (r/1024 < t) ? 1 : 0 }')
    echo "| $row | $a | $b | $ratio | $ra_mib | $rb_mib | ratio <= $tr $(verdict "$ok_ratio"); RSS < $TARGET_RSS_MIB MiB $(verdict "$ok_rss") |"
done
echo
echo "| output | size (MiB) | vs baseline |"
echo "|---|---:|---:|"
echo "| airlock bundle (out.airlock) | $(mib "$BUNDLE_BYTES") | $(calc "$BUNDLE_BYTES / $BASE_BYTES") |"
echo "| baseline tar.zst (zstd -1) | $(mib "$BASE_BYTES") | 1.000 |"
echo
echo "Bundle id: $BUNDLE_ID ($PAYLOAD_FILES payload files)."
echo
echo "Per-run times (s), in run order:"
echo
for row in "${ROWS[@]}"; do
    for side in airlock baseline; do
        echo "- ${row}_${side}: $(paste -sd' ' "$RES/${row}_${side}.times")"
    done
done
for row in deltapack deltainst; do
    for side in delta full; do
        echo "- ${row}_${side}: $(paste -sd' ' "$RES/${row}_${side}.times")"
    done
done
for n in "${SCALE_NS[@]}"; do
    for c in pack verify install audit tarx; do
        echo "- scale $n $c: $(paste -sd' ' "$RES/scale$n-$c.times")"
    done
done
for n in small-agent bench-agent; do
    for k in rollback activate; do
        echo "- $k $n (ms): $(paste -sd' ' "$RES/switch-$n.$k.ms")"
    done
done
echo "- airlock --help (ms): $(paste -sd' ' "$RES/switch-help.ms")"
echo
echo "### Rollback: one pointer switch (ms)"
echo
# The two releases of each name: their sizes and file counts.
SMALL_BYTES=$(find "$SMALL/v2" -type f ! -name airlock.yaml -printf '%s\n' | awk '{s+=$1} END {printf "%d", s}')
SMALL_FILES=$(json_field "$RES/site-install-s2.json" files)
STARTUP=$(median "$RES/switch-help.ms")
iqr() { calc "$(pctl "$1" 75) - $(pctl "$1" 25)"; }
echo "| release | files | size (MiB) | rollback: median (IQR) | activate: median (IQR) | all switches: median | minus start-up: rollback / activate | switch itself: window / syscalls (strace) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
declare -A SW_WIN SW_MED
for n in small-agent bench-agent; do
    for k in rollback activate; do SW_MED[$n.$k]=$(median "$RES/switch-$n.$k.ms"); done
    if ((HAVE_STRACE)); then
        awk '{print $1}' "$RES/switch-$n.strace" >"$RES/switch-$n.window"
        awk '{print $2}' "$RES/switch-$n.strace" >"$RES/switch-$n.syscalls"
        SW_WIN[$n]=$(median "$RES/switch-$n.window")
        st="${SW_WIN[$n]} / $(median "$RES/switch-$n.syscalls")"
    else
        SW_WIN[$n]=""; st="(no strace)"
    fi
    if [ "$n" = small-agent ]; then
        label="small ($n, 10 MiB weights)"; files=$SMALL_FILES; bytes=$SMALL_BYTES
    else
        label="large ($n, BENCH_SCALE=$SCALE)"; files=$PAYLOAD_FILES; bytes=$DATA_BYTES
    fi
    echo "| $label | $files | $(mib "$bytes") | ${SW_MED[$n.rollback]} ($(iqr "$RES/switch-$n.rollback.ms")) | ${SW_MED[$n.activate]} ($(iqr "$RES/switch-$n.activate.ms")) | $(median "$RES/switch-$n.ms") | $(calc "${SW_MED[$n.rollback]} - $STARTUP") / $(calc "${SW_MED[$n.activate]} - $STARTUP") | $st |"
done
echo "| start-up reference: \`airlock --help\` | | | $STARTUP ($(iqr "$RES/switch-help.ms")) | | | 0 | |"
echo "| \`airlock status small-agent\` (reads the site) | | | $(median "$RES/switch-status.ms") ($(iqr "$RES/switch-status.ms")) | | | $(calc "$(median "$RES/switch-status.ms") - $STARTUP") | |"
echo
for k in rollback activate; do
    d=$(calc "${SW_MED[bench-agent.$k]} - ${SW_MED[small-agent.$k]}")
    noise=$(awk -v a="$(iqr "$RES/switch-small-agent.$k.ms")" -v b="$(iqr "$RES/switch-bench-agent.$k.ms")" \
        'BEGIN { m = (a > b ? a : b); printf "%.3f", (m > 1 ? m : 1) }')
    ok=$(awk -v d="$d" -v n="$noise" 'BEGIN { print ((d < 0 ? -d : d) <= n) ? 1 : 0 }')
    echo "- flat, $k: large - small = $d ms against a noise of $noise ms (the larger IQR, at least 1 ms): $(verdict "$ok")"
done
if ((HAVE_STRACE)); then
    ok_sw=$(awk -v a="${SW_WIN[small-agent]}" -v b="${SW_WIN[bench-agent]}" -v t="$TARGET_SWITCH_MS" 'BEGIN { print (a < t && b < t) ? 1 : 0 }')
    sw_basis="strace window: small ${SW_WIN[small-agent]} ms, large ${SW_WIN[bench-agent]} ms"
else
    ok_sw=$(awk -v a="${SW_MED[small-agent.rollback]}" -v b="${SW_MED[bench-agent.rollback]}" -v s="$STARTUP" -v t="$TARGET_SWITCH_MS" \
        'BEGIN { print (a - s < t && b - s < t) ? 1 : 0 }')
    sw_basis="rollback minus start-up; strace is not installed"
fi
SW_RSS=$(awk '$1=="RSS" && $2>m {m=$2} END {print m+0}' "$RES/switch.rss")
ok_rss=$(awk -v r="$SW_RSS" -v t="$TARGET_RSS_MIB" 'BEGIN { print (r/1024 < t) ? 1 : 0 }')
echo "- the switch itself < $TARGET_SWITCH_MS ms ($sw_basis): $(verdict "$ok_sw")"
echo "- peak RSS of a switch $(mib $((SW_RSS * 1024))) MiB < $TARGET_RSS_MIB MiB: $(verdict "$ok_rss")"
echo
echo "### Disk: a second release that shares its weights with the first"
echo
ADDED_K=$((DISK_ROOT_2 - DISK_ROOT_1))
CHANGED_K=$(awk -v b="$CHANGED_BYTES" 'BEGIN { printf "%d", (b + 1023) / 1024 }')
ALLOW_K=$(awk -v c="$CHANGED_BYTES" -v d="$DATA_BYTES" -v p="$TARGET_DISK_PCT" 'BEGIN { printf "%d", (c + d * p / 100) / 1024 }')
OVER_K=$((ADDED_K - CHANGED_K))
ok_disk=$(( ADDED_K <= ALLOW_K ? 1 : 0 ))
echo "| site ($SWITCH_ROOT) | KiB |"
echo "|---|---:|"
echo "| empty (trust store) | $DISK_ROOT_0 |"
echo "| after the first release (bench-agent 1.0.0, $(mib "$DATA_BYTES") MiB) | $DISK_ROOT_1 |"
echo "| after the second release (1.0.1: $CHANGED_FILES changed) | $DISK_ROOT_2 |"
echo "| **added by the second release** | **$ADDED_K** |"
echo "| of which new content objects | $((DISK_OBJ_2 - DISK_OBJ_1)) |"
echo "| of which its release folder (manifest, signatures, folders; payload hardlinked) | $DISK_REL2_OWN |"
echo "| changed bytes ($CHANGED_BYTES B) | $CHANGED_K |"
echo "| added beyond the changed bytes | $OVER_K ($(calc "$OVER_K * 1024 * 100 / $DATA_BYTES")% of the release) |"
echo
echo "- added <= changed + $TARGET_DISK_PCT% of the release ($ALLOW_K KiB): $(verdict "$ok_disk")"
echo "- airlock install reported: $REL2_SHARED of $REL2_FILES files shared with the first release, $REL2_WRITTEN bytes written"
echo
echo "### Delta: the second release as a delta bundle against out.airlock"
echo
DELTA_ALLOW=$((DELTA_CHANGED_ZST + DELTA_MANIFEST_BYTES + TARGET_DELTA_SLACK))
ok_delta=$(( DELTA_BYTES <= DELTA_ALLOW ? 1 : 0 ))
echo "| | bytes | MiB |"
echo "|---|---:|---:|"
echo "| full bundle (out-v2.airlock) | $FULL2_BYTES | $(mib "$FULL2_BYTES") |"
echo "| **delta bundle (out-v2-delta.airlock)** | **$DELTA_BYTES** | $(mib "$DELTA_BYTES") |"
echo "| changed files ($DELTA_CHANGED_FILES), raw | $DELTA_CHANGED_RAW | $(mib "$DELTA_CHANGED_RAW") |"
echo "| changed files, zstd -1 -c each | $DELTA_CHANGED_ZST | $(mib "$DELTA_CHANGED_ZST") |"
echo "| manifest (airlock/manifest.json, uncompressed) | $DELTA_MANIFEST_BYTES | $(mib "$DELTA_MANIFEST_BYTES") |"
echo "| allowance: changed (zstd -1) + manifest + $((TARGET_DELTA_SLACK / 1024)) KiB | $DELTA_ALLOW | $(mib "$DELTA_ALLOW") |"
echo
echo "- delta <= allowance: $(verdict "$ok_delta") (the delta is $(calc "$DELTA_BYTES * 100 / $DELTA_ALLOW")% of the allowance, $(calc "$DELTA_BYTES * 100 / $FULL2_BYTES")% of the full bundle)"
echo "- the delta's members, uncompressed bytes / each alone through zstd -1 (the bundle compresses them as one stream):" \
    "$(awk '{printf "%s%s %s / %s", (NR > 1 ? "; " : ""), $1, $2, $3}' "$RES/delta-members.zst")"
echo
echo "| step | delta (s) | full (s) | delta / full | delta peak RSS (MiB) | full peak RSS (MiB) | delta CPU (s) | full CPU (s) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for row in deltapack deltainst; do
    a=$(median "$RES/${row}_delta.times"); b=$(median "$RES/${row}_full.times")
    case $row in
        deltapack) label="pack the second release (--base out.airlock / full)" ;;
        deltainst) label="install it into a site holding out.airlock" ;;
    esac
    echo "| $label | $a | $b | $(calc "$a / $b") | $(mib $(($(maxval "$RES/${row}_delta.rss") * 1024))) | $(mib $(($(maxval "$RES/${row}_full.rss") * 1024))) | $(cpu_median "${row}_delta") | $(cpu_median "${row}_full") |"
done
echo
echo "- install reported: from the delta $DELTA_INST_SHARED files shared, $DELTA_INST_WRITTEN bytes written; from the full bundle $FULL_INST_SHARED files shared, $FULL_INST_WRITTEN bytes written"
echo
echo "### Scale: time per file and memory from ${SCALE_NS[0]} to ${SCALE_NS[-1]} files"
echo
SC_SMALL=${SCALE_NS[0]}; SC_MID=${SCALE_NS[1]}; SC_LARGE=${SCALE_NS[-1]}
echo "| files | manifest (KiB) | command | runs | median (s) | µs per file | µs per file minus start-up | CPU user+sys (s) | CPU / wall | peak RSS (MiB) | peak RSS minus manifest (MiB) |"
echo "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
declare -A SC_T SC_R
fmt1() { awk "BEGIN { printf \"%.1f\", $1 }"; }
for n in "${SCALE_NS[@]}"; do
    for c in pack verify install audit tarx; do
        t=$(median "$RES/scale$n-$c.times"); SC_T[$n.$c]=$t
        r=$(maxval "$RES/scale$n-$c.rss"); SC_R[$n.$c]=$r
        cpu=$(cpu_median "scale$n-$c")
        if [ "$c" = tarx ]; then
            label="(reference: zstd -dc \| tar -x, sync)"; ms="$(fmt1 "$t * 1e6 / $n")"; over=""
        else
            label=$c; ms="$(fmt1 "($t - $STARTUP / 1000) * 1e6 / $n")"
            over=$(fmt1 "($r * 1024 - ${SC_MANIFEST[$n]}) / 1048576")
        fi
        echo "| $n | $(awk -v b="${SC_MANIFEST[$n]}" 'BEGIN {printf "%.0f", b/1024}') | $label | ${SC_RUNS[$n]} | $t | $(fmt1 "$t * 1e6 / $n") | $ms | $cpu | $(calc "$cpu / $t") | $(mib $((r * 1024))) | $over |"
    done
done
echo
echo "Start-up (\`airlock --help\`, median): $STARTUP ms. The tar row (not airlock: no verdict) is the"
echo "file system's own cost of creating the same files in the same run: the floor under install."
echo
for c in pack verify install audit; do
    small=${SC_T[$SC_SMALL.$c]}; basis=$SC_SMALL
    # When start-up is more than half the smallest count's time, the middle count is the basis.
    if awk -v t="$small" -v s="$STARTUP" 'BEGIN { exit !(s / 1000 > t / 2) }'; then basis=$SC_MID; fi
    pb=$(fmt1 "${SC_T[$basis.$c]} * 1e6 / $basis"); pl=$(fmt1 "${SC_T[$SC_LARGE.$c]} * 1e6 / $SC_LARGE")
    r=$(awk -v a="${SC_T[$SC_LARGE.$c]}" -v b="${SC_T[$basis.$c]}" -v na="$SC_LARGE" -v nb="$basis" \
        'BEGIN { printf "%.2f", (a / na) / (b / nb) }')
    ok=$(awk -v r="$r" -v t="$TARGET_FLAT" 'BEGIN { print (r <= t) ? 1 : 0 }')
    why=""; [ "$basis" = "$SC_SMALL" ] || why=" (start-up is more than half of the $SC_SMALL-file time: $basis files is the basis)"
    extra=""; [ "$basis" = "$SC_SMALL" ] && extra="; vs $SC_MID files: $(awk -v a="${SC_T[$SC_LARGE.$c]}" \
        -v b="${SC_T[$SC_MID.$c]}" -v na="$SC_LARGE" -v nb="$SC_MID" 'BEGIN { printf "%.2f", (a / na) / (b / nb) }')x"
    echo "- flat, $c: $pl µs/file at $SC_LARGE files vs $pb at $basis files$why = ${r}x$extra, <= ${TARGET_FLAT}x: $(verdict "$ok")"
done
for c in pack verify install audit; do
    over=$(fmt1 "(${SC_R[$SC_LARGE.$c]} * 1024 - ${SC_MANIFEST[$SC_LARGE]}) / 1048576")
    ok=$(awk -v o="$over" -v t="$TARGET_SCALE_RSS_MIB" 'BEGIN { print (o < t) ? 1 : 0 }')
    echo "- memory, $c: peak RSS $(mib $((${SC_R[$SC_LARGE.$c]} * 1024))) MiB at $SC_LARGE files minus the manifest $(mib "${SC_MANIFEST[$SC_LARGE]}") MiB = $over MiB < $TARGET_SCALE_RSS_MIB MiB: $(verdict "$ok")"
done
echo
echo "### Reference throughputs (one core)"
echo
echo "| | MB/s |"
echo "|---|---:|"
echo "| SHA-256 (openssl speed -evp sha256, 1 MiB blocks) | ${REF_SHA:-?} |"
echo "| zstd -1 compress (zstd -b1 -T1, $(mib "$REF_ZBYTES") MiB of the release's prompt and code text, ratio x${REF_ZR:-?}) | ${REF_ZC:-?} |"
echo "| zstd -1 decompress (same) | ${REF_ZD:-?} |"
echo
echo "Throughput of the main table's airlock steps (release bytes / median time) and their CPU (user + sys, median):"
echo
for row in "${ROWS[@]}"; do
    a=$(median "$RES/${row}_airlock.times")
    echo "- $row: $(awk -v b="$DATA_BYTES" -v t="$a" 'BEGIN {printf "%.0f", b / t / 1e6}') MB/s; CPU airlock $(cpu_median "${row}_airlock") s, baseline $(cpu_median "${row}_baseline") s (wall $a / $(median "$RES/${row}_baseline.times") s)"
done
echo
echo "Method: wall time of each step (whole pipeline for the baseline); each timed run follows"
echo "an untimed read of its inputs and a sync; airlock and baseline alternate (odd runs airlock"
echo "first, even runs baseline first). Peak RSS is GNU time's max RSS of the step's largest"
echo "process (pipeline stages and openssl measured separately), maximum over the runs."
echo "Baseline pack = openssl dgst -sha256 over every file (xargs), then tar | zstd -1 -T0 to a"
echo "file; baseline verify = zstd -dc | tar -x into a new dir per run, then openssl dgst -sha256"
echo "over every extracted file (the comparison of the sums is not timed). Install: airlock"
echo "install of out.airlock into a new site root per run (trust store added untimed), timed"
echo "alone: it makes the release durable itself (syncfs before the rename); baseline install ="
echo "zstd -dc out.airlock | tar -x into a new dir per run, then sync (the same durability, no"
echo "checks). Extraction dirs and site roots are deleted after the last run, not between runs."
echo "Rollback: one site holds two releases of small-agent and of bench-agent, each name's"
echo "activation stack [first, second]; a switch is \`airlock rollback NAME\` or \`airlock activate"
echo "NAME SECOND\`, alternating, $SWITCHES per name, interleaved with the start-up reference"
echo "(\`airlock --help\`) and \`airlock status\`, each after a sync, one warm-up round trip untimed."
echo "\"Minus start-up\" = median switch - median \`airlock --help\`. The switch itself: strace -f"
echo "-ttt -T of 6 more switches per name; window = from the start of symlink(2) of the new pointer"
echo "to the end of the fsync(2) of the name's folder after the rename(2) (includes strace's"
echo "overhead), syscalls = the time of those three calls; medians. Disk: du -sk of the site root"
echo "(hardlinks counted once) before and after installing the second release of bench-agent, whose"
echo "folder hardlinks the first one's files except airlock.yaml and the changed prompt file."
echo "Delta: \`airlock pack --base out.airlock\` of the second release against \`airlock pack\` of it"
echo "(alternating, $RUNS runs each, both after reading the release once); install: into a new site"
echo "per run that holds out.airlock (installed untimed), the delta and the full bundle alternating."
echo "Scale: per file count, run by run: pack, verify, install into a new site root, audit of that"
echo "release; each after an untimed read of its input (audit: the files just installed) and a sync."
echo "After each audit, the reference: zstd -dc of the bundle | tar -x into a new dir, then sync."
echo "µs per file = median / files; minus start-up subtracts the median \`airlock --help\`. CPU ="
echo "GNU time's user + sys of the airlock process (all processes for the baseline), median over runs."
if ((SCALE_RUNS_LARGEST != RUNS)); then
    echo "The largest file count ran $SCALE_RUNS_LARGEST time(s) per command (BENCH_SCALE_RUNS_LARGEST), the others $RUNS."
fi
if ((SETTLE_WAITED > 0)); then
    echo "Waited ${SETTLE_WAITED} s before the verify rows: a previous run had deleted a tree recently."
fi
if ((${#NOTES[@]})); then
    echo
    for n in "${NOTES[@]}"; do echo "- $n"; done
fi
log "done; details in $RES"
