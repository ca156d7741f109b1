/* util/rand.c - xorshift64* and the kernel's random bytes (util/rand.h). */
#include "util/rand.h"
#include "util/thread.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/random.h>
#include <unistd.h>

void bk_rng_seed(bk_rng *r, uint64_t seed) {
  /* Spread the seed (splitmix64's finaliser), so that nearby seeds give
   * unrelated sequences; xorshift's state must not be 0. */
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  r->s = z ? z : 0x2545F4914F6CDD1DULL;
}

uint64_t bk_rng_next(bk_rng *r) {
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

double bk_rng_01(bk_rng *r) {
  return (double)(bk_rng_next(r) >> 11) / 9007199254740992.0;
}

double bk_rand01(void) {
  static _Thread_local bk_rng r;
  static _Thread_local bool seeded;
  if (!seeded) {
    bk_rng_seed(&r, bk_random_seed());
    seeded = true;
  }
  return bk_rng_01(&r);
}

bool bk_random_bytes(void *buf, size_t n) {
  unsigned char *p = buf;
  while (n > 0) {
    ssize_t r = getrandom(p, n, 0);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    p += r;
    n -= (size_t)r;
  }
  return true;
}

uint64_t bk_random_seed(void) {
  uint64_t v;
  if (bk_random_bytes(&v, sizeof v))
    return v;
  static atomic_uint_fast64_t counter;
  uint64_t c = atomic_fetch_add(&counter, 1) + 1;
  double t = bk_now_real(), m = bk_now();
  uint64_t a, b;
  __builtin_memcpy(&a, &t, 8);
  __builtin_memcpy(&b, &m, 8);
  return a ^ (b << 1) ^ ((uint64_t)getpid() << 32) ^ (c * 0x9E3779B97F4A7C15ULL);
}
