/* util/rand.h - random numbers (util/rand.c). Shared: part of bulkup_util.
 *
 * One generator for everything that needs numbers but not secrecy
 * (retry jitter, fault injection): xorshift64*, with its state in the
 * caller's bk_rng (a seed makes a sequence repeatable). bk_random_bytes is
 * for what must be unpredictable (ids, nonces): the kernel's getrandom. */
#ifndef BK_UTIL_RAND_H
#define BK_UTIL_RAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bk_rng {
  uint64_t s; /* never 0 */
} bk_rng;

/* Seed the generator (any seed; 0 is mapped to a fixed non-zero one). */
void bk_rng_seed(bk_rng *r, uint64_t seed);
/* The next 64 random bits. */
uint64_t bk_rng_next(bk_rng *r);
/* A number in [0, 1), 53 bits. */
double bk_rng_01(bk_rng *r);

/* A number in [0, 1) from a generator of the calling thread, seeded from
 * bk_random_seed on first use: for callers that keep no generator. */
double bk_rand01(void);

/* n unpredictable bytes (getrandom(2)); false if the kernel gave none. */
bool bk_random_bytes(void *buf, size_t n);
/* A seed for a bk_rng that differs between processes and calls: from
 * bk_random_bytes, or, should that fail, from the clocks, the pid and a
 * counter. Never fails. */
uint64_t bk_random_seed(void);

#endif
