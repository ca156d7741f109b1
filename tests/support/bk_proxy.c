/*
 * bk_proxy.c - the fault-injecting TCP proxy (see bk_proxy.h).
 *
 * Threads: one acceptor, and one thread per client connection (at most
 * max_connections). Locking: p->mu guards the script, the random
 * generator and the counters except the byte counters, which are atomics
 * (they change on every write). A connection's own state belongs to its
 * thread alone. The acceptor alone owns the connection list; a connection
 * thread that ends marks itself done and writes a byte to the reap pipe,
 * and the acceptor joins it.
 *
 * Stopping: bk_proxy_stop() writes one byte to the stop pipe and never
 * drains it, so its read end stays readable: every thread has it in its
 * poll set and sees "stop" at once, wherever it waits.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bk_proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BKP_BUF 65536
#define BKP_CONNECT_TIMEOUT_NS (5LL * 1000000000LL)
#define BKP_DRAIN_TIMEOUT_NS (30LL * 1000000000LL)

typedef struct bkp_conn bkp_conn;

struct bk_proxy {
  int listen_fd;
  unsigned short port;
  struct sockaddr_storage up_addr;
  socklen_t up_len;
  bk_proxy_options opt;
  int stop_pipe[2];
  int reap_pipe[2];
  atomic_int stopping;
  pthread_t acceptor;

  pthread_mutex_t mu;
  pthread_cond_t idle_cv;
  /* under mu */
  bk_proxy_fault *script;
  size_t script_head, script_len, script_cap;
  double probability;
  uint64_t rng;
  unsigned int kinds_mask;
  bk_proxy_stats st; /* bytes_* are kept in the atomics below */

  atomic_ullong bytes_c2s;
  atomic_ullong bytes_s2c;

  /* acceptor thread only */
  bkp_conn *conns;
  unsigned int nconns;
};

/* One direction of a connection. */
typedef struct bkp_dir {
  int src, dst;               /* indexes into conn->fd */
  unsigned char *buf;
  size_t len, off;            /* buf[off..len) waits to be forwarded */
  long long ready_ns;         /* not before this time */
  int eof;                    /* src said EOF */
  int shut;                   /* dst shut down for writing */
  unsigned long long period_bytes;
  double tokens;              /* BANDWIDTH bucket */
  long long tokens_ns;
} bkp_dir;

enum { ST_FORWARD, ST_HOLD, ST_DRAIN, ST_DONE };

struct bkp_conn {
  bk_proxy *p;
  pthread_t th;
  atomic_int done;
  bkp_conn *next;
  int fd[2]; /* 0: client, 1: upstream */
  bkp_dir d[2];
  bk_proxy_fault f;
  int fired;
  int s2c_seen; /* server bytes read since the current exchange began */
  uint64_t rng;
  int state;
  long long drain_deadline;
};

/* ---- small helpers ------------------------------------------------------ */

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* log-uniform in 0..n (inclusive): small offsets as likely per octave as
 * large ones, like the sizes of the files a bulk upload sends */
static unsigned long long rand_log_upto(uint64_t *s, unsigned long long n) {
  double u = (double)(splitmix64(s) >> 11) * (1.0 / 9007199254740992.0);
  double v = exp(u * log((double)n + 1.0)) - 1.0;
  unsigned long long r = (unsigned long long)v;
  return r > n ? n : r;
}

/* uniform in 0..n (inclusive) */
static unsigned long long rand_upto(uint64_t *s, unsigned long long n) {
  if (n == ~0ULL)
    return splitmix64(s);
  return splitmix64(s) % (n + 1);
}

static void close_fd(int *fd) {
  if (*fd >= 0) {
    close(*fd);
    *fd = -1;
  }
}

/* Close with an RST: SO_LINGER on, zero seconds. */
static void reset_fd(int *fd) {
  if (*fd >= 0) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(*fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close_fd(fd);
  }
}

static void set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0)
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

const char *bk_proxy_kind_name(bk_proxy_kind kind) {
  static const char *const names[] = {"NONE",      "LATENCY", "BANDWIDTH",
                                      "RESET",     "BLACKHOLE", "SLICE",
                                      "CLOSE"};
  if ((unsigned)kind < BK_PROXY_KIND_COUNT)
    return names[kind];
  return "UNKNOWN";
}

/* ---- fault choice ------------------------------------------------------- */

/* Under p->mu: the next fault (script, random, or none). */
static bk_proxy_fault draw_locked(bk_proxy *p) {
  bk_proxy_fault f;
  memset(&f, 0, sizeof f);
  const bk_proxy_options *o = &p->opt;
  if (p->script_head < p->script_len) {
    f = p->script[p->script_head++];
  } else if (p->probability > 0) {
    double u = (double)(splitmix64(&p->rng) >> 11) * (1.0 / 9007199254740992.0);
    unsigned int mask = p->kinds_mask & BK_PROXY_ALL_KINDS;
    if (!mask)
      mask = BK_PROXY_ALL_KINDS;
    if (u < p->probability) {
      unsigned int kinds[BK_PROXY_KIND_COUNT], nk = 0;
      for (unsigned int k = 1; k < BK_PROXY_KIND_COUNT; k++)
        if (mask & BK_PROXY_BIT(k))
          kinds[nk++] = k;
      f.kind = (bk_proxy_kind)kinds[splitmix64(&p->rng) % nk];
      switch (f.kind) {
      case BK_PROXY_LATENCY:
        f.latency_ms = 1 + (unsigned)rand_upto(&p->rng, o->random_latency_ms - 1);
        break;
      case BK_PROXY_BANDWIDTH:
        f.rate = o->random_rate / 2 + rand_upto(&p->rng, o->random_rate / 2);
        break;
      case BK_PROXY_RESET:
      case BK_PROXY_CLOSE:
        f.dir = (bk_proxy_dir)(splitmix64(&p->rng) & 1);
        f.after_bytes = f.dir == BK_PROXY_C2S
                            ? rand_log_upto(&p->rng, o->random_span_c2s)
                            : rand_upto(&p->rng, o->random_span_s2c);
        break;
      case BK_PROXY_BLACKHOLE:
        f.after_bytes = rand_log_upto(&p->rng, o->random_span_c2s);
        break;
      case BK_PROXY_SLICE:
        f.slice_max = o->random_slice_max;
        f.slice_delay_us = o->random_slice_delay_us;
        break;
      default:
        break;
      }
    }
  }
  if ((unsigned)f.kind >= BK_PROXY_KIND_COUNT)
    f.kind = BK_PROXY_NONE;
  if (f.kind == BK_PROXY_BLACKHOLE)
    f.dir = BK_PROXY_C2S;
  if (f.kind == BK_PROXY_BANDWIDTH && f.rate == 0)
    f.rate = 1;
  if (f.kind == BK_PROXY_SLICE && f.slice_max == 0)
    f.slice_max = 1;
  p->st.periods++;
  p->st.assigned[f.kind]++;
  return f;
}

/* A new period (connection or exchange) begins: choose its fault. */
static void begin_period(bkp_conn *c) {
  bk_proxy *p = c->p;
  pthread_mutex_lock(&p->mu);
  c->f = draw_locked(p);
  if (c->rng == 0)
    c->rng = splitmix64(&p->rng) | 1;
  pthread_mutex_unlock(&p->mu);
  c->fired = 0;
  long long t = now_ns();
  for (int k = 0; k < 2; k++) {
    c->d[k].period_bytes = 0;
    c->d[k].tokens = 0;
    c->d[k].tokens_ns = t;
  }
}

static void mark_fired(bkp_conn *c) {
  if (c->fired)
    return;
  c->fired = 1;
  pthread_mutex_lock(&c->p->mu);
  c->p->st.fired[c->f.kind]++;
  pthread_mutex_unlock(&c->p->mu);
}

/* A trigger fault (RESET, CLOSE, BLACKHOLE) fires now. */
static void fire(bkp_conn *c) {
  mark_fired(c);
  switch (c->f.kind) {
  case BK_PROXY_RESET:
    reset_fd(&c->fd[0]);
    reset_fd(&c->fd[1]);
    c->state = ST_DONE;
    break;
  case BK_PROXY_CLOSE:
    /* FIN both ways; the upstream side is closed at once, the client is
     * drained (closing it with unread data would send an RST instead). */
    shutdown(c->fd[0], SHUT_WR);
    shutdown(c->fd[1], SHUT_WR);
    close_fd(&c->fd[1]);
    c->state = ST_DRAIN;
    c->drain_deadline = now_ns() + BKP_DRAIN_TIMEOUT_NS;
    break;
  case BK_PROXY_BLACKHOLE:
    close_fd(&c->fd[1]);
    c->state = ST_HOLD;
    break;
  default:
    break;
  }
}

static int is_trigger(const bkp_conn *c, int k) {
  switch (c->f.kind) {
  case BK_PROXY_RESET:
  case BK_PROXY_CLOSE:
  case BK_PROXY_BLACKHOLE:
    return (int)c->f.dir == k;
  default:
    return 0;
  }
}

/* ---- one connection ---------------------------------------------------- */

static void abort_conn(bkp_conn *c) {
  reset_fd(&c->fd[0]);
  reset_fd(&c->fd[1]);
  c->state = ST_DONE;
}

/* Connect to the upstream, waiting at most BKP_CONNECT_TIMEOUT_NS or
 * until stop. 0 on success. */
static int connect_upstream(bkp_conn *c) {
  bk_proxy *p = c->p;
  int fd = socket(p->up_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (const struct sockaddr *)&p->up_addr, p->up_len) != 0) {
    if (errno != EINPROGRESS) {
      close(fd);
      return -1;
    }
    struct pollfd pf[2] = {{.fd = fd, .events = POLLOUT},
                           {.fd = p->stop_pipe[0], .events = POLLIN}};
    int r;
    do
      r = poll(pf, 2, (int)(BKP_CONNECT_TIMEOUT_NS / 1000000));
    while (r < 0 && errno == EINTR);
    int err = 0;
    socklen_t el = sizeof err;
    if (r <= 0 || (pf[1].revents & POLLIN) ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
      close(fd);
      return -1;
    }
  }
  c->fd[1] = fd;
  return 0;
}

/* Try to forward buffered bytes of direction k. */
static void do_write(bkp_conn *c, int k, long long now) {
  bkp_dir *d = &c->d[k];
  size_t n = d->len - d->off;
  if (is_trigger(c, k) && !c->fired) {
    unsigned long long rem = c->f.after_bytes - d->period_bytes;
    if (d->period_bytes >= c->f.after_bytes) {
      fire(c);
      return;
    }
    if (rem < n)
      n = (size_t)rem;
  }
  if (c->f.kind == BK_PROXY_BANDWIDTH) {
    double rate = (double)c->f.rate;
    double quantum = rate / 50.0; /* 20 ms worth */
    if (quantum < 1)
      quantum = 1;
    d->tokens += rate * (double)(now - d->tokens_ns) / 1e9;
    if (d->tokens > quantum)
      d->tokens = quantum;
    d->tokens_ns = now;
    double want = (double)n < quantum ? (double)n : quantum;
    if (d->tokens < want) {
      mark_fired(c);
      d->ready_ns = now + (long long)((want - d->tokens) * 1e9 / rate) + 1;
      return;
    }
    if ((double)n > d->tokens)
      n = (size_t)d->tokens;
  }
  if (c->f.kind == BK_PROXY_SLICE) {
    size_t s = 1 + (size_t)(splitmix64(&c->rng) % c->f.slice_max);
    if (s < n)
      n = s;
  }
  ssize_t w = send(c->fd[d->dst], d->buf + d->off, n, MSG_NOSIGNAL);
  if (w < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
      return;
    abort_conn(c);
    return;
  }
  d->off += (size_t)w;
  d->period_bytes += (unsigned long long)w;
  atomic_fetch_add(k == BK_PROXY_C2S ? &c->p->bytes_c2s : &c->p->bytes_s2c,
                   (unsigned long long)w);
  if (c->f.kind == BK_PROXY_BANDWIDTH)
    d->tokens -= (double)w;
  if (c->f.kind == BK_PROXY_SLICE) {
    if (d->off < d->len)
      mark_fired(c);
    if (c->f.slice_delay_us)
      d->ready_ns = now + 1000LL * (long long)rand_upto(&c->rng, c->f.slice_delay_us);
  }
  if (d->off == d->len)
    d->off = d->len = 0;
}

/* Read from the source of direction k into its (empty) buffer. */
static void do_read(bkp_conn *c, int k, long long now) {
  bkp_dir *d = &c->d[k];
  ssize_t r = recv(c->fd[d->src], d->buf, BKP_BUF, 0);
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
      return;
    abort_conn(c);
    return;
  }
  if (r == 0) {
    d->eof = 1;
    return;
  }
  if (k == BK_PROXY_C2S) {
    if (c->p->opt.per_exchange && c->s2c_seen)
      begin_period(c);
    c->s2c_seen = 0;
  } else {
    c->s2c_seen = 1;
  }
  d->len = (size_t)r;
  d->off = 0;
  d->ready_ns = now;
  if (c->f.kind == BK_PROXY_LATENCY && c->f.latency_ms) {
    mark_fired(c);
    d->ready_ns = now + 1000000LL * c->f.latency_ms;
  }
}

/* HOLD and DRAIN: read and drop what the client sends until it closes. */
static void discard_client(bkp_conn *c) {
  unsigned char *buf = c->d[0].buf;
  for (;;) {
    ssize_t r = recv(c->fd[0], buf, BKP_BUF, 0);
    if (r > 0)
      continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    if (r < 0 && errno == EINTR)
      continue;
    c->state = ST_DONE;
    return;
  }
}

static void conn_loop(bkp_conn *c) {
  bk_proxy *p = c->p;
  while (c->state != ST_DONE) {
    if (atomic_load(&p->stopping))
      return;
    long long now = now_ns();
    struct pollfd pf[3] = {{.fd = p->stop_pipe[0], .events = POLLIN},
                           {.fd = -1}, {.fd = -1}};
    long long wake = -1;
    if (c->state == ST_HOLD || c->state == ST_DRAIN) {
      pf[1].fd = c->fd[0];
      pf[1].events = POLLIN;
      if (c->state == ST_DRAIN) {
        if (now >= c->drain_deadline)
          return;
        wake = c->drain_deadline;
      }
    } else {
      short ev[2] = {0, 0};
      for (int k = 0; k < 2; k++) {
        bkp_dir *d = &c->d[k];
        if (d->off < d->len) {
          if (now < d->ready_ns) {
            if (wake < 0 || d->ready_ns < wake)
              wake = d->ready_ns;
          } else {
            ev[d->dst] |= POLLOUT;
          }
        } else if (!d->eof) {
          ev[d->src] |= POLLIN;
        } else if (!d->shut) {
          shutdown(c->fd[d->dst], SHUT_WR);
          d->shut = 1;
        }
      }
      if (c->d[0].shut && c->d[1].shut)
        return;
      for (int i = 0; i < 2; i++)
        if (ev[i]) {
          pf[1 + i].fd = c->fd[i];
          pf[1 + i].events = ev[i];
        }
    }
    struct timespec ts, *tsp = NULL;
    if (wake >= 0) {
      long long dt = wake - now;
      if (dt < 0)
        dt = 0;
      ts.tv_sec = (time_t)(dt / 1000000000LL);
      ts.tv_nsec = (long)(dt % 1000000000LL);
      tsp = &ts;
    }
    int r = ppoll(pf, 3, tsp, NULL);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return;
    }
    if (pf[0].revents)
      return;
    now = now_ns();
    if (c->state == ST_HOLD || c->state == ST_DRAIN) {
      if (pf[1].revents)
        discard_client(c);
      continue;
    }
    /* Writes first (they free buffers), then reads. */
    for (int k = 0; k < 2 && c->state == ST_FORWARD; k++) {
      bkp_dir *d = &c->d[k];
      if (d->off < d->len && now >= d->ready_ns && pf[1 + d->dst].revents)
        do_write(c, k, now);
    }
    for (int k = 0; k < 2 && c->state == ST_FORWARD; k++) {
      bkp_dir *d = &c->d[k];
      if (d->off == d->len && !d->eof &&
          (pf[1 + d->src].revents & (POLLIN | POLLHUP | POLLERR)))
        do_read(c, k, now);
    }
  }
}

static void *conn_main(void *arg) {
  bkp_conn *c = arg;
  bk_proxy *p = c->p;
  if (connect_upstream(c) != 0) {
    pthread_mutex_lock(&p->mu);
    p->st.upstream_failures++;
    pthread_mutex_unlock(&p->mu);
    reset_fd(&c->fd[0]);
  } else if (p->opt.per_exchange) {
    /* The first exchange begins with the client's first bytes, like the
     * others: a connection the client opens and never uses (libcurl may)
     * takes no fault from the script, so the script's numbering counts
     * requests only. */
    c->s2c_seen = 1;
    conn_loop(c);
  } else {
    begin_period(c);
    conn_loop(c);
  }
  close_fd(&c->fd[0]);
  close_fd(&c->fd[1]);
  pthread_mutex_lock(&p->mu);
  p->st.active--;
  if (p->st.active == 0)
    pthread_cond_broadcast(&p->idle_cv);
  pthread_mutex_unlock(&p->mu);
  atomic_store(&c->done, 1);
  char b = 1;
  ssize_t w = write(p->reap_pipe[1], &b, 1);
  (void)w; /* a full pipe already wakes the acceptor */
  return NULL;
}

static void conn_free(bkp_conn *c) {
  free(c->d[0].buf);
  free(c->d[1].buf);
  free(c);
}

/* ---- the acceptor ------------------------------------------------------- */

static void reap(bk_proxy *p, int all) {
  bkp_conn **pp = &p->conns;
  while (*pp) {
    bkp_conn *c = *pp;
    if (all || atomic_load(&c->done)) {
      pthread_join(c->th, NULL);
      *pp = c->next;
      p->nconns--;
      conn_free(c);
    } else {
      pp = &c->next;
    }
  }
}

static void accept_one(bk_proxy *p) {
  int fd = accept4(p->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
        errno == ENOMEM) {
      struct timespec ts = {0, 10000000};
      nanosleep(&ts, NULL);
    }
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bkp_conn *c = calloc(1, sizeof *c);
  if (c) {
    c->d[0].buf = malloc(BKP_BUF);
    c->d[1].buf = malloc(BKP_BUF);
  }
  if (!c || !c->d[0].buf || !c->d[1].buf) {
    if (c)
      conn_free(c);
    reset_fd(&fd);
    return;
  }
  c->p = p;
  c->fd[0] = fd;
  c->fd[1] = -1;
  c->d[0].src = 0;
  c->d[0].dst = 1;
  c->d[1].src = 1;
  c->d[1].dst = 0;
  c->state = ST_FORWARD;
  atomic_init(&c->done, 0);
  pthread_mutex_lock(&p->mu);
  p->st.accepted++;
  p->st.active++;
  pthread_mutex_unlock(&p->mu);
  if (pthread_create(&c->th, NULL, conn_main, c) != 0) {
    reset_fd(&c->fd[0]);
    conn_free(c);
    pthread_mutex_lock(&p->mu);
    p->st.active--;
    if (p->st.active == 0)
      pthread_cond_broadcast(&p->idle_cv);
    pthread_mutex_unlock(&p->mu);
    return;
  }
  c->next = p->conns;
  p->conns = c;
  p->nconns++;
}

static void *acceptor_main(void *arg) {
  bk_proxy *p = arg;
  for (;;) {
    struct pollfd pf[3] = {{.fd = p->stop_pipe[0], .events = POLLIN},
                           {.fd = p->reap_pipe[0], .events = POLLIN},
                           {.fd = -1}};
    if (p->nconns < p->opt.max_connections) {
      pf[2].fd = p->listen_fd;
      pf[2].events = POLLIN;
    }
    int r = poll(pf, 3, -1);
    if (r < 0 && errno != EINTR)
      break;
    if (pf[0].revents)
      break;
    if (pf[1].revents) {
      char buf[256];
      while (read(p->reap_pipe[0], buf, sizeof buf) > 0)
        ;
      reap(p, 0);
    }
    if (pf[2].revents)
      accept_one(p);
  }
  /* Connection threads see the stop pipe too. */
  reap(p, 1);
  return NULL;
}

/* ---- public ------------------------------------------------------------- */

int bk_proxy_start(bk_proxy **out, const char *upstream_host,
                   unsigned short upstream_port, const bk_proxy_options *opt) {
  *out = NULL;
  bk_proxy *p = calloc(1, sizeof *p);
  if (!p)
    return -1;
  p->listen_fd = -1;
  p->stop_pipe[0] = p->stop_pipe[1] = p->reap_pipe[0] = p->reap_pipe[1] = -1;
  if (opt)
    p->opt = *opt;
  bk_proxy_options *o = &p->opt;
  if (!o->max_connections)
    o->max_connections = 64;
  if (!o->random_latency_ms)
    o->random_latency_ms = 50;
  if (!o->random_rate)
    o->random_rate = 4u << 20;
  if (!o->random_span_c2s)
    o->random_span_c2s = 262144;
  if (!o->random_span_s2c)
    o->random_span_s2c = 128;
  if (!o->random_slice_max)
    o->random_slice_max = 256;
  if (!o->random_slice_delay_us)
    o->random_slice_delay_us = 100;
  atomic_init(&p->stopping, 0);
  atomic_init(&p->bytes_c2s, 0);
  atomic_init(&p->bytes_s2c, 0);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->idle_cv, NULL);
  p->rng = 1;

  char portstr[16];
  snprintf(portstr, sizeof portstr, "%u", (unsigned)upstream_port);
  struct addrinfo hints, *ai = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(upstream_host, portstr, &hints, &ai) != 0 || !ai)
    goto fail;
  memcpy(&p->up_addr, ai->ai_addr, ai->ai_addrlen);
  p->up_len = ai->ai_addrlen;
  freeaddrinfo(ai);

  if (pipe2(p->stop_pipe, O_CLOEXEC) != 0 || pipe2(p->reap_pipe, O_CLOEXEC) != 0)
    goto fail;
  set_nonblock(p->reap_pipe[0]);
  set_nonblock(p->reap_pipe[1]);

  p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p->listen_fd < 0)
    goto fail;
  int one = 1;
  setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(p->opt.listen_port);
  socklen_t sl = sizeof sa;
  if (bind(p->listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(p->listen_fd, 512) != 0 ||
      getsockname(p->listen_fd, (struct sockaddr *)&sa, &sl) != 0)
    goto fail;
  p->port = ntohs(sa.sin_port);
  if (pthread_create(&p->acceptor, NULL, acceptor_main, p) != 0)
    goto fail;
  *out = p;
  return 0;

fail:
  close_fd(&p->listen_fd);
  close_fd(&p->stop_pipe[0]);
  close_fd(&p->stop_pipe[1]);
  close_fd(&p->reap_pipe[0]);
  close_fd(&p->reap_pipe[1]);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->idle_cv);
  free(p);
  return -1;
}

unsigned short bk_proxy_port(const bk_proxy *p) { return p->port; }

char *bk_proxy_url(const bk_proxy *p, const char *path) {
  if (!path)
    path = "";
  size_t n = strlen(path) + 40;
  char *s = malloc(n);
  if (s)
    snprintf(s, n, "http://127.0.0.1:%u%s", (unsigned)p->port, path);
  return s;
}

void bk_proxy_script(bk_proxy *p, const bk_proxy_fault *faults, size_t n) {
  pthread_mutex_lock(&p->mu);
  if (p->script_head == p->script_len)
    p->script_head = p->script_len = 0;
  if (p->script_len + n > p->script_cap) {
    size_t cap = p->script_cap ? p->script_cap : 8;
    while (cap < p->script_len + n)
      cap *= 2;
    bk_proxy_fault *ns = realloc(p->script, cap * sizeof *ns);
    if (!ns) {
      pthread_mutex_unlock(&p->mu);
      return;
    }
    p->script = ns;
    p->script_cap = cap;
  }
  memcpy(p->script + p->script_len, faults, n * sizeof *faults);
  p->script_len += n;
  pthread_mutex_unlock(&p->mu);
}

void bk_proxy_set_random(bk_proxy *p, double probability, uint64_t seed,
                         unsigned int kinds_mask) {
  pthread_mutex_lock(&p->mu);
  p->probability = probability;
  p->rng = seed;
  p->kinds_mask = kinds_mask;
  pthread_mutex_unlock(&p->mu);
}

void bk_proxy_stats_get(bk_proxy *p, bk_proxy_stats *out) {
  pthread_mutex_lock(&p->mu);
  *out = p->st;
  pthread_mutex_unlock(&p->mu);
  out->bytes_c2s = atomic_load(&p->bytes_c2s);
  out->bytes_s2c = atomic_load(&p->bytes_s2c);
}

unsigned long long bk_proxy_wait_idle(bk_proxy *p, double timeout) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  long long ns = (long long)(timeout * 1e9);
  dl.tv_sec += (time_t)(ns / 1000000000LL);
  dl.tv_nsec += (long)(ns % 1000000000LL);
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&p->mu);
  while (p->st.active > 0) {
    if (pthread_cond_timedwait(&p->idle_cv, &p->mu, &dl) != 0)
      break;
  }
  unsigned long long a = p->st.active;
  pthread_mutex_unlock(&p->mu);
  return a;
}

void bk_proxy_stop(bk_proxy *p) {
  if (!p)
    return;
  atomic_store(&p->stopping, 1);
  char b = 1;
  ssize_t w;
  do
    w = write(p->stop_pipe[1], &b, 1);
  while (w < 0 && errno == EINTR);
  pthread_join(p->acceptor, NULL);
  close_fd(&p->listen_fd);
  close_fd(&p->stop_pipe[0]);
  close_fd(&p->stop_pipe[1]);
  close_fd(&p->reap_pipe[0]);
  close_fd(&p->reap_pipe[1]);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->idle_cv);
  free(p->script);
  free(p);
}
