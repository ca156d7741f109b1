/*
 * bulkup/version.h - version of the headers and of the linked library.
 */
#ifndef BULKUP_VERSION_H
#define BULKUP_VERSION_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Major version of the headers: changes when the ABI breaks. */
#define BULKUP_VERSION_MAJOR 0
/* Minor version of the headers: compatible additions. */
#define BULKUP_VERSION_MINOR 1
/* Patch version of the headers: fixes only. */
#define BULKUP_VERSION_PATCH 0

#define BULKUP__STR2(x) #x
#define BULKUP__STR(x) BULKUP__STR2(x)
/* "MAJOR.MINOR.PATCH" of the headers. */
#define BULKUP_VERSION_STRING                                                 \
  BULKUP__STR(BULKUP_VERSION_MAJOR)                                           \
  "." BULKUP__STR(BULKUP_VERSION_MINOR) "." BULKUP__STR(BULKUP_VERSION_PATCH)
/* The version as one comparable number: 0xMMmmpp. */
#define BULKUP_VERSION_HEX                                                    \
  ((BULKUP_VERSION_MAJOR << 16) | (BULKUP_VERSION_MINOR << 8) |               \
   BULKUP_VERSION_PATCH)

/*
 * bulkup_version - the version of the library actually linked, as
 * BULKUP_VERSION_HEX would give it (compare with the macro to detect a
 * header/library mismatch). Thread-safe.
 */
BULKUP_EXTERN unsigned int bulkup_version(void);

/* bulkup_version_string - "MAJOR.MINOR.PATCH" of the linked library. */
BULKUP_EXTERN const char *bulkup_version_string(void);

#ifdef __cplusplus
}
#endif
#endif /* BULKUP_VERSION_H */
