// Only what Swift cannot import from <archive.h> directly.
#ifndef AIRLOCK_CARCHIVE_SHIM_H
#define AIRLOCK_CARCHIVE_SHIM_H
#include <archive.h>
#include <archive_entry.h>
#include <locale.h>

// AE_IFREG and friends are macros with casts; Swift does not import them.
static const unsigned int airlock_AE_IFREG = AE_IFREG;
static const unsigned int airlock_AE_IFDIR = AE_IFDIR;
#endif
