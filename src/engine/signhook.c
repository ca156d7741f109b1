/* engine/signhook.c - the request-signing hook (options.sign_request):
 * hand the signer each request as it will go out, and send the signer's
 * headers with it.
 *
 * The engine knows nothing of any signature scheme: the signer (for S3,
 * bulkup_s3_sign_request in src/cloud, installed by the program) sees the
 * method, URL, final headers and, with options.sign_payload, the body's
 * SHA-256, and adds lines. Runs on the slot's worker thread; the slot's
 * copy of the headers and its payload hash are the slot's alone. */
#include "internal.h"
#include "engine/engine.h"

#include <stdio.h>

/* What bulkup_request.internal_ points to. */
typedef struct bk_sign_ctx {
  struct curl_slist *out; /* the request's headers, then the signer's */
} bk_sign_ctx;

bulkup_err bulkup_request_add_header(bulkup_request *req, const char *line) {
  if (!req || !req->internal_ || !line || !strchr(line, ':') ||
      strpbrk(line, "\r\n"))
    return bk_error(BULKUP_EINVAL, "bulkup_request_add_header: a header "
                    "line is \"Name: value\", on one line");
  bk_sign_ctx *c = req->internal_;
  struct curl_slist *n = curl_slist_append(c->out, line);
  if (!n)
    return bk_error(BULKUP_ENOMEM, "out of memory for a header");
  c->out = n;
  return BULKUP_OK;
}

void bk_hook_sign_reset(bk_slot *s) {
  curl_slist_free_all(s->sig_headers);
  s->sig_headers = NULL;
  s->psha_valid = false;
}

bulkup_error_kind bk_hook_sign(bk_slot *s, const char *method,
                                  const char *url,
                                  struct curl_slist **headers,
                                  uint64_t body_start, uint64_t body_len,
                                  const void *mem, bulkup_request_kind kind) {
  struct bulkup_uploader *u = s->u;
  curl_slist_free_all(s->sig_headers);
  s->sig_headers = NULL;
  if (!u->opt.sign_request)
    return BULKUP_ERROR_NONE;

  const char *sha = NULL, *crc = NULL;
  if (u->opt.sign_payload || u->opt.sign_crc32c) {
    /* A retry of the same window reuses the hash: one extra read per item
     * (or part), not per attempt. Bodies in memory are small: hashed each
     * time. */
    if (mem || !s->psha_valid || s->psha_start != body_start ||
        s->psha_len != body_len) {
      s->psha_valid = false;
      if (!bk_source_sha256_hex(s, body_start, body_len, mem, s->psha,
                                u->opt.sign_crc32c ? s->pcrc : NULL)) {
        snprintf(s->message, sizeof s->message,
                 "cannot read source to compute its hashes for the "
                 "request signature");
        return BULKUP_ERROR_FILE;
      }
      s->psha_valid = !mem;
      s->psha_start = body_start;
      s->psha_len = body_len;
    }
    if (u->opt.sign_payload)
      sha = s->psha;
    if (u->opt.sign_crc32c)
      crc = s->pcrc;
  }

  size_t n = 0;
  for (const struct curl_slist *h = *headers; h; h = h->next)
    n++;
  const char **lines = bk_malloc((n + 1) * sizeof *lines);
  bk_sign_ctx ctx = {.out = NULL};
  bool ok = lines != NULL;
  size_t i = 0;
  for (const struct curl_slist *h = *headers; ok && h; h = h->next) {
    lines[i++] = h->data;
    struct curl_slist *c = curl_slist_append(ctx.out, h->data);
    if (!c)
      ok = false;
    else
      ctx.out = c;
  }
  if (!ok) {
    bk_free(lines);
    curl_slist_free_all(ctx.out);
    snprintf(s->message, sizeof s->message, "out of memory for headers");
    return BULKUP_ERROR_NOMEM;
  }
  lines[n] = NULL;
  bulkup_request req = {.method = method,
                        .url = url,
                        .headers = lines,
                        .body_offset = body_start,
                        .body_len = body_len,
                        .payload_sha256 = sha,
                        .payload_crc32c = crc,
                        .item = &s->res,
                        .internal_ = &ctx,
                        .add_header = bulkup_request_add_header,
                        .kind = kind};
  bulkup_err rc = u->opt.sign_request(u->opt.sign_userdata, &req);
  bk_free(lines);
  if (rc != BULKUP_OK) {
    curl_slist_free_all(ctx.out);
    snprintf(s->message, sizeof s->message, "request signing failed: %s",
             bulkup_last_error_message());
    return rc == BULKUP_ENOMEM ? BULKUP_ERROR_NOMEM : BULKUP_ERROR_INTERNAL;
  }
  s->sig_headers = ctx.out;
  *headers = s->sig_headers;
  return BULKUP_ERROR_NONE;
}
