/*
 * resumable_cost - what a resumable upload's chunks cost against one plain
 * PUT, and what a cut connection costs each of them. One process: the
 * reference server in raw mode (tests/support/bk_ts.h, memory store) on
 * loopback, fault proxies (tests/support/bk_proxy.h) in front of it for
 * the emulated links, and the library uploading items from memory (no
 * disk), one item per uploader, one worker.
 *
 *   resumable_cost [--reps N] [--links L,L,..] [--no-cut] [--cut-only]
 *                  [--rate MBPS] [--rtt-ms MS] [--latency-ms MS]
 *                  [--cut-size MIB] [--quick]
 *
 * Links (all on 127.0.0.1):
 *   loopback  client -> server.
 *   wan       client -> proxy (BANDWIDTH --rate MB/s, default 50, each
 *             direction, chosen per request/response exchange so a new
 *             request starts with an empty token bucket: idle time earns
 *             no burst) -> server, which holds every answer --rtt-ms
 *             (default 20) after the request's body is in
 *             (bks_faults.latency). The hold stands for the round trip a
 *             real link puts between a request's last byte and the next
 *             request's first byte.
 *   lat       client -> proxy (BANDWIDTH as above) -> proxy (LATENCY
 *             --latency-ms, default 10, every connection) -> server. The
 *             proxy's LATENCY holds each read (at most 64 KiB) that long
 *             before forwarding it, with one buffer per direction, so it
 *             also caps a stream at 64 KiB per hold (6.5 MB/s at 10 ms)
 *             and the BANDWIDTH limit never binds; an exchange gains
 *             about two holds (request, answer). Only 16 MiB items.
 *
 * Modes: one plain PUT (resumable_threshold = BULKUP_RESUMABLE_NEVER) and
 * resumable with chunks of 8, 16 and 32 MiB (resumable_threshold = 1, so
 * the 16 MiB items go resumable too). Every cell is run --reps times (3);
 * within a repetition the modes take turns in an order rotated by the
 * repetition, so drift hits all of them alike. Every upload is checked:
 * the item succeeded and the server stored the right SHA-256.
 *
 * The cut test: on the wan link with one more proxy in front that resets
 * (BK_PROXY_RESET, client to server) the upload's first connection after
 * half of the item's size; every mode, --cut-size MiB (256). The retry
 * waits requests.backoff_factor = 0.01 s (the default 1.5 s would
 * dominate): set for every run, it matters only here.
 *
 * Output: Markdown tables on stdout (progress on stderr). MB = 10^6 bytes.
 */
#include "bk_proxy.h"
#include "bk_ts.h"

#include <bulkup.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MiB ((uint64_t)1 << 20)
#define MAX_SIZES 4
#define NMODES 4
#define MAX_REPS 16
#define MAX_PROXIES 3

static const char *const mode_name[NMODES] = {"plain PUT", "resumable 8 MiB",
                                              "resumable 16 MiB",
                                              "resumable 32 MiB"};
static const size_t mode_chunk[NMODES] = {0, 8 << 20, 16 << 20, 32 << 20};

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- the data: one buffer, items are its prefixes ----------------------- */

static unsigned char *data;
static uint64_t data_size;

static void fill_data(uint64_t n) {
  uint64_t s = 0x5EEDULL;
  for (uint64_t i = 0; i < n; i += 8) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    memcpy(data + i, &z, n - i < 8 ? (size_t)(n - i) : 8);
  }
}

static void sha256_hex(const unsigned char *p, uint64_t n, char out[65]) {
  unsigned char d[32];
  unsigned dl = 0;
  EVP_Digest(p, (size_t)n, d, &dl, EVP_sha256(), NULL);
  for (int i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* ---- the links ---------------------------------------------------------- */

typedef struct link_cfg {
  const char *name;
  unsigned long long rate; /* BANDWIDTH bytes/s, 0: none */
  unsigned latency_ms;     /* proxy LATENCY, 0: none */
  double server_hold_s;    /* server answer hold, 0: none */
  int cut;                 /* a reset proxy in front */
} link_cfg;

typedef struct link_run {
  bk_proxy *px[MAX_PROXIES];
  int n;
  bk_proxy *cut; /* the front proxy of a cut link */
  unsigned short port;
} link_run;

static bk_ts *ts;

/* A proxy to 127.0.0.1:upstream, its every period given fault `f` (a
 * script long enough for any run here). */
static bk_proxy *proxy_with(unsigned short upstream, int per_exchange,
                            const bk_proxy_fault *f) {
  bk_proxy_options po;
  memset(&po, 0, sizeof po);
  po.per_exchange = per_exchange;
  bk_proxy *p = NULL;
  if (bk_proxy_start(&p, "127.0.0.1", upstream, &po) != 0)
    return NULL;
  if (f) {
    size_t n = 100000;
    bk_proxy_fault *s = malloc(n * sizeof *s);
    if (!s) {
      bk_proxy_stop(p);
      return NULL;
    }
    for (size_t i = 0; i < n; i++)
      s[i] = *f;
    bk_proxy_script(p, s, n);
    free(s);
  }
  return p;
}

static void link_down(link_run *lr) {
  for (int i = 0; i < lr->n; i++)
    bk_proxy_stop(lr->px[i]);
  lr->n = 0;
  bks_faults f;
  memset(&f, 0, sizeof f);
  bks_server_set_faults(ts, &f);
}

static int link_up(const link_cfg *l, link_run *lr) {
  memset(lr, 0, sizeof *lr);
  bks_faults f;
  memset(&f, 0, sizeof f);
  f.latency = l->server_hold_s;
  bks_server_set_faults(ts, &f);
  unsigned short up = bk_ts_port(ts);
  /* Built from the server outwards. */
  if (l->latency_ms) {
    bk_proxy_fault lf = {.kind = BK_PROXY_LATENCY, .latency_ms = l->latency_ms};
    if (!(lr->px[lr->n] = proxy_with(up, 0, &lf)))
      goto fail;
    up = bk_proxy_port(lr->px[lr->n++]);
  }
  if (l->rate) {
    bk_proxy_fault bf = {.kind = BK_PROXY_BANDWIDTH, .rate = l->rate};
    if (!(lr->px[lr->n] = proxy_with(up, 1, &bf)))
      goto fail;
    up = bk_proxy_port(lr->px[lr->n++]);
  }
  if (l->cut) {
    if (!(lr->px[lr->n] = proxy_with(up, 0, NULL)))
      goto fail;
    lr->cut = lr->px[lr->n];
    up = bk_proxy_port(lr->px[lr->n++]);
  }
  lr->port = up;
  return 0;
fail:
  fprintf(stderr, "resumable_cost: cannot start a proxy\n");
  link_down(lr);
  return -1;
}

/* ---- one upload ------------------------------------------------------------ */

typedef struct run_out {
  double secs;
  int ok;
  bulkup_item_status status;
  uint64_t bytes_sent;
  int attempts, requests;
  bool resumable;
  char message[256];
} run_out;

static void on_done(void *ud, const bulkup_result *r) {
  run_out *o = ud;
  o->status = r->status;
  o->bytes_sent = r->bytes_sent;
  o->attempts = r->attempts;
  o->requests = r->requests;
  o->resumable = r->resumable;
  snprintf(o->message, sizeof o->message, "%s", r->message ? r->message : "");
}

static int run_one(unsigned short port, uint64_t size, int mode,
                   const char *want_sha, run_out *o) {
  static unsigned long seq;
  memset(o, 0, sizeof *o);
  char path[64], url[128];
  snprintf(path, sizeof path, "/bench/%lu.bin", ++seq);
  snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)port, path);

  bulkup_uploader_options opt;
  bulkup_uploader_options_init(&opt);
  opt.workers = 1;
  opt.requests.backoff_factor = 0.01;
  opt.resumable_threshold = mode ? 1 : BULKUP_RESUMABLE_NEVER;
  if (mode)
    opt.resumable_chunk_size = mode_chunk[mode];
  opt.on_complete = on_done;
  opt.userdata = o;

  bulkup_item it;
  bulkup_item_init(&it);
  it.source = BULKUP_SOURCE_MEMORY;
  it.data = data;
  it.size = size;
  it.url = url;
  it.content_type = "application/octet-stream";

  double t0 = now_s();
  bulkup_uploader *u = NULL;
  if (bulkup_uploader_new(&u, &opt) != BULKUP_OK) {
    fprintf(stderr, "resumable_cost: %s\n", bulkup_last_error_message());
    return -1;
  }
  bulkup_err sub = bulkup_uploader_submit(u, &it, NULL);
  bulkup_report *rep = NULL;
  bulkup_err rc = bulkup_uploader_finish(u, &rep);
  o->secs = now_s() - t0;
  bulkup_report_free(rep);
  bulkup_uploader_free(u);

  char got[65] = "";
  long long stored = bk_ts_object_sha256(ts, path, got);
  o->ok = sub == BULKUP_OK && rc == BULKUP_OK &&
          o->status == BULKUP_ITEM_SUCCEEDED && stored == (long long)size &&
          strcmp(got, want_sha) == 0 && o->resumable == (mode != 0);
  if (!o->ok)
    fprintf(stderr,
            "resumable_cost: %s of %llu MiB failed: rc %d, status %d, "
            "stored %lld, %s\n",
            mode_name[mode], (unsigned long long)(size >> 20), (int)rc,
            (int)o->status, stored, o->message);
  bk_ts_reset(ts); /* frees the object, the session and the records */
  return o->ok ? 0 : -1;
}

/* ---- statistics and tables ------------------------------------------------- */

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct cell {
  double secs[MAX_REPS];
  double bytes_sent[MAX_REPS];
  int requests[MAX_REPS], attempts[MAX_REPS];
  int n;
} cell;

static double median(const double *v, int n) {
  double s[MAX_REPS];
  memcpy(s, v, (size_t)n * sizeof *s);
  qsort(s, (size_t)n, sizeof *s, cmp_d);
  return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static double minv(const double *v, int n) {
  double m = v[0];
  for (int i = 1; i < n; i++)
    m = v[i] < m ? v[i] : m;
  return m;
}

static double maxv(const double *v, int n) {
  double m = v[0];
  for (int i = 1; i < n; i++)
    m = v[i] > m ? v[i] : m;
  return m;
}

static int median_int(const int *v, int n) {
  double d[MAX_REPS];
  for (int i = 0; i < n; i++)
    d[i] = v[i];
  return (int)median(d, n);
}

/* The uncut wan medians by size, for the cut table (0: not measured). */
static uint64_t wan_size[MAX_SIZES];
static double wan_med[MAX_SIZES][NMODES];

static void print_link_table(const link_cfg *l, const uint64_t *sizes,
                             int nsizes, cell c[][NMODES]) {
  printf("\n### Link: %s\n\n", l->name);
  printf("| size | mode | requests | median s (min-max) | MB/s | "
         "ratio to plain |\n");
  printf("|---|---|---|---|---|---|\n");
  for (int s = 0; s < nsizes; s++) {
    double plain = median(c[s][0].secs, c[s][0].n);
    for (int m = 0; m < NMODES; m++) {
      cell *x = &c[s][m];
      double med = median(x->secs, x->n);
      if (!strcmp(l->name, "wan")) {
        wan_size[s] = sizes[s];
        wan_med[s][m] = med;
      }
      printf("| %llu MiB | %s | %d | %.3f (%.3f-%.3f) | %.1f | %.3f |\n",
             (unsigned long long)(sizes[s] >> 20), mode_name[m],
             median_int(x->requests, x->n), med, minv(x->secs, x->n),
             maxv(x->secs, x->n), (double)sizes[s] / med / 1e6, med / plain);
    }
  }
  /* Resumable time = plain + fixed + per_request * (requests - 1): the
   * per-request cost is the least-squares slope of the three resumable
   * medians against their request counts; what is left at one request
   * is the fixed cost of the resumable path (session start, finalize). */
  printf("\n| size | per extra request: slope over the 3 chunk sizes, ms | "
         "fixed cost of the resumable path, ms |\n|---|---|---|\n");
  for (int s = 0; s < nsizes; s++) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0, k = NMODES - 1;
    for (int m = 1; m < NMODES; m++) {
      double x = median_int(c[s][m].requests, c[s][m].n);
      double y = median(c[s][m].secs, c[s][m].n);
      sx += x, sy += y, sxx += x * x, sxy += x * y;
    }
    double den = k * sxx - sx * sx;
    double plain = median(c[s][0].secs, c[s][0].n);
    if (den > 0) {
      double b = (k * sxy - sx * sy) / den, a = (sy - b * sx) / k;
      printf("| %llu MiB | %.1f | %.0f |\n",
             (unsigned long long)(sizes[s] >> 20), 1000 * b,
             1000 * (a + b - plain));
    } else {
      /* one chunk in every mode: no slope */
      printf("| %llu MiB | - | %.0f |\n",
             (unsigned long long)(sizes[s] >> 20),
             1000 * (median(c[s][1].secs, c[s][1].n) - plain));
    }
  }
  fflush(stdout);
}

/* ---- main ----------------------------------------------------------------- */

static int usage(void) {
  fprintf(stderr,
          "usage: resumable_cost [--reps N] [--links loopback,wan,lat] "
          "[--no-cut] [--cut-only]\n"
          "                      [--rate MBPS] [--rtt-ms MS] [--latency-ms MS] "
          "[--cut-size MIB] [--quick]\n");
  return 2;
}

int main(int argc, char **argv) {
  int reps = 3, do_cut = 1, do_links = 1, quick = 0;
  double rate_mb = 50, rtt_ms = 20;
  unsigned latency_ms = 10;
  uint64_t cut_size = 256 * MiB;
  const char *links = "loopback,wan,lat";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--reps") && v)
      reps = atoi(v), i++;
    else if (!strcmp(a, "--links") && v)
      links = v, i++;
    else if (!strcmp(a, "--rate") && v)
      rate_mb = atof(v), i++;
    else if (!strcmp(a, "--rtt-ms") && v)
      rtt_ms = atof(v), i++;
    else if (!strcmp(a, "--latency-ms") && v)
      latency_ms = (unsigned)atoi(v), i++;
    else if (!strcmp(a, "--cut-size") && v)
      cut_size = strtoull(v, NULL, 10) * MiB, i++;
    else if (!strcmp(a, "--no-cut"))
      do_cut = 0;
    else if (!strcmp(a, "--cut-only"))
      do_links = 0;
    else if (!strcmp(a, "--quick"))
      quick = 1;
    else
      return usage();
  }
  if (reps < 1 || reps > MAX_REPS || rate_mb <= 0 || rtt_ms < 0 ||
      cut_size < MiB)
    return usage();

  uint64_t sizes[MAX_SIZES] = {16 * MiB, 64 * MiB, 256 * MiB};
  int nsizes = 3;
  if (quick) {
    sizes[2] = 32 * MiB, nsizes = 2, sizes[1] = 32 * MiB, sizes[0] = 16 * MiB;
    if (cut_size > 32 * MiB)
      cut_size = 32 * MiB;
  }
  data_size = sizes[nsizes - 1] > cut_size ? sizes[nsizes - 1] : cut_size;
  data = malloc(data_size);
  if (!data)
    return 1;
  fill_data(data_size);

  /* Expected digests, and what the reference server's finalize of a
   * session costs on this machine: a SHA-256 pass over the object and a
   * copy of it into a fresh buffer (src/server/resumable.c). */
  uint64_t all_sizes[MAX_SIZES + 1];
  int nall = 0;
  for (int s = 0; s < nsizes; s++)
    all_sizes[nall++] = sizes[s];
  all_sizes[nall++] = cut_size;
  char sha[MAX_SIZES + 1][65];
  double fin[MAX_SIZES + 1];
  for (int s = 0; s < nall; s++) {
    double t0 = now_s();
    sha256_hex(data, all_sizes[s], sha[s]);
    unsigned char *copy = malloc(all_sizes[s]);
    if (!copy)
      return 1;
    memcpy(copy, data, all_sizes[s]);
    fin[s] = now_s() - t0;
    free(copy);
  }

  if (bk_ts_start(&ts, NULL) != 0) {
    fprintf(stderr, "resumable_cost: cannot start the server\n");
    return 1;
  }
  unsigned long long rate = (unsigned long long)(rate_mb * 1e6);
  link_cfg all_links[] = {
      {.name = "loopback"},
      {.name = "wan", .rate = rate, .server_hold_s = rtt_ms / 1000},
      {.name = "lat", .rate = rate, .latency_ms = latency_ms},
  };

  printf("## resumable_cost: %d repetitions, medians; MB = 10^6 bytes\n\n",
         reps);
  printf("Links: loopback = direct; wan = proxy BANDWIDTH %.0f MB/s per "
         "exchange + server holds each answer %.0f ms; lat = proxy BANDWIDTH "
         "%.0f MB/s -> proxy LATENCY %u ms per forwarded read (<= 64 KiB).\n",
         rate_mb, rtt_ms, rate_mb, latency_ms);
  printf("Reference server's finalize estimate (SHA-256 + copy of the "
         "object, in this process):");
  for (int s = 0; s < nall; s++)
    printf(" %llu MiB %.3f s%s", (unsigned long long)(all_sizes[s] >> 20),
           fin[s], s + 1 < nall ? "," : "\n");
  fflush(stdout);

  int failures = 0;
  double t_start = now_s();
  if (do_links) {
    for (size_t li = 0; li < sizeof all_links / sizeof all_links[0]; li++) {
      const link_cfg *l = &all_links[li];
      /* is it asked for? */
      const char *p = strstr(links, l->name);
      size_t nl = strlen(l->name);
      if (!p || (p != links && p[-1] != ',') || (p[nl] && p[nl] != ','))
        continue;
      uint64_t lsizes[MAX_SIZES];
      int ln = nsizes;
      memcpy(lsizes, sizes, sizeof lsizes);
      if (l->latency_ms)
        ln = 1; /* the LATENCY link is slow: 16 MiB only */
      link_run lr;
      if (link_up(l, &lr) != 0)
        return 1;
      static cell c[MAX_SIZES][NMODES];
      memset(c, 0, sizeof c);
      double t0 = now_s();
      for (int r = 0; r < reps; r++)
        for (int s = 0; s < ln; s++)
          for (int k = 0; k < NMODES; k++) {
            int m = (k + r) % NMODES;
            run_out o;
            if (run_one(lr.port, lsizes[s], m, sha[s], &o) != 0)
              failures++;
            cell *x = &c[s][m];
            x->secs[x->n] = o.secs;
            x->bytes_sent[x->n] = (double)o.bytes_sent;
            x->requests[x->n] = o.requests;
            x->attempts[x->n] = o.attempts;
            x->n++;
            fprintf(stderr, "%s rep %d %llu MiB %s: %.3f s, %d requests\n",
                    l->name, r + 1, (unsigned long long)(lsizes[s] >> 20),
                    mode_name[m], o.secs, o.requests);
          }
      link_down(&lr);
      print_link_table(l, lsizes, ln, c);
      printf("\n(%s: %.0f s)\n", l->name, now_s() - t0);
    }
  }

  if (do_cut) {
    link_cfg l = all_links[1];
    l.name = "wan, one reset";
    l.cut = 1;
    link_run lr;
    if (link_up(&l, &lr) != 0)
      return 1;
    static cell c[NMODES];
    memset(c, 0, sizeof c);
    unsigned long long resets = 0;
    double t0 = now_s();
    for (int r = 0; r < reps; r++)
      for (int k = 0; k < NMODES; k++) {
        int m = (k + r) % NMODES;
        bk_proxy_fault f = {.kind = BK_PROXY_RESET, .dir = BK_PROXY_C2S,
                            .after_bytes = cut_size / 2};
        bk_proxy_script(lr.cut, &f, 1);
        bk_proxy_stats before, after;
        bk_proxy_stats_get(lr.cut, &before);
        run_out o;
        if (run_one(lr.port, cut_size, m, sha[nall - 1], &o) != 0)
          failures++;
        bk_proxy_stats_get(lr.cut, &after);
        unsigned long long fired =
            after.fired[BK_PROXY_RESET] - before.fired[BK_PROXY_RESET];
        resets += fired;
        if (fired != 1) {
          fprintf(stderr, "resumable_cost: the reset fired %llu times\n",
                  fired);
          failures++;
        }
        cell *x = &c[m];
        x->secs[x->n] = o.secs;
        x->bytes_sent[x->n] = (double)o.bytes_sent;
        x->requests[x->n] = o.requests;
        x->attempts[x->n] = o.attempts;
        x->n++;
        fprintf(stderr, "cut rep %d %s: %.3f s, %llu bytes sent, %d attempts\n",
                r + 1, mode_name[m], o.secs,
                (unsigned long long)o.bytes_sent, o.attempts);
      }
    link_down(&lr);
    printf("\n### Cut test: %llu MiB on the wan link, one connection reset "
           "(client to server) after %llu MiB\n\n",
           (unsigned long long)(cut_size >> 20),
           (unsigned long long)(cut_size >> 21));
    printf("| mode | attempts | requests | median s (min-max) | MB/s | "
           "ratio to plain | s lost to the cut | bytes sent (median) | re-sent | "
           "re-sent MiB |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    int ws = -1;
    for (int s = 0; s < MAX_SIZES; s++)
      if (wan_size[s] == cut_size)
        ws = s;
    double plain = median(c[0].secs, c[0].n);
    for (int m = 0; m < NMODES; m++) {
      cell *x = &c[m];
      double med = median(x->secs, x->n);
      double bs = median(x->bytes_sent, x->n);
      char lost[32] = "(no uncut run)";
      if (ws >= 0)
        snprintf(lost, sizeof lost, "%.3f", med - wan_med[ws][m]);
      printf("| %s | %d | %d | %.3f (%.3f-%.3f) | %.1f | %.3f | %s | %.0f | "
             "%.0f | %.2f |\n",
             mode_name[m], median_int(x->attempts, x->n),
             median_int(x->requests, x->n), med, minv(x->secs, x->n),
             maxv(x->secs, x->n), (double)cut_size / med / 1e6, med / plain,
             lost, bs, bs - (double)cut_size,
             (bs - (double)cut_size) / (double)MiB);
    }
    printf("\n(cut test: %.0f s, %llu resets fired)\n", now_s() - t0, resets);
  }
  printf("\nTotal: %.0f s; %d failed upload(s) or check(s).\n",
         now_s() - t_start, failures);
  bk_ts_stop(ts);
  free(data);
  return failures ? 1 : 0;
}
