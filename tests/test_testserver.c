/*
 * test_testserver.c - the fault-scripting test server (support/bk_ts.c)
 * does what each script says, seen by a plain libcurl client.
 */
#include "bk_test.h"
#include "bk_ts.h"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MiB (1024u * 1024u)

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- a plain libcurl client -------------------------------------------- */

typedef struct client {
  CURL *h;
  /* request body */
  const unsigned char *data;
  size_t len, pos;
  /* response */
  char *resp;
  size_t resp_len;
  long code;
  CURLcode rc;
  double elapsed;
  /* upload progress: the longest time ulnow did not move */
  double last_ul_change, max_ul_gap;
  curl_off_t last_ul;
} client;

static size_t client_read(char *buf, size_t size, size_t nitems, void *ud) {
  client *c = ud;
  size_t n = size * nitems;
  if (n > c->len - c->pos)
    n = c->len - c->pos;
  memcpy(buf, c->data + c->pos, n);
  c->pos += n;
  return n;
}

static size_t client_write(char *p, size_t size, size_t nmemb, void *ud) {
  client *c = ud;
  size_t n = size * nmemb;
  char *r = realloc(c->resp, c->resp_len + n + 1);
  if (!r)
    return 0;
  memcpy(r + c->resp_len, p, n);
  c->resp = r;
  c->resp_len += n;
  r[c->resp_len] = '\0';
  return n;
}

static int client_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow,
                           curl_off_t ultotal, curl_off_t ulnow) {
  (void)dltotal;
  (void)dlnow;
  client *c = ud;
  double t = now();
  /* libcurl may not call back at all while its send is blocked, so the
   * pause is measured between two calls that see progress */
  if (c->last_ul > 0 && c->last_ul < ultotal &&
      t - c->last_ul_change > c->max_ul_gap)
    c->max_ul_gap = t - c->last_ul_change;
  if (ulnow != c->last_ul) {
    c->last_ul = ulnow;
    c->last_ul_change = t;
  }
  return 0;
}

static void client_init(client *c) {
  memset(c, 0, sizeof *c);
  c->h = curl_easy_init();
  CU_ASSERT_PTR_NOT_NULL_FATAL(c->h);
}

static void client_cleanup(client *c) {
  if (c->h)
    curl_easy_cleanup(c->h);
  free(c->resp);
  memset(c, 0, sizeof *c);
}

/* One request on c's handle (kept between calls, so connections are
 * reused). method "PUT" uploads data/len; others send no body. */
static CURLcode client_do(client *c, const char *method, const char *url,
                          const void *data, size_t len, long timeout_ms,
                          const char *ca_file) {
  CURL *h = c->h;
  curl_easy_reset(h);
  free(c->resp);
  c->resp = NULL;
  c->resp_len = 0;
  c->data = data;
  c->len = len;
  c->pos = 0;
  c->code = 0;
  c->last_ul = 0;
  c->max_ul_gap = 0;
  c->last_ul_change = now();
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, client_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, client_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
  if (ca_file)
    curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
  if (!strcmp(method, "PUT")) {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, client_read);
    curl_easy_setopt(h, CURLOPT_READDATA, c);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
  } else if (!strcmp(method, "HEAD")) {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (strcmp(method, "GET") != 0) {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  }
  double t0 = now();
  c->rc = curl_easy_perform(h);
  c->elapsed = now() - t0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->code);
  return c->rc;
}

/* PUT `len` pseudo-random bytes (from seed) to path on a fresh handle. */
static CURLcode put_random(bk_ts *ts, const char *path, size_t len,
                           unsigned long long seed, long timeout_ms,
                           client *c, char sha_out[65]) {
  unsigned char *buf = malloc(len ? len : 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  bk_fill_random(buf, len, seed);
  if (sha_out)
    bk_sha256_hex(buf, len, sha_out);
  char *url = bk_ts_url(ts, path);
  client_init(c);
  CURLcode rc = client_do(c, "PUT", url, buf, len, timeout_ms, NULL);
  free(url);
  free(buf);
  return rc;
}

static bk_ts *start(int tls) {
  bk_ts *ts = NULL;
  bk_ts_options o = {tls};
  CU_ASSERT_EQUAL_FATAL(bk_ts_start(&ts, &o), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ts);
  CU_ASSERT_NOT_EQUAL(bk_ts_port(ts), 0);
  return ts;
}

/* The last recorded request (asserting there is one). */
static bk_ts_request last_request(bk_ts *ts) {
  bk_ts_request r;
  memset(&r, 0, sizeof r);
  size_t n = bk_ts_request_count(ts);
  CU_ASSERT_FATAL(n > 0);
  CU_ASSERT_EQUAL(bk_ts_request_get(ts, n - 1, &r), 0);
  return r;
}

/* ---- tests ------------------------------------------------------------- */

static void test_ok_stores_body(void) {
  bk_ts *ts = start(0);
  size_t len = MiB;
  unsigned char *buf = malloc(len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  bk_fill_random(buf, len, 42);
  char want[65];
  bk_sha256_hex(buf, len, want);

  char *url = bk_ts_url(ts, "/bucket/dir/a%20b.bin?X-Goog-Signature=abc&x=1");
  client c;
  client_init(&c);
  struct curl_slist *hs = NULL;
  hs = curl_slist_append(hs, "Content-Type: image/jpeg");
  hs = curl_slist_append(hs, "Cache-Control: no-cache");
  hs = curl_slist_append(hs, "Content-MD5: 1B2M2Y8AsgTpgAmY7PhCfg==");
  curl_easy_reset(c.h);
  c.data = buf;
  c.len = len;
  curl_easy_setopt(c.h, CURLOPT_URL, url);
  curl_easy_setopt(c.h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.h, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(c.h, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(c.h, CURLOPT_READFUNCTION, client_read);
  curl_easy_setopt(c.h, CURLOPT_READDATA, &c);
  curl_easy_setopt(c.h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
  curl_easy_setopt(c.h, CURLOPT_HTTPHEADER, hs);
  curl_easy_setopt(c.h, CURLOPT_WRITEFUNCTION, client_write);
  curl_easy_setopt(c.h, CURLOPT_WRITEDATA, &c);
  CU_ASSERT_EQUAL(curl_easy_perform(c.h), CURLE_OK);
  curl_easy_getinfo(c.h, CURLINFO_RESPONSE_CODE, &c.code);
  CU_ASSERT_EQUAL(c.code, 200);
  curl_slist_free_all(hs);

  /* the record was made before the answer was sent */
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), 1);
  bk_ts_request r = last_request(ts);
  CU_ASSERT_STRING_EQUAL(r.method, "PUT");
  CU_ASSERT_STRING_EQUAL(r.path, "/bucket/dir/a%20b.bin");
  CU_ASSERT_STRING_EQUAL(r.query, "X-Goog-Signature=abc&x=1");
  CU_ASSERT_STRING_EQUAL(r.content_type, "image/jpeg");
  CU_ASSERT_STRING_EQUAL(r.cache_control, "no-cache");
  CU_ASSERT_STRING_EQUAL(r.content_md5, "1B2M2Y8AsgTpgAmY7PhCfg==");
  CU_ASSERT_STRING_EQUAL(r.expect, "100-continue"); /* curl 7.88, PUT */
  CU_ASSERT_EQUAL(r.content_length, (long long)len);
  CU_ASSERT_EQUAL(r.body_bytes, len);
  CU_ASSERT_STRING_EQUAL(r.body_sha256, want);
  CU_ASSERT_EQUAL(r.complete, 1);
  CU_ASSERT_EQUAL(r.fault, BK_TS_OK);
  CU_ASSERT_EQUAL(r.status, 200);
  CU_ASSERT_EQUAL(r.connection_id, 1);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/bucket/dir/a%20b.bin"), 1);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/other"), 0);

  /* stored byte for byte */
  char got[65];
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/bucket/dir/a%20b.bin", got),
                  (long long)len);
  CU_ASSERT_STRING_EQUAL(got, want);
  size_t olen = 0;
  void *obj = bk_ts_object_data(ts, "/bucket/dir/a%20b.bin", &olen);
  CU_ASSERT_PTR_NOT_NULL_FATAL(obj);
  CU_ASSERT_EQUAL(olen, len);
  CU_ASSERT(memcmp(obj, buf, len) == 0);
  free(obj);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/nothing", got), -1);
  CU_ASSERT_PTR_NULL(bk_ts_object_data(ts, "/nothing", &olen));

  /* GET returns it on the same connection */
  free(url);
  url = bk_ts_url(ts, "/bucket/dir/a%20b.bin");
  CU_ASSERT_EQUAL(client_do(&c, "GET", url, NULL, 0, 10000, NULL), CURLE_OK);
  CU_ASSERT_EQUAL(c.code, 200);
  CU_ASSERT_EQUAL(c.resp_len, len);
  CU_ASSERT(c.resp && memcmp(c.resp, buf, len) == 0);
  CU_ASSERT_EQUAL(bk_ts_connections(ts), 1);
  free(url);
  url = bk_ts_url(ts, "/missing");
  CU_ASSERT_EQUAL(client_do(&c, "GET", url, NULL, 0, 10000, NULL), CURLE_OK);
  CU_ASSERT_EQUAL(c.code, 404);
  r = last_request(ts);
  CU_ASSERT_STRING_EQUAL(r.method, "GET");
  CU_ASSERT_EQUAL(r.status, 404);
  CU_ASSERT_EQUAL(r.content_length, -1);

  free(url);
  client_cleanup(&c);
  free(buf);
  bk_ts_stop(ts);
}

static void test_methods(void) {
  bk_ts *ts = start(0);
  char *url = bk_ts_url(ts, "/post");
  client c;
  client_init(&c);
  /* POST stores like PUT */
  curl_easy_setopt(c.h, CURLOPT_URL, url);
  curl_easy_setopt(c.h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.h, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(c.h, CURLOPT_POSTFIELDS, "a=1&b=2");
  CU_ASSERT_EQUAL(curl_easy_perform(c.h), CURLE_OK);
  curl_easy_getinfo(c.h, CURLINFO_RESPONSE_CODE, &c.code);
  CU_ASSERT_EQUAL(c.code, 200);
  size_t olen = 0;
  char *obj = bk_ts_object_data(ts, "/post", &olen);
  CU_ASSERT_EQUAL(olen, 7);
  CU_ASSERT(obj && memcmp(obj, "a=1&b=2", 7) == 0);
  free(obj);
  CU_ASSERT_STRING_EQUAL(last_request(ts).method, "POST");
  CU_ASSERT_STRING_EQUAL(last_request(ts).content_type,
                         "application/x-www-form-urlencoded");

  /* an empty PUT stores an empty object */
  char *eurl = bk_ts_url(ts, "/empty");
  CU_ASSERT_EQUAL(client_do(&c, "PUT", eurl, "", 0, 10000, NULL), CURLE_OK);
  CU_ASSERT_EQUAL(c.code, 200);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/empty", NULL), 0);
  CU_ASSERT_STRING_EQUAL(
      last_request(ts).body_sha256,
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

  /* HEAD, DELETE */
  CU_ASSERT_EQUAL(client_do(&c, "HEAD", url, NULL, 0, 10000, NULL), CURLE_OK);
  CU_ASSERT_EQUAL(c.code, 200);
  CU_ASSERT_EQUAL(client_do(&c, "DELETE", url, NULL, 0, 10000, NULL),
                  CURLE_OK);
  CU_ASSERT_EQUAL(c.code, 204);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/post", NULL), -1);
  CU_ASSERT_EQUAL(client_do(&c, "DELETE", url, NULL, 0, 10000, NULL),
                  CURLE_OK);
  CU_ASSERT_EQUAL(c.code, 404);
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), 5);
  CU_ASSERT_EQUAL(bk_ts_connections(ts), 1);

  /* reset forgets requests, objects and scripts */
  bk_ts_action a = {.fault = BK_TS_STATUS, .status = 500};
  bk_ts_script(ts, NULL, &a, 1);
  bk_ts_reset(ts);
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), 0);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/empty", NULL), -1);
  CU_ASSERT_EQUAL(client_do(&c, "PUT", eurl, "x", 1, 10000, NULL), CURLE_OK);
  CU_ASSERT_EQUAL(c.code, 200);
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), 1);

  free(eurl);
  free(url);
  client_cleanup(&c);
  bk_ts_stop(ts);
}

static void test_status_with_headers_and_body(void) {
  bk_ts *ts = start(0);
  bk_ts_action a = {.fault = BK_TS_STATUS,
                    .status = 503,
                    .headers = "Retry-After: 2\r\nX-Test: yes\r\n",
                    .body = "slow down\n"};
  bk_ts_script(ts, "/busy", &a, 1);
  client c;
  char want[65];
  CU_ASSERT_EQUAL(put_random(ts, "/busy", 65536, 1, 10000, &c, want),
                  CURLE_OK);
  CU_ASSERT_EQUAL(c.code, 503);
  struct curl_header *h = NULL;
  CU_ASSERT_EQUAL(
      curl_easy_header(c.h, "Retry-After", 0, CURLH_HEADER, -1, &h),
      CURLHE_OK);
  CU_ASSERT(h && !strcmp(h->value, "2"));
  CU_ASSERT_EQUAL(curl_easy_header(c.h, "X-Test", 0, CURLH_HEADER, -1, &h),
                  CURLHE_OK);
  CU_ASSERT(h && !strcmp(h->value, "yes"));
  CU_ASSERT(c.resp && !strcmp(c.resp, "slow down\n"));
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/busy", NULL), -1);
  bk_ts_request r = last_request(ts);
  CU_ASSERT_EQUAL(r.fault, BK_TS_STATUS);
  CU_ASSERT_EQUAL(r.status, 503);
  CU_ASSERT_EQUAL(r.complete, 1);
  CU_ASSERT_EQUAL(r.body_bytes, 65536);
  CU_ASSERT_STRING_EQUAL(r.body_sha256, want);
  client_cleanup(&c);

  /* status 0 means 503 */
  a = (bk_ts_action){.fault = BK_TS_STATUS};
  bk_ts_script(ts, "/busy", &a, 1);
  CU_ASSERT_EQUAL(put_random(ts, "/busy", 10, 1, 10000, &c, NULL), CURLE_OK);
  CU_ASSERT_EQUAL(c.code, 503);
  client_cleanup(&c);
  bk_ts_stop(ts);
}

static void test_delay(void) {
  bk_ts *ts = start(0);
  bk_ts_action a = {.fault = BK_TS_DELAY, .seconds = 0.6};
  bk_ts_script(ts, "/slow", &a, 1);
  client c;
  char want[65], got[65];
  CU_ASSERT_EQUAL(put_random(ts, "/slow", 100000, 2, 10000, &c, want),
                  CURLE_OK);
  CU_ASSERT_EQUAL(c.code, 200);
  CU_ASSERT(c.elapsed >= 0.6);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/slow", got), 100000);
  CU_ASSERT_STRING_EQUAL(got, want);
  CU_ASSERT_EQUAL(last_request(ts).fault, BK_TS_DELAY);
  CU_ASSERT_EQUAL(last_request(ts).status, 200);
  client_cleanup(&c);
  bk_ts_stop(ts);
}

static void test_stall_body(void) {
  bk_ts *ts = start(0);
  bk_ts_action a = {.fault = BK_TS_STALL_BODY,
                    .seconds = 1.0,
                    .after_bytes = 256 * 1024};
  bk_ts_script(ts, "/stall", &a, 1);
  client c;
  char want[65], got[65];
  size_t len = 8 * MiB;
  CU_ASSERT_EQUAL(put_random(ts, "/stall", len, 3, 15000, &c, want),
                  CURLE_OK);
  CU_ASSERT_EQUAL(c.code, 200);
  CU_ASSERT(c.elapsed >= 1.0);
  /* the client's upload stood still during the stall */
  CU_ASSERT(c.max_ul_gap >= 0.5);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/stall", got), (long long)len);
  CU_ASSERT_STRING_EQUAL(got, want);
  bk_ts_request r = last_request(ts);
  CU_ASSERT_EQUAL(r.fault, BK_TS_STALL_BODY);
  CU_ASSERT_EQUAL(r.complete, 1);
  CU_ASSERT_EQUAL(r.body_bytes, len);
  CU_ASSERT_EQUAL(r.status, 200);
  printf("[stall: elapsed %.2fs, longest upload pause %.2fs] ", c.elapsed,
         c.max_ul_gap);
  client_cleanup(&c);
  bk_ts_stop(ts);
}

static void test_no_response(void) {
  bk_ts *ts = start(0);
  bk_ts_action a = {.fault = BK_TS_NO_RESPONSE, .seconds = 10};
  bk_ts_script(ts, "/hole", &a, 1);
  client c;
  char want[65];
  CU_ASSERT_EQUAL(put_random(ts, "/hole", 65536, 4, 1000, &c, want),
                  CURLE_OPERATION_TIMEDOUT);
  /* only "100 Continue" came back (libcurl reports it as the code) */
  CU_ASSERT(c.code == 0 || c.code == 100);
  CU_ASSERT_EQUAL(bk_ts_wait_requests(ts, 1, 5.0), 1);
  bk_ts_request r = last_request(ts);
  CU_ASSERT_EQUAL(r.fault, BK_TS_NO_RESPONSE);
  CU_ASSERT_EQUAL(r.complete, 1);
  CU_ASSERT_EQUAL(r.body_bytes, 65536);
  CU_ASSERT_STRING_EQUAL(r.body_sha256, want);
  CU_ASSERT_EQUAL(r.status, 0);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/hole", NULL), -1);
  client_cleanup(&c);
  /* the held connection was let go when the client closed: the server
   * answers again at once */
  CU_ASSERT_EQUAL(put_random(ts, "/hole", 10, 4, 5000, &c, NULL), CURLE_OK);
  CU_ASSERT_EQUAL(c.code, 200);
  client_cleanup(&c);
  bk_ts_stop(ts);
}

static void test_reset_mid_body(void) {
  bk_ts *ts = start(0);
  unsigned long long after = 128 * 1024;
  bk_ts_action a = {.fault = BK_TS_RESET_MID_BODY, .after_bytes = after};
  bk_ts_script(ts, "/reset", &a, 1);
  client c;
  CURLcode rc = put_random(ts, "/reset", 4 * MiB, 5, 10000, &c, NULL);
  CU_ASSERT(rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR);
  printf("[%s] ", curl_easy_strerror(rc));
  CU_ASSERT_EQUAL(bk_ts_wait_requests(ts, 1, 5.0), 1);
  bk_ts_request r = last_request(ts);
  CU_ASSERT_EQUAL(r.fault, BK_TS_RESET_MID_BODY);
  CU_ASSERT_EQUAL(r.complete, 0);
  CU_ASSERT(r.body_bytes >= after);
  CU_ASSERT(r.body_bytes < 4 * MiB);
  CU_ASSERT_EQUAL(r.status, 0);
  CU_ASSERT_EQUAL(r.content_length, 4 * MiB);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/reset", NULL), -1);
  client_cleanup(&c);
  bk_ts_stop(ts);
}

static void test_truncated(void) {
  bk_ts *ts = start(0);
  bk_ts_action a = {.fault = BK_TS_TRUNCATED, .body = "partial"};
  bk_ts_script(ts, "/cut", &a, 1);
  client c;
  CU_ASSERT_EQUAL(put_random(ts, "/cut", 65536, 6, 10000, &c, NULL),
                  CURLE_PARTIAL_FILE);
  CU_ASSERT_EQUAL(c.code, 503);
  CU_ASSERT(c.resp && !strcmp(c.resp, "partial"));
  curl_off_t cl = -1;
  curl_easy_getinfo(c.h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
  CU_ASSERT(cl > 7);
  bk_ts_request r = last_request(ts);
  CU_ASSERT_EQUAL(r.fault, BK_TS_TRUNCATED);
  CU_ASSERT_EQUAL(r.status, 503);
  CU_ASSERT_EQUAL(r.complete, 1);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/cut", NULL), -1);
  client_cleanup(&c);
  bk_ts_stop(ts);
}

static void test_close_early(void) {
  bk_ts *ts = start(0);
  bk_ts_action a = {.fault = BK_TS_CLOSE_EARLY};
  bk_ts_script(ts, "/close", &a, 1);
  client c;
  CU_ASSERT_EQUAL(put_random(ts, "/close", 65536, 7, 10000, &c, NULL),
                  CURLE_GOT_NOTHING);
  bk_ts_request r = last_request(ts);
  CU_ASSERT_EQUAL(r.fault, BK_TS_CLOSE_EARLY);
  CU_ASSERT_EQUAL(r.status, 0);
  CU_ASSERT_EQUAL(r.complete, 1);
  CU_ASSERT_EQUAL(r.body_bytes, 65536);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/close", NULL), -1);
  client_cleanup(&c);
  bk_ts_stop(ts);
}

static void test_script_sequence(void) {
  bk_ts *ts = start(0);
  bk_ts_action a[2] = {{.fault = BK_TS_STATUS, .status = 503},
                       {.fault = BK_TS_STATUS, .status = 503}};
  bk_ts_script(ts, "/seq", a, 2);
  char *url = bk_ts_url(ts, "/seq");
  unsigned char buf[1000];
  bk_fill_random(buf, sizeof buf, 8);
  char want[65], got[65];
  bk_sha256_hex(buf, sizeof buf, want);
  client c;
  client_init(&c);
  long codes[3];
  for (int i = 0; i < 3; i++) {
    CU_ASSERT_EQUAL(client_do(&c, "PUT", url, buf, sizeof buf, 10000, NULL),
                    CURLE_OK);
    codes[i] = c.code;
    if (i < 2)
      CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/seq", NULL), -1);
  }
  CU_ASSERT_EQUAL(codes[0], 503);
  CU_ASSERT_EQUAL(codes[1], 503);
  CU_ASSERT_EQUAL(codes[2], 200);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/seq"), 3);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/seq", got), (long long)sizeof buf);
  CU_ASSERT_STRING_EQUAL(got, want);
  bk_ts_request r;
  for (size_t i = 0; i < 3; i++) {
    CU_ASSERT_EQUAL(bk_ts_request_get(ts, i, &r), 0);
    CU_ASSERT_EQUAL(r.fault, i < 2 ? BK_TS_STATUS : BK_TS_OK);
    CU_ASSERT_EQUAL(r.status, i < 2 ? 503 : 200);
  }
  CU_ASSERT_EQUAL(bk_ts_request_get(ts, 3, &r), -1);
  free(url);
  client_cleanup(&c);
  bk_ts_stop(ts);
}

static long put_code(bk_ts *ts, client *c, const char *path) {
  char *url = bk_ts_url(ts, path);
  c->code = 0;
  CU_ASSERT_EQUAL(client_do(c, "PUT", url, "x", 1, 10000, NULL), CURLE_OK);
  free(url);
  return c->code;
}

static void test_path_and_any_scripts(void) {
  bk_ts *ts = start(0);
  bk_ts_action any = {.fault = BK_TS_STATUS, .status = 500};
  bk_ts_action one = {.fault = BK_TS_STATUS, .status = 404};
  bk_ts_script(ts, NULL, &any, 1);
  bk_ts_script(ts, "/a", &one, 1);
  client c;
  client_init(&c);
  CU_ASSERT_EQUAL(put_code(ts, &c, "/a"), 404); /* per-path wins */
  CU_ASSERT_EQUAL(put_code(ts, &c, "/b"), 500); /* any-path still there */
  CU_ASSERT_EQUAL(put_code(ts, &c, "/b"), 200);
  CU_ASSERT_EQUAL(put_code(ts, &c, "/a"), 200);
  /* scripts added later append */
  bk_ts_script(ts, "/a", &one, 1);
  bk_ts_script(ts, "/a", &any, 1);
  CU_ASSERT_EQUAL(put_code(ts, &c, "/a"), 404);
  CU_ASSERT_EQUAL(put_code(ts, &c, "/a"), 500);
  CU_ASSERT_EQUAL(put_code(ts, &c, "/a"), 200);
  /* the path is matched without the query */
  bk_ts_script(ts, "/q", &one, 1);
  CU_ASSERT_EQUAL(put_code(ts, &c, "/q?sig=1"), 404);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/q"), 1);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, "/a"), 5);
  client_cleanup(&c);
  bk_ts_stop(ts);
}

static void test_keep_alive(void) {
  bk_ts *ts = start(0);
  client c;
  client_init(&c);
  char *url = bk_ts_url(ts, "/k");
  for (int i = 0; i < 3; i++) {
    CU_ASSERT_EQUAL(client_do(&c, "PUT", url, "abc", 3, 10000, NULL),
                    CURLE_OK);
    CU_ASSERT_EQUAL(c.code, 200);
  }
  CU_ASSERT_EQUAL(bk_ts_connections(ts), 1);
  bk_ts_request r;
  for (size_t i = 0; i < 3; i++) {
    CU_ASSERT_EQUAL(bk_ts_request_get(ts, i, &r), 0);
    CU_ASSERT_EQUAL(r.connection_id, 1);
  }
  client c2;
  client_init(&c2);
  CU_ASSERT_EQUAL(client_do(&c2, "PUT", url, "abc", 3, 10000, NULL),
                  CURLE_OK);
  CU_ASSERT_EQUAL(bk_ts_connections(ts), 2);
  CU_ASSERT_EQUAL(last_request(ts).connection_id, 2);
  free(url);
  client_cleanup(&c2);
  client_cleanup(&c);
  bk_ts_stop(ts);
}

static void test_https(void) {
  bk_ts *ts = start(1);
  const char *ca = bk_ts_ca_file(ts);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ca);
  CU_ASSERT_EQUAL(access(ca, R_OK), 0);
  char *url = bk_ts_url(ts, "/tls");
  CU_ASSERT(!strncmp(url, "https://127.0.0.1:", 18));
  unsigned char buf[300000];
  bk_fill_random(buf, sizeof buf, 9);
  char want[65], got[65];
  bk_sha256_hex(buf, sizeof buf, want);
  client c;
  client_init(&c);
  /* verification is on by default in libcurl */
  CU_ASSERT_EQUAL(client_do(&c, "PUT", url, buf, sizeof buf, 10000, ca),
                  CURLE_OK);
  CU_ASSERT_EQUAL(c.code, 200);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/tls", got), (long long)sizeof buf);
  CU_ASSERT_STRING_EQUAL(got, want);
  /* the name localhost is in the certificate too */
  char lurl[64];
  snprintf(lurl, sizeof lurl, "https://localhost:%u/tls2",
           (unsigned)bk_ts_port(ts));
  CU_ASSERT_EQUAL(client_do(&c, "PUT", lurl, "x", 1, 10000, ca), CURLE_OK);
  CU_ASSERT_EQUAL(c.code, 200);
  /* faults work over TLS */
  bk_ts_action a = {.fault = BK_TS_STATUS, .status = 429};
  bk_ts_script(ts, "/tls", &a, 1);
  CU_ASSERT_EQUAL(client_do(&c, "PUT", url, "x", 1, 10000, ca), CURLE_OK);
  CU_ASSERT_EQUAL(c.code, 429);
  a = (bk_ts_action){.fault = BK_TS_RESET_MID_BODY, .after_bytes = 65536};
  bk_ts_script(ts, "/tls", &a, 1);
  CURLcode rc = client_do(&c, "PUT", url, buf, sizeof buf, 10000, ca);
  CU_ASSERT(rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR);
  printf("[TLS reset: %s] ", curl_easy_strerror(rc));
  CU_ASSERT_EQUAL(bk_ts_wait_requests(ts, 4, 5.0), 4);
  CU_ASSERT_EQUAL(last_request(ts).complete, 0);
  a = (bk_ts_action){.fault = BK_TS_TRUNCATED, .status = 200};
  bk_ts_script(ts, "/tls", &a, 1);
  CU_ASSERT_EQUAL(client_do(&c, "PUT", url, "x", 1, 10000, ca),
                  CURLE_PARTIAL_FILE);
  CU_ASSERT_EQUAL(c.code, 200);
  client_cleanup(&c);

  /* without the CA the certificate is not trusted */
  client_init(&c);
  CU_ASSERT_EQUAL(client_do(&c, "PUT", url, "x", 1, 10000, NULL),
                  CURLE_PEER_FAILED_VERIFICATION);
  client_cleanup(&c);
  free(url);
  char *path = strdup(ca);
  bk_ts_stop(ts);
  CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0); /* removed at stop */
  free(path);
}

typedef struct bg_put {
  pthread_t thread;
  char *url;
  CURLcode rc;
} bg_put;

static void *bg_put_main(void *arg) {
  bg_put *b = arg;
  static unsigned char buf[4 * 1024 * 1024];
  CURL *h = curl_easy_init();
  client c;
  memset(&c, 0, sizeof c);
  c.h = h;
  c.data = buf;
  c.len = sizeof buf;
  curl_easy_setopt(h, CURLOPT_URL, b->url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 20000L);
  curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(h, CURLOPT_READFUNCTION, client_read);
  curl_easy_setopt(h, CURLOPT_READDATA, &c);
  curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c.len);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, client_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
  b->rc = curl_easy_perform(h);
  client_cleanup(&c);
  return NULL;
}

static void test_stop_while_sleeping(void) {
  bk_ts *ts = start(0);
  bk_ts_action hold = {.fault = BK_TS_NO_RESPONSE, .seconds = 30};
  bk_ts_action delay = {.fault = BK_TS_DELAY, .seconds = 30};
  bk_ts_action stall = {.fault = BK_TS_STALL_BODY, .seconds = 30,
                        .after_bytes = 1000};
  bk_ts_script(ts, "/hold", &hold, 1);
  bk_ts_script(ts, "/delay", &delay, 1);
  bk_ts_script(ts, "/stall", &stall, 1);
  const char *paths[3] = {"/hold", "/delay", "/stall"};
  bg_put bg[3];
  for (int i = 0; i < 3; i++) {
    bg[i].url = bk_ts_url(ts, paths[i]);
    bg[i].rc = CURLE_OK;
    CU_ASSERT_EQUAL_FATAL(
        pthread_create(&bg[i].thread, NULL, bg_put_main, &bg[i]), 0);
  }
  /* the hold is recorded when it starts; give the others a moment */
  CU_ASSERT_EQUAL(bk_ts_wait_requests(ts, 1, 10.0), 1);
  usleep(300 * 1000);
  double t0 = now();
  bk_ts_stop(ts);
  double took = now() - t0;
  CU_ASSERT(took < 3.0);
  printf("[stop took %.3fs] ", took);
  for (int i = 0; i < 3; i++) {
    pthread_join(bg[i].thread, NULL);
    CU_ASSERT_NOT_EQUAL(bg[i].rc, CURLE_OK);
    free(bg[i].url);
  }
  bk_ts_stop(NULL);
}

static void test_start_options(void) {
  bk_ts *a = NULL, *b = NULL;
  CU_ASSERT_EQUAL(bk_ts_start(&a, NULL), 0);
  CU_ASSERT_EQUAL(bk_ts_start(&b, NULL), 0);
  CU_ASSERT_NOT_EQUAL(bk_ts_port(a), bk_ts_port(b));
  CU_ASSERT_PTR_NULL(bk_ts_ca_file(a));
  char *u = bk_ts_url(a, "/x?y");
  char want[64];
  snprintf(want, sizeof want, "http://127.0.0.1:%u/x?y",
           (unsigned)bk_ts_port(a));
  CU_ASSERT_STRING_EQUAL(u, want);
  free(u);
  CU_ASSERT_STRING_EQUAL(bk_ts_fault_name(BK_TS_TRUNCATED), "TRUNCATED");
  bk_ts_stop(b);
  bk_ts_stop(a);
}

static void reg(void) {
  bk_suite("testserver", NULL, NULL);
  bk_test("start, ports, urls", test_start_options);
  bk_test("OK stores the body", test_ok_stores_body);
  bk_test("POST, HEAD, DELETE, empty body, reset", test_methods);
  bk_test("STATUS with headers and body", test_status_with_headers_and_body);
  bk_test("DELAY", test_delay);
  bk_test("STALL_BODY", test_stall_body);
  bk_test("NO_RESPONSE", test_no_response);
  bk_test("RESET_MID_BODY", test_reset_mid_body);
  bk_test("TRUNCATED", test_truncated);
  bk_test("CLOSE_EARLY", test_close_early);
  bk_test("script sequence then fallback", test_script_sequence);
  bk_test("per-path and any-path scripts", test_path_and_any_scripts);
  bk_test("keep-alive reuses one connection", test_keep_alive);
  bk_test("HTTPS with the generated CA", test_https);
  bk_test("stop while handlers sleep", test_stop_while_sleeping);
}

int main(int argc, char **argv) {
  /* a reset peer must not kill the test program */
  signal(SIGPIPE, SIG_IGN);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return 2;
  int rc = bk_test_main(argc, argv, reg);
  curl_global_cleanup();
  return rc;
}
