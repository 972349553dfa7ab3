#!/usr/bin/env bash
# Audit an Airlock bundle with standard tools only (tar, openssl, sha256sum, coreutils).
# Runs exactly the steps of docs/audit.md, in the same order with the same flags.
# Usage: scripts/audit-bundle.sh BUNDLE PUBKEY
# Exit status: 0 when every check passes, 1 when one fails, 2 on usage errors.
set -euo pipefail
export LC_ALL=C

fail() { echo "audit: FAIL: $*" >&2; exit 1; }
ok() { echo "audit: ok: $*"; }

if [[ $# -ne 2 ]]; then
    echo "usage: $0 BUNDLE PUBKEY" >&2
    exit 2
fi
bundle=$(realpath -e -- "$1") || { echo "audit: no such bundle: $1" >&2; exit 2; }
pub=$(realpath -e -- "$2") || { echo "audit: no such public key: $2" >&2; exit 2; }

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
[[ $first == airlock/manifest.json ]] || fail "first entry is '$first', not airlock/manifest.json"
if grep -Ev '^(-rw-r--r--|-rwxr-xr-x|drwxr-xr-x) ' list.txt; then
    fail "entries above are not regular files (0644/0755) or directories (0755)"
fi
ok "listing: $(wc -l < list.txt) entries, manifest first, no special entries"

# Step 3: extract.
mkdir a && tar "${z[@]}" -xf "$bundle" -C a || fail "tar cannot extract the bundle"

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
[[ ! -e a/airlock/delta.json ]] || fail "delta bundle: omitted files cannot be checked with standard tools; audit the full bundle"
(cd a/payload && sha256sum -c --strict --quiet ../airlock/SHA256SUMS) || fail "payload does not match SHA256SUMS"
ok "payload: $(wc -l < a/airlock/SHA256SUMS) files match SHA256SUMS"

# Step 8: nothing else: no unlisted payload file, no stray file outside payload/.
(cd a/payload && find . ! -type d | sed 's|^\./||' | sort) > found.txt
sed 's/^[0-9a-f]\{64\}  //' a/airlock/SHA256SUMS | sort > listed.txt
diff listed.txt found.txt || fail "payload files differ from SHA256SUMS (> extra, < missing)"
if (cd a && find . ! -type d ! -path './payload/*') |
        grep -Ev '^\./airlock/(manifest\.json|SHA256SUMS|signatures/[0-9a-f]{64}\.sig)$'; then
    fail "unexpected files above outside payload/"
fi
ok "no extra files"

echo "audit: PASS: $(basename -- "$bundle") is signed by $keyid and its payload is intact"
