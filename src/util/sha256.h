/* util/sha256.h - SHA-256 (FIPS 180-4), written out (util/sha256.c).
 * Shared: part of bulkup_util.
 *
 * The one SHA-256 of the library, with one failure rule: it cannot fail.
 * No provider to fetch, no allocation, no error path; so a hash can never
 * come out "empty" and make two different inputs equal (the journal keys
 * items by it, the shard function is defined by it). OpenSSL's EVP is
 * faster on hardware with SHA extensions; use it for bulk data where an
 * error can be reported, never for identities. */
#ifndef BK_UTIL_SHA256_H
#define BK_UTIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define BK_SHA256_LEN 32

typedef struct bk_sha256_ctx {
  uint32_t h[8];
  uint64_t len;            /* bytes so far */
  unsigned char buf[64];
  size_t nbuf;
} bk_sha256_ctx;

void bk_sha256_init(bk_sha256_ctx *c);
void bk_sha256_update(bk_sha256_ctx *c, const void *data, size_t n);
void bk_sha256_final(bk_sha256_ctx *c, unsigned char out[BK_SHA256_LEN]);
/* One call: the digest of n bytes. */
void bk_sha256(const void *data, size_t n, unsigned char out[BK_SHA256_LEN]);
/* (As hex: bk_hex_encode(digest, BK_SHA256_LEN, out, false), util/str.h.) */

#endif
