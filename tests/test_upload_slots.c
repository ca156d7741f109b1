/* The upload engine against the fault-scripting test server, scheduling:
 * a full queue blocks submit, several transfers per thread, retry timers, new items started promptly. One test per fault kind,
 * asserting attempts, status, error kind and stored bytes. */
#include "upload_common.h"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/wait.h>


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

/* A transfer can end inside the libcurl call that started it: a request
 * sent in one go (an empty body; a small body sent with its headers) whose
 * answer is back before libcurl's first look at the socket. The worker
 * must still hand it to its slot: with one slot and nothing else in
 * flight, nothing else would wake the worker for it (no socket, no timer)
 * until the read timeout. Whether an answer is that quick is up to the
 * scheduler, so the test sends many: before the fix, three runs in four
 * stalled at least once. */
static void test_transfer_ended_where_started(void) {
  bk_ts_reset(ts);
  bulkup_uploader_options o;
  fast_options(&o);
  o.workers = 1;
  o.threads = 1;
  /* fast_options' read_timeout (5 s) ends a stall: it shows as a retry. */
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *empty = make_file("ended-empty.bin", 0, 44);
  const char *small = make_file("ended-small.bin", 2000, 45);
  enum { N = 1000 };
  for (int i = 0; i < N; i++) {
    char path[32];
    snprintf(path, sizeof path, "/ended/%d", i);
    submit_url(u, i % 3 == 2 ? small : empty, path);
  }
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.succeeded, N);
  CU_ASSERT_EQUAL(s.failed, 0);
  CU_ASSERT_EQUAL(s.retries, 0);
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), N);
  assert_stored(ts, "/ended/0", empty);
  assert_stored(ts, "/ended/2", small);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}

/* The highest descriptor number open in this process. */
static int max_open_fd(void) {
  int maxfd = 2;
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return 1024;
  struct dirent *e;
  while ((e = readdir(d))) {
    int fd = atoi(e->d_name);
    if (fd > maxfd)
      maxfd = fd;
  }
  closedir(d);
  return maxfd;
}

static void test_workers_near_half_the_fd_limit(void) {
  /* W transfers at once under an open-file limit below 2W: each socket
   * must be polled once (polling libcurl's sockets twice made poll() fail
   * with EINVAL, and every transfer fail as nomem). The server runs in a
   * child process, so that only the client's descriptors count here. */
  /* W is chosen so that the descriptors open now, W sockets and a margin
   * fit under the limit while 2W + 1 does not. */
  const int W = max_open_fd() + 60;
  const int ITEMS = 3 * W;
  CU_ASSERT_FATAL(W <= 1024);
  int up[2], down[2];
  CU_ASSERT_FATAL(pipe(up) == 0 && pipe(down) == 0);
  pid_t pid = fork();
  CU_ASSERT_FATAL(pid >= 0);
  if (pid == 0) {
    /* A fresh process (exec: no threads may start after a fork of a
     * threaded one), which runs child_server below. */
    close(up[0]);
    close(down[1]);
    char env[64];
    snprintf(env, sizeof env, "%d,%d", up[1], down[0]);
    setenv("BK_FD_CHILD_SERVER", env, 1);
    execl("/proc/self/exe", "test_upload_slots", (char *)NULL);
    _exit(1);
  }
  close(up[1]);
  close(down[0]);
  unsigned short port = 0;
  CU_ASSERT_FATAL(read(up[0], &port, sizeof port) == sizeof port && port);

  static unsigned char body[2000];
  bk_fill_random(body, sizeof body, 67);
  struct rlimit old, low;
  CU_ASSERT_FATAL(getrlimit(RLIMIT_NOFILE, &old) == 0);
  low = old;
  /* Room for the W sockets and libcurl's few more, below 2W + 1. */
  low.rlim_cur = (rlim_t)(max_open_fd() + 1 + W + 24);
  CU_ASSERT_FATAL(low.rlim_cur < (rlim_t)(2 * W + 1) &&
                  low.rlim_cur <= old.rlim_max);
  CU_ASSERT_FATAL(setrlimit(RLIMIT_NOFILE, &low) == 0);

  bulkup_uploader_options o;
  fast_options(&o);
  o.workers = W;
  o.threads = 1;
  bulkup_uploader *u;
  bulkup_err rc = bulkup_uploader_new(&u, &o);
  bulkup_report *rep = NULL;
  if (rc == BULKUP_OK) {
    for (int i = 0; i < ITEMS; i++) {
      char url[96];
      snprintf(url, sizeof url, "http://127.0.0.1:%u/fd/%d", (unsigned)port, i);
      bulkup_item it;
      bulkup_item_init(&it);
      it.source = BULKUP_SOURCE_MEMORY;
      it.data = body;
      it.size = sizeof body;
      it.url = url;
      CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
    }
    rc = bulkup_uploader_finish(u, &rep);
  }
  setrlimit(RLIMIT_NOFILE, &old);
  CU_ASSERT_EQUAL(rc, BULKUP_OK);
  if (rep) {
    bulkup_summary s;
    bulkup_report_summary(rep, &s);
    CU_ASSERT_EQUAL(s.succeeded, (uint64_t)ITEMS);
    CU_ASSERT_EQUAL(s.failed, 0);
    if (bulkup_report_failure_count(rep) > 0)
      printf("\n# first failure: %s\n", bulkup_report_failure(rep, 0)->message);
    bulkup_report_free(rep);
    bulkup_uploader_free(u);
  }
  close(down[1]);
  size_t served = 0;
  CU_ASSERT(read(up[0], &served, sizeof served) == sizeof served);
  CU_ASSERT(served >= (size_t)ITEMS);
  close(up[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void reg(void) {
  bk_suite("upload_slots", suite_init, suite_clean);
  bk_test("workers near half the open-file limit",
          test_workers_near_half_the_fd_limit);
  bk_test("submit blocks when queue full", test_submit_blocks_when_queue_full);
  bk_test("one thread, several in flight", test_one_thread_several_in_flight);
  bk_test("retry timer does not block other slots",
          test_retry_timer_does_not_block_other_slots);
  bk_test("new item started promptly", test_new_item_started_promptly);
  bk_test("a transfer that ends in the call that started it",
          test_transfer_ended_where_started);
}

/* The server of test_workers_near_half_the_fd_limit, in its own process:
 * writes its port to `up`, serves until `down` is closed, then writes the
 * number of requests it recorded. */
static int child_server(const char *fds) {
  int up = -1, down = -1;
  if (sscanf(fds, "%d,%d", &up, &down) != 2)
    return 1;
  bk_ts *srv = NULL;
  unsigned short port = 0;
  if (bk_ts_start(&srv, NULL) == 0)
    port = bk_ts_port(srv);
  if (write(up, &port, sizeof port) != sizeof port)
    return 1;
  char c;
  while (read(down, &c, 1) > 0) /* until the parent closes it */
    ;
  size_t n = srv ? bk_ts_request_count(srv) : 0;
  if (write(up, &n, sizeof n) != sizeof n)
    return 1;
  bk_ts_stop(srv);
  return 0;
}

int main(int argc, char **argv) {
  const char *fds = getenv("BK_FD_CHILD_SERVER");
  if (fds)
    return child_server(fds);
  return bk_test_main(argc, argv, reg);
}
