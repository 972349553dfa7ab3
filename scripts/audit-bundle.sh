#!/usr/bin/env bash
# Audit an Airlock bundle with standard tools only (tar, openssl, sha256sum, coreutils).
# Runs exactly the steps of docs/audit.md, in the same order with the same flags.
# Usage: scripts/audit-bundle.sh BUNDLE PUBKEY [BASE]
# BASE: for a delta bundle, the full bundle of the release it was made against (audited first,
# with the same key); the delta's manifest is rebuilt from it with `zstd --patch-from` and the
# files the delta omits are taken from it (docs/audit.md, "A delta bundle").
# Exit status: 0 when every check passes, 1 when one fails, 2 on usage errors.
set -euo pipefail
export LC_ALL=C

fail() { echo "audit: FAIL: $*" >&2; exit 1; }
ok() { echo "audit: ok: $*"; }

if [[ $# -ne 2 && $# -ne 3 ]]; then
    echo "usage: $0 BUNDLE PUBKEY [BASE]" >&2
    exit 2
fi
self=$(realpath -e -- "$0")
bundle=$(realpath -e -- "$1") || { echo "audit: no such bundle: $1" >&2; exit 2; }
pub=$(realpath -e -- "$2") || { echo "audit: no such public key: $2" >&2; exit 2; }
base=
if [[ $# -eq 3 ]]; then base=$(realpath -e -- "$3") || { echo "audit: no such base bundle: $3" >&2; exit 2; }; fi

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
cd "$work"

# Step 1: compression, from the magic bytes.
magic=$(od -An -tx1 -N4 "$bundle" | tr -d ' \n')
case $magic in
    28b52ffd) z=(--zstd) ;;
    1f8b*)    z=(-z) ;;
    *)        z=() ;;
esac
ok "compression: ${z[*]:-none}"

# Step 2: list before extracting. Manifest first; only plain files/dirs with normalised modes.
tar "${z[@]}" -tvf "$bundle" > list.txt || fail "tar cannot list the bundle"
first=$(tar "${z[@]}" -tf "$bundle" | sed -n 1p)
delta=no
if [[ $first == airlock/delta.json ]]; then
    # A delta bundle whose manifest is a patch against its base's (docs/format.md).
    second=$(tar "${z[@]}" -tf "$bundle" | sed -n 2p)
    [[ $second == airlock/manifest.patch ]] || fail "a delta bundle's second entry is '$second', not airlock/manifest.patch"
    [[ -n $base ]] || fail "this is a delta bundle: give the full bundle of its base release as a third argument"
    delta=yes
else
    [[ $first == airlock/manifest.json ]] || fail "first entry is '$first', not airlock/manifest.json"
fi
if grep -Ev '^(-rw-r--r--|-rwxr-xr-x|drwxr-xr-x) ' list.txt; then
    fail "entries above are not regular files (0644/0755) or directories (0755)"
fi
ok "listing: $(wc -l < list.txt) entries, manifest first, no special entries"

# Step 3: extract.
mkdir a && tar "${z[@]}" -xf "$bundle" -C a || fail "tar cannot extract the bundle"

# Step 3a (a delta bundle): audit the base, rebuild the manifest from the base's with zstd, and
# derive SHA256SUMS from it (the delta carries neither).
if [[ $delta == yes ]]; then
    "$self" "$base" "$pub" > base-audit.txt || { cat base-audit.txt >&2; fail "the base bundle does not pass the audit"; }
    ok "base: $(basename -- "$base") passes the audit"
    mkdir b && tar -xf "$base" -C b || fail "tar cannot extract the base bundle"
    [[ ! -e a/airlock/manifest.json && ! -e a/airlock/SHA256SUMS ]] || fail "a delta bundle whose manifest is a patch carries no manifest.json or SHA256SUMS"
    zstd -q -d --patch-from=b/airlock/manifest.json a/airlock/manifest.patch -o a/airlock/manifest.json \
        || fail "the manifest patch does not apply to the base's manifest"
    ok "manifest: rebuilt from the base's, sha256:$(sha256sum a/airlock/manifest.json | cut -d' ' -f1) (the bundle id)"
    grep -o '"path":"[^"]*","sha256":"[0-9a-f]\{64\}"' a/airlock/manifest.json \
        | sed 's/^"path":"\(.*\)","sha256":"\([0-9a-f]*\)"$/\2  \1/' > a/airlock/SHA256SUMS
fi

# Step 4: key id of the trusted public key, and its signature file.
keyid=$(openssl pkey -pubin -in "$pub" -outform DER | sha256sum | cut -d' ' -f1)
sig=a/airlock/signatures/$keyid.sig
[[ -f $sig ]] || fail "no signature by key $keyid (expected airlock/signatures/$keyid.sig)"

# Step 5: verify the signature over the exact manifest bytes; algorithm from the trusted key.
keytext=$(openssl pkey -pubin -in "$pub" -text -noout)
if grep -q '^ED25519 Public-Key' <<<"$keytext"; then
    alg=ed25519
    openssl pkeyutl -verify -pubin -inkey "$pub" -rawin \
        -in a/airlock/manifest.json -sigfile "$sig" || fail "Ed25519 signature does not verify"
elif grep -qE 'ASN1 OID: prime256v1|NIST CURVE: P-256' <<<"$keytext"; then
    alg=p256
    openssl dgst -sha256 -verify "$pub" -signature "$sig" a/airlock/manifest.json \
        || fail "ECDSA P-256 signature does not verify"
else
    fail "unsupported public key type (need Ed25519 or EC P-256)"
fi
ok "signature: $alg, key $keyid"

# Step 6: SHA256SUMS is the one the signed manifest names.
sums=$(grep -o '"sums":"sha256:[0-9a-f]*"' a/airlock/manifest.json) || fail "no \"sums\" in manifest"
[[ $(wc -l <<<"$sums") -eq 1 ]] || fail "more than one \"sums\" in manifest: check it by hand"
want=${sums#'"sums":"sha256:'}; want=${want%'"'}
have=$(sha256sum a/airlock/SHA256SUMS | cut -d' ' -f1)
[[ ${#want} -eq 64 && $want == "$have" ]] || fail "SHA256SUMS hash $have != manifest sums $want"
ok "SHA256SUMS matches manifest sums sha256:$have"

# Step 7: every listed payload file has its hash.
if [[ $delta == yes ]]; then
    # The files the delta omits are copied from the (audited) base, found by their hash.
    carried=0 taken=0
    while read -r hash path; do
        # The path comes from the signed manifest, but a signer is not trusted to name files
        # outside payload/: the format's path rules, before anything is created.
        case "/$path/" in */../* | */./* | *//*) fail "the manifest lists an unsafe path: $path" ;; esac
        [[ $path != /* && $path != *\\* && $path != *[[:cntrl:]]* ]] || fail "the manifest lists an unsafe path: $path"
        if [[ -e a/payload/$path || -L a/payload/$path ]]; then carried=$((carried + 1)); continue; fi
        from=$(awk -v h="$hash" '$1 == h { print substr($0, 67); exit }' b/airlock/SHA256SUMS)
        [[ -n $from ]] || fail "the delta omits $path, whose content the base lacks"
        mkdir -p "a/payload/$(dirname -- "$path")" && cp --no-dereference -- "b/payload/$from" "a/payload/$path"
        taken=$((taken + 1))
    done < a/airlock/SHA256SUMS
    ok "delta: $carried files carried, $taken taken from the base"
fi
[[ $delta == yes || ! -e a/airlock/delta.json ]] || fail "delta bundle with its manifest whole: omitted files cannot be checked with standard tools; audit the full bundle"
(cd a/payload && sha256sum -c --strict --quiet ../airlock/SHA256SUMS) || fail "payload does not match SHA256SUMS"
ok "payload: $(wc -l < a/airlock/SHA256SUMS) files match SHA256SUMS"

# Step 8: nothing else: no unlisted payload file, no stray file outside payload/.
(cd a/payload && find . ! -type d | sed 's|^\./||' | sort) > found.txt
sed 's/^[0-9a-f]\{64\}  //' a/airlock/SHA256SUMS | sort > listed.txt
diff listed.txt found.txt || fail "payload files differ from SHA256SUMS (> extra, < missing)"
if (cd a && find . ! -type d ! -path './payload/*') |
        grep -Ev '^\./airlock/(manifest\.json|SHA256SUMS|signatures/[0-9a-f]{64}\.sig)$' |
        { if [[ $delta == yes ]]; then grep -Ev '^\./airlock/(delta\.json|manifest\.patch)$'; else cat; fi; }; then
    fail "unexpected files above outside payload/"
fi
ok "no extra files"

echo "audit: PASS: $(basename -- "$bundle") is signed by $keyid and its payload is intact"
