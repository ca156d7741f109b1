/* upload_common.h - what the test_upload_*.c suites share: the fault-
 * scripting test servers (plain and TLS), a temporary directory, fast
 * options, files of seeded bytes, one-item runs, and the checks of what
 * was stored. Each suite is one program: include this once. */
#ifndef BK_UPLOAD_COMMON_H
#define BK_UPLOAD_COMMON_H
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
static inline void fast_options(bulkup_uploader_options *o) {
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
static inline const char *make_file(const char *name, size_t size,
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
static inline void upload_one(bk_ts *server, const bulkup_uploader_options *o,
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

static inline void assert_stored(bk_ts *server, const char *path, const char *file) {
  char want[65], got[65];
  CU_ASSERT_FATAL(bk_sha256_file_hex(file, want) == 0);
  struct stat st;
  stat(file, &st);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(server, path, got), (long long)st.st_size);
  CU_ASSERT_STRING_EQUAL(got, want);
}

static inline const bulkup_result *only_failure(const run *r) {
  CU_ASSERT_EQUAL_FATAL(bulkup_report_failure_count(r->rep), 1);
  return bulkup_report_failure(r->rep, 0);
}

/* ---- success paths ---------------------------------------------------- */


/* When each item ended, and on which thread. */
typedef struct ended {
  pthread_mutex_t m;
  double at[64];
  int status[64];
  int attempts[64];
  pthread_t thread[64];
  int n;
} ended;

static inline void ended_cb(void *ud, const bulkup_result *r) {
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

static inline void submit_url(bulkup_uploader *u, const char *file, const char *path) {
  char *url = bk_ts_url(ts, path);
  bulkup_item it;
  bulkup_item_init(&it);
  it.path = file;
  it.url = url;
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
  free(url);
}

#endif
