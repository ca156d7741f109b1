/*
 * delay_proxy: a user-space TCP proxy that adds a fixed round-trip time
 * between a client and a server on loopback, for the WAN benchmarks
 * (bench/run --rtt). The kernels here have no netem, so the latency has to
 * come from user space.
 *
 *   delay_proxy --upstream HOST:PORT [--rtt MS] [--connect-rtt]
 *               [--listen [ADDR:]PORT] [--buffer BYTES] [--port-file FILE]
 *
 * It listens on 127.0.0.1 (port 0 by default: the kernel picks one), prints
 * the port on stdout (one line, then stdout is closed) and, with
 * --port-file, writes it there too. For every accepted connection it opens
 * one to the upstream and relays both directions, each chunk held for half
 * the RTT (the one-way delay) from the moment it was read.
 *
 * Why not store-and-forward: the proxy keeps reading while chunks wait.
 * Every chunk read goes into a queue stamped with its delivery time, so a
 * connection carries as many bytes per delay as the sender pushes (up to
 * --buffer bytes queued per direction, 4 MiB by default; beyond that it
 * stops reading and TCP's flow control pushes back). A proxy that waits
 * the delay before reading again would cap every connection at one buffer
 * per delay, which is not what a long link does.
 *
 * A FIN (the sender's shutdown or close) is delayed the same way: it is
 * queued behind the data and delivered as shutdown(SHUT_WR) on the other
 * side, so half-closed connections behave as on a real path. A reset or an
 * error on either side aborts the pair at once (both sides see a reset).
 *
 * --connect-rtt charges the TCP handshake: the client's handshake with the
 * proxy is local and takes no time, while across a real link the first
 * byte leaves only after SYN / SYN-ACK, one RTT after connect(). So bytes
 * from the client are not delivered before accept + RTT + one-way delay.
 *
 * One thread, epoll, level-triggered, non-blocking sockets; the soft
 * RLIMIT_NOFILE is raised to the hard limit (two descriptors per proxied
 * connection). A timerfd wakes the loop for the next due chunk: chunks are
 * stamped now + delay with one delay for all, so they fall due in the order
 * they were read, and one FIFO of all queued chunks gives the next deadline.
 * SIGTERM or SIGINT stops it cleanly: every connection is closed, the
 * counters are printed on stderr, exit status 0. Among them the lateness of
 * each chunk's first write against its due time (mean, max, share over 1
 * and 5 ms): how well the delay was kept, scheduling delays of a busy
 * machine included (and waits for the receiver's window, which a real link
 * would have too).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF (64 * 1024)
#define READS_PER_EVENT 4 /* then back to the loop, for fairness */
#define SLACK_NS 50000    /* deliver what falls due within 50 us now */

struct conn;

/* One chunk read from one side, waiting for its delivery time. */
struct chunk {
  struct chunk *next;         /* in its direction's queue */
  struct chunk *tprev, *tnext; /* in the global FIFO of chunks not yet due */
  struct dir *dir;
  uint64_t due_ns;
  size_t len, off;
  int fin;   /* a FIN marker (len 0): shutdown(SHUT_WR) the destination */
  int timed; /* still in the global FIFO */
  int tried; /* a write was attempted (lateness counted) */
  unsigned char data[];
};

/* One direction of a connection: read from src side, write to dst side. */
struct dir {
  struct conn *conn;
  int src, dst; /* 0 = the client's socket, 1 = the upstream's */
  struct chunk *head, *tail;
  size_t queued; /* bytes in the queue */
  int eof;       /* src read EOF (FIN queued) */
  int fin_sent;  /* dst shut down for writing */
  int blocked;   /* a write to dst got EAGAIN: waiting for EPOLLOUT */
};

/* The epoll cookie of one socket. */
struct end {
  struct conn *conn;
  int side;
};

struct conn {
  int fd[2];
  uint32_t mask[2]; /* current epoll interest per socket (0 = not added) */
  int added[2];
  struct end end[2];
  struct dir d[2];  /* d[0]: client -> upstream, d[1]: upstream -> client */
  int connected;    /* the upstream connect() completed */
  int gate_open;    /* --connect-rtt: client bytes may go out */
  uint64_t gate_ns;
  struct conn *gprev, *gnext; /* in the FIFO of closed gates */
  int gated;
  struct conn *prev, *next;   /* all connections (or the graveyard) */
  int dead;                   /* closed; freed at the end of the batch */
};

static struct {
  int ep, lfd, tfd, sfd;
  uint64_t delay_ns, rtt_ns;
  int connect_rtt;
  size_t cap;
  struct addrinfo *up;
  struct chunk *thead, *ttail; /* chunks not yet due, in due order */
  struct conn *ghead, *gtail;  /* closed gates, in gate order */
  struct conn *all;
  struct conn *grave; /* closed connections whose memory events may still name */
  uint64_t armed_ns;
  uint64_t now;
  int accept_paused;
  /* counters */
  uint64_t accepted, live, max_live, aborted, upstream_failed;
  uint64_t bytes[2];
  uint64_t reads, writes, wakeups;
  /* lateness of each chunk's first write against its due time: the
   * proxy's own accuracy (scheduling, a busy loop), plus waits for the
   * receiver's window or an upstream connect (that one TCP would have) */
  uint64_t late_n, late_sum_ns, late_max_ns, late_1ms, late_5ms;
} P;

static struct end listen_end, timer_end, signal_end;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "delay_proxy: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void usage(int status) {
  fprintf(status ? stderr : stdout,
          "usage: delay_proxy --upstream HOST:PORT [--rtt MS] [--connect-rtt]\n"
          "                   [--listen [ADDR:]PORT] [--buffer BYTES] [--port-file FILE]\n"
          "  --upstream HOST:PORT  where to relay to (numeric or resolvable)\n"
          "  --rtt MS              added round-trip time in milliseconds (default 0;\n"
          "                        fractions allowed); each direction gets MS/2\n"
          "  --connect-rtt         charge one RTT for the TCP handshake\n"
          "  --listen [ADDR:]PORT  where to listen (default 127.0.0.1:0)\n"
          "  --buffer BYTES        bytes queued per direction before reading stops\n"
          "                        (default 4194304)\n"
          "  --port-file FILE      also write the listening port to FILE\n"
          "Prints the port on stdout; SIGTERM stops it and prints counters on stderr.\n");
  exit(status);
}

/* --- epoll interest --------------------------------------------------------- */

static void set_mask(struct conn *c, int side, uint32_t want) {
  if (c->fd[side] < 0) return;
  if (c->added[side] && c->mask[side] == want) return;
  struct epoll_event ev = {.events = want, .data.ptr = &c->end[side]};
  if (!c->added[side]) {
    if (epoll_ctl(P.ep, EPOLL_CTL_ADD, c->fd[side], &ev) < 0) die("epoll_ctl add");
    c->added[side] = 1;
  } else if (epoll_ctl(P.ep, EPOLL_CTL_MOD, c->fd[side], &ev) < 0) {
    die("epoll_ctl mod");
  }
  c->mask[side] = want;
}

/* What socket `side` waits for now: readable while its outgoing direction
 * has room and no EOF; writable while its incoming direction is blocked (or
 * the upstream connect is in progress). A socket done both ways (EOF read,
 * FIN sent) leaves epoll: it would report EPOLLHUP for ever. */
static void update(struct conn *c, int side) {
  if (c->fd[side] < 0) return;
  struct dir *out = &c->d[side];      /* reads this socket */
  struct dir *in = &c->d[1 - side];   /* writes this socket */
  if (side == 1 && !c->connected) {
    set_mask(c, 1, EPOLLOUT);
    return;
  }
  if (out->eof && in->fin_sent) {
    if (c->added[side]) {
      epoll_ctl(P.ep, EPOLL_CTL_DEL, c->fd[side], NULL);
      c->added[side] = 0;
      c->mask[side] = 0;
    }
    return;
  }
  uint32_t want = 0;
  if (!out->eof && out->queued < P.cap) want |= EPOLLIN;
  if (in->blocked) want |= EPOLLOUT;
  set_mask(c, side, want);
}

/* --- the FIFOs ----------------------------------------------------------------- */

static void timer_append(struct chunk *k) {
  k->tprev = P.ttail;
  k->tnext = NULL;
  if (P.ttail) P.ttail->tnext = k; else P.thead = k;
  P.ttail = k;
  k->timed = 1;
}

static void timer_remove(struct chunk *k) {
  if (!k->timed) return;
  if (k->tprev) k->tprev->tnext = k->tnext; else P.thead = k->tnext;
  if (k->tnext) k->tnext->tprev = k->tprev; else P.ttail = k->tprev;
  k->tprev = k->tnext = NULL;
  k->timed = 0;
}

static void gate_remove(struct conn *c) {
  if (!c->gated) return;
  if (c->gprev) c->gprev->gnext = c->gnext; else P.ghead = c->gnext;
  if (c->gnext) c->gnext->gprev = c->gprev; else P.gtail = c->gprev;
  c->gprev = c->gnext = NULL;
  c->gated = 0;
}

/* --- connections --------------------------------------------------------------- */

/* Close a connection (reset: with RST, as an abort). Its memory stays
 * until reap(): later events of the same epoll batch may still point at it. */
static void conn_free(struct conn *c, int reset) {
  if (c->dead) return;
  for (int s = 0; s < 2; s++) {
    if (c->fd[s] < 0) continue;
    if (reset) {
      struct linger lg = {.l_onoff = 1, .l_linger = 0};
      setsockopt(c->fd[s], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(c->fd[s]); /* also leaves epoll */
    c->fd[s] = -1;
  }
  for (int i = 0; i < 2; i++) {
    struct chunk *k = c->d[i].head, *n;
    for (; k; k = n) {
      n = k->next;
      timer_remove(k);
      free(k);
    }
    c->d[i].head = c->d[i].tail = NULL;
    c->d[i].queued = 0;
  }
  gate_remove(c);
  if (c->prev) c->prev->next = c->next; else P.all = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = NULL;
  c->next = P.grave;
  P.grave = c;
  c->dead = 1;
  P.live--;
  if (reset) P.aborted++;
  if (P.accept_paused) { /* a descriptor was freed: accept again */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_end};
    if (epoll_ctl(P.ep, EPOLL_CTL_MOD, P.lfd, &ev) == 0) P.accept_paused = 0;
  }
}

static void reap(void) {
  while (P.grave) {
    struct conn *c = P.grave;
    P.grave = c->next;
    free(c);
  }
}

/* Both directions finished: FIN delivered each way. */
static int conn_done(struct conn *c) {
  if (c->d[0].fin_sent && c->d[1].fin_sent) {
    conn_free(c, 0);
    return 1;
  }
  return 0;
}

/* Write what is due in direction d. Returns -1 if the connection was freed. */
static int flush(struct dir *d) {
  struct conn *c = d->conn;
  if (d->blocked || c->fd[d->dst] < 0) return 0;
  if (!c->connected || (d->src == 0 && !c->gate_open)) return 0;
  while (d->head && !d->head->timed) {
    struct chunk *k = d->head;
    if (!k->tried) {
      /* due, or when the handshake's RTT is over (--connect-rtt): the
       * wait for the gate is the emulated delay, not lateness */
      uint64_t due = k->due_ns;
      if (d->src == 0 && c->gate_ns > due) due = c->gate_ns;
      uint64_t late = P.now > due ? P.now - due : 0;
      k->tried = 1;
      P.late_n++;
      P.late_sum_ns += late;
      if (late > P.late_max_ns) P.late_max_ns = late;
      if (late > 1000000) P.late_1ms++;
      if (late > 5000000) P.late_5ms++;
    }
    if (k->fin) {
      if (shutdown(c->fd[d->dst], SHUT_WR) < 0 && errno != ENOTCONN) {
        conn_free(c, 1);
        return -1;
      }
      d->fin_sent = 1;
    } else {
      while (k->off < k->len) {
        ssize_t n = send(c->fd[d->dst], k->data + k->off, k->len - k->off, MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK) {
            d->blocked = 1;
            update(c, d->dst);
            return 0;
          }
          conn_free(c, 1);
          return -1;
        }
        P.writes++;
        k->off += (size_t)n;
        d->queued -= (size_t)n;
        P.bytes[d->src] += (uint64_t)n;
      }
    }
    d->head = k->next;
    if (!d->head) d->tail = NULL;
    free(k);
  }
  if (conn_done(c)) return -1;
  update(c, d->src); /* room in the queue again: read more */
  update(c, d->dst);
  return 0;
}

static int enqueue(struct dir *d, const void *buf, size_t len, int fin) {
  struct chunk *k = malloc(sizeof *k + len);
  if (!k) return -1;
  memset(k, 0, sizeof *k);
  k->dir = d;
  k->len = len;
  k->fin = fin;
  k->due_ns = P.now + P.delay_ns;
  if (len) memcpy(k->data, buf, len);
  if (d->tail) d->tail->next = k; else d->head = k;
  d->tail = k;
  d->queued += len;
  if (P.delay_ns > 0) timer_append(k); /* else due now */
  return 0;
}

/* Read from side s into its direction's queue. Returns -1 if freed. */
static int do_read(struct conn *c, int s, int force) {
  static unsigned char buf[READ_BUF];
  struct dir *d = &c->d[s];
  for (int i = 0; i < READS_PER_EVENT && !d->eof; i++) {
    if (!force && d->queued >= P.cap) break;
    force = 0;
    ssize_t n = recv(c->fd[s], buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) { i--; continue; }
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      conn_free(c, 1);
      return -1;
    }
    P.reads++;
    if (enqueue(d, buf, (size_t)n, n == 0) < 0) {
      fprintf(stderr, "delay_proxy: out of memory: dropping a connection\n");
      conn_free(c, 1);
      return -1;
    }
    if (n == 0) d->eof = 1;
    if ((size_t)n < sizeof buf) break; /* drained (or nearly): back to epoll */
  }
  update(c, s);
  if (P.delay_ns == 0) return flush(d);
  return 0;
}

static void on_conn_event(struct end *e, uint32_t ev) {
  struct conn *c = e->conn;
  int s = e->side;
  if (s == 1 && !c->connected) {
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &el) < 0) err = errno;
    if (err) {
      P.upstream_failed++;
      conn_free(c, 1);
      return;
    }
    c->connected = 1;
    update(c, 1);
    if (flush(&c->d[0]) < 0) return;
    return;
  }
  if (ev & EPOLLERR) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd[s], SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
      conn_free(c, 1);
      return;
    }
  }
  if (ev & EPOLLOUT) {
    struct dir *in = &c->d[1 - s];
    in->blocked = 0;
    if (flush(in) < 0) return;
  }
  if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    /* EPOLLHUP with reading paused: read anyway, or epoll repeats it. */
    if (!c->d[s].eof) {
      if (do_read(c, s, !(ev & EPOLLIN)) < 0) return;
    } else if (ev & EPOLLHUP) {
      /* EOF already read and the socket hung up: its write side is gone
       * (reset) while this direction still had data for it. */
      conn_free(c, 1);
      return;
    }
  }
}

static void on_accept(void) {
  for (;;) {
    int fd = accept4(P.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if (errno == EMFILE || errno == ENFILE) {
        /* out of descriptors: stop accepting until a connection ends */
        struct epoll_event ev = {.events = 0, .data.ptr = &listen_end};
        if (epoll_ctl(P.ep, EPOLL_CTL_MOD, P.lfd, &ev) == 0) P.accept_paused = 1;
        fprintf(stderr, "delay_proxy: out of file descriptors (%" PRIu64 " live): pausing accept\n",
                P.live);
      }
      return; /* EAGAIN, or a transient error: the next event retries */
    }
    int up = socket(P.up->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (up < 0) {
      close(fd);
      P.upstream_failed++;
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
      close(fd);
      close(up);
      continue;
    }
    c->fd[0] = fd;
    c->fd[1] = up;
    for (int s = 0; s < 2; s++) {
      c->end[s].conn = c;
      c->end[s].side = s;
      c->d[s].conn = c;
      c->d[s].src = s;
      c->d[s].dst = 1 - s;
    }
    c->next = P.all;
    if (P.all) P.all->prev = c;
    P.all = c;
    P.accepted++;
    if (++P.live > P.max_live) P.max_live = P.live;
    c->gate_open = 1;
    if (P.connect_rtt && P.rtt_ns > 0) {
      c->gate_open = 0;
      c->gate_ns = P.now + P.rtt_ns + P.delay_ns;
      c->gprev = P.gtail;
      if (P.gtail) P.gtail->gnext = c; else P.ghead = c;
      P.gtail = c;
      c->gated = 1;
    }
    if (connect(up, P.up->ai_addr, P.up->ai_addrlen) == 0) {
      c->connected = 1;
    } else if (errno != EINPROGRESS) {
      P.upstream_failed++;
      conn_free(c, 1);
      continue;
    }
    update(c, 0);
    update(c, 1);
  }
}

/* Deliver what is due: chunks (in due order) and opened gates. */
static void on_timer(void) {
  uint64_t limit = P.now + SLACK_NS;
  while (P.ghead && P.ghead->gate_ns <= limit) {
    struct conn *c = P.ghead;
    gate_remove(c);
    c->gate_open = 1;
    flush(&c->d[0]); /* may free c */
  }
  while (P.thead && P.thead->due_ns <= limit) {
    struct chunk *k = P.thead;
    timer_remove(k);
    struct dir *d = k->dir;
    /* flush writes the due prefix of d's queue (this chunk at least, if it
     * is at the head); it may free the connection, and with it k. */
    flush(d);
  }
}

static void arm_timer(void) {
  uint64_t next = UINT64_MAX;
  if (P.thead) next = P.thead->due_ns;
  if (P.ghead && P.ghead->gate_ns < next) next = P.ghead->gate_ns;
  if (next == P.armed_ns) return;
  struct itimerspec its;
  memset(&its, 0, sizeof its);
  if (next != UINT64_MAX) {
    if (next == 0) next = 1; /* 0 would disarm */
    its.it_value.tv_sec = (time_t)(next / 1000000000u);
    its.it_value.tv_nsec = (long)(next % 1000000000u);
  }
  if (timerfd_settime(P.tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) die("timerfd_settime");
  P.armed_ns = next;
}

static void parse_hostport(const char *arg, char *host, size_t hl, char *port, size_t pl,
                           const char *default_host) {
  const char *colon = strrchr(arg, ':');
  if (!colon) {
    snprintf(host, hl, "%s", default_host);
    snprintf(port, pl, "%s", arg);
    return;
  }
  size_t n = (size_t)(colon - arg);
  if (n >= hl) usage(2);
  memcpy(host, arg, n);
  host[n] = 0;
  if (n == 0) snprintf(host, hl, "%s", default_host);
  snprintf(port, pl, "%s", colon + 1);
}

int main(int argc, char **argv) {
  const char *upstream = NULL, *listen_arg = "127.0.0.1:0", *port_file = NULL;
  double rtt_ms = 0;
  P.cap = 4u << 20;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    char *end;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(0);
    } else if (!strcmp(a, "--upstream") && v) {
      upstream = v, i++;
    } else if (!strcmp(a, "--rtt") && v) {
      rtt_ms = strtod(v, &end);
      if (*end || !(rtt_ms >= 0) || rtt_ms > 60000) usage(2);
      i++;
    } else if (!strcmp(a, "--connect-rtt")) {
      P.connect_rtt = 1;
    } else if (!strcmp(a, "--listen") && v) {
      listen_arg = v, i++;
    } else if (!strcmp(a, "--buffer") && v) {
      unsigned long long b = strtoull(v, &end, 10);
      if (*end || b < 1 || b > (1ull << 32)) usage(2);
      P.cap = (size_t)b;
      i++;
    } else if (!strcmp(a, "--port-file") && v) {
      port_file = v, i++;
    } else {
      usage(2);
    }
  }
  if (!upstream) usage(2);
  P.rtt_ns = (uint64_t)(rtt_ms * 1e6 + 0.5);
  P.delay_ns = P.rtt_ns / 2;

  char host[256], port[32];
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  parse_hostport(upstream, host, sizeof host, port, sizeof port, "127.0.0.1");
  int rc = getaddrinfo(host, port, &hints, &P.up);
  if (rc) {
    fprintf(stderr, "delay_proxy: upstream %s: %s\n", upstream, gai_strerror(rc));
    return 1;
  }
  struct addrinfo *la;
  parse_hostport(listen_arg, host, sizeof host, port, sizeof port, "127.0.0.1");
  hints.ai_flags = AI_PASSIVE;
  rc = getaddrinfo(host, port, &hints, &la);
  if (rc) {
    fprintf(stderr, "delay_proxy: listen %s: %s\n", listen_arg, gai_strerror(rc));
    return 1;
  }

  /* Two descriptors per connection: take all the hard limit allows. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  sigset_t ss;
  sigemptyset(&ss);
  sigaddset(&ss, SIGTERM);
  sigaddset(&ss, SIGINT);
  if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0) die("sigprocmask");

  P.lfd = socket(la->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (P.lfd < 0) die("socket");
  int one = 1;
  setsockopt(P.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(P.lfd, la->ai_addr, la->ai_addrlen) < 0) die("bind");
  if (listen(P.lfd, 4096) < 0) die("listen");
  freeaddrinfo(la);
  struct sockaddr_storage sa;
  socklen_t sl = sizeof sa;
  if (getsockname(P.lfd, (struct sockaddr *)&sa, &sl) < 0) die("getsockname");
  int lport = sa.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&sa)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&sa)->sin_port);

  P.ep = epoll_create1(EPOLL_CLOEXEC);
  P.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  P.sfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
  if (P.ep < 0 || P.tfd < 0 || P.sfd < 0) die("epoll/timerfd/signalfd");
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_end};
  if (epoll_ctl(P.ep, EPOLL_CTL_ADD, P.lfd, &ev) < 0) die("epoll_ctl");
  ev.data.ptr = &timer_end;
  if (epoll_ctl(P.ep, EPOLL_CTL_ADD, P.tfd, &ev) < 0) die("epoll_ctl");
  ev.data.ptr = &signal_end;
  if (epoll_ctl(P.ep, EPOLL_CTL_ADD, P.sfd, &ev) < 0) die("epoll_ctl");
  P.armed_ns = UINT64_MAX;

  if (port_file) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", lport) < 0 || fclose(f) != 0 || rename(tmp, port_file) < 0)
      die("port file");
  }
  printf("%d\n", lport);
  fflush(stdout);
  fclose(stdout); /* a reader waiting for EOF on our stdout gets it now */

  struct epoll_event evs[256];
  int stop = 0;
  while (!stop) {
    arm_timer();
    int n = epoll_wait(P.ep, evs, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    P.now = now_ns();
    P.wakeups++;
    int timer_fired = 0;
    for (int i = 0; i < n; i++) {
      struct end *e = evs[i].data.ptr;
      if (e == &listen_end) {
        on_accept();
      } else if (e == &timer_end) {
        uint64_t x;
        while (read(P.tfd, &x, sizeof x) > 0) {}
        P.armed_ns = UINT64_MAX; /* fired: rearm */
        timer_fired = 1;
      } else if (e == &signal_end) {
        struct signalfd_siginfo si;
        while (read(P.sfd, &si, sizeof si) > 0) stop = 1;
      } else if (!e->conn->dead) {
        /* (a connection closed earlier in this batch may still have
         * events in it: its memory lives until the batch is done) */
        on_conn_event(e, evs[i].events);
      }
    }
    if (timer_fired || P.thead || P.ghead) on_timer();
    reap();
  }

  fprintf(stderr,
          "delay_proxy: rtt %.3f ms%s: %" PRIu64 " connections (max %" PRIu64
          " at once, %" PRIu64 " aborted, %" PRIu64 " upstream failures), %" PRIu64
          " bytes to upstream, %" PRIu64 " bytes to clients, %" PRIu64 " reads, %" PRIu64
          " writes, %" PRIu64 " wakeups\n",
          rtt_ms, P.connect_rtt ? " (+1 RTT per connect)" : "", P.accepted, P.max_live,
          P.aborted, P.upstream_failed, P.bytes[0], P.bytes[1], P.reads, P.writes, P.wakeups);
  if (P.late_n)
    fprintf(stderr,
            "delay_proxy: delivery lateness over %" PRIu64 " chunks: mean %.3f ms, max %.3f ms, "
            "%.2f%% over 1 ms, %.2f%% over 5 ms\n",
            P.late_n, P.late_sum_ns / 1e6 / (double)P.late_n, P.late_max_ns / 1e6,
            100.0 * (double)P.late_1ms / (double)P.late_n,
            100.0 * (double)P.late_5ms / (double)P.late_n);
  while (P.all) conn_free(P.all, 0);
  reap();
  freeaddrinfo(P.up);
  close(P.lfd);
  close(P.tfd);
  close(P.sfd);
  close(P.ep);
  return 0;
}
