/* The upload engine against the fault-scripting test server, cancel:
 * mid-run, during a backoff wait, with many slots busy; free without finish. One test per fault kind,
 * asserting attempts, status, error kind and stored bytes. */
#include "upload_common.h"


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

static void reg(void) {
  bk_suite("upload_cancel", suite_init, suite_clean);
  bk_test("cancel mid-run", test_cancel_mid_run);
  bk_test("cancel ends backoff wait", test_cancel_ends_backoff_wait);
  bk_test("cancel with many slots busy", test_cancel_with_many_slots_busy);
  bk_test("free without finish", test_free_without_finish);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
