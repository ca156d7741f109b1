/* The upload engine through an outage: the server (a proxy in front of the
 * test server) goes away in the middle of a run, and comes back, or not.
 * Asserted: nothing fails for the outage, only probes go out while it lasts
 * (at most two a second, one at a time), every item is stored
 * byte-identical once the server is back; and a server that never comes
 * back ends the run after no_progress_limit with every unfinished item
 * reported. The bound on the requests sent while the server was away
 * counts the test's own measured outage length: load can only lower the
 * number of probes in it, never raise it. */
#include "upload_common.h"
#include "engine/engine.h"

#include <math.h>
#include <time.h>

enum { RETRIES = 2 };
/* The run's size, its transfers, the items stored before the server goes
 * away and the probes it waits for before coming back: CI's figures; a
 * measurement sets them larger (BULKUP_OUTAGE_ITEMS, _WORKERS, _FIRST,
 * _PROBES: README's reliability table gives the command). */
static int N = 60, WORKERS = 4, FIRST = 10, PROBES = 4;

typedef struct tally {
  pthread_mutex_t m;
  uint64_t requests, succeeded, failed;
} tally;

static void tally_cb(void *ud, const bulkup_result *r) {
  tally *t = ud;
  pthread_mutex_lock(&t->m);
  t->requests += (uint64_t)r->requests;
  if (r->status == BULKUP_ITEM_SUCCEEDED)
    t->succeeded++;
  else
    t->failed++;
  pthread_mutex_unlock(&t->m);
}

static uint64_t tally_succeeded(tally *t) {
  pthread_mutex_lock(&t->m);
  uint64_t n = t->succeeded;
  pthread_mutex_unlock(&t->m);
  return n;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Wait (bounded) until the run has sent `n` probes during an outage. */
static bool wait_probes(bulkup_uploader *u, uint64_t n, double timeout) {
  double end = bk_now() + timeout;
  for (;;) {
    uint64_t outages, probes;
    bk_budget_outage_stats(&u->budget, &outages, &probes);
    if (outages >= 1 && probes >= n)
      return true;
    if (bk_now() > end)
      return false;
    sleep_ms(5);
  }
}

static bool wait_succeeded(tally *t, uint64_t n, double timeout) {
  double end = bk_now() + timeout;
  while (tally_succeeded(t) < n) {
    if (bk_now() > end)
      return false;
    sleep_ms(2);
  }
  return true;
}

/* Requests an item may send of its own once the server is gone, before
 * the run takes it for an outage: the attempt the outage cut, then its
 * retries and connection retries. */
#define OWN_REQUESTS (WORKERS * (1 + RETRIES + RETRIES))

static void outage_options(bulkup_uploader_options *o, tally *t) {
  fast_options(o);
  o->workers = WORKERS;
  o->queue_capacity = N;
  o->requests.backoff_factor = 0.05;
  o->requests.max_retries = RETRIES;
  o->requests.connection_retries = RETRIES;
  o->on_complete = tally_cb;
  o->userdata = t;
}

/* Items from..to-1 to PORT's /outage/i. */
static void submit_range(bulkup_uploader *u, unsigned short port,
                         const char *f, int from, int to) {
  for (int i = from; i < to; i++) {
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/outage/%d", (unsigned)port,
             i);
    bulkup_item it;
    bulkup_item_init(&it);
    it.path = f;
    it.url = url;
    CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
  }
}

/* The first FIRST items are stored, then the server goes away (its
 * connections are cut, new ones refused), then the rest are submitted: the
 * run is mid-way, with work left, whatever the machine's speed. */

static void test_outage_slows_the_run(void) {
  bk_ts_reset(ts);
  bk_proxy *px = NULL;
  bk_proxy_options po = {0};
  CU_ASSERT_FATAL(bk_proxy_start(&px, "127.0.0.1", bk_ts_port(ts), &po) == 0);
  unsigned short port = bk_proxy_port(px);
  tally t = {.m = PTHREAD_MUTEX_INITIALIZER};
  bulkup_uploader_options o;
  outage_options(&o, &t);
  o.no_progress_limit = 120; /* not reached: the server comes back */
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("outage.bin", 3000, 61);
  submit_range(u, port, f, 0, FIRST);

  /* The server goes away mid-run. It comes back (same port) once the run
   * has sent PROBES probes (4). */
  CU_ASSERT_FATAL(wait_succeeded(&t, FIRST, 60));
  double down_at = bk_now();
  bk_proxy_stop(px);
  px = NULL;
  submit_range(u, port, f, FIRST, N);
  CU_ASSERT(wait_probes(u, (uint64_t)PROBES, 60 + PROBES * BK_PROBE_INTERVAL * 2));
  uint64_t succeeded_down = tally_succeeded(&t);
  po.listen_port = port;
  CU_ASSERT_FATAL(bk_proxy_start(&px, "127.0.0.1", bk_ts_port(ts), &po) == 0);
  double up_at = bk_now();

  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.submitted, N);
  CU_ASSERT_EQUAL(s.succeeded, N);
  CU_ASSERT_EQUAL(s.failed, 0);
  CU_ASSERT_EQUAL(bulkup_report_failure_count(rep), 0);
  CU_ASSERT_EQUAL(succeeded_down, FIRST); /* nothing while it was away */
  for (int i = 0; i < N; i++) {
    char path[32];
    snprintf(path, sizeof path, "/outage/%d", i);
    assert_stored(ts, path, f);
  }
  uint64_t outages, probes;
  bk_budget_outage_stats(&u->budget, &outages, &probes);
  CU_ASSERT_EQUAL(outages, 1);
  /* Every request the client sent either reached the server or was sent
   * while it was away. */
  uint64_t sent = t.requests, reached = bk_ts_request_count(ts);
  CU_ASSERT(sent >= reached);
  uint64_t while_down = sent - reached;
  double down_s = up_at - down_at;
  uint64_t bound = OWN_REQUESTS + (uint64_t)ceil(down_s / BK_PROBE_INTERVAL) + 1;
  CU_ASSERT(while_down >= probes);
  CU_ASSERT(while_down <= bound);
  printf("\n# outage of %.2f s in a run of %d: %llu requests while down "
         "(%llu probes; bound %llu), %llu failed\n",
         down_s, N, (unsigned long long)while_down,
         (unsigned long long)probes, (unsigned long long)bound,
         (unsigned long long)s.failed);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  bk_proxy_stop(px);
}

static void test_no_progress_limit_ends_the_run(void) {
  bk_ts_reset(ts);
  bk_proxy *px = NULL;
  bk_proxy_options po = {0};
  CU_ASSERT_FATAL(bk_proxy_start(&px, "127.0.0.1", bk_ts_port(ts), &po) == 0);
  tally t = {.m = PTHREAD_MUTEX_INITIALIZER};
  bulkup_uploader_options o;
  outage_options(&o, &t);
  o.no_progress_limit = 1;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("gone.bin", 3000, 62);
  unsigned short port = bk_proxy_port(px);
  submit_range(u, port, f, 0, FIRST);

  /* The server goes away for good. */
  CU_ASSERT_FATAL(wait_succeeded(&t, FIRST, 60));
  double down_at = bk_now();
  bk_proxy_stop(px);
  submit_range(u, port, f, FIRST, N);
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_EUPLOAD);
  double down_s = bk_now() - down_at;
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.submitted, N);
  CU_ASSERT_EQUAL(s.succeeded + s.failed, N);
  CU_ASSERT_EQUAL(s.cancelled, 0);
  CU_ASSERT_EQUAL(s.succeeded, FIRST);
  /* Every unfinished item is reported, as given up for the outage. */
  CU_ASSERT_EQUAL(bulkup_report_failure_count(rep), s.failed);
  size_t given_up = 0;
  for (size_t i = 0; i < bulkup_report_failure_count(rep); i++) {
    const bulkup_result *r = bulkup_report_failure(rep, i);
    bool gave_up = r->error == BULKUP_ERROR_RETRY_BUDGET &&
                   strstr(r->message, "nothing has succeeded for") != NULL;
    given_up += gave_up;
    if (!gave_up)
      printf("\n# not given up: item %llu: %s: %s (%d attempts)\n",
             (unsigned long long)r->index, bulkup_error_kind_name(r->error),
             r->message, r->attempts);
  }
  CU_ASSERT_EQUAL(given_up, s.failed);
  uint64_t outages, probes;
  bk_budget_outage_stats(&u->budget, &outages, &probes);
  CU_ASSERT_EQUAL(outages, 1);
  uint64_t while_down = t.requests - bk_ts_request_count(ts);
  uint64_t bound = OWN_REQUESTS + (uint64_t)ceil(down_s / BK_PROBE_INTERVAL) + 1;
  CU_ASSERT(while_down <= bound);
  printf("\n# server gone for good: run ended %.2f s later, %llu of %d "
         "failed, %llu requests while down (bound %llu)\n",
         down_s, (unsigned long long)s.failed, N,
         (unsigned long long)while_down, (unsigned long long)bound);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}

static void test_lone_failing_url_fails_on_its_own(void) {
  /* One URL keeps answering 503 while the others succeed: it fails after
   * its own retries (no outage), the others are stored. */
  bk_ts_reset(ts);
  bk_ts_action fail[50];
  for (int i = 0; i < 50; i++)
    fail[i] = (bk_ts_action){.fault = BK_TS_STATUS, .status = 503};
  bk_ts_script(ts, "/lone/bad", fail, 50);
  tally t = {.m = PTHREAD_MUTEX_INITIALIZER};
  bulkup_uploader_options o;
  fast_options(&o);
  o.requests.max_retries = RETRIES;
  o.on_complete = tally_cb;
  o.userdata = &t;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("lone.bin", 100, 63);
  for (int i = 0; i < 20; i++) {
    char path[32];
    snprintf(path, sizeof path, i == 5 ? "/lone/bad" : "/lone/%d", i);
    char *url = bk_ts_url(ts, path);
    bulkup_item it;
    bulkup_item_init(&it);
    it.path = f;
    it.url = url;
    CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
    free(url);
  }
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_EUPLOAD);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.succeeded, 19);
  CU_ASSERT_EQUAL(s.failed, 1);
  const bulkup_result *r = bulkup_report_failure(rep, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(r->error, BULKUP_ERROR_HTTP_STATUS);
  CU_ASSERT_EQUAL(r->attempts, 1 + RETRIES);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/lone/bad"), 1 + RETRIES);
  uint64_t outages, probes;
  bk_budget_outage_stats(&u->budget, &outages, &probes);
  CU_ASSERT_EQUAL(outages, 0);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}

static void reg(void) {
  bk_suite("upload_outage", suite_init, suite_clean);
  bk_test("an outage slows the run, it does not end it",
          test_outage_slows_the_run);
  bk_test("no_progress_limit ends a run whose server never returns",
          test_no_progress_limit_ends_the_run);
  bk_test("a lone failing URL fails on its own retries",
          test_lone_failing_url_fails_on_its_own);
}

static void knob(const char *name, int *v, int min) {
  const char *e = getenv(name);
  if (e && atoi(e) >= min)
    *v = atoi(e);
}

int main(int argc, char **argv) {
  knob("BULKUP_OUTAGE_ITEMS", &N, 20);
  knob("BULKUP_OUTAGE_WORKERS", &WORKERS, 1);
  knob("BULKUP_OUTAGE_FIRST", &FIRST, 1);
  knob("BULKUP_OUTAGE_PROBES", &PROBES, 1);
  if (FIRST >= N)
    FIRST = N / 2;
  return bk_test_main(argc, argv, reg);
}
