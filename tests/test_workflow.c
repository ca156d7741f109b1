/* The whole workflow (api.c, workflow.c) against the reference server
 * (src/server) running in-process on a port the OS picks: real signature
 * verification, signed storage URLs, image groups and jobs, with the
 * server's scripts and random faults for the unhappy paths, and its request
 * log to see what the client really did and in which order. */
#include "bk_test.h"
#include "bks_server.h"
#include "internal.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static bks_server *srv;
static char *tmp;
static char *key_pem; /* the client's key, PEM PKCS#8 */

/* ---- fixtures ------------------------------------------------------------ */

static EVP_PKEY *key_from_seed(unsigned char first) {
  unsigned char seed[32];
  for (int i = 0; i < 32; i++)
    seed[i] = (unsigned char)(first + i);
  return EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
}

static char *pem_of(EVP_PKEY *k) {
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL);
  char *p;
  long n = BIO_get_mem_data(bio, &p);
  char *out = strndup(p, (size_t)n);
  BIO_free(bio);
  return out;
}

static bks_server *start_server(int tls) {
  bks_config cfg;
  bks_config_init(&cfg);
  cfg.job_pending = 0.05;
  cfg.tls = tls;
  bks_server *s = NULL;
  char err[256];
  if (bks_server_start(&s, &cfg, err, sizeof err) != 0) {
    fprintf(stderr, "bks_server_start: %s\n", err);
    return NULL;
  }
  EVP_PKEY *k = key_from_seed(1);
  unsigned char pub[32];
  size_t pl = 32;
  EVP_PKEY_get_raw_public_key(k, pub, &pl);
  EVP_PKEY_free(k);
  if (bks_server_add_key(s, "k1", pub) != 0) {
    bks_server_stop(s);
    return NULL;
  }
  return s;
}

static int suite_init(void) {
  srv = start_server(0);
  tmp = bk_tmpdir("workflow");
  EVP_PKEY *k = key_from_seed(1);
  key_pem = pem_of(k);
  EVP_PKEY_free(k);
  return srv && tmp && key_pem ? 0 : -1;
}

static int suite_clean(void) {
  bks_server_stop(srv);
  bk_rm_rf(tmp);
  free(tmp);
  free(key_pem);
  return 0;
}

static void api_options(bulkup_api_options *o, bks_server *s) {
  bulkup_api_options_init(o);
  static char url[256];
  char *u = bks_server_url(s, NULL);
  snprintf(url, sizeof url, "%s", u);
  free(u);
  o->base_url = url;
  o->key_id = "k1";
  o->key_pem = key_pem;
  o->key_pem_len = strlen(key_pem);
  o->requests.backoff_factor = 0.01;
  o->requests.connect_timeout = 5;
  o->requests.read_timeout = 5;
  o->requests.write_timeout = 5;
  o->ca_file = bks_server_ca_file(s);
}

static bulkup_api *new_api(bks_server *s) {
  bulkup_api_options o;
  api_options(&o, s);
  bulkup_api *api = NULL;
  CU_ASSERT_EQUAL_FATAL(bulkup_api_new(&api, &o), BULKUP_OK);
  return api;
}

static void wf_options(bulkup_workflow_options *o) {
  bulkup_workflow_options_init(o);
  o->title = "test group";
  o->poll_interval = 0.02;
  o->poll_interval_max = 0.1;
  o->poll_timeout = 30;
  o->upload.workers = 2;
  o->upload.requests.backoff_factor = 0.01;
  o->upload.requests.connect_timeout = 5;
  o->upload.requests.read_timeout = 5;
  o->upload.requests.write_timeout = 5;
}

/* n files "<tag>-NNNN.png" of seeded bytes (sizes 1..2000); the paths
 * array is malloc'ed, NULL-free. */
static char **make_files(const char *tag, size_t n) {
  char **paths = calloc(n, sizeof *paths);
  unsigned char buf[2048];
  for (size_t i = 0; i < n; i++) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s-%04zu.png", tmp, tag, i);
    size_t size = 1 + (i * 131) % 2000;
    bk_fill_random(buf, size, 1000 + i);
    CU_ASSERT_FATAL(bk_write_file(p, buf, size) == 0);
    paths[i] = strdup(p);
  }
  return paths;
}

static void free_files(char **paths, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unlink(paths[i]);
    free(paths[i]);
  }
  free(paths);
}

static const char *base(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

static void counters(bks_counters *c) { bks_server_counters(srv, c); }

static size_t count_endpoint(bks_server *s, bks_endpoint ep) {
  size_t n = bks_server_request_count(s), k = 0;
  for (size_t i = 0; i < n; i++) {
    bks_request r;
    if (bks_server_request_get(s, i, &r) == 0 && r.endpoint == ep)
      k++;
  }
  return k;
}

static void assert_report_complete(const bulkup_report *rep) {
  CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.succeeded + s.failed + s.cancelled, s.submitted);
  CU_ASSERT_EQUAL(bulkup_report_failure_count(rep), s.failed);
  CU_ASSERT_EQUAL(bulkup_report_cancelled_count(rep), s.cancelled);
}

/* ---- happy paths ---------------------------------------------------------- */

/* 450 paths: three presign requests of 200, 200 and 50, fetched while the
 * uploads run, never more URLs outstanding than the queue can hold plus
 * the workers plus one batch; a group of all 450 in input order. */
static void test_group_batches_pipelined(void) {
  bks_server_reset(srv);
  enum { N = 450, QCAP = 16, WORKERS = 2 };
  char **paths = make_files("pipe", N);
  bulkup_api *api = new_api(srv);
  bulkup_workflow_options o;
  wf_options(&o);
  o.upload.workers = WORKERS;
  o.upload.queue_capacity = QCAP;
  bulkup_image_group *g = NULL;
  bulkup_report *rep = NULL;
  bulkup_err rc = bulkup_create_image_group(
      api, &o, (const char *const *)paths, N, &g, &rep);
  if (rc != BULKUP_OK)
    fprintf(stderr, "create_image_group: %s\n", bulkup_last_error_message());
  CU_ASSERT_EQUAL_FATAL(rc, BULKUP_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(g);
  assert_report_complete(rep);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.submitted, N);
  CU_ASSERT_EQUAL(s.succeeded, N);

  /* The result: every image, in input order, titled by basename. */
  CU_ASSERT_EQUAL_FATAL(bulkup_image_group_count(g), N);
  CU_ASSERT(strlen(bulkup_image_group_process_hash(g)) > 0);
  for (size_t i = 0; i < N; i++) {
    CU_ASSERT_STRING_EQUAL(bulkup_image_group_title(g, i), base(paths[i]));
    CU_ASSERT(strlen(bulkup_image_group_data_hash(g, i)) > 0);
  }
  CU_ASSERT_PTR_NULL(bulkup_image_group_title(g, N));

  bks_counters c;
  counters(&c);
  CU_ASSERT_EQUAL(c.presign_requests, 3);
  CU_ASSERT_EQUAL(c.urls_issued, N);
  CU_ASSERT_EQUAL(c.objects_stored, N);
  CU_ASSERT_EQUAL(c.groups_created, 1);
  CU_ASSERT_EQUAL(c.auth_failures, 0);

  /* The log, in order: batch sizes, and URLs outstanding when each batch
   * was asked for. */
  size_t nreq = bks_server_request_count(srv);
  size_t issued = 0, stored = 0, batches = 0;
  size_t want[3] = {200, 200, 50};
  for (size_t i = 0; i < nreq; i++) {
    bks_request r;
    CU_ASSERT_FATAL(bks_server_request_get(srv, i, &r) == 0);
    if (r.endpoint == BKS_EP_PRESIGN) {
      unsigned cnt = 0;
      char type[32] = "";
      CU_ASSERT_EQUAL(sscanf(r.query, "count=%u&upload_item_type=%31s", &cnt,
                             type),
                      2);
      CU_ASSERT_STRING_EQUAL(type, "IMAGE");
      CU_ASSERT_FATAL(batches < 3);
      CU_ASSERT_EQUAL(cnt, want[batches]);
      /* Before each batch the previous ones are all submitted, and only
       * the queue and the workers hold unfinished items. */
      CU_ASSERT(issued - stored <= QCAP + WORKERS);
      if (issued - stored > QCAP + WORKERS)
        fprintf(stderr, "batch %zu asked with %zu URLs outstanding\n",
                batches, issued - stored);
      issued += cnt;
      batches++;
    } else if (r.endpoint == BKS_EP_STORAGE && r.status == 200) {
      stored++;
    }
  }
  CU_ASSERT_EQUAL(batches, 3);
  CU_ASSERT_EQUAL(stored, N);

  bulkup_image_group_free(g);
  bulkup_report_free(rep);
  bulkup_api_free(api);
  free_files(paths, N);
}

/* Plain mode, another data type: every key names an object whose bytes are
 * the file's. */
static void test_upload_keys(void) {
  bks_server_reset(srv);
  enum { N = 30 };
  char **paths = make_files("keys", N);
  bulkup_api *api = new_api(srv);
  bulkup_workflow_options o;
  wf_options(&o);
  o.upload.workers = 4;
  bulkup_upload_keys *k = NULL;
  bulkup_report *rep = NULL;
  CU_ASSERT_EQUAL_FATAL(bulkup_api_upload(api, &o, (const char *const *)paths,
                                          N, BULKUP_DATA_TYPE_VIDEO, &k, &rep),
                        BULKUP_OK);
  assert_report_complete(rep);
  CU_ASSERT_EQUAL_FATAL(bulkup_upload_keys_count(k), N);
  for (size_t i = 0; i < N; i++) {
    bulkup_uploaded u;
    CU_ASSERT_EQUAL_FATAL(bulkup_upload_keys_get(k, i, &u), BULKUP_OK);
    CU_ASSERT(u.submitted);
    CU_ASSERT_EQUAL(u.status, BULKUP_ITEM_SUCCEEDED);
    CU_ASSERT_PTR_NOT_NULL_FATAL(u.object_key);
    CU_ASSERT_PTR_NOT_NULL(u.item_uuid);
    char want[65], got[65];
    CU_ASSERT_FATAL(bk_sha256_file_hex(paths[i], want) == 0);
    struct stat st;
    stat(paths[i], &st);
    CU_ASSERT_EQUAL(bks_server_object_sha256(srv, u.object_key, got),
                    (long long)st.st_size);
    CU_ASSERT_STRING_EQUAL(got, want);
  }
  bulkup_uploaded u;
  CU_ASSERT_EQUAL(bulkup_upload_keys_get(k, N, &u), BULKUP_EINVAL);
  /* VIDEO: the engine sent application/octet-stream, the server's pattern. */
  size_t nreq = bks_server_request_count(srv);
  for (size_t i = 0; i < nreq; i++) {
    bks_request r;
    bks_server_request_get(srv, i, &r);
    if (r.endpoint == BKS_EP_STORAGE)
      CU_ASSERT_STRING_EQUAL(r.content_type, "application/octet-stream");
    if (r.endpoint == BKS_EP_PRESIGN)
      CU_ASSERT_PTR_NOT_NULL(strstr(r.query, "upload_item_type=VIDEO"));
  }
  bulkup_upload_keys_free(k);
  bulkup_report_free(rep);
  bulkup_api_free(api);
  free_files(paths, N);
}

static void test_tls(void) {
  bks_server *ts = start_server(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ts);
  CU_ASSERT_PTR_NOT_NULL_FATAL(bks_server_ca_file(ts));
  enum { N = 5 };
  char **paths = make_files("tls", N);
  bulkup_api *api = new_api(ts);
  bulkup_workflow_options o;
  wf_options(&o);
  o.upload.ca_file = bks_server_ca_file(ts);
  bulkup_image_group *g = NULL;
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &o,
                                            (const char *const *)paths, N, &g,
                                            NULL),
                  BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_image_group_count(g), N);
  bulkup_image_group_free(g);
  bulkup_api_free(api);
  /* Without the CA, the API refuses the certificate (no retry). */
  bulkup_api_options ao;
  api_options(&ao, ts);
  ao.ca_file = NULL;
  CU_ASSERT_EQUAL_FATAL(bulkup_api_new(&api, &ao), BULKUP_OK);
  bulkup_signed_url *v;
  size_t n;
  CU_ASSERT_EQUAL(bulkup_api_presign(api, BULKUP_DATA_TYPE_IMAGE, 1, &v, &n),
                  BULKUP_ECURL);
  bulkup_api_free(api);
  bks_server_stop(ts);
  free_files(paths, N);
}

/* ---- checks before any traffic -------------------------------------------- */

static void test_missing_path_before_any_request(void) {
  bks_server_reset(srv);
  char **paths = make_files("missing", 3);
  unlink(paths[1]);
  bulkup_api *api = new_api(srv);
  bulkup_workflow_options o;
  wf_options(&o);
  bulkup_image_group *g = NULL;
  bulkup_report *rep = (bulkup_report *)1;
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &o,
                                            (const char *const *)paths, 3, &g,
                                            &rep),
                  BULKUP_ENOENT);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), paths[1]));
  CU_ASSERT_PTR_NULL(g);
  CU_ASSERT_PTR_NULL(rep);
  /* A directory is not a file either. */
  const char *dirs[] = {tmp};
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &o, dirs, 1, &g, NULL),
                  BULKUP_EINVAL);
  CU_ASSERT_EQUAL(bks_server_request_count(srv), 0);
  bulkup_api_free(api);
  free_files(paths, 3);
}

static void test_wrong_key_refused(void) {
  bks_server_reset(srv);
  bulkup_api_options o;
  api_options(&o, srv);
  EVP_PKEY *k = key_from_seed(77);
  char *pem = pem_of(k);
  EVP_PKEY_free(k);
  o.key_pem = pem;
  o.key_pem_len = strlen(pem);
  bulkup_api *api;
  CU_ASSERT_EQUAL_FATAL(bulkup_api_new(&api, &o), BULKUP_OK);
  char **paths = make_files("wrongkey", 2);
  bulkup_workflow_options wo;
  wf_options(&wo);
  bulkup_image_group *g = NULL;
  bulkup_report *rep = NULL;
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &wo,
                                            (const char *const *)paths, 2, &g,
                                            &rep),
                  BULKUP_EHTTP);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "HTTP 401"));
  assert_report_complete(rep);
  bks_counters c;
  counters(&c);
  CU_ASSERT_EQUAL(c.auth_failures, 1); /* 401 is not retried */
  CU_ASSERT_EQUAL(count_endpoint(srv, BKS_EP_STORAGE), 0);
  bulkup_report_free(rep);
  bulkup_api_free(api);
  free(pem);
  free_files(paths, 2);
}

/* ---- hostile or broken API answers ----------------------------------------- */

/* Script the next presign answer: 200 with `body`. */
static void script_presign(const char *body) {
  bks_action a = {.fault = BKS_FAULT_STATUS,
                  .status = 200,
                  .headers = "Content-Type: application/json\r\n",
                  .body = body};
  bks_server_script(srv, "/v2/public/presigned-urls", &a, 1);
}

/* Run a 3-file group against a scripted presign answer; expect `want`. */
static void expect_refused(const char *body, bulkup_err want,
                           const char *msg_part, size_t max_response) {
  bks_server_reset(srv);
  script_presign(body);
  char **paths = make_files("hostile", 3);
  bulkup_api_options ao;
  api_options(&ao, srv);
  ao.max_response_size = max_response;
  bulkup_api *api;
  CU_ASSERT_EQUAL_FATAL(bulkup_api_new(&api, &ao), BULKUP_OK);
  bulkup_workflow_options o;
  wf_options(&o);
  bulkup_image_group *g = NULL;
  bulkup_report *rep = NULL;
  bulkup_err rc = bulkup_create_image_group(api, &o,
                                            (const char *const *)paths, 3, &g,
                                            &rep);
  CU_ASSERT_EQUAL(rc, want);
  if (rc != want || !strstr(bulkup_last_error_message(), msg_part))
    fprintf(stderr, "body %.60s: rc %s, '%s'\n", body, bulkup_err_name(rc),
            bulkup_last_error_message());
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), msg_part));
  CU_ASSERT_PTR_NULL(g);
  assert_report_complete(rep);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.submitted, 0);
  CU_ASSERT_EQUAL(count_endpoint(srv, BKS_EP_STORAGE), 0);
  CU_ASSERT_EQUAL(count_endpoint(srv, BKS_EP_PRESIGN), 1);
  bulkup_report_free(rep);
  bulkup_api_free(api);
  free_files(paths, 3);
}

static void test_foreign_schemes_refused(void) {
  static const char *schemes[] = {"file://", "FILE://", "ftp://", "gopher://",
                                  "dict://", "scp://", "ldap://", ""};
  for (size_t i = 0; i < BK_ARRAY_LEN(schemes); i++) {
    char target[1024], body[4096];
    snprintf(target, sizeof target, "%s/hostile-target-%zu", tmp, i);
    snprintf(body, sizeof body,
             "{\"results\": ["
             "{\"item_uuid\": \"a\", \"object_key\": \"uploads/a\", "
             "\"signed_url\": \"%s%s\"},"
             "{\"item_uuid\": \"b\", \"object_key\": \"uploads/b\", "
             "\"signed_url\": \"%s%s\"},"
             "{\"item_uuid\": \"c\", \"object_key\": \"uploads/c\", "
             "\"signed_url\": \"%s%s\"}]}",
             schemes[i], target, schemes[i], target, schemes[i], target);
    expect_refused(body, BULKUP_EPROTOCOL, "not an http or https URL", 0);
    /* Nothing was written locally. */
    CU_ASSERT_EQUAL(access(target, F_OK), -1);
  }
}

static void test_count_mismatch_and_bad_shapes(void) {
  const char *entry = "{\"item_uuid\": \"a\", \"object_key\": \"uploads/a\", "
                      "\"signed_url\": \"http://127.0.0.1:1/storage/x\"}";
  char body[2048];
  snprintf(body, sizeof body, "{\"results\": [%s, %s]}", entry, entry);
  expect_refused(body, BULKUP_EPROTOCOL, "asked for 3 signed URLs, the API "
                 "returned 2", 0);
  snprintf(body, sizeof body, "{\"results\": [%s, %s, %s, %s]}", entry, entry,
           entry, entry);
  expect_refused(body, BULKUP_EPROTOCOL, "returned 4", 0);
  expect_refused("{\"results\": []}", BULKUP_EPROTOCOL, "returned 0", 0);
  expect_refused("not json", BULKUP_EPROTOCOL, "not valid JSON", 0);
  expect_refused("{\"results\": [", BULKUP_EPROTOCOL, "not valid JSON", 0);
  expect_refused("", BULKUP_EPROTOCOL, "not valid JSON", 0);
  expect_refused("{\"results\": {}}", BULKUP_EPROTOCOL, "\"results\" array",
                 0);
  expect_refused("[1, 2, 3]", BULKUP_EPROTOCOL, "\"results\" array", 0);
  expect_refused("{\"results\": [1, 2, 3]}", BULKUP_EPROTOCOL,
                 "lacks a valid", 0);
  expect_refused("{\"results\": [{\"item_uuid\": 1, \"object_key\": \"k\", "
                 "\"signed_url\": \"http://h/\"}, {}, {}]}",
                 BULKUP_EPROTOCOL, "lacks a valid", 0);
  expect_refused("{\"results\": [{\"item_uuid\": \"u\", \"object_key\": "
                 "\"k\\u0000x\", \"signed_url\": \"http://h/\"}, {}, {}]}",
                 BULKUP_EPROTOCOL, "lacks a valid", 0);
  snprintf(body, sizeof body, "{\"results\": [%s, %s, %s]} trailing", entry,
           entry, entry);
  expect_refused(body, BULKUP_EPROTOCOL, "trailing data", 0);
  /* Nesting deeper than the parser allows. */
  char deep[600];
  memset(deep, '[', 500);
  deep[500] = '\0';
  expect_refused(deep, BULKUP_EPROTOCOL, "not valid JSON", 0);
}

static void test_oversized_answer_refused(void) {
  /* A valid-looking answer padded past the cap. */
  size_t pad = 100000;
  char *body = malloc(pad + 100);
  strcpy(body, "{\"results\": [], \"pad\": \"");
  size_t l = strlen(body);
  memset(body + l, 'x', pad);
  strcpy(body + l + pad, "\"}");
  expect_refused(body, BULKUP_EPROTOCOL, "larger than 65536 bytes", 65536);
  free(body);
}

/* ---- storage failures --------------------------------------------------------- */

/* URLs signed for application/dicom while the client sends image/png: the
 * server refuses every PUT (403 SignatureDoesNotMatch), which the report
 * shows per item; no group. */
static void test_content_type_mismatch_reported(void) {
  bks_server_reset(srv);
  enum { N = 3 };
  char body[8192] = "{\"results\": [";
  for (int i = 0; i < N; i++) {
    char key[64];
    snprintf(key, sizeof key, "uploads/ctype-%d", i);
    char *u = bks_server_sign_storage_url(srv, key, "application/dicom", 600);
    char e[2048];
    snprintf(e, sizeof e,
             "%s{\"item_uuid\": \"ctype-%d\", \"object_key\": \"%s\", "
             "\"signed_url\": \"%s\"}",
             i ? ", " : "", i, key, u);
    strcat(body, e);
    free(u);
  }
  strcat(body, "]}");
  script_presign(body);
  char **paths = make_files("ctype", N);
  bulkup_api *api = new_api(srv);
  bulkup_workflow_options o;
  wf_options(&o);
  bulkup_image_group *g = NULL;
  bulkup_report *rep = NULL;
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &o,
                                            (const char *const *)paths, N, &g,
                                            &rep),
                  BULKUP_EUPLOAD);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(),
                                "image group was not created"));
  assert_report_complete(rep);
  CU_ASSERT_EQUAL_FATAL(bulkup_report_failure_count(rep), N);
  for (size_t i = 0; i < N; i++) {
    const bulkup_result *r = bulkup_report_failure(rep, i);
    CU_ASSERT_EQUAL(r->index, i);
    CU_ASSERT_EQUAL(r->http_status, 403);
    CU_ASSERT_EQUAL(r->attempts, 1); /* permanent, and not "expired" */
    CU_ASSERT_EQUAL(r->error, BULKUP_ERROR_HTTP_STATUS);
    CU_ASSERT_PTR_NOT_NULL(strstr(r->response_excerpt,
                                  "SignatureDoesNotMatch"));
    CU_ASSERT_STRING_EQUAL(r->path, paths[i]);
    /* The report never holds the signature. */
    CU_ASSERT_PTR_NULL(strstr(r->url, "signature=") &&
                               !strstr(r->url, "signature=REDACTED")
                           ? r->url
                           : NULL);
  }
  bks_counters c;
  counters(&c);
  CU_ASSERT_EQUAL(c.groups_created, 0);
  CU_ASSERT_EQUAL(count_endpoint(srv, BKS_EP_IMAGE_GROUP), 0);
  bulkup_report_free(rep);
  bulkup_api_free(api);
  free_files(paths, N);
}

/* Every URL of the first batch has expired: each item gets one fresh URL
 * (presign count=1, from the workers, concurrently), and the group names
 * the objects actually stored under the fresh keys. */
static void test_expired_urls_refreshed(void) {
  bks_server_reset(srv);
  enum { N = 24 };
  char *body = malloc(N * 1024 + 64);
  strcpy(body, "{\"results\": [");
  for (int i = 0; i < N; i++) {
    char key[64];
    snprintf(key, sizeof key, "uploads/expired-%d", i);
    char *u = bks_server_sign_storage_url(srv, key, "image/*", -60);
    char e[1024];
    snprintf(e, sizeof e,
             "%s{\"item_uuid\": \"expired-%d\", \"object_key\": \"%s\", "
             "\"signed_url\": \"%s\"}",
             i ? ", " : "", i, key, u);
    strcat(body, e);
    free(u);
  }
  strcat(body, "]}");
  script_presign(body);
  free(body);
  char **paths = make_files("expired", N);
  bulkup_api *api = new_api(srv);
  bulkup_workflow_options o;
  wf_options(&o);
  o.upload.workers = 4;
  bulkup_image_group *g = NULL;
  bulkup_report *rep = NULL;
  bulkup_err rc = bulkup_create_image_group(
      api, &o, (const char *const *)paths, N, &g, &rep);
  if (rc != BULKUP_OK)
    fprintf(stderr, "expired: %s\n", bulkup_last_error_message());
  CU_ASSERT_EQUAL_FATAL(rc, BULKUP_OK);
  assert_report_complete(rep);
  CU_ASSERT_EQUAL_FATAL(bulkup_image_group_count(g), N);
  for (size_t i = 0; i < N; i++)
    CU_ASSERT_STRING_EQUAL(bulkup_image_group_title(g, i), base(paths[i]));
  bks_counters c;
  counters(&c);
  CU_ASSERT_EQUAL(c.objects_stored, N);
  /* The scripted batch is not counted as a served presign; the N fresh
   * URLs are. */
  CU_ASSERT_EQUAL(c.requests[BKS_EP_PRESIGN], 1 + N);
  CU_ASSERT_EQUAL(c.presign_requests, N);
  CU_ASSERT_EQUAL(c.groups_created, 1);
  for (int i = 0; i < N; i++) {
    char key[64];
    snprintf(key, sizeof key, "uploads/expired-%d", i);
    CU_ASSERT_EQUAL(bks_server_object_sha256(srv, key, NULL), -1);
  }
  size_t nreq = bks_server_request_count(srv), refresh = 0, expired = 0;
  for (size_t i = 0; i < nreq; i++) {
    bks_request r;
    bks_server_request_get(srv, i, &r);
    if (r.endpoint == BKS_EP_PRESIGN &&
        strncmp(r.query, "count=1&", 8) == 0)
      refresh++;
    if (r.endpoint == BKS_EP_STORAGE && r.status == 403) {
      expired++;
      CU_ASSERT_STRING_EQUAL(r.error, "ExpiredToken");
    }
  }
  CU_ASSERT_EQUAL(refresh, N);
  CU_ASSERT_EQUAL(expired, N);
  bulkup_image_group_free(g);
  bulkup_report_free(rep);
  bulkup_api_free(api);
  free_files(paths, N);
}

/* The three allow_failures cases, with random 403s on storage PUTs. */
static bulkup_err run_with_faults(double rate, bool allow, size_t n,
                                  char ***paths_out, bulkup_image_group **g,
                                  bulkup_report **rep) {
  bks_server_reset(srv);
  bks_faults f = {.rate = rate, .status = 403, .seed = 42};
  bks_server_set_faults(srv, &f);
  *paths_out = make_files(allow ? "allow" : "noallow", n);
  bulkup_api *api = new_api(srv);
  bulkup_workflow_options o;
  wf_options(&o);
  o.upload.cloud.allow_failures = allow;
  bulkup_err rc = bulkup_create_image_group(
      api, &o, (const char *const *)*paths_out, n, g, rep);
  bks_faults none = {.status = 503};
  bks_server_set_faults(srv, &none);
  bulkup_api_free(api);
  return rc;
}

static void test_failures_not_allowed(void) {
  enum { N = 20 };
  char **paths;
  bulkup_image_group *g = NULL;
  bulkup_report *rep = NULL;
  bulkup_err rc = run_with_faults(0.5, false, N, &paths, &g, &rep);
  CU_ASSERT_EQUAL(rc, BULKUP_EUPLOAD);
  CU_ASSERT_PTR_NULL(g);
  assert_report_complete(rep);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.submitted, N); /* every failure is reported, not the first */
  CU_ASSERT(s.failed > 0);
  CU_ASSERT(s.succeeded > 0);
  bks_counters c;
  counters(&c);
  CU_ASSERT_EQUAL(c.groups_created, 0);
  CU_ASSERT_EQUAL(count_endpoint(srv, BKS_EP_IMAGE_GROUP), 0);
  bulkup_report_free(rep);
  free_files(paths, N);
}

static void test_failures_allowed_group_of_successes(void) {
  enum { N = 20 };
  char **paths;
  bulkup_image_group *g = NULL;
  bulkup_report *rep = NULL;
  bulkup_err rc = run_with_faults(0.5, true, N, &paths, &g, &rep);
  CU_ASSERT_EQUAL_FATAL(rc, BULKUP_OK);
  assert_report_complete(rep);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT(s.failed > 0);
  CU_ASSERT_EQUAL_FATAL(bulkup_image_group_count(g), s.succeeded);
  /* The successes in input order: every index not among the failures. */
  bool failed[N] = {false};
  for (size_t i = 0; i < bulkup_report_failure_count(rep); i++)
    failed[bulkup_report_failure(rep, i)->index] = true;
  size_t k = 0;
  for (size_t i = 0; i < N; i++) {
    if (failed[i])
      continue;
    CU_ASSERT_STRING_EQUAL(bulkup_image_group_title(g, k), base(paths[i]));
    k++;
  }
  CU_ASSERT_EQUAL(k, s.succeeded);
  bks_counters c;
  counters(&c);
  CU_ASSERT_EQUAL(c.groups_created, 1);
  bulkup_image_group_free(g);
  bulkup_report_free(rep);
  free_files(paths, N);
}

static void test_all_failed(void) {
  enum { N = 6 };
  char **paths;
  bulkup_image_group *g = NULL;
  bulkup_report *rep = NULL;
  bulkup_err rc = run_with_faults(1.0, true, N, &paths, &g, &rep);
  CU_ASSERT_EQUAL(rc, BULKUP_EALLFAILED);
  CU_ASSERT_STRING_EQUAL(bulkup_last_error_message(),
                         "All image uploads failed. Image group was not "
                         "created.");
  CU_ASSERT_PTR_NULL(g);
  assert_report_complete(rep);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.failed, N);
  bks_counters c;
  counters(&c);
  CU_ASSERT_EQUAL(c.groups_created, 0);
  bulkup_report_free(rep);
  free_files(paths, N);
}

/* The plain mode keeps the keys of the successes when others failed. */
static void test_upload_keys_with_failures(void) {
  bks_server_reset(srv);
  bks_faults f = {.rate = 0.5, .status = 403, .seed = 7};
  bks_server_set_faults(srv, &f);
  enum { N = 20 };
  char **paths = make_files("keysfail", N);
  bulkup_api *api = new_api(srv);
  bulkup_workflow_options o;
  wf_options(&o);
  bulkup_upload_keys *k = NULL;
  bulkup_report *rep = NULL;
  CU_ASSERT_EQUAL(bulkup_api_upload(api, &o, (const char *const *)paths, N,
                                    BULKUP_DATA_TYPE_IMAGE, &k, &rep),
                  BULKUP_EUPLOAD);
  bks_faults none = {.status = 503};
  bks_server_set_faults(srv, &none);
  CU_ASSERT_PTR_NOT_NULL_FATAL(k);
  assert_report_complete(rep);
  size_t ok = 0, bad = 0;
  for (size_t i = 0; i < N; i++) {
    bulkup_uploaded u;
    bulkup_upload_keys_get(k, i, &u);
    CU_ASSERT(u.submitted);
    if (u.status == BULKUP_ITEM_SUCCEEDED) {
      ok++;
      CU_ASSERT_PTR_NOT_NULL_FATAL(u.object_key);
      CU_ASSERT(bks_server_object_sha256(srv, u.object_key, NULL) >= 0);
    } else {
      bad++;
      CU_ASSERT_EQUAL(u.status, BULKUP_ITEM_FAILED);
      CU_ASSERT_PTR_NULL(u.object_key);
    }
  }
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(ok, s.succeeded);
  CU_ASSERT_EQUAL(bad, s.failed);
  CU_ASSERT(bad > 0 && ok > 0);
  bulkup_upload_keys_free(k);
  bulkup_report_free(rep);
  bulkup_api_free(api);
  free_files(paths, N);
}

/* ---- the group and the job ------------------------------------------------------ */

/* The image-group POST's answer is lost (the server creates the group but
 * the client times out): the retry carries the same Idempotency-Key and
 * gets the same job; exactly one group exists. */
static void test_group_post_retried_idempotently(void) {
  bks_server_reset(srv);
  enum { N = 4 };
  char **paths = make_files("idem", N);
  bulkup_api_options ao;
  api_options(&ao, srv);
  ao.requests.connect_timeout = 0.5;
  /* Every API request (presign, POST, job polls) must be answered within
   * these, or it is retried: a retried POST answered late would be
   * posted a third time. 1 s leaves a slow machine room; the first
   * POST's delay is far longer, and ends when the client gives up. */
  ao.requests.read_timeout = 1.0;
  ao.requests.write_timeout = 1.0;
  ao.requests.backoff_factor = 0.3;
  bulkup_api *api;
  CU_ASSERT_EQUAL_FATAL(bulkup_api_new(&api, &ao), BULKUP_OK);
  bks_action a = {.fault = BKS_FAULT_DELAY, .seconds = 10};
  bks_server_script(srv, "/v2/public/image-groups", &a, 1);
  bulkup_workflow_options o;
  wf_options(&o);
  bulkup_image_group *g = NULL;
  bulkup_err rc = bulkup_create_image_group(
      api, &o, (const char *const *)paths, N, &g, NULL);
  if (rc != BULKUP_OK)
    fprintf(stderr, "idempotent: %s\n", bulkup_last_error_message());
  CU_ASSERT_EQUAL_FATAL(rc, BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_image_group_count(g), N);
  /* The delayed first POST ends on the server once the client gave up
   * (long before its 10 s delay would; the wait stops short of that). */
  for (double end = bk_now() + 5; bk_now() < end;) {
    bks_counters c;
    counters(&c);
    if (c.groups_created + c.idempotent_replays >= 2)
      break;
    usleep(20000);
  }
  bks_counters c;
  counters(&c);
  CU_ASSERT_EQUAL(c.requests[BKS_EP_IMAGE_GROUP], 2);
  CU_ASSERT_EQUAL(c.groups_created, 1);
  CU_ASSERT_EQUAL(c.idempotent_replays, 1);
  bulkup_image_group_free(g);
  bulkup_api_free(api);
  free_files(paths, N);
}

/* The job ends in ERROR (the objects vanished between the POST and the
 * job's decision): the server's reasons reach the caller. */
typedef struct vanish_ctx {
  bks_server *s;
  atomic_int fired;
} vanish_ctx;

static void vanish_log(void *ud, bulkup_log_level level, const char *msg) {
  BK_UNUSED(level);
  vanish_ctx *v = ud;
  if (strstr(msg, "posted; job") && !atomic_exchange(&v->fired, 1))
    bks_server_reset(v->s); /* forgets every object of the memory store */
}

static void test_job_error(void) {
  bks_server_reset(srv);
  bks_server_set_job_pending(srv, 0.3);
  enum { N = 3 };
  char **paths = make_files("joberr", N);
  vanish_ctx v = {.s = srv};
  atomic_init(&v.fired, 0);
  bulkup_api_options ao;
  api_options(&ao, srv);
  ao.log = vanish_log;
  ao.log_level = BULKUP_LOG_INFO;
  ao.userdata = &v;
  bulkup_api *api;
  CU_ASSERT_EQUAL_FATAL(bulkup_api_new(&api, &ao), BULKUP_OK);
  bulkup_workflow_options o;
  wf_options(&o);
  bulkup_image_group *g = NULL;
  bulkup_report *rep = NULL;
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &o,
                                            (const char *const *)paths, N, &g,
                                            &rep),
                  BULKUP_EJOB);
  CU_ASSERT(atomic_load(&v.fired));
  const char *m = bulkup_last_error_message();
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "failed"));
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "object not found"));
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "images[0]"));
  CU_ASSERT_PTR_NULL(g);
  /* The uploads themselves succeeded: the report says so. */
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.succeeded, N);
  bks_server_set_job_pending(srv, 0.05);
  bulkup_report_free(rep);
  bulkup_api_free(api);
  free_files(paths, N);
}

static void test_job_poll_timeout(void) {
  bks_server_reset(srv);
  bks_server_set_job_pending(srv, 60);
  char **paths = make_files("polltimeout", 1);
  bulkup_api *api = new_api(srv);
  bulkup_workflow_options o;
  wf_options(&o);
  o.poll_timeout = 0.5;
  bulkup_image_group *g = NULL;
  double t0 = bk_now();
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &o,
                                            (const char *const *)paths, 1, &g,
                                            NULL),
                  BULKUP_ETIMEDOUT);
  CU_ASSERT(bk_now() - t0 < 10);
  CU_ASSERT(count_endpoint(srv, BKS_EP_JOB) >= 2);
  bks_server_set_job_pending(srv, 0.05);
  bulkup_api_free(api);
  free_files(paths, 1);
}

/* Three transient poll failures in a row are tolerated; a fourth is not.
 * The job id is known only once the POST answered: the API's log line
 * "... posted; job <id>" scripts that job's path. */
typedef struct pollfail_ctx {
  bks_server *s;
  int fails;
} pollfail_ctx;

static void pollfail_log(void *ud, bulkup_log_level level, const char *msg) {
  BK_UNUSED(level);
  pollfail_ctx *pc = ud;
  const char *j = strstr(msg, "posted; job ");
  if (!j)
    return;
  char path[512];
  snprintf(path, sizeof path, "/v2/public/image-groups/jobs/%s", j + 12);
  bks_action a[8];
  for (int i = 0; i < pc->fails; i++)
    a[i] = (bks_action){.fault = BKS_FAULT_STATUS, .status = 503};
  bks_server_script(pc->s, path, a, (size_t)pc->fails);
}

static void test_job_poll_transient_failures(void) {
  for (int fails = 3; fails <= 4; fails++) {
    bks_server_reset(srv);
    char **paths = make_files("pollfail", 2);
    pollfail_ctx pc = {.s = srv, .fails = fails};
    bulkup_api_options ao;
    api_options(&ao, srv);
    ao.log = pollfail_log;
    ao.log_level = BULKUP_LOG_INFO;
    ao.userdata = &pc;
    bulkup_api *api;
    CU_ASSERT_EQUAL_FATAL(bulkup_api_new(&api, &ao), BULKUP_OK);
    bulkup_workflow_options o;
    wf_options(&o);
    bulkup_image_group *g = NULL;
    bulkup_err rc = bulkup_create_image_group(
        api, &o, (const char *const *)paths, 2, &g, NULL);
    if (fails == 3) {
      CU_ASSERT_EQUAL(rc, BULKUP_OK);
      CU_ASSERT_EQUAL(bulkup_image_group_count(g), 2);
      CU_ASSERT_EQUAL(count_endpoint(srv, BKS_EP_JOB), 4);
    } else {
      CU_ASSERT_EQUAL(rc, BULKUP_EHTTP);
      CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(),
                                    "4 transient failures in a row"));
      CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "503"));
      CU_ASSERT_PTR_NULL(g);
      CU_ASSERT_EQUAL(count_endpoint(srv, BKS_EP_JOB), 4);
    }
    bulkup_image_group_free(g);
    bulkup_api_free(api);
    free_files(paths, 2);
  }
}

/* The job is cancelled on the server while the client polls. */
static void cancel_log(void *ud, bulkup_log_level level, const char *msg) {
  BK_UNUSED(level);
  const char *j = strstr(msg, "posted; job ");
  if (j)
    CU_ASSERT_EQUAL(bks_server_job_cancel((bks_server *)ud, j + 12), 0);
}

static void test_job_cancelled(void) {
  bks_server_reset(srv);
  bks_server_set_job_pending(srv, 5);
  char **paths = make_files("jobcancel", 2);
  bulkup_api_options ao;
  api_options(&ao, srv);
  ao.log = cancel_log;
  ao.log_level = BULKUP_LOG_INFO;
  ao.userdata = srv;
  bulkup_api *api;
  CU_ASSERT_EQUAL_FATAL(bulkup_api_new(&api, &ao), BULKUP_OK);
  bulkup_workflow_options o;
  wf_options(&o);
  bulkup_image_group *g = NULL;
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &o,
                                            (const char *const *)paths, 2, &g,
                                            NULL),
                  BULKUP_ECANCELED);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "cancelled"));
  CU_ASSERT_PTR_NULL(g);
  bks_server_set_job_pending(srv, 0.05);
  bulkup_api_free(api);
  free_files(paths, 2);
}

/* bulkup_api_presign on its own: bounds, and the triples it returns. */
static void test_presign_direct(void) {
  bks_server_reset(srv);
  bulkup_api *api = new_api(srv);
  bulkup_signed_url *v = (bulkup_signed_url *)1;
  size_t n = 99;
  CU_ASSERT_EQUAL(bulkup_api_presign(api, BULKUP_DATA_TYPE_IMAGE, 0, &v, &n),
                  BULKUP_EINVAL);
  CU_ASSERT_PTR_NULL(v);
  CU_ASSERT_EQUAL(n, 0);
  CU_ASSERT_EQUAL(bulkup_api_presign(api, BULKUP_DATA_TYPE_IMAGE, 201, &v, &n),
                  BULKUP_EINVAL);
  CU_ASSERT_EQUAL(bulkup_api_presign(api, BULKUP_DATA_TYPE_MISSING, 1, &v, &n),
                  BULKUP_EINVAL);
  CU_ASSERT_EQUAL(bks_server_request_count(srv), 0);
  CU_ASSERT_EQUAL_FATAL(bulkup_api_presign(api, BULKUP_DATA_TYPE_DICOM, 200,
                                           &v, &n),
                        BULKUP_OK);
  CU_ASSERT_EQUAL_FATAL(n, 200);
  for (size_t i = 0; i < n; i++) {
    CU_ASSERT_EQUAL(strncmp(v[i].object_key, "uploads/", 8), 0);
    CU_ASSERT_STRING_EQUAL(v[i].object_key + 8, v[i].item_uuid);
    CU_ASSERT_EQUAL(strncmp(v[i].signed_url, "http://", 7), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(v[i].signed_url, v[i].object_key));
  }
  bulkup_signed_urls_free(v, n);
  bulkup_signed_urls_free(NULL, 0);
  /* A transient 503 is retried; a 400 is not. */
  bks_action a[2] = {{.fault = BKS_FAULT_STATUS, .status = 503},
                     {.fault = BKS_FAULT_STATUS, .status = 503}};
  bks_server_script(srv, "/v2/public/presigned-urls", a, 2);
  CU_ASSERT_EQUAL(bulkup_api_presign(api, BULKUP_DATA_TYPE_IMAGE, 1, &v, &n),
                  BULKUP_OK);
  bulkup_signed_urls_free(v, n);
  bks_action b = {.fault = BKS_FAULT_STATUS,
                  .status = 400,
                  .body = "{\"error\": \"no such thing\"}"};
  bks_server_reset(srv);
  bks_server_script(srv, "/v2/public/presigned-urls", &b, 1);
  CU_ASSERT_EQUAL(bulkup_api_presign(api, BULKUP_DATA_TYPE_IMAGE, 1, &v, &n),
                  BULKUP_EHTTP);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(),
                                "HTTP 400: no such thing"));
  CU_ASSERT_EQUAL(bks_server_request_count(srv), 1);
  bulkup_api_free(api);
}

/* ---- the server goes away -------------------------------------------------------- */

typedef struct stopper {
  bks_server *s;
  atomic_int done;
  atomic_int stopped;
  int after;
} stopper;

static void stop_on_complete(void *ud, const bulkup_result *r) {
  BK_UNUSED(r);
  stopper *st = ud;
  if (atomic_fetch_add(&st->done, 1) + 1 == st->after &&
      !atomic_exchange(&st->stopped, 1))
    bks_server_stop(st->s);
}

static void test_server_stopped_mid_run(void) {
  bks_server *s2 = start_server(0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s2);
  enum { N = 300 };
  char **paths = make_files("stop", N);
  bulkup_api *api = new_api(s2);
  stopper st = {.s = s2, .after = 30};
  atomic_init(&st.done, 0);
  atomic_init(&st.stopped, 0);
  bulkup_workflow_options o;
  wf_options(&o);
  o.upload.queue_capacity = 8;
  o.upload.requests.connection_retries = 1;
  o.upload.requests.max_retries = 1;
  /* The server does not come back: give up after 1 s without a success
   * (an outage holds the uploads until then). */
  o.upload.no_progress_limit = 1;
  o.upload.on_complete = stop_on_complete;
  o.upload.userdata = &st;
  bulkup_image_group *g = NULL;
  bulkup_report *rep = NULL;
  bulkup_err rc = bulkup_create_image_group(
      api, &o, (const char *const *)paths, N, &g, &rep);
  CU_ASSERT(atomic_load(&st.stopped));
  CU_ASSERT_NOT_EQUAL(rc, BULKUP_OK);
  CU_ASSERT(rc == BULKUP_ECURL || rc == BULKUP_EUPLOAD ||
            rc == BULKUP_ETIMEDOUT);
  if (!(rc == BULKUP_ECURL || rc == BULKUP_EUPLOAD || rc == BULKUP_ETIMEDOUT))
    fprintf(stderr, "stopped: %s: %s\n", bulkup_err_name(rc),
            bulkup_last_error_message());
  CU_ASSERT_PTR_NULL(g);
  assert_report_complete(rep);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT(s.submitted <= 200); /* the second batch could not be fetched */
  CU_ASSERT(s.succeeded >= 30);
  CU_ASSERT(s.failed + s.cancelled > 0);
  bulkup_report_free(rep);
  bulkup_api_free(api);
  free_files(paths, N);
}

typedef struct canceller {
  bulkup_api *api;
  atomic_int done;
  atomic_int fired;
  int after;
} canceller;

static void cancel_on_complete(void *ud, const bulkup_result *r) {
  BK_UNUSED(r);
  canceller *c = ud;
  if (atomic_fetch_add(&c->done, 1) + 1 == c->after &&
      !atomic_exchange(&c->fired, 1))
    bulkup_api_cancel(c->api);
}

static void test_cancel_mid_upload(void) {
  enum { N = 300 };
  char **paths = make_files("cancel", N);
  bulkup_api *api = new_api(srv);
  bks_counters before, after;
  counters(&before);
  canceller c = {.api = api, .after = 20};
  atomic_init(&c.done, 0);
  atomic_init(&c.fired, 0);
  bulkup_workflow_options o;
  wf_options(&o);
  o.upload.queue_capacity = 8;
  o.upload.on_complete = cancel_on_complete;
  o.upload.userdata = &c;
  bulkup_image_group *g = NULL;
  bulkup_report *rep = NULL;
  bulkup_err rc = bulkup_create_image_group(
      api, &o, (const char *const *)paths, N, &g, &rep);
  CU_ASSERT(atomic_load(&c.fired));
  CU_ASSERT_EQUAL(rc, BULKUP_ECANCELED);
  CU_ASSERT_PTR_NULL(g);
  assert_report_complete(rep);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT(s.succeeded >= 20);
  CU_ASSERT(s.cancelled > 0);
  CU_ASSERT(s.submitted <= 200); /* no further batch was fetched */
  counters(&after);
  CU_ASSERT_EQUAL(after.groups_created, before.groups_created);
  /* The handle stays cancelled. */
  bulkup_signed_url *v = NULL;
  size_t n = 0;
  CU_ASSERT_EQUAL(bulkup_api_presign(api, BULKUP_DATA_TYPE_IMAGE, 1, &v, &n),
                  BULKUP_ECANCELED);
  bulkup_report_free(rep);
  bulkup_api_free(api);
  free_files(paths, N);
}

typedef struct poll_canceller {
  bulkup_api *api;
  atomic_int fired;
} poll_canceller;

static void cancel_when_posted(void *ud, bulkup_log_level level,
                               const char *msg) {
  BK_UNUSED(level);
  poll_canceller *c = ud;
  if (strstr(msg, "posted; job") && !atomic_exchange(&c->fired, 1))
    bulkup_api_cancel(c->api);
}

static void test_cancel_while_polling(void) {
  enum { N = 3 };
  char **paths = make_files("cancelpoll", N);
  bks_server_set_job_pending(srv, 30); /* the job would stay PENDING */
  bulkup_api_options ao;
  api_options(&ao, srv);
  poll_canceller c = {.api = NULL};
  atomic_init(&c.fired, 0);
  ao.log = cancel_when_posted;
  ao.log_level = BULKUP_LOG_INFO;
  ao.userdata = &c;
  bulkup_api *api = NULL;
  CU_ASSERT_EQUAL_FATAL(bulkup_api_new(&api, &ao), BULKUP_OK);
  c.api = api;
  bulkup_workflow_options o;
  wf_options(&o);
  o.poll_interval = 5; /* a long wait that the cancel must cut short */
  bulkup_image_group *g = NULL;
  bulkup_report *rep = NULL;
  double t0 = bk_now();
  bulkup_err rc = bulkup_create_image_group(
      api, &o, (const char *const *)paths, N, &g, &rep);
  double dt = bk_now() - t0;
  bks_server_set_job_pending(srv, 0.5);
  CU_ASSERT(atomic_load(&c.fired));
  CU_ASSERT_EQUAL(rc, BULKUP_ECANCELED);
  CU_ASSERT_PTR_NULL(g);
  CU_ASSERT(dt < 4.5); /* did not sit out the 5 s poll interval */
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.succeeded, N);
  bulkup_report_free(rep);
  bulkup_api_free(api);
  free_files(paths, N);
}

static void reg(void) {
  bk_suite("workflow", suite_init, suite_clean);
  bk_test("450 paths: 3 pipelined presign batches, one group",
          test_group_batches_pipelined);
  bk_test("plain upload: keys name the stored bytes", test_upload_keys);
  bk_test("bulkup_api_cancel mid-upload", test_cancel_mid_upload);
  bk_test("bulkup_api_cancel while polling the job", test_cancel_while_polling);
  bk_test("over TLS", test_tls);
  bk_test("missing path: error before any request",
          test_missing_path_before_any_request);
  bk_test("unknown key: 401, not retried", test_wrong_key_refused);
  bk_test("file://, ftp://, gopher://, dict:// URLs refused",
          test_foreign_schemes_refused);
  bk_test("count mismatch and malformed answers", test_count_mismatch_and_bad_shapes);
  bk_test("oversized answer refused", test_oversized_answer_refused);
  bk_test("content-type mismatch reported", test_content_type_mismatch_reported);
  bk_test("expired URLs refreshed, group uses the new keys",
          test_expired_urls_refreshed);
  bk_test("allow_failures false: no group", test_failures_not_allowed);
  bk_test("allow_failures true: group of the successes",
          test_failures_allowed_group_of_successes);
  bk_test("all failed", test_all_failed);
  bk_test("plain upload with failures keeps the successes' keys",
          test_upload_keys_with_failures);
  bk_test("group POST retried with the same Idempotency-Key",
          test_group_post_retried_idempotently);
  bk_test("job ERROR reasons", test_job_error);
  bk_test("job poll timeout", test_job_poll_timeout);
  bk_test("job poll transient failures", test_job_poll_transient_failures);
  bk_test("job CANCELLED", test_job_cancelled);
  bk_test("presign on its own", test_presign_direct);
  bk_test("server stopped mid-run", test_server_stopped_mid_run);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
