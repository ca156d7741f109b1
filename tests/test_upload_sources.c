/* The upload engine against the fault-scripting test server, sources:
 * files, memory and callback sources, Content-MD5, bad files, a file changed while sent. One test per fault kind,
 * asserting attempts, status, error kind and stored bytes. */
#include "upload_common.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

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


/* One slot's easy handle carries bodies both ways in turn: a small one in
 * memory with the headers (CURLOPT_POSTFIELDS, under 64 KiB), a larger or
 * streamed one through the read callback. Each request is still a PUT of
 * exactly the file, with bulkup's Content-Type and no Expect; with
 * expect_continue the small ones ask for 100-continue as before. */
static void test_body_inline_and_by_callback(void) {
  static const size_t sizes[] = {16384, 100000, 0,     1,     65535,
                                 65536, 300000, 16384, 65535};
  enum { N = sizeof sizes / sizeof sizes[0] };
  for (int expect = 0; expect <= 1; expect++) {
    bk_ts_reset(ts);
    bulkup_uploader_options o;
    fast_options(&o);
    o.workers = 1;
    o.threads = 1;
    o.expect_continue = expect;
    bulkup_uploader *u;
    CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
    char files[N][1024];
    for (int i = 0; i < N; i++) {
      char name[64], path[64];
      snprintf(name, sizeof name, "inline-%d.png", i);
      snprintf(files[i], sizeof files[i], "%s",
               make_file(name, sizes[i], 300 + i));
      snprintf(path, sizeof path, "/inline/%d.png", i);
      submit_url(u, files[i], path);
    }
    /* A memory item between them, and one with its own Content-Type. */
    unsigned char mem[3000];
    bk_fill_random(mem, sizeof mem, 9);
    char want[65];
    bk_sha256_hex(mem, sizeof mem, want);
    bulkup_item it;
    bulkup_item_init(&it);
    it.source = BULKUP_SOURCE_MEMORY;
    it.data = mem;
    it.size = sizeof mem;
    const char *own[] = {"Content-Type: text/x-own", NULL};
    it.headers = own;
    char *url = bk_ts_url(ts, "/inline/mem");
    it.url = url;
    CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
    free(url);
    bulkup_report *rep;
    CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
    bulkup_summary s;
    bulkup_report_summary(rep, &s);
    CU_ASSERT_EQUAL(s.succeeded, N + 1);
    CU_ASSERT_EQUAL(s.retries, 0);
    for (int i = 0; i < N; i++) {
      char path[64];
      snprintf(path, sizeof path, "/inline/%d.png", i);
      assert_stored(ts, path, files[i]);
    }
    char got[65];
    CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/inline/mem", got),
                    (long long)sizeof mem);
    CU_ASSERT_STRING_EQUAL(got, want);
    CU_ASSERT_EQUAL(bk_ts_request_count(ts), N + 1);
    for (size_t i = 0; i < bk_ts_request_count(ts); i++) {
      bk_ts_request rq;
      CU_ASSERT_EQUAL_FATAL(bk_ts_request_get(ts, i, &rq), 0);
      CU_ASSERT_STRING_EQUAL(rq.method, "PUT");
      CU_ASSERT_EQUAL(rq.content_length, (long long)rq.body_bytes);
      CU_ASSERT(rq.complete);
      bool is_mem = strcmp(rq.path, "/inline/mem") == 0;
      CU_ASSERT_STRING_EQUAL(rq.content_type,
                             is_mem ? "text/x-own" : "image/png");
      /* libcurl asks for 100-continue on a PUT with a body. */
      CU_ASSERT_STRING_EQUAL(rq.expect, expect && rq.body_bytes > 0
                                            ? "100-continue"
                                            : "");
    }
    bulkup_report_free(rep);
    bulkup_uploader_free(u);
  }
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

typedef struct fifo_watch {
  const char *path;
  atomic_bool done;   /* the run finished */
  atomic_bool fired;  /* the watchdog had to open the FIFO */
} fifo_watch;

/* If the run is still not done after 20 s, open the FIFO for writing: that
 * unblocks an engine stuck opening it, so the test ends (and fails) rather
 * than hangs. */
static void *fifo_watchdog(void *arg) {
  fifo_watch *w = arg;
  double end = bk_now() + 20;
  while (!atomic_load(&w->done) && bk_now() < end) {
    struct timespec t = {0, 10 * 1000 * 1000};
    nanosleep(&t, NULL);
  }
  if (!atomic_load(&w->done)) {
    atomic_store(&w->fired, true);
    int fd = open(w->path, O_WRONLY | O_NONBLOCK);
    if (fd >= 0)
      close(fd);
  }
  return NULL;
}

static void test_fifo_and_devices_fail_at_once(void) {
  /* A FIFO (no writer) and a character device among regular files: they
   * fail their items at once, "not a regular file", and the loop goes on
   * (one thread serves all the transfers). */
  bk_ts_reset(ts);
  char fifo[1024];
  snprintf(fifo, sizeof fifo, "%s/a.fifo", tmp);
  unlink(fifo);
  CU_ASSERT_FATAL(mkfifo(fifo, 0600) == 0);
  const char *good = make_file("fifo-good.bin", 5000, 65);
  bulkup_uploader_options o;
  fast_options(&o);
  o.threads = 1;
  o.cloud.allow_failures = true;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *paths[] = {fifo, good, "/dev/null", good};
  for (int i = 0; i < 4; i++) {
    char p[32];
    snprintf(p, sizeof p, "/fifo/%d", i);
    char *url = bk_ts_url(ts, p);
    bulkup_item it;
    bulkup_item_init(&it);
    it.path = paths[i];
    it.url = url;
    CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
    free(url);
  }
  fifo_watch w = {.path = fifo};
  atomic_init(&w.done, false);
  atomic_init(&w.fired, false);
  pthread_t th;
  pthread_create(&th, NULL, fifo_watchdog, &w);
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  atomic_store(&w.done, true);
  pthread_join(th, NULL);
  CU_ASSERT_FALSE(atomic_load(&w.fired));
  CU_ASSERT_EQUAL_FATAL(bulkup_report_failure_count(rep), 2);
  for (size_t i = 0; i < 2; i++) {
    const bulkup_result *x = bulkup_report_failure(rep, i);
    CU_ASSERT_EQUAL(x->index, i * 2);
    CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_FILE);
    CU_ASSERT_EQUAL(x->attempts, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(x->message, "not a regular file"));
  }
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), 2);
  assert_stored(ts, "/fifo/1", good);
  assert_stored(ts, "/fifo/3", good);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  unlink(fifo);
}

static void test_size_zero_with_content(void) {
  /* /proc files say size 0 and have content: their bytes are sent (a
   * snapshot read at open), never an empty object reported as a success.
   * An empty regular file is still an empty upload. */
  bk_ts_reset(ts);
  const char *empty = make_file("empty.bin", 0, 66);
  bulkup_uploader_options o;
  fast_options(&o);
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *paths[] = {"/proc/self/status", empty};
  const char *dest[] = {"/proc/status", "/proc/empty"};
  for (int i = 0; i < 2; i++) {
    char *url = bk_ts_url(ts, dest[i]);
    bulkup_item it;
    bulkup_item_init(&it);
    it.path = paths[i];
    it.url = url;
    CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
    free(url);
  }
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.succeeded, 2);
  size_t len = 0;
  char *data = bk_ts_object_data(ts, "/proc/status", &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(data);
  CU_ASSERT(len > 100);
  CU_ASSERT(len >= 6 && memcmp(data, "Name:\t", 6) == 0);
  CU_ASSERT_PTR_NOT_NULL(memmem(data, len, "\nPid:\t", 6));
  CU_ASSERT_EQUAL(s.bytes_succeeded, (uint64_t)len);
  free(data);
  data = bk_ts_object_data(ts, "/proc/empty", &len);
  CU_ASSERT_PTR_NOT_NULL(data);
  CU_ASSERT_EQUAL(len, 0);
  free(data);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}


/* ---- a descriptor shortage when a source is opened ------------------------ */

/* Descriptors held to exhaust the open-file limit; the log callback
 * releases them at the first "out of descriptors" retry when `release`. */
typedef struct fd_hog {
  int fds[512];
  int n;
  bool release;
  atomic_int retries_logged;
} fd_hog;

static void fd_hog_fill(fd_hog *h) {
  h->n = 0;
  while (h->n < (int)(sizeof h->fds / sizeof h->fds[0])) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      break;
    h->fds[h->n++] = fd;
  }
}

static void fd_hog_free(fd_hog *h) {
  while (h->n > 0)
    close(h->fds[--h->n]);
}

static void fd_hog_log(void *ud, bulkup_log_level level, const char *msg) {
  (void)level;
  fd_hog *h = ud;
  if (!strstr(msg, "out of descriptors"))
    return;
  if (atomic_fetch_add(&h->retries_logged, 1) == 0 && h->release)
    fd_hog_free(h);
}

/* The child process of run_fd_short (a fresh exec: no test server in it,
 * so that no other thread frees a descriptor while they are all taken).
 * spec: "RELEASE,MAX_RETRIES,FILE,URL". Prints "RC SUCCEEDED RETRIES
 * ERROR ATTEMPTS MESSAGE". */
static int fd_short_child(const char *spec) {
  int release = 0, max_retries = 0, off = 0;
  if (sscanf(spec, "%d,%d,%n", &release, &max_retries, &off) != 2)
    return 2;
  char file[1024], url[1024];
  const char *comma = strchr(spec + off, ',');
  if (!comma || (size_t)(comma - spec - off) >= sizeof file)
    return 2;
  snprintf(file, sizeof file, "%.*s", (int)(comma - spec - off), spec + off);
  snprintf(url, sizeof url, "%s", comma + 1);
  fd_hog h;
  h.release = release != 0;
  atomic_init(&h.retries_logged, 0);
  bulkup_uploader_options o;
  fast_options(&o);
  o.requests.max_retries = max_retries;
  o.log = fd_hog_log;
  o.log_level = BULKUP_LOG_INFO;
  o.userdata = &h;
  bulkup_uploader *u;
  if (bulkup_uploader_new(&u, &o) != BULKUP_OK)
    return 3;
  /* The workers (their eventfds, multi handles) exist: now take every
   * descriptor left under a low soft limit. */
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
    return 4;
  int maxfd = 0;
  for (int fd = 0; fd < 4096; fd++)
    if (fcntl(fd, F_GETFD) >= 0)
      maxfd = fd;
  lim.rlim_cur = (rlim_t)maxfd + 200;
  if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
    return 4;
  fd_hog_fill(&h);
  if (h.n == 0 || h.n == 512)
    return 5;
  bulkup_item it;
  bulkup_item_init(&it);
  it.path = file;
  it.url = url;
  if (bulkup_uploader_submit(u, &it, NULL) != BULKUP_OK)
    return 6;
  bulkup_report *rep = NULL;
  bulkup_err rc = bulkup_uploader_finish(u, &rep);
  fd_hog_free(&h); /* when not released by the callback */
  bulkup_summary sum;
  bulkup_report_summary(rep, &sum);
  const bulkup_result *x = bulkup_report_failure(rep, 0);
  printf("%d %llu %d %d %d %s\n", (int)rc, (unsigned long long)sum.succeeded,
         atomic_load(&h.retries_logged), x ? (int)x->error : -1,
         x ? x->attempts : -1, x ? x->message : "-");
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  return 0;
}

typedef struct fd_short_out {
  int rc, retries, error, attempts;
  unsigned long long succeeded;
  char message[800];
} fd_short_out;

/* Upload one file with every descriptor of the uploading process taken
 * (a child: see fd_short_child); `release`: freed at the first retry. */
static void run_fd_short(bool release, int max_retries, const char *file,
                         fd_short_out *out) {
  memset(out, 0, sizeof *out);
  out->rc = -1;
  char *url = bk_ts_url(ts, "/fdshort");
  char spec[2300];
  snprintf(spec, sizeof spec, "%d,%d,%s,%s", release ? 1 : 0, max_retries,
           file, url);
  free(url);
  int pfd[2];
  CU_ASSERT_FATAL(pipe(pfd) == 0);
  pid_t pid = fork();
  CU_ASSERT_FATAL(pid >= 0);
  if (pid == 0) {
    dup2(pfd[1], STDOUT_FILENO);
    close(pfd[0]);
    close(pfd[1]);
    setenv("BK_FDSHORT_CHILD", spec, 1);
    execl("/proc/self/exe", "test_upload_sources", (char *)NULL);
    _exit(1);
  }
  close(pfd[1]);
  char buf[1024];
  size_t n = 0;
  ssize_t k;
  while (n < sizeof buf - 1 && (k = read(pfd[0], buf + n, sizeof buf - 1 - n)) > 0)
    n += (size_t)k;
  buf[n] = '\0';
  close(pfd[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  int off = 0;
  CU_ASSERT(sscanf(buf, "%d %llu %d %d %d %n", &out->rc, &out->succeeded,
                   &out->retries, &out->error, &out->attempts, &off) == 5);
  snprintf(out->message, sizeof out->message, "%s", buf + off);
}

static void test_descriptor_shortage_retried(void) {
  /* Opening the source fails with EMFILE: the item waits and opens again
   * (a descriptor shortage passes as other transfers end), it is not
   * failed as a bad file. */
  const char *file = make_file("fdshort.bin", 3000, 91);
  fd_short_out r;
  bk_ts_reset(ts);
  run_fd_short(true, 3, file, &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  CU_ASSERT_EQUAL(r.succeeded, 1);
  CU_ASSERT_EQUAL(r.retries, 1);
  CU_ASSERT_EQUAL(r.error, -1); /* no failure */
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), 1);
  assert_stored(ts, "/fdshort", file);

  /* Never released: max_retries opens again, then the item fails as a
   * file error that says so, with no request sent. */
  bk_ts_reset(ts);
  run_fd_short(false, 2, file, &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_EUPLOAD);
  CU_ASSERT_EQUAL(r.succeeded, 0);
  CU_ASSERT_EQUAL(r.retries, 2);
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), 0);
  CU_ASSERT_EQUAL(r.error, BULKUP_ERROR_FILE);
  CU_ASSERT_EQUAL(r.attempts, 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.message, strerror(EMFILE)));
  CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "(tried 3 times)"));
}

static void reg(void) {
  bk_suite("upload_sources", suite_init, suite_clean);
  bk_test("size 0 with content: /proc files sent", test_size_zero_with_content);
  bk_test("a FIFO and a device fail at once", test_fifo_and_devices_fail_at_once);
  bk_test("a descriptor shortage at open is retried",
          test_descriptor_shortage_retried);
  bk_test("many files stored byte-identical", test_many_files_stored_identically);
  bk_test("memory and callback sources", test_memory_and_callback_sources);
  bk_test("bodies inline and by callback on one handle",
          test_body_inline_and_by_callback);
  bk_test("Content-MD5", test_content_md5_sent);
  bk_test("bad files", test_bad_files);
  bk_test("file changed during upload", test_file_changed_during_upload);
}

int main(int argc, char **argv) {
  const char *spec = getenv("BK_FDSHORT_CHILD");
  if (spec)
    return fd_short_child(spec);
  return bk_test_main(argc, argv, reg);
}
