/*
 * bk_proxy.h - a fault-injecting TCP proxy for tests (in the spirit of
 * Toxiproxy).
 *
 * The proxy listens on 127.0.0.1, on a port the OS picks, and forwards
 * every accepted connection to an upstream host:port (normally another
 * loopback server: the in-process bk_ts, or nginx). Each connection runs
 * in its own thread (at most `max_connections` at once; further clients
 * wait in the listen backlog), with non-blocking sockets and a ppoll()
 * loop, so delays never block the other direction and bk_proxy_stop()
 * ends everything at once.
 *
 *   bk_proxy *p;
 *   bk_proxy_start(&p, "127.0.0.1", bk_ts_port(ts), NULL);
 *   bk_proxy_fault f = {.kind = BK_PROXY_RESET, .dir = BK_PROXY_C2S,
 *                       .after_bytes = 1000};
 *   bk_proxy_script(p, &f, 1);          (the next connection is reset)
 *   ... client talks to 127.0.0.1:bk_proxy_port(p) ...
 *   bk_proxy_stats st;
 *   bk_proxy_stats_get(p, &st);        (st.fired[BK_PROXY_RESET] == 1)
 *   bk_proxy_stop(p);
 *
 * Faults. A fault is chosen for a "period": by default a period is a whole
 * TCP connection (chosen at accept time). With options.per_exchange set, a
 * period is one request/response exchange: a new one starts whenever the
 * client sends bytes after the server has sent bytes (exactly the request
 * boundaries of HTTP/1.1 without pipelining or 100-continue), so faults hit
 * kept-alive connections too; a connection's first exchange begins with
 * its first client bytes, so a connection that sends nothing takes no
 * fault. The fault of a period comes, in this order, from the script queue
 * (bk_proxy_script), else from the random generator (bk_proxy_set_random),
 * else is BK_PROXY_NONE.
 *
 * Byte offsets (after_bytes) count bytes forwarded in the fault's direction
 * since the start of its period. A triggered fault fires when byte number
 * after_bytes + 1 would be forwarded, i.e. exactly after_bytes bytes get
 * through. In per-exchange mode a trigger that the exchange never reaches
 * is dropped when the next exchange starts (it did not fire).
 *
 * All functions are thread-safe except that bk_proxy_stop() must not race
 * with other calls on the same proxy. The proxy ignores SIGPIPE by sending
 * with MSG_NOSIGNAL; it installs no signal handler.
 */
#ifndef BK_PROXY_H
#define BK_PROXY_H

#include <stddef.h>
#include <stdint.h>

typedef struct bk_proxy bk_proxy;

/* What a connection (or exchange) suffers. */
typedef enum bk_proxy_kind {
  BK_PROXY_NONE = 0,
  /* every chunk read, either direction, is held `latency_ms` before it is
   * forwarded */
  BK_PROXY_LATENCY = 1,
  /* each direction forwards at most `rate` bytes per second (measured from
   * the first byte of the period: n bytes take at least n / rate s) */
  BK_PROXY_BANDWIDTH = 2,
  /* after `after_bytes` in direction `dir`, reset both sides (SO_LINGER 0
   * and close: the client and the server get a TCP RST) */
  BK_PROXY_RESET = 3,
  /* after `after_bytes` client-to-server bytes, forward nothing more,
   * either way: the upstream side is closed, the client's bytes are read
   * and dropped, and the client connection is held open until the client
   * closes it or the proxy stops */
  BK_PROXY_BLACKHOLE = 4,
  /* both directions are forwarded in writes of 1..`slice_max` bytes, each
   * followed by a pause of 0..`slice_delay_us` microseconds; the bytes are
   * unchanged */
  BK_PROXY_SLICE = 5,
  /* after `after_bytes` in direction `dir`, close both sides with a FIN
   * (shutdown(SHUT_WR)); what the client sends afterwards is dropped until
   * it closes */
  BK_PROXY_CLOSE = 6,
  BK_PROXY_KIND_COUNT
} bk_proxy_kind;

/* Bit for kinds_mask in bk_proxy_set_random(). */
#define BK_PROXY_BIT(kind) (1u << (kind))
/* Every fault kind. */
#define BK_PROXY_ALL_KINDS                                                    \
  (BK_PROXY_BIT(BK_PROXY_LATENCY) | BK_PROXY_BIT(BK_PROXY_BANDWIDTH) |        \
   BK_PROXY_BIT(BK_PROXY_RESET) | BK_PROXY_BIT(BK_PROXY_BLACKHOLE) |          \
   BK_PROXY_BIT(BK_PROXY_SLICE) | BK_PROXY_BIT(BK_PROXY_CLOSE))

/* Which way bytes travel. */
typedef enum bk_proxy_dir {
  BK_PROXY_C2S = 0, /* client to server (the request) */
  BK_PROXY_S2C = 1  /* server to client (the response) */
} bk_proxy_dir;

/* One fault. Fields a kind does not use are ignored. */
typedef struct bk_proxy_fault {
  bk_proxy_kind kind;
  bk_proxy_dir dir;                /* RESET, CLOSE (BLACKHOLE: always C2S) */
  unsigned long long after_bytes;  /* RESET, CLOSE, BLACKHOLE */
  unsigned int latency_ms;         /* LATENCY */
  unsigned long long rate;         /* BANDWIDTH, bytes/s, > 0 */
  unsigned int slice_max;          /* SLICE, >= 1 */
  unsigned int slice_delay_us;     /* SLICE */
} bk_proxy_fault;

typedef struct bk_proxy_options {
  /* connections served at once (threads); 0 means 64 */
  unsigned int max_connections;
  /* choose a fault per request/response exchange instead of per
   * connection (see above) */
  int per_exchange;
  /* Parameters of randomly drawn faults (0 means the default given):
   *   LATENCY     latency_ms uniform in 1..random_latency_ms (50)
   *   BANDWIDTH   rate uniform in random_rate/2..random_rate (4 MiB/s)
   *   RESET/CLOSE dir uniform; after_bytes log-uniform in
   *               0..random_span_c2s (262144) for C2S (each doubling of
   *               the offset as likely as the next), uniform in
   *               0..random_span_s2c (128) for S2C (the response head)
   *   BLACKHOLE   after_bytes log-uniform in 0..random_span_c2s
   *   SLICE       slice_max random_slice_max (256), slice_delay_us
   *               random_slice_delay_us (100) */
  unsigned int random_latency_ms;
  unsigned long long random_rate;
  unsigned long long random_span_c2s;
  unsigned long long random_span_s2c;
  unsigned int random_slice_max;
  unsigned int random_slice_delay_us;
  /* the port to listen on; 0 means one the OS picks. A stopped proxy's
   * port can be given to the next one (SO_REUSEADDR), so that a test can
   * take a "server" away and bring it back under the same URL. */
  unsigned short listen_port;
} bk_proxy_options;

/* Counters since start. "assigned" counts periods given each kind
 * (assigned[BK_PROXY_NONE]: periods without a fault); "fired" counts
 * faults that took effect: RESET, CLOSE, BLACKHOLE when triggered;
 * LATENCY, BANDWIDTH, SLICE when they first held back a byte. */
typedef struct bk_proxy_stats {
  unsigned long long accepted;    /* client connections accepted */
  unsigned long long active;      /* connections open now */
  unsigned long long upstream_failures; /* upstream connect failed (the
                                           client was reset) */
  unsigned long long periods;     /* connections, or exchanges */
  unsigned long long assigned[BK_PROXY_KIND_COUNT];
  unsigned long long fired[BK_PROXY_KIND_COUNT];
  unsigned long long bytes_c2s;   /* bytes forwarded client to server */
  unsigned long long bytes_s2c;   /* bytes forwarded server to client */
} bk_proxy_stats;

/* Start a proxy to upstream_host:upstream_port (a numeric address or a
 * name; resolved once, now). `opt` NULL means the defaults. 0 and *out on
 * success; -1 and *out NULL on failure. */
int bk_proxy_start(bk_proxy **out, const char *upstream_host,
                   unsigned short upstream_port, const bk_proxy_options *opt);

/* The port the proxy listens on (127.0.0.1). */
unsigned short bk_proxy_port(const bk_proxy *p);

/* "http://127.0.0.1:PORT" followed by `path` (NULL means ""); the caller
 * frees it. NULL on allocation failure. */
char *bk_proxy_url(const bk_proxy *p, const char *path);

/* Queue faults for the next n periods (connections, or exchanges with
 * per_exchange), after any still queued. Scripted faults win over random
 * ones. The array is copied. */
void bk_proxy_script(bk_proxy *p, const bk_proxy_fault *faults, size_t n);

/* Draw faults at random: each period without a scripted fault gets, with
 * `probability` (0..1), a fault of a kind picked uniformly among the bits
 * of kinds_mask (BK_PROXY_BIT(kind); 0 means all), its parameters drawn as
 * described in bk_proxy_options. The generator (splitmix64) is seeded with
 * `seed`: the sequence of faults drawn is reproducible; which connection
 * gets which depends on the order in which periods start. probability 0
 * turns random faults off. */
void bk_proxy_set_random(bk_proxy *p, double probability, uint64_t seed,
                         unsigned int kinds_mask);

/* Snapshot of the counters. */
void bk_proxy_stats_get(bk_proxy *p, bk_proxy_stats *out);

/* Wait until no client connection is open, or `timeout` seconds pass;
 * returns the number still open. */
unsigned long long bk_proxy_wait_idle(bk_proxy *p, double timeout);

/* Close every connection at once, stop the threads, free the proxy. NULL
 * does nothing. */
void bk_proxy_stop(bk_proxy *p);

/* "NONE", "LATENCY", ... (static). */
const char *bk_proxy_kind_name(bk_proxy_kind kind);

#endif
