/* util/alloc.h - the library's allocator (util/alloc.c).
 *
 * Every library allocation goes through these, so that the allocation-
 * failure test mode can fail the n-th one. Library only: the hooks are
 * state of libbulkup, so the server and the CLI (which link the utility
 * library, bulkup_util, on their own) use malloc. */
#ifndef BK_UTIL_ALLOC_H
#define BK_UTIL_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

void *bk_malloc(size_t n);
void *bk_calloc(size_t count, size_t size);
void *bk_realloc(void *p, size_t n);
void bk_free(void *p);
char *bk_strdup(const char *s);
char *bk_strndup(const char *s, size_t n);

/* Testing hook: after `n` more successful allocations, every allocation
 * fails until reset with a negative n (the default: never fail). Returns
 * the number of allocations made since the last call. */
long bk_alloc_fail_after(long n);
/* Testing hook, one-shot: only the allocation after `n` more successful
 * ones fails (-1 resets). Returns the allocations made since the last
 * call. */
long bk_alloc_fail_nth(long n);
/* Whether no allocation has failed since the hook was last armed. */
bool bk_alloc_fault_pending(void);
/* The allocator handed to libcurl (curl_global_init_mem). */
void *bk_curl_malloc(size_t n);
void bk_curl_free(void *p);
void *bk_curl_realloc(void *p, size_t n);
char *bk_curl_strdup(const char *s);
void *bk_curl_calloc(size_t count, size_t size);

#endif
