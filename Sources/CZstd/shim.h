// libzstd, for the manifest patch of a delta bundle (docs/format.md): the manifest compressed
// with its base release's manifest as the prefix, as `zstd --patch-from` does.
#ifndef AIRLOCK_CZSTD_SHIM_H
#define AIRLOCK_CZSTD_SHIM_H
#include <zstd.h>

// ZSTD_CONTENTSIZE_UNKNOWN and ZSTD_CONTENTSIZE_ERROR are casts Swift does not import.
static const unsigned long long airlock_zstd_contentsize_unknown = ZSTD_CONTENTSIZE_UNKNOWN;
static const unsigned long long airlock_zstd_contentsize_error = ZSTD_CONTENTSIZE_ERROR;
#endif
