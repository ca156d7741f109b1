/* The Encord client (src/api/) and its four upload calls over real
 * sockets, against a scripted stand-in for the API: the fault-scripting
 * test server (tests/support/bk_ts.h) answers each API request with the
 * JSON of ENCORD_WIRE.md that the test scripts, and stores the storage
 * PUTs. Its request log shows what the client really sent: the presign
 * queries, the Content-Type of each PUT, the bytes of each v1 body
 * (SHA-256 compared with the json.dumps text written out here by hand from
 * §7 and §8), and how many attempts each request got (§10 and the
 * requests settings: issue 13 item 14).
 *
 * The signatures are checked byte for byte in test_sign.c (the spec's
 * vectors) and by the strict verifier of tests/encord/; this suite is
 * about the protocol's flow, payloads, answers and retries. */
#include "bk_test.h"
#include "bk_ts.h"
#include "internal.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define DATASET "6a8f3c2e-1d4b-4e59-9a7c-0b1e2f3a4d5c"
#define PRESIGN "/v2/public/presigned-urls"
#define V1 "/public"

static bk_ts *ts;
static char *tmp;
static char *key_pem;
static unsigned long uuid_counter;

/* ---- fixtures ------------------------------------------------------------ */

static int suite_init(void) {
  if (bk_ts_start(&ts, NULL) != 0)
    return -1;
  tmp = bk_tmpdir("workflow");
  unsigned char seed[32];
  for (int i = 0; i < 32; i++)
    seed[i] = (unsigned char)i;
  EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL);
  char *p;
  long n = BIO_get_mem_data(bio, &p);
  key_pem = strndup(p, (size_t)n);
  BIO_free(bio);
  EVP_PKEY_free(k);
  return tmp && key_pem ? 0 : -1;
}

static int suite_clean(void) {
  bk_ts_stop(ts);
  bk_rm_rf(tmp);
  free(tmp);
  free(key_pem);
  return 0;
}

/* API options: fast retries, short timeouts. */
static void api_options(bulkup_api_options *o) {
  bulkup_api_options_init(o);
  static char url[256];
  char *u = bk_ts_url(ts, NULL);
  snprintf(url, sizeof url, "%s", u);
  free(u);
  o->base_url = url;
  o->key_pem = key_pem;
  o->key_pem_len = strlen(key_pem);
  o->requests.backoff_factor = 0.01;
  o->requests.connect_timeout = 5;
  o->requests.read_timeout = 5;
  o->requests.write_timeout = 5;
}

static bulkup_api *new_api(void) {
  bulkup_api_options o;
  api_options(&o);
  bulkup_api *api = NULL;
  CU_ASSERT_EQUAL_FATAL(bulkup_api_new(&api, &o), BULKUP_OK);
  return api;
}

static void wf_options(bulkup_workflow_options *o) {
  bulkup_workflow_options_init(o);
  o->dataset_hash = DATASET;
  o->poll_timeout = 60;
  o->upload.workers = 4;
  o->upload.requests.backoff_factor = 0.01;
  o->upload.requests.connect_timeout = 5;
  o->upload.requests.read_timeout = 5;
  o->upload.requests.write_timeout = 5;
}

/* n files "<tag>-NNNN.<ext>" of seeded bytes (sizes 1..2000). */
static char **make_files(const char *tag, const char *ext, size_t n) {
  char **paths = calloc(n, sizeof *paths);
  unsigned char buf[2048];
  for (size_t i = 0; i < n; i++) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s-%04zu.%s", tmp, tag, i, ext);
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

/* A growing string. */
typedef struct sb {
  char *s;
  size_t n, cap;
} sb;

static void sb_add(sb *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (b->n + (size_t)k + 1 > b->cap) {
    b->cap = (b->n + (size_t)k + 1) * 2;
    b->s = realloc(b->s, b->cap);
  }
  va_start(ap, fmt);
  vsnprintf(b->s + b->n, (size_t)k + 1, fmt, ap);
  va_end(ap);
  b->n += (size_t)k;
}

/* The object key and the item uuid the scripted presign gives item k. */
static void item_ids(unsigned long k, char uuid[37], char key[64]) {
  snprintf(uuid, 37, "00000000-0000-4000-8000-%012lx", k);
  snprintf(key, 64, "bkt/%s", uuid);
}

/* Script one presign answer of `count` URLs (camelCase or snake_case);
 * returns the first item number it used. */
static unsigned long script_presign(size_t count, bool snake) {
  unsigned long first = ++uuid_counter;
  uuid_counter += count - 1;
  sb b = {0};
  sb_add(&b, "{\"results\": [");
  char *root = bk_ts_url(ts, NULL);
  for (size_t i = 0; i < count; i++) {
    char uuid[37], key[64];
    item_ids(first + i, uuid, key);
    if (snake)
      sb_add(&b, "%s{\"item_uuid\": \"%s\", \"object_key\": \"%s\", "
             "\"signed_url\": \"%s/%s?X-Goog-Signature=abc\"}",
             i ? ", " : "", uuid, key, root, key);
    else
      sb_add(&b, "%s{\"itemUuid\": \"%s\", \"objectKey\": \"%s\", "
             "\"signedUrl\": \"%s/%s?X-Goog-Signature=abc\", \"x\": 1}",
             i ? ", " : "", uuid, key, root, key);
  }
  sb_add(&b, "], \"nextPageToken\": null}");
  free(root);
  bk_ts_action a = {BK_TS_STATUS, 200, "Content-Type: application/json\r\n",
                    b.s, 0, 0};
  bk_ts_script(ts, PRESIGN, &a, 1);
  free(b.s);
  return first;
}

static void script_v1(int http, const char *body) {
  bk_ts_action a = {BK_TS_STATUS, http, "Content-Type: application/json\r\n",
                    body, 0, 0};
  bk_ts_script(ts, V1, &a, 1);
}

static void script_job_post(const char *ph) {
  char b[256];
  snprintf(b, sizeof b, "{\"status\": 200, \"response\": {\"process_hash\": "
           "\"%s\"}}", ph);
  script_v1(200, b);
}

#define COUNTS_DONE(n)                                                       \
  "\"units_pending_count\": 0, \"units_done_count\": " #n ", "               \
  "\"units_error_count\": 0, \"units_cancelled_count\": 0"

static void script_pending(void) {
  script_v1(200, "{\"status\": 200, \"response\": {\"status\": \"PENDING\", "
                 "\"data_hashes_with_titles\": [], \"errors\": [], "
                 "\"data_unit_errors\": [], \"units_pending_count\": 1, "
                 "\"units_done_count\": 0, \"units_error_count\": 0, "
                 "\"units_cancelled_count\": 0}}");
}

/* A DONE answer with `n` units titled t0, t1, ... (camelCase if asked). */
static void script_done(size_t n, const char *const *titles, bool camel) {
  sb b = {0};
  sb_add(&b, "{\"status\": 200, \"response\": {\"status\": \"DONE\", \"%s\": [",
         camel ? "dataHashesWithTitles" : "data_hashes_with_titles");
  for (size_t i = 0; i < n; i++)
    sb_add(&b, "%s{\"%s\": \"dh-%zu\", \"title\": \"%s\", \"%s\": "
           "\"10000000-0000-4000-8000-%012zx\"}", i ? ", " : "",
           camel ? "dataHash" : "data_hash", i, titles[i],
           camel ? "backingItemUuid" : "backing_item_uuid", i);
  if (camel)
    sb_add(&b, "], \"errors\": [], \"dataUnitErrors\": [], "
           "\"unitsPendingCount\": 0, \"unitsDoneCount\": %zu, "
           "\"unitsErrorCount\": 0, \"unitsCancelledCount\": 0}}", n);
  else
    sb_add(&b, "], \"errors\": [], \"data_unit_errors\": [], "
           "\"units_pending_count\": 0, \"units_done_count\": %zu, "
           "\"units_error_count\": 0, \"units_cancelled_count\": 0}}", n);
  script_v1(200, b.s);
  free(b.s);
}

/* The i-th recorded request to `path`, into *out; false if none. */
static bool nth_request(const char *path, size_t nth, bk_ts_request *out) {
  size_t n = bk_ts_request_count(ts), k = 0;
  for (size_t i = 0; i < n; i++) {
    if (bk_ts_request_get(ts, i, out) == 0 && strcmp(out->path, path) == 0 &&
        k++ == nth)
      return true;
  }
  return false;
}

/* Whether the body of the nth request to /public is exactly `want`. */
static void assert_v1_body(size_t nth, const char *want) {
  bk_ts_request r;
  CU_ASSERT_FATAL(nth_request(V1, nth, &r));
  char sha[65];
  bk_sha256_hex(want, strlen(want), sha);
  CU_ASSERT_STRING_EQUAL(r.method, "POST");
  CU_ASSERT_STRING_EQUAL(r.content_type, "application/json");
  CU_ASSERT_EQUAL(r.body_bytes, strlen(want));
  CU_ASSERT_STRING_EQUAL(r.body_sha256, sha);
  if (strcmp(r.body_sha256, sha) != 0)
    fprintf(stderr, "\nexpected body: %s\n", want);
}

/* The poll body of §8 for process hash `ph`. */
static char *poll_body(const char *ph, int secs) {
  sb b = {0};
  sb_add(&b, "{\"query_type\": \"datasetdatalongpolling\", \"query_method\": "
         "\"GET\", \"values\": {\"uid\": \"" DATASET "\", \"payload\": "
         "{\"process_hash\": \"%s\", \"timeout_seconds\": %d}}}", ph, secs);
  return b.s;
}

/* The eleven keys of dataItems around one kind's list (§7). */
static char *job_body(const char *videos, const char *groups,
                      const char *dicom, const char *images,
                      const char *folder) {
  sb b = {0};
  sb_add(&b, "{\"query_type\": \"datasetdatalongpolling\", \"query_method\": "
         "\"POST\", \"values\": {\"uid\": \"" DATASET "\", \"payload\": "
         "{\"dataItems\": {\"videos\": [%s], \"imageGroups\": [%s], "
         "\"dicomSeries\": [%s], \"images\": [%s], \"imageGroupsFromItems\": "
         "[], \"audio\": [], \"nifti\": [], \"text\": [], \"pdf\": [], "
         "\"skipDuplicateUrls\": false, \"upsertMetadata\": false}, "
         "\"ignoreErrors\": false", videos, groups, dicom, images);
  if (folder)
    sb_add(&b, ", \"folderUuid\": \"%s\"", folder);
  sb_add(&b, "}}}");
  return b.s;
}

/* Every stored object is its file, byte for byte. */
static void assert_stored(char **paths, size_t n, unsigned long first) {
  for (size_t i = 0; i < n; i++) {
    char uuid[37], key[64], want[65], got[65], p[80];
    item_ids(first + i, uuid, key);
    snprintf(p, sizeof p, "/%s", key);
    CU_ASSERT_EQUAL(bk_sha256_file_hex(paths[i], want), 0);
    long long sz = bk_ts_object_sha256(ts, p, got);
    CU_ASSERT(sz >= 0);
    if (sz >= 0)
      CU_ASSERT_STRING_EQUAL(got, want);
  }
}

/* ---- the four kinds ------------------------------------------------------- */

/* create_image_group of 450 files: three presign batches (200, 200, 50)
 * with the SDK's query, every PUT stored byte for byte as image/png, one
 * job POST naming every object key and basename in input order, untitled
 * (the SDK sends no title by default), createVideo and
 * clusterByResolution true; a PENDING poll then DONE. */
static void test_image_group_450(void) {
  bk_ts_reset(ts);
  const size_t n = 450;
  char **paths = make_files("g", "png", n);
  unsigned long first = script_presign(200, false);
  script_presign(200, true); /* the other casing: both are read */
  script_presign(50, false);
  script_job_post("p-450");
  script_pending();
  const char *t[1] = {"g-0000.png"};
  script_done(1, t, false);

  bulkup_api *api = new_api();
  bulkup_workflow_options wo;
  wf_options(&wo);
  bulkup_data_units *u = NULL;
  bulkup_report *rep = NULL;
  CU_ASSERT_EQUAL_FATAL(bulkup_create_image_group(api, &wo,
                                                  (const char *const *)paths,
                                                  n, &u, &rep), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_image_group_count(u), 1u);
  CU_ASSERT_STRING_EQUAL(bulkup_image_group_data_hash(u, 0), "dh-0");
  CU_ASSERT_STRING_EQUAL(bulkup_image_group_title(u, 0), "g-0000.png");
  CU_ASSERT_STRING_EQUAL(bulkup_image_group_process_hash(u), "p-450");
  CU_ASSERT_PTR_NULL(bulkup_image_group_file_link(u, 0)); /* a group */
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.succeeded, n);

  CU_ASSERT_EQUAL(bk_ts_count_path(ts, PRESIGN), 3u);
  bk_ts_request r;
  const char *q[3] = {"count=200&uploadItemType=image",
                      "count=200&uploadItemType=image",
                      "count=50&uploadItemType=image"};
  for (size_t i = 0; i < 3; i++) {
    CU_ASSERT_FATAL(nth_request(PRESIGN, i, &r));
    CU_ASSERT_STRING_EQUAL(r.method, "GET");
    CU_ASSERT_STRING_EQUAL(r.query, q[i]);
    CU_ASSERT_EQUAL(r.body_bytes, 0u);
    CU_ASSERT_EQUAL(r.content_length, -1); /* no body, no Content-Length */
  }
  assert_stored(paths, n, first);
  /* Every PUT: image/png, Cache-Control of the SDK, one attempt. */
  size_t puts = 0, total = bk_ts_request_count(ts);
  for (size_t i = 0; i < total; i++) {
    CU_ASSERT_EQUAL_FATAL(bk_ts_request_get(ts, i, &r), 0);
    if (strncmp(r.path, "/bkt/", 5) != 0)
      continue;
    puts++;
    CU_ASSERT_STRING_EQUAL(r.method, "PUT");
    CU_ASSERT_STRING_EQUAL(r.content_type, "image/png");
    CU_ASSERT_STRING_EQUAL(r.cache_control, "max-age=86400");
  }
  CU_ASSERT_EQUAL(puts, n);

  sb images = {0};
  for (size_t i = 0; i < n; i++) {
    char uuid[37], key[64];
    item_ids(first + i, uuid, key);
    sb_add(&images, "%s{\"url\": \"%s\", \"title\": \"%s\"}", i ? ", " : "",
           key, base(paths[i]));
  }
  sb group = {0};
  sb_add(&group, "{\"images\": [%s], \"clientMetadata\": {}, \"createVideo\": "
         "true, \"externalFileType\": \"IMG_GROUP\", \"clusterByResolution\": "
         "true}", images.s);
  char *want = job_body("", group.s, "", "", NULL);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, V1), 3u);
  assert_v1_body(0, want);
  char *pb = poll_body("p-450", 10);
  assert_v1_body(1, pb);
  assert_v1_body(2, pb);
  free(pb);
  free(want);
  free(images.s);
  free(group.s);
  bulkup_image_group_free(u);
  bulkup_report_free(rep);
  bulkup_api_free(api);
  free_files(paths, n);
}

/* A titled group without video, with a folder (sent canonical), that the
 * API splits into two data units (clusterByResolution): both reported,
 * the answer in camelCase. */
static void test_image_group_split_titled_folder(void) {
  bk_ts_reset(ts);
  char **paths = make_files("s", "jpg", 3);
  unsigned long first = script_presign(3, false);
  script_job_post("p-split");
  const char *t[2] = {"holiday", "holiday (2)"};
  script_done(2, t, true);
  bulkup_api *api = new_api();
  bulkup_workflow_options wo;
  wf_options(&wo);
  wo.title = "holiday";
  wo.create_video = false;
  wo.folder_uuid = "{0F0E0D0C-0B0A-4909-8807-060504030201}";
  bulkup_data_units *u = NULL;
  CU_ASSERT_EQUAL_FATAL(bulkup_create_image_group(api, &wo,
                                                  (const char *const *)paths,
                                                  3, &u, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL_FATAL(bulkup_image_group_count(u), 2u);
  CU_ASSERT_STRING_EQUAL(bulkup_image_group_title(u, 1), "holiday (2)");
  CU_ASSERT_STRING_EQUAL(bulkup_image_group_data_hash(u, 1), "dh-1");
  CU_ASSERT_STRING_EQUAL(bulkup_image_group_backing_item_uuid(u, 1),
                         "10000000-0000-4000-8000-000000000001");
  sb images = {0};
  for (size_t i = 0; i < 3; i++) {
    char uuid[37], key[64];
    item_ids(first + i, uuid, key);
    sb_add(&images, "%s{\"url\": \"%s\", \"title\": \"%s\"}", i ? ", " : "",
           key, base(paths[i]));
  }
  sb group = {0};
  sb_add(&group, "{\"images\": [%s], \"title\": \"holiday\", "
         "\"clientMetadata\": {}, \"createVideo\": false, "
         "\"externalFileType\": \"IMG_GROUP\", \"clusterByResolution\": "
         "false}", images.s);
  char *want = job_body("", group.s, "", "",
                        "0f0e0d0c-0b0a-4909-8807-060504030201");
  assert_v1_body(0, want);
  bk_ts_request r;
  CU_ASSERT_FATAL(nth_request(PRESIGN, 0, &r));
  CU_ASSERT_STRING_EQUAL(r.query, "count=3&uploadItemType=image");
  free(want);
  free(images.s);
  free(group.s);
  bulkup_image_group_free(u);
  bulkup_api_free(api);
  free_files(paths, 3);
}

/* create_dicom_series: dicomFile URLs, application/dicom, the
 * dicomSeries payload; exactly one data unit. */
static void test_dicom_series(void) {
  bk_ts_reset(ts);
  char **paths = make_files("d", "dcm", 4);
  unsigned long first = script_presign(4, false);
  script_job_post("p-dicom");
  const char *t[1] = {"ct"};
  script_done(1, t, false);
  bulkup_api *api = new_api();
  bulkup_workflow_options wo;
  wf_options(&wo);
  wo.title = "ct";
  bulkup_data_units *u = NULL;
  CU_ASSERT_EQUAL_FATAL(bulkup_create_dicom_series(api, &wo,
                                                   (const char *const *)paths,
                                                   4, &u, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_image_group_count(u), 1u);
  bk_ts_request r;
  CU_ASSERT_FATAL(nth_request(PRESIGN, 0, &r));
  CU_ASSERT_STRING_EQUAL(r.query, "count=4&uploadItemType=dicomFile");
  char uuid[37], key[64], p[80];
  item_ids(first, uuid, key);
  snprintf(p, sizeof p, "/%s", key);
  CU_ASSERT_FATAL(nth_request(p, 0, &r));
  CU_ASSERT_STRING_EQUAL(r.content_type, "application/dicom");
  assert_stored(paths, 4, first);
  sb files = {0};
  for (size_t i = 0; i < 4; i++) {
    item_ids(first + i, uuid, key);
    sb_add(&files, "%s{\"url\": \"%s\", \"title\": \"%s\"}", i ? ", " : "",
           key, base(paths[i]));
  }
  sb series = {0};
  sb_add(&series, "{\"dicomFiles\": [%s], \"title\": \"ct\", "
         "\"clientMetadata\": {}, \"externalFileType\": \"DICOM\"}", files.s);
  char *want = job_body("", "", series.s, "", NULL);
  assert_v1_body(0, want);
  free(want);
  free(files.s);
  free(series.s);
  bulkup_image_group_free(u);
  /* Two units for a series: refused, as the SDK's check. */
  bk_ts_reset(ts);
  script_presign(4, false);
  script_job_post("p-dicom2");
  const char *t2[2] = {"a", "b"};
  script_done(2, t2, false);
  CU_ASSERT_EQUAL(bulkup_create_dicom_series(api, &wo,
                                             (const char *const *)paths, 4,
                                             &u, NULL), BULKUP_EPROTOCOL);
  CU_ASSERT_PTR_NULL(u);
  bulkup_api_free(api);
  free_files(paths, 4);
}

/* upload_video, three times at once: one presign of 3 video URLs,
 * application/octet-stream PUTs, then one job per file (the SDK's way),
 * each its own poll; and with files_per_job 2, two jobs (2 + 1). */
static void test_videos(void) {
  bk_ts_reset(ts);
  char **paths = make_files("v", "mp4", 3);
  unsigned long first = script_presign(3, false);
  const char *phs[3] = {"p-v0", "p-v1", "p-v2"};
  for (int i = 0; i < 3; i++) {
    script_job_post(phs[i]);
    const char *t[1] = {base(paths[i])};
    script_done(1, t, false);
  }
  bulkup_api *api = new_api();
  bulkup_workflow_options wo;
  wf_options(&wo);
  bulkup_data_units *u = NULL;
  CU_ASSERT_EQUAL_FATAL(bulkup_upload_videos(api, &wo,
                                             (const char *const *)paths, 3,
                                             &u, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL_FATAL(bulkup_image_group_count(u), 3u);
  for (size_t i = 0; i < 3; i++) {
    char uuid[37], key[64];
    item_ids(first + i, uuid, key);
    CU_ASSERT_STRING_EQUAL(bulkup_image_group_title(u, i), base(paths[i]));
    /* the SDK's file_link: the objectKey of the unit's file */
    CU_ASSERT_STRING_EQUAL(bulkup_image_group_file_link(u, i), key);
  }
  bk_ts_request r;
  CU_ASSERT_FATAL(nth_request(PRESIGN, 0, &r));
  CU_ASSERT_STRING_EQUAL(r.query, "count=3&uploadItemType=video");
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, V1), 6u);
  for (size_t i = 0; i < 3; i++) {
    char uuid[37], key[64], p[80];
    item_ids(first + i, uuid, key);
    snprintf(p, sizeof p, "/%s", key);
    CU_ASSERT_FATAL(nth_request(p, 0, &r));
    CU_ASSERT_STRING_EQUAL(r.content_type, "application/octet-stream");
    char video[512];
    snprintf(video, sizeof video, "{\"objectUrl\": \"%s\", \"title\": \"%s\", "
             "\"clientMetadata\": {}, \"externalFileType\": \"VIDEO\"}", key,
             base(paths[i]));
    char *want = job_body(video, "", "", "", NULL);
    assert_v1_body(2 * i, want);
    free(want);
    char *pb = poll_body(phs[i], 10);
    assert_v1_body(2 * i + 1, pb);
    free(pb);
  }
  assert_stored(paths, 3, first);
  bulkup_image_group_free(u);

  /* files_per_job 2: jobs of 2 and 1 files, three units in all. */
  bk_ts_reset(ts);
  first = script_presign(3, false);
  script_job_post("p-a");
  const char *ta[2] = {base(paths[0]), base(paths[1])};
  script_done(2, ta, false);
  script_job_post("p-b");
  const char *tb[1] = {base(paths[2])};
  script_done(1, tb, false);
  wo.files_per_job = 2;
  CU_ASSERT_EQUAL_FATAL(bulkup_upload_videos(api, &wo,
                                             (const char *const *)paths, 3,
                                             &u, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_image_group_count(u), 3u);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, V1), 4u);
  char k0[64], k1[64], uu[37];
  item_ids(first, uu, k0);
  item_ids(first + 1, uu, k1);
  char two[1024];
  snprintf(two, sizeof two, "{\"objectUrl\": \"%s\", \"title\": \"%s\", "
           "\"clientMetadata\": {}, \"externalFileType\": \"VIDEO\"}, "
           "{\"objectUrl\": \"%s\", \"title\": \"%s\", \"clientMetadata\": "
           "{}, \"externalFileType\": \"VIDEO\"}", k0, base(paths[0]), k1,
           base(paths[1]));
  char *want = job_body(two, "", "", "", NULL);
  assert_v1_body(0, want);
  free(want);
  bulkup_image_group_free(u);
  bulkup_api_free(api);
  free_files(paths, 3);
}

/* upload_image: a title given is the unit's title; an image whose type is
 * unknown goes with no Content-Type (the SDK's mimetypes gives None). */
static void test_image_unknown_type_titled(void) {
  bk_ts_reset(ts);
  char **paths = make_files("i", "rawimg", 1);
  unsigned long first = script_presign(1, false);
  script_job_post("p-img");
  const char *t[1] = {"my image"};
  script_done(1, t, false);
  bulkup_api *api = new_api();
  bulkup_workflow_options wo;
  wf_options(&wo);
  wo.title = "my image";
  bulkup_data_units *u = NULL;
  CU_ASSERT_EQUAL_FATAL(bulkup_upload_image(api, &wo, paths[0], &u, NULL),
                        BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_image_group_count(u), 1u);
  char uuid[37], key[64], p[80];
  item_ids(first, uuid, key);
  snprintf(p, sizeof p, "/%s", key);
  bk_ts_request r;
  CU_ASSERT_FATAL(nth_request(p, 0, &r));
  CU_ASSERT_STRING_EQUAL(r.method, "PUT");
  CU_ASSERT_STRING_EQUAL(r.content_type, ""); /* no header at all */
  char image[512];
  snprintf(image, sizeof image, "{\"objectUrl\": \"%s\", \"title\": \"my "
           "image\", \"clientMetadata\": {}, \"externalFileType\": "
           "\"IMAGE\"}", key);
  char *want = job_body("", "", "", image, NULL);
  assert_v1_body(0, want);
  free(want);
  bulkup_image_group_free(u);
  /* A title with several files is refused before any request. */
  bk_ts_reset(ts);
  char *two[2] = {paths[0], paths[0]};
  CU_ASSERT_EQUAL(bulkup_upload_images(api, &wo, (const char *const *)two, 2,
                                       &u, NULL), BULKUP_EINVAL);
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), 0u);
  bulkup_api_free(api);
  free_files(paths, 1);
}

/* ---- the dataset and the API's errors ------------------------------------- */

static void test_get_dataset(void) {
  bk_ts_reset(ts);
  script_v1(200, "{\"status\": 200, \"response\": {\"title\": \"Cats\", "
                 "\"description\": \"\", \"dataset_type\": \"CORD_STORAGE\", "
                 "\"dataset_hash\": \"" DATASET "\", \"backing_folder_uuid\": "
                 "\"0f0e0d0c-0b0a-4909-8807-060504030201\", \"data_rows\": []}}");
  bulkup_api *api = new_api();
  bulkup_dataset *d = NULL;
  CU_ASSERT_EQUAL_FATAL(bulkup_api_get_dataset(api, DATASET, &d), BULKUP_OK);
  CU_ASSERT_STRING_EQUAL(bulkup_dataset_title(d), "Cats");
  CU_ASSERT_STRING_EQUAL(bulkup_dataset_type(d), "CORD_STORAGE");
  CU_ASSERT_STRING_EQUAL(bulkup_dataset_hash(d), DATASET);
  CU_ASSERT_STRING_EQUAL(bulkup_dataset_backing_folder(d),
                         "0f0e0d0c-0b0a-4909-8807-060504030201");
  bulkup_dataset_free(d);
  assert_v1_body(0, "{\"query_type\": \"dataset\", \"query_method\": \"GET\", "
                    "\"values\": {\"uid\": null, \"payload\": "
                    "{\"dataset_access_settings\": {\"fetch_client_metadata\": "
                    "false}}}}");
  /* The v1 error envelope, in words (HTTP status: any). */
  script_v1(200, "{\"status\": 404, \"response\": "
                 "[\"RESOURCE_NOT_FOUND_ERROR\"], \"payload\": null}");
  CU_ASSERT_EQUAL(bulkup_api_get_dataset(api, DATASET, &d), BULKUP_EHTTP);
  CU_ASSERT_PTR_NULL(d);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(),
                                "RESOURCE_NOT_FOUND_ERROR: no such dataset"));
  script_v1(401, "{\"status\": 401, \"response\": [\"AUTHENTICATION_ERROR\"]}");
  CU_ASSERT_EQUAL(bulkup_api_get_dataset(api, DATASET, &d), BULKUP_EHTTP);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(),
                                "AUTHENTICATION_ERROR: the key is not "
                                "registered"));
  /* Not JSON at all, after the GET's retries (1 + max_retries 3). */
  for (int i = 0; i < 4; i++)
    script_v1(502, "<html>bad gateway</html>");
  CU_ASSERT_EQUAL(bulkup_api_get_dataset(api, DATASET, &d), BULKUP_EHTTP);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "HTTP 502"));
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, V1), 1u + 2u + 4u);
  bulkup_api_free(api);
}

/* v2 errors: message / detail, not retried unless retryable. */
static void test_presign_errors(void) {
  bk_ts_reset(ts);
  bulkup_api *api = new_api();
  bk_ts_action a = {BK_TS_STATUS, 403, NULL,
                    "{\"message\": \"no access to this bucket\"}", 0, 0};
  bk_ts_script(ts, PRESIGN, &a, 1);
  bulkup_signed_url *v = NULL;
  size_t n = 0;
  CU_ASSERT_EQUAL(bulkup_api_presign(api, BULKUP_DATA_TYPE_IMAGE, 1, &v, &n),
                  BULKUP_EHTTP);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(),
                                "HTTP 403 (not authorised"));
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(),
                                "no access to this bucket"));
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, PRESIGN), 1u);
  bk_ts_action b = {BK_TS_STATUS, 401, NULL, "{\"detail\": \"bad signature\"}",
                    0, 0};
  bk_ts_script(ts, PRESIGN, &b, 1);
  CU_ASSERT_EQUAL(bulkup_api_presign(api, BULKUP_DATA_TYPE_VIDEO, 1, &v, &n),
                  BULKUP_EHTTP);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "bad signature"));
  /* A file:// signed URL is refused, nothing fetched. */
  bk_ts_action c = {BK_TS_STATUS, 200, NULL,
                    "{\"results\": [{\"itemUuid\": "
                    "\"00000000-0000-4000-8000-000000000001\", \"objectKey\": "
                    "\"k\", \"signedUrl\": \"file:///etc/passwd\"}]}", 0, 0};
  bk_ts_script(ts, PRESIGN, &c, 1);
  CU_ASSERT_EQUAL(bulkup_api_presign(api, BULKUP_DATA_TYPE_IMAGE, 1, &v, &n),
                  BULKUP_EPROTOCOL);
  CU_ASSERT_PTR_NULL(v);
  CU_ASSERT_EQUAL(n, 0u);
  bulkup_api_free(api);
}

/* ---- retries: §10 and the requests settings (issue 13 item 14) ------------ */

/* A silent API (it reads the request and never answers): --max-retries 0
 * --read-timeout 1 is exactly one attempt, ending as a timeout. */
static void test_silent_api_one_attempt(void) {
  bk_ts_reset(ts);
  bk_ts_action silent = {BK_TS_NO_RESPONSE, 0, NULL, NULL, 30, 0};
  bk_ts_script(ts, PRESIGN, &silent, 1);
  bulkup_api_options o;
  api_options(&o);
  o.requests.max_retries = 0;
  o.requests.read_timeout = 1;
  bulkup_api *api = NULL;
  CU_ASSERT_EQUAL_FATAL(bulkup_api_new(&api, &o), BULKUP_OK);
  bulkup_signed_url *v = NULL;
  size_t n;
  double t0 = bk_now();
  CU_ASSERT_EQUAL(bulkup_api_presign(api, BULKUP_DATA_TYPE_IMAGE, 1, &v, &n),
                  BULKUP_ETIMEDOUT);
  double took = bk_now() - t0;
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, PRESIGN), 1u);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "1 attempt)"));
  /* bounded: the held connection (30 s) did not hold the client */
  CU_ASSERT(took < 25);
  bulkup_api_free(api);

  /* --max-retries 2: three attempts, each ended by the read timeout. */
  bk_ts_reset(ts);
  bk_ts_action three[3] = {silent, silent, silent};
  bk_ts_script(ts, PRESIGN, three, 3);
  o.requests.max_retries = 2;
  CU_ASSERT_EQUAL_FATAL(bulkup_api_new(&api, &o), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_api_presign(api, BULKUP_DATA_TYPE_IMAGE, 1, &v, &n),
                  BULKUP_ETIMEDOUT);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, PRESIGN), 3u);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "3 attempts)"));
  bulkup_api_free(api);
}

/* The statuses urllib3 retries (413/429/500/502/503) under max_retries;
 * others are answers; the job POST is never retried. */
static void test_status_retries(void) {
  bk_ts_reset(ts);
  bulkup_api_options o;
  api_options(&o);
  o.requests.max_retries = 2;
  bulkup_api *api = NULL;
  CU_ASSERT_EQUAL_FATAL(bulkup_api_new(&api, &o), BULKUP_OK);
  bk_ts_action e503 = {BK_TS_STATUS, 503, "Retry-After: 0\r\n", "{}", 0, 0};
  bk_ts_action e500 = {BK_TS_STATUS, 500, NULL, "{}", 0, 0};
  bk_ts_action seq[2] = {e503, e500};
  bk_ts_script(ts, PRESIGN, seq, 2);
  script_presign(1, false);
  bulkup_signed_url *v = NULL;
  size_t n;
  CU_ASSERT_EQUAL(bulkup_api_presign(api, BULKUP_DATA_TYPE_IMAGE, 1, &v, &n),
                  BULKUP_OK);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, PRESIGN), 3u);
  bulkup_signed_urls_free(v, n);
  /* Three 503s with max_retries 2: the last answer is the error. */
  bk_ts_reset(ts);
  bk_ts_action three[3] = {e503, e503, e503};
  bk_ts_script(ts, PRESIGN, three, 3);
  CU_ASSERT_EQUAL(bulkup_api_presign(api, BULKUP_DATA_TYPE_IMAGE, 1, &v, &n),
                  BULKUP_EHTTP);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, PRESIGN), 3u);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "HTTP 503"));

  /* The job POST: a 503 is not retried, the error is the API's. */
  bk_ts_reset(ts);
  char **paths = make_files("r", "png", 2);
  script_presign(2, false);
  bk_ts_action p503 = {BK_TS_STATUS, 503, NULL,
                       "{\"status\": 503, \"response\": [\"UNKNOWN_ERROR\"]}",
                       0, 0};
  bk_ts_script(ts, V1, &p503, 1);
  script_job_post("never-used");
  bulkup_workflow_options wo;
  wf_options(&wo);
  bulkup_data_units *u = NULL;
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &wo,
                                            (const char *const *)paths, 2, &u,
                                            NULL), BULKUP_EHTTP);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, V1), 1u);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "UNKNOWN_ERROR"));
  /* A silent job POST: one attempt, a timeout, no second job. */
  bk_ts_reset(ts);
  script_presign(2, false);
  bk_ts_action silent = {BK_TS_NO_RESPONSE, 0, NULL, NULL, 30, 0};
  bk_ts_script(ts, V1, &silent, 1);
  bulkup_api_free(api);
  o.requests.read_timeout = 1;
  CU_ASSERT_EQUAL_FATAL(bulkup_api_new(&api, &o), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &wo,
                                            (const char *const *)paths, 2, &u,
                                            NULL), BULKUP_ETIMEDOUT);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, V1), 1u);
  /* A poll that meets a 502 is retried, then DONE. */
  bk_ts_reset(ts);
  script_presign(2, false);
  script_job_post("p-r");
  bk_ts_action p502 = {BK_TS_STATUS, 502, NULL, "bad gateway", 0, 0};
  bk_ts_script(ts, V1, &p502, 1);
  const char *t[1] = {"g"};
  script_done(1, t, false);
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &wo,
                                            (const char *const *)paths, 2, &u,
                                            NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, V1), 3u);
  bulkup_image_group_free(u);
  bulkup_api_free(api);
  free_files(paths, 2);
}

/* ---- uploads that fail, jobs that fail --------------------------------------- */

static void test_failed_upload_no_job(void) {
  bk_ts_reset(ts);
  char **paths = make_files("f", "png", 3);
  unsigned long first = script_presign(3, false);
  char uuid[37], key[64], p[80];
  item_ids(first + 1, uuid, key);
  snprintf(p, sizeof p, "/%s", key);
  bk_ts_action deny = {BK_TS_STATUS, 403, NULL, "<Error/>", 0, 0};
  bk_ts_script(ts, p, &deny, 1);
  bulkup_api *api = new_api();
  bulkup_workflow_options wo;
  wf_options(&wo);
  bulkup_data_units *u = NULL;
  bulkup_report *rep = NULL;
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &wo,
                                            (const char *const *)paths, 3, &u,
                                            &rep), BULKUP_EUPLOAD);
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, V1), 0u); /* no job */
  CU_ASSERT_PTR_NOT_NULL(rep);
  bulkup_report_free(rep);
  rep = NULL;
  /* allow_failures: the job names the two stored files only. */
  bk_ts_reset(ts);
  first = script_presign(3, false);
  item_ids(first + 1, uuid, key);
  snprintf(p, sizeof p, "/%s", key);
  bk_ts_script(ts, p, &deny, 1);
  script_job_post("p-f");
  const char *t[1] = {"g"};
  script_done(1, t, false);
  wo.upload.cloud.allow_failures = true;
  CU_ASSERT_EQUAL_FATAL(bulkup_create_image_group(api, &wo,
                                                  (const char *const *)paths,
                                                  3, &u, &rep), BULKUP_OK);
  char k0[64], k2[64];
  item_ids(first, uuid, k0);
  item_ids(first + 2, uuid, k2);
  char group[1024];
  snprintf(group, sizeof group, "{\"images\": [{\"url\": \"%s\", \"title\": "
           "\"%s\"}, {\"url\": \"%s\", \"title\": \"%s\"}], "
           "\"clientMetadata\": {}, \"createVideo\": true, "
           "\"externalFileType\": \"IMG_GROUP\", \"clusterByResolution\": "
           "true}", k0, base(paths[0]), k2, base(paths[2]));
  char *want = job_body("", group, "", "", NULL);
  assert_v1_body(0, want);
  free(want);
  bulkup_image_group_free(u);
  bulkup_report_free(rep);
  /* A storage answer of 201 is not the 200 the SDK demands. */
  bk_ts_reset(ts);
  first = script_presign(3, false);
  for (size_t i = 0; i < 3; i++) {
    item_ids(first + i, uuid, key);
    snprintf(p, sizeof p, "/%s", key);
    bk_ts_action created = {BK_TS_OK, 201, NULL, NULL, 0, 0};
    bk_ts_script(ts, p, &created, 1);
  }
  wo.upload.cloud.allow_failures = false;
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &wo,
                                            (const char *const *)paths, 3, &u,
                                            NULL), BULKUP_EUPLOAD);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "200"));
  CU_ASSERT_EQUAL(bk_ts_count_path(ts, V1), 0u);
  bulkup_api_free(api);
  free_files(paths, 3);
}

static void test_job_error_and_cancelled(void) {
  bk_ts_reset(ts);
  char **paths = make_files("e", "png", 1);
  script_presign(1, false);
  script_job_post("p-e");
  script_v1(200, "{\"status\": 200, \"response\": {\"status\": \"ERROR\", "
                 "\"data_hashes_with_titles\": [], \"errors\": [\"image "
                 "unreadable\"], \"data_unit_errors\": [], "
                 "\"units_pending_count\": 0, \"units_done_count\": 0, "
                 "\"units_error_count\": 1, \"units_cancelled_count\": 0}}");
  bulkup_api *api = new_api();
  bulkup_workflow_options wo;
  wf_options(&wo);
  bulkup_data_units *u = NULL;
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &wo,
                                            (const char *const *)paths, 1, &u,
                                            NULL), BULKUP_EJOB);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(),
                                "image unreadable"));
  bk_ts_reset(ts);
  script_presign(1, false);
  script_job_post("p-c");
  script_v1(200, "{\"status\": 200, \"response\": {\"status\": \"CANCELLED\", "
                 "\"data_hashes_with_titles\": [], \"errors\": [], "
                 "\"data_unit_errors\": [], " COUNTS_DONE(0) "}}");
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &wo,
                                            (const char *const *)paths, 1, &u,
                                            NULL), BULKUP_ECANCELED);
  /* DONE without a unit. */
  bk_ts_reset(ts);
  script_presign(1, false);
  script_job_post("p-0");
  script_done(0, NULL, false);
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &wo,
                                            (const char *const *)paths, 1, &u,
                                            NULL), BULKUP_EJOB);
  bulkup_api_free(api);
  free_files(paths, 1);
}

/* The poll budget: timeout_seconds is min(remaining, 10), an int rounded
 * up; the wait ends at the budget. */
static void test_poll_budget(void) {
  bk_ts_reset(ts);
  char **paths = make_files("b", "png", 1);
  script_presign(1, false);
  script_job_post("p-b");
  for (int i = 0; i < 8; i++)
    script_pending();
  bulkup_api *api = new_api();
  bulkup_workflow_options wo;
  wf_options(&wo);
  wo.poll_timeout = 2.5;
  bulkup_data_units *u = NULL;
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &wo,
                                            (const char *const *)paths, 1, &u,
                                            NULL), BULKUP_ETIMEDOUT);
  char *pb = poll_body("p-b", 3);
  assert_v1_body(1, pb); /* ceil(2.5 - a little) = 3 */
  free(pb);
  size_t polls = bk_ts_count_path(ts, V1) - 1;
  CU_ASSERT(polls >= 1 && polls <= 4); /* at least 1 s apart when PENDING */
  bulkup_api_free(api);
  free_files(paths, 1);
}

/* ---- before any request; cancel ---------------------------------------------- */

static void test_checks_before_any_request(void) {
  bk_ts_reset(ts);
  bulkup_api *api = new_api();
  bulkup_workflow_options wo;
  wf_options(&wo);
  const char *missing[1] = {"/nonexistent/x.png"};
  bulkup_data_units *u = NULL;
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &wo, missing, 1, &u, NULL),
                  BULKUP_ENOENT);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "x.png"));
  char **paths = make_files("c", "png", 1);
  wo.dataset_hash = NULL;
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &wo,
                                            (const char *const *)paths, 1, &u,
                                            NULL), BULKUP_EINVAL);
  wf_options(&wo);
  wo.folder_uuid = "not-a-uuid";
  CU_ASSERT_EQUAL(bulkup_upload_video(api, &wo, paths[0], &u, NULL),
                  BULKUP_EINVAL);
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, NULL,
                                            (const char *const *)paths, 1, &u,
                                            NULL), BULKUP_EINVAL);
  CU_ASSERT_EQUAL(bk_ts_request_count(ts), 0u);
  bulkup_api_free(api);
  free_files(paths, 1);
}

typedef struct canceller {
  bulkup_api *api;
  size_t wait_for;
} canceller;

static void *cancel_when_held(void *arg) {
  canceller *c = arg;
  bk_ts_wait_requests(ts, c->wait_for, 20);
  bulkup_api_cancel(c->api);
  return NULL;
}

/* bulkup_api_cancel during a long poll the server holds: the call returns
 * BULKUP_ECANCELED at once, not when the hold ends. */
static void test_cancel_while_polling(void) {
  bk_ts_reset(ts);
  char **paths = make_files("x", "png", 1);
  script_presign(1, false);
  script_job_post("p-x");
  bk_ts_action hold = {BK_TS_NO_RESPONSE, 0, NULL, NULL, 30, 0};
  bk_ts_script(ts, V1, &hold, 1);
  bulkup_api *api = new_api();
  bulkup_workflow_options wo;
  wf_options(&wo);
  /* presign, PUT, POST, then the held poll: 4 requests recorded */
  canceller c = {api, 4};
  pthread_t th;
  pthread_create(&th, NULL, cancel_when_held, &c);
  bulkup_data_units *u = NULL;
  double t0 = bk_now();
  CU_ASSERT_EQUAL(bulkup_create_image_group(api, &wo,
                                            (const char *const *)paths, 1, &u,
                                            NULL), BULKUP_ECANCELED);
  CU_ASSERT(bk_now() - t0 < 25);
  pthread_join(th, NULL);
  bulkup_api_free(api);
  free_files(paths, 1);
}

static void reg(void) {
  bk_suite("kinds", suite_init, suite_clean);
  bk_test("image group of 450: 3 presign batches, one job",
          test_image_group_450);
  bk_test("titled group, folder, split in two units",
          test_image_group_split_titled_folder);
  bk_test("DICOM series", test_dicom_series);
  bk_test("videos: one job per file, and files_per_job 2", test_videos);
  bk_test("image of unknown type: no Content-Type; title",
          test_image_unknown_type_titled);
  bk_test("dataset GET and the v1 errors", test_get_dataset);
  bk_test("v2 errors", test_presign_errors);
  bk_test("silent API: max_retries 0 is one attempt",
          test_silent_api_one_attempt);
  bk_test("status retries; the job POST never retried", test_status_retries);
  bk_test("failed uploads: no job, or the successes", test_failed_upload_no_job);
  bk_test("job ERROR, CANCELLED, no unit", test_job_error_and_cancelled);
  bk_test("poll budget and timeout_seconds", test_poll_budget);
  bk_test("checks before any request", test_checks_before_any_request);
  bk_test("cancel while the poll is held", test_cancel_while_polling);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
