/* util/thread.h - pthread wrappers and the monotonic clock (util/thread.c).
 * Shared: part of bulkup_util, which the server and the CLI link too. */
#ifndef BK_UTIL_THREAD_H
#define BK_UTIL_THREAD_H

#include <pthread.h>
#include <stdbool.h>

/* A pthread call that fails here is a programming error (EINVAL, EDEADLK):
 * the wrappers abort(), silently (the library never prints), rather than
 * run on with a broken lock. */
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
/* Wall clock (CLOCK_REALTIME) in seconds since the epoch. */
double bk_now_real(void);

#endif
