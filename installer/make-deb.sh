#!/usr/bin/env bash
# Builds Airlock's Debian package from a built binary:
#   installer/make-deb.sh BINARY GENERATE_MANUAL OUTDIR
# writes OUTDIR/airlock_<version>_<arch>.deb and prints its path. BINARY is the release binary
# with the Swift runtime linked in statically (`make deb` builds it, as `make dist` does);
# GENERATE_MANUAL is swift-argument-parser's man page generator (`make deb` builds it too).
#
# The package holds /usr/bin/airlock, the auditor's script as /usr/bin/airlock-audit-bundle, man
# pages and bash/zsh/fish completions generated from the argument parser, the systemd units
# (airlock-serve@.service, airlock-gc.service and .timer; none is enabled by installing; running
# instances restart on upgrade and stop on removal) and the docs. `Depends:` comes from dpkg-shlibdeps (libarchive13, libssl3, zlib1g, libc6, ...). File
# dates are SOURCE_DATE_EPOCH (default: the last commit's date), so a rebuild of the same
# binary gives the same .deb.
set -euo pipefail
export LC_ALL=C
umask 022

[[ $# -eq 3 ]] || { echo "usage: $0 BINARY GENERATE_MANUAL OUTDIR" >&2; exit 2; }
bin=$(realpath -e -- "$1") || { echo "error: no binary $1; build it first (make release)" >&2; exit 2; }
genman=$(realpath -e -- "$2") || { echo "error: no man page generator $2; make deb builds it" >&2; exit 2; }
out=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)

for tool in dpkg-deb dpkg-shlibdeps chrpath strip gzip; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing; install dpkg-dev, chrpath and binutils (make deb does)" >&2; exit 1; }
done

libs=$(ldd "$bin")
if grep -qE 'libswiftCore|libFoundation' <<<"$libs"; then
    echo "error: $bin links the Swift runtime dynamically; build it with 'swift build -c release --static-swift-stdlib' (make deb does)" >&2
    exit 1
fi

version=$("$bin" --version)
[[ $version =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || { echo "error: '$version' is not a Debian version" >&2; exit 1; }
arch=$(dpkg --print-architecture)
if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
    SOURCE_DATE_EPOCH=$(git -C "$top" log -1 --format=%ct 2>/dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH

mkdir -p "$out"
out=$(realpath -e -- "$out")
work=$(mktemp -d "$out/.deb-build.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
pkg=$work/airlock
doc=$pkg/usr/share/doc/airlock
install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/share/man/man1" "$doc" "$pkg/lib/systemd/system" \
    "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions" "$pkg/usr/share/fish/vendor_completions.d"

# The binary: stripped, and without the $ORIGIN run path SwiftPM adds (the package puts no
# library beside it; a run path there would let a file dropped into /usr/bin load as one).
install -m 0755 "$bin" "$pkg/usr/bin/airlock"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$pkg/usr/bin/airlock"
chrpath -d "$pkg/usr/bin/airlock" >/dev/null
install -m 0755 "$top/scripts/audit-bundle.sh" "$pkg/usr/bin/airlock-audit-bundle"

# Man pages and completions, from the argument parser's own description of every command.
man=$work/man
mkdir "$man"
"$genman" "$pkg/usr/bin/airlock" --multi-page --section 1 --date "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)" \
    --authors 'Airlock release engineering' --output-directory "$man" >/dev/null
# A subcommand's page is named airlock.install.1; its NAME line says so too, in the one-word form
# whatis and apropos read (the generator writes "airlock install" there), while its synopsis
# keeps the words a user types.
for page in "$man"/*.1; do
    base=$(basename "$page" .1)
    awk -v base="$base" '
        !named && /^\.Nm "/ { words = substr($0, 5); print ".Nm " base; named = 1; next }
        named && $0 == ".Nm" { print ".Nm " words; next }
        { print }' "$page" | gzip -9n > "$pkg/usr/share/man/man1/$base.1.gz"
done
[[ -e $pkg/usr/share/man/man1/airlock.1.gz && -e $pkg/usr/share/man/man1/airlock.install.1.gz ]] \
    || { echo "error: the man page generator wrote no airlock.1 or airlock.install.1" >&2; exit 1; }
# The auditor's script has no argument parser: its page is written here.
cat > "$man/airlock-audit-bundle.1" <<EOF
.TH AIRLOCK-AUDIT-BUNDLE 1 "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)" "airlock $version" "Airlock"
.SH NAME
airlock-audit-bundle \- check an Airlock bundle with tar, openssl and sha256sum only
.SH SYNOPSIS
.B airlock-audit-bundle
.I BUNDLE VENDOR.pub
.SH DESCRIPTION
Checks the bundle's signature by the vendor key and every file's SHA-256 against the signed
manifest, using standard tools only, as /usr/share/doc/airlock/audit.md describes step by step.
Exits 0 when the bundle is intact and signed by that key, and 1 with the reason otherwise.
.SH SEE ALSO
.BR airlock.verify (1)
EOF
gzip -9n < "$man/airlock-audit-bundle.1" > "$pkg/usr/share/man/man1/airlock-audit-bundle.1.gz"
# (bash-completion sources its files: the generator's #! line has no use there.)
"$pkg/usr/bin/airlock" --generate-completion-script bash | sed '1{/^#!/d}' > "$pkg/usr/share/bash-completion/completions/airlock"
"$pkg/usr/bin/airlock" --generate-completion-script zsh > "$pkg/usr/share/zsh/vendor-completions/_airlock"
"$pkg/usr/bin/airlock" --generate-completion-script fish > "$pkg/usr/share/fish/vendor_completions.d/airlock.fish"

# systemd units: shipped, not enabled (installer/README.md and docs/fleet.md say how).
for unit in airlock-serve@.service airlock-gc.service airlock-gc.timer; do
    install -m 0644 "$here/debian/$unit" "$pkg/lib/systemd/system/$unit"
done

# Docs: the README, every docs/*.md and the installer's README, as written; the changelogs compressed.
install -m 0644 "$top/README.md" "$doc/README.md"
for f in "$top"/docs/*.md; do install -m 0644 "$f" "$doc/"; done
install -m 0644 "$here/README.md" "$doc/README.installer.md"
gzip -9n < "$top/CHANGELOG.md" > "$doc/CHANGELOG.md.gz"
install -m 0644 "$here/debian/copyright" "$doc/copyright"
# Copies of libyaml (inside Yams) and zlib (inside swift-nio-extras) are linked into the binary:
# the overrides say why (installer/debian/lintian-overrides).
install -d -m 0755 "$pkg/usr/share/lintian/overrides"
install -m 0644 "$here/debian/lintian-overrides" "$pkg/usr/share/lintian/overrides/airlock"
{
    printf 'airlock (%s) unstable; urgency=medium\n\n' "$version"
    printf '  * Airlock %s, built from the project'"'"'s sources; the changes are in\n' "$version"
    printf '    /usr/share/doc/airlock/CHANGELOG.md.gz.\n\n'
    printf ' -- Airlock release engineering <release@airlock.invalid>  %s\n' "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$doc/changelog.gz"

# The control file: Depends from the shared libraries the binary links.
mkdir -p "$work/shlibs/debian"
printf 'Source: airlock\n\nPackage: airlock\nArchitecture: any\n' > "$work/shlibs/debian/control"
depends=$(cd "$work/shlibs" && dpkg-shlibdeps -O -e"$pkg/usr/bin/airlock" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[[ $depends == *libarchive* && $depends == *libssl* ]] \
    || { echo "error: dpkg-shlibdeps found no libarchive or libssl dependency for the binary ($depends)" >&2; exit 1; }
size=$(du -k -s --apparent-size --exclude=DEBIAN "$pkg" | cut -f1)
cat > "$pkg/DEBIAN/control" <<EOF
Package: airlock
Version: $version
Architecture: $arch
Maintainer: Airlock release engineering <release@airlock.invalid>
Installed-Size: $size
Depends: $depends
Recommends: openssl, zstd
Suggests: skopeo
Section: admin
Priority: optional
Homepage: https://airlock.invalid/
Description: signed, content-addressed releases of AI agents for offline sites
 Airlock packs an agent's code, model, prompts, tools and retrieval index into
 one signed, hash-verified bundle, verifies it offline, installs it side by
 side with the releases already installed and switches a current pointer, so
 that a rollback is flipping that pointer back. airlock serve keeps the
 current and last-good releases running and canaries a candidate.
 .
 This package holds the airlock command, its man pages and completions, the
 auditor's script (tar, openssl and sha256sum only) and systemd units for
 airlock serve (one instance per agent name) and a daily airlock gc.
EOF
# Maintainer scripts: restart running instances on upgrade, stop them on removal (no unit is
# enabled by installing; they do nothing under `dpkg --root`, where DPKG_ROOT is set).
for script in postinst prerm postrm; do install -m 0755 "$here/debian/$script" "$pkg/DEBIAN/$script"; done
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | sort | xargs -d '\n' md5sum) > "$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/md5sums"
find "$pkg" -exec touch --no-dereference -d "@$SOURCE_DATE_EPOCH" {} +

deb="$out/airlock_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb.tmp" >/dev/null
mv -f -- "$deb.tmp" "$deb"
echo "$deb"
