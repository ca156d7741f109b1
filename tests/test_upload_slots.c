/* The upload engine against the fault-scripting test server, scheduling:
 * a full queue blocks submit, several transfers per thread, retry timers, new items started promptly. One test per fault kind,
 * asserting attempts, status, error kind and stored bytes. */
#include "upload_common.h"


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


/* ---- several transfers per worker thread ------------------------------- */

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
  bk_suite("upload_slots", suite_init, suite_clean);
  bk_test("submit blocks when queue full", test_submit_blocks_when_queue_full);
  bk_test("one thread, several in flight", test_one_thread_several_in_flight);
  bk_test("retry timer does not block other slots",
          test_retry_timer_does_not_block_other_slots);
  bk_test("new item started promptly", test_new_item_started_promptly);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
