/*
 * internal.h - included first by every library source file.
 *
 * Internal names use the bk_ prefix (functions, types) and are not
 * exported from the shared library (hidden visibility).
 */
#ifndef BULKUP_INTERNAL_H
#define BULKUP_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bulkup.h"

#define BK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define BK_UNUSED(x) ((void)(x))

#if defined(__GNUC__)
#define BK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define BK_PRINTF(f, a)
#endif

/* --- error detail (error.c) ------------------------------------------- */

/* Set the calling thread's bulkup_last_error_message() and return err. */
bulkup_err bk_error(bulkup_err err, const char *fmt, ...) BK_PRINTF(2, 3);

/* --- allocation (alloc.c) ---------------------------------------------- */
/* Every library allocation goes through these, so that the allocation-
 * failure test mode can fail the n-th one. */
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

/* --- libcurl (uploader.c) --------------------------------------------- */
/* curl_global_init once per process, thread-safely, with bulkup's
 * allocator hooks; every libcurl user in the library calls it first. */
bulkup_err bk_curl_global_init(void);

struct curl_slist;
/* Append a header line to a libcurl list; on allocation failure *ok turns
 * false (and stays so) and the list is returned unchanged, so a run of
 * appends needs one check at the end. */
struct curl_slist *bk_slist_add(struct curl_slist *l, const char *h, bool *ok);
/* Seconds as libcurl milliseconds: rounded up, 0 for <= 0, no overflow. */
long bk_curl_ms(double seconds);

/* --- pthread wrappers (thread.c) -------------------------------------- */
/* A pthread call that fails here is a programming error (EINVAL, EDEADLK):
 * the wrappers abort with a message rather than run on with a broken lock. */
void bk_mutex_init(pthread_mutex_t *m);
void bk_mutex_destroy(pthread_mutex_t *m);
void bk_mutex_lock(pthread_mutex_t *m);
void bk_mutex_unlock(pthread_mutex_t *m);
/* Condition variables use CLOCK_MONOTONIC for timed waits. */
void bk_cond_init(pthread_cond_t *c);
void bk_cond_destroy(pthread_cond_t *c);
void bk_cond_wait(pthread_cond_t *c, pthread_mutex_t *m);
/* Wait until the monotonic time `deadline` (seconds, bk_now()); returns
 * false on timeout. */
bool bk_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, double deadline);
void bk_cond_signal(pthread_cond_t *c);
void bk_cond_broadcast(pthread_cond_t *c);

/* Monotonic clock in seconds. */
double bk_now(void);

/* --- redaction (redact.c) ---------------------------------------------- */
/* A copy of text[0..len) with credentials redacted (the parameters and
 * XML elements of redact.c's table, userinfo); NUL-terminated, its length
 * in *out_len (NULs inside are kept). NULL when out of memory. Freed with
 * bk_free(). */
char *bk_redact_text(const char *text, size_t len, size_t *out_len);

#endif /* BULKUP_INTERNAL_H */
