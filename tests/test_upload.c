/* The upload engine against the fault-scripting test server: one test per
 * fault kind, asserting attempts, status, error kind and stored bytes. */
#include "bk_test.h"
#include "bk_proxy.h"
#include "bk_ts.h"
#include "internal.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static bk_ts *ts;
static bk_ts *tls_ts;
static char *tmp;

static int suite_init(void) {
  if (bk_ts_start(&ts, NULL) != 0)
    return -1;
  bk_ts_options o = {.tls = 1};
  if (bk_ts_start(&tls_ts, &o) != 0)
    return -1;
  tmp = bk_tmpdir("upload");
  return tmp ? 0 : -1;
}

static int suite_clean(void) {
  bk_ts_stop(ts);
  bk_ts_stop(tls_ts);
  bk_rm_rf(tmp);
  free(tmp);
  return 0;
}

/* Fast settings for tests: tiny backoff, short timeouts. */
static void fast_options(bulkup_uploader_options *o) {
  bulkup_uploader_options_init(o);
  bk_test_threads(o);
  o->workers = 2;
  o->requests.backoff_factor = 0.01;
  o->requests.connect_timeout = 5;
  o->requests.read_timeout = 5;
  o->requests.write_timeout = 5;
}

/* A file of `size` seeded bytes under tmp; returns its path (static buf
 * rotates between 4). */
static const char *make_file(const char *name, size_t size,
                             unsigned long long seed) {
  static char paths[4][1024];
  static int k;
  char *p = paths[k++ % 4];
  snprintf(p, 1024, "%s/%s", tmp, name);
  unsigned char *buf = malloc(size ? size : 1);
  bk_fill_random(buf, size, seed);
  CU_ASSERT_FATAL(bk_write_file(p, buf, size) == 0);
  free(buf);
  return p;
}

typedef struct run {
  bulkup_err rc;
  bulkup_report *rep;
  bulkup_summary sum;
} run;

/* Upload one file to `path` on the server with options o. */
static void upload_one(bk_ts *server, const bulkup_uploader_options *o,
                       const char *file, const char *path, run *r) {
  bulkup_uploader *u = NULL;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, o) == BULKUP_OK);
  bulkup_item it;
  bulkup_item_init(&it);
  it.path = file;
  char *url = bk_ts_url(server, path);
  it.url = url;
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
  free(url);
  r->rc = bulkup_uploader_finish(u, &r->rep);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r->rep);
  bulkup_report_summary(r->rep, &r->sum);
  CU_ASSERT_EQUAL(r->sum.submitted, 1);
  CU_ASSERT_EQUAL(r->sum.succeeded + r->sum.failed + r->sum.cancelled, 1);
  bulkup_uploader_free(u);
}

static void assert_stored(bk_ts *server, const char *path, const char *file) {
  char want[65], got[65];
  CU_ASSERT_FATAL(bk_sha256_file_hex(file, want) == 0);
  struct stat st;
  stat(file, &st);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(server, path, got), (long long)st.st_size);
  CU_ASSERT_STRING_EQUAL(got, want);
}

static const bulkup_result *only_failure(const run *r) {
  CU_ASSERT_EQUAL_FATAL(bulkup_report_failure_count(r->rep), 1);
  return bulkup_report_failure(r->rep, 0);
}

/* ---- success paths ---------------------------------------------------- */

static void test_many_files_stored_identically(void) {
  bk_ts_reset(ts);
  unsigned long conns0 = bk_ts_connections(ts);
  bulkup_uploader_options o;
  fast_options(&o);
  o.workers = 4;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  /* Sizes across the small-file / streamed boundary (256 KiB). */
  static const size_t sizes[] = {0, 1, 100, 16384, 262143, 262144, 262145,
                                 1000000, 3 << 20};
  enum { N = 60 };
  char files[N][1024];
  for (int i = 0; i < N; i++) {
    char name[64];
    snprintf(name, sizeof name, "many-%d.png", i);
    snprintf(files[i], sizeof files[i], "%s", make_file(name, sizes[i % 9], 100 + i));
    bulkup_item it;
    bulkup_item_init(&it);
    it.path = files[i];
    char path[64];
    snprintf(path, sizeof path, "/many/%d.png", i);
    char *url = bk_ts_url(ts, path);
    it.url = url;
    uint64_t idx = 99;
    CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, &idx), BULKUP_OK);
    CU_ASSERT_EQUAL(idx, (uint64_t)i);
    free(url);
  }
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.submitted, N);
  CU_ASSERT_EQUAL(s.succeeded, N);
  CU_ASSERT_EQUAL(s.failed, 0);
  CU_ASSERT_EQUAL(s.retries, 0);
  uint64_t total = 0;
  for (int i = 0; i < N; i++) {
    char path[64];
    snprintf(path, sizeof path, "/many/%d.png", i);
    assert_stored(ts, path, files[i]);
    total += sizes[i % 9];
  }
  CU_ASSERT_EQUAL(s.bytes_sent, total);
  CU_ASSERT_EQUAL(s.bytes_succeeded, total);
  /* One connection per worker, kept across items. */
  CU_ASSERT(bk_ts_connections(ts) - conns0 <= 4);
  /* The headers the SDK sends. */
  bk_ts_request rq;
  CU_ASSERT_EQUAL_FATAL(bk_ts_request_get(ts, 0, &rq), 0);
  CU_ASSERT_STRING_EQUAL(rq.method, "PUT");
  CU_ASSERT_STRING_EQUAL(rq.content_type, "image/png");
  CU_ASSERT_STRING_EQUAL(rq.cache_control, "max-age=86400");
  CU_ASSERT_STRING_EQUAL(rq.expect, "");
  CU_ASSERT_EQUAL(rq.content_length, (long long)rq.body_bytes);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}

static int64_t cb_read(void *ctx, uint64_t off, void *buf, size_t len) {
  const unsigned char *src = ctx;
  size_t total = 200000;
  if (off >= total)
    return 0;
  size_t n = total - off < len ? total - off : len;
  if (n > 777) /* short reads must be handled */
    n = 777;
  memcpy(buf, src + off, n);
  return (int64_t)n;
}

static void test_memory_and_callback_sources(void) {
  bk_ts_reset(ts);
  bulkup_uploader_options o;
  fast_options(&o);
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  unsigned char *data = malloc(200000);
  bk_fill_random(data, 200000, 7);
  char want[65];
  bk_sha256_hex(data, 200000, want);

  bulkup_item it;
  bulkup_item_init(&it);
  it.source = BULKUP_SOURCE_MEMORY;
  it.data = data;
  it.size = 200000;
  it.data_type = BULKUP_DATA_TYPE_DICOM;
  char *url = bk_ts_url(ts, "/mem/a.dcm?X-Goog-Signature=abc");
  it.url = url;
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
  free(url);

  bulkup_item_init(&it);
  it.source = BULKUP_SOURCE_CALLBACK;
  it.read = cb_read;
  it.read_ctx = data;
  it.size = 200000;
  it.content_type = "application/x-custom";
  it.cache_control = "";
  const char *hdrs[] = {"X-Test: yes", NULL};
  it.headers = hdrs;
  url = bk_ts_url(ts, "/cb/b.bin");
  it.url = url;
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
  free(url);

  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  char got[65];
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/mem/a.dcm", got), 200000);
  CU_ASSERT_STRING_EQUAL(got, want);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/cb/b.bin", got), 200000);
  CU_ASSERT_STRING_EQUAL(got, want);
  for (size_t i = 0; i < bk_ts_request_count(ts); i++) {
    bk_ts_request rq;
    bk_ts_request_get(ts, i, &rq);
    if (strcmp(rq.path, "/mem/a.dcm") == 0) {
      CU_ASSERT_STRING_EQUAL(rq.content_type, "application/dicom");
      CU_ASSERT_STRING_EQUAL(rq.cache_control, "max-age=86400");
    } else {
      CU_ASSERT_STRING_EQUAL(rq.content_type, "application/x-custom");
      CU_ASSERT_STRING_EQUAL(rq.cache_control, "");
    }
  }
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  free(data);
}

static void test_content_md5_sent(void) {
  bk_ts_reset(ts);
  bulkup_uploader_options o;
  fast_options(&o);
  o.content_md5 = true;
  const char *small = make_file("md5-small.jpg", 5000, 11);
  const char *big = make_file("md5-big.jpg", 700000, 12);
  const char *files[2] = {small, big};
  for (int i = 0; i < 2; i++) {
    run r;
    upload_one(ts, &o, files[i], i ? "/md5/big" : "/md5/small", &r);
    CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
    bk_ts_request rq;
    CU_ASSERT_EQUAL_FATAL(bk_ts_request_get(ts, (size_t)i, &rq), 0);
    size_t len;
    void *d = bk_ts_object_data(ts, rq.path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    unsigned char md[16];
    unsigned int n;
    EVP_Digest(d, len, md, &n, EVP_md5(), NULL);
    char b64[32];
    EVP_EncodeBlock((unsigned char *)b64, md, 16);
    CU_ASSERT_STRING_EQUAL(rq.content_md5, b64);
    CU_ASSERT_STRING_EQUAL(rq.content_type, "image/jpeg");
    free(d);
    bulkup_report_free(r.rep);
  }
}

/* ---- retried statuses ------------------------------------------------- */

static void test_503_twice_then_success(void) {
  bk_ts_reset(ts);
  bk_ts_action a[2] = {{.fault = BK_TS_STATUS, .status = 503},
                       {.fault = BK_TS_STATUS, .status = 503}};
  bk_ts_script(ts, "/r/503", a, 2);
  bulkup_uploader_options o;
  fast_options(&o);
  o.requests.backoff_factor = 0.2; /* waits 0.2 then 0.4 */
  const char *f = make_file("r503.bin", 300000, 1);
  double t0 = bk_now();
  run r;
  upload_one(ts, &o, f, "/r/503", &r);
  double dt = bk_now() - t0;
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  CU_ASSERT_EQUAL(r.sum.succeeded, 1);
  CU_ASSERT_EQUAL(r.sum.retries, 2);
  CU_ASSERT_EQUAL(r.sum.bytes_sent, 3 * 300000);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/r/503"), 3);
  CU_ASSERT(dt >= 0.6); /* both backoff waits were taken */
  assert_stored(ts, "/r/503", f);
  bulkup_report_free(r.rep);
}

static void test_transient_statuses_each_retried(void) {
  static const int statuses[] = {500, 502, 504, 408, 429};
  for (size_t i = 0; i < BK_ARRAY_LEN(statuses); i++) {
    bk_ts_reset(ts);
    bk_ts_action a = {.fault = BK_TS_STATUS, .status = statuses[i]};
    bk_ts_script(ts, "/r/t", &a, 1);
    bulkup_uploader_options o;
    fast_options(&o);
    const char *f = make_file("rt.bin", 1000, i);
    run r;
    upload_one(ts, &o, f, "/r/t", &r);
    CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
    CU_ASSERT_EQUAL(r.sum.retries, 1);
    CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/r/t"), 2);
    assert_stored(ts, "/r/t", f);
    bulkup_report_free(r.rep);
  }
}

static void test_retry_after_honoured(void) {
  bk_ts_reset(ts);
  bk_ts_action a = {.fault = BK_TS_STATUS, .status = 429,
                    .headers = "Retry-After: 1\r\n"};
  bk_ts_script(ts, "/r/ra", &a, 1);
  bulkup_uploader_options o;
  fast_options(&o);
  o.requests.backoff_factor = 0; /* only Retry-After makes it wait */
  const char *f = make_file("ra.bin", 1000, 3);
  double t0 = bk_now();
  run r;
  upload_one(ts, &o, f, "/r/ra", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  CU_ASSERT(bk_now() - t0 >= 1.0);
  CU_ASSERT_EQUAL(r.sum.retries, 1);
  bulkup_report_free(r.rep);

  /* Capped by backoff.retry_after_max. */
  bk_ts_reset(ts);
  a.headers = "Retry-After: 3600\r\n";
  a.status = 503;
  bk_ts_script(ts, "/r/ra", &a, 1);
  o.backoff.retry_after_max = 0.3;
  t0 = bk_now();
  upload_one(ts, &o, f, "/r/ra", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  double dt = bk_now() - t0;
  CU_ASSERT(dt >= 0.3 && dt < 60);
  bulkup_report_free(r.rep);
}

static void test_retries_exhausted(void) {
  bk_ts_reset(ts);
  bk_ts_action a[5];
  for (int i = 0; i < 5; i++)
    a[i] = (bk_ts_action){.fault = BK_TS_STATUS, .status = 503,
                          .body = "<Error>SlowDown</Error>"};
  bk_ts_script(ts, "/r/ex", a, 5);
  bulkup_uploader_options o;
  fast_options(&o);
  bulkup_cloud_upload_settings_set_max_retries(&o.cloud, 2);
  const char *f = make_file("ex.bin", 1000, 4);
  run r;
  upload_one(ts, &o, f, "/r/ex", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_EUPLOAD);
  const bulkup_result *x = only_failure(&r);
  CU_ASSERT_EQUAL(x->attempts, 3);
  CU_ASSERT_EQUAL(x->http_status, 503);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_HTTP_STATUS);
  CU_ASSERT_EQUAL(x->status, BULKUP_ITEM_FAILED);
  CU_ASSERT_EQUAL(x->index, 0);
  CU_ASSERT_STRING_EQUAL(x->response_excerpt, "<Error>SlowDown</Error>");
  CU_ASSERT_EQUAL(x->bytes_sent, 3000);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/r/ex"), 3);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/r/ex", NULL), -1);
  bulkup_report_free(r.rep);
}

static void test_explicit_zero_retries_means_zero(void) {
  bk_ts_reset(ts);
  bk_ts_action a = {.fault = BK_TS_STATUS, .status = 503};
  bk_ts_script(ts, "/r/zero", &a, 1);
  bulkup_uploader_options o;
  fast_options(&o);
  bulkup_cloud_upload_settings_set_max_retries(&o.cloud, 0);
  const char *f = make_file("zero.bin", 10, 5);
  run r;
  upload_one(ts, &o, f, "/r/zero", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_EUPLOAD);
  CU_ASSERT_EQUAL(only_failure(&r)->attempts, 1);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/r/zero"), 1);
  bulkup_report_free(r.rep);
}

static void test_permanent_statuses_not_retried(void) {
  static const int statuses[] = {400, 401, 403, 404, 405, 409, 411, 412, 413};
  for (size_t i = 0; i < BK_ARRAY_LEN(statuses); i++) {
    bk_ts_reset(ts);
    bk_ts_action a = {.fault = BK_TS_STATUS, .status = statuses[i],
                      .body = "denied"};
    bk_ts_script(ts, "/p", &a, 1);
    bulkup_uploader_options o;
    fast_options(&o);
    const char *f = make_file("perm.bin", 100, i);
    run r;
    upload_one(ts, &o, f, "/p", &r);
    CU_ASSERT_EQUAL(r.rc, BULKUP_EUPLOAD);
    const bulkup_result *x = only_failure(&r);
    CU_ASSERT_EQUAL(x->attempts, 1);
    CU_ASSERT_EQUAL(x->http_status, statuses[i]);
    CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_HTTP_STATUS);
    CU_ASSERT_STRING_EQUAL(x->response_excerpt, "denied");
    CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/p"), 1);
    bulkup_report_free(r.rep);
  }
}

/* ---- connection-level faults ------------------------------------------ */

static void test_reset_mid_body_retried_and_rewound(void) {
  bk_ts_reset(ts);
  bk_ts_action a = {.fault = BK_TS_RESET_MID_BODY, .after_bytes = 100000};
  bk_ts_script(ts, "/f/reset", &a, 1);
  bulkup_uploader_options o;
  fast_options(&o);
  const char *f = make_file("reset.bin", 2000000, 6);
  run r;
  upload_one(ts, &o, f, "/f/reset", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  CU_ASSERT_EQUAL(r.sum.retries, 1);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/f/reset"), 2);
  bk_ts_request rq;
  CU_ASSERT_EQUAL(bk_ts_request_get(ts, 0, &rq), 0);
  CU_ASSERT_EQUAL(rq.complete, 0);
  CU_ASSERT_EQUAL(bk_ts_request_get(ts, 1, &rq), 0);
  CU_ASSERT_EQUAL(rq.complete, 1);
  CU_ASSERT_EQUAL(rq.body_bytes, 2000000);
  assert_stored(ts, "/f/reset", f);
  bulkup_report_free(r.rep);

  /* And with no retries allowed, the kind is recorded. */
  bk_ts_reset(ts);
  bk_ts_script(ts, "/f/reset", &a, 1);
  bulkup_cloud_upload_settings_set_max_retries(&o.cloud, 0);
  upload_one(ts, &o, f, "/f/reset", &r);
  const bulkup_result *x = only_failure(&r);
  CU_ASSERT(x->error == BULKUP_ERROR_SEND || x->error == BULKUP_ERROR_RECV);
  CU_ASSERT_EQUAL(x->attempts, 1);
  bulkup_report_free(r.rep);
}

static void test_truncated_and_empty_responses(void) {
  bk_ts_fault faults[2] = {BK_TS_TRUNCATED, BK_TS_CLOSE_EARLY};
  for (int i = 0; i < 2; i++) {
    bk_ts_reset(ts);
    bk_ts_action a = {.fault = faults[i], .status = 200, .body = "partial body"};
    bk_ts_script(ts, "/f/trunc", &a, 1);
    bulkup_uploader_options o;
    fast_options(&o);
    bulkup_cloud_upload_settings_set_max_retries(&o.cloud, 0);
    const char *f = make_file("trunc.bin", 5000, 8);
    run r;
    upload_one(ts, &o, f, "/f/trunc", &r);
    CU_ASSERT_EQUAL(r.rc, BULKUP_EUPLOAD);
    const bulkup_result *x = only_failure(&r);
    CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_RECV);
    CU_ASSERT_EQUAL(x->attempts, 1);
    bulkup_report_free(r.rep);
    /* With retries it recovers. */
    bk_ts_script(ts, "/f/trunc", &a, 1);
    o.cloud.max_retries_set = false;
    upload_one(ts, &o, f, "/f/trunc", &r);
    CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
    CU_ASSERT_EQUAL(r.sum.retries, 1);
    bulkup_report_free(r.rep);
  }
}

/* A port with nothing listening on it: a socket bound to it, not
 * listening, held in *fd until the caller closes it (a connect is refused;
 * a port closed at once could be taken by another listener meanwhile). */
static unsigned short closed_port(int *fd) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  CU_ASSERT_FATAL(s >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CU_ASSERT_FATAL(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
  socklen_t l = sizeof a;
  CU_ASSERT_FATAL(getsockname(s, (struct sockaddr *)&a, &l) == 0);
  *fd = s;
  return ntohs(a.sin_port);
}

static void test_connection_refused_counts_connection_retries(void) {
  bulkup_uploader_options o;
  fast_options(&o);
  bulkup_cloud_upload_settings_set_max_retries(&o.cloud, 0);
  o.requests.connection_retries = 2;
  const char *f = make_file("refused.bin", 10, 9);
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  bulkup_item it;
  bulkup_item_init(&it);
  it.path = f;
  char url[128];
  int held;
  snprintf(url, sizeof url, "http://127.0.0.1:%u/x", closed_port(&held));
  it.url = url;
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_EUPLOAD);
  close(held);
  CU_ASSERT_EQUAL_FATAL(bulkup_report_failure_count(rep), 1);
  const bulkup_result *x = bulkup_report_failure(rep, 0);
  /* max_retries 0 does not stop connection retries: 1 + 2 attempts. */
  CU_ASSERT_EQUAL(x->attempts, 3);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_CONNECT);
  CU_ASSERT_EQUAL(x->http_status, 0);
  CU_ASSERT_EQUAL(x->bytes_sent, 0);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}

/* A TCP listener that accepts and never speaks: a TLS handshake with it
 * hangs, which only the connect timeout can end. */
typedef struct silent {
  int fd;
  pthread_t th;
  atomic_int stop;
} silent;

static void *silent_main(void *arg) {
  silent *s = arg;
  int conns[16];
  int n = 0;
  while (!s->stop && n < 16) {
    int c = accept(s->fd, NULL, NULL);
    if (c < 0)
      break;
    conns[n++] = c;
  }
  for (int i = 0; i < n; i++)
    close(conns[i]);
  return NULL;
}

static unsigned short silent_start(silent *s) {
  s->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(s->fd, (struct sockaddr *)&a, sizeof a);
  listen(s->fd, 16);
  socklen_t l = sizeof a;
  getsockname(s->fd, (struct sockaddr *)&a, &l);
  s->stop = 0;
  pthread_create(&s->th, NULL, silent_main, s);
  return ntohs(a.sin_port);
}

static void silent_stop(silent *s) {
  s->stop = 1;
  shutdown(s->fd, SHUT_RDWR);
  close(s->fd);
  pthread_join(s->th, NULL);
}

static void test_connect_timeout_fires_in_handshake(void) {
  silent s;
  unsigned short port = silent_start(&s);
  bulkup_uploader_options o;
  fast_options(&o);
  o.requests.connect_timeout = 0.3;
  o.requests.connection_retries = 1;
  o.requests.write_timeout = 30;
  o.requests.read_timeout = 30;
  const char *f = make_file("ct.bin", 10, 10);
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  bulkup_item it;
  bulkup_item_init(&it);
  it.path = f;
  char url[128];
  snprintf(url, sizeof url, "https://127.0.0.1:%u/x", port);
  it.url = url;
  bulkup_uploader_submit(u, &it, NULL);
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_EUPLOAD);
  CU_ASSERT_EQUAL_FATAL(bulkup_report_failure_count(rep), 1);
  const bulkup_result *x = bulkup_report_failure(rep, 0);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_TIMEOUT_CONNECT);
  CU_ASSERT_EQUAL(x->attempts, 2);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  silent_stop(&s);
}

static void test_write_timeout_fires_only_while_sending(void) {
  /* The server stops reading the body for 3 s: the write timeout (0.4 s)
   * fires, and it is not mistaken for a read timeout. */
  bk_ts_reset(ts);
  bk_ts_action a = {.fault = BK_TS_STALL_BODY, .seconds = 3,
                    .after_bytes = 65536};
  bk_ts_script(ts, "/t/w", &a, 1);
  bulkup_uploader_options o;
  fast_options(&o);
  o.requests.write_timeout = 0.4;
  o.requests.read_timeout = 30;
  bulkup_cloud_upload_settings_set_max_retries(&o.cloud, 0);
  const char *f = make_file("wt.bin", 16 << 20, 13);
  run r;
  upload_one(ts, &o, f, "/t/w", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_EUPLOAD);
  const bulkup_result *x = only_failure(&r);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_TIMEOUT_WRITE);
  CU_ASSERT_EQUAL(x->attempts, 1);
  CU_ASSERT(x->bytes_sent < (16u << 20));
  bulkup_report_free(r.rep);

  /* A slow response is the read phase: a write timeout shorter than the
   * server's delay does not fire. */
  bk_ts_reset(ts);
  bk_ts_action d = {.fault = BK_TS_DELAY, .seconds = 1.0};
  bk_ts_script(ts, "/t/w2", &d, 1);
  const char *g = make_file("wt2.bin", 1000, 14);
  upload_one(ts, &o, g, "/t/w2", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  CU_ASSERT_EQUAL(r.sum.retries, 0);
  assert_stored(ts, "/t/w2", g);
  bulkup_report_free(r.rep);
}

static void test_read_timeout_fires_only_after_body(void) {
  bk_ts_reset(ts);
  bk_ts_action a = {.fault = BK_TS_NO_RESPONSE, .seconds = 5};
  bk_ts_script(ts, "/t/r", &a, 1);
  bulkup_uploader_options o;
  fast_options(&o);
  o.requests.read_timeout = 0.4;
  o.requests.write_timeout = 30;
  bulkup_cloud_upload_settings_set_max_retries(&o.cloud, 0);
  const char *f = make_file("rt.bin", 50000, 15);
  run r;
  upload_one(ts, &o, f, "/t/r", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_EUPLOAD);
  const bulkup_result *x = only_failure(&r);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_TIMEOUT_READ);
  CU_ASSERT_EQUAL(x->bytes_sent, 50000);
  bulkup_report_free(r.rep);

  /* A stalled body is the write phase: a read timeout shorter than the
   * stall (1.5 s against 3 s) does not fire. Once the body is sent, the
   * read timeout runs while the server drains what the socket buffers
   * still hold (several MiB) and answers: 1.5 s leaves room for a slow
   * machine. */
  bk_ts_reset(ts);
  bk_ts_action s = {.fault = BK_TS_STALL_BODY, .seconds = 3.0,
                    .after_bytes = 65536};
  bk_ts_script(ts, "/t/r2", &s, 1);
  o.requests.read_timeout = 1.5;
  o.requests.write_timeout = 10;
  const char *g = make_file("rt2.bin", 16 << 20, 16);
  upload_one(ts, &o, g, "/t/r2", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  assert_stored(ts, "/t/r2", g);
  bulkup_report_free(r.rep);

  /* With retries, a read timeout is retried and the item succeeds. The
   * retried exchange must end within the read timeout, or it is retried
   * again: 1 s, not 0.4. */
  bk_ts_reset(ts);
  bk_ts_script(ts, "/t/r3", &a, 1);
  o.requests.read_timeout = 1.0;
  o.cloud.max_retries_set = false;
  upload_one(ts, &o, f, "/t/r3", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  CU_ASSERT_EQUAL(r.sum.retries, 1);
  bulkup_report_free(r.rep);
}

/* ---- TLS ---------------------------------------------------------------- */

static void test_tls_verification(void) {
  const char *f = make_file("tls.bin", 100000, 17);
  bulkup_uploader_options o;
  fast_options(&o);
  o.ca_file = bk_ts_ca_file(tls_ts);
  run r;
  upload_one(tls_ts, &o, f, "/tls/ok", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  assert_stored(tls_ts, "/tls/ok", f);
  bulkup_report_free(r.rep);

  /* Without the CA: a verification failure, permanent, not retried. */
  fast_options(&o);
  upload_one(tls_ts, &o, f, "/tls/noca", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_EUPLOAD);
  const bulkup_result *x = only_failure(&r);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_TLS);
  CU_ASSERT_EQUAL(x->attempts, 1);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(tls_ts, "/tls/noca", NULL), -1);
  bulkup_report_free(r.rep);

  /* The explicit insecure switch. */
  o.insecure = true;
  upload_one(tls_ts, &o, f, "/tls/insecure", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  bulkup_report_free(r.rep);
}

/* ---- security ------------------------------------------------------------ */

typedef struct logbuf {
  pthread_mutex_t m;
  char text[65536];
  size_t len;
} logbuf;

static void log_cb(void *ud, bulkup_log_level lvl, const char *msg) {
  (void)lvl;
  logbuf *b = ud;
  pthread_mutex_lock(&b->m);
  size_t n = strlen(msg);
  if (b->len + n + 2 < sizeof b->text) {
    memcpy(b->text + b->len, msg, n);
    b->len += n;
    b->text[b->len++] = '\n';
    b->text[b->len] = '\0';
  }
  pthread_mutex_unlock(&b->m);
}

static void test_schemes_refused(void) {
  const char *f = make_file("scheme.bin", 10, 18);
  char target[1024];
  snprintf(target, sizeof target, "%s/written-by-file-url", tmp);
  char fileurl[1100];
  snprintf(fileurl, sizeof fileurl, "file://%s", target);
  const char *urls[] = {fileurl, "ftp://127.0.0.1/x", "gopher://127.0.0.1/x",
                        "dict://127.0.0.1/x", "FILE:///tmp/x"};
  bulkup_uploader_options o;
  fast_options(&o);
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  for (size_t i = 0; i < BK_ARRAY_LEN(urls); i++) {
    bulkup_item it;
    bulkup_item_init(&it);
    it.path = f;
    it.url = urls[i];
    CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
  }
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_EUPLOAD);
  CU_ASSERT_EQUAL_FATAL(bulkup_report_failure_count(rep), BK_ARRAY_LEN(urls));
  for (size_t i = 0; i < BK_ARRAY_LEN(urls); i++) {
    const bulkup_result *x = bulkup_report_failure(rep, i);
    CU_ASSERT_EQUAL(x->index, i);
    CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_URL);
    CU_ASSERT_EQUAL(x->attempts, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(x->message, "scheme"));
  }
  struct stat st;
  CU_ASSERT_NOT_EQUAL(stat(target, &st), 0);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}

static void test_redirect_not_followed(void) {
  bk_ts_reset(ts);
  char *loc = bk_ts_url(ts, "/elsewhere?X-Amz-Signature=LOCSECRET");
  char hdr[512];
  snprintf(hdr, sizeof hdr, "Location: %s\r\n", loc);
  free(loc);
  bk_ts_action a = {.fault = BK_TS_STATUS, .status = 307, .headers = hdr};
  bk_ts_script(ts, "/redir", &a, 1);
  bulkup_uploader_options o;
  fast_options(&o);
  const char *f = make_file("redir.bin", 1000, 19);
  run r;
  upload_one(ts, &o, f, "/redir", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_EUPLOAD);
  const bulkup_result *x = only_failure(&r);
  CU_ASSERT_EQUAL(x->http_status, 307);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_HTTP_STATUS);
  CU_ASSERT_EQUAL(x->attempts, 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(x->message, "redirect not followed"));
  CU_ASSERT_PTR_NULL(strstr(x->message, "LOCSECRET"));
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/elsewhere"), 0);
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), 1);
  bulkup_report_free(r.rep);
}

static void test_no_signature_in_report_or_log(void) {
  bk_ts_reset(ts);
  bk_ts_action a[3] = {{.fault = BK_TS_STATUS, .status = 503},
                       {.fault = BK_TS_STATUS, .status = 503},
                       {.fault = BK_TS_STATUS, .status = 403,
                        .body = "<Error>SignatureDoesNotMatch</Error>"}};
  bk_ts_script(ts, "/sec", a, 3);
  logbuf lb = {.len = 0};
  pthread_mutex_init(&lb.m, NULL);
  bulkup_uploader_options o;
  fast_options(&o);
  o.log = log_cb;
  o.log_level = BULKUP_LOG_DEBUG;
  o.userdata = &lb;
  const char *f = make_file("sec.bin", 1000, 20);
  run r;
  upload_one(ts, &o, f,
             "/sec?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential="
             "CREDSECRET&X-Goog-Signature=SIGSECRET&token=TOKSECRET",
             &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_EUPLOAD);
  const bulkup_result *x = only_failure(&r);
  CU_ASSERT_EQUAL(x->attempts, 3);
  CU_ASSERT_EQUAL(x->http_status, 403);
  CU_ASSERT_PTR_NOT_NULL(strstr(x->url, "X-Goog-Signature=REDACTED"));
  CU_ASSERT_PTR_NOT_NULL(strstr(x->url, "X-Goog-Algorithm=GOOG4-RSA-SHA256"));
  char *json = NULL;
  CU_ASSERT_EQUAL_FATAL(bulkup_report_to_json(r.rep, false, &json), BULKUP_OK);
  const char *secrets[] = {"SIGSECRET", "CREDSECRET", "TOKSECRET"};
  for (int i = 0; i < 3; i++) {
    CU_ASSERT_PTR_NULL(strstr(json, secrets[i]));
    CU_ASSERT_PTR_NULL(strstr(lb.text, secrets[i]));
    CU_ASSERT_PTR_NULL(strstr(x->message, secrets[i]));
  }
  /* The log did say something (the retries and the failure). */
  CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "retry 2"));
  CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "REDACTED"));
  bulkup_free(json);
  bulkup_report_free(r.rep);
  pthread_mutex_destroy(&lb.m);
}

/* ---- files ----------------------------------------------------------------- */

static void test_bad_files(void) {
  bulkup_uploader_options o;
  fast_options(&o);
  o.cloud.allow_failures = true;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  char missing[1024];
  snprintf(missing, sizeof missing, "%s/does-not-exist", tmp);
  const char *good = make_file("good.bin", 10, 21);
  const char *paths[] = {missing, tmp /* a directory */, good};
  char *url = bk_ts_url(ts, "/files/x");
  for (int i = 0; i < 3; i++) {
    bulkup_item it;
    bulkup_item_init(&it);
    it.path = paths[i];
    it.url = url;
    CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
  }
  free(url);
  bulkup_report *rep;
  /* allow_failures with one success: OK. */
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  CU_ASSERT_EQUAL_FATAL(bulkup_report_failure_count(rep), 2);
  const bulkup_result *x = bulkup_report_failure(rep, 0);
  CU_ASSERT_EQUAL(x->index, 0);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_FILE);
  CU_ASSERT_EQUAL(x->attempts, 0);
  CU_ASSERT_STRING_EQUAL(x->path, missing);
  CU_ASSERT_STRING_EQUAL(x->title, "does-not-exist");
  CU_ASSERT_PTR_NOT_NULL(strstr(x->message, "No such file"));
  x = bulkup_report_failure(rep, 1);
  CU_ASSERT_EQUAL(x->index, 1);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_FILE);
  CU_ASSERT_PTR_NOT_NULL(strstr(x->message, "not a regular file"));
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}

typedef struct grow_arg {
  const char *path;
  bk_ts *server;
  bool begun; /* the server saw the request begin before the append */
} grow_arg;

/* Wait until `server` (reset before) has begun a request, that is read its
 * headers: the engine opened the file before it sent them. At most
 * `timeout` seconds; whether it did. */
static bool wait_request_begun(bk_ts *server, double timeout) {
  double end = bk_now() + timeout;
  for (;;) {
    bks_counters c;
    bks_server_counters(server, &c);
    if (c.requests[BKS_EP_OTHER] > 0)
      return true;
    if (bk_now() > end)
      return false;
    usleep(2000);
  }
}

static void *append_when_stalled(void *arg) {
  grow_arg *g = arg;
  /* Wait until the request is under way (the server then stalls it after
   * 64 KiB, for 2 s), then append: the file is open and its body not yet
   * all sent. A fixed sleep instead could land before the engine opened
   * the file on a slow machine, and the upload would succeed. */
  g->begun = wait_request_begun(g->server, 30);
  FILE *f = fopen(g->path, "ab");
  fputs("more bytes", f);
  fclose(f);
  return NULL;
}

static void test_file_changed_during_upload(void) {
  bk_ts_reset(ts);
  bk_ts_action a = {.fault = BK_TS_STALL_BODY, .seconds = 2.0,
                    .after_bytes = 65536};
  bk_ts_script(ts, "/chg", &a, 1);
  const char *f = make_file("chg.bin", 4 << 20, 22);
  bulkup_uploader_options o;
  fast_options(&o);
  grow_arg g = {f, ts, false};
  pthread_t th;
  pthread_create(&th, NULL, append_when_stalled, &g);
  run r;
  upload_one(ts, &o, f, "/chg", &r);
  pthread_join(th, NULL);
  CU_ASSERT(g.begun);
  CU_ASSERT_EQUAL(r.rc, BULKUP_EUPLOAD);
  const bulkup_result *x = only_failure(&r);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_FILE_CHANGED);
  CU_ASSERT_EQUAL(x->attempts, 1);
  bulkup_report_free(r.rep);
}

/* ---- cancel, backpressure, budget, allow_failures ---------------------- */

typedef struct canceller {
  bulkup_uploader *u;
  double after;
} canceller;

static void *cancel_main(void *arg) {
  canceller *c = arg;
  usleep((useconds_t)(c->after * 1e6));
  bulkup_uploader_cancel(c->u);
  return NULL;
}

static void test_cancel_mid_run(void) {
  bk_ts_reset(ts);
  bk_ts_action slow[64];
  for (int i = 0; i < 64; i++)
    slow[i] = (bk_ts_action){.fault = BK_TS_DELAY, .seconds = 2};
  bk_ts_script(ts, NULL, slow, 64);
  bulkup_uploader_options o;
  fast_options(&o);
  o.workers = 2;
  o.queue_capacity = 100;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("cancel.bin", 1000, 23);
  char *url = bk_ts_url(ts, "/cancel/x");
  for (int i = 0; i < 50; i++) {
    bulkup_item it;
    bulkup_item_init(&it);
    it.path = f;
    it.url = url;
    CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
  }
  canceller c = {u, 0.3};
  pthread_t th;
  double t0 = bk_now();
  pthread_create(&th, NULL, cancel_main, &c);
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_ECANCELED);
  double dt = bk_now() - t0;
  pthread_join(th, NULL);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.submitted, 50);
  CU_ASSERT_EQUAL(s.succeeded + s.failed + s.cancelled, 50);
  CU_ASSERT_EQUAL(s.succeeded, 0);
  CU_ASSERT_EQUAL(s.cancelled, 50);
  CU_ASSERT_EQUAL(bulkup_report_cancelled_count(rep), 50);
  CU_ASSERT_EQUAL(bulkup_report_cancelled(rep, 49)->index, 49);
  /* Prompt: the two in-flight transfers were aborted, not waited for. */
  CU_ASSERT(dt < 1.9);
  /* Submitting after a cancel is refused. */
  bulkup_item it;
  bulkup_item_init(&it);
  it.path = f;
  it.url = url;
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_ECANCELED);
  free(url);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}

static void test_cancel_ends_backoff_wait(void) {
  bk_ts_reset(ts);
  bk_ts_action a = {.fault = BK_TS_STATUS, .status = 503};
  bk_ts_script(ts, "/cw", &a, 1);
  bulkup_uploader_options o;
  fast_options(&o);
  o.requests.backoff_factor = 60;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("cw.bin", 10, 24);
  char *url = bk_ts_url(ts, "/cw");
  bulkup_item it;
  bulkup_item_init(&it);
  it.path = f;
  it.url = url;
  bulkup_uploader_submit(u, &it, NULL);
  free(url);
  canceller c = {u, 0.3};
  pthread_t th;
  double t0 = bk_now();
  pthread_create(&th, NULL, cancel_main, &c);
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_ECANCELED);
  CU_ASSERT(bk_now() - t0 < 30); /* far less than the 60 s wait */
  pthread_join(th, NULL);
  CU_ASSERT_EQUAL_FATAL(bulkup_report_cancelled_count(rep), 1);
  CU_ASSERT_EQUAL(bulkup_report_cancelled(rep, 0)->attempts, 1);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/cw"), 1);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}

typedef struct producer {
  bulkup_uploader *u;
  const char *url;
  const char *file;
  int n;
  atomic_int done;
} producer;

static void *produce(void *arg) {
  producer *p = arg;
  for (int i = 0; i < p->n; i++) {
    bulkup_item it;
    bulkup_item_init(&it);
    it.path = p->file;
    it.url = p->url;
    bulkup_uploader_submit(p->u, &it, NULL);
  }
  p->done = 1;
  return NULL;
}

static void test_submit_blocks_when_queue_full(void) {
  bk_ts_reset(ts);
  bk_ts_action slow[30];
  for (int i = 0; i < 30; i++)
    slow[i] = (bk_ts_action){.fault = BK_TS_DELAY, .seconds = 0.05};
  bk_ts_script(ts, NULL, slow, 30);
  bulkup_uploader_options o;
  fast_options(&o);
  o.workers = 1;
  o.queue_capacity = 3;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("bp.bin", 10, 25);
  char *url = bk_ts_url(ts, "/bp");
  producer p = {u, url, f, 30, 0};
  atomic_init(&p.done, 0);
  pthread_t th;
  pthread_create(&th, NULL, produce, &p);
  /* While the producer runs, accepted-but-unfinished items never exceed
   * queue capacity + workers (+1 for the item being pushed). */
  int checks = 0;
  while (!p.done) {
    bulkup_progress pr;
    bulkup_uploader_progress(u, &pr);
    uint64_t ended = pr.succeeded + pr.failed + pr.cancelled;
    CU_ASSERT(pr.submitted - ended <= 3 + 1);
    checks++;
    usleep(10000);
  }
  pthread_join(th, NULL);
  CU_ASSERT(checks > 5);
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.succeeded, 30);
  free(url);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}

static void test_retry_budget_stops_storm(void) {
  bk_ts_reset(ts);
  bk_ts_action fail[200];
  for (int i = 0; i < 200; i++)
    fail[i] = (bk_ts_action){.fault = BK_TS_STATUS, .status = 503};
  bk_ts_script(ts, NULL, fail, 200);
  bulkup_uploader_options o;
  fast_options(&o);
  o.requests.backoff_factor = 0;
  o.retry_budget_tokens = 20; /* four retries in all */
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("budget.bin", 10, 26);
  char *url = bk_ts_url(ts, "/budget");
  for (int i = 0; i < 10; i++) {
    bulkup_item it;
    bulkup_item_init(&it);
    it.path = f;
    it.url = url;
    bulkup_uploader_submit(u, &it, NULL);
  }
  free(url);
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_EUPLOAD);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.failed, 10);
  CU_ASSERT_EQUAL(s.retries, 4);
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), 14);
  size_t budget_kind = 0;
  for (size_t i = 0; i < bulkup_report_failure_count(rep); i++)
    if (bulkup_report_failure(rep, i)->error == BULKUP_ERROR_RETRY_BUDGET)
      budget_kind++;
  CU_ASSERT(budget_kind >= 6);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}

static void test_allow_failures_outcomes(void) {
  const char *f = make_file("af.bin", 10, 27);
  for (int allow = 0; allow < 2; allow++) {
    for (int all_fail = 0; all_fail < 2; all_fail++) {
      bk_ts_reset(ts);
      bk_ts_action a = {.fault = BK_TS_STATUS, .status = 404};
      bk_ts_script(ts, "/af/0", &a, 1);
      if (all_fail)
        bk_ts_script(ts, "/af/1", &a, 1);
      bulkup_uploader_options o;
      fast_options(&o);
      o.cloud.allow_failures = allow;
      bulkup_uploader *u;
      CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
      for (int i = 0; i < 2; i++) {
        char path[32];
        snprintf(path, sizeof path, "/af/%d", i);
        char *url = bk_ts_url(ts, path);
        bulkup_item it;
        bulkup_item_init(&it);
        it.path = f;
        it.url = url;
        bulkup_uploader_submit(u, &it, NULL);
        free(url);
      }
      bulkup_report *rep;
      bulkup_err rc = bulkup_uploader_finish(u, &rep);
      bulkup_err want = !allow ? BULKUP_EUPLOAD
                        : all_fail ? BULKUP_EALLFAILED
                                   : BULKUP_OK;
      CU_ASSERT_EQUAL(rc, want);
      /* Either way every failure is in the report. */
      CU_ASSERT_EQUAL(bulkup_report_failure_count(rep), all_fail ? 2u : 1u);
      bulkup_report_free(rep);
      bulkup_uploader_free(u);
    }
  }
}

static void test_report_json_shape(void) {
  bk_ts_reset(ts);
  bk_ts_action a = {.fault = BK_TS_STATUS, .status = 404, .body = "nope"};
  bk_ts_script(ts, "/json/1", &a, 1);
  bulkup_uploader_options o;
  fast_options(&o);
  o.cloud.allow_failures = true;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("json \"q\".png", 100, 28);
  for (int i = 0; i < 3; i++) {
    char path[32];
    snprintf(path, sizeof path, "/json/%d", i);
    char *url = bk_ts_url(ts, path);
    bulkup_item it;
    bulkup_item_init(&it);
    it.path = f;
    it.url = url;
    bulkup_uploader_submit(u, &it, NULL);
    free(url);
  }
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  char out[1200];
  snprintf(out, sizeof out, "%s/report.json", tmp);
  CU_ASSERT_EQUAL_FATAL(bulkup_report_write_json(rep, out), BULKUP_OK);
  json_object *root = json_object_from_file(out);
  CU_ASSERT_PTR_NOT_NULL_FATAL(root);
  json_object *sum, *fails, *v;
  CU_ASSERT_FATAL(json_object_object_get_ex(root, "summary", &sum));
  CU_ASSERT_FATAL(json_object_object_get_ex(root, "failures", &fails));
  json_object_object_get_ex(sum, "submitted", &v);
  CU_ASSERT_EQUAL(json_object_get_int(v), 3);
  json_object_object_get_ex(sum, "succeeded", &v);
  CU_ASSERT_EQUAL(json_object_get_int(v), 2);
  json_object_object_get_ex(sum, "failed", &v);
  CU_ASSERT_EQUAL(json_object_get_int(v), 1);
  CU_ASSERT_EQUAL_FATAL(json_object_array_length(fails), 1);
  json_object *f0 = json_object_array_get_idx(fails, 0);
  json_object_object_get_ex(f0, "index", &v);
  CU_ASSERT_EQUAL(json_object_get_int(v), 1);
  json_object_object_get_ex(f0, "http_status", &v);
  CU_ASSERT_EQUAL(json_object_get_int(v), 404);
  json_object_object_get_ex(f0, "error", &v);
  CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "http_status");
  json_object_object_get_ex(f0, "title", &v);
  CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "json \"q\".png");
  json_object_object_get_ex(f0, "response_excerpt", &v);
  CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "nope");
  json_object_object_get_ex(f0, "path", &v);
  CU_ASSERT_STRING_EQUAL(json_object_get_string(v), f);
  json_object_put(root);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}

typedef struct counter {
  pthread_mutex_t m;
  int ok, failed;
  uint64_t seen_mask;
} counter;

static void count_cb(void *ud, const bulkup_result *r) {
  counter *c = ud;
  pthread_mutex_lock(&c->m);
  if (r->status == BULKUP_ITEM_SUCCEEDED)
    c->ok++;
  else
    c->failed++;
  c->seen_mask |= 1ULL << r->index;
  pthread_mutex_unlock(&c->m);
}

static void test_completion_callback_once_per_item(void) {
  bk_ts_reset(ts);
  bk_ts_action a = {.fault = BK_TS_STATUS, .status = 400};
  bk_ts_script(ts, "/cb/3", &a, 1);
  counter c = {.ok = 0};
  pthread_mutex_init(&c.m, NULL);
  bulkup_uploader_options o;
  fast_options(&o);
  o.workers = 3;
  o.on_complete = count_cb;
  o.userdata = &c;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("cbk.bin", 10, 29);
  for (int i = 0; i < 40; i++) {
    char path[32];
    snprintf(path, sizeof path, "/cb/%d", i);
    char *url = bk_ts_url(ts, path);
    bulkup_item it;
    bulkup_item_init(&it);
    it.path = f;
    it.url = url;
    bulkup_uploader_submit(u, &it, NULL);
    free(url);
  }
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_EUPLOAD);
  CU_ASSERT_EQUAL(c.ok, 39);
  CU_ASSERT_EQUAL(c.failed, 1);
  CU_ASSERT_EQUAL(c.seen_mask, (1ULL << 40) - 1);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  pthread_mutex_destroy(&c.m);
}

static void test_invalid_items_and_options(void) {
  bulkup_uploader_options o;
  fast_options(&o);
  o.workers = 0;
  bulkup_uploader *u = (bulkup_uploader *)1;
  CU_ASSERT_EQUAL(bulkup_uploader_new(&u, &o), BULKUP_EINVAL);
  CU_ASSERT_PTR_NULL(u);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "workers"));
  fast_options(&o);
  o.requests.read_timeout = -1;
  CU_ASSERT_EQUAL(bulkup_uploader_new(&u, &o), BULKUP_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "read_timeout"));
  fast_options(&o);
  o.user_agent = "bulkup\r\nX-Injected: yes";
  CU_ASSERT_EQUAL(bulkup_uploader_new(&u, &o), BULKUP_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "user_agent"));
  fast_options(&o);
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  bulkup_item it;
  bulkup_item_init(&it);
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_EINVAL);
  it.url = "http://127.0.0.1:1/x";
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_EINVAL);
  it.path = "/nonexistent";
  const char *bad[] = {"X-Evil: a\r\nInjected: b", NULL};
  it.headers = bad;
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_EINVAL);
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.submitted, 0);
  it.headers = NULL;
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_ESTATE);
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, NULL), BULKUP_ESTATE);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  bulkup_uploader_free(NULL);
}

static void test_free_without_finish(void) {
  bk_ts_reset(ts);
  bk_ts_action slow = {.fault = BK_TS_DELAY, .seconds = 5};
  bk_ts_script(ts, NULL, &slow, 1);
  bulkup_uploader_options o;
  fast_options(&o);
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("nofinish.bin", 10, 30);
  char *url = bk_ts_url(ts, "/nofinish");
  bulkup_item it;
  bulkup_item_init(&it);
  it.path = f;
  it.url = url;
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
  free(url);
  bk_ts_wait_requests(ts, 0, 0.2);
  double t0 = bk_now();
  bulkup_uploader_free(u); /* cancels and joins; no leak, no hang */
  CU_ASSERT(bk_now() - t0 < 4);
}

typedef struct refresher {
  atomic_int calls;
  char *next; /* what to hand out */
  uint64_t seen_index;
} refresher;

static char *refresh_cb(void *ud, const bulkup_result *r) {
  refresher *rf = ud;
  atomic_fetch_add(&rf->calls, 1);
  rf->seen_index = r->index;
  return rf->next ? strdup(rf->next) : NULL;
}

static void test_expired_url_refreshed_once(void) {
  static const char expired[] =
      "<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code>"
      "<Message>The provided token has expired.</Message></Error>";
  bk_ts_reset(ts);
  bk_ts_action a = {.fault = BK_TS_STATUS, .status = 403, .body = expired};
  bk_ts_script(ts, "/exp/old", &a, 1);
  refresher rf = {.next = bk_ts_url(ts, "/exp/new?signature=FRESHSECRET")};
  atomic_init(&rf.calls, 0);
  bulkup_uploader_options o;
  fast_options(&o);
  o.refresh_url = refresh_cb;
  o.userdata = &rf;
  bulkup_cloud_upload_settings_set_max_retries(&o.cloud, 0);
  const char *f = make_file("exp.bin", 3000, 31);
  run r;
  upload_one(ts, &o, f, "/exp/old", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  CU_ASSERT_EQUAL(atomic_load(&rf.calls), 1);
  CU_ASSERT_EQUAL(rf.seen_index, 0);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/exp/old"), 1);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/exp/new"), 1);
  assert_stored(ts, "/exp/new", f);
  bulkup_report_free(r.rep);

  /* The fresh URL expired too: one refresh only, then the item fails. */
  bk_ts_reset(ts);
  bk_ts_action two[2] = {a, a};
  bk_ts_script(ts, "/exp/old", &a, 1);
  bk_ts_script(ts, "/exp/new", two, 2);
  atomic_store(&rf.calls, 0);
  upload_one(ts, &o, f, "/exp/old", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_EUPLOAD);
  const bulkup_result *x = only_failure(&r);
  CU_ASSERT_EQUAL(x->attempts, 2);
  CU_ASSERT_EQUAL(x->http_status, 403);
  CU_ASSERT_EQUAL(atomic_load(&rf.calls), 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(x->url, "/exp/new"));
  CU_ASSERT_PTR_NULL(strstr(x->url, "FRESHSECRET"));
  bulkup_report_free(r.rep);

  /* A 403 that is not about expiry is final without a refresh. */
  bk_ts_reset(ts);
  bk_ts_action deny = {.fault = BK_TS_STATUS, .status = 403,
                       .body = "<Error><Code>AccessDenied</Code></Error>"};
  bk_ts_script(ts, "/exp/old", &deny, 1);
  atomic_store(&rf.calls, 0);
  upload_one(ts, &o, f, "/exp/old", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_EUPLOAD);
  CU_ASSERT_EQUAL(only_failure(&r)->attempts, 1);
  CU_ASSERT_EQUAL(atomic_load(&rf.calls), 0);
  bulkup_report_free(r.rep);
  free(rf.next);
}

static void test_submit_failure_keeps_order(void) {
  bk_ts_reset(ts);
  bulkup_uploader_options o;
  fast_options(&o);
  o.cloud.allow_failures = true;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("sf.bin", 10, 32);
  char *url = bk_ts_url(ts, "/sf/ok");
  bulkup_item it;
  bulkup_item_init(&it);
  it.path = f;
  it.url = url;
  uint64_t idx;
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, &idx), BULKUP_OK);
  CU_ASSERT_EQUAL(idx, 0);
  bulkup_item bad;
  bulkup_item_init(&bad);
  bad.title = "manifest line 2";
  CU_ASSERT_EQUAL(bulkup_uploader_submit_failure(u, &bad, BULKUP_ERROR_NONE,
                                                 "line 2: unclosed quote", &idx),
                  BULKUP_OK);
  CU_ASSERT_EQUAL(idx, 1);
  bad.path = "/some/where/x.png";
  bad.title = NULL;
  CU_ASSERT_EQUAL(bulkup_uploader_submit_failure(u, &bad, BULKUP_ERROR_FILE,
                                                 NULL, &idx),
                  BULKUP_OK);
  CU_ASSERT_EQUAL(idx, 2);
  CU_ASSERT_EQUAL(bulkup_uploader_submit_failure(u, &bad, (bulkup_error_kind)99,
                                                 NULL, NULL),
                  BULKUP_EINVAL);
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, &idx), BULKUP_OK);
  CU_ASSERT_EQUAL(idx, 3);
  free(url);
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.submitted, 4);
  CU_ASSERT_EQUAL(s.succeeded, 2);
  CU_ASSERT_EQUAL(s.failed, 2);
  CU_ASSERT_EQUAL_FATAL(bulkup_report_failure_count(rep), 2);
  const bulkup_result *x = bulkup_report_failure(rep, 0);
  CU_ASSERT_EQUAL(x->index, 1);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_INPUT);
  CU_ASSERT_EQUAL(x->attempts, 0);
  CU_ASSERT_STRING_EQUAL(x->message, "line 2: unclosed quote");
  CU_ASSERT_STRING_EQUAL(x->title, "manifest line 2");
  CU_ASSERT_PTR_NULL(x->path);
  x = bulkup_report_failure(rep, 1);
  CU_ASSERT_EQUAL(x->index, 2);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_FILE);
  CU_ASSERT_STRING_EQUAL(x->message, "invalid item");
  CU_ASSERT_STRING_EQUAL(x->title, "x.png");
  CU_ASSERT_STRING_EQUAL(x->path, "/some/where/x.png");
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/sf/ok"), 2);
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), 2);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}

/* A callback source that trickles: 16 KiB per 25 ms (1 MiB in ~1.6 s). */
static unsigned char *slow_data;
static int64_t slow_read(void *ctx, uint64_t off, void *buf, size_t len) {
  (void)ctx;
  if (off >= (1u << 20))
    return 0;
  if (len > 16384)
    len = 16384;
  if (len > (1u << 20) - off)
    len = (1u << 20) - off;
  usleep(25 * 1000);
  memcpy(buf, slow_data + off, len);
  return (int64_t)len;
}

static void test_silent_resend_gets_fresh_phases(void) {
  /* When a kept-alive connection dies before any response, libcurl re-sends
   * the request on a fresh connection by itself, inside one of our
   * attempts. The re-sent body must run under the write phase again (not
   * under the read timeout that started when the first send ended), and
   * the extra request and its bytes must be counted. Found by the soak. */
  bk_ts_reset(ts);
  slow_data = malloc(1u << 20);
  bk_fill_random(slow_data, 1u << 20, 41);
  bk_proxy_options po = {.per_exchange = 1};
  bk_proxy *px;
  CU_ASSERT_FATAL(bk_proxy_start(&px, "127.0.0.1", bk_ts_port(ts), &po) == 0);
  bk_proxy_fault f[3] = {{.kind = BK_PROXY_NONE},
                         {.kind = BK_PROXY_RESET, .dir = BK_PROXY_S2C,
                          .after_bytes = 0},
                         {.kind = BK_PROXY_NONE}};
  bk_proxy_script(px, f, 3);
  bulkup_uploader_options o;
  fast_options(&o);
  o.workers = 1;
  o.requests.max_retries = 0;
  o.requests.read_timeout = 1; /* shorter than one 1.6 s send */
  o.requests.write_timeout = 5;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  char *warm = bk_proxy_url(px, "/resend/warm");
  char *big = bk_proxy_url(px, "/resend/big");
  bulkup_item it;
  bulkup_item_init(&it);
  it.source = BULKUP_SOURCE_MEMORY;
  it.data = "x";
  it.size = 1;
  it.url = warm; /* opens the connection that the next item reuses */
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
  bulkup_item_init(&it);
  it.source = BULKUP_SOURCE_CALLBACK;
  it.read = slow_read;
  it.size = 1u << 20;
  it.url = big;
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.succeeded, 2);
  CU_ASSERT_EQUAL(s.retries, 1);                          /* the re-send */
  CU_ASSERT_EQUAL(s.bytes_sent, 1 + 2 * (1u << 20));      /* both sends */
  char want[65], got[65];
  bk_sha256_hex(slow_data, 1u << 20, want);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/resend/big", got), 1 << 20);
  CU_ASSERT_STRING_EQUAL(got, want);
  bk_proxy_stats st;
  bk_proxy_stats_get(px, &st);
  CU_ASSERT_EQUAL(st.fired[BK_PROXY_RESET], 1);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  bk_proxy_stop(px);
  free(warm);
  free(big);
  free(slow_data);
}

/* ---- several transfers per worker thread ------------------------------- */

/* When each item ended, and on which thread. */
typedef struct ended {
  pthread_mutex_t m;
  double at[64];
  int status[64];
  int attempts[64];
  pthread_t thread[64];
  int n;
} ended;

static void ended_cb(void *ud, const bulkup_result *r) {
  ended *e = ud;
  pthread_mutex_lock(&e->m);
  if (r->index < 64) {
    e->at[r->index] = bk_now();
    e->status[r->index] = r->status;
    e->attempts[r->index] = r->attempts;
    e->thread[r->index] = pthread_self();
  }
  e->n++;
  pthread_mutex_unlock(&e->m);
}

static void submit_url(bulkup_uploader *u, const char *file, const char *path) {
  char *url = bk_ts_url(ts, path);
  bulkup_item it;
  bulkup_item_init(&it);
  it.path = file;
  it.url = url;
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
  free(url);
}

static void test_one_thread_several_in_flight(void) {
  bk_ts_reset(ts);
  unsigned long conns0 = bk_ts_connections(ts);
  bk_ts_action slow = {.fault = BK_TS_DELAY, .seconds = 1.0};
  for (int i = 0; i < 4; i++) {
    char path[32];
    snprintf(path, sizeof path, "/slots/%d", i);
    bk_ts_script(ts, path, &slow, 1);
  }
  ended e = {.n = 0};
  pthread_mutex_init(&e.m, NULL);
  bulkup_uploader_options o;
  fast_options(&o);
  o.workers = 4;
  o.threads = 1;
  o.on_complete = ended_cb;
  o.userdata = &e;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("slots.bin", 5000, 40);
  double t0 = bk_now();
  for (int i = 0; i < 4; i++) {
    char path[32];
    snprintf(path, sizeof path, "/slots/%d", i);
    submit_url(u, f, path);
  }
  /* Then many quick ones: they reuse the four connections. */
  for (int i = 4; i < 40; i++) {
    char path[32];
    snprintf(path, sizeof path, "/slots/%d", i);
    submit_url(u, f, path);
  }
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  double dt = bk_now() - t0;
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.succeeded, 40);
  /* The four slow requests ran at once on the one thread: 1 s, not 4 s
   * (one after the other). The bound leaves 2 s for the 36 quick ones
   * and a slow machine, and is still a second short of 4 s. */
  CU_ASSERT(dt < 3.0);
  for (int i = 1; i < 40; i++)
    CU_ASSERT(pthread_equal(e.thread[i], e.thread[0]));
  /* As many connections as transfer slots: not threads, not items. */
  CU_ASSERT_EQUAL(bk_ts_connections(ts) - conns0, 4);
  for (int i = 0; i < 40; i++) {
    char path[32];
    snprintf(path, sizeof path, "/slots/%d", i);
    assert_stored(ts, path, f);
  }
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  pthread_mutex_destroy(&e.m);
}

static void test_retry_timer_does_not_block_other_slots(void) {
  bk_ts_reset(ts);
  bk_ts_action a = {.fault = BK_TS_STATUS, .status = 503};
  bk_ts_script(ts, "/timer/a", &a, 1);
  ended e = {.n = 0};
  pthread_mutex_init(&e.m, NULL);
  bulkup_uploader_options o;
  fast_options(&o);
  o.workers = 2;
  o.threads = 1;
  o.requests.backoff_factor = 1.5; /* the retry waits 1.5 s */
  o.on_complete = ended_cb;
  o.userdata = &e;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("timer.bin", 100, 41);
  double t0 = bk_now();
  submit_url(u, f, "/timer/a");
  for (int i = 1; i <= 20; i++) {
    char path[32];
    snprintf(path, sizeof path, "/timer/b%d", i);
    submit_url(u, f, path);
  }
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.succeeded, 21);
  CU_ASSERT_EQUAL(s.retries, 1);
  /* The other slot went on with the other items meanwhile: all twenty
   * ended before the waiting item, which kept its slot and went once its
   * time came. (An order, not a deadline, which a slow machine could
   * miss: a thread that blocked in the retry wait would end the waiting
   * item before most of the others.) */
  for (int i = 1; i <= 20; i++)
    CU_ASSERT(e.at[i] < e.at[0]);
  CU_ASSERT(e.at[0] - t0 >= 1.5);
  CU_ASSERT_EQUAL(e.attempts[0], 2);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/timer/a"), 2);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  pthread_mutex_destroy(&e.m);
}

static void test_cancel_with_many_slots_busy(void) {
  bk_ts_reset(ts);
  bk_ts_action slow[16];
  for (int i = 0; i < 16; i++)
    slow[i] = (bk_ts_action){.fault = BK_TS_DELAY, .seconds = 3};
  bk_ts_script(ts, NULL, slow, 15);
  bk_ts_action a = {.fault = BK_TS_STATUS, .status = 503};
  bk_ts_script(ts, "/cmany/wait", &a, 1);
  bulkup_uploader_options o;
  fast_options(&o);
  o.workers = 16;
  o.threads = 2;
  o.queue_capacity = 100;
  o.requests.backoff_factor = 60; /* the 503'd item waits a minute */
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("cmany.bin", 1000, 42);
  submit_url(u, f, "/cmany/wait");
  for (int i = 1; i < 60; i++)
    submit_url(u, f, "/cmany/x");
  /* Let the sixteen slots start: one waits for its retry, fifteen wait
   * for the server. */
  usleep(500000);
  double t0 = bk_now();
  bulkup_uploader_cancel(u);
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_ECANCELED);
  CU_ASSERT(bk_now() - t0 < 1.0);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.submitted, 60);
  CU_ASSERT_EQUAL(s.cancelled, 60);
  CU_ASSERT_EQUAL(bulkup_report_cancelled(rep, 0)->attempts, 1);
  CU_ASSERT_EQUAL(bulkup_report_cancelled(rep, 59)->attempts, 0);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}

static void test_new_item_started_promptly(void) {
  bk_ts_reset(ts);
  bk_ts_action slow = {.fault = BK_TS_DELAY, .seconds = 2};
  bk_ts_script(ts, "/prompt/a", &slow, 1);
  ended e = {.n = 0};
  pthread_mutex_init(&e.m, NULL);
  bulkup_uploader_options o;
  fast_options(&o);
  o.workers = 2;
  o.threads = 1;
  o.on_complete = ended_cb;
  o.userdata = &e;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("prompt.bin", 100, 43);
  submit_url(u, f, "/prompt/a");
  /* The worker is now asleep in its multi handle with one slot busy (its
   * next deadline is a second away) and one free. */
  usleep(300000);
  double t1[3];
  for (int i = 1; i <= 3; i++) {
    char path[32];
    snprintf(path, sizeof path, "/prompt/b%d", i);
    t1[i - 1] = bk_now();
    submit_url(u, f, path);
    usleep(150000);
  }
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  /* Each started at once, not at the worker's next timeout: a missed
   * wake-up would leave b1 waiting for the poll's 1 s safety net, about
   * 0.7 s after its submit. The bound leaves a whole PUT on a new
   * connection half a second, for a slow (sanitized, loaded) machine. */
  for (int i = 1; i <= 3; i++)
    CU_ASSERT(e.at[i] - t1[i - 1] < 0.5);
  CU_ASSERT(e.at[0] > e.at[3]);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  pthread_mutex_destroy(&e.m);
}

static void reg(void) {
  bk_suite("upload", suite_init, suite_clean);
  bk_test("many files stored byte-identical", test_many_files_stored_identically);
  bk_test("memory and callback sources", test_memory_and_callback_sources);
  bk_test("Content-MD5", test_content_md5_sent);
  bk_test("503 twice then success", test_503_twice_then_success);
  bk_test("500/502/504/408/429 retried", test_transient_statuses_each_retried);
  bk_test("Retry-After honoured and capped", test_retry_after_honoured);
  bk_test("retries exhausted", test_retries_exhausted);
  bk_test("explicit zero retries", test_explicit_zero_retries_means_zero);
  bk_test("permanent statuses not retried", test_permanent_statuses_not_retried);
  bk_test("reset mid-body", test_reset_mid_body_retried_and_rewound);
  bk_test("truncated and empty responses", test_truncated_and_empty_responses);
  bk_test("connection refused", test_connection_refused_counts_connection_retries);
  bk_test("connect timeout in TLS handshake", test_connect_timeout_fires_in_handshake);
  bk_test("write timeout phase", test_write_timeout_fires_only_while_sending);
  bk_test("read timeout phase", test_read_timeout_fires_only_after_body);
  bk_test("TLS verification", test_tls_verification);
  bk_test("schemes refused", test_schemes_refused);
  bk_test("redirect not followed", test_redirect_not_followed);
  bk_test("no signature in report or log", test_no_signature_in_report_or_log);
  bk_test("bad files", test_bad_files);
  bk_test("file changed during upload", test_file_changed_during_upload);
  bk_test("cancel mid-run", test_cancel_mid_run);
  bk_test("cancel ends backoff wait", test_cancel_ends_backoff_wait);
  bk_test("submit blocks when queue full", test_submit_blocks_when_queue_full);
  bk_test("retry budget", test_retry_budget_stops_storm);
  bk_test("allow_failures outcomes", test_allow_failures_outcomes);
  bk_test("report JSON", test_report_json_shape);
  bk_test("completion callback once per item", test_completion_callback_once_per_item);
  bk_test("invalid items and options", test_invalid_items_and_options);
  bk_test("free without finish", test_free_without_finish);
  bk_test("expired URL refreshed once", test_expired_url_refreshed_once);
  bk_test("submit_failure keeps order", test_submit_failure_keeps_order);
  bk_test("libcurl's silent re-send", test_silent_resend_gets_fresh_phases);
  bk_test("one thread, several in flight", test_one_thread_several_in_flight);
  bk_test("retry timer does not block other slots",
          test_retry_timer_does_not_block_other_slots);
  bk_test("cancel with many slots busy", test_cancel_with_many_slots_busy);
  bk_test("new item started promptly", test_new_item_started_promptly);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
