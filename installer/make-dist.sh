#!/usr/bin/env bash
# Builds the offline distribution of Airlock from a built binary:
#   installer/make-dist.sh BINARY OUTDIR
# writes OUTDIR/airlock-<version>-linux-<arch>/ (bin/airlock, install.sh, docs, SHA256SUMS) and
# OUTDIR/airlock-<version>-linux-<arch>.tar.gz with its .sha256 beside it. `make dist` runs it
# on the release binary built with the static Swift runtime.
set -euo pipefail
export LC_ALL=C

[[ $# -eq 2 ]] || { echo "usage: $0 BINARY OUTDIR" >&2; exit 2; }
bin=$(realpath -e -- "$1")
out=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)

# A distribution must run where Swift is not installed: the Swift runtime is linked in
# statically (swift build --static-swift-stdlib, as `make dist` does).
# (ldd's output is captured first: `grep -q` would close the pipe early, and with pipefail the
# SIGPIPE would read as "not linked".)
libs=$(ldd "$bin")
if grep -qE 'libswiftCore|libFoundation' <<<"$libs"; then
    if [[ ${AIRLOCK_DIST_ALLOW_DYNAMIC:-} != 1 ]]; then
        echo "error: $bin links the Swift runtime dynamically; build it with 'swift build -c release --static-swift-stdlib' (make dist does)" >&2
        exit 1
    fi
    echo "warning: $bin links the Swift runtime dynamically (AIRLOCK_DIST_ALLOW_DYNAMIC=1): for tests only" >&2
fi
version=$("$bin" --version)
arch=$(uname -m)
name="airlock-$version-linux-$arch"
mkdir -p "$out"
out=$(realpath -e -- "$out")
stage="$out/$name"
rm -rf -- "$stage"
mkdir -p "$stage/bin" "$stage/docs"

install -m 0755 "$bin" "$stage/bin/airlock"
# Debug information and symbols stay on the build machine (80 MB -> 60 MB; most of the rest
# is the Swift runtime and Foundation's Unicode data, linked in statically).
if command -v strip >/dev/null; then strip "$stage/bin/airlock"; fi
install -m 0755 "$here/install.sh" "$stage/install.sh"
install -m 0644 "$here/README.md" "$stage/README-installer.md"
install -m 0644 "$top/README.md" "$stage/README.md"
for f in "$top"/docs/*.md; do install -m 0644 "$f" "$stage/docs/"; done
install -m 0755 "$top/scripts/audit-bundle.sh" "$stage/bin/airlock-audit-bundle"

(cd "$stage" && find . -type f ! -name SHA256SUMS -printf '%P\n' | sort | xargs -d '\n' sha256sum > SHA256SUMS)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@${SOURCE_DATE_EPOCH:-0}" \
    -C "$out" -czf "$out/$name.tar.gz" "$name"
(cd "$out" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "$out/$name.tar.gz"
