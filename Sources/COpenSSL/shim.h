// Only what Swift cannot import from OpenSSL 3 directly.
#ifndef AIRLOCK_COPENSSL_SHIM_H
#define AIRLOCK_COPENSSL_SHIM_H
// Deprecated APIs become compile errors.
#define OPENSSL_API_COMPAT 30000
#define OPENSSL_NO_DEPRECATED 1
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/err.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>

// BIO_get_mem_data is a function-like macro.
static inline long airlock_BIO_get_mem_data(BIO *bio, char **data) { return BIO_get_mem_data(bio, data); }
// OPENSSL_free is a function-like macro.
static inline void airlock_OPENSSL_free(void *p) { OPENSSL_free(p); }
#endif
