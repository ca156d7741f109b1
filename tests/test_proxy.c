/* The fault-injecting TCP proxy (tests/support/bk_proxy.h): each fault
 * kind, shown through the proxy to the in-process test server with plain
 * libcurl and with raw sockets; exact counters; reproducible random
 * faults; per-exchange faults on a kept-alive connection; prompt stop. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bk_proxy.h"
#include "bk_test.h"
#include "bk_ts.h"

#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static bk_ts *ts;

static int suite_init(void) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return -1;
  return bk_ts_start(&ts, NULL);
}

static int suite_clean(void) {
  bk_ts_stop(ts);
  curl_global_cleanup();
  return 0;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static bk_proxy *start_proxy(const bk_proxy_options *o) {
  bk_proxy *p = NULL;
  CU_ASSERT_FATAL(bk_proxy_start(&p, "127.0.0.1", bk_ts_port(ts), o) == 0);
  CU_ASSERT_FATAL(p != NULL);
  CU_ASSERT(bk_proxy_port(p) != 0);
  return p;
}

/* ---- plain libcurl client ----------------------------------------------- */

typedef struct body_in {
  const unsigned char *data;
  size_t len, off;
} body_in;

static size_t read_cb(char *buf, size_t sz, size_t nm, void *ud) {
  body_in *b = ud;
  size_t n = sz * nm;
  if (n > b->len - b->off)
    n = b->len - b->off;
  memcpy(buf, b->data + b->off, n);
  b->off += n;
  return n;
}

static int seek_cb(void *ud, curl_off_t off, int origin) {
  body_in *b = ud;
  if (origin != SEEK_SET || off < 0 || (size_t)off > b->len)
    return CURL_SEEKFUNC_FAIL;
  b->off = (size_t)off;
  return CURL_SEEKFUNC_OK;
}

typedef struct body_out {
  unsigned char *buf;
  size_t len, cap;
} body_out;

static size_t write_cb(char *data, size_t sz, size_t nm, void *ud) {
  body_out *o = ud;
  size_t n = sz * nm;
  if (o->len + n > o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 65536;
    while (cap < o->len + n)
      cap *= 2;
    unsigned char *nb = realloc(o->buf, cap);
    if (!nb)
      return 0;
    o->buf = nb;
    o->cap = cap;
  }
  memcpy(o->buf + o->len, data, n);
  o->len += n;
  return n;
}

typedef struct req_result {
  CURLcode rc;
  long status;
  double elapsed;
  char err[CURL_ERROR_SIZE];
} req_result;

/* Options every request gets; a handle is given so that a test can keep a
 * connection alive across requests. */
static void common_opts(CURL *h, req_result *r, long timeout_ms) {
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->err);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms ? timeout_ms : 20000L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
}

static void put_with(CURL *h, bk_proxy *p, const char *path, const void *data,
                     size_t len, long timeout_ms, req_result *r) {
  memset(r, 0, sizeof *r);
  char *url = bk_proxy_url(p, path);
  body_in in = {data, len, 0};
  body_out out = {0};
  struct curl_slist *hdr = curl_slist_append(NULL, "Expect:");
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
  curl_easy_setopt(h, CURLOPT_READDATA, &in);
  curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
  curl_easy_setopt(h, CURLOPT_SEEKDATA, &in);
  curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
  common_opts(h, r, timeout_ms);
  double t0 = now_s();
  r->rc = curl_easy_perform(h);
  r->elapsed = now_s() - t0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(hdr);
  free(out.buf);
  free(url);
}

/* PUT on a fresh handle (a fresh connection). */
static void put(bk_proxy *p, const char *path, const void *data, size_t len,
                long timeout_ms, req_result *r) {
  CURL *h = curl_easy_init();
  CU_ASSERT_FATAL(h != NULL);
  put_with(h, p, path, data, len, timeout_ms, r);
  curl_easy_cleanup(h);
}

/* GET on a fresh handle; the body into *out (caller frees out->buf). */
static void get(bk_proxy *p, const char *path, body_out *out, req_result *r) {
  memset(r, 0, sizeof *r);
  CURL *h = curl_easy_init();
  CU_ASSERT_FATAL(h != NULL);
  char *url = bk_proxy_url(p, path);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
  common_opts(h, r, 0);
  double t0 = now_s();
  r->rc = curl_easy_perform(h);
  r->elapsed = now_s() - t0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
  curl_easy_cleanup(h);
  free(url);
}

static unsigned char *random_bytes(size_t n, unsigned long long seed) {
  unsigned char *b = malloc(n ? n : 1);
  CU_ASSERT_FATAL(b != NULL);
  bk_fill_random(b, n, seed);
  return b;
}

/* The server holds exactly these bytes at path. */
static void assert_stored(const char *path, const void *data, size_t len) {
  char want[65], got[65] = "";
  bk_sha256_hex(data, len, want);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, path, got), (long long)len);
  CU_ASSERT_STRING_EQUAL(got, want);
}

static void assert_not_stored(const char *path) {
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, path, NULL), -1);
}

static void report(const char *what, const req_result *r) {
  printf("\n    %s: curl %d (%s) status %ld in %.3f s [%s]", what, (int)r->rc,
         curl_easy_strerror(r->rc), r->status, r->elapsed, r->err);
}

static int is_send_or_recv_error(CURLcode rc) {
  return rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR;
}

/* ---- raw sockets -------------------------------------------------------- */

static int raw_connect(bk_proxy *p) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CU_ASSERT_FATAL(fd >= 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(bk_proxy_port(p));
  CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  return fd;
}

static int send_all(int fd, const void *buf, size_t len) {
  const char *b = buf;
  while (len) {
    ssize_t w = send(fd, b, len, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    b += w;
    len -= (size_t)w;
  }
  return 0;
}

/* Read until EOF or error (or 10 s); returns bytes read, and in *err the
 * errno of the final error (0 for a clean EOF, ETIMEDOUT for no end). */
static size_t read_to_end(int fd, char *buf, size_t cap, int *err) {
  size_t n = 0;
  double dl = now_s() + 10;
  *err = ETIMEDOUT;
  while (now_s() < dl) {
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, 100) <= 0)
      continue;
    char tmp[4096];
    ssize_t r = recv(fd, tmp, sizeof tmp, 0);
    if (r > 0) {
      size_t k = (size_t)r;
      if (k > cap - n)
        k = cap - n;
      memcpy(buf + n, tmp, k);
      n += k;
      continue;
    }
    if (r < 0 && errno == EINTR)
      continue;
    *err = r == 0 ? 0 : errno;
    break;
  }
  return n;
}

/* "PUT path" with a `len`-byte body and Connection: close, into buf;
 * returns the request's length. */
static size_t make_request(char *buf, size_t cap, const char *path,
                           const unsigned char *body, size_t len) {
  int h = snprintf(buf, cap,
                   "PUT %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
                   "%zu\r\nConnection: close\r\n\r\n",
                   path, len);
  CU_ASSERT_FATAL(h > 0 && (size_t)h + len <= cap);
  memcpy(buf + h, body, len);
  return (size_t)h + len;
}

/* ---- tests -------------------------------------------------------------- */

static void test_passthrough_identical(void) {
  bk_ts_reset(ts);
  bk_proxy *p = start_proxy(NULL);
  size_t n = (1 << 20) + 1;
  unsigned char *data = random_bytes(n, 11);
  req_result r;
  put(p, "/pass/a", data, n, 0, &r);
  CU_ASSERT_EQUAL(r.rc, CURLE_OK);
  CU_ASSERT_EQUAL(r.status, 200);
  assert_stored("/pass/a", data, n);
  body_out out = {0};
  get(p, "/pass/a", &out, &r);
  CU_ASSERT_EQUAL(r.rc, CURLE_OK);
  CU_ASSERT_EQUAL(r.status, 200);
  CU_ASSERT_EQUAL_FATAL(out.len, n);
  CU_ASSERT(memcmp(out.buf, data, n) == 0);
  free(out.buf);
  CU_ASSERT_EQUAL(bk_proxy_wait_idle(p, 5), 0);
  bk_proxy_stats st;
  bk_proxy_stats_get(p, &st);
  CU_ASSERT_EQUAL(st.accepted, 2);
  CU_ASSERT_EQUAL(st.periods, 2);
  CU_ASSERT_EQUAL(st.assigned[BK_PROXY_NONE], 2);
  for (int k = 0; k < BK_PROXY_KIND_COUNT; k++)
    CU_ASSERT_EQUAL(st.fired[k], 0);
  CU_ASSERT(st.bytes_c2s > n && st.bytes_c2s < n + 1000);
  CU_ASSERT(st.bytes_s2c > n && st.bytes_s2c < n + 2000);
  bk_proxy_stop(p);
  free(data);
}

static void test_counters_exact(void) {
  bk_ts_reset(ts);
  bk_proxy *p = start_proxy(NULL);
  unsigned char *body = random_bytes(3000, 12);
  static char req[8192], resp[8192];
  size_t reqlen = make_request(req, sizeof req, "/count/a", body, 3000);
  int fd = raw_connect(p);
  CU_ASSERT_EQUAL(send_all(fd, req, reqlen), 0);
  int err;
  size_t got = read_to_end(fd, resp, sizeof resp, &err);
  close(fd);
  CU_ASSERT_EQUAL(err, 0);
  CU_ASSERT(got > 12 && memcmp(resp, "HTTP/1.1 200", 12) == 0);
  CU_ASSERT_EQUAL(bk_proxy_wait_idle(p, 5), 0);
  bk_proxy_stats st;
  bk_proxy_stats_get(p, &st);
  CU_ASSERT_EQUAL(st.accepted, 1);
  CU_ASSERT_EQUAL(st.active, 0);
  CU_ASSERT_EQUAL(st.upstream_failures, 0);
  CU_ASSERT_EQUAL(st.periods, 1);
  CU_ASSERT_EQUAL(st.assigned[BK_PROXY_NONE], 1);
  CU_ASSERT_EQUAL(st.bytes_c2s, reqlen);
  CU_ASSERT_EQUAL(st.bytes_s2c, got);
  assert_stored("/count/a", body, 3000);
  bk_proxy_stop(p);
  free(body);
}

static void test_latency(void) {
  bk_ts_reset(ts);
  bk_proxy *p = start_proxy(NULL);
  unsigned char *data = random_bytes(100, 13);
  req_result r;
  /* without a fault: the baseline */
  put(p, "/lat/0", data, 100, 0, &r);
  CU_ASSERT_EQUAL(r.rc, CURLE_OK);
  double base = r.elapsed;
  bk_proxy_fault f = {.kind = BK_PROXY_LATENCY, .latency_ms = 300};
  bk_proxy_script(p, &f, 1);
  put(p, "/lat/1", data, 100, 0, &r);
  report("latency 300 ms", &r);
  printf(" (baseline %.3f s)", base);
  CU_ASSERT_EQUAL(r.rc, CURLE_OK);
  CU_ASSERT_EQUAL(r.status, 200);
  /* the request and the response are each held 300 ms */
  CU_ASSERT(r.elapsed >= 0.59);
  assert_stored("/lat/1", data, 100);
  bk_proxy_stats st;
  bk_proxy_stats_get(p, &st);
  CU_ASSERT_EQUAL(st.assigned[BK_PROXY_LATENCY], 1);
  CU_ASSERT_EQUAL(st.fired[BK_PROXY_LATENCY], 1);
  bk_proxy_stop(p);
  free(data);
}

static void test_bandwidth(void) {
  bk_ts_reset(ts);
  bk_proxy *p = start_proxy(NULL);
  size_t n = 384 * 1024;
  unsigned long long rate = 256 * 1024;
  unsigned char *data = random_bytes(n, 14);
  bk_proxy_fault f = {.kind = BK_PROXY_BANDWIDTH, .rate = rate};
  bk_proxy_script(p, &f, 1);
  req_result r;
  put(p, "/bw/a", data, n, 0, &r);
  report("384 KiB at 256 KiB/s", &r);
  CU_ASSERT_EQUAL(r.rc, CURLE_OK);
  CU_ASSERT_EQUAL(r.status, 200);
  CU_ASSERT(r.elapsed >= (double)n / (double)rate * 0.98);
  CU_ASSERT(r.elapsed < 30);
  assert_stored("/bw/a", data, n);
  bk_proxy_stats st;
  bk_proxy_stats_get(p, &st);
  CU_ASSERT_EQUAL(st.fired[BK_PROXY_BANDWIDTH], 1);
  bk_proxy_stop(p);
  free(data);
}

static void test_reset_client_to_server(void) {
  bk_ts_reset(ts);
  bk_proxy *p = start_proxy(NULL);
  size_t n = 1 << 20;
  unsigned char *data = random_bytes(n, 15);
  bk_proxy_fault f = {.kind = BK_PROXY_RESET, .dir = BK_PROXY_C2S,
                      .after_bytes = 50000};
  bk_proxy_script(p, &f, 1);
  req_result r;
  put(p, "/rst/a", data, n, 0, &r);
  report("reset c2s after 50000", &r);
  CU_ASSERT(is_send_or_recv_error(r.rc));
  assert_not_stored("/rst/a");
  CU_ASSERT_EQUAL(bk_proxy_wait_idle(p, 5), 0);
  bk_proxy_stats st;
  bk_proxy_stats_get(p, &st);
  CU_ASSERT_EQUAL(st.fired[BK_PROXY_RESET], 1);
  CU_ASSERT_EQUAL(st.bytes_c2s, 50000);
  CU_ASSERT_EQUAL(st.bytes_s2c, 0);
  bk_proxy_stop(p);
  free(data);
}

static void test_reset_server_to_client(void) {
  bk_ts_reset(ts);
  bk_proxy *p = start_proxy(NULL);
  unsigned char *data = random_bytes(1000, 16);
  bk_proxy_fault f = {.kind = BK_PROXY_RESET, .dir = BK_PROXY_S2C,
                      .after_bytes = 10};
  bk_proxy_script(p, &f, 1);
  req_result r;
  put(p, "/rst/b", data, 1000, 0, &r);
  report("reset s2c after 10", &r);
  CU_ASSERT(is_send_or_recv_error(r.rc));
  /* the server had the whole body and answered */
  assert_stored("/rst/b", data, 1000);

  /* raw: the client sees exactly 10 bytes, then ECONNRESET (not EOF) */
  bk_proxy_script(p, &f, 1);
  static char req[4096], resp[4096];
  size_t reqlen = make_request(req, sizeof req, "/rst/c", data, 1000);
  int fd = raw_connect(p);
  CU_ASSERT_EQUAL(send_all(fd, req, reqlen), 0);
  int err;
  size_t got = read_to_end(fd, resp, sizeof resp, &err);
  close(fd);
  printf(" raw: %zu bytes then errno %d", got, err);
  CU_ASSERT(got <= 10);
  CU_ASSERT_EQUAL(err, ECONNRESET);
  CU_ASSERT_EQUAL(bk_proxy_wait_idle(p, 5), 0);
  bk_proxy_stats st;
  bk_proxy_stats_get(p, &st);
  CU_ASSERT_EQUAL(st.fired[BK_PROXY_RESET], 2);
  CU_ASSERT_EQUAL(st.bytes_s2c, 20);
  bk_proxy_stop(p);
  free(data);
}

static void test_blackhole(void) {
  bk_ts_reset(ts);
  bk_proxy *p = start_proxy(NULL);
  size_t n = 200000;
  unsigned char *data = random_bytes(n, 17);
  bk_proxy_fault f[2] = {{.kind = BK_PROXY_BLACKHOLE, .after_bytes = 0},
                         {.kind = BK_PROXY_BLACKHOLE, .after_bytes = 30000}};
  bk_proxy_script(p, f, 2);
  req_result r;
  put(p, "/bh/a", data, 1000, 800, &r);
  report("blackhole at 0", &r);
  CU_ASSERT_EQUAL(r.rc, CURLE_OPERATION_TIMEDOUT);
  CU_ASSERT(r.elapsed >= 0.75);
  put(p, "/bh/b", data, n, 800, &r);
  report("blackhole at 30000", &r);
  CU_ASSERT_EQUAL(r.rc, CURLE_OPERATION_TIMEDOUT);
  CU_ASSERT(r.elapsed >= 0.75);
  assert_not_stored("/bh/a");
  assert_not_stored("/bh/b");
  /* the proxy lets go once the client gives up */
  CU_ASSERT_EQUAL(bk_proxy_wait_idle(p, 5), 0);
  bk_proxy_stats st;
  bk_proxy_stats_get(p, &st);
  CU_ASSERT_EQUAL(st.fired[BK_PROXY_BLACKHOLE], 2);
  CU_ASSERT_EQUAL(st.bytes_c2s, 30000);
  CU_ASSERT_EQUAL(st.bytes_s2c, 0);
  bk_proxy_stop(p);
  free(data);
}

static void test_slicing_identical(void) {
  bk_ts_reset(ts);
  bk_proxy *p = start_proxy(NULL);
  size_t n = 40000;
  unsigned char *data = random_bytes(n, 18);
  bk_proxy_fault f = {.kind = BK_PROXY_SLICE, .slice_max = 7,
                      .slice_delay_us = 20};
  bk_proxy_fault f2[2] = {f, f};
  bk_proxy_script(p, f2, 2);
  req_result r;
  put(p, "/slice/a", data, n, 0, &r);
  report("slices of 1..7 bytes", &r);
  CU_ASSERT_EQUAL(r.rc, CURLE_OK);
  CU_ASSERT_EQUAL(r.status, 200);
  assert_stored("/slice/a", data, n);
  body_out out = {0};
  get(p, "/slice/a", &out, &r);
  CU_ASSERT_EQUAL(r.rc, CURLE_OK);
  CU_ASSERT_EQUAL_FATAL(out.len, n);
  CU_ASSERT(memcmp(out.buf, data, n) == 0);
  free(out.buf);
  CU_ASSERT_EQUAL(bk_proxy_wait_idle(p, 5), 0);
  bk_proxy_stats st;
  bk_proxy_stats_get(p, &st);
  CU_ASSERT_EQUAL(st.fired[BK_PROXY_SLICE], 2);
  bk_proxy_stop(p);
  free(data);
}

static void test_close_early(void) {
  bk_ts_reset(ts);
  bk_proxy *p = start_proxy(NULL);
  size_t n = 100000;
  unsigned char *data = random_bytes(n, 19);
  bk_proxy_fault f[3] = {
      {.kind = BK_PROXY_CLOSE, .dir = BK_PROXY_C2S, .after_bytes = 5000},
      {.kind = BK_PROXY_CLOSE, .dir = BK_PROXY_S2C, .after_bytes = 10},
      {.kind = BK_PROXY_CLOSE, .dir = BK_PROXY_S2C, .after_bytes = 5}};
  bk_proxy_script(p, f, 3);
  req_result r;
  put(p, "/close/a", data, n, 0, &r);
  report("close c2s after 5000", &r);
  CU_ASSERT_NOT_EQUAL(r.rc, CURLE_OK);
  CU_ASSERT(r.rc == CURLE_SEND_ERROR || r.rc == CURLE_RECV_ERROR ||
            r.rc == CURLE_GOT_NOTHING);
  assert_not_stored("/close/a");
  put(p, "/close/b", data, 1000, 0, &r);
  report("close s2c after 10", &r);
  CU_ASSERT_NOT_EQUAL(r.rc, CURLE_OK);
  CU_ASSERT(r.rc == CURLE_SEND_ERROR || r.rc == CURLE_RECV_ERROR ||
            r.rc == CURLE_GOT_NOTHING || r.rc == CURLE_PARTIAL_FILE ||
            r.rc == CURLE_WEIRD_SERVER_REPLY);

  /* raw: exactly 5 bytes, then a clean EOF (a FIN, not an RST) */
  static char req[4096], resp[4096];
  size_t reqlen = make_request(req, sizeof req, "/close/c", data, 1000);
  int fd = raw_connect(p);
  CU_ASSERT_EQUAL(send_all(fd, req, reqlen), 0);
  int err;
  size_t got = read_to_end(fd, resp, sizeof resp, &err);
  close(fd);
  printf(" raw: %zu bytes then errno %d", got, err);
  CU_ASSERT_EQUAL(got, 5);
  CU_ASSERT_EQUAL(err, 0);
  CU_ASSERT(memcmp(resp, "HTTP/", 5) == 0);
  CU_ASSERT_EQUAL(bk_proxy_wait_idle(p, 5), 0);
  bk_proxy_stats st;
  bk_proxy_stats_get(p, &st);
  CU_ASSERT_EQUAL(st.fired[BK_PROXY_CLOSE], 3);
  CU_ASSERT_EQUAL(st.bytes_s2c, 15);
  bk_proxy_stop(p);
  free(data);
}

/* Sequential connections draw the same faults from the same seed. */
static void draw_sequence(uint64_t seed, bk_proxy_stats *st) {
  bk_proxy *p = start_proxy(NULL);
  bk_proxy_set_random(p, 0.5, seed, BK_PROXY_ALL_KINDS);
  for (int i = 0; i < 60; i++) {
    int fd = raw_connect(p);
    /* wait until the proxy has drawn this connection's fault */
    for (int k = 0; k < 500; k++) {
      bk_proxy_stats s;
      bk_proxy_stats_get(p, &s);
      if (s.periods == (unsigned long long)i + 1)
        break;
      usleep(2000);
    }
    close(fd);
  }
  CU_ASSERT_EQUAL(bk_proxy_wait_idle(p, 5), 0);
  bk_proxy_stats_get(p, st);
  bk_proxy_stop(p);
}

static void test_random_reproducible(void) {
  bk_proxy_stats a, b, c;
  draw_sequence(1234, &a);
  draw_sequence(1234, &b);
  draw_sequence(99, &c);
  CU_ASSERT_EQUAL(a.periods, 60);
  CU_ASSERT_EQUAL(a.accepted, 60);
  int same_c = 1;
  printf("\n    seed 1234:");
  for (int k = 0; k < BK_PROXY_KIND_COUNT; k++) {
    printf(" %s=%llu", bk_proxy_kind_name((bk_proxy_kind)k), a.assigned[k]);
    CU_ASSERT_EQUAL(a.assigned[k], b.assigned[k]);
    if (a.assigned[k] != c.assigned[k])
      same_c = 0;
  }
  /* about half are faulted; every kind shows up */
  CU_ASSERT(a.assigned[BK_PROXY_NONE] >= 15 && a.assigned[BK_PROXY_NONE] <= 45);
  for (int k = 1; k < BK_PROXY_KIND_COUNT; k++)
    CU_ASSERT(a.assigned[k] >= 1);
  CU_ASSERT(!same_c);

  /* a mask restricts the kinds */
  bk_proxy *p = start_proxy(NULL);
  bk_proxy_set_random(p, 1.0, 7, BK_PROXY_BIT(BK_PROXY_LATENCY));
  for (int i = 0; i < 5; i++) {
    req_result r;
    put(p, "/rand/a", "abc", 3, 0, &r);
    CU_ASSERT_EQUAL(r.rc, CURLE_OK);
  }
  bk_proxy_stats st;
  bk_proxy_stats_get(p, &st);
  CU_ASSERT_EQUAL(st.assigned[BK_PROXY_LATENCY], 5);
  CU_ASSERT_EQUAL(st.periods, 5);
  bk_proxy_stop(p);
}

/* per_exchange: a fault hits one request of a kept-alive connection. */
static void test_per_exchange(void) {
  bk_ts_reset(ts);
  bk_proxy_options o = {.per_exchange = 1};
  bk_proxy *p = start_proxy(&o);
  bk_proxy_fault f[3] = {
      {.kind = BK_PROXY_NONE},
      {.kind = BK_PROXY_RESET, .dir = BK_PROXY_S2C, .after_bytes = 30},
      {.kind = BK_PROXY_NONE}};
  bk_proxy_script(p, f, 3);
  unsigned char *data = random_bytes(5000, 20);
  CURL *h = curl_easy_init();
  CU_ASSERT_FATAL(h != NULL);
  req_result r;
  put_with(h, p, "/ex/1", data, 5000, 0, &r);
  CU_ASSERT_EQUAL(r.rc, CURLE_OK);
  /* past the status line: on a reused connection that got no complete
   * header line, libcurl would retry on a fresh connection by itself */
  put_with(h, p, "/ex/2", data, 5000, 0, &r);
  report("second exchange reset after 30", &r);
  CU_ASSERT(is_send_or_recv_error(r.rc));
  put_with(h, p, "/ex/3", data, 5000, 0, &r);
  CU_ASSERT_EQUAL(r.rc, CURLE_OK);
  put_with(h, p, "/ex/4", data, 5000, 0, &r);
  CU_ASSERT_EQUAL(r.rc, CURLE_OK);
  curl_easy_cleanup(h);
  CU_ASSERT_EQUAL(bk_proxy_wait_idle(p, 5), 0);
  bk_proxy_stats st;
  bk_proxy_stats_get(p, &st);
  /* two connections; four exchanges */
  CU_ASSERT_EQUAL(st.accepted, 2);
  CU_ASSERT_EQUAL(st.periods, 4);
  CU_ASSERT_EQUAL(st.fired[BK_PROXY_RESET], 1);
  CU_ASSERT_EQUAL(st.assigned[BK_PROXY_NONE], 3);
  assert_stored("/ex/1", data, 5000);
  assert_stored("/ex/3", data, 5000);
  assert_stored("/ex/4", data, 5000);
  bk_proxy_stop(p);
  free(data);
}

/* A held (blackholed) and a slowed connection do not delay stop. */
static void test_stop_prompt(void) {
  bk_proxy *p = start_proxy(NULL);
  bk_proxy_fault f[2] = {{.kind = BK_PROXY_BLACKHOLE},
                         {.kind = BK_PROXY_LATENCY, .latency_ms = 60000}};
  bk_proxy_script(p, f, 2);
  int a = raw_connect(p), b = raw_connect(p);
  CU_ASSERT_EQUAL(send_all(a, "PUT / HTTP/1.1\r\n", 16), 0);
  CU_ASSERT_EQUAL(send_all(b, "PUT / HTTP/1.1\r\n", 16), 0);
  for (int k = 0; k < 500; k++) {
    bk_proxy_stats s;
    bk_proxy_stats_get(p, &s);
    if (s.fired[BK_PROXY_BLACKHOLE] == 1 && s.fired[BK_PROXY_LATENCY] == 1)
      break;
    usleep(2000);
  }
  double t0 = now_s();
  bk_proxy_stop(p);
  double dt = now_s() - t0;
  printf("\n    stop took %.3f s", dt);
  CU_ASSERT(dt < 1.0);
  /* both clients see the end of their connection */
  char buf[64];
  int err;
  read_to_end(a, buf, sizeof buf, &err);
  CU_ASSERT(err == 0 || err == ECONNRESET);
  read_to_end(b, buf, sizeof buf, &err);
  CU_ASSERT(err == 0 || err == ECONNRESET);
  close(a);
  close(b);
}

static void test_upstream_down(void) {
  /* a port with nothing listening: the client is reset, counted */
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  CU_ASSERT_FATAL(bind(s, (struct sockaddr *)&sa, sizeof sa) == 0);
  CU_ASSERT_FATAL(getsockname(s, (struct sockaddr *)&sa, &sl) == 0);
  bk_proxy *p = NULL;
  CU_ASSERT_FATAL(bk_proxy_start(&p, "127.0.0.1", ntohs(sa.sin_port), NULL) == 0);
  req_result r;
  put(p, "/down", "x", 1, 0, &r);
  report("upstream down", &r);
  CU_ASSERT_NOT_EQUAL(r.rc, CURLE_OK);
  CU_ASSERT_EQUAL(bk_proxy_wait_idle(p, 5), 0);
  bk_proxy_stats st;
  bk_proxy_stats_get(p, &st);
  CU_ASSERT_EQUAL(st.upstream_failures, 1);
  bk_proxy_stop(p);
  close(s);
}

static void reg(void) {
  bk_suite("proxy", suite_init, suite_clean);
  bk_test("pass-through is byte-identical", test_passthrough_identical);
  bk_test("counters are exact", test_counters_exact);
  bk_test("latency delays each chunk", test_latency);
  bk_test("bandwidth cap", test_bandwidth);
  bk_test("reset client-to-server", test_reset_client_to_server);
  bk_test("reset server-to-client", test_reset_server_to_client);
  bk_test("blackhole times out", test_blackhole);
  bk_test("slicing keeps bytes identical", test_slicing_identical);
  bk_test("early close with FIN", test_close_early);
  bk_test("random faults reproducible", test_random_reproducible);
  bk_test("per-exchange faults", test_per_exchange);
  bk_test("stop is prompt", test_stop_prompt);
  bk_test("upstream down", test_upstream_down);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
