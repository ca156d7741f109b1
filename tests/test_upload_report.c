/* The upload engine against the fault-scripting test server, the report and the callbacks:
 * allow_failures, the JSON, one completion per item, invalid items and options, submit_failure. One test per fault kind,
 * asserting attempts, status, error kind and stored bytes. */
#include "upload_common.h"

#include <signal.h>
#include <sys/resource.h>


static void test_allow_failures_outcomes(void) {
  const char *f = make_file("af.bin", 10, 27);
  for (int allow = 0; allow < 2; allow++) {
    for (int all_fail = 0; all_fail < 2; all_fail++) {
      bk_ts_reset(ts);
      bk_ts_action a = {.fault = BK_TS_STATUS, .status = 404};
      bk_ts_script(ts, "/af/0", &a, 1);
      if (all_fail)
        bk_ts_script(ts, "/af/1", &a, 1);
      bulkup_uploader_options o;
      fast_options(&o);
      o.cloud.allow_failures = allow;
      bulkup_uploader *u;
      CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
      for (int i = 0; i < 2; i++) {
        char path[32];
        snprintf(path, sizeof path, "/af/%d", i);
        char *url = bk_ts_url(ts, path);
        bulkup_item it;
        bulkup_item_init(&it);
        it.path = f;
        it.url = url;
        bulkup_uploader_submit(u, &it, NULL);
        free(url);
      }
      bulkup_report *rep;
      bulkup_err rc = bulkup_uploader_finish(u, &rep);
      bulkup_err want = !allow ? BULKUP_EUPLOAD
                        : all_fail ? BULKUP_EALLFAILED
                                   : BULKUP_OK;
      CU_ASSERT_EQUAL(rc, want);
      /* Either way every failure is in the report. */
      CU_ASSERT_EQUAL(bulkup_report_failure_count(rep), all_fail ? 2u : 1u);
      bulkup_report_free(rep);
      bulkup_uploader_free(u);
    }
  }
}


static void test_report_json_shape(void) {
  bk_ts_reset(ts);
  bk_ts_action a = {.fault = BK_TS_STATUS, .status = 404, .body = "nope"};
  bk_ts_script(ts, "/json/1", &a, 1);
  bulkup_uploader_options o;
  fast_options(&o);
  o.cloud.allow_failures = true;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("json \"q\".png", 100, 28);
  for (int i = 0; i < 3; i++) {
    char path[32];
    snprintf(path, sizeof path, "/json/%d", i);
    char *url = bk_ts_url(ts, path);
    bulkup_item it;
    bulkup_item_init(&it);
    it.path = f;
    it.url = url;
    bulkup_uploader_submit(u, &it, NULL);
    free(url);
  }
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  char out[1200];
  snprintf(out, sizeof out, "%s/report.json", tmp);
  CU_ASSERT_EQUAL_FATAL(bulkup_report_write_json(rep, out), BULKUP_OK);
  json_object *root = json_object_from_file(out);
  CU_ASSERT_PTR_NOT_NULL_FATAL(root);
  json_object *sum, *fails, *v;
  CU_ASSERT_FATAL(json_object_object_get_ex(root, "summary", &sum));
  CU_ASSERT_FATAL(json_object_object_get_ex(root, "failures", &fails));
  json_object_object_get_ex(sum, "submitted", &v);
  CU_ASSERT_EQUAL(json_object_get_int(v), 3);
  json_object_object_get_ex(sum, "succeeded", &v);
  CU_ASSERT_EQUAL(json_object_get_int(v), 2);
  json_object_object_get_ex(sum, "failed", &v);
  CU_ASSERT_EQUAL(json_object_get_int(v), 1);
  CU_ASSERT_EQUAL_FATAL(json_object_array_length(fails), 1);
  json_object *f0 = json_object_array_get_idx(fails, 0);
  json_object_object_get_ex(f0, "index", &v);
  CU_ASSERT_EQUAL(json_object_get_int(v), 1);
  json_object_object_get_ex(f0, "http_status", &v);
  CU_ASSERT_EQUAL(json_object_get_int(v), 404);
  json_object_object_get_ex(f0, "error", &v);
  CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "http_status");
  json_object_object_get_ex(f0, "title", &v);
  CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "json \"q\".png");
  json_object_object_get_ex(f0, "response_excerpt", &v);
  CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "nope");
  json_object_object_get_ex(f0, "path", &v);
  CU_ASSERT_STRING_EQUAL(json_object_get_string(v), f);
  json_object_put(root);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}


typedef struct counter {
  pthread_mutex_t m;
  int ok, failed;
  uint64_t seen_mask;
} counter;

static void count_cb(void *ud, const bulkup_result *r) {
  counter *c = ud;
  pthread_mutex_lock(&c->m);
  if (r->status == BULKUP_ITEM_SUCCEEDED)
    c->ok++;
  else
    c->failed++;
  c->seen_mask |= 1ULL << r->index;
  pthread_mutex_unlock(&c->m);
}

static void test_completion_callback_once_per_item(void) {
  bk_ts_reset(ts);
  bk_ts_action a = {.fault = BK_TS_STATUS, .status = 400};
  bk_ts_script(ts, "/cb/3", &a, 1);
  counter c = {.ok = 0};
  pthread_mutex_init(&c.m, NULL);
  bulkup_uploader_options o;
  fast_options(&o);
  o.workers = 3;
  o.on_complete = count_cb;
  o.userdata = &c;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("cbk.bin", 10, 29);
  for (int i = 0; i < 40; i++) {
    char path[32];
    snprintf(path, sizeof path, "/cb/%d", i);
    char *url = bk_ts_url(ts, path);
    bulkup_item it;
    bulkup_item_init(&it);
    it.path = f;
    it.url = url;
    bulkup_uploader_submit(u, &it, NULL);
    free(url);
  }
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_EUPLOAD);
  CU_ASSERT_EQUAL(c.ok, 39);
  CU_ASSERT_EQUAL(c.failed, 1);
  CU_ASSERT_EQUAL(c.seen_mask, (1ULL << 40) - 1);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  pthread_mutex_destroy(&c.m);
}


static void test_invalid_items_and_options(void) {
  bulkup_uploader_options o;
  fast_options(&o);
  o.workers = 0;
  bulkup_uploader *u = (bulkup_uploader *)1;
  CU_ASSERT_EQUAL(bulkup_uploader_new(&u, &o), BULKUP_EINVAL);
  CU_ASSERT_PTR_NULL(u);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "workers"));
  fast_options(&o);
  o.requests.read_timeout = -1;
  CU_ASSERT_EQUAL(bulkup_uploader_new(&u, &o), BULKUP_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "read_timeout"));
  fast_options(&o);
  o.user_agent = "bulkup\r\nX-Injected: yes";
  CU_ASSERT_EQUAL(bulkup_uploader_new(&u, &o), BULKUP_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "user_agent"));
  fast_options(&o);
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  bulkup_item it;
  bulkup_item_init(&it);
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_EINVAL);
  it.url = "http://127.0.0.1:1/x";
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_EINVAL);
  it.path = "/nonexistent";
  const char *bad[] = {"X-Evil: a\r\nInjected: b", NULL};
  it.headers = bad;
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_EINVAL);
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.submitted, 0);
  it.headers = NULL;
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_ESTATE);
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, NULL), BULKUP_ESTATE);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  bulkup_uploader_free(NULL);
}


static void test_submit_failure_keeps_order(void) {
  bk_ts_reset(ts);
  bulkup_uploader_options o;
  fast_options(&o);
  o.cloud.allow_failures = true;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("sf.bin", 10, 32);
  char *url = bk_ts_url(ts, "/sf/ok");
  bulkup_item it;
  bulkup_item_init(&it);
  it.path = f;
  it.url = url;
  uint64_t idx;
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, &idx), BULKUP_OK);
  CU_ASSERT_EQUAL(idx, 0);
  bulkup_item bad;
  bulkup_item_init(&bad);
  bad.title = "manifest line 2";
  CU_ASSERT_EQUAL(bulkup_uploader_submit_failure(u, &bad, BULKUP_ERROR_NONE,
                                                 "line 2: unclosed quote", &idx),
                  BULKUP_OK);
  CU_ASSERT_EQUAL(idx, 1);
  bad.path = "/some/where/x.png";
  bad.title = NULL;
  CU_ASSERT_EQUAL(bulkup_uploader_submit_failure(u, &bad, BULKUP_ERROR_FILE,
                                                 NULL, &idx),
                  BULKUP_OK);
  CU_ASSERT_EQUAL(idx, 2);
  CU_ASSERT_EQUAL(bulkup_uploader_submit_failure(u, &bad, (bulkup_error_kind)99,
                                                 NULL, NULL),
                  BULKUP_EINVAL);
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, &idx), BULKUP_OK);
  CU_ASSERT_EQUAL(idx, 3);
  free(url);
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.submitted, 4);
  CU_ASSERT_EQUAL(s.succeeded, 2);
  CU_ASSERT_EQUAL(s.failed, 2);
  CU_ASSERT_EQUAL_FATAL(bulkup_report_failure_count(rep), 2);
  const bulkup_result *x = bulkup_report_failure(rep, 0);
  CU_ASSERT_EQUAL(x->index, 1);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_INPUT);
  CU_ASSERT_EQUAL(x->attempts, 0);
  CU_ASSERT_STRING_EQUAL(x->message, "line 2: unclosed quote");
  CU_ASSERT_STRING_EQUAL(x->title, "manifest line 2");
  CU_ASSERT_PTR_NULL(x->path);
  x = bulkup_report_failure(rep, 1);
  CU_ASSERT_EQUAL(x->index, 2);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_FILE);
  CU_ASSERT_STRING_EQUAL(x->message, "invalid item");
  CU_ASSERT_STRING_EQUAL(x->title, "x.png");
  CU_ASSERT_STRING_EQUAL(x->path, "/some/where/x.png");
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/sf/ok"), 2);
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), 2);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}

static void test_header_injection_refused(void) {
  /* A CR or LF in content_type or cache_control would end the header and
   * inject others (or a second request): refused at submit, nothing sent,
   * while the same item without it goes. */
  bk_ts_reset(ts);
  bulkup_uploader_options o;
  fast_options(&o);
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  const char *f = make_file("inject.bin", 100, 64);
  char *url = bk_ts_url(ts, "/inject");
  static const char *const bad[] = {
      "image/png\r\nX-Injected: yes", "image/png\nX-Injected: yes",
      "image/png\r", "\r\n\r\nPUT /other HTTP/1.1"};
  for (int field = 0; field < 2; field++) {
    for (size_t i = 0; i < BK_ARRAY_LEN(bad); i++) {
      bulkup_item it;
      bulkup_item_init(&it);
      it.path = f;
      it.url = url;
      if (field == 0)
        it.content_type = bad[i];
      else
        it.cache_control = bad[i];
      CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_EINVAL);
      CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(),
                                    field == 0 ? "content_type"
                                               : "cache_control"));
    }
  }
  bulkup_item ok;
  bulkup_item_init(&ok);
  ok.path = f;
  ok.url = url;
  ok.content_type = "image/png";
  ok.cache_control = "no-cache";
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &ok, NULL), BULKUP_OK);
  free(url);
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.submitted, 1);
  CU_ASSERT_EQUAL(s.succeeded, 1);
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), 1);
  bk_ts_request r;
  CU_ASSERT_FATAL(bk_ts_request_get(ts, 0, &r) == 0);
  CU_ASSERT_STRING_EQUAL(r.content_type, "image/png");
  CU_ASSERT_STRING_EQUAL(r.cache_control, "no-cache");
  assert_stored(ts, "/inject", f);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}

/* The report's JSON summary's "journal_failures" (-1 if absent), from
 * bulkup_report_to_json and bulkup_report_write_json alike. */
static long long report_journal_failures_json(const bulkup_report *rep) {
  long long got[2] = {-1, -1};
  char *text = NULL;
  json_object *roots[2] = {NULL, NULL};
  if (bulkup_report_to_json(rep, false, &text) == BULKUP_OK)
    roots[0] = json_tokener_parse(text);
  bulkup_free(text);
  char out[1024];
  snprintf(out, sizeof out, "%s/jf-report.json", tmp);
  if (bulkup_report_write_json(rep, out) == BULKUP_OK)
    roots[1] = json_object_from_file(out);
  for (int i = 0; i < 2; i++) {
    json_object *s, *v;
    if (roots[i] && json_object_object_get_ex(roots[i], "summary", &s) &&
        json_object_object_get_ex(s, "journal_failures", &v) &&
        json_object_is_type(v, json_type_int))
      got[i] = json_object_get_int64(v);
    json_object_put(roots[i]);
  }
  return got[0] == got[1] ? got[0] : -2;
}

static void test_journal_write_failure_surfaces(void) {
  /* The journal cannot grow (RLIMIT_FSIZE at its size, as on a full
   * disk): the uploads succeed, but finish says BULKUP_EIO and the report
   * counts every record not written. */
  bk_ts_reset(ts);
  const char *f = make_file("jfail.bin", 100, 68);
  char jpath[1024];
  snprintf(jpath, sizeof jpath, "%s/jfail.journal", tmp);
  unlink(jpath);
  bulkup_journal *j = NULL;
  CU_ASSERT_FATAL(bulkup_journal_open(&j, jpath, NULL) == BULKUP_OK);
  struct stat st;
  CU_ASSERT_FATAL(stat(jpath, &st) == 0);
  void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
  struct rlimit old, low;
  CU_ASSERT_FATAL(getrlimit(RLIMIT_FSIZE, &old) == 0);
  low = old;
  low.rlim_cur = (rlim_t)st.st_size;
  CU_ASSERT_FATAL(setrlimit(RLIMIT_FSIZE, &low) == 0);

  bulkup_uploader_options o;
  fast_options(&o);
  o.journal = j;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  for (int i = 0; i < 3; i++) {
    char path[32], key[32];
    snprintf(path, sizeof path, "/jfail/%d", i);
    snprintf(key, sizeof key, "key-%d", i);
    char *url = bk_ts_url(ts, path);
    bulkup_item it;
    bulkup_item_init(&it);
    it.path = f;
    it.url = url;
    it.journal_key = key;
    CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
    free(url);
  }
  bulkup_report *rep;
  bulkup_err rc = bulkup_uploader_finish(u, &rep);
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);
  CU_ASSERT_EQUAL(rc, BULKUP_EIO);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(),
                                "3 journal records could not be written"));
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.succeeded, 3);
  CU_ASSERT_EQUAL(bulkup_report_journal_failures(rep), 3);
  CU_ASSERT_EQUAL(report_journal_failures_json(rep), 3);
  CU_ASSERT_EQUAL(bulkup_journal_count(j), 0);
  for (int i = 0; i < 3; i++) {
    char path[32];
    snprintf(path, sizeof path, "/jfail/%d", i);
    assert_stored(ts, path, f);
  }
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  bulkup_journal_close(j);

  /* With room, the same run journals everything and says OK. */
  bk_ts_reset(ts);
  unlink(jpath);
  CU_ASSERT_FATAL(bulkup_journal_open(&j, jpath, NULL) == BULKUP_OK);
  o.journal = j;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  char *url = bk_ts_url(ts, "/jfail/ok");
  bulkup_item it;
  bulkup_item_init(&it);
  it.path = f;
  it.url = url;
  it.journal_key = "key-ok";
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
  free(url);
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_report_journal_failures(rep), 0);
  CU_ASSERT_EQUAL(report_journal_failures_json(rep), 0);
  CU_ASSERT_EQUAL(bulkup_journal_count(j), 1);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  bulkup_journal_close(j);
}

static void reg(void) {
  bk_suite("upload_report", suite_init, suite_clean);
  bk_test("a failed journal write: EIO and counted in the report",
          test_journal_write_failure_surfaces);
  bk_test("CR/LF in content_type or cache_control refused",
          test_header_injection_refused);
  bk_test("allow_failures outcomes", test_allow_failures_outcomes);
  bk_test("report JSON", test_report_json_shape);
  bk_test("completion callback once per item", test_completion_callback_once_per_item);
  bk_test("invalid items and options", test_invalid_items_and_options);
  bk_test("submit_failure keeps order", test_submit_failure_keeps_order);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
