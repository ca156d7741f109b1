/*
 * test_server_resumable.c - the reference server's resumable uploads
 * (doc/api-protocol.md, "Resumable uploads") over real sockets, with
 * plain libcurl (and, for the takeover, a raw socket) as the client: in
 * raw mode (memory store) and in API mode (a disk store in a temporary
 * folder, signed storage URLs).
 */
#include "bk_test.h"
#include "bks_server.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CH (256 * 1024)            /* the chunk size of these tests */
#define TOTAL (3 * CH + 1000)      /* an object of 3 chunks and a bit */
static const unsigned char SECRET[] = "0123456789abcdef0123456789abcdef";
static const char *CA; /* CURLOPT_CAINFO for a TLS server, or NULL */

static void sleep_s(double s) {
  struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&t, &t) != 0)
    ;
}

/* ---- a plain libcurl client ----------------------------------------------- */

typedef struct hres {
  CURLcode rc;
  long code;
  char *body;
  size_t len;
  char location[2048];
  char range[128];
  int has_range;
} hres;

typedef struct src {
  const unsigned char *data;
  size_t len, pos;
} src;

static size_t on_read(char *buf, size_t size, size_t n, void *ud) {
  src *u = ud;
  size_t want = size * n;
  if (want > u->len - u->pos)
    want = u->len - u->pos;
  memcpy(buf, u->data + u->pos, want);
  u->pos += want;
  return want;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  hres *r = ud;
  size_t k = size * n;
  char *b = realloc(r->body, r->len + k + 1);
  if (!b)
    return 0;
  memcpy(b + r->len, p, k);
  r->body = b;
  r->len += k;
  b[r->len] = '\0';
  return k;
}

/* Keep Location and Range of the final response (not of a 100). */
static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  hres *r = ud;
  size_t k = size * n;
  char line[2048];
  size_t m = k < sizeof line - 1 ? k : sizeof line - 1;
  memcpy(line, p, m);
  line[m] = '\0';
  line[strcspn(line, "\r\n")] = '\0';
  if (strncmp(line, "HTTP/", 5) == 0) {
    r->location[0] = r->range[0] = '\0';
    r->has_range = 0;
  } else if (strncasecmp(line, "Location: ", 10) == 0) {
    snprintf(r->location, sizeof r->location, "%s", line + 10);
  } else if (strncasecmp(line, "Range: ", 7) == 0) {
    snprintf(r->range, sizeof r->range, "%.127s", line + 7);
    r->has_range = 1;
  }
  return k;
}

static void hres_free(hres *r) {
  free(r->body);
  memset(r, 0, sizeof *r);
}

/* One request. POST sends an empty body; PUT uploads body/len (len 0:
 * Content-Length: 0); other methods send nothing. `hdrs` is a
 * NULL-terminated list of header lines, or NULL. */
static hres req(const char *method, const char *url, const char *const *hdrs,
                const void *body, size_t len) {
  hres r;
  memset(&r, 0, sizeof r);
  r.body = calloc(1, 1);
  CURL *h = curl_easy_init();
  if (!h) {
    r.rc = CURLE_FAILED_INIT;
    return r;
  }
  struct curl_slist *hs = NULL;
  for (size_t i = 0; hdrs && hdrs[i]; i++)
    hs = curl_slist_append(hs, hdrs[i]);
  src u = {body, len, 0};
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 20000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
  if (hs)
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
  if (CA)
    curl_easy_setopt(h, CURLOPT_CAINFO, CA);
  if (!strcmp(method, "POST")) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
  } else if (!strcmp(method, "PUT")) {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &u);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
  } else {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  }
  r.rc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.code);
  curl_easy_cleanup(h);
  curl_slist_free_all(hs);
  return r;
}

/* Start a session at `url`; asserts 201 and returns the session URL. */
static char *start_session(const char *url, const char *const *hdrs) {
  hres r = req("POST", url, hdrs, NULL, 0);
  CU_ASSERT_EQUAL(r.rc, CURLE_OK);
  CU_ASSERT_EQUAL_FATAL(r.code, 201);
  CU_ASSERT_EQUAL(r.len, 0);
  char *loc = strdup(r.location);
  hres_free(&r);
  return loc;
}

/* PUT data[first..last] with Content-Range "bytes first-last/total". */
static hres put_chunk(const char *surl, const unsigned char *data,
                      size_t first, size_t last, const char *total) {
  char cr[128];
  snprintf(cr, sizeof cr, "Content-Range: bytes %zu-%zu/%s", first, last,
           total);
  const char *hdrs[] = {cr, NULL};
  return req("PUT", surl, hdrs, data + first, last - first + 1);
}

/* A status query: empty PUT with "Content-Range: bytes STAR/total". */
static hres query(const char *surl, const char *total) {
  char cr[128];
  snprintf(cr, sizeof cr, "Content-Range: bytes */%s", total);
  const char *hdrs[] = {cr, NULL};
  return req("PUT", surl, hdrs, NULL, 0);
}

/* Assert a 308 whose Range ends at `p` - 1 (no Range when p is 0). */
static void assert_308(hres *r, size_t p) {
  CU_ASSERT_EQUAL(r->rc, CURLE_OK);
  CU_ASSERT_EQUAL(r->code, 308);
  CU_ASSERT_EQUAL(r->len, 0);
  if (p == 0) {
    CU_ASSERT_EQUAL(r->has_range, 0);
  } else {
    char want[64];
    snprintf(want, sizeof want, "bytes=0-%zu", p - 1);
    CU_ASSERT_EQUAL(r->has_range, 1);
    CU_ASSERT_STRING_EQUAL(r->range, want);
  }
  hres_free(r);
}

/* Assert an XML error with `status` and `code`. */
static void assert_xml(hres *r, long status, const char *code) {
  char want[128];
  snprintf(want, sizeof want, "<Code>%s</Code>", code);
  CU_ASSERT_EQUAL(r->rc, CURLE_OK);
  CU_ASSERT_EQUAL(r->code, status);
  CU_ASSERT_PTR_NOT_NULL(strstr(r->body, want));
  if (r->code != status || !strstr(r->body, want))
    fprintf(stderr, "\n  want %ld %s, got %ld %s\n", status, code, r->code,
            r->body);
  hres_free(r);
}

static const char *sid_of(const char *surl) {
  const char *p = strstr(surl, "upload_id=");
  return p ? p + 10 : "";
}

static unsigned char *random_data(size_t len, unsigned long long seed) {
  unsigned char *d = malloc(len ? len : 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  bk_fill_random(d, len, seed);
  return d;
}

/* ---- servers ------------------------------------------------------------------- */

static bks_server *S;
static char *TMP, *ROOT;

static void start_raw(void) {
  bks_config cfg;
  bks_config_init(&cfg);
  cfg.mode = BKS_MODE_RAW;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(bks_server_start(&S, &cfg, err, sizeof err), 0);
}

/* The next start_api()'s session lifetime; 0: the default (a week). */
static double API_SESSION_TTL;

/* An API-mode server on ROOT (made on the first call) with a fixed HMAC
 * secret, so URLs signed by one run stay valid for the next. */
static void start_api(void) {
  if (!TMP) {
    TMP = bk_tmpdir("bks-rs");
    CU_ASSERT_PTR_NOT_NULL_FATAL(TMP);
    ROOT = malloc(strlen(TMP) + 8);
    sprintf(ROOT, "%s/store", TMP);
  }
  bks_config cfg;
  bks_config_init(&cfg);
  cfg.root = ROOT;
  cfg.hmac_secret = SECRET;
  cfg.hmac_secret_len = 32;
  if (API_SESSION_TTL > 0)
    cfg.session_ttl = API_SESSION_TTL;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(bks_server_start(&S, &cfg, err, sizeof err), 0);
}

static void stop(void) {
  bks_server_stop(S);
  S = NULL;
}

static void cleanup_root(void) {
  if (TMP)
    bk_rm_rf(TMP);
  free(TMP);
  free(ROOT);
  TMP = ROOT = NULL;
}

static int file_exists(const char *fmt, const char *a, const char *b,
                       long long *size) {
  char path[4096];
  snprintf(path, sizeof path, fmt, a, b);
  struct stat sb;
  if (stat(path, &sb) != 0)
    return 0;
  if (size)
    *size = (long long)sb.st_size;
  return 1;
}

/* ---- raw mode ------------------------------------------------------------------ */

static void test_raw_whole_upload(void) {
  start_raw();
  unsigned char *data = random_data(TOTAL, 1);
  char total[32];
  snprintf(total, sizeof total, "%d", TOTAL);
  char xl[64];
  snprintf(xl, sizeof xl, "X-Upload-Content-Length: %d", TOTAL);
  char *url = bks_server_url(S, "/bucket/a%20b.bin");
  const char *sh[] = {"x-goog-resumable: start", "Content-Type: image/png",
                      "Cache-Control: no-cache", xl, NULL};
  char *surl = start_session(url, sh);

  /* Location: the Host header's host:port, the raw path, a 32-hex sid */
  char prefix[256];
  snprintf(prefix, sizeof prefix,
           "http://127.0.0.1:%u/bucket/a%%20b.bin?upload_id=",
           (unsigned)bks_server_port(S));
  CU_ASSERT_EQUAL(strncmp(surl, prefix, strlen(prefix)), 0);
  const char *sid = sid_of(surl);
  CU_ASSERT_EQUAL(strlen(sid), 32);
  CU_ASSERT_EQUAL(strspn(sid, "0123456789abcdef"), 32);

  hres r = query(surl, total);
  assert_308(&r, 0);
  r = put_chunk(surl, data, 0, CH - 1, total);
  assert_308(&r, CH);
  r = put_chunk(surl, data, CH, 2 * CH - 1, "*"); /* T may stay '*' */
  assert_308(&r, 2 * CH);
  r = query(surl, "*");
  assert_308(&r, 2 * CH);
  r = query(surl, total);
  assert_308(&r, 2 * CH);
  /* a chunk already there: accepted, nothing changes */
  r = put_chunk(surl, data, 0, CH - 1, total);
  assert_308(&r, 2 * CH);
  /* a chunk that overlaps P: the bytes before P are skipped */
  r = put_chunk(surl, data, CH + 1000, 2 * CH + 999, total);
  assert_308(&r, 2 * CH + 1000);
  CU_ASSERT_EQUAL(bks_server_upload_offset(S, sid, NULL), 2 * CH + 1000);
  r = put_chunk(surl, data, 2 * CH + 1000, 3 * CH - 1, total);
  assert_308(&r, 3 * CH);
  CU_ASSERT_EQUAL(bks_server_object_sha256(S, "/bucket/a%20b.bin", NULL), -1);
  r = put_chunk(surl, data, 3 * CH, TOTAL - 1, total);
  CU_ASSERT_EQUAL(r.rc, CURLE_OK);
  CU_ASSERT_EQUAL(r.code, 200);
  CU_ASSERT_EQUAL(r.has_range, 0);
  hres_free(&r);

  size_t len = 0;
  unsigned char *got = bks_server_object_data(S, "/bucket/a%20b.bin", &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(got);
  CU_ASSERT_EQUAL(len, TOTAL);
  CU_ASSERT_EQUAL(memcmp(got, data, TOTAL), 0);
  free(got);
  int done = 0;
  CU_ASSERT_EQUAL(bks_server_upload_offset(S, sid, &done), TOTAL);
  CU_ASSERT_EQUAL(done, 1);

  /* a completed session keeps answering 200, to queries and chunks */
  r = query(surl, total);
  CU_ASSERT_EQUAL(r.code, 200);
  hres_free(&r);
  r = put_chunk(surl, data, 0, CH - 1, total);
  CU_ASSERT_EQUAL(r.code, 200);
  hres_free(&r);

  /* every request recorded with its Content-Range */
  static const char *const want_cr[] = {
      "", "bytes */787432", "bytes 0-262143/787432", "bytes 262144-524287/*",
      "bytes */*", "bytes */787432", "bytes 0-262143/787432",
      "bytes 263144-525287/787432", "bytes 525288-786431/787432",
      "bytes 786432-787431/787432", "bytes */787432",
      "bytes 0-262143/787432"};
  static const int want_status[] = {201, 308, 308, 308, 308, 308,
                                    308, 308, 308, 200, 200, 200};
  size_t n = bks_server_request_count(S);
  CU_ASSERT_EQUAL(n, 12);
  for (size_t i = 0; i < n && i < 12; i++) {
    bks_request q;
    CU_ASSERT_EQUAL(bks_server_request_get(S, i, &q), 0);
    CU_ASSERT_STRING_EQUAL(q.content_range, want_cr[i]);
    CU_ASSERT_EQUAL(q.status, want_status[i]);
    CU_ASSERT_STRING_EQUAL(q.path, "/bucket/a%20b.bin");
    CU_ASSERT_STRING_EQUAL(q.method, i ? "PUT" : "POST");
    if (i) {
      CU_ASSERT_STRING_EQUAL(q.query + 10, sid);
    }
    CU_ASSERT_STRING_EQUAL(q.error, "");
  }
  bks_request q;
  CU_ASSERT_EQUAL(bks_server_request_get(S, 7, &q), 0);
  CU_ASSERT_EQUAL(q.body_bytes, CH);
  bks_counters c;
  bks_server_counters(S, &c);
  CU_ASSERT_EQUAL(c.resumable_started, 1);
  CU_ASSERT_EQUAL(c.resumable_completed, 1);

  free(surl);
  free(url);
  free(data);
  stop();
}

static void test_raw_host_header(void) {
  start_raw();
  char *url = bks_server_url(S, "/p/q");
  const char *sh[] = {"x-goog-resumable: start",
                      "Host: proxy.example:8443", NULL};
  char *surl = start_session(url, sh);
  CU_ASSERT_EQUAL(strncmp(surl, "http://proxy.example:8443/p/q?upload_id=",
                          40), 0);
  CU_ASSERT_EQUAL(strlen(surl), 40 + 32);
  free(surl);
  free(url);
  stop();

  /* over TLS the session URL is https */
  bks_config cfg;
  bks_config_init(&cfg);
  cfg.mode = BKS_MODE_RAW;
  cfg.tls = 1;
  CU_ASSERT_EQUAL_FATAL(bks_server_start(&S, &cfg, NULL, 0), 0);
  CA = bks_server_ca_file(S);
  url = bks_server_url(S, "/tls");
  const char *sh2[] = {"x-goog-resumable: start", NULL};
  surl = start_session(url, sh2);
  char want[128];
  snprintf(want, sizeof want, "https://127.0.0.1:%u/tls?upload_id=",
           (unsigned)bks_server_port(S));
  CU_ASSERT_EQUAL(strncmp(surl, want, strlen(want)), 0);
  hres r = put_chunk(surl, (const unsigned char *)"hello", 0, 4, "5");
  CU_ASSERT_EQUAL(r.code, 200);
  hres_free(&r);
  CU_ASSERT_EQUAL(bks_server_object_sha256(S, "/tls", NULL), 5);
  CA = NULL;
  free(surl);
  free(url);
  stop();
}

static void test_raw_refusals(void) {
  start_raw();
  unsigned char *data = random_data(2 * CH, 2);
  char *url = bks_server_url(S, "/obj");
  const char *sh[] = {"x-goog-resumable: start",
                      "X-Upload-Content-Length: 524288", NULL};
  char *surl = start_session(url, sh);
  hres r = put_chunk(surl, data, 0, CH - 1, "524288");
  assert_308(&r, CH);

  /* a gap */
  r = put_chunk(surl, data, CH + 1, 2 * CH - 1, "524288");
  assert_xml(&r, 400, "InvalidRange");
  /* a body shorter than the range */
  const char *cr1[] = {"Content-Range: bytes 262144-524287/524288", NULL};
  r = req("PUT", surl, cr1, data + CH, 1000);
  assert_xml(&r, 400, "InvalidArgument");
  /* malformed or missing Content-Range */
  const char *bad[] = {"Content-Range: bytes 262144-262143/524288",
                       "Content-Range: bytes 262144-/524288",
                       "Content-Range: 262144-262145/524288",
                       "Content-Range: bytes 262144-262145/524288x",
                       "Content-Range: bytes */", NULL};
  for (size_t i = 0; bad[i]; i++) {
    const char *h[] = {bad[i], NULL};
    r = req("PUT", surl, h, data + CH, 2);
    assert_xml(&r, 400, "InvalidArgument");
  }
  r = req("PUT", surl, NULL, data + CH, 2);
  assert_xml(&r, 400, "InvalidArgument");
  /* a total that contradicts the declared one, or a range past it */
  r = put_chunk(surl, data, CH, 2 * CH - 1, "600000");
  assert_xml(&r, 400, "InvalidArgument");
  r = query(surl, "600000");
  assert_xml(&r, 400, "InvalidArgument");
  r = put_chunk(surl, data, CH, CH + 10, "262150");
  assert_xml(&r, 400, "InvalidArgument");
  /* a range past a total given with it (no total declared) */
  const char *sh_free[] = {"x-goog-resumable: start", NULL};
  char *surl2 = start_session(url, sh_free);
  r = put_chunk(surl2, data, 0, 99, "50");
  assert_xml(&r, 400, "InvalidArgument");
  r = query(surl2, "*");
  assert_308(&r, 0);
  free(surl2);
  /* none of them moved the session */
  r = query(surl, "*");
  assert_308(&r, CH);

  /* unknown, malformed, and other-path session ids */
  char *u404 = bks_server_url(
      S, "/obj?upload_id=0123456789abcdef0123456789abcdef");
  r = query(u404, "*");
  assert_xml(&r, 404, "NoSuchUpload");
  free(u404);
  u404 = bks_server_url(S, "/obj?upload_id=../../etc");
  r = query(u404, "*");
  assert_xml(&r, 404, "NoSuchUpload");
  free(u404);
  char other[512];
  snprintf(other, sizeof other, "/other?upload_id=%s", sid_of(surl));
  u404 = bks_server_url(S, other);
  r = query(u404, "*");
  assert_xml(&r, 404, "NoSuchUpload");
  free(u404);

  /* a start with a body, or a bad Content-MD5 or declared length */
  const char *sh_len[] = {"x-goog-resumable: start", NULL};
  r = req("PUT", url, sh_len, data, 10); /* PUT: not a start */
  CU_ASSERT_EQUAL(r.code, 200);
  hres_free(&r);
  char *burl = bks_server_url(S, "/withbody");
  CURL *h = curl_easy_init();
  struct curl_slist *hs = curl_slist_append(NULL, "x-goog-resumable: start");
  curl_easy_setopt(h, CURLOPT_URL, burl);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, "abc");
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
  hres hb;
  memset(&hb, 0, sizeof hb);
  hb.body = calloc(1, 1);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &hb);
  CU_ASSERT_EQUAL(curl_easy_perform(h), CURLE_OK);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &hb.code);
  hb.rc = CURLE_OK;
  curl_easy_cleanup(h);
  curl_slist_free_all(hs);
  assert_xml(&hb, 400, "InvalidArgument");
  free(burl);
  const char *sh_md5[] = {"x-goog-resumable: start", "Content-MD5: abc",
                          NULL};
  r = req("POST", url, sh_md5, NULL, 0);
  assert_xml(&r, 400, "InvalidDigest");
  const char *sh_xl[] = {"x-goog-resumable: start",
                         "X-Upload-Content-Length: 12ab", NULL};
  r = req("POST", url, sh_xl, NULL, 0);
  assert_xml(&r, 400, "InvalidArgument");
  bks_counters c;
  bks_server_counters(S, &c);
  CU_ASSERT_EQUAL(c.resumable_started, 2);
  CU_ASSERT_EQUAL(c.resumable_completed, 0);

  /* POST without x-goog-resumable: start still stores its body */
  r = req("DELETE", url, NULL, NULL, 0); /* the PUT above stored one */
  CU_ASSERT_EQUAL(r.code, 204);
  hres_free(&r);
  const char *post_other[] = {"x-goog-resumable: maybe", NULL};
  r = req("POST", url, post_other, NULL, 0);
  CU_ASSERT_EQUAL(r.code, 200);
  CU_ASSERT_EQUAL(r.location[0], '\0');
  hres_free(&r);
  CU_ASSERT_EQUAL(bks_server_object_sha256(S, "/obj", NULL), 0);

  free(surl);
  free(url);
  free(data);
  stop();
}

static void test_raw_cancel_and_reset(void) {
  start_raw();
  unsigned char *data = random_data(CH, 3);
  char *url = bks_server_url(S, "/c");
  const char *sh[] = {"x-goog-resumable: start", NULL};
  char *surl = start_session(url, sh);
  hres r = put_chunk(surl, data, 0, CH - 1, "*");
  assert_308(&r, CH);
  r = req("DELETE", surl, NULL, NULL, 0);
  CU_ASSERT_EQUAL(r.code, 204);
  CU_ASSERT_EQUAL(r.len, 0);
  hres_free(&r);
  r = query(surl, "*");
  assert_xml(&r, 404, "NoSuchUpload");
  r = put_chunk(surl, data, 0, CH - 1, "*");
  assert_xml(&r, 404, "NoSuchUpload");
  r = req("DELETE", surl, NULL, NULL, 0);
  assert_xml(&r, 404, "NoSuchUpload");
  CU_ASSERT_EQUAL(bks_server_upload_offset(S, sid_of(surl), NULL), -1);
  CU_ASSERT_EQUAL(bks_server_object_sha256(S, "/c", NULL), -1);
  free(surl);

  /* bks_server_reset forgets the memory store's sessions */
  surl = start_session(url, sh);
  r = put_chunk(surl, data, 0, 99, "*");
  assert_308(&r, 100);
  bks_server_reset(S);
  r = query(surl, "*");
  assert_xml(&r, 404, "NoSuchUpload");
  free(surl);

  /* an empty object: declared 0, the query finalizes it */
  const char *sh0[] = {"x-goog-resumable: start",
                       "X-Upload-Content-Length: 0", NULL};
  surl = start_session(url, sh0);
  r = query(surl, "0");
  CU_ASSERT_EQUAL(r.code, 200);
  hres_free(&r);
  CU_ASSERT_EQUAL(bks_server_object_sha256(S, "/c", NULL), 0);
  free(surl);

  free(url);
  free(data);
  stop();
}

/* base64 of the MD5 of data */
static void md5_b64(const void *data, size_t len, char out[32]) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_Digest(data, len, d, &n, EVP_md5(), NULL);
  EVP_EncodeBlock((unsigned char *)out, d, (int)n);
}

static void test_raw_content_md5(void) {
  start_raw();
  unsigned char *data = random_data(CH + 10, 4);
  char good[32], bad[32];
  md5_b64(data, CH + 10, good);
  md5_b64(data, CH + 9, bad);
  char *url = bks_server_url(S, "/m");
  char hdr[64];

  snprintf(hdr, sizeof hdr, "Content-MD5: %s", bad);
  const char *shb[] = {"x-goog-resumable: start", hdr, NULL};
  char *surl = start_session(url, shb);
  hres r = put_chunk(surl, data, 0, CH - 1, "*");
  assert_308(&r, CH);
  r = put_chunk(surl, data, CH, CH + 9, "262154");
  assert_xml(&r, 400, "BadDigest");
  CU_ASSERT_EQUAL(bks_server_object_sha256(S, "/m", NULL), -1);
  r = query(surl, "262154");
  assert_xml(&r, 404, "NoSuchUpload");
  free(surl);

  snprintf(hdr, sizeof hdr, "Content-MD5: %s", good);
  const char *shg[] = {"x-goog-resumable: start", hdr, NULL};
  surl = start_session(url, shg);
  r = put_chunk(surl, data, 0, CH - 1, "*");
  assert_308(&r, CH);
  r = put_chunk(surl, data, CH, CH + 9, "262154");
  CU_ASSERT_EQUAL(r.code, 200);
  hres_free(&r);
  char want[65], got[65];
  bk_sha256_hex(data, CH + 10, want);
  CU_ASSERT_EQUAL(bks_server_object_sha256(S, "/m", got), CH + 10);
  CU_ASSERT_STRING_EQUAL(got, want);
  bks_counters c;
  bks_server_counters(S, &c);
  CU_ASSERT_EQUAL(c.resumable_started, 2);
  CU_ASSERT_EQUAL(c.resumable_completed, 1);
  free(surl);
  free(url);
  free(data);
  stop();
}

static void test_raw_reset_mid_body(void) {
  start_raw();
  unsigned char *data = random_data(TOTAL, 5);
  char total[32];
  snprintf(total, sizeof total, "%d", TOTAL);
  char *url = bks_server_url(S, "/r/x");
  const char *sh[] = {"x-goog-resumable: start", NULL};
  char *surl = start_session(url, sh);
  hres r = put_chunk(surl, data, 0, CH - 1, total);
  assert_308(&r, CH);

  bks_action a = {.fault = BKS_FAULT_RESET_MID_BODY, .after_bytes = 100000};
  bks_server_script(S, "/r/x", &a, 1);
  r = put_chunk(surl, data, CH, 2 * CH - 1, total);
  CU_ASSERT_NOT_EQUAL(r.rc, CURLE_OK);
  hres_free(&r);
  /* exactly the bytes before the reset were kept */
  r = query(surl, total);
  assert_308(&r, CH + 100000);
  size_t n = bks_server_request_count(S);
  bks_request q;
  CU_ASSERT_EQUAL(bks_server_request_get(S, n - 2, &q), 0);
  CU_ASSERT_EQUAL(q.fault, BKS_FAULT_RESET_MID_BODY);
  CU_ASSERT_EQUAL(q.body_bytes, 100000);
  CU_ASSERT_STRING_EQUAL(q.content_range, "bytes 262144-524287/787432");

  /* a DELAY (the whole body read, then a pause) keeps all of it */
  bks_action d = {.fault = BKS_FAULT_DELAY, .seconds = 0.2};
  bks_server_script(S, "/r/x", &d, 1);
  r = put_chunk(surl, data, CH + 100000, 2 * CH + 99999, total);
  assert_308(&r, 2 * CH + 100000);
  /* a STATUS fault appends nothing */
  bks_action st = {.fault = BKS_FAULT_STATUS, .status = 503};
  bks_server_script(S, "/r/x", &st, 1);
  r = put_chunk(surl, data, 2 * CH + 100000, TOTAL - 1, total);
  CU_ASSERT_EQUAL(r.code, 503);
  hres_free(&r);
  r = query(surl, "*");
  assert_308(&r, 2 * CH + 100000);

  r = put_chunk(surl, data, 2 * CH + 100000, TOTAL - 1, total);
  CU_ASSERT_EQUAL(r.code, 200);
  hres_free(&r);
  size_t len = 0;
  unsigned char *got = bks_server_object_data(S, "/r/x", &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(got);
  CU_ASSERT_EQUAL(len, TOTAL);
  CU_ASSERT_EQUAL(memcmp(got, data, TOTAL), 0);
  free(got);
  free(surl);
  free(url);
  free(data);
  stop();
}

/* Chunks over 1 MiB: curl sends "Expect: 100-continue"; a refusal known
 * from the headers is answered before the body is sent. */
static void test_raw_expect_continue(void) {
  start_raw();
  size_t big = 2 * 1024 * 1024;
  unsigned char *data = random_data(2 * big + 2, 10);
  char *url = bks_server_url(S, "/big");
  const char *sh[] = {"x-goog-resumable: start", NULL};
  char *surl = start_session(url, sh);
  hres r = put_chunk(surl, data, 0, big - 1, "*");
  assert_308(&r, big);
  size_t n = bks_server_request_count(S);
  bks_request q;
  CU_ASSERT_EQUAL(bks_server_request_get(S, n - 1, &q), 0);
  CU_ASSERT_STRING_EQUAL(q.expect, "100-continue");
  CU_ASSERT_EQUAL(q.body_bytes, big);

  r = put_chunk(surl, data, big + 1, 2 * big, "*"); /* a gap */
  assert_xml(&r, 400, "InvalidRange");
  n = bks_server_request_count(S);
  CU_ASSERT_EQUAL(bks_server_request_get(S, n - 1, &q), 0);
  CU_ASSERT_STRING_EQUAL(q.expect, "100-continue");
  CU_ASSERT_EQUAL(q.body_bytes, 0);

  r = put_chunk(surl, data, big, 2 * big + 1, "4194306");
  CU_ASSERT_EQUAL(r.code, 200);
  hres_free(&r);
  size_t len = 0;
  unsigned char *got = bks_server_object_data(S, "/big", &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(got);
  CU_ASSERT_EQUAL(len, 2 * big + 2);
  CU_ASSERT_EQUAL(memcmp(got, data, 2 * big + 2), 0);
  free(got);
  free(surl);
  free(url);
  free(data);
  stop();
}

/* ---- takeover ------------------------------------------------------------------- */

static int raw_connect(unsigned short port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Read a response's head (up to the blank line) into buf. */
static int recv_head(int fd, char *buf, size_t cap) {
  size_t n = 0;
  while (n + 1 < cap) {
    ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    n += (size_t)r;
    buf[n] = '\0';
    if (strstr(buf, "\r\n\r\n"))
      return 0;
  }
  buf[n] = '\0';
  return -1;
}

/* Wait until session sid has persisted `want` bytes. */
static long long wait_offset(const char *sid, long long want) {
  long long p = -1;
  for (int i = 0; i < 1000; i++) {
    p = bks_server_upload_offset(S, sid, NULL);
    if (p == want)
      break;
    sleep_s(0.01);
  }
  return p;
}

/* A chunk whose body stalls (a raw socket sends part of it) is taken
 * over by a query; what the old request sends later is dropped, and the
 * client finishes from the queried offset. */
static void takeover(int api) {
  unsigned char *data = random_data(TOTAL, 6);
  char total[32];
  snprintf(total, sizeof total, "%d", TOTAL);
  char *url;
  const char *key = "uploads/takeover";
  if (api)
    url = bks_server_sign_storage_url(S, key, "image/*", 60);
  else
    url = bks_server_url(S, "/t");
  const char *sh[] = {"x-goog-resumable: start", "Content-Type: image/jpeg",
                      NULL};
  char *surl = start_session(url, sh);
  const char *sid = sid_of(surl);
  hres r = put_chunk(surl, data, 0, CH - 1, total);
  assert_308(&r, CH);

  int fd = raw_connect(bks_server_port(S));
  CU_ASSERT_FATAL(fd >= 0);
  const char *target = strstr(surl + 7, "/");
  char head[1024];
  snprintf(head, sizeof head,
           "PUT %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
           "Content-Length: %d\r\nContent-Range: bytes %d-%d/%s\r\n\r\n",
           target, (unsigned)bks_server_port(S), CH, CH, 2 * CH - 1, total);
  CU_ASSERT_EQUAL(send_all(fd, head, strlen(head)), 0);
  CU_ASSERT_EQUAL(send_all(fd, data + CH, 100000), 0);
  CU_ASSERT_EQUAL(wait_offset(sid, CH + 100000), CH + 100000);

  /* the client gave up on it: a query takes the session over */
  r = query(surl, total);
  assert_308(&r, CH + 100000);
  /* the old request's later bytes (garbage here) are dropped */
  unsigned char *junk = malloc(CH);
  memset(junk, 0xAA, CH);
  CU_ASSERT_EQUAL(send_all(fd, junk, CH - 100000), 0);
  free(junk);
  char resp[4096];
  CU_ASSERT_EQUAL(recv_head(fd, resp, sizeof resp), 0);
  CU_ASSERT_EQUAL(strncmp(resp, "HTTP/1.1 308", 12), 0);
  CU_ASSERT_PTR_NOT_NULL(strcasestr(resp, "\r\nRange: bytes=0-362143\r\n"));
  close(fd);
  CU_ASSERT_EQUAL(bks_server_upload_offset(S, sid, NULL), CH + 100000);
  size_t n = bks_server_request_count(S);
  bks_request q;
  CU_ASSERT_EQUAL(bks_server_request_get(S, n - 1, &q), 0);
  CU_ASSERT_STRING_EQUAL(q.error, "Superseded");
  CU_ASSERT_EQUAL(q.status, 308);
  CU_ASSERT_EQUAL(q.body_bytes, CH);

  /* resend from the queried offset */
  r = put_chunk(surl, data, CH + 100000, 2 * CH + 99999, total);
  assert_308(&r, 2 * CH + 100000);
  r = put_chunk(surl, data, 2 * CH + 100000, TOTAL - 1, total);
  CU_ASSERT_EQUAL(r.code, 200);
  hres_free(&r);
  size_t len = 0;
  unsigned char *got =
      bks_server_object_data(S, api ? key : "/t", &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(got);
  CU_ASSERT_EQUAL(len, TOTAL);
  CU_ASSERT_EQUAL(memcmp(got, data, TOTAL), 0);
  free(got);
  free(surl);
  free(url);
  free(data);
}

static void test_raw_takeover(void) {
  start_raw();
  takeover(0);
  stop();
}

/* ---- API mode --------------------------------------------------------------------- */

static void test_api_whole_upload(void) {
  start_api();
  unsigned char *data = random_data(TOTAL, 7);
  char total[32];
  snprintf(total, sizeof total, "%d", TOTAL);
  const char *key = "uploads/0b8e1c9e-1111-4222-8333-944455556666";
  char *url = bks_server_sign_storage_url(S, key, "image/*", 60);
  char md5h[64], md5[32];
  md5_b64(data, TOTAL, md5);
  snprintf(md5h, sizeof md5h, "Content-MD5: %s", md5);
  const char *sh[] = {"x-goog-resumable: start", "Content-Type: image/jpeg",
                      md5h, NULL};
  char *surl = start_session(url, sh);
  char want_loc[512];
  snprintf(want_loc, sizeof want_loc,
           "http://127.0.0.1:%u/storage/%s?upload_id=",
           (unsigned)bks_server_port(S), key);
  CU_ASSERT_EQUAL(strncmp(surl, want_loc, strlen(want_loc)), 0);
  const char *sid = sid_of(surl);

  /* on disk: {root}/.resumable/<sid>/{meta,data}, data holding P bytes */
  hres r = put_chunk(surl, data, 0, CH - 1, "*");
  assert_308(&r, CH);
  long long size = -1;
  CU_ASSERT(file_exists("%s/.resumable/%s/meta", ROOT, sid, NULL));
  CU_ASSERT(file_exists("%s/.resumable/%s/data", ROOT, sid, &size));
  CU_ASSERT_EQUAL(size, CH);
  r = put_chunk(surl, data, CH, 3 * CH - 1, total);
  assert_308(&r, 3 * CH);
  r = put_chunk(surl, data, 3 * CH, TOTAL - 1, total);
  CU_ASSERT_EQUAL(r.code, 200);
  CU_ASSERT_EQUAL(r.len, 0);
  hres_free(&r);

  /* the object, written as a PUT writes it */
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", ROOT, key);
  char want[65], got[65];
  bk_sha256_hex(data, TOTAL, want);
  CU_ASSERT_EQUAL(bk_sha256_file_hex(path, got), 0);
  CU_ASSERT_STRING_EQUAL(got, want);
  CU_ASSERT_EQUAL(bks_server_object_sha256(S, key, got), TOTAL);
  CU_ASSERT_FALSE(file_exists("%s/.resumable/%s/data", ROOT, sid, NULL));
  CU_ASSERT(file_exists("%s/.resumable/%s/meta", ROOT, sid, NULL));
  bks_counters c;
  bks_server_counters(S, &c);
  CU_ASSERT_EQUAL(c.objects_stored, 1);
  CU_ASSERT_EQUAL(c.resumable_started, 1);
  CU_ASSERT_EQUAL(c.resumable_completed, 1);
  r = query(surl, total);
  CU_ASSERT_EQUAL(r.code, 200);
  hres_free(&r);

  /* .resumable is not an object key */
  CU_ASSERT_EQUAL(bks_object_key_valid(".resumable"), 0);
  CU_ASSERT_EQUAL(bks_object_key_valid(".resumable/x/data"), 0);
  CU_ASSERT_EQUAL(bks_object_key_valid("uploads/.resumable"), 1);
  CU_ASSERT_EQUAL(bks_object_key_valid(".resumablex"), 1);
  char k2[128];
  snprintf(k2, sizeof k2, ".resumable/%s/data", sid);
  char *u2 = bks_server_sign_storage_url(S, k2, "*", 60);
  r = req("PUT", u2, NULL, "x", 1);
  assert_xml(&r, 400, "InvalidObjectName");
  free(u2);

  free(surl);
  free(url);
  free(data);
  stop();
  cleanup_root();
}

static void test_api_start_refused(void) {
  start_api();
  const char *key = "uploads/refused";
  const char *sh[] = {"x-goog-resumable: start", "Content-Type: image/jpeg",
                      NULL};
  char *url = bks_server_sign_storage_url(S, key, "image/*", -10);
  hres r = req("POST", url, sh, NULL, 0);
  assert_xml(&r, 403, "ExpiredToken");
  free(url);

  url = bks_server_sign_storage_url(S, key, "image/*", 60);
  char *sig = strstr(url, "signature=") + 10;
  sig[0] = sig[0] == '0' ? '1' : '0';
  r = req("POST", url, sh, NULL, 0);
  assert_xml(&r, 403, "SignatureDoesNotMatch");
  free(url);

  url = bks_server_sign_storage_url(S, key, "image/*", 60);
  const char *sh_pdf[] = {"x-goog-resumable: start",
                          "Content-Type: application/pdf", NULL};
  r = req("POST", url, sh_pdf, NULL, 0);
  assert_xml(&r, 403, "SignatureDoesNotMatch");
  /* the same URL with an allowed type starts a session */
  char *surl = start_session(url, sh);
  free(surl);
  /* a storage POST without the header is still refused */
  r = req("POST", url, NULL, NULL, 0);
  assert_xml(&r, 405, "MethodNotAllowed");
  bks_counters c;
  bks_server_counters(S, &c);
  CU_ASSERT_EQUAL(c.resumable_started, 1);
  free(url);
  stop();
  cleanup_root();
}

/* The session URL `surl` moved to the running server's port. */
static char *on_this_server(const char *surl) {
  const char *target = strstr(surl + 7, "/");
  return bks_server_url(S, target);
}

static void test_api_restart(void) {
  start_api();
  unsigned char *data = random_data(TOTAL, 8);
  char total[32];
  snprintf(total, sizeof total, "%d", TOTAL);
  const char *key = "uploads/restart";
  char *url = bks_server_sign_storage_url(S, key, "image/*", 600);
  char xl[64];
  snprintf(xl, sizeof xl, "X-Upload-Content-Length: %d", TOTAL);
  const char *sh[] = {"x-goog-resumable: start", "Content-Type: image/jpeg",
                      xl, NULL};
  char *surl = start_session(url, sh);
  hres r = put_chunk(surl, data, 0, CH - 1, "*");
  assert_308(&r, CH);
  unsigned short port1 = bks_server_port(S);
  stop();

  /* the same root, a new server (most likely on a new port) */
  start_api();
  char *surl2 = on_this_server(surl);
  r = query(surl2, "*");
  assert_308(&r, CH);
  /* the declared total was kept: a contradicting one is refused */
  r = query(surl2, "5");
  assert_xml(&r, 400, "InvalidArgument");
  r = put_chunk(surl2, data, CH, 3 * CH - 1, "*");
  assert_308(&r, 3 * CH);
  r = put_chunk(surl2, data, 3 * CH, TOTAL - 1, "*");
  CU_ASSERT_EQUAL(r.code, 200); /* the declared total finishes it */
  hres_free(&r);
  char want[65], got[65];
  bk_sha256_hex(data, TOTAL, want);
  CU_ASSERT_EQUAL(bks_server_object_sha256(S, key, got), TOTAL);
  CU_ASSERT_STRING_EQUAL(got, want);
  stop();

  /* and again: the completed session still answers 200 */
  start_api();
  char *surl3 = on_this_server(surl);
  r = query(surl3, total);
  CU_ASSERT_EQUAL(r.code, 200);
  hres_free(&r);
  int done = 0;
  CU_ASSERT_EQUAL(bks_server_upload_offset(S, sid_of(surl), &done), TOTAL);
  CU_ASSERT_EQUAL(done, 1);
  /* DELETE removes it from the disk */
  r = req("DELETE", surl3, NULL, NULL, 0);
  CU_ASSERT_EQUAL(r.code, 204);
  hres_free(&r);
  CU_ASSERT_FALSE(file_exists("%s/.resumable/%s", ROOT, sid_of(surl), NULL));
  r = query(surl3, total);
  assert_xml(&r, 404, "NoSuchUpload");
  (void)port1;
  free(surl3);
  free(surl2);
  free(surl);
  free(url);
  free(data);
  stop();
  cleanup_root();
}

/* Make {ROOT}/.resumable/<sid>/ with an empty data file and, unless
 * meta is NULL, that meta text; its files and itself dated `age` seconds
 * ago (negative: in the future). */
static void make_session_dir(const char *sid, const char *meta, double age) {
  char dir[4096], f[4200];
  snprintf(dir, sizeof dir, "%s/.resumable", ROOT);
  mkdir(dir, 0700);
  snprintf(dir, sizeof dir, "%s/.resumable/%s", ROOT, sid);
  CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
  struct timeval tv[2];
  gettimeofday(&tv[0], NULL);
  tv[0].tv_sec -= (time_t)age;
  tv[1] = tv[0];
  snprintf(f, sizeof f, "%s/data", dir);
  FILE *fp = fopen(f, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
  fclose(fp);
  CU_ASSERT_EQUAL(utimes(f, tv), 0);
  if (meta) {
    snprintf(f, sizeof f, "%s/meta", dir);
    fp = fopen(f, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputs(meta, fp);
    fclose(fp);
    CU_ASSERT_EQUAL(utimes(f, tv), 0);
  }
  CU_ASSERT_EQUAL(utimes(dir, tv), 0);
}

/* Sessions expire session_ttl after their start: a request after that
 * gets 404, even while an older request still holds the session, and
 * the first lookup once none holds it removes the bytes; a server started
 * on the root removes the expired sessions there at once (and a session
 * folder left without meta, once as old), and keeps the live ones. */
static void test_api_session_expiry(void) {
  unsigned char *data = random_data(2 * CH, 12);
  char xl[64];
  snprintf(xl, sizeof xl, "X-Upload-Content-Length: %d", 2 * CH);
  const char *sh[] = {"x-goog-resumable: start", "Content-Type: image/jpeg",
                      xl, NULL};

  /* 2 s: the start and a chunk fit well inside, even under a sanitizer */
  API_SESSION_TTL = 2;
  start_api();
  char *url = bks_server_sign_storage_url(S, "uploads/expires", "image/*", 600);
  char *surl = start_session(url, sh);
  hres r = put_chunk(surl, data, 0, CH - 1, "*");
  assert_308(&r, CH);
  CU_ASSERT_TRUE(file_exists("%s/.resumable/%s", ROOT, sid_of(surl), NULL));
  /* a chunk that stalls (a raw socket sends part of it) holds the session
   * past its time */
  int fd = raw_connect(bks_server_port(S));
  CU_ASSERT_FATAL(fd >= 0);
  char head[1024];
  snprintf(head, sizeof head,
           "PUT %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
           "Content-Length: %d\r\nContent-Range: bytes %d-%d/*\r\n\r\n",
           strstr(surl + 7, "/"), (unsigned)bks_server_port(S), CH, CH,
           2 * CH - 1);
  CU_ASSERT_EQUAL(send_all(fd, head, strlen(head)), 0);
  CU_ASSERT_EQUAL(send_all(fd, data + CH, 100000), 0);
  CU_ASSERT_EQUAL(wait_offset(sid_of(surl), CH + 100000), CH + 100000);
  sleep_s(2.2);
  /* expired: none for a new request, though one still holds it */
  r = put_chunk(surl, data, CH, 2 * CH - 1, "*");
  assert_xml(&r, 404, "NoSuchUpload");
  CU_ASSERT_EQUAL(bks_server_upload_offset(S, sid_of(surl), NULL), -1);
  CU_ASSERT_TRUE(file_exists("%s/.resumable/%s", ROOT, sid_of(surl), NULL));
  /* the stalled request ends; the next lookup removes the session */
  close(fd);
  int gone = 0;
  for (int i = 0; i < 500 && !gone; i++) {
    r = query(surl, "*");
    assert_xml(&r, 404, "NoSuchUpload");
    gone = !file_exists("%s/.resumable/%s", ROOT, sid_of(surl), NULL);
    if (!gone)
      sleep_s(0.02);
  }
  CU_ASSERT_TRUE(gone);
  stop();
  free(surl);
  free(url);

  /* a session of a week's server, half sent */
  API_SESSION_TTL = 0;
  start_api();
  url = bks_server_sign_storage_url(S, "uploads/swept", "image/*", 600);
  surl = start_session(url, sh);
  r = put_chunk(surl, data, 0, CH - 1, "*");
  assert_308(&r, CH);
  stop();
  /* a server with a minute's lifetime keeps it, whole */
  API_SESSION_TTL = 60;
  start_api();
  CU_ASSERT_TRUE(file_exists("%s/.resumable/%s", ROOT, sid_of(surl), NULL));
  CU_ASSERT_EQUAL(bks_server_upload_offset(S, sid_of(surl), NULL), CH);
  stop();
  /* one with half a second's, started after it, removes it at start;
   * and so a session from before created_ms (dated by its meta file) and
   * a folder left without meta, both an hour old, but not the same two
   * dated a minute ahead */
  static const char *const legacy_meta =
      "{\"key\":\"uploads/legacy\",\"total\":-1,\"completed\":false}";
  const char *old_legacy = "00000000000000000000000000000001";
  const char *old_bare = "00000000000000000000000000000002";
  const char *new_legacy = "00000000000000000000000000000003";
  const char *new_bare = "00000000000000000000000000000004";
  make_session_dir(old_legacy, legacy_meta, 3600);
  make_session_dir(old_bare, NULL, 3600);
  make_session_dir(new_legacy, legacy_meta, -60);
  make_session_dir(new_bare, NULL, -60);
  sleep_s(0.7);
  API_SESSION_TTL = 0.5;
  start_api();
  CU_ASSERT_FALSE(file_exists("%s/.resumable/%s", ROOT, sid_of(surl), NULL));
  CU_ASSERT_EQUAL(bks_server_upload_offset(S, sid_of(surl), NULL), -1);
  CU_ASSERT_FALSE(file_exists("%s/.resumable/%s", ROOT, old_legacy, NULL));
  CU_ASSERT_FALSE(file_exists("%s/.resumable/%s", ROOT, old_bare, NULL));
  CU_ASSERT_TRUE(file_exists("%s/.resumable/%s", ROOT, new_legacy, NULL));
  CU_ASSERT_TRUE(file_exists("%s/.resumable/%s", ROOT, new_bare, NULL));
  CU_ASSERT_EQUAL(bks_server_upload_offset(S, new_legacy, NULL), 0);
  stop();
  API_SESSION_TTL = 0;
  free(surl);
  free(url);
  free(data);
  cleanup_root();
}

static void test_api_random_faults(void) {
  start_api();
  unsigned char *data = random_data(2 * CH, 9);
  const char *key = "uploads/faults";
  char *url = bks_server_sign_storage_url(S, key, "image/*", 60);
  const char *sh[] = {"x-goog-resumable: start", "Content-Type: image/jpeg",
                      NULL};
  char *surl = start_session(url, sh);
  bks_faults f = {.rate = 0, .status = 503, .reset_rate = 1, .seed = 7};
  bks_server_set_faults(S, &f);
  hres r = put_chunk(surl, data, 0, CH - 1, "524288");
  CU_ASSERT_NOT_EQUAL(r.rc, CURLE_OK);
  hres_free(&r);
  f.rate = 1;
  f.reset_rate = 0;
  bks_server_set_faults(S, &f);
  r = put_chunk(surl, data, CH / 2, 2 * CH - 1, "524288");
  assert_xml(&r, 503, "InjectedFault");
  f.rate = 0;
  bks_server_set_faults(S, &f);
  /* the reset kept half of the first chunk; the 503 appended nothing */
  r = query(surl, "524288");
  assert_308(&r, CH / 2);
  bks_counters c;
  bks_server_counters(S, &c);
  CU_ASSERT_EQUAL(c.faults_injected, 2);
  r = put_chunk(surl, data, CH / 2, 2 * CH - 1, "524288");
  CU_ASSERT_EQUAL(r.code, 200);
  hres_free(&r);
  char want[65], got[65];
  bk_sha256_hex(data, 2 * CH, want);
  CU_ASSERT_EQUAL(bks_server_object_sha256(S, key, got), 2 * CH);
  CU_ASSERT_STRING_EQUAL(got, want);
  free(surl);
  free(url);
  free(data);
  stop();
  cleanup_root();
}

static void test_api_takeover(void) {
  start_api();
  takeover(1);
  stop();
  cleanup_root();
}

static void reg(void) {
  bk_suite("raw", NULL, NULL);
  bk_test("start, chunks, queries, overlap, finish, records",
          test_raw_whole_upload);
  bk_test("Location follows the Host header and TLS", test_raw_host_header);
  bk_test("gap, length, malformed ranges, totals, unknown sessions",
          test_raw_refusals);
  bk_test("cancel, server reset, empty object", test_raw_cancel_and_reset);
  bk_test("Content-MD5 of the whole object", test_raw_content_md5);
  bk_test("scripted faults: reset mid-body keeps its bytes",
          test_raw_reset_mid_body);
  bk_test("chunks with Expect: 100-continue", test_raw_expect_continue);
  bk_test("takeover of a stalled chunk", test_raw_takeover);
  bk_suite("api", NULL, NULL);
  bk_test("signed start, disk session, object like a PUT",
          test_api_whole_upload);
  bk_test("start refused: expired, bad signature, content type",
          test_api_start_refused);
  bk_test("a restarted server keeps its sessions", test_api_restart);
  bk_test("sessions expire: 404 on lookup, removed at start",
          test_api_session_expiry);
  bk_test("random faults on chunk PUTs", test_api_random_faults);
  bk_test("takeover of a stalled chunk", test_api_takeover);
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return 2;
  int rc = bk_test_main(argc, argv, reg);
  curl_global_cleanup();
  return rc;
}
