/* The upload engine against the fault-scripting test server, timeouts:
 * the connect, write and read phases. One test per fault kind,
 * asserting attempts, status, error kind and stored bytes. */
#include "upload_common.h"


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

static void reg(void) {
  bk_suite("upload_timeouts", suite_init, suite_clean);
  bk_test("connect timeout in TLS handshake", test_connect_timeout_fires_in_handshake);
  bk_test("write timeout phase", test_write_timeout_fires_only_while_sending);
  bk_test("read timeout phase", test_read_timeout_fires_only_after_body);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
