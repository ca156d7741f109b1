/*
 * shard.c - the shard hash: the first 8 bytes of SHA-256 (util/sha256.c,
 * which cannot fail), big-endian; see include/bulkup/shard.h, whose
 * definition must never change.
 */
#include "internal.h"
#include "util/sha256.h"

uint64_t bulkup_shard_hash(const void *key, size_t len) {
  unsigned char d[BK_SHA256_LEN];
  bk_sha256(key, len, d);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | d[i];
  return v;
}

bulkup_err bulkup_shard_of(uint32_t *shard, const char *key, uint32_t n) {
  if (!shard || !key)
    return bk_error(BULKUP_EINVAL, "shard and key must not be NULL");
  if (n == 0)
    return bk_error(BULKUP_EINVAL, "the number of shards must be at least 1");
  *shard = (uint32_t)(bulkup_shard_hash(key, strlen(key)) % n);
  return BULKUP_OK;
}
