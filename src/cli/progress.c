/*
 * progress.c - the progress line.
 *
 * Locking: the line is drawn and erased holding draw_mu and the output
 * stream's lock, which is also what progress_hold() takes, so a message
 * printed between hold and release never shares a line with the progress
 * text. The thread sleeps on a condition variable so that stop is prompt.
 */
#include "progress.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define WINDOW 21 /* samples kept for rates: 5 s at 4 per second */

struct sample {
  double t;
  uint64_t done;
  uint64_t bytes_sent;
  uint64_t bytes_done;
};

struct progress {
  bulkup_uploader *u; /* NULL: fed by progress_feed() */
  pthread_mutex_t feed_mu; /* guards fed */
  bulkup_progress fed;
  FILE *out;
  progress_totals totals;
  double interval;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
  /* Guards drawn and the writing of the line (the stream lock alone would
   * do, but thread sanitizers do not see flockfile as a lock). */
  pthread_mutex_t draw_mu;
  size_t drawn; /* length of the line on screen, 0 if none */
  struct sample ring[WINDOW];
  size_t nsamples, head;
};

void progress_human_bytes(char *buf, size_t n, double b) {
  static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  size_t u = 0;
  while (b >= 1000.0 && u + 1 < sizeof units / sizeof units[0]) {
    b /= 1000.0;
    u++;
  }
  if (u == 0)
    snprintf(buf, n, "%.0f B", b);
  else
    snprintf(buf, n, "%.1f %s", b, units[u]);
}

void progress_human_duration(char *buf, size_t n, double s) {
  if (!(s >= 0) || s > 359999.0) {
    snprintf(buf, n, "--:--");
    return;
  }
  unsigned long t = (unsigned long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, n, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(buf, n, "%lu:%02lu", t / 60, t % 60);
}

void progress_format(char *buf, size_t n, const bulkup_progress *p,
                     const progress_totals *t, const progress_rates *r) {
  uint64_t done = p->succeeded + p->failed + p->cancelled;
  char bytes[32], total_bytes[32], rate[32], eta[32];
  progress_human_bytes(bytes, sizeof bytes, (double)p->bytes_succeeded);
  progress_human_bytes(rate, sizeof rate, r->bytes_per_s);
  size_t o = 0;
#define ADD(...)                                                               \
  do {                                                                         \
    if (o < n) {                                                               \
      int k_ = snprintf(buf + o, n - o, __VA_ARGS__);                          \
      if (k_ > 0)                                                              \
        o += (size_t)k_;                                                       \
    }                                                                          \
  } while (0)
  if (n > 0)
    buf[0] = '\0';
  if (t->known) {
    progress_human_bytes(total_bytes, sizeof total_bytes, (double)t->bytes);
    ADD("%llu/%llu files  %s/%s", (unsigned long long)done,
        (unsigned long long)t->files, bytes, total_bytes);
  } else {
    ADD("%llu/%llu files  %s", (unsigned long long)done,
        (unsigned long long)p->submitted, bytes);
  }
  ADD("  %.1f files/s  %s/s", r->files_per_s, rate);
  /* Transfers allowed in flight (adaptive concurrency moves it). */
  if (p->concurrency)
    ADD("  %llu transfers", (unsigned long long)p->concurrency);
  if (t->known) {
    double left = -1;
    if (t->bytes > 0 && r->done_bytes_per_s > 0) {
      double rem = t->bytes > p->bytes_succeeded
                       ? (double)(t->bytes - p->bytes_succeeded)
                       : 0.0;
      left = rem / r->done_bytes_per_s;
    } else if (r->files_per_s > 0) {
      double rem = t->files > done ? (double)(t->files - done) : 0.0;
      left = rem / r->files_per_s;
    } else if (done >= t->files) {
      left = 0;
    }
    progress_human_duration(eta, sizeof eta, left);
    ADD("  ETA %s", eta);
  }
  ADD("  retries %llu  failed %llu", (unsigned long long)p->retries,
      (unsigned long long)p->failed);
  if (p->cancelled)
    ADD("  cancelled %llu", (unsigned long long)p->cancelled);
#undef ADD
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t term_width(FILE *out) {
  struct winsize ws;
  if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10)
    return ws.ws_col;
  return 0;
}

/* Called with mu held. */
static void sample_and_format(progress *p, char *line, size_t n) {
  bulkup_progress snap;
  if (p->u) {
    bulkup_uploader_progress(p->u, &snap);
  } else {
    pthread_mutex_lock(&p->feed_mu);
    snap = p->fed;
    pthread_mutex_unlock(&p->feed_mu);
  }
  struct sample s = {now_s(), snap.succeeded + snap.failed + snap.cancelled,
                     snap.bytes_sent, snap.bytes_succeeded};
  p->ring[p->head] = s;
  p->head = (p->head + 1) % WINDOW;
  if (p->nsamples < WINDOW)
    p->nsamples++;
  /* The oldest sample still in the ring. */
  struct sample *old =
      &p->ring[p->nsamples < WINDOW ? 0 : p->head % WINDOW];
  progress_rates r = {0, 0, 0};
  double dt = s.t - old->t;
  if (dt > 0.5) {
    r.files_per_s = (double)(s.done - old->done) / dt;
    r.bytes_per_s = (double)(s.bytes_sent - old->bytes_sent) / dt;
    r.done_bytes_per_s = (double)(s.bytes_done - old->bytes_done) / dt;
  } else if (snap.elapsed_s > 0) {
    /* Too early (or too short a run) for a window: the whole run. */
    r.files_per_s = (double)s.done / snap.elapsed_s;
    r.bytes_per_s = (double)s.bytes_sent / snap.elapsed_s;
    r.done_bytes_per_s = (double)s.bytes_done / snap.elapsed_s;
  }
  progress_format(line, n, &snap, &p->totals, &r);
}

/* Draw `line` over the previous one. Called with the stream locked. */
static void draw(progress *p, const char *line) {
  size_t len = strlen(line);
  size_t w = term_width(p->out);
  if (w > 0 && len > w - 1)
    len = w - 1;
  fputc('\r', p->out);
  fwrite(line, 1, len, p->out);
  for (size_t i = len; i < p->drawn; i++)
    fputc(' ', p->out);
  if (p->drawn > len) {
    fputc('\r', p->out);
    fwrite(line, 1, len, p->out);
  }
  fflush(p->out);
  p->drawn = len ? len : 1;
}

static void *progress_thread(void *arg) {
  progress *p = arg;
  char line[512];
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    sample_and_format(p, line, sizeof line);
    pthread_mutex_lock(&p->draw_mu);
    flockfile(p->out);
    draw(p, line);
    funlockfile(p->out);
    pthread_mutex_unlock(&p->draw_mu);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long ns = until.tv_nsec + (long)(p->interval * 1e9);
    until.tv_sec += ns / 1000000000L;
    until.tv_nsec = ns % 1000000000L;
    while (!p->stop) {
      int rc = pthread_cond_timedwait(&p->cv, &p->mu, &until);
      if (rc == ETIMEDOUT)
        break;
    }
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static progress *start(bulkup_uploader *u, FILE *out,
                       const progress_totals *t, double interval) {
  progress *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  p->u = u;
  p->out = out;
  p->totals = *t;
  p->interval = interval > 0.01 ? interval : 0.25;
  if (pthread_mutex_init(&p->feed_mu, NULL) != 0) {
    free(p);
    return NULL;
  }
  if (pthread_mutex_init(&p->mu, NULL) != 0) {
    pthread_mutex_destroy(&p->feed_mu);
    free(p);
    return NULL;
  }
  if (pthread_cond_init(&p->cv, NULL) != 0) {
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->feed_mu);
    free(p);
    return NULL;
  }
  if (pthread_mutex_init(&p->draw_mu, NULL) != 0) {
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->feed_mu);
    free(p);
    return NULL;
  }
  if (pthread_create(&p->thread, NULL, progress_thread, p) != 0) {
    pthread_mutex_destroy(&p->draw_mu);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->feed_mu);
    free(p);
    return NULL;
  }
  return p;
}

progress *progress_start(bulkup_uploader *u, FILE *out,
                         const progress_totals *t, double interval) {
  return u ? start(u, out, t, interval) : NULL;
}

progress *progress_start_fed(FILE *out, const progress_totals *t,
                             double interval) {
  return start(NULL, out, t, interval);
}

void progress_feed(progress *p, const bulkup_progress *snap) {
  if (!p || !snap)
    return;
  pthread_mutex_lock(&p->feed_mu);
  p->fed = *snap;
  pthread_mutex_unlock(&p->feed_mu);
}

void progress_stop(progress *p) {
  if (!p)
    return;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->thread, NULL);
  char line[512];
  sample_and_format(p, line, sizeof line);
  pthread_mutex_lock(&p->draw_mu);
  flockfile(p->out);
  draw(p, line);
  fputc('\n', p->out);
  fflush(p->out);
  funlockfile(p->out);
  pthread_mutex_unlock(&p->draw_mu);
  pthread_mutex_destroy(&p->draw_mu);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  pthread_mutex_destroy(&p->feed_mu);
  free(p);
}

void progress_hold(progress *p) {
  if (!p) {
    flockfile(stderr);
    return;
  }
  pthread_mutex_lock(&p->draw_mu);
  flockfile(p->out);
  if (p->drawn) {
    fputc('\r', p->out);
    for (size_t i = 0; i < p->drawn; i++)
      fputc(' ', p->out);
    fputc('\r', p->out);
    p->drawn = 0;
  }
}

void progress_release(progress *p) {
  fflush(p ? p->out : stderr);
  funlockfile(p ? p->out : stderr);
  if (p)
    pthread_mutex_unlock(&p->draw_mu);
}
