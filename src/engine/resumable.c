/* engine/resumable.c - a resumable upload's state machine (the GCS
 * protocol: a POST starts a session, chunks are PUT to it with
 * Content-Range, a 308 says how much the server has, a status query asks
 * it). It runs inside a slot (bk_slot.rs says where it stands) and only
 * ever says what the slot does next (bk_rs_next): it never starts a
 * request or ends an item itself, and never calls slot.c. */
#include "internal.h"
#include "engine/engine.h"

#include <stdio.h>
#include <strings.h>

/* A 403 whose body says the signed URL expired (GCS: ExpiredToken). */
bool bk_says_expired(const bk_xfer *x, int status) {
  if (status != 403 || x->excerpt_len == 0)
    return false;
  char body[sizeof x->excerpt + 1];
  memcpy(body, x->excerpt, x->excerpt_len);
  body[x->excerpt_len] = '\0';
  return strcasestr(body, "expired") != NULL;
}

/* Journal the item's session URL (NULL: forget it). */
static void bk_rs_journal(bk_slot *s, const char *session) {
  struct bulkup_uploader *u = s->u;
  bk_item *j = s->x.item;
  if (!u->opt.journal || !j->journal_key)
    return;
  if (bulkup_journal_record_session(u->opt.journal, j->journal_key,
                                    s->x.size, bk_source_mtime(s),
                                    session) != BULKUP_OK) {
    bk_log(u, BULKUP_LOG_ERROR, "item %llu: resumable session not "
           "journalled: %s", (unsigned long long)j->index,
           bulkup_last_error_message());
    bk_run_journal_failed(u, bulkup_last_error_message());
  }
}

/* The session URL from a start's Location, resolved against the URL the
 * start was sent to (it may be relative); NULL if it is not http(s). */
static char *bk_rs_session_url(const char *base, const char *location) {
  CURLU *h = curl_url();
  char *got = NULL;
  char *out = NULL;
  if (h && curl_url_set(h, CURLUPART_URL, base, 0) == CURLUE_OK &&
      curl_url_set(h, CURLUPART_URL, location, 0) == CURLUE_OK &&
      curl_url_get(h, CURLUPART_URL, &got, 0) == CURLUE_OK &&
      bk_url_scheme_ok(got))
    out = bk_strdup(got);
  curl_free(got);
  curl_url_cleanup(h);
  return out;
}

/* The current chunk's length. */
static uint64_t bk_rs_chunk_len(const bk_slot *s) {
  uint64_t left = s->x.size - s->confirmed;
  uint64_t chunk = s->u->opt.resumable_chunk_size;
  return left < chunk ? left : chunk;
}

/* The headers of the resumable request about to be sent. The start
 * carries the item's headers (Content-Type, Cache-Control, Content-MD5 of
 * the whole item, the extra ones); chunks and queries only the extra
 * ones. */
static struct curl_slist *bk_rs_headers(bk_slot *s) {
  bk_item *j = s->x.item;
  bool ok = true;
  struct curl_slist *h = NULL;
  char line[128];
  unsigned long long total = (unsigned long long)s->x.size;
  if (s->rs == BK_RS_START) {
    for (struct curl_slist *i = s->headers; i; i = i->next)
      h = bk_slist_add(h, i->data, &ok);
    h = bk_slist_add(h, "x-goog-resumable: start", &ok);
    snprintf(line, sizeof line, "X-Upload-Content-Length: %llu", total);
    h = bk_slist_add(h, line, &ok);
  } else {
    if (s->rs == BK_RS_CHUNK)
      snprintf(line, sizeof line, "Content-Range: bytes %llu-%llu/%llu",
               (unsigned long long)s->confirmed,
               (unsigned long long)(s->confirmed + bk_rs_chunk_len(s) - 1),
               total);
    else
      snprintf(line, sizeof line, "Content-Range: bytes */%llu", total);
    h = bk_slist_add(h, line, &ok);
    if (!s->u->opt.expect_continue)
      h = bk_slist_add(h, "Expect:", &ok);
    for (size_t i = 0; j->headers && j->headers[i]; i++)
      h = bk_slist_add(h, j->headers[i], &ok);
  }
  if (!ok) {
    curl_slist_free_all(h);
    return NULL;
  }
  return h;
}

/* End the item as a protocol failure. */
static bk_rs_next bk_rs_fail(bk_slot *s, const char *why) {
  s->kind = BULKUP_ERROR_PROTOCOL;
  snprintf(s->message, sizeof s->message, "resumable upload: %s", why);
  return BK_RS_END;
}

/* Give up the resumable protocol for this item: one plain PUT of the
 * whole item. The requests made so far stay counted; the refused request
 * is not an attempt of the PUT, which gets the full retry allowance. */
static void bk_rs_to_plain(bk_slot *s, int status) {
  bulkup_result *res = &s->res;
  bk_log(s->u, BULKUP_LOG_INFO, "item %llu: the server does not take a "
         "resumable upload here (HTTP %d); sending it with one PUT: %s",
         (unsigned long long)s->x.item->index, status, res->url);
  bk_free(s->session);
  s->session = NULL;
  s->rs = BK_RS_NONE;
  res->resumable = false;
  if (res->attempts > 0)
    res->attempts--;
  s->rt.retries = 0;
  s->rt.conn_retries = 0;
}

/* A resumable request was answered (transport failures go the generic
 * way: retried, then continued by a status query). */
bk_rs_next bk_rs_after(bk_slot *s) {
  struct bulkup_uploader *u = s->u;
  bk_xfer *x = &s->x;
  bk_item *j = x->item;
  bulkup_result *res = &s->res;
  int st = s->o.http_status;
  if (s->o.curl != CURLE_OK || s->o.abort != BK_ABORT_NONE)
    return BK_RS_GENERIC;

  if (s->rs == BK_RS_START) {
    if ((st == 200 || st == 201) && x->location_truncated)
      return bk_rs_fail(s, "the session URL is too long");
    if ((st == 200 || st == 201) && x->location[0]) {
      char *sess = bk_rs_session_url(s->url, x->location);
      if (!sess)
        return bk_rs_fail(s, "the session URL is not an http(s) URL");
      bk_free(s->session);
      s->session = sess;
      s->confirmed = 0;
      s->rs = BK_RS_CHUNK;
      /* Failures of the start do not count against the chunks. */
      s->rt.retries = 0;
      s->rt.conn_retries = 0;
      bk_rs_journal(s, sess);
      bk_log(u, BULKUP_LOG_DEBUG, "item %llu: resumable session started",
             (unsigned long long)j->index);
      return BK_RS_SEND;
    }
    /* An expired signed URL is not a refusal of the protocol: the usual
     * way (a fresh URL, or the failure). */
    if (bk_says_expired(x, st))
      return BK_RS_GENERIC;
    /* No resumable uploads here: nginx answers 404, a GCS URL signed for
     * a PUT 403, a server without POST 405 or 501, a server that takes
     * any POST a 2xx without a Location. Plain PUTs for this server from
     * now on. */
    bool server_says_no = (st >= 200 && st < 300) || st == 403 ||
                          st == 404 || st == 405 || st == 501;
    if (server_says_no || (st >= 400 && st < 500 && st != 408 && st != 429)) {
      /* Other 4xx are this item's (a bad name, say): one plain PUT for
       * it, which will say so, and the next items still ask. */
      if (server_says_no)
        bk_run_set_origin_plain(u, s->url);
      bk_rs_to_plain(s, st);
      return BK_RS_SEND;
    }
    return BK_RS_GENERIC;
  }

  /* A chunk or a status query. */
  if (st >= 200 && st < 300 && s->rs == BK_RS_CHUNK &&
      s->confirmed + x->body_len < x->size) {
    /* "Done" before the last byte: this server took the chunk for the
     * whole object (it does not speak the protocol, yet answered the
     * start). One plain PUT of the whole item, plain PUTs from now on. */
    bk_run_set_origin_plain(u, s->url);
    bk_rs_to_plain(s, st);
    return BK_RS_SEND;
  }
  if (st == 308) {
    if (x->range_last == -2 || (x->range_last >= 0 &&
                                (uint64_t)x->range_last >= x->size))
      return bk_rs_fail(s, "the server's Range does not fit the item");
    uint64_t have = x->range_last < 0 ? 0 : (uint64_t)x->range_last + 1;
    bool was_chunk = s->rs == BK_RS_CHUNK;
    bool progress = have > s->confirmed;
    if (have < s->confirmed)
      bk_log(u, BULKUP_LOG_WARN, "item %llu: the server now has %llu bytes, "
             "fewer than the %llu it confirmed; going on from there",
             (unsigned long long)j->index, (unsigned long long)have,
             (unsigned long long)s->confirmed);
    s->confirmed = have;
    if (progress) {
      /* The retry limits count failures in a row without progress. */
      s->rt.retries = 0;
      s->rt.conn_retries = 0;
    }
    if (have == x->size) {
      /* Every byte is there but the upload is not finished: a query
       * finishes it; a query answered so is the server's fault. */
      if (!was_chunk)
        return bk_rs_fail(s, "the server has every byte but does not "
                             "finish the upload");
      s->rs = BK_RS_QUERY;
      return BK_RS_SEND;
    }
    s->rs = BK_RS_CHUNK;
    if (was_chunk && !progress) {
      /* A chunk the server did not keep: a failure like any other, so a
       * server that keeps nothing cannot make us loop. */
      s->kind = BULKUP_ERROR_PROTOCOL;
      snprintf(s->message, sizeof s->message,
               "resumable upload: the server kept none of a chunk");
      return BK_RS_FAILED;
    }
    return BK_RS_SEND;
  }
  if ((st == 404 || st == 410) && s->restarts < 1) {
    /* The session is gone (expired, or the server lost it): once, start a
     * new one. */
    bk_rs_journal(s, NULL);
    s->restarts++;
    res->attempts++;
    bk_log(u, BULKUP_LOG_WARN, "item %llu: the server no longer knows the "
           "resumable session (HTTP %d); starting a new one: %s",
           (unsigned long long)j->index, st, res->url);
    bk_free(s->session);
    s->session = NULL;
    s->confirmed = 0;
    s->rs = BK_RS_START;
    return BK_RS_SEND;
  }
  return BK_RS_GENERIC;
}

/* ---- what the slot asks ------------------------------------------------ */

void bk_rs_begin(bk_slot *s) {
  struct bulkup_uploader *u = s->u;
  bk_item *j = s->x.item;
  bulkup_result *res = &s->res;
  /* Only plain HTTP items have resumable (GCS-style) sessions: S3
   * objects go in parts above their own threshold, Azure blobs in
   * blocks. The item's storage says which (AUTO was resolved at submit
   * from the URL, as AZURE or HTTP), not the URL it is sent to now (a
   * refreshed one, say). */
  if (!(s->x.size > 0 && s->x.size >= u->opt.resumable_threshold &&
        !bk_run_origin_is_plain(u, s->url) &&
        j->storage == BULKUP_STORAGE_HTTP))
    return;
  res->resumable = true;
  res->attempts = 1;
  s->rs = BK_RS_START;
  if (u->opt.journal && j->journal_key) {
    char *sess = bulkup_journal_session(u->opt.journal, j->journal_key,
                                        s->x.size, bk_source_mtime(s));
    if (sess && bk_url_scheme_ok(sess)) {
      /* A rerun: ask the journalled session what it has. */
      s->session = sess;
      s->rs = BK_RS_QUERY;
      bk_log(u, BULKUP_LOG_INFO, "item %llu: resuming its journalled "
             "session: %s", (unsigned long long)j->index, res->url);
    } else {
      bk_free(sess);
    }
  }
}

bool bk_rs_request(bk_slot *s, const char **url, struct curl_slist **headers,
                   uint64_t *body_start, uint64_t *body_len) {
  /* The start and the queries send nothing, a chunk a window of the
   * source. */
  curl_slist_free_all(s->rs_headers);
  s->rs_headers = bk_rs_headers(s);
  if (!s->rs_headers)
    return false;
  *headers = s->rs_headers;
  *body_start = 0;
  *body_len = 0;
  if (s->rs != BK_RS_START)
    *url = s->session;
  if (s->rs == BK_RS_CHUNK) {
    *body_start = s->confirmed;
    *body_len = bk_rs_chunk_len(s);
  }
  return true;
}

void bk_rs_retrying(bk_slot *s, bk_rs_next next) {
  s->res.attempts++;
  /* A chunk's fate is unknown: ask the server what it has (unless its own
   * answer said). */
  if (s->rs == BK_RS_CHUNK && next != BK_RS_FAILED)
    s->rs = BK_RS_QUERY;
}

void bk_rs_reset(bk_slot *s) {
  curl_slist_free_all(s->rs_headers);
  s->rs_headers = NULL;
  /* An unfinished session stays in the journal for a rerun. */
  bk_free(s->session);
  s->session = NULL;
  s->rs = BK_RS_NONE;
}
