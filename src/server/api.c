/*
 * api.c - the API mode's endpoints (ENCORD_WIRE.md): routing, the v2
 * presign (§4), storage PUTs to the signed URLs (§5) and the v1 envelope
 * of POST /public (§6), whose queries v1.c answers.
 *
 * Checks that need no body (routing, method, the storage URL's HMAC,
 * expiry and content type, an API Content-Length over the limit) are made
 * when the headers arrive (bks_api_prepare); an API refusal is then
 * answered at once, without reading the body, and the connection closed
 * (a client cannot keep a thread reading a huge body it announced). The
 * body otherwise goes to a buffer (API JSON, bounded) or straight to the
 * store (storage). Everything else happens when the body is complete
 * (bks_api_complete): signatures (the v1 one covers the body), the
 * envelope, Content-MD5, the endpoint's work.
 */
#include "bks_internal.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define P_PRESIGN "/v2/public/presigned-urls"
#define P_PUBLIC "/public"
#define P_STORAGE "/storage/"
#define MAX_PRESIGN 200

/* ---- routing -------------------------------------------------------------- */

void bks_api_route(bks_req *r) {
  const char *p = r->path;
  bks_endpoint ep = BKS_EP_OTHER;
  if (strcmp(p, P_PRESIGN) == 0)
    ep = BKS_EP_PRESIGN;
  else if (strcmp(p, P_PUBLIC) == 0)
    ep = BKS_EP_PUBLIC;
  else if (strncmp(p, P_STORAGE, strlen(P_STORAGE)) == 0)
    ep = BKS_EP_STORAGE;
  r->rec.endpoint = ep;
}

/* ---- storage PUTs ------------------------------------------------------------ */

static void storage_prepare(bks_req *r) {
  bks_server *srv = r->srv;
  if (strcmp(r->rec.method, "PUT") != 0) {
    bks_reject(r, 405, "MethodNotAllowed",
           "Only PUT to a signed URL is supported.");
    return;
  }
  if (bks_storage_authorize(r) != 0)
    return;
  const char *md5 = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                "Content-MD5");
  if (md5) {
    if (bk_b64_decode(md5, strlen(md5), r->want_md5, sizeof r->want_md5, 0) !=
            16 ||
        !(r->md5 = EVP_MD_CTX_new()) ||
        !EVP_DigestInit_ex(r->md5, EVP_md5(), NULL)) {
      bks_reject(r, 400, "InvalidDigest",
             "The Content-MD5 you specified is not valid.");
      return;
    }
  }
  r->w = bks_store_begin(srv->store, r->key,
                         r->rec.content_length > 0
                             ? (unsigned long long)r->rec.content_length
                             : 0);
  if (!r->w) {
    bks_reject(r, 500, "InternalError", "The object could not be written.");
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
  bk_hex_encode(d, n, sha, false);
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

/* ---- v2 presign (§4) ---------------------------------------------------------- */

/* The signed content-type pattern for an upload item type (§5: image ->
 * the guessed image type or none, video -> application/octet-stream,
 * dicomFile -> application/dicom). */
static const char *pattern_for(const char *type) {
  if (strcmp(type, "image") == 0)
    return "image/*";
  if (strcmp(type, "video") == 0)
    return "application/octet-stream";
  return "application/dicom";
}

/* count=N&uploadItemType=T, each once, nothing else (any order). */
static const char *presign_params(const char *q, long *count,
                                  const char **type) {
  int have_count = 0, have_type = 0;
  *type = NULL;
  for (const char *p = q; *p;) {
    const char *amp = strchr(p, '&');
    size_t n = amp ? (size_t)(amp - p) : strlen(p);
    if (n > 6 && strncmp(p, "count=", 6) == 0 && !have_count) {
      have_count = 1;
      const char *v = p + 6;
      size_t vn = n - 6;
      if (vn > 3 || v[0] == '0')
        return "count must be an integer from 1 to 200";
      long c = 0;
      for (size_t i = 0; i < vn; i++) {
        if (!isdigit((unsigned char)v[i]))
          return "count must be an integer from 1 to 200";
        c = c * 10 + (v[i] - '0');
      }
      if (c < 1 || c > MAX_PRESIGN)
        return "count must be an integer from 1 to 200";
      *count = c;
    } else if (n > 15 && strncmp(p, "uploadItemType=", 15) == 0 &&
               !have_type) {
      have_type = 1;
      static const char *const types[] = {"image", "video", "dicomFile"};
      for (size_t i = 0; i < 3; i++)
        if (n - 15 == strlen(types[i]) &&
            strncmp(p + 15, types[i], n - 15) == 0)
          *type = types[i];
      if (!*type)
        return "uploadItemType must be image, video or dicomFile";
    } else {
      return "unexpected query parameter (want count and uploadItemType, "
             "once each)";
    }
    p += n;
    if (*p == '&' && !*++p)
      return "empty query parameter";
  }
  if (!have_count)
    return "missing query parameter count";
  if (!have_type)
    return "missing query parameter uploadItemType";
  return NULL;
}

static enum MHD_Result presign(bks_req *r, const char *keyhex) {
  bks_server *srv = r->srv;
  long count = 0;
  const char *type = NULL;
  const char *why = presign_params(r->query, &count, &type);
  if (why)
    return bks_respond_v2_error(r, 400, why, NULL);
  char code[48];
  pthread_mutex_lock(&srv->mu);
  int hit = bks_api_err_take_locked(srv, BKS_CALL_PRESIGN, code);
  double ttl = srv->url_ttl;
  int snake = srv->v2_snake_case;
  pthread_mutex_unlock(&srv->mu);
  if (hit) {
    int st = atoi(code);
    return bks_respond_v2_error(
        r, st, "injected by bulkup serve --fault-api-error",
        st == 429 || st == 503 ? "Retry-After: 1\r\n" : NULL);
  }
  const char *pattern = pattern_for(type);
  char *base = bks_base_url(r);
  json_object *root = json_object_new_object();
  json_object *results = json_object_new_array();
  int ok = base && root && results;
  if (ok)
    json_object_object_add(root, "results", results);
  else
    json_object_put(results);
  for (long i = 0; ok && i < count; i++) {
    char uuid[37], key[96];
    ok = bks_objkey_make(srv, keyhex, type, key, uuid) == 0;
    char *url = ok ? bks_sign_url(srv, base, key, pattern, ttl) : NULL;
    json_object *item = json_object_new_object();
    ok = url && item &&
         !json_object_object_add(item, snake ? "item_uuid" : "itemUuid",
                                 json_object_new_string(uuid)) &&
         !json_object_object_add(item, snake ? "object_key" : "objectKey",
                                 json_object_new_string(key)) &&
         !json_object_object_add(item, snake ? "signed_url" : "signedUrl",
                                 json_object_new_string(url)) &&
         !json_object_array_add(results, item);
    if (!ok)
      json_object_put(item);
    free(url);
  }
  free(base);
  const char *s = ok ? json_object_to_json_string_ext(
                           root, JSON_C_TO_STRING_PLAIN |
                                     JSON_C_TO_STRING_NOSLASHESCAPE)
                     : NULL;
  enum MHD_Result ret = s ? bks_respond_json(r, 200, s, NULL) : MHD_NO;
  json_object_put(root);
  if (s) {
    pthread_mutex_lock(&srv->mu);
    srv->counters.presign_requests++;
    srv->counters.urls_issued += (unsigned long long)count;
    pthread_mutex_unlock(&srv->mu);
  }
  return ret;
}

/* ---- v1 envelope (§6) ------------------------------------------------------------ */

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


static enum MHD_Result v1_error(bks_req *r, int status, const char *code,
                                const char *why) {
  return bks_respond_v1_error(r, status, code, why);
}

/* The headers of §6 that a server can hold a client to. */
static const char *v1_headers(bks_req *r) {
  const char *accept = bks_req_header(r, "Accept");
  const char *ct = bks_req_header(r, "Content-Type");
  if (!ct || strcmp(ct, "application/json") != 0)
    return "Content-Type must be application/json";
  if (!accept || strcmp(accept, "application/json") != 0)
    return "Accept must be application/json";
  return NULL;
}

static enum MHD_Result v1_complete(bks_req *r) {
  bks_server *srv = r->srv;
  char keyhex[65];
  const char *why = NULL;
  int rc = bks_verify_v1(srv->keys, bks_req_header(r, "Authorization"),
                         r->buf, r->len, keyhex, &why);
  if (rc == -2)
    return v1_error(r, 401, "SSH_KEY_NOT_FOUND_ERROR", why);
  if (rc != 0)
    return v1_error(r, 401, "AUTHENTICATION_ERROR", why);
  bks_copy(r->rec.keyid, sizeof r->rec.keyid, keyhex, 64);
  if ((why = v1_headers(r)))
    return v1_error(r, 400, "INVALID_ARGUMENTS_ERROR", why);
  const char *rt = bks_req_header(r, "ResourceType");
  const char *rid = bks_req_header(r, "ResourceID");
  if (!rt || strcmp(rt, "dataset") != 0)
    return v1_error(r, 400, "INVALID_ARGUMENTS_ERROR",
                    "ResourceType must be dataset");
  if (!rid || !*rid)
    return v1_error(r, 400, "INVALID_ARGUMENTS_ERROR", "missing ResourceID");
  json_object *env = parse_json(r->buf, r->len);
  if (!env)
    return v1_error(r, 400, "INVALID_ARGUMENTS_ERROR",
                    "the body is not valid JSON");
  json_object *qt = NULL, *qm = NULL, *values = NULL, *v;
  int n = json_object_is_type(env, json_type_object)
              ? json_object_object_length(env)
              : 0;
  json_object_object_get_ex(env, "query_type", &qt);
  json_object_object_get_ex(env, "query_method", &qm);
  json_object_object_get_ex(env, "values", &values);
  if (n != 3 || !json_object_is_type(qt, json_type_string) ||
      !json_object_is_type(qm, json_type_string) ||
      !json_object_is_type(values, json_type_object) ||
      json_object_object_length(values) != 2 ||
      !json_object_object_get_ex(values, "uid", &v) ||
      !json_object_object_get_ex(values, "payload", &v)) {
    json_object_put(env);
    return v1_error(r, 400, "INVALID_ARGUMENTS_ERROR",
                    "the body must be {\"query_type\": str, "
                    "\"query_method\": \"GET\"|\"POST\", \"values\": "
                    "{\"uid\": ..., \"payload\": ...}}");
  }
  const char *qts = json_object_get_string(qt);
  const char *qms = json_object_get_string(qm);
  bks_copy(r->rec.query_type, sizeof r->rec.query_type, qts, strlen(qts));
  bks_copy(r->rec.query_method, sizeof r->rec.query_method, qms,
           strlen(qms));
  if (strcmp(qms, "GET") != 0 && strcmp(qms, "POST") != 0) {
    json_object_put(env);
    return v1_error(r, 400, "INVALID_ARGUMENTS_ERROR",
                    "query_method must be GET or POST");
  }
  pthread_mutex_lock(&srv->mu);
  long ds = bks_dataset_find_locked(srv, rid);
  pthread_mutex_unlock(&srv->mu);
  if (ds < 0) {
    json_object_put(env);
    return v1_error(r, 404, "RESOURCE_NOT_FOUND_ERROR",
                    "no such dataset (ResourceID)");
  }
  enum MHD_Result ret = bks_v1_dispatch(r, keyhex, env, (size_t)ds);
  json_object_put(env);
  return ret;
}

/* ---- the two entry points ----------------------------------------------------------- */

void bks_api_prepare(bks_req *r) {
  bks_server *srv = r->srv;
  const char *m = r->rec.method;
  r->early = 1; /* API refusals known now are answered now */
  switch (r->rec.endpoint) {
  case BKS_EP_STORAGE:
    r->early = 0;
    storage_prepare(r);
    return;
  case BKS_EP_OTHER:
    bks_reject(r, 404, "not found", "no such endpoint");
    return;
  case BKS_EP_PRESIGN:
    if (strcmp(m, "GET") != 0) {
      bks_reject(r, 405, "method not allowed", "presigned-urls takes GET");
      return;
    }
    if (r->rec.content_length > 0) {
      bks_reject(r, 400, "body", "a presign GET has no body");
      return;
    }
    break;
  case BKS_EP_PUBLIC:
    if (strcmp(m, "POST") != 0) {
      bks_reject(r, 405, "INVALID_ARGUMENTS_ERROR", "/public takes POST");
      return;
    }
    break;
  default:
    break;
  }
  if (r->rec.content_length >= 0 &&
      (unsigned long long)r->rec.content_length > srv->max_api_body) {
    bks_reject(r, 413, r->rec.endpoint == BKS_EP_PUBLIC
                           ? "INVALID_ARGUMENTS_ERROR"
                           : "too large",
               "request body too large");
    return;
  }
  r->early = 0;
  r->sink = BKS_SINK_BUFFER;
  r->limit = srv->max_api_body;
}

enum MHD_Result bks_api_complete(bks_req *r) {
  bks_server *srv = r->srv;
  if (r->reject_status) {
    switch (r->rec.endpoint) {
    case BKS_EP_STORAGE:
      return bks_respond_xml(r, r->reject_status, r->reject_code,
                             r->reject_msg);
    case BKS_EP_PUBLIC:
      return bks_respond_v1_error(r, r->reject_status, r->reject_code,
                                  r->reject_msg);
    default:
      return bks_respond_v2_error(r, r->reject_status, r->reject_msg, NULL);
    }
  }
  if (r->rec.endpoint == BKS_EP_STORAGE)
    return storage_complete(r);
  if (r->too_big)
    return r->rec.endpoint == BKS_EP_PUBLIC
               ? bks_respond_v1_error(r, 413, "INVALID_ARGUMENTS_ERROR",
                                      "request body too large")
               : bks_respond_v2_error(r, 413, "request body too large", NULL);
  if (r->rec.endpoint == BKS_EP_PUBLIC)
    return v1_complete(r);
  if (r->len > 0)
    return bks_respond_v2_error(r, 400, "a presign GET has no body", NULL);
  pthread_mutex_lock(&srv->mu);
  double now = srv->clock > 0 ? srv->clock : bk_now_real();
  pthread_mutex_unlock(&srv->mu);
  bks_sig_input in = {
      .method = r->rec.method,
      .target = r->uri,
      .body = r->buf,
      .body_len = r->len,
      .header = bks_req_header,
      .ctx = r,
      .now = now,
  };
  const char *reason = NULL;
  char keyhex[65];
  if (bks_verify_v2(srv->keys, &in, keyhex, &reason) != 0)
    return bks_respond_v2_error(r, 401, reason, NULL);
  bks_copy(r->rec.keyid, sizeof r->rec.keyid, keyhex, 64);
  return presign(r, keyhex);
}
