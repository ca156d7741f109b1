/*
 * bulkup/shard.h - a deterministic split of a set of items into N disjoint
 * shards, so that N processes (on N machines) that each take one shard of
 * the same input upload every item exactly once, with no coordination.
 *
 * The split is a pure function of an item's key (a byte string: the
 * command-line tool uses the item's path relative to the directory it was
 * found in, or a manifest's URL without its query and fragment) and N:
 *
 *   hash  = the first 8 bytes of SHA-256(key), read as a big-endian
 *           unsigned 64-bit integer
 *   shard = hash mod N                          (0 .. N-1)
 *
 * In Python: int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % n.
 *
 * This definition is part of the interface and MUST NEVER CHANGE: shards
 * computed by different versions, on different machines, or by another
 * program from the formula above must agree, or a rerun of one shard
 * would miss items or upload others twice. The unit test pins known
 * values for fixed keys. It does not depend on the byte order, word size
 * or locale of the machine.
 *
 * Shard numbers are 0-based (0 .. N-1), as $SLURM_ARRAY_TASK_ID with
 * --array=0-(N-1) and Kubernetes' $JOB_COMPLETION_INDEX are.
 */
#ifndef BULKUP_SHARD_H
#define BULKUP_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * bulkup_shard_hash - the shard hash of `len` bytes at `key`: the first 8
 * bytes of their SHA-256 digest as a big-endian unsigned integer. `key`
 * may be NULL when len is 0. Never fails. Thread-safe.
 */
BULKUP_EXTERN uint64_t bulkup_shard_hash(const void *key, size_t len);

/*
 * bulkup_shard_of - the shard (0 .. n-1) of the NUL-terminated key `key`
 * among `n` shards: bulkup_shard_hash(key, strlen(key)) % n. With n = 1 it
 * is always 0.
 *
 * Returns BULKUP_OK and *shard; BULKUP_EINVAL if shard or key is NULL or
 * n is 0 (*shard is then left alone). Thread-safe.
 */
BULKUP_EXTERN bulkup_err bulkup_shard_of(uint32_t *shard, const char *key,
                                         uint32_t n);

#ifdef __cplusplus
}
#endif
#endif /* BULKUP_SHARD_H */
