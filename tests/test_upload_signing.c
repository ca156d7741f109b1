/* The request-signing hook (options.sign_request, sign_payload): called
 * before every request an item sends, each attempt, with the request's
 * final headers and its body's SHA-256; what it adds is sent with that
 * request only; a failing signer fails the item without sending. Checked
 * against the test server's record of each request it received. */
#include "upload_common.h"
#include "util/crc32c.h"

#include <string.h>

#define KiB 1024

/* What the test signer saw, one entry per call. */
typedef struct sig_call {
  char method[8];
  char url[256];
  char sha[65];
  char crc[16];
  int attempts;
  uint64_t body_offset, body_len;
  int nheaders;
  int kind; /* bulkup_request.kind */
  bool saw_content_type;
  bool saw_own; /* one of its own earlier lines came back: it must not */
} sig_call;

typedef struct signer {
  pthread_mutex_t m;
  sig_call calls[64];
  int n;
  int fail_from; /* calls from this one on fail (0: never) */
} signer;

static bulkup_err test_sign(void *ud, bulkup_request *req) {
  signer *g = ud;
  pthread_mutex_lock(&g->m);
  int k = g->n++;
  if (k < 64) {
    sig_call *c = &g->calls[k];
    snprintf(c->method, sizeof c->method, "%s", req->method);
    snprintf(c->url, sizeof c->url, "%s", req->url);
    snprintf(c->sha, sizeof c->sha, "%s",
             req->payload_sha256 ? req->payload_sha256 : "");
    snprintf(c->crc, sizeof c->crc, "%s",
             req->payload_crc32c ? req->payload_crc32c : "");
    c->attempts = req->item->attempts;
    c->body_offset = req->body_offset;
    c->body_len = req->body_len;
    c->kind = (int)req->kind;
    for (int i = 0; req->headers[i]; i++) {
      c->nheaders++;
      if (strncmp(req->headers[i], "Content-Type: ", 14) == 0)
        c->saw_content_type = true;
      if (strncmp(req->headers[i], "Cache-Control: sig-", 19) == 0)
        c->saw_own = true;
    }
  }
  pthread_mutex_unlock(&g->m);
  if (g->fail_from && k + 1 >= g->fail_from)
    return bk_error(BULKUP_EINVAL, "test signer refuses");
  char line[64];
  snprintf(line, sizeof line, "Cache-Control: sig-%d", k + 1);
  return bulkup_request_add_header(req, line);
}

static void signing_options(bulkup_uploader_options *o, signer *g) {
  fast_options(o);
  o->workers = 1;
  o->sign_request = test_sign;
  o->sign_userdata = g;
  o->sign_payload = true;
}

static void upload_nocache(const bulkup_uploader_options *o, const char *file,
                           const char *path, run *r) {
  bulkup_uploader *u = NULL;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, o) == BULKUP_OK);
  bulkup_item it;
  bulkup_item_init(&it);
  it.path = file;
  it.cache_control = ""; /* the only Cache-Control is the signer's */
  char *url = bk_ts_url(ts, path);
  it.url = url;
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
  free(url);
  r->rc = bulkup_uploader_finish(u, &r->rep);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r->rep);
  bulkup_report_summary(r->rep, &r->sum);
  bulkup_uploader_free(u);
}

/* Two 503s then a success: three calls, one per attempt, each with the
 * body's hash and the attempts before it; each request carried exactly
 * the line its own call added; each a single PUT by its kind. */
static void test_every_attempt_signed(void) {
  bk_ts_reset(ts);
  bk_ts_action a[2] = {{.fault = BK_TS_STATUS, .status = 503},
                       {.fault = BK_TS_STATUS, .status = 503}};
  bk_ts_script(ts, "/s/a", a, 2);
  signer g = {.m = PTHREAD_MUTEX_INITIALIZER};
  bulkup_uploader_options o;
  signing_options(&o, &g);
  const char *f = make_file("a.bin", 40 * KiB + 3, 11);
  char want[65];
  CU_ASSERT_FATAL(bk_sha256_file_hex(f, want) == 0);
  run r;
  upload_nocache(&o, f, "/s/a", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  CU_ASSERT_EQUAL(r.sum.succeeded, 1);
  CU_ASSERT_EQUAL(r.sum.retries, 2);
  CU_ASSERT_EQUAL(g.n, 3);
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), 3);
  char *url = bk_ts_url(ts, "/s/a");
  for (int i = 0; i < 3 && i < g.n; i++) {
    CU_ASSERT_STRING_EQUAL(g.calls[i].method, "PUT");
    CU_ASSERT_STRING_EQUAL(g.calls[i].url, url);
    CU_ASSERT_STRING_EQUAL(g.calls[i].sha, want);
    CU_ASSERT_EQUAL(g.calls[i].attempts, i);
    CU_ASSERT_EQUAL(g.calls[i].body_offset, 0);
    CU_ASSERT_EQUAL(g.calls[i].body_len, 40 * KiB + 3);
    CU_ASSERT_EQUAL(g.calls[i].kind, BULKUP_REQUEST_PUT);
    CU_ASSERT_TRUE(g.calls[i].saw_content_type);
    CU_ASSERT_FALSE(g.calls[i].saw_own);
    bk_ts_request q;
    CU_ASSERT_FATAL(bk_ts_request_get(ts, (size_t)i, &q) == 0);
    char expect[32];
    snprintf(expect, sizeof expect, "sig-%d", i + 1);
    CU_ASSERT_STRING_EQUAL(q.cache_control, expect);
    CU_ASSERT_STRING_EQUAL(q.body_sha256, want);
  }
  free(url);
  assert_stored(ts, "/s/a", f);
  bulkup_report_free(r.rep);
}

/* A file streamed from disk (over the small-file size) and an empty one:
 * the hash is the body's. */
static void test_payload_hash_streamed_and_empty(void) {
  bk_ts_reset(ts);
  signer g = {.m = PTHREAD_MUTEX_INITIALIZER};
  bulkup_uploader_options o;
  signing_options(&o, &g);
  const char *f = make_file("big.bin", 700 * KiB + 1, 12);
  char want[65];
  CU_ASSERT_FATAL(bk_sha256_file_hex(f, want) == 0);
  o.sign_crc32c = true;
  FILE *fp = fopen(f, "rb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
  unsigned char *data = malloc(700 * KiB + 1);
  CU_ASSERT_EQUAL_FATAL(fread(data, 1, 700 * KiB + 1, fp), 700 * KiB + 1);
  fclose(fp);
  char want_crc[9];
  bk_crc32c_base64(bk_crc32c(0, data, 700 * KiB + 1), want_crc);
  free(data);
  run r;
  upload_nocache(&o, f, "/s/big", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  CU_ASSERT_EQUAL_FATAL(g.n, 1);
  CU_ASSERT_STRING_EQUAL(g.calls[0].sha, want);
  CU_ASSERT_STRING_EQUAL(g.calls[0].crc, want_crc);
  o.sign_crc32c = false;
  assert_stored(ts, "/s/big", f);
  bulkup_report_free(r.rep);

  g.n = 0;
  const char *e = make_file("empty.bin", 0, 13);
  upload_nocache(&o, e, "/s/empty", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  CU_ASSERT_EQUAL_FATAL(g.n, 1);
  CU_ASSERT_STRING_EQUAL(
      g.calls[0].sha,
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  bulkup_report_free(r.rep);

  /* Without sign_payload: no hash; the CRC alone when asked. */
  g.n = 0;
  o.sign_payload = false;
  o.sign_crc32c = true;
  upload_nocache(&o, f, "/s/big2", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  CU_ASSERT_EQUAL_FATAL(g.n, 1);
  CU_ASSERT_STRING_EQUAL(g.calls[0].sha, "");
  CU_ASSERT_STRING_EQUAL(g.calls[0].crc, want_crc);
  bulkup_report_free(r.rep);
}

/* A signer that fails: the item fails without a request sent, saying
 * why; on a retry, the second call's failure ends it after one request. */
static void test_failing_signer(void) {
  bk_ts_reset(ts);
  signer g = {.m = PTHREAD_MUTEX_INITIALIZER, .fail_from = 1};
  bulkup_uploader_options o;
  signing_options(&o, &g);
  const char *f = make_file("f.bin", 1000, 14);
  run r;
  upload_nocache(&o, f, "/s/f", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_EUPLOAD);
  CU_ASSERT_EQUAL(g.n, 1);
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), 0);
  const bulkup_result *x = only_failure(&r);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_INTERNAL);
  CU_ASSERT_EQUAL(x->attempts, 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(x->message, "request signing failed"));
  CU_ASSERT_PTR_NOT_NULL(strstr(x->message, "test signer refuses"));
  bulkup_report_free(r.rep);

  bk_ts_reset(ts);
  bk_ts_action a = {.fault = BK_TS_STATUS, .status = 503};
  bk_ts_script(ts, "/s/g", &a, 1);
  g.n = 0;
  g.fail_from = 2;
  upload_nocache(&o, f, "/s/g", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_EUPLOAD);
  CU_ASSERT_EQUAL(g.n, 2);
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), 1);
  x = only_failure(&r);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_INTERNAL);
  CU_ASSERT_EQUAL(x->attempts, 1);
  bulkup_report_free(r.rep);
}

/* A resumable upload: its session start (POST) and each chunk (PUT to the
 * session URL, its window of the file) are signed, one call per request
 * the server saw, each of kind RESUMABLE. */
static void test_resumable_requests_signed(void) {
  bk_ts_reset(ts);
  signer g = {.m = PTHREAD_MUTEX_INITIALIZER};
  bulkup_uploader_options o;
  signing_options(&o, &g);
  o.resumable_threshold = 512 * KiB;
  o.resumable_chunk_size = 256 * KiB;
  const char *f = make_file("res.bin", 600 * KiB, 15);
  run r;
  upload_nocache(&o, f, "/s/res", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  size_t n = bk_ts_request_count(ts);
  CU_ASSERT_EQUAL(n, 4); /* start + 3 chunks */
  CU_ASSERT_EQUAL_FATAL((size_t)g.n, n);
  CU_ASSERT_STRING_EQUAL(g.calls[0].method, "POST");
  CU_ASSERT_EQUAL(g.calls[0].body_len, 0);
  for (int i = 0; i < g.n; i++) /* the start and every chunk */
    CU_ASSERT_EQUAL(g.calls[i].kind, BULKUP_REQUEST_RESUMABLE);
  CU_ASSERT_STRING_EQUAL(
      g.calls[0].sha,
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  uint64_t off = 0;
  for (int i = 1; i < g.n; i++) {
    CU_ASSERT_STRING_EQUAL(g.calls[i].method, "PUT");
    CU_ASSERT_EQUAL(g.calls[i].body_offset, off);
    off += g.calls[i].body_len;
    bk_ts_request q;
    CU_ASSERT_FATAL(bk_ts_request_get(ts, (size_t)i, &q) == 0);
    CU_ASSERT_STRING_EQUAL(q.body_sha256, g.calls[i].sha);
    char expect[32];
    snprintf(expect, sizeof expect, "sig-%d", i + 1);
    CU_ASSERT_STRING_EQUAL(q.cache_control, expect);
  }
  CU_ASSERT_EQUAL(off, 600 * KiB);
  assert_stored(ts, "/s/res", f);
  bulkup_report_free(r.rep);
}

static bulkup_err bad_line_sign(void *ud, bulkup_request *req) {
  int *rcs = ud;
  rcs[0] = bulkup_request_add_header(req, "X-Evil: a\r\nX-Other: b");
  rcs[1] = bulkup_request_add_header(req, "no colon");
  rcs[2] = bulkup_request_add_header(NULL, "X-A: b");
  return BULKUP_OK;
}

static void test_add_header_refuses_bad_lines(void) {
  bk_ts_reset(ts);
  int rcs[3] = {0};
  bulkup_uploader_options o;
  fast_options(&o);
  o.sign_request = bad_line_sign;
  o.sign_userdata = rcs;
  const char *f = make_file("b.bin", 10, 16);
  run r;
  upload_nocache(&o, f, "/s/b", &r);
  CU_ASSERT_EQUAL(r.rc, BULKUP_OK);
  CU_ASSERT_EQUAL(rcs[0], BULKUP_EINVAL);
  CU_ASSERT_EQUAL(rcs[1], BULKUP_EINVAL);
  CU_ASSERT_EQUAL(rcs[2], BULKUP_EINVAL);
  bulkup_report_free(r.rep);
}

static void reg(void) {
  bk_suite("upload_signing", suite_init, suite_clean);
  bk_test("every attempt signed afresh", test_every_attempt_signed);
  bk_test("payload hash: streamed, empty, off",
          test_payload_hash_streamed_and_empty);
  bk_test("failing signer", test_failing_signer);
  bk_test("resumable requests signed", test_resumable_requests_signed);
  bk_test("add_header refuses bad lines", test_add_header_refuses_bad_lines);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
