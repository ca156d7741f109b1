/*
 * api.c - the endpoints of doc/api-protocol.md: signed upload URLs,
 * storage PUTs, image groups and jobs.
 *
 * Checks that need no body (routing, method, the storage URL's HMAC,
 * expiry and content type, Content-Length over the limit) are made when
 * the headers arrive (bks_api_prepare); the body then goes nowhere (a
 * refusal), to a buffer (API JSON, bounded) or straight to the store
 * (storage). Everything else happens when the body is complete
 * (bks_api_complete): request signatures (they cover the body's digest),
 * Content-MD5, the endpoint's work.
 *
 * Jobs and idempotency records live in hash tables in the server, under
 * srv->mu; a job is never freed before the server stops, so a pointer
 * to one stays valid without the lock, and its images never change after
 * creation. Its outcome (DONE/ERROR/CANCELLED) is decided once, on the
 * first poll after the pending time, and fixed from then on.
 */
#include "bks_internal.h"

#include <bulkup.h>

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define P_PRESIGN "/v2/public/presigned-urls"
#define P_GROUPS "/v2/public/image-groups"
#define P_JOBS "/v2/public/image-groups/jobs/"
#define P_STORAGE "/storage/"
#define MAX_PRESIGN 200
#define IDEM_KEY_MAX 255

enum { JOB_PENDING, JOB_DONE, JOB_ERROR, JOB_CANCELLED };

struct bks_job {
  bks_job *next;
  char hash[37];
  double created; /* monotonic */
  int state;
  size_t n;
  char **urls, **titles; /* fixed at creation */
  char (*data_hashes)[37]; /* DONE */
  char **errors;           /* ERROR */
  size_t nerrors;
};

struct bks_idem {
  bks_idem *next;
  char *key;
  char body_sha[65];
  char hash[37];
};

static void job_free(bks_job *j) {
  for (size_t i = 0; i < j->n; i++) {
    free(j->urls[i]);
    free(j->titles[i]);
  }
  for (size_t i = 0; i < j->nerrors; i++)
    free(j->errors[i]);
  free(j->errors);
  free(j->urls);
  free(j->titles);
  free(j->data_hashes);
  free(j);
}

void bks_api_free(bks_server *srv) {
  for (size_t b = 0; b < BKS_BUCKETS; b++) {
    while (srv->jobs[b]) {
      bks_job *j = srv->jobs[b];
      srv->jobs[b] = j->next;
      job_free(j);
    }
    while (srv->idem[b]) {
      bks_idem *i = srv->idem[b];
      srv->idem[b] = i->next;
      free(i->key);
      free(i);
    }
  }
}

static bks_job *job_find_locked(bks_server *srv, const char *hash) {
  for (bks_job *j = srv->jobs[bks_hash(hash)]; j; j = j->next)
    if (strcmp(j->hash, hash) == 0)
      return j;
  return NULL;
}

static bks_idem *idem_find_locked(bks_server *srv, const char *key) {
  for (bks_idem *i = srv->idem[bks_hash(key)]; i; i = i->next)
    if (strcmp(i->key, key) == 0)
      return i;
  return NULL;
}

/* ---- routing -------------------------------------------------------------- */

void bks_api_route(bks_req *r) {
  const char *p = r->path;
  bks_endpoint ep = BKS_EP_OTHER;
  if (strcmp(p, P_PRESIGN) == 0)
    ep = BKS_EP_PRESIGN;
  else if (strcmp(p, P_GROUPS) == 0)
    ep = BKS_EP_IMAGE_GROUP;
  else if (strncmp(p, P_JOBS, strlen(P_JOBS)) == 0 &&
           p[strlen(P_JOBS)] != '\0' && !strchr(p + strlen(P_JOBS), '/'))
    ep = BKS_EP_JOB;
  else if (strncmp(p, P_STORAGE, strlen(P_STORAGE)) == 0)
    ep = BKS_EP_STORAGE;
  r->rec.endpoint = ep;
}

static void reject(bks_req *r, int status, const char *code, const char *msg) {
  r->reject_status = status;
  r->reject_code = code;
  r->reject_msg = msg;
  r->sink = BKS_SINK_DISCARD;
}

/* ---- signed storage URLs ---------------------------------------------------- */

/* The pattern presign signs for an upload item type. */
static const char *pattern_for(bulkup_data_type t) {
  switch (t) {
  case BULKUP_DATA_TYPE_IMAGE: return "image/*";
  case BULKUP_DATA_TYPE_VIDEO:
  case BULKUP_DATA_TYPE_AUDIO: return "application/octet-stream";
  case BULKUP_DATA_TYPE_DICOM: return "application/dicom";
  default: return "*";
  }
}

/* lower hex HMAC-SHA256 of "PUT\n{key}\n{expires}\n{pattern}" */
static int storage_mac(bks_server *srv, const char *key, const char *expires,
                       const char *pattern, unsigned char mac[32]) {
  char *msg = bks_asprintf("PUT\n%s\n%s\n%s", key, expires, pattern);
  if (!msg)
    return -1;
  unsigned len = 0;
  unsigned char *ok = HMAC(EVP_sha256(), srv->secret, (int)srv->secret_len,
                           (const unsigned char *)msg, strlen(msg), mac, &len);
  free(msg);
  return ok && len == 32 ? 0 : -1;
}

char *bks_api_sign_url(bks_server *srv, const char *base, const char *key,
                       const char *pattern, double ttl) {
  char expires[64];
  double now = bks_now_real();
  if (ttl == floor(ttl) && fabs(ttl) < 1e12)
    snprintf(expires, sizeof expires, "%lld",
             (long long)floor(now) + (long long)ttl);
  else
    snprintf(expires, sizeof expires, "%.3f", now + ttl);
  unsigned char mac[32];
  char hex[65];
  if (storage_mac(srv, key, expires, pattern, mac) != 0)
    return NULL;
  bks_hex(mac, 32, hex);
  char *ekey = bks_pct_encode(key);
  char *epat = bks_pct_encode(pattern);
  char *url = NULL;
  if (ekey && epat) {
    /* keep the key's slashes readable: uploads/<uuid> */
    for (char *s = ekey; (s = strstr(s, "%2F")) != NULL;) {
      *s = '/';
      memmove(s + 1, s + 3, strlen(s + 3) + 1);
    }
    url = bks_asprintf("%s" P_STORAGE "%s?expires=%s&content_type=%s"
                       "&signature=%s",
                       base, ekey, expires, epat, hex);
  }
  free(ekey);
  free(epat);
  return url;
}

/* A strict unix time: digits, optionally a fraction. */
static int parse_expires(const char *s, double *out) {
  const char *p = s;
  if (!isdigit((unsigned char)*p))
    return -1;
  while (isdigit((unsigned char)*p))
    p++;
  if (*p == '.') {
    p++;
    if (!isdigit((unsigned char)*p))
      return -1;
    while (isdigit((unsigned char)*p))
      p++;
  }
  if (*p || p - s > 20)
    return -1;
  *out = strtod(s, NULL);
  return 0;
}

/* Does Content-Type `ct` (parameters ignored) match the signed pattern? */
static int ctype_matches(const char *pattern, const char *ct) {
  if (strcmp(pattern, "*") == 0)
    return 1;
  if (!ct)
    return 0;
  while (*ct == ' ')
    ct++;
  size_t n = strcspn(ct, ";");
  while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
    n--;
  if (strcmp(pattern, "image/*") == 0) {
    if (n == 24 && strncasecmp(ct, "application/octet-stream", 24) == 0)
      return 1;
    return n > 6 && strncasecmp(ct, "image/", 6) == 0 &&
           !memchr(ct + 6, '/', n - 6);
  }
  return strlen(pattern) == n && strncasecmp(ct, pattern, n) == 0;
}

static int unhex32(const char *s, unsigned char out[32]) {
  if (strlen(s) != 64)
    return -1;
  for (size_t i = 0; i < 32; i++) {
    unsigned v = 0;
    for (size_t j = 0; j < 2; j++) {
      char c = s[2 * i + j];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= (unsigned)(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= (unsigned)(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= (unsigned)(c - 'A' + 10);
      else
        return -1;
    }
    out[i] = (unsigned char)v;
  }
  return 0;
}

#define SIG_MISMATCH                                                         \
  "The request signature we calculated does not match the signature you "   \
  "provided."

/* The storage PUT's checks 1-3 (doc/api-protocol.md), in order. */
static void storage_check(bks_req *r) {
  bks_server *srv = r->srv;
  char *expires = bks_query_get(r->query, "expires", NULL);
  char *pattern = bks_query_get(r->query, "content_type", NULL);
  char *sig = bks_query_get(r->query, "signature", NULL);
  unsigned char want[32], got[32];
  double exp = 0;
  if (!expires || !pattern || !sig) {
    reject(r, 403, "SignatureDoesNotMatch",
           "The URL is missing expires, content_type or signature.");
  } else if (unhex32(sig, got) != 0 ||
             storage_mac(srv, r->key, expires, pattern, want) != 0 ||
             CRYPTO_memcmp(want, got, 32) != 0) {
    reject(r, 403, "SignatureDoesNotMatch", SIG_MISMATCH);
  } else if (parse_expires(expires, &exp) != 0) {
    reject(r, 403, "SignatureDoesNotMatch", "The expires value is invalid.");
  } else if (bks_now_real() > exp) {
    reject(r, 403, "ExpiredToken",
           "The signed URL has expired; request a new one.");
  } else if (!ctype_matches(pattern,
                            r->rec.content_type[0] ? r->rec.content_type
                                                   : NULL)) {
    reject(r, 403, "SignatureDoesNotMatch",
           "The Content-Type does not match the one the URL was signed "
           "for.");
  }
  free(expires);
  free(pattern);
  free(sig);
}

int bks_api_storage_authorize(bks_req *r) {
  const char *raw = r->path + strlen(P_STORAGE);
  r->key = bks_pct_decode(raw, strlen(raw));
  if (!r->key || !bks_object_key_valid(r->key)) {
    reject(r, 400, "InvalidObjectName", "The object key is not valid.");
    return -1;
  }
  storage_check(r);
  return r->reject_status ? -1 : 0;
}

static void storage_prepare(bks_req *r) {
  bks_server *srv = r->srv;
  if (strcmp(r->rec.method, "PUT") != 0) {
    reject(r, 405, "MethodNotAllowed",
           "Only PUT to a signed URL is supported.");
    return;
  }
  if (bks_api_storage_authorize(r) != 0)
    return;
  const char *md5 = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                "Content-MD5");
  if (md5) {
    if (bks_b64_decode(md5, strlen(md5), r->want_md5, sizeof r->want_md5) !=
            16 ||
        !(r->md5 = EVP_MD_CTX_new()) ||
        !EVP_DigestInit_ex(r->md5, EVP_md5(), NULL)) {
      reject(r, 400, "InvalidDigest",
             "The Content-MD5 you specified is not valid.");
      return;
    }
  }
  r->w = bks_store_begin(srv->store, r->key,
                         r->rec.content_length > 0
                             ? (unsigned long long)r->rec.content_length
                             : 0);
  if (!r->w) {
    reject(r, 500, "InternalError", "The object could not be written.");
    return;
  }
  r->sink = BKS_SINK_STORE;
}

static enum MHD_Result storage_complete(bks_req *r) {
  bks_server *srv = r->srv;
  if (r->write_failed || !r->w)
    return bks_respond_xml(r, 500, "InternalError",
                           "The object could not be written.");
  if (r->md5) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (!EVP_DigestFinal_ex(r->md5, d, &n) || n != 16 ||
        CRYPTO_memcmp(d, r->want_md5, 16) != 0) {
      bks_writer_abort(r->w);
      r->w = NULL;
      return bks_respond_xml(r, 400, "BadDigest",
                             "The Content-MD5 you specified did not match "
                             "what was received.");
    }
  }
  char sha[65];
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  if (!r->sha || !EVP_DigestFinal_ex(r->sha, d, &n))
    return MHD_NO;
  bks_hex(d, n, sha);
  memcpy(r->rec.body_sha256, sha, sizeof sha);
  EVP_MD_CTX_free(r->sha);
  r->sha = NULL;
  bks_writer *w = r->w;
  r->w = NULL;
  if (bks_writer_commit(w, sha) != 0)
    return bks_respond_xml(r, 500, "InternalError",
                           "The object could not be written.");
  pthread_mutex_lock(&srv->mu);
  srv->counters.objects_stored++;
  pthread_mutex_unlock(&srv->mu);
  return bks_respond(r, 200, "text/plain", "", 0, NULL);
}

/* ---- JSON helpers -------------------------------------------------------------- */

static enum MHD_Result respond_obj(bks_req *r, int status, json_object *o,
                                   const char *error) {
  if (!o)
    return MHD_NO;
  const char *s = json_object_to_json_string_ext(
      o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  enum MHD_Result ret = s ? bks_respond_json(r, status, s, error) : MHD_NO;
  json_object_put(o);
  return ret;
}

/* ---- presign --------------------------------------------------------------------- */

char *bks_api_base_from_host(bks_req *r) {
  const char *h =
      MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Host");
  size_t n = h ? strlen(h) : 0;
  if (n == 0 || n > 255)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)h[i];
    if (!isalnum(c) && c != '.' && c != '-' && c != ':' && c != '[' &&
        c != ']')
      return NULL;
  }
  return bks_asprintf("%s://%s", r->srv->tls ? "https" : "http", h);
}

static enum MHD_Result presign(bks_req *r) {
  bks_server *srv = r->srv;
  char *count_s = bks_query_get(r->query, "count", NULL);
  char *type_s = bks_query_get(r->query, "upload_item_type", NULL);
  long count = 0;
  char *end = NULL;
  if (count_s && isdigit((unsigned char)count_s[0])) {
    errno = 0;
    count = strtol(count_s, &end, 10);
    if (errno || *end)
      count = 0;
  }
  bulkup_data_type t =
      type_s ? bulkup_data_type_from_upper_case_string(type_s)
             : BULKUP_DATA_TYPE_MISSING;
  free(count_s);
  free(type_s);
  if (count < 1 || count > MAX_PRESIGN)
    return bks_respond_error(r, 400, "count must be an integer from 1 to 200");
  if (t == BULKUP_DATA_TYPE_MISSING)
    return bks_respond_error(r, 400, "unknown upload_item_type");
  const char *pattern = pattern_for(t);
  char *base = srv->public_url ? bks_strdup(srv->public_url)
                               : bks_api_base_from_host(r);
  if (!base)
    base = bks_server_url(srv, NULL);
  pthread_mutex_lock(&srv->mu);
  double ttl = srv->url_ttl;
  pthread_mutex_unlock(&srv->mu);
  json_object *root = json_object_new_object();
  json_object *results = json_object_new_array();
  int ok = base && root && results;
  if (ok)
    json_object_object_add(root, "results", results);
  else
    json_object_put(results);
  for (long i = 0; ok && i < count; i++) {
    char uuid[37];
    bks_uuid4(uuid);
    char key[64];
    snprintf(key, sizeof key, "uploads/%s", uuid);
    char *url = bks_api_sign_url(srv, base, key, pattern, ttl);
    json_object *item = json_object_new_object();
    ok = url && item &&
         !json_object_object_add(item, "item_uuid",
                                 json_object_new_string(uuid)) &&
         !json_object_object_add(item, "object_key",
                                 json_object_new_string(key)) &&
         !json_object_object_add(item, "signed_url",
                                 json_object_new_string(url)) &&
         !json_object_array_add(results, item);
    if (!ok)
      json_object_put(item);
    free(url);
  }
  free(base);
  if (!ok) {
    json_object_put(root);
    return MHD_NO;
  }
  pthread_mutex_lock(&srv->mu);
  srv->counters.presign_requests++;
  srv->counters.urls_issued += (unsigned long long)count;
  pthread_mutex_unlock(&srv->mu);
  return respond_obj(r, 200, root, NULL);
}

/* ---- image groups ------------------------------------------------------------------- */

/* The parsed request: every image of every group, in order. */
typedef struct group_req {
  size_t n, cap;
  char **urls, **titles;
} group_req;

static void group_req_free(group_req *g) {
  for (size_t i = 0; i < g->n; i++) {
    free(g->urls[i]);
    free(g->titles[i]);
  }
  free(g->urls);
  free(g->titles);
}

static int group_req_add(group_req *g, const char *url, const char *title) {
  if (g->n == g->cap) {
    size_t cap = g->cap ? 2 * g->cap : 16;
    char **u = realloc(g->urls, cap * sizeof *u);
    if (!u)
      return -1;
    g->urls = u;
    char **t = realloc(g->titles, cap * sizeof *t);
    if (!t)
      return -1;
    g->titles = t;
    g->cap = cap;
  }
  char *uc = bks_strdup(url), *tc = bks_strdup(title);
  if (!uc || !tc) {
    free(uc);
    free(tc);
    return -1;
  }
  g->urls[g->n] = uc;
  g->titles[g->n] = tc;
  g->n++;
  return 0;
}

static json_object *parse_json(const unsigned char *buf, size_t len) {
  if (len > INT32_MAX)
    return NULL;
  json_tokener *tok = json_tokener_new_ex(64);
  if (!tok)
    return NULL;
  json_object *o =
      json_tokener_parse_ex(tok, len ? (const char *)buf : "", (int)len);
  int good = o && json_tokener_get_error(tok) == json_tokener_success;
  if (good) {
    /* nothing but white space after the value */
    for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
      if (!isspace(buf[i]))
        good = 0;
  }
  json_tokener_free(tok);
  if (!good) {
    json_object_put(o);
    return NULL;
  }
  return o;
}

/* Check the body's shape; NULL, or a static reason for a 400. */
static const char *parse_groups(json_object *root, group_req *g) {
  json_object *groups = NULL;
  if (!json_object_is_type(root, json_type_object) ||
      !json_object_object_get_ex(root, "image_groups", &groups) ||
      !json_object_is_type(groups, json_type_array) ||
      json_object_array_length(groups) == 0)
    return "image_groups must be a non-empty array";
  size_t ng = json_object_array_length(groups);
  for (size_t gi = 0; gi < ng; gi++) {
    json_object *grp = json_object_array_get_idx(groups, gi);
    json_object *images = NULL, *v = NULL;
    if (!json_object_is_type(grp, json_type_object))
      return "each image group must be an object";
    if (!json_object_object_get_ex(grp, "title", &v) ||
        !json_object_is_type(v, json_type_string))
      return "each image group needs a string title";
    if (json_object_object_get_ex(grp, "create_video", &v) &&
        !json_object_is_type(v, json_type_boolean))
      return "create_video must be a boolean";
    if (json_object_object_get_ex(grp, "cluster_by_resolution", &v) &&
        !json_object_is_type(v, json_type_boolean))
      return "cluster_by_resolution must be a boolean";
    if (!json_object_object_get_ex(grp, "images", &images) ||
        !json_object_is_type(images, json_type_array) ||
        json_object_array_length(images) == 0)
      return "images must be a non-empty array";
    size_t ni = json_object_array_length(images);
    for (size_t ii = 0; ii < ni; ii++) {
      json_object *img = json_object_array_get_idx(images, ii);
      json_object *url = NULL, *title = NULL;
      if (!json_object_is_type(img, json_type_object) ||
          !json_object_object_get_ex(img, "url", &url) ||
          !json_object_is_type(url, json_type_string) ||
          !json_object_object_get_ex(img, "title", &title) ||
          !json_object_is_type(title, json_type_string))
        return "each image needs a string url and a string title";
      if (group_req_add(g, json_object_get_string(url),
                        json_object_get_string(title)) != 0)
        return "out of memory";
    }
  }
  return NULL;
}

static enum MHD_Result respond_hash(bks_req *r, const char *hash) {
  json_object *o = json_object_new_object();
  if (o)
    json_object_object_add(o, "process_hash", json_object_new_string(hash));
  return respond_obj(r, 200, o, NULL);
}

/* A previous POST with this Idempotency-Key: answer it (same hash, or 409
 * for another body). Called with srv->mu held; returns 1 when `found`. */
static int idem_check_locked(bks_server *srv, const char *key,
                             const char *body_sha, char hash[37],
                             int *conflict) {
  bks_idem *i = idem_find_locked(srv, key);
  if (!i)
    return 0;
  *conflict = strcmp(i->body_sha, body_sha) != 0;
  memcpy(hash, i->hash, 37);
  if (!*conflict)
    srv->counters.idempotent_replays++;
  return 1;
}

static enum MHD_Result image_groups(bks_req *r) {
  bks_server *srv = r->srv;
  const char *idem = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 "Idempotency-Key");
  if (idem) {
    size_t n = strlen(idem);
    int ok = n > 0 && n <= IDEM_KEY_MAX;
    for (size_t i = 0; ok && i < n; i++)
      ok = (unsigned char)idem[i] >= 0x20 && idem[i] != 0x7f;
    if (!ok)
      return bks_respond_error(r, 400, "bad Idempotency-Key");
  }
  char body_sha[65];
  bks_sha256_hex(r->buf ? (const void *)r->buf : (const void *)"", r->len,
                 body_sha);
  char hash[37];
  int conflict = 0;
  if (idem) {
    pthread_mutex_lock(&srv->mu);
    int found = idem_check_locked(srv, idem, body_sha, hash, &conflict);
    pthread_mutex_unlock(&srv->mu);
    if (found && conflict)
      return bks_respond_error(
          r, 409, "Idempotency-Key already used with a different body");
    if (found)
      return respond_hash(r, hash);
  }
  json_object *root = parse_json(r->buf, r->len);
  if (!root)
    return bks_respond_error(r, 400, "body is not valid JSON");
  group_req g;
  memset(&g, 0, sizeof g);
  const char *why = parse_groups(root, &g);
  json_object_put(root);
  if (why) {
    group_req_free(&g);
    return bks_respond_error(r, 400, why);
  }
  /* every object must exist (checked without the lock: it reads the
   * store) */
  json_object *missing = json_object_new_array();
  if (!missing) {
    group_req_free(&g);
    return MHD_NO;
  }
  for (size_t i = 0; i < g.n; i++) {
    if (!bks_object_key_valid(g.urls[i]) ||
        !bks_store_exists(srv->store, g.urls[i]))
      json_object_array_add(missing, json_object_new_string(g.urls[i]));
  }
  if (json_object_array_length(missing) > 0) {
    group_req_free(&g);
    json_object *o = json_object_new_object();
    if (!o) {
      json_object_put(missing);
      return MHD_NO;
    }
    json_object_object_add(o, "error",
                           json_object_new_string("missing objects"));
    json_object_object_add(o, "missing", missing);
    return respond_obj(r, 400, o, "missing objects");
  }
  json_object_put(missing);

  bks_job *j = calloc(1, sizeof *j);
  bks_idem *rec = idem ? calloc(1, sizeof *rec) : NULL;
  if (!j || (idem && (!rec || !(rec->key = bks_strdup(idem))))) {
    free(j);
    if (rec)
      free(rec->key);
    free(rec);
    group_req_free(&g);
    return MHD_NO;
  }
  bks_uuid4(j->hash);
  j->n = g.n;
  j->urls = g.urls;
  j->titles = g.titles;
  j->state = JOB_PENDING;
  j->created = bks_now_mono();
  if (rec) {
    memcpy(rec->body_sha, body_sha, sizeof body_sha);
    memcpy(rec->hash, j->hash, sizeof j->hash);
  }
  pthread_mutex_lock(&srv->mu);
  /* a concurrent POST with the same key may have won the race */
  int found = idem ? idem_check_locked(srv, idem, body_sha, hash, &conflict)
                   : 0;
  if (!found) {
    unsigned b = bks_hash(j->hash);
    j->next = srv->jobs[b];
    srv->jobs[b] = j;
    if (rec) {
      b = bks_hash(rec->key);
      rec->next = srv->idem[b];
      srv->idem[b] = rec;
    }
    srv->counters.groups_created++;
    memcpy(hash, j->hash, sizeof hash);
  }
  pthread_mutex_unlock(&srv->mu);
  if (found) {
    job_free(j);
    free(rec->key);
    free(rec);
    if (conflict)
      return bks_respond_error(
          r, 409, "Idempotency-Key already used with a different body");
  }
  return respond_hash(r, hash);
}

/* ---- jobs ----------------------------------------------------------------------------- */

/* Decide a pending job's outcome (without the lock: reads the store and
 * the job's fixed images). Returns the number of errors; fills either
 * *hashes or *errors. */
static size_t job_decide(bks_server *srv, const bks_job *j,
                         char (**hashes)[37], char ***errors) {
  size_t nerr = 0;
  *hashes = NULL;
  *errors = NULL;
  for (size_t i = 0; i < j->n; i++) {
    const char *why = NULL;
    if (j->titles[i][0] == '\0')
      why = "title is empty";
    else if (!bks_object_key_valid(j->urls[i]) ||
             !bks_store_exists(srv->store, j->urls[i]))
      why = "object not found";
    if (!why)
      continue;
    char **e = realloc(*errors, (nerr + 1) * sizeof *e);
    if (!e)
      break;
    *errors = e;
    e[nerr] = bks_asprintf("images[%zu] (%s): %s", i, j->urls[i], why);
    if (e[nerr])
      nerr++;
  }
  if (nerr == 0) {
    *hashes = calloc(j->n ? j->n : 1, sizeof **hashes);
    for (size_t i = 0; *hashes && i < j->n; i++)
      bks_uuid4((*hashes)[i]);
  }
  return nerr;
}

static json_object *job_json_locked(const bks_job *j) {
  json_object *o = json_object_new_object();
  if (!o)
    return NULL;
  static const char *const names[] = {"PENDING", "DONE", "ERROR",
                                      "CANCELLED"};
  json_object_object_add(o, "status", json_object_new_string(names[j->state]));
  if (j->state == JOB_DONE) {
    json_object *a = json_object_new_array();
    for (size_t i = 0; a && i < j->n; i++) {
      json_object *e = json_object_new_object();
      json_object_object_add(e, "data_hash",
                             json_object_new_string(j->data_hashes[i]));
      json_object_object_add(e, "title", json_object_new_string(j->titles[i]));
      json_object_array_add(a, e);
    }
    json_object_object_add(o, "data_hashes_with_titles", a);
  } else if (j->state == JOB_ERROR) {
    json_object *a = json_object_new_array();
    for (size_t i = 0; a && i < j->nerrors; i++)
      json_object_array_add(a, json_object_new_string(j->errors[i]));
    json_object_object_add(o, "errors", a);
  }
  return o;
}

static enum MHD_Result job_status(bks_req *r) {
  bks_server *srv = r->srv;
  const char *hash = r->path + strlen(P_JOBS);
  pthread_mutex_lock(&srv->mu);
  bks_job *j = job_find_locked(srv, hash);
  int decide = j && j->state == JOB_PENDING &&
               bks_now_mono() - j->created >= srv->job_pending;
  pthread_mutex_unlock(&srv->mu);
  if (!j)
    return bks_respond_error(r, 404, "unknown job");
  char(*hashes)[37] = NULL;
  char **errors = NULL;
  size_t nerr = 0;
  if (decide) {
    nerr = job_decide(srv, j, &hashes, &errors);
    if (!nerr && !hashes)
      return MHD_NO;
  }
  pthread_mutex_lock(&srv->mu);
  if (decide && j->state == JOB_PENDING) {
    if (nerr) {
      j->state = JOB_ERROR;
      j->errors = errors;
      j->nerrors = nerr;
    } else {
      j->state = JOB_DONE;
      j->data_hashes = hashes;
    }
    errors = NULL;
    hashes = NULL;
    nerr = 0;
  }
  json_object *o = job_json_locked(j);
  pthread_mutex_unlock(&srv->mu);
  for (size_t i = 0; i < nerr; i++)
    free(errors[i]);
  free(errors);
  free(hashes);
  return respond_obj(r, 200, o, NULL);
}

int bks_api_job_cancel(bks_server *srv, const char *hash) {
  int rc = -1;
  pthread_mutex_lock(&srv->mu);
  bks_job *j = job_find_locked(srv, hash);
  if (j && j->state == JOB_PENDING) {
    j->state = JOB_CANCELLED;
    rc = 0;
  }
  pthread_mutex_unlock(&srv->mu);
  return rc;
}

/* ---- the two entry points ----------------------------------------------------------- */

void bks_api_prepare(bks_req *r) {
  bks_server *srv = r->srv;
  const char *m = r->rec.method;
  switch (r->rec.endpoint) {
  case BKS_EP_STORAGE:
    storage_prepare(r);
    return;
  case BKS_EP_OTHER:
    reject(r, 404, "not found", NULL);
    return;
  case BKS_EP_PRESIGN:
  case BKS_EP_JOB:
    if (strcmp(m, "GET") != 0) {
      reject(r, 405, "method not allowed", NULL);
      return;
    }
    break;
  case BKS_EP_IMAGE_GROUP:
    if (strcmp(m, "POST") != 0) {
      reject(r, 405, "method not allowed", NULL);
      return;
    }
    break;
  default:
    break;
  }
  if (r->rec.content_length >= 0 &&
      (unsigned long long)r->rec.content_length > srv->max_api_body) {
    reject(r, 413, "request body too large", NULL);
    return;
  }
  r->sink = BKS_SINK_BUFFER;
  r->limit = srv->max_api_body;
}

enum MHD_Result bks_api_complete(bks_req *r) {
  bks_server *srv = r->srv;
  if (r->reject_status) {
    if (r->rec.endpoint == BKS_EP_STORAGE)
      return bks_respond_xml(r, r->reject_status, r->reject_code,
                             r->reject_msg);
    return bks_respond_error(r, r->reject_status, r->reject_code);
  }
  if (r->rec.endpoint == BKS_EP_STORAGE)
    return storage_complete(r);
  if (r->too_big)
    return bks_respond_error(r, 413, "request body too large");
  bks_sig_input in = {
      .method = r->rec.method,
      .target = r->uri,
      .body = r->buf,
      .body_len = r->len,
      .header = bks_http_header,
      .ctx = r,
      .now = bks_now_real(),
  };
  const char *reason = NULL;
  if (bks_verify_request(srv->keys, &in, &reason) != 0)
    return bks_respond_error(r, 401, reason);
  switch (r->rec.endpoint) {
  case BKS_EP_PRESIGN:
    return presign(r);
  case BKS_EP_IMAGE_GROUP:
    return image_groups(r);
  case BKS_EP_JOB:
    return job_status(r);
  default:
    return bks_respond_error(r, 404, "not found");
  }
}
