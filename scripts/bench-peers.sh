#!/usr/bin/env bash
# Airlock against the peers a site would pick, on two shapes of release, side by side in one run
# (docs/benchmarks.md, "Against the peers"):
#
#   scripts/bench-peers.sh AIRLOCK AIRLOCK_BENCH
#
# The releases come from airlock-bench's seeded generator (`--write-release`): "many", 300 MiB
# of weights beside 240 code files, 60 prompts and 20,000 index documents; "large", the same
# with 1,536 MiB of weights. Version 2 of each rewrites 104 index documents (about 0.26 MB);
# v2-append instead appends one line to an 874 KB prompt file.
#
# Rows, each side timed PEERS_RUNS times, the order rotating run by run, inputs read once and
# `sync` before every timed run, every output in a fresh folder:
#   pack     airlock pack | shell: openssl dgst of every file, tar | zstd -1 -T0, RSA signature
#            over the sums | RAUC 1.8: `rauc bundle`, plain format, squashfs with zstd level 1 |
#            OSTree: commit into a new bare repository (unsigned)
#   verify   airlock verify | shell: openssl dgst of every file of an extracted tree | RAUC:
#            `rauc info` with the keyring (one signature over the whole bundle) | OSTree: fsck
#   install  airlock install into a new site root | shell: zstd -dc | tar -x, then sync |
#            RAUC: `rauc extract`, then sync | OSTree: `pull-local --untrusted` from the packed
#            repository into a new one, checkout (hard links into it), then sync
#   delta    sizes, once: airlock pack --base | OSTree static delta | the changed files alone,
#            tar | zstd -1; for v2 (104 index documents rewritten) and v2-append (one line
#            appended to a prompt file)
# and a control: the shell pack's first run repeated at the very end (the machine's drift).
#
# Targets (issue 14): pack / shell <= 0.6; verify / shell <= 0.9; install / shell <= 1.0 (many)
# and <= 0.8 (large); delta / OSTree's <= 1.0; airlock's peak RSS < 64 MiB. A ratio is judged on
# the runs paired by number: PASS when every run's is within the target, FAIL when none is,
# otherwise not established.
#
# Settings, from the environment: PEERS_RUNS (5), PEERS_SHAPES ("many large"), PEERS_WORK
# (bench-work/peers; the releases there are reused), PEERS_FRESH_FS (1 as root, else 0; 1: each install run
# into a new loop-mounted ext4, see below). Exit status: 0 when every target passes,
# 1 when one does not, 2 when a command failed.
set -euo pipefail
export LC_ALL=C

if [ $# -ne 2 ]; then
  echo "usage: $0 AIRLOCK AIRLOCK_BENCH" >&2
  exit 64
fi
AIRLOCK=$(realpath -e -- "$1")
GENERATOR=$(realpath -e -- "$2")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${PEERS_RUNS:-5}
SHAPES=${PEERS_SHAPES:-many large}
WORK=${PEERS_WORK:-$ROOT/bench-work/peers}
fail() { echo "error: $*" >&2; exit 2; }
for tool in ostree rauc mksquashfs zstd openssl tar; do
  command -v "$tool" >/dev/null || fail "$tool is missing: make bench-peers installs ostree, rauc and squashfs-tools"
done
mkdir -p "$WORK"
WORK=$(realpath -e -- "$WORK")
OUT=$WORK/out
if mountpoint -q "$OUT/mnt" 2>/dev/null; then umount "$OUT/mnt" || fail "$OUT/mnt is still mounted from an earlier run"; fi
rm -rf "$OUT"
mkdir -p "$OUT"
RESULTS=$WORK/results.tsv
: > "$RESULTS"
# PEERS_FRESH_FS=1: every install run writes into a new ext4 file system on a loop device (made
# and mounted untimed, root only), so that no side creates its files where an earlier run's
# tree was just deleted (on this machine's ext4, file creation slows for minutes after that).
# As root with losetup, fresh file systems by default; PEERS_FRESH_FS=0 turns them off.
default_fresh=0
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null && command -v mkfs.ext4 >/dev/null; then default_fresh=1; fi
FRESH_FS=${PEERS_FRESH_FS:-$default_fresh}
fresh_fs() { # RELEASE: a new ext4 three times the release's size at $OUT/mnt
  drop_fs
  # A whole number of 4 KiB blocks: a loop device with direct I/O ignores a partial last sector.
  truncate -s "$(( ($(du -sb --apparent-size "$1" | cut -f1) * 3 + (256 << 20)) / 4096 * 4096 ))" "$OUT/fs.img"
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$OUT/fs.img" || fail "mkfs.ext4 failed"
  mkdir -p "$OUT/mnt"
  # Direct I/O on the loop device: writes reach the image file without being cached twice (in
  # the loop file system's page cache and again in the image's), as on a real disk.
  LOOP=$(losetup --direct-io=on -f --show "$OUT/fs.img") || fail "cannot set up a loop device (PEERS_FRESH_FS=1 needs root and /dev/loop*)"
  mount "$LOOP" "$OUT/mnt" || fail "cannot mount $LOOP"
}
LOOP=
drop_fs() {
  if mountpoint -q "$OUT/mnt" 2>/dev/null; then umount "$OUT/mnt" || fail "cannot unmount $OUT/mnt"; fi
  if [ -n "$LOOP" ]; then losetup -d "$LOOP" 2>/dev/null || true; LOOP=; fi
  rm -f "$OUT/fs.img"
}
trap 'drop_fs 2>/dev/null || true' EXIT

# Keys: airlock's vendor key, an RSA key and certificate for the shell pipeline and RAUC.
cd "$WORK"
[ -e vendor.key ] || "$AIRLOCK" key generate --out vendor >/dev/null 2>&1
[ -d trust ] || { mkdir trust && cp vendor.pub trust/; }
if [ ! -e rauc.pem ]; then
  openssl req -x509 -newkey rsa:3072 -nodes -keyout rauc.key -out rauc.pem -days 3650 -subj /CN=airlock-bench-peers >/dev/null 2>&1
fi

warm() { for p in "$@"; do if [ -d "$p" ]; then find "$p" -type f -print0 | xargs -0 -r cat > /dev/null; else cat "$p" > /dev/null; fi; done; }

# timed SHAPE ROW SIDE RUN COMMAND: runs COMMAND under bash, after sync; appends a line to RESULTS.
timed() {
  local shape=$1 row=$2 side=$3 run=$4 cmd=$5
  sync
  /usr/bin/time -f '%e %M %U %S' -o "$OUT/time" bash -c "$cmd" > "$OUT/log" 2>&1 || { cat "$OUT/log" >&2; fail "$shape $row $side run $run: $cmd"; }
  read -r secs kib user sys < "$OUT/time"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$shape" "$row" "$side" "$run" "$secs" "$kib" "$(python3 -c "print(f'{$user + $sys:.2f}')")" >> "$RESULTS"
}

# rotate RUN SIDES...: the sides in the order of this run (A B C D, B C D A, ...).
rotate() { local n=$1; shift; local k=$(( (n - 1) % $# )); local a=("$@"); echo "${a[@]:k}" "${a[@]:0:k}"; }

shell_pack() { # RELEASE OUTDIR
  echo "(cd '$1' && find . -type f -print0 | sort -z | xargs -0 openssl dgst -sha256 -r > '$2/SHA256SUMS') \
    && openssl dgst -sha256 -sign '$WORK/rauc.key' -out '$2/SHA256SUMS.sig' '$2/SHA256SUMS' \
    && tar -cf - -C '$1' . | zstd -1 -T0 -q -o '$2/release.tar.zst'"
}

for shape in $SHAPES; do
  data=$WORK/$shape
  "$GENERATOR" "$AIRLOCK" "$data" --write-release "$shape" >/dev/null 2>"$OUT/gen.log" || { cat "$OUT/gen.log" >&2; fail "airlock-bench --write-release $shape $data"; }
  v1=$data/v1
  v2=$data/v2
  echo "shape $shape: $(du -sh --apparent-size "$v1" | cut -f1), $(find "$v1" -type f | wc -l) files" >&2

  # RAUC's input: the release as hard links beside a manifest (RAUC wants one image at least:
  # the small model config, so that no byte is hashed twice).
  rin=$OUT/rauc-in-$shape
  rm -rf "$rin"; mkdir -p "$rin"; cp -al "$v1" "$rin/release"; cp "$v1/model/config.json" "$rin/config.img"
  printf '[update]\ncompatible=airlock-bench\nversion=1.0.0\n\n[bundle]\nformat=plain\n\n[image.appfs]\nfilename=config.img\n' > "$rin/manifest.raucm"
  # Pack's untimed products for the other rows: one of each, kept.
  keep=$OUT/keep-$shape; mkdir -p "$keep"

  # --- pack ---
  for run in $(seq "$RUNS"); do
    for side in $(rotate "$run" airlock shell rauc ostree); do
      d=$OUT/pack-$side; rm -rf "$d"; mkdir -p "$d"
      [ "$side" = ostree ] && ostree --repo="$d/repo" init --mode=bare
      warm "$v1"
      case $side in
        airlock) timed "$shape" pack airlock "$run" "exec '$AIRLOCK' pack '$v1' --key '$WORK/vendor.key' --out '$d/a.airlock'" ;;
        shell) timed "$shape" pack shell "$run" "$(shell_pack "$v1" "$d")" ;;
        rauc) timed "$shape" pack rauc "$run" "rauc bundle --cert='$WORK/rauc.pem' --key='$WORK/rauc.key' --mksquashfs-args='-comp zstd -Xcompression-level 1' '$rin' '$d/b.raucb'" ;;
        ostree) timed "$shape" pack ostree "$run" "ostree --repo='$d/repo' commit --branch=bench/v1 --tree=dir='$v1' >/dev/null" ;;
      esac
      if (( run == RUNS )); then rm -rf "$keep/$side"; mv "$d" "$keep/$side"; else rm -rf "$d"; fi
    done
  done
  [ "$shape" = "${SHAPES%% *}" ] && first_shell=$(awk -F'\t' -v s="$shape" '$1 == s && $2 == "pack" && $3 == "shell" {print $5; exit}' "$RESULTS")

  # --- verify ---
  x=$OUT/extracted-$shape; rm -rf "$x"; mkdir -p "$x"; zstd -dc "$keep/shell/release.tar.zst" | tar -xf - -C "$x"
  for run in $(seq "$RUNS"); do
    for side in $(rotate "$run" airlock shell rauc ostree); do
      case $side in
        airlock) warm "$keep/airlock/a.airlock"; timed "$shape" verify airlock "$run" "exec '$AIRLOCK' verify '$keep/airlock/a.airlock' --trust '$WORK/trust' >/dev/null" ;;
        shell) warm "$x"; timed "$shape" verify shell "$run" "cd '$x' && find . -type f -print0 | sort -z | xargs -0 openssl dgst -sha256 -r > '$OUT/verify.sums' && cmp -s '$OUT/verify.sums' '$keep/shell/SHA256SUMS'" ;;
        rauc) warm "$keep/rauc/b.raucb"; timed "$shape" verify rauc "$run" "rauc info --keyring='$WORK/rauc.pem' '$keep/rauc/b.raucb' >/dev/null" ;;
        ostree) warm "$keep/ostree/repo"; timed "$shape" verify ostree "$run" "ostree --repo='$keep/ostree/repo' fsck >/dev/null" ;;
      esac
    done
  done
  rm -rf "$x"

  # --- install ---
  for run in $(seq "$RUNS"); do
    for side in $(rotate "$run" airlock shell rauc ostree); do
      d=$OUT/install-$side; rm -rf "$d"
      if [ "$FRESH_FS" = 1 ]; then fresh_fs "$v1"; d=$OUT/mnt/install; fi
      case $side in
        airlock)
          "$AIRLOCK" trust add "$WORK/vendor.pub" --root "$d" >/dev/null
          warm "$keep/airlock/a.airlock"
          timed "$shape" install airlock "$run" "exec '$AIRLOCK' install '$keep/airlock/a.airlock' --root '$d' >/dev/null" ;;
        shell)
          mkdir -p "$d"; warm "$keep/shell/release.tar.zst"
          timed "$shape" install shell "$run" "zstd -dc '$keep/shell/release.tar.zst' | tar -xf - -C '$d' && sync" ;;
        rauc)
          warm "$keep/rauc/b.raucb"
          timed "$shape" install rauc "$run" "rauc extract --keyring='$WORK/rauc.pem' '$keep/rauc/b.raucb' '$d' >/dev/null && sync" ;;
        ostree)
          # As a site would take it across the gap: the repository on the medium pulled into the
          # site's own (checksums verified), then checked out as hard links into it.
          ostree --repo="$d.repo" init --mode=bare; warm "$keep/ostree/repo"
          timed "$shape" install ostree "$run" "ostree --repo='$d.repo' pull-local --untrusted '$keep/ostree/repo' bench/v1 >/dev/null && ostree --repo='$d.repo' checkout bench/v1 '$d' && sync"
          rm -rf "$d.repo" ;;
      esac
      if [ "$FRESH_FS" = 1 ]; then drop_fs; else rm -rf "$d"; fi
    done
  done

  # --- delta sizes (once, untimed): v2 (104 index documents rewritten, issue 14's change) and
  # v2-append (one line appended to an 874 KB prompt), each against v1 ---
  for change in v2 v2-append; do
    row=delta; [ "$change" = v2 ] || row=delta-append
    "$AIRLOCK" pack "$data/$change" --key "$WORK/vendor.key" --base "$keep/airlock/a.airlock" --out "$OUT/$row-$shape.airlock" >/dev/null 2>&1 || fail "airlock pack --base ($change)"
    ostree --repo="$keep/ostree/repo" commit --branch="bench/$change" --tree=dir="$data/$change" >/dev/null
    # One file: the superblock with its parts inlined (--filename alone writes the parts beside it).
    rm -f "$OUT/ostree-$row"
    ostree --repo="$keep/ostree/repo" static-delta generate --inline --from=bench/v1 --to="bench/$change" --filename="$OUT/ostree-$row" >/dev/null
    changed=$(cd "$data/$change" && find . -type f -links 1 -print | sort)
    (cd "$data/$change" && printf '%s\n' $changed | tar -cf - -T - | zstd -1 -q -c > "$OUT/changed-$row-$shape.tar.zst")
    printf '%s\t%s\tairlock\t1\t%s\t0\t0\n' "$shape" "$row" "$(stat -c %s "$OUT/$row-$shape.airlock")" >> "$RESULTS"
    printf '%s\t%s\tostree\t1\t%s\t0\t0\n' "$shape" "$row" "$(stat -c %s "$OUT/ostree-$row")" >> "$RESULTS"
    printf '%s\t%s\tchanged-files\t1\t%s\t0\t0\n' "$shape" "$row" "$(stat -c %s "$OUT/changed-$row-$shape.tar.zst")" >> "$RESULTS"
    rm -f "$OUT/ostree-$row"
  done
  rm -rf "$keep" "$rin"
done

# --- control: the shell pack of the first shape again, at the end ---
first=${SHAPES%% *}
d=$OUT/control; rm -rf "$d"; mkdir -p "$d"; warm "$WORK/$first/v1"
timed "$first" control shell 1 "$(shell_pack "$WORK/$first/v1" "$d")"
rm -rf "$d"

python3 "$ROOT/scripts/bench-peers-report.py" "$RESULTS" "$RUNS" "${first_shell:-0}" \
  "$(date -u +%FT%TZ)" "$("$AIRLOCK" --version)" "$(rauc --version | head -1)" "$(ostree --version | awk '/Version/ {print $2}' | tr -d "'")"
