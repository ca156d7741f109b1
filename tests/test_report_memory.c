/*
 * test_report_memory.c - a run's memory does not grow with its number of
 * failures (issue 13, item 11): the report's kept failures go to a
 * temporary file past BK_SPILL_BYTES and are streamed back into the JSON
 * report, which still lists every one, in index order.
 *
 * "spill order" drives the report directly with a tiny spill threshold
 * (items added out of order, failed and cancelled, paths NULL or not,
 * excerpts with NUL bytes) and checks every accessor and both JSON writers
 * against what was added. "many failures" runs the same uploads twice, in
 * fresh child processes (exec): once answered 201, once 403 with a 1 KiB
 * body (kept as each failure's excerpt), and compares the children's peak
 * RSS (VmHWM); the 403 run's report must list each item exactly once.
 */
#include "bk_test.h"
#include "bk_ts.h"
#include "internal.h"
#include "report.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define BK_SANITIZED 1
#endif
#endif

static char *tmp;

static int suite_init(void) {
  tmp = bk_tmpdir("repmem");
  return tmp ? 0 : -1;
}

static int suite_clean(void) {
  bk_rm_rf(tmp);
  free(tmp);
  return 0;
}

/* ---- spill order ---------------------------------------------------------- */

#define NSPILL 700

static void make_result(bulkup_result *x, uint64_t index, char *path,
                        char *url, char *msg, char *exc, size_t *exclen) {
  memset(x, 0, sizeof *x);
  x->index = index;
  x->status = index % 7 == 3 ? BULKUP_ITEM_CANCELLED : BULKUP_ITEM_FAILED;
  x->error = x->status == BULKUP_ITEM_FAILED ? BULKUP_ERROR_HTTP_STATUS
                                             : BULKUP_ERROR_CANCELLED;
  x->attempts = (int)(index % 5);
  x->http_status = 400 + (int)(index % 100);
  x->bytes_sent = index * 3;
  x->size = index * 11;
  x->elapsed_s = (double)index / 8;
  x->user = (void *)(uintptr_t)(index + 1);
  x->resumable = index % 2 == 0;
  x->requests = (int)(index % 9);
  snprintf(path, 64, "dir/file-%llu", (unsigned long long)index);
  x->path = index % 4 == 1 ? NULL : path;
  x->title = index % 4 == 1 ? "memory" : path;
  snprintf(url, 96, "http://127.0.0.1:1/up/%llu", (unsigned long long)index);
  x->url = url;
  snprintf(msg, 64, "HTTP %d for item %llu", x->http_status,
           (unsigned long long)index);
  x->message = msg;
  /* An excerpt of index % 300 bytes, a NUL byte in it. */
  *exclen = (size_t)(index % 300);
  for (size_t i = 0; i < *exclen; i++)
    exc[i] = i == 5 ? '\0' : (char)('a' + (index + i) % 26);
  x->response_excerpt = exc;
  x->response_excerpt_len = *exclen;
}

static void check_result(const bulkup_result *got, uint64_t index) {
  char path[64], url[96], msg[64], exc[300];
  size_t n;
  bulkup_result w;
  make_result(&w, index, path, url, msg, exc, &n);
  CU_ASSERT_FATAL(got != NULL);
  CU_ASSERT_EQUAL(got->index, index);
  CU_ASSERT_EQUAL(got->status, w.status);
  CU_ASSERT_EQUAL(got->error, w.error);
  CU_ASSERT_EQUAL(got->attempts, w.attempts);
  CU_ASSERT_EQUAL(got->http_status, w.http_status);
  CU_ASSERT_EQUAL(got->bytes_sent, w.bytes_sent);
  CU_ASSERT_EQUAL(got->size, w.size);
  CU_ASSERT_EQUAL(got->elapsed_s, w.elapsed_s);
  CU_ASSERT_PTR_EQUAL(got->user, w.user);
  CU_ASSERT_EQUAL(got->resumable, w.resumable);
  CU_ASSERT_EQUAL(got->requests, w.requests);
  if (w.path) {
    CU_ASSERT(got->path && strcmp(got->path, w.path) == 0);
  } else {
    CU_ASSERT_PTR_NULL(got->path);
  }
  CU_ASSERT_STRING_EQUAL(got->title, w.title);
  CU_ASSERT_STRING_EQUAL(got->url, w.url);
  CU_ASSERT_STRING_EQUAL(got->message, w.message);
  CU_ASSERT_EQUAL(got->response_excerpt_len, n);
  CU_ASSERT(memcmp(got->response_excerpt, exc, n) == 0);
  CU_ASSERT_EQUAL(got->response_excerpt[n], '\0');
}

/* The report's JSON lists: each index of `want` once, in order. */
static void check_json_lists(json_object *root, const uint64_t *fail,
                             size_t nfail, const uint64_t *canc,
                             size_t ncanc) {
  json_object *f, *c, *s, *v;
  CU_ASSERT_FATAL(json_object_object_get_ex(root, "failures", &f));
  CU_ASSERT_FATAL(json_object_object_get_ex(root, "cancelled", &c));
  CU_ASSERT_FATAL(json_object_object_get_ex(root, "summary", &s));
  CU_ASSERT_FATAL(json_object_array_length(f) == nfail);
  CU_ASSERT_FATAL(json_object_array_length(c) == ncanc);
  for (size_t i = 0; i < nfail; i++) {
    json_object *o = json_object_array_get_idx(f, i);
    CU_ASSERT_FATAL(json_object_object_get_ex(o, "index", &v));
    CU_ASSERT_EQUAL((uint64_t)json_object_get_uint64(v), fail[i]);
    CU_ASSERT_FATAL(json_object_object_get_ex(o, "response_excerpt", &v));
    CU_ASSERT_EQUAL((size_t)json_object_get_string_len(v), fail[i] % 300);
    CU_ASSERT_FATAL(json_object_object_get_ex(o, "url", &v));
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:1/up/%llu",
             (unsigned long long)fail[i]);
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), url);
  }
  for (size_t i = 0; i < ncanc; i++) {
    json_object *o = json_object_array_get_idx(c, i);
    CU_ASSERT_FATAL(json_object_object_get_ex(o, "index", &v));
    CU_ASSERT_EQUAL((uint64_t)json_object_get_uint64(v), canc[i]);
  }
  CU_ASSERT_FATAL(json_object_object_get_ex(s, "failed", &v));
  CU_ASSERT_EQUAL((size_t)json_object_get_uint64(v), nfail);
  CU_ASSERT_FATAL(json_object_object_get_ex(s, "journal_failures", &v));
  CU_ASSERT_EQUAL(json_object_get_uint64(v), 2);
}

static void test_spill_order(void) {
  bulkup_report *r = bk_report_new();
  CU_ASSERT_FATAL(r != NULL);
  r->spill_bytes = 4096; /* a run every few items */
  r->journal_failures = 2;
  /* Indexes 0..NSPILL-1 in a scrambled order (a multiplicative
   * permutation), as completions come. */
  uint64_t fail[NSPILL], canc[NSPILL];
  size_t nf = 0, nc = 0;
  for (uint64_t k = 0; k < NSPILL; k++) {
    uint64_t index = (k * 337 + 11) % NSPILL;
    char path[64], url[96], msg[64], exc[300];
    size_t n;
    bulkup_result x;
    make_result(&x, index, path, url, msg, exc, &n);
    bk_report_add(r, &x);
  }
  for (uint64_t i = 0; i < NSPILL; i++) {
    if (i % 7 == 3)
      canc[nc++] = i;
    else
      fail[nf++] = i;
  }
  bk_report_finalize(r);
  CU_ASSERT(r->failures.nruns > 10); /* it did spill, many runs */
  CU_ASSERT(r->cancelled.nruns > 2);
  CU_ASSERT_EQUAL(r->details_dropped, 0);
  CU_ASSERT_EQUAL(bulkup_report_failure_count(r), nf);
  CU_ASSERT_EQUAL(bulkup_report_cancelled_count(r), nc);

  /* Both writers, before any random access, then again after. */
  for (int round = 0; round < 2; round++) {
    char *text = NULL;
    CU_ASSERT_FATAL(bulkup_report_to_json(r, round == 1, &text) == BULKUP_OK);
    json_object *root = json_tokener_parse(text);
    CU_ASSERT_FATAL(root != NULL);
    check_json_lists(root, fail, nf, canc, nc);
    json_object_put(root);
    bulkup_free(text);

    char out[1024];
    snprintf(out, sizeof out, "%s/r%d.json", tmp, round);
    CU_ASSERT_FATAL(bulkup_report_write_json_with(
                        r, out, "{\"summary\": {\"input\": 9}, "
                                "\"shard\": {\"index\": 1}}") == BULKUP_OK);
    root = json_object_from_file(out);
    CU_ASSERT_FATAL(root != NULL);
    check_json_lists(root, fail, nf, canc, nc);
    json_object *s, *v;
    CU_ASSERT(json_object_object_get_ex(root, "summary", &s) &&
              json_object_object_get_ex(s, "input", &v) &&
              json_object_get_int(v) == 9);
    CU_ASSERT(json_object_object_get_ex(root, "shard", &s) &&
              json_object_object_get_ex(s, "index", &v) &&
              json_object_get_int(v) == 1);
    json_object_put(root);

    /* Random access: the head (merged from the start), then the rest
     * (through the index), backwards; a pointer stays the same. */
    for (size_t i = 0; i < 10; i++) /* merged from the start, no index */
      check_result(bulkup_report_failure(r, i), fail[i]);
    CU_ASSERT(round == 1 || r->failures.offs == NULL);
    for (size_t i = nf; i-- > 0;)
      check_result(bulkup_report_failure(r, i), fail[i]);
    CU_ASSERT(r->failures.offs != NULL);
    for (size_t i = 0; i < nc; i++)
      check_result(bulkup_report_cancelled(r, i), canc[i]);
    CU_ASSERT_PTR_EQUAL(bulkup_report_failure(r, 3),
                        bulkup_report_failure(r, 3));
    CU_ASSERT_PTR_EQUAL(bulkup_report_failure(r, nf - 1),
                        bulkup_report_failure(r, nf - 1));
    CU_ASSERT_PTR_NULL(bulkup_report_failure(r, nf));
    CU_ASSERT_PTR_NULL(bulkup_report_cancelled(r, nc));
  }
  CU_ASSERT_EQUAL(bulkup_report_write_json_with(r, "/dev/null", "[1]"),
                  BULKUP_EINVAL);
  bulkup_report_free(r);
}

/* ---- many failures --------------------------------------------------------- */

#define EXCERPT_LEN 1024

/* The child: upload `n` 16-byte memory items to port, write the report to
 * `report`, then its peak RSS (kB) to `hwm`. */
static int child_run(const char *spec) {
  unsigned port = 0, n = 0;
  char report[1024], hwm[1024];
  if (sscanf(spec, "%u,%u,%1023[^,],%1023s", &port, &n, report, hwm) != 4)
    return 2;
  bulkup_uploader_options o;
  bulkup_uploader_options_init(&o);
  o.workers = 8;
  o.requests.connect_timeout = 10;
  o.requests.read_timeout = 10;
  o.requests.write_timeout = 10;
  bulkup_uploader *u;
  if (bulkup_uploader_new(&u, &o) != BULKUP_OK)
    return 3;
  static const char body[16] = "0123456789abcdef";
  for (unsigned i = 0; i < n; i++) {
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/m/%u", port, i);
    bulkup_item it;
    bulkup_item_init(&it);
    it.source = BULKUP_SOURCE_MEMORY;
    it.data = body;
    it.size = sizeof body;
    it.url = url;
    if (bulkup_uploader_submit(u, &it, NULL) != BULKUP_OK)
      return 4;
  }
  bulkup_report *rep = NULL;
  bulkup_uploader_finish(u, &rep);
  if (!rep || bulkup_report_write_json(rep, report) != BULKUP_OK)
    return 5;
  /* What the CLI's summary does: the first few failures. */
  for (size_t i = 0; i < 5 && i < bulkup_report_failure_count(rep); i++)
    if (!bulkup_report_failure(rep, i))
      return 6;
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  FILE *f = fopen("/proc/self/status", "re");
  long kb = -1;
  char line[256];
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
      break;
  if (f)
    fclose(f);
  FILE *w = fopen(hwm, "we");
  if (!w || kb < 0)
    return 7;
  fprintf(w, "%ld\n", kb);
  return fclose(w) == 0 ? 0 : 8;
}

/* Run a child for n items against srv; its peak RSS in kB (-1 on error). */
static long run_child(bk_ts *srv, unsigned n, const char *report) {
  char hwm[1024], spec[2300];
  snprintf(hwm, sizeof hwm, "%s/hwm", tmp);
  snprintf(spec, sizeof spec, "%u,%u,%s,%s", (unsigned)bk_ts_port(srv), n,
           report, hwm);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    /* A fresh process: its own peak RSS, and no threads after a fork of a
     * threaded one. */
    setenv("BK_REPMEM_CHILD", spec, 1);
    execl("/proc/self/exe", "test_report_memory", (char *)NULL);
    _exit(1);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return -1;
  FILE *f = fopen(hwm, "re");
  long kb = -1;
  if (f) {
    if (fscanf(f, "%ld", &kb) != 1)
      kb = -1;
    fclose(f);
  }
  return kb;
}

static void test_many_failures(void) {
  const bool small = getenv("BULKUP_TEST_NO_HUGE") != NULL;
  const unsigned N = small ? 5000 : 50000;
  bk_ts *srv = NULL;
  CU_ASSERT_FATAL(bk_ts_start(&srv, NULL) == 0);
  char ok_report[1024], fail_report[1024];
  snprintf(ok_report, sizeof ok_report, "%s/ok.json", tmp);
  snprintf(fail_report, sizeof fail_report, "%s/fail.json", tmp);

  long ok_kb = run_child(srv, N, ok_report);
  CU_ASSERT_FATAL(ok_kb > 0);
  CU_ASSERT_EQUAL(bk_ts_request_count(srv), N);

  /* Every request from now on: 403 with a 1 KiB body (each failure's
   * excerpt is the whole body). */
  static char body[EXCERPT_LEN + 1];
  for (size_t i = 0; i < EXCERPT_LEN; i++)
    body[i] = (char)('A' + i % 26);
  bk_ts_action *acts = calloc(N, sizeof *acts);
  CU_ASSERT_FATAL(acts != NULL);
  for (unsigned i = 0; i < N; i++)
    acts[i] = (bk_ts_action){.fault = BK_TS_STATUS, .status = 403,
                             .body = body};
  bk_ts_script(srv, NULL, acts, N);
  free(acts);
  long fail_kb = run_child(srv, N, fail_report);
  CU_ASSERT_FATAL(fail_kb > 0);
  CU_ASSERT_EQUAL(bk_ts_request_count(srv), 2 * (size_t)N);
  bk_ts_stop(srv);
  printf("\n# %u items: peak RSS %ld kB all succeeded, %ld kB all failed "
         "(403, 1 KiB excerpts)\n", N, ok_kb, fail_kb);

  /* Each item failed exactly once in the report, in index order, with the
   * whole excerpt. */
  json_object *root = json_object_from_file(fail_report);
  CU_ASSERT_FATAL(root != NULL);
  json_object *f, *s, *v;
  CU_ASSERT_FATAL(json_object_object_get_ex(root, "failures", &f));
  CU_ASSERT_FATAL(json_object_object_get_ex(root, "summary", &s));
  CU_ASSERT(json_object_object_get_ex(s, "failed", &v) &&
            json_object_get_uint64(v) == N);
  CU_ASSERT(json_object_object_get_ex(s, "succeeded", &v) &&
            json_object_get_uint64(v) == 0);
  CU_ASSERT_FATAL(json_object_array_length(f) == N);
  size_t bad = 0;
  for (unsigned i = 0; i < N; i++) {
    json_object *o = json_object_array_get_idx(f, i);
    char url[96];
    snprintf(url, sizeof url, "/m/%u", i);
    const char *u = json_object_object_get_ex(o, "url", &v)
                        ? json_object_get_string(v) : "";
    size_t ul = strlen(u), wl = strlen(url);
    if (!json_object_object_get_ex(o, "index", &v) ||
        json_object_get_uint64(v) != i || ul < wl ||
        strcmp(u + ul - wl, url) != 0 ||
        !json_object_object_get_ex(o, "http_status", &v) ||
        json_object_get_int(v) != 403 ||
        !json_object_object_get_ex(o, "response_excerpt", &v) ||
        strcmp(json_object_get_string(v), body) != 0)
      bad++;
  }
  CU_ASSERT_EQUAL(bad, 0);
  json_object_put(root);

#ifndef BK_SANITIZED
  /* Kept in memory, the failures' details alone would take N x (1 KiB +
   * URL, message, title) = 60 MB for 50,000: the bound is the spill
   * buffer (1 MiB per list) and a margin, 8 MiB over the success run's.
   * (Not under sanitizers: their shadow memory and quarantine make RSS
   * a measure of the tool.) */
  if (!small)
    CU_ASSERT(fail_kb <= ok_kb + 8 * 1024);
#endif
}

static void reg(void) {
  bk_suite("report_memory", suite_init, suite_clean);
  bk_test("spill order", test_spill_order);
  bk_test("many failures", test_many_failures);
}

int main(int argc, char **argv) {
  const char *spec = getenv("BK_REPMEM_CHILD");
  if (spec)
    return child_run(spec);
  return bk_test_main(argc, argv, reg);
}
