/* util/thread.c - pthread wrappers and clocks (util/thread.h). */
#include "util/thread.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

static void bk_thread_check(int rc, const char *what) {
  /* A failing pthread call on a valid object means memory corruption or
   * a bug; going on would corrupt results silently. The library does not
   * print, so the reason is left for a debugger (`what`, `rc`). */
  if (rc != 0) {
    volatile const char *reason = what;
    (void)reason;
    abort();
  }
}

void bk_mutex_init(pthread_mutex_t *m) {
  bk_thread_check(pthread_mutex_init(m, NULL), "pthread_mutex_init");
}
void bk_mutex_destroy(pthread_mutex_t *m) {
  bk_thread_check(pthread_mutex_destroy(m), "pthread_mutex_destroy");
}
void bk_mutex_lock(pthread_mutex_t *m) {
  bk_thread_check(pthread_mutex_lock(m), "pthread_mutex_lock");
}
void bk_mutex_unlock(pthread_mutex_t *m) {
  bk_thread_check(pthread_mutex_unlock(m), "pthread_mutex_unlock");
}

void bk_cond_init(pthread_cond_t *c) {
  pthread_condattr_t attr;
  bk_thread_check(pthread_condattr_init(&attr), "pthread_condattr_init");
  bk_thread_check(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC),
                  "pthread_condattr_setclock");
  bk_thread_check(pthread_cond_init(c, &attr), "pthread_cond_init");
  pthread_condattr_destroy(&attr);
}
void bk_cond_destroy(pthread_cond_t *c) {
  bk_thread_check(pthread_cond_destroy(c), "pthread_cond_destroy");
}
void bk_cond_wait(pthread_cond_t *c, pthread_mutex_t *m) {
  bk_thread_check(pthread_cond_wait(c, m), "pthread_cond_wait");
}
bool bk_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                       double deadline) {
  struct timespec ts;
  if (deadline < 0)
    deadline = 0;
  ts.tv_sec = (time_t)deadline;
  ts.tv_nsec = (long)((deadline - (double)ts.tv_sec) * 1e9);
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  int rc = pthread_cond_timedwait(c, m, &ts);
  if (rc == ETIMEDOUT)
    return false;
  bk_thread_check(rc, "pthread_cond_timedwait");
  return true;
}
void bk_cond_signal(pthread_cond_t *c) {
  bk_thread_check(pthread_cond_signal(c), "pthread_cond_signal");
}
void bk_cond_broadcast(pthread_cond_t *c) {
  bk_thread_check(pthread_cond_broadcast(c), "pthread_cond_broadcast");
}

double bk_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double bk_now_real(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
