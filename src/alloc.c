#include "internal.h"

#include <stdatomic.h>

/* Allocation-failure injection for tests. fail_after < 0: never fail.
 * Otherwise each allocation decrements it, and once it is 0 allocations
 * fail. Atomic so that worker threads may allocate concurrently. */
static atomic_long bk_fail_after = -1;
static atomic_long bk_alloc_count = 0;

static bool bk_alloc_should_fail(void) {
  atomic_fetch_add_explicit(&bk_alloc_count, 1, memory_order_relaxed);
  long v = atomic_load_explicit(&bk_fail_after, memory_order_relaxed);
  while (v >= 0) {
    if (v == 0)
      return true;
    if (atomic_compare_exchange_weak_explicit(&bk_fail_after, &v, v - 1,
                                              memory_order_relaxed,
                                              memory_order_relaxed))
      return false;
  }
  return false;
}

long bk_alloc_fail_after(long n) {
  atomic_store(&bk_fail_after, n);
  return atomic_exchange(&bk_alloc_count, 0);
}

void *bk_malloc(size_t n) {
  if (bk_alloc_should_fail())
    return NULL;
  return malloc(n ? n : 1);
}

void *bk_calloc(size_t count, size_t size) {
  if (bk_alloc_should_fail())
    return NULL;
  return calloc(count ? count : 1, size ? size : 1);
}

void *bk_realloc(void *p, size_t n) {
  if (bk_alloc_should_fail())
    return NULL;
  return realloc(p, n ? n : 1);
}

void bk_free(void *p) { free(p); }

char *bk_strndup(const char *s, size_t n) {
  char *d = bk_malloc(n + 1);
  if (!d)
    return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

char *bk_strdup(const char *s) { return s ? bk_strndup(s, strlen(s)) : NULL; }
