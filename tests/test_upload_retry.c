/* The upload engine against the fault-scripting test server, retries:
 * transient and permanent statuses, Retry-After, limits, resets, refused connections, the shared budget, expired URLs, libcurl's silent re-send. One test per fault kind,
 * asserting attempts, status, error kind and stored bytes. */
#include "upload_common.h"
#include "engine/engine.h"


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


static void test_retry_budget_stops_storm(void) {
  /* The server answers 503 to everything (for the first 200 requests):
   * the budget pays four retries, then the run takes it for an outage and
   * sends one probe at a time instead of a retry per transfer; nothing
   * succeeds, so after no_progress_limit every item ends as retry_budget,
   * the eight never started among them. */
  bk_ts_reset(ts);
  bk_ts_action fail[200];
  for (int i = 0; i < 200; i++)
    fail[i] = (bk_ts_action){.fault = BK_TS_STATUS, .status = 503};
  bk_ts_script(ts, NULL, fail, 200);
  bulkup_uploader_options o;
  fast_options(&o);
  o.requests.backoff_factor = 0;
  o.requests.max_retries = 10; /* the budget, not the limits, runs out */
  o.retry_budget_tokens = 20;  /* four retries in all */
  o.no_progress_limit = 1;
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
  uint64_t outages, probes;
  bk_budget_outage_stats(&u->budget, &outages, &probes);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.failed, 10);
  CU_ASSERT_EQUAL(outages, 1);
  /* The two first attempts, the retries the budget paid (four at most:
   * one of them may go out as a probe, if the gate opened before it was
   * sent), and the probes: nothing else reached the server. */
  size_t reached = bk_ts_request_count(ts);
  CU_ASSERT_EQUAL(reached, 2 + s.retries);
  CU_ASSERT(s.retries >= probes && s.retries - probes <= 4);
  CU_ASSERT(s.retries - probes >= 3);
  size_t budget_kind = 0, never_tried = 0;
  for (size_t i = 0; i < bulkup_report_failure_count(rep); i++) {
    const bulkup_result *r = bulkup_report_failure(rep, i);
    budget_kind += r->error == BULKUP_ERROR_RETRY_BUDGET;
    CU_ASSERT_PTR_NOT_NULL(strstr(r->message, "nothing has succeeded for"));
    never_tried += r->requests == 0;
  }
  CU_ASSERT_EQUAL(budget_kind, 10);
  CU_ASSERT_EQUAL(never_tried, 8);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
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

static void reg(void) {
  bk_suite("upload_retry", suite_init, suite_clean);
  bk_test("503 twice then success", test_503_twice_then_success);
  bk_test("500/502/504/408/429 retried", test_transient_statuses_each_retried);
  bk_test("Retry-After honoured and capped", test_retry_after_honoured);
  bk_test("retries exhausted", test_retries_exhausted);
  bk_test("explicit zero retries", test_explicit_zero_retries_means_zero);
  bk_test("permanent statuses not retried", test_permanent_statuses_not_retried);
  bk_test("reset mid-body", test_reset_mid_body_retried_and_rewound);
  bk_test("truncated and empty responses", test_truncated_and_empty_responses);
  bk_test("connection refused", test_connection_refused_counts_connection_retries);
  bk_test("retry budget", test_retry_budget_stops_storm);
  bk_test("expired URL refreshed once", test_expired_url_refreshed_once);
  bk_test("libcurl's silent re-send", test_silent_resend_gets_fresh_phases);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
