// zlib, for the recordings of `airlock serve` (gzip members, one per line).
#ifndef AIRLOCK_CZLIB_SHIM_H
#define AIRLOCK_CZLIB_SHIM_H
#include <zlib.h>

// deflateInit2 and inflateInit2 are macros; Swift does not import them.
static inline int airlock_deflate_init_gzip(z_stream *s, int level) {
    return deflateInit2(s, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
static inline int airlock_inflate_init_gzip(z_stream *s) { return inflateInit2(s, 15 + 16); }
#endif
