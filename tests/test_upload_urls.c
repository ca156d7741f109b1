/* The upload engine against the fault-scripting test server, URLs and secrets:
 * TLS verification, refused schemes, redirects, no signature in the report or the log. One test per fault kind,
 * asserting attempts, status, error kind and stored bytes. */
#include "upload_common.h"


/* ---- TLS ---------------------------------------------------------------- */

static void test_tls_verification(void) {
  const char *f = make_file("tls.bin", 100000, 17);
  bulkup_uploader_options o;
  fast_options(&o);
  o.ca_file = bk_ts_ca_file(tls_ts);
  run r;
  upload_one(tls_ts, &o, f, "/tls/ok", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  assert_stored(tls_ts, "/tls/ok", f);
  bulkup_report_free(r.rep);

  /* Without the CA: a verification failure, permanent, not retried. */
  fast_options(&o);
  upload_one(tls_ts, &o, f, "/tls/noca", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_EUPLOAD);
  const bulkup_result *x = only_failure(&r);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_TLS);
  CU_ASSERT_EQUAL(x->attempts, 1);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(tls_ts, "/tls/noca", NULL), -1);
  bulkup_report_free(r.rep);

  /* The explicit insecure switch. */
  o.insecure = true;
  upload_one(tls_ts, &o, f, "/tls/insecure", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  bulkup_report_free(r.rep);
}


/* ---- security ------------------------------------------------------------ */

typedef struct logbuf {
  pthread_mutex_t m;
  char text[65536];
  size_t len;
} logbuf;

static void log_cb(void *ud, bulkup_log_level lvl, const char *msg) {
  (void)lvl;
  logbuf *b = ud;
  pthread_mutex_lock(&b->m);
  size_t n = strlen(msg);
  if (b->len + n + 2 < sizeof b->text) {
    memcpy(b->text + b->len, msg, n);
    b->len += n;
    b->text[b->len++] = '\n';
    b->text[b->len] = '\0';
  }
  pthread_mutex_unlock(&b->m);
}

static void test_schemes_refused(void) {
  const char *f = make_file("scheme.bin", 10, 18);
  char target[1024];
  snprintf(target, sizeof target, "%s/written-by-file-url", tmp);
  char fileurl[1100];
  snprintf(fileurl, sizeof fileurl, "file://%s", target);
  const char *urls[] = {fileurl, "ftp://127.0.0.1/x", "gopher://127.0.0.1/x",
                        "dict://127.0.0.1/x", "FILE:///tmp/x"};
  bulkup_uploader_options o;
  fast_options(&o);
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  for (size_t i = 0; i < BK_ARRAY_LEN(urls); i++) {
    bulkup_item it;
    bulkup_item_init(&it);
    it.path = f;
    it.url = urls[i];
    CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
  }
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_EUPLOAD);
  CU_ASSERT_EQUAL_FATAL(bulkup_report_failure_count(rep), BK_ARRAY_LEN(urls));
  for (size_t i = 0; i < BK_ARRAY_LEN(urls); i++) {
    const bulkup_result *x = bulkup_report_failure(rep, i);
    CU_ASSERT_EQUAL(x->index, i);
    CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_URL);
    CU_ASSERT_EQUAL(x->attempts, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(x->message, "scheme"));
  }
  struct stat st;
  CU_ASSERT_NOT_EQUAL(stat(target, &st), 0);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
}


static void test_redirect_not_followed(void) {
  bk_ts_reset(ts);
  char *loc = bk_ts_url(ts, "/elsewhere?X-Amz-Signature=LOCSECRET");
  char hdr[512];
  snprintf(hdr, sizeof hdr, "Location: %s\r\n", loc);
  free(loc);
  bk_ts_action a = {.fault = BK_TS_STATUS, .status = 307, .headers = hdr};
  bk_ts_script(ts, "/redir", &a, 1);
  bulkup_uploader_options o;
  fast_options(&o);
  const char *f = make_file("redir.bin", 1000, 19);
  run r;
  upload_one(ts, &o, f, "/redir", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_EUPLOAD);
  const bulkup_result *x = only_failure(&r);
  CU_ASSERT_EQUAL(x->http_status, 307);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_HTTP_STATUS);
  CU_ASSERT_EQUAL(x->attempts, 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(x->message, "redirect not followed"));
  CU_ASSERT_PTR_NULL(strstr(x->message, "LOCSECRET"));
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/elsewhere"), 0);
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), 1);
  bulkup_report_free(r.rep);
}


static void test_no_signature_in_report_or_log(void) {
  bk_ts_reset(ts);
  bk_ts_action a[3] = {{.fault = BK_TS_STATUS, .status = 503},
                       {.fault = BK_TS_STATUS, .status = 503},
                       {.fault = BK_TS_STATUS, .status = 403,
                        .body = "<Error>SignatureDoesNotMatch</Error>"}};
  bk_ts_script(ts, "/sec", a, 3);
  logbuf lb = {.len = 0};
  pthread_mutex_init(&lb.m, NULL);
  bulkup_uploader_options o;
  fast_options(&o);
  o.log = log_cb;
  o.log_level = BULKUP_LOG_DEBUG;
  o.userdata = &lb;
  const char *f = make_file("sec.bin", 1000, 20);
  run r;
  upload_one(ts, &o, f,
             "/sec?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential="
             "CREDSECRET&X-Goog-Signature=SIGSECRET&token=TOKSECRET",
             &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_EUPLOAD);
  const bulkup_result *x = only_failure(&r);
  CU_ASSERT_EQUAL(x->attempts, 3);
  CU_ASSERT_EQUAL(x->http_status, 403);
  CU_ASSERT_PTR_NOT_NULL(strstr(x->url, "X-Goog-Signature=REDACTED"));
  CU_ASSERT_PTR_NOT_NULL(strstr(x->url, "X-Goog-Algorithm=GOOG4-RSA-SHA256"));
  char *json = NULL;
  CU_ASSERT_EQUAL_FATAL(bulkup_report_to_json(r.rep, false, &json), BULKUP_OK);
  const char *secrets[] = {"SIGSECRET", "CREDSECRET", "TOKSECRET"};
  for (int i = 0; i < 3; i++) {
    CU_ASSERT_PTR_NULL(strstr(json, secrets[i]));
    CU_ASSERT_PTR_NULL(strstr(lb.text, secrets[i]));
    CU_ASSERT_PTR_NULL(strstr(x->message, secrets[i]));
  }
  /* The log did say something (the retries and the failure). */
  CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "retry 2"));
  CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "REDACTED"));
  bulkup_free(json);
  bulkup_report_free(r.rep);
  pthread_mutex_destroy(&lb.m);
}

static void reg(void) {
  bk_suite("upload_urls", suite_init, suite_clean);
  bk_test("TLS verification", test_tls_verification);
  bk_test("schemes refused", test_schemes_refused);
  bk_test("redirect not followed", test_redirect_not_followed);
  bk_test("no signature in report or log", test_no_signature_in_report_or_log);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
