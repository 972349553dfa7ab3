#!/usr/bin/env bash
# Installs Airlock on an offline host from the unpacked distribution it sits in.
#
#   ./install.sh [--prefix DIR] [--root DIR] [--trust KEY.pub]... [--no-root]
#
#   --prefix DIR     where the binary and docs go (default /usr/local): DIR/bin/airlock,
#                    DIR/share/doc/airlock/
#   --root DIR       the site root to create (default /var/lib/airlock)
#   --trust KEY.pub  a vendor key to trust at the new site (repeatable); check its key id
#                    against the one the vendor published: `bin/airlock key id KEY.pub`
#   --no-root        install the binary only
#
# It checks the distribution's SHA256SUMS, checks that the shared libraries the binary needs
# (libarchive, OpenSSL 3) are present, installs, and creates the site root with safe modes.
# It needs nothing from the network.
set -euo pipefail
export LC_ALL=C

prefix=/usr/local
root=/var/lib/airlock
make_root=1
trust=()
need() { [[ $# -ge 2 && -n $2 ]] || { echo "error: $1 needs a value; see $0 --help" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --prefix) need "$@"; prefix=$(realpath -m -- "$2"); shift 2 ;;
        --root) need "$@"; root=$(realpath -m -- "$2"); shift 2 ;;
        --trust) need "$@"; trust+=("$(realpath -e -- "$2")") || { echo "error: no such key file $2" >&2; exit 2; }; shift 2 ;;
        --no-root) make_root=0; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "error: unknown option $1; see $0 --help" >&2; exit 2 ;;
    esac
done

dist=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$dist"

echo "==> checking the distribution's files"
if ! sha256sum --quiet --strict -c SHA256SUMS; then
    echo "error: files of this distribution do not match SHA256SUMS; copy the tarball again and check its .sha256 first" >&2
    exit 1
fi

echo "==> checking the shared libraries airlock needs"
libs=$(ldd bin/airlock)
missing=$(awk '/not found/ {print $1}' <<<"$libs")
if [[ -n $missing ]]; then
    echo "error: missing shared libraries: $missing" >&2
    echo "       on Debian/Ubuntu install the packages libarchive13 and libssl3 (bring their .deb files across and use 'dpkg -i')" >&2
    exit 1
fi
for lib in libarchive.so libssl.so libcrypto.so; do
    grep -q "$lib" <<<"$libs" || { echo "error: bin/airlock does not link $lib; this distribution is broken" >&2; exit 1; }
done
bin/airlock --version > /dev/null

echo "==> installing into $prefix"
install -d -m 0755 "$prefix/bin" "$prefix/share/doc/airlock"
install -m 0755 bin/airlock "$prefix/bin/airlock"
install -m 0755 bin/airlock-audit-bundle "$prefix/bin/airlock-audit-bundle"
install -m 0644 README.md docs/*.md "$prefix/share/doc/airlock/"

if [[ $make_root -eq 1 ]]; then
    echo "==> creating the site root $root"
    umask 022
    install -d -m 0755 "$root" "$root/.trust" "$root/.objects" "$root/.staging"
    for k in "${trust[@]}"; do
        "$prefix/bin/airlock" trust add "$k" --root "$root"
    done
    if [[ $(id -u) -eq 0 ]]; then chown root:root "$root"; fi
    chmod 0755 "$root"
fi

echo "installed: $("$prefix/bin/airlock" --version) at $prefix/bin/airlock"
[[ $make_root -eq 1 ]] && echo "site root: $root (trust store $root/.trust)"
exit 0
