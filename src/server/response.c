/*
 * response.c - answers (plain, JSON, the v1 and v2 error shapes, the
 * GCS-like XML error) and the request log: every answer records its
 * request (status, error) just before the response is queued.
 *
 * Locking: srv->mu guards the log and the counters; srv->cv is signalled
 * when a request is recorded. No MHD call is made with srv->mu held.
 */
#include "bks_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the log -------------------------------------------------------------- */

static void log_request(bks_server *srv, const bks_request *rec) {
  pthread_mutex_lock(&srv->mu);
  if (rec->status == 401)
    srv->counters.auth_failures++;
  if (srv->keep_log) {
    if (srv->nreqs == srv->capreqs) {
      size_t cap = srv->capreqs ? 2 * srv->capreqs : 64;
      bks_request *r = realloc(srv->reqs, cap * sizeof *r);
      if (r) {
        srv->reqs = r;
        srv->capreqs = cap;
      }
    }
    if (srv->nreqs < srv->capreqs) /* else unrecorded; tests will notice */
      srv->reqs[srv->nreqs++] = *rec;
  }
  pthread_cond_broadcast(&srv->cv);
  pthread_mutex_unlock(&srv->mu);
}

void bks_req_record(bks_req *r) {
  if (r->recorded)
    return;
  r->recorded = 1;
  if (r->sha) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (EVP_DigestFinal_ex(r->sha, d, &n))
      bk_hex_encode(d, n, r->rec.body_sha256, false);
    EVP_MD_CTX_free(r->sha);
    r->sha = NULL;
  }
  log_request(r->srv, &r->rec);
}

/* ---- responses ------------------------------------------------------------------ */

/* Add "Name: value\r\n" lines to a response. */
static void add_headers(struct MHD_Response *resp, const char *lines) {
  char *copy = bks_strdup(lines);
  char *save = NULL;
  for (char *line = copy ? strtok_r(copy, "\r\n", &save) : NULL; line;
       line = strtok_r(NULL, "\r\n", &save)) {
    char *colon = strchr(line, ':');
    if (!colon || colon == line)
      continue;
    *colon = '\0';
    char *value = colon + 1;
    while (*value == ' ' || *value == '\t')
      value++;
    MHD_add_response_header(resp, line, value);
  }
  free(copy);
}

/* Record the request with `status`, then queue the response. */
enum MHD_Result bks_queue(bks_req *r, int status,
                          struct MHD_Response *resp) {
  if (!resp)
    return MHD_NO;
  if (r->act.headers)
    add_headers(resp, r->act.headers);
  r->rec.status = status;
  bks_req_record(r);
  r->answered = 1;
  enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
  MHD_destroy_response(resp);
  return ret;
}

struct MHD_Response *bks_text_response(const char *body) {
  return MHD_create_response_from_buffer(body ? strlen(body) : 0,
                                         (void *)(body ? body : ""),
                                         MHD_RESPMEM_MUST_COPY);
}

enum MHD_Result bks_respond_ex(bks_req *r, int status, const char *ctype,
                               const char *body, size_t len,
                               const char *headers, const char *error) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      len, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
  if (!resp)
    return MHD_NO;
  if (ctype)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  if (headers)
    add_headers(resp, headers);
  bks_copy(r->rec.error, sizeof r->rec.error, error, error ? strlen(error) : 0);
  return bks_queue(r, status, resp);
}

enum MHD_Result bks_respond(bks_req *r, int status, const char *ctype,
                            const char *body, size_t len, const char *error) {
  return bks_respond_ex(r, status, ctype, body, len, NULL, error);
}

enum MHD_Result bks_respond_json(bks_req *r, int status, const char *json,
                                 const char *error) {
  return bks_respond(r, status, "application/json", json, strlen(json),
                     error);
}

/* JSON string escaping for the fixed reasons (quotes and backslashes). */
static char *json_quote(const char *s) {
  size_t n = strlen(s);
  char *out = malloc(2 * n + 3);
  if (!out)
    return NULL;
  size_t k = 0;
  out[k++] = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      out[k++] = '\\';
    out[k++] = c < 0x20 ? ' ' : (char)c;
  }
  out[k++] = '"';
  out[k] = '\0';
  return out;
}

enum MHD_Result bks_respond_v2_error(bks_req *r, int status,
                                     const char *reason,
                                     const char *headers) {
  char *q = json_quote(reason);
  char *body = q ? bks_asprintf("{\"message\": %s}", q) : NULL;
  free(q);
  if (!body)
    return MHD_NO;
  enum MHD_Result ret = bks_respond_ex(r, status, "application/json", body,
                                       strlen(body), headers, reason);
  free(body);
  return ret;
}

enum MHD_Result bks_respond_v1_error(bks_req *r, int status,
                                     const char *code, const char *reason) {
  char *q = json_quote(reason);
  char *body = q ? bks_asprintf("{\"status\": %d, \"response\": [\"%s\"], "
                                "\"payload\": %s}",
                                status, code, q)
                 : NULL;
  char *err = bks_asprintf("%s: %s", code, reason);
  free(q);
  enum MHD_Result ret = MHD_NO;
  if (body && err)
    ret = bks_respond(r, status, "application/json", body, strlen(body),
                      err);
  free(body);
  free(err);
  return ret;
}

/* XML text escaping. */
static char *xml_escape(const char *s) {
  size_t n = strlen(s);
  char *out = malloc(6 * n + 1);
  if (!out)
    return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const char *rep = NULL;
    switch (s[i]) {
    case '<': rep = "&lt;"; break;
    case '>': rep = "&gt;"; break;
    case '&': rep = "&amp;"; break;
    case '\'': rep = "&apos;"; break;
    case '"': rep = "&quot;"; break;
    default: break;
    }
    if (rep) {
      memcpy(out + k, rep, strlen(rep));
      k += strlen(rep);
    } else {
      out[k++] = s[i];
    }
  }
  out[k] = '\0';
  return out;
}

char *bks_xml_error(const char *code, const char *message) {
  char *m = xml_escape(message);
  char *body =
      m ? bks_asprintf("<?xml version='1.0' encoding='UTF-8'?><Error><Code>%s"
                       "</Code><Message>%s</Message></Error>",
                       code, m)
        : NULL;
  free(m);
  return body;
}

enum MHD_Result bks_respond_xml(bks_req *r, int status, const char *code,
                                const char *message) {
  char *body = bks_xml_error(code, message);
  if (!body)
    return MHD_NO;
  enum MHD_Result ret = bks_respond(r, status, "application/xml; charset=UTF-8",
                                    body, strlen(body), code);
  free(body);
  return ret;
}

const char *bks_req_header(void *ctx, const char *name) {
  bks_req *r = ctx;
  return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}
