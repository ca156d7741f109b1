/* Allocation failures on the upload path, in the manner of curl's torture
 * tests: the n-th allocation (bulkup's own and libcurl's, which share the
 * hook) fails, for n = 0, 1, 2, ... until a run makes no more
 * allocations than n. Every run must end cleanly: each call returns OK or
 * BULKUP_ENOMEM, the report's invariant holds, every item that failed
 * failed for lack of memory (or a consequence of it on the wire), and
 * nothing leaks (LeakSanitizer in the sanitizer build, valgrind in CI). */
#include "bk_test.h"
#include "bk_ts.h"
#include "internal.h"

#include <stdio.h>

static bk_ts *ts;
static char *dir;
static char file[1024];

static int init(void) {
  if (bk_ts_start(&ts, NULL) != 0)
    return -1;
  dir = bk_tmpdir("allocfail");
  if (!dir)
    return -1;
  snprintf(file, sizeof file, "%s/f.png", dir);
  char data[40000];
  bk_fill_random(data, sizeof data, 5);
  return bk_write_file(file, data, sizeof data);
}

static int clean(void) {
  bk_ts_stop(ts);
  bk_rm_rf(dir);
  free(dir);
  return 0;
}

static bool ok_or_enomem(bulkup_err e) {
  return e == BULKUP_OK || e == BULKUP_ENOMEM;
}

/* Kinds an allocation failure may surface as: directly, or as the wire
 * consequence of libcurl giving up a connection half-way. */
static bool allowed_kind(bulkup_error_kind k) {
  switch (k) {
  case BULKUP_ERROR_NOMEM:
  case BULKUP_ERROR_INTERNAL:
  case BULKUP_ERROR_SEND:
  case BULKUP_ERROR_RECV:
  case BULKUP_ERROR_CONNECT:
  case BULKUP_ERROR_DNS:
    return true;
  default:
    return false;
  }
}

typedef struct outcome {
  bool completed;  /* the run got as far as a report */
  uint64_t failed;
} outcome;

static void one_run(outcome *out) {
  memset(out, 0, sizeof *out);
  bulkup_uploader_options o;
  bulkup_uploader_options_init(&o);
  bk_test_threads(&o);
  o.workers = 2;
  o.requests.backoff_factor = 0;
  o.cloud.allow_failures = true;
  bulkup_uploader *u = NULL;
  bulkup_err rc = bulkup_uploader_new(&u, &o);
  CU_ASSERT(ok_or_enomem(rc));
  if (rc != BULKUP_OK) {
    CU_ASSERT_PTR_NULL(u);
    return;
  }
  static char mem[3000];
  uint64_t submitted = 0;
  for (int i = 0; i < 4; i++) {
    char path[64];
    snprintf(path, sizeof path, "/af/%d?X-Goog-Signature=s", i);
    char *url = bk_ts_url(ts, path);
    bulkup_item it;
    bulkup_item_init(&it);
    if (i % 2) {
      it.source = BULKUP_SOURCE_MEMORY;
      it.data = mem;
      it.size = sizeof mem;
    } else {
      it.path = file;
    }
    it.url = url;
    rc = bulkup_uploader_submit(u, &it, NULL);
    free(url);
    CU_ASSERT(ok_or_enomem(rc));
    if (rc == BULKUP_OK)
      submitted++;
  }
  bulkup_report *rep = NULL;
  rc = bulkup_uploader_finish(u, &rep);
  CU_ASSERT(rc == BULKUP_OK || rc == BULKUP_ENOMEM || rc == BULKUP_EALLFAILED);
  if (rep) {
    out->completed = true;
    bulkup_summary s;
    bulkup_report_summary(rep, &s);
    CU_ASSERT_EQUAL(s.submitted, submitted);
    CU_ASSERT_EQUAL(s.succeeded + s.failed + s.cancelled, s.submitted);
    CU_ASSERT_EQUAL(s.cancelled, 0);
    out->failed = s.failed;
    for (size_t i = 0; i < bulkup_report_failure_count(rep); i++) {
      const bulkup_result *x = bulkup_report_failure(rep, i);
      CU_ASSERT(allowed_kind(x->error));
      if (!allowed_kind(x->error))
        fprintf(stderr, "\n  unexpected kind %s: %s\n",
                bulkup_error_kind_name(x->error), x->message);
    }
    char *json = NULL;
    CU_ASSERT(ok_or_enomem(bulkup_report_to_json(rep, false, &json)));
    bulkup_free(json);
    bulkup_report_free(rep);
  }
  bulkup_uploader_free(u);
}

static void sweep(long (*arm)(long), const char *mode) {
  /* A clean run first, to know how many allocations there are. */
  outcome o;
  arm(-1);
  one_run(&o);
  long base = arm(-1);
  CU_ASSERT_FATAL(base > 10);
  CU_ASSERT_TRUE(o.completed);
  CU_ASSERT_EQUAL(o.failed, 0);
  long runs = 0, faulted = 0;
  for (long n = 0; n < base * 2 + 50; n++) {
    arm(n);
    one_run(&o);
    bool pending = bk_alloc_fault_pending();
    long made = arm(-1);
    runs++;
    if (!pending)
      faulted++;
    if (pending && made <= n)
      break; /* the run no longer reaches the n-th allocation */
  }
  printf("\n  %s: %ld allocations in a clean run; %ld runs, %ld with a "
         "failed allocation\n", mode, base, runs, faulted);
  CU_ASSERT(faulted >= base / 2);
}

static void test_nth_allocation_fails(void) { sweep(bk_alloc_fail_nth, "nth"); }

static void test_all_allocations_fail_from_n(void) {
  sweep(bk_alloc_fail_after, "from-n");
}

static void reg(void) {
  bk_suite("alloc-fail", init, clean);
  bk_test("each allocation fails in turn", test_nth_allocation_fails);
  bk_test("every allocation fails from the n-th on", test_all_allocations_fail_from_n);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
