/*
 * signals.c - the signal thread and the messages of `bulkup upload`.
 *
 * SIGINT and SIGTERM are blocked in every thread and taken here, by one
 * thread, with sigwait(): the first is recorded and handed to the cancel
 * hook of what runs; a second, a second or more after the first, exits at
 * once. Messages go through upload_say(), which steps around the progress
 * line. Both the direct modes (upload.c) and the workflow (upload_api.c)
 * use this file; it calls neither.
 */
#include "upload.h"

#include "cli.h"
#include "progress.h"
#include "results.h"

#include <bulkup.h>

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

/* Two locks, always taken in the order umu, then mu: a cancel hook runs
 * under umu and may print (say() takes mu), and nothing holding mu takes
 * umu. */
static struct {
  pthread_mutex_t umu; /* guards cancel, cancel_arg */
  void (*cancel)(void *arg, int sig);
  void *cancel_arg;
  pthread_mutex_t mu; /* guards prog */
  progress *prog;
  atomic_int sig;
  atomic_bool stopping;
  int wake_w; /* written on the first signal: wakes a manifest read */
  results *res; /* flushed by a signal; guarded by umu */
} g = {.umu = PTHREAD_MUTEX_INITIALIZER, .mu = PTHREAD_MUTEX_INITIALIZER,
       .wake_w = -1};

void upload_set_cancel(void (*fn)(void *arg, int sig), void *arg) {
  pthread_mutex_lock(&g.umu);
  g.cancel = fn;
  g.cancel_arg = arg;
  pthread_mutex_unlock(&g.umu);
}

int upload_signal(void) { return atomic_load(&g.sig); }

void upload_set_wake_fd(int fd) { g.wake_w = fd; }

void upload_signal_thread_stopping(void) { atomic_store(&g.stopping, true); }

void upload_set_results(results *r) {
  pthread_mutex_lock(&g.umu);
  g.res = r;
  pthread_mutex_unlock(&g.umu);
}

progress *upload_swap_progress(progress *p) {
  pthread_mutex_lock(&g.mu);
  progress *old = g.prog;
  g.prog = p;
  pthread_mutex_unlock(&g.mu);
  return old;
}

/* A message on stderr that does not collide with the progress line. */
void upload_say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  pthread_mutex_lock(&g.mu);
  progress_hold(g.prog);
  cli_verror(fmt, ap);
  progress_release(g.prog);
  pthread_mutex_unlock(&g.mu);
  va_end(ap);
}

void *upload_signal_thread(void *arg) {
  const sigset_t *set = arg;
  for (;;) {
    int s = 0;
    if (sigwait(set, &s) != 0)
      continue;
    if (s == SIGUSR1) {
      if (atomic_load(&g.stopping))
        return NULL;
      continue;
    }
    /* A second signal quits at once, unless it follows the first within a
     * second: `timeout CMD` forwards a signal to CMD and also sends it to
     * its process group, and a terminal's Ctrl-C reaches every process of
     * a pipeline, so one keypress often arrives twice. */
    static double first_at;
    struct timespec now_ts;
    clock_gettime(CLOCK_MONOTONIC, &now_ts);
    double now = (double)now_ts.tv_sec + (double)now_ts.tv_nsec / 1e9;
    int prev = atomic_exchange(&g.sig, s);
    if (prev == 0) {
      first_at = now;
      /* The main thread may be waiting for manifest input that an idle
       * producer never sends: end that wait. */
      if (g.wake_w >= 0 && write(g.wake_w, "!", 1) < 0) {
        /* the pipe holds a byte already */
      }
    }
    else if (now - first_at < 1.0)
      continue;
    /* What the run has recorded so far reaches the file now, whatever
     * happens next. */
    pthread_mutex_lock(&g.umu);
    results_flush(g.res);
    pthread_mutex_unlock(&g.umu);
    if (prev != 0) {
      static const char msg[] =
          "\nbulkup: second signal: quitting without waiting\n";
      if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
        /* nothing more to do */
      }
      _exit(128 + s);
    }
    pthread_mutex_lock(&g.umu);
    if (g.cancel)
      g.cancel(g.cancel_arg, s);
    pthread_mutex_unlock(&g.umu);
  }
}

void upload_log_cb(void *userdata, bulkup_log_level level,
                   const char *message) {
  (void)userdata;
  static const char *const names[] = {"error", "warning", "info", "debug"};
  upload_say("%s: %s", names[level <= BULKUP_LOG_DEBUG ? level : 3], message);
}

int upload_exit_for_signal(void) {
  int s = atomic_load(&g.sig);
  return s == SIGTERM ? CLI_EXIT_SIGTERM : CLI_EXIT_SIGINT;
}

bulkup_log_level upload_log_level(const upload_cli *c) {
  /* Per-item failures are in the summary and the report; the library's
   * warnings about them (and its retries) are shown with -v and -vv. */
  return c->quiet           ? BULKUP_LOG_ERROR
         : c->verbose >= 2  ? BULKUP_LOG_DEBUG
         : c->verbose == 1  ? BULKUP_LOG_INFO
                            : BULKUP_LOG_ERROR;
}

bool upload_show_progress(const upload_cli *c) {
  return c->progress == 1 ||
         (c->progress == -1 && !c->quiet && isatty(STDERR_FILENO));
}
