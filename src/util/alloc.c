/* util/alloc.c - the library's allocator, with the allocation-failure
 * hooks of the tests (util/alloc.h). */
#include "bulkup.h"
#include "util/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Allocation-failure injection for tests. fail_after < 0: never fail.
 * Otherwise each allocation decrements it, and once it is 0 allocations
 * fail. Atomic so that worker threads may allocate concurrently. */
static atomic_long bk_fail_after = -1;
static atomic_long bk_alloc_count = 0;
static atomic_bool bk_fail_once = false;
static atomic_bool bk_fired = false;
/* Set by the first call to a testing hook. Until then allocations touch
 * nothing shared: a counter written by every allocation of every thread
 * (libcurl's included) costs a contended cache line per allocation. */
static atomic_bool bk_hooked = false;

static bool bk_alloc_should_fail(void) {
  if (!atomic_load_explicit(&bk_hooked, memory_order_relaxed))
    return false;
  atomic_fetch_add_explicit(&bk_alloc_count, 1, memory_order_relaxed);
  long v = atomic_load_explicit(&bk_fail_after, memory_order_relaxed);
  while (v >= 0) {
    if (v == 0) {
      /* One-shot mode: this allocation fails, the later ones do not. Only
       * the thread that moves the counter from 0 to -1 fails. */
      if (atomic_load_explicit(&bk_fail_once, memory_order_relaxed)) {
        if (!atomic_compare_exchange_strong(&bk_fail_after, &v, -1))
          continue; /* another thread took it; look again */
      }
      atomic_store_explicit(&bk_fired, true, memory_order_relaxed);
      return true;
    }
    if (atomic_compare_exchange_weak_explicit(&bk_fail_after, &v, v - 1,
                                              memory_order_relaxed,
                                              memory_order_relaxed))
      return false;
  }
  return false;
}

long bk_alloc_fail_after(long n) {
  atomic_store(&bk_hooked, true);
  atomic_store(&bk_fired, false);
  atomic_store(&bk_fail_once, false);
  atomic_store(&bk_fail_after, n);
  return atomic_exchange(&bk_alloc_count, 0);
}

long bk_alloc_fail_nth(long n) {
  atomic_store(&bk_hooked, true);
  atomic_store(&bk_fired, false);
  atomic_store(&bk_fail_once, true);
  atomic_store(&bk_fail_after, n);
  return atomic_exchange(&bk_alloc_count, 0);
}

bool bk_alloc_fault_pending(void) { return !atomic_load(&bk_fired); }

/* libcurl's allocations go through the same hook (curl_global_init_mem),
 * so that the allocation-failure tests reach inside transfers too. */
void *bk_curl_malloc(size_t n) { return bk_malloc(n); }
void bk_curl_free(void *p) { bk_free(p); }
void *bk_curl_realloc(void *p, size_t n) { return bk_realloc(p, n); }
char *bk_curl_strdup(const char *s) { return bk_strdup(s); }
void *bk_curl_calloc(size_t count, size_t size) {
  return bk_calloc(count, size);
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

void bulkup_free(void *p) { bk_free(p); }
