#!/usr/bin/env bash
# Write a deterministic, safetensors-shaped weights file for the example agent.
# Usage: make-weights.sh OUTFILE [MIB]   (default 8 MiB; same bytes every run)
# Layout: 8-byte little-endian header length, JSON header (space-padded to a multiple
# of 8), then pseudo-random F16 data from AES-128-CTR over zeros with a fixed key/iv.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 OUTFILE [MIB]" >&2
    exit 2
fi
out=$1
mib=${2:-8}
if ! [[ $mib =~ ^[1-9][0-9]*$ ]]; then
    echo "error: MIB must be a positive integer, got '$mib'" >&2
    exit 2
fi

total=$((mib * 1024 * 1024))
# Header is padded to a fixed 248 bytes, so 8 + 248 = 256 bytes precede the data.
hdr_len=248
data_len=$((total - 8 - hdr_len))
(( data_len % 2 == 0 )) || { echo "error: odd data length" >&2; exit 1; }
elems=$((data_len / 2))

header=$(printf '{"__metadata__":{"format":"pt","source":"airlock-example"},"model.embed.weight":{"dtype":"F16","shape":[%d],"data_offsets":[0,%d]}}' "$elems" "$data_len")
if (( ${#header} > hdr_len )); then
    echo "error: header too long (${#header} > $hdr_len)" >&2
    exit 1
fi

tmp=$(mktemp "${out}.XXXXXX")
trap 'rm -f "$tmp"' EXIT
{
    # 8-byte little-endian unsigned header length.
    printf "$(printf '\\x%02x' $((hdr_len & 255)) $(((hdr_len >> 8) & 255)) \
        $(((hdr_len >> 16) & 255)) $(((hdr_len >> 24) & 255)) 0 0 0 0)"
    printf '%-*s' "$hdr_len" "$header"
    head -c "$data_len" /dev/zero |
        openssl enc -aes-128-ctr -nosalt \
            -K 000102030405060708090a0b0c0d0e0f -iv 00000000000000000000000000000000
} > "$tmp"

size=$(stat -c %s "$tmp")
if [[ $size -ne $total ]]; then
    echo "error: wrote $size bytes, expected $total" >&2
    exit 1
fi
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
