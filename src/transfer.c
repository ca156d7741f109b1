/* transfer.c - one item on one slot of a worker: a state machine that
 * opens the source, runs attempts on the slot's libcurl easy handle inside
 * the worker's multi handle, enforces the per-phase timeouts, schedules
 * retries with backoff as timers (the slot stays reserved for its item
 * meanwhile), and describes the outcome.
 *
 * Everything here runs on the worker's thread; the only shared state it
 * touches is the uploader's counters (under u->lock, in source.c and
 * uploader.c), the retry budget (lock-free) and the journal (its own
 * lock). Connections live in the worker's multi handle and are reused from
 * item to item; each slot's easy handle keeps its TLS session cache. */
#include "internal.h"
#include "uploader.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>

void bk_log(struct bulkup_uploader *u, bulkup_log_level level,
            const char *fmt, ...) {
  if (!u->opt.log || level > u->opt.log_level)
    return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  /* URLs in messages are redacted already; this catches whatever else a
   * message quotes (a server's words, an error text). */
  size_t n;
  char *red = bk_redact_text(buf, strlen(buf), &n);
  u->opt.log(u->opt.userdata, level, red ? red : "(message withheld: out of memory)");
  bk_free(red);
}

/* ---- libcurl callbacks (userdata: the slot) --------------------------- */

static size_t bk_write_cb(char *src, size_t size, size_t nmemb, void *ud) {
  bk_slot *sl = ud;
  bk_xfer *x = &sl->x;
  size_t n = size * nmemb;
  size_t room = sizeof x->excerpt - x->excerpt_len;
  size_t take = n < room ? n : room;
  memcpy(x->excerpt + x->excerpt_len, src, take);
  x->excerpt_len += take;
  return n;
}

/* A resumable upload's "Range: bytes=0-N" (the server has bytes 0..N):
 * N, or -2 when it is not of that form. */
static int64_t bk_parse_range(const char *v, size_t vl) {
  if (vl < 9 || strncasecmp(v, "bytes=0-", 8) != 0)
    return -2;
  uint64_t n = 0;
  for (size_t i = 8; i < vl; i++) {
    if (v[i] < '0' || v[i] > '9' || n > (UINT64_C(1) << 62) / 10)
      return -2;
    n = n * 10 + (uint64_t)(v[i] - '0');
  }
  return (int64_t)n;
}

static size_t bk_header_cb(char *line, size_t size, size_t nmemb, void *ud) {
  bk_slot *sl = ud;
  bk_xfer *x = &sl->x;
  size_t len = size * nmemb;
  const char *v;
  size_t vl;
  double secs;
  if (bk_header_is_status(line, len)) {
    /* A new response (after a 100 Continue, say): forget the last one. */
    x->retry_after = -1;
    x->location[0] = '\0';
    x->location_truncated = false;
    x->range_last = -1;
    x->excerpt_len = 0;
  } else if (bk_header_retry_after(line, len, time(NULL), &secs)) {
    x->retry_after = secs;
  } else if (bk_header_match(line, len, "Location", &v, &vl)) {
    size_t n = vl < sizeof x->location - 1 ? vl : sizeof x->location - 1;
    memcpy(x->location, v, n);
    x->location[n] = '\0';
    x->location_truncated = n < vl;
  } else if (bk_header_match(line, len, "Range", &v, &vl)) {
    x->range_last = bk_parse_range(v, vl);
  }
  return len;
}

static int bk_prereq_cb(void *ud, char *conn_primary_ip, char *conn_local_ip,
                        int conn_primary_port, int conn_local_port) {
  BK_UNUSED(conn_primary_ip);
  BK_UNUSED(conn_local_ip);
  BK_UNUSED(conn_primary_port);
  BK_UNUSED(conn_local_port);
  bk_slot *sl = ud;
  bk_xfer *x = &sl->x;
  /* The connection is up (new or reused); a request is about to be sent,
   * and its write phase starts now. libcurl may call this more than once
   * per attempt: when a reused connection dies before any response,
   * libcurl re-sends the request on a fresh one by itself. Each request
   * gets fresh phase state (or the re-sent body would run under the read
   * timeout of the first) and is counted. */
  x->requests++;
  if (x->requests > 1 && sl->rs == BK_RS_CHUNK && x->ulnow > 0) {
    /* libcurl would send the whole chunk again on a fresh connection; the
     * server may have kept what the first connection carried. Ask it
     * instead. (A stale kept-alive connection that carried no byte of
     * the body is re-sent by libcurl as usual.) */
    x->abort = BK_ABORT_CONN_LOST;
    return CURL_PREREQFUNC_ABORT;
  }
  x->bytes_earlier += (uint64_t)x->ulnow;
  x->ulnow = 0;
  x->connected = true;
  x->body_sent = false;
  x->last_up = bk_now();
  if (x->body_len == 0) {
    x->body_sent = true;
    x->body_sent_at = x->last_up;
  }
  return CURL_PREREQFUNC_OK;
}

static int bk_xferinfo_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow,
                          curl_off_t ultotal, curl_off_t ulnow) {
  BK_UNUSED(dltotal);
  BK_UNUSED(dlnow);
  BK_UNUSED(ultotal);
  bk_slot *sl = ud;
  bk_xfer *x = &sl->x;
  if (atomic_load_explicit(&sl->u->cancelled, memory_order_relaxed)) {
    x->abort = BK_ABORT_CANCEL;
    return 1;
  }
  if (ulnow > x->ulnow) {
    atomic_fetch_add_explicit(&sl->u->bytes_sent,
                              (uint_fast64_t)(ulnow - x->ulnow),
                              memory_order_relaxed);
    x->ulnow = ulnow;
    x->last_up = bk_now();
    if (x->connected && (uint64_t)ulnow >= x->body_len && !x->body_sent) {
      x->body_sent = true;
      x->body_sent_at = x->last_up;
    }
  }
  return 0;
}

/* ---- the easy handle ------------------------------------------------- */

static bulkup_err bk_setup_easy(bk_slot *s) {
  struct bulkup_uploader *u = s->u;
  CURL *e = curl_easy_init();
  if (!e)
    return bk_error(BULKUP_ENOMEM, "curl_easy_init failed");
  bk_curl_common common = {.connect_timeout = u->policy.connect_timeout,
                           .insecure = u->opt.insecure,
                           .ca_file = u->opt.ca_file,
                           .user_agent = u->opt.user_agent,
                           .errbuf = s->errbuf};
  CURLcode rc = bk_curl_setup_common(e, &common);
#define BK_SET(opt, val)                                                      \
  do {                                                                        \
    if (rc == CURLE_OK)                                                       \
      rc = curl_easy_setopt(e, opt, val);                                     \
  } while (0)
  BK_SET(CURLOPT_PRIVATE, (void *)s);
  BK_SET(CURLOPT_UPLOAD, 1L);
  BK_SET(CURLOPT_READFUNCTION, bk_source_read_cb);
  BK_SET(CURLOPT_READDATA, s);
  BK_SET(CURLOPT_SEEKFUNCTION, bk_source_seek_cb);
  BK_SET(CURLOPT_SEEKDATA, s);
  BK_SET(CURLOPT_WRITEFUNCTION, bk_write_cb);
  BK_SET(CURLOPT_WRITEDATA, s);
  BK_SET(CURLOPT_HEADERFUNCTION, bk_header_cb);
  BK_SET(CURLOPT_HEADERDATA, s);
  BK_SET(CURLOPT_PREREQFUNCTION, bk_prereq_cb);
  BK_SET(CURLOPT_PREREQDATA, s);
  BK_SET(CURLOPT_XFERINFOFUNCTION, bk_xferinfo_cb);
  BK_SET(CURLOPT_XFERINFODATA, s);
  BK_SET(CURLOPT_NOPROGRESS, 0L);
  BK_SET(CURLOPT_TCP_KEEPALIVE, 1L);
  if (u->opt.upload_buffer_size)
    BK_SET(CURLOPT_UPLOAD_BUFFERSIZE, (long)u->opt.upload_buffer_size);
  if (u->share)
    BK_SET(CURLOPT_SHARE, u->share);
#undef BK_SET
  if (rc != CURLE_OK) {
    curl_easy_cleanup(e);
    return bk_error(rc == CURLE_OUT_OF_MEMORY ? BULKUP_ENOMEM : BULKUP_ECURL,
                    "libcurl setup failed: %s", curl_easy_strerror(rc));
  }
  s->easy = e;
  s->posting = false;
  return BULKUP_OK;
}

static struct curl_slist *bk_build_headers(bk_slot *s, bk_job *j,
                                           const char *md5) {
  bool ok = true;
  struct curl_slist *h = NULL;
  char line[1024];
  snprintf(line, sizeof line, "Content-Type: %s", j->content_type);
  h = bk_slist_add(h, line, &ok);
  if (j->cache_control) {
    snprintf(line, sizeof line, "Cache-Control: %s", j->cache_control);
    h = bk_slist_add(h, line, &ok);
  }
  if (md5) {
    snprintf(line, sizeof line, "Content-MD5: %s", md5);
    h = bk_slist_add(h, line, &ok);
  }
  if (!s->u->opt.expect_continue)
    h = bk_slist_add(h, "Expect:", &ok);
  for (size_t i = 0; j->headers && j->headers[i]; i++)
    h = bk_slist_add(h, j->headers[i], &ok);
  if (!ok) {
    curl_slist_free_all(h);
    return NULL;
  }
  return h;
}

/* A 403 whose body says the signed URL expired (GCS: ExpiredToken). */
static bool bk_says_expired(const bk_xfer *x, int status) {
  if (status != 403 || x->excerpt_len == 0)
    return false;
  char body[sizeof x->excerpt + 1];
  memcpy(body, x->excerpt, x->excerpt_len);
  body[x->excerpt_len] = '\0';
  return strcasestr(body, "expired") != NULL;
}

static void bk_describe_failure(bk_slot *s, bulkup_error_kind kind,
                                const bk_outcome *o, int attempts) {
  bk_xfer *x = &s->x;
  switch (kind) {
  case BULKUP_ERROR_HTTP_STATUS:
    if (o->http_status >= 300 && o->http_status < 400) {
      char *loc = x->location[0] ? bulkup_redact_url(x->location) : NULL;
      snprintf(s->message, sizeof s->message,
               "HTTP %d: redirect not followed (Location: %s)", o->http_status,
               loc ? loc : "none");
      bk_free(loc);
    } else {
      snprintf(s->message, sizeof s->message, "HTTP %d after %d attempt%s",
               o->http_status, attempts, attempts == 1 ? "" : "s");
    }
    break;
  case BULKUP_ERROR_TIMEOUT_WRITE:
    snprintf(s->message, sizeof s->message,
             "write timeout: no body progress for %.3g s (%llu of %llu bytes "
             "sent) after %d attempt%s",
             s->u->policy.write_timeout, (unsigned long long)x->ulnow,
             (unsigned long long)x->body_len, attempts,
             attempts == 1 ? "" : "s");
    break;
  case BULKUP_ERROR_TIMEOUT_READ:
    snprintf(s->message, sizeof s->message,
             "read timeout: no complete response %.3g s after the body was "
             "sent, after %d attempt%s",
             s->u->policy.read_timeout, attempts, attempts == 1 ? "" : "s");
    break;
  case BULKUP_ERROR_FILE:
    snprintf(s->message, sizeof s->message, "cannot read source: %s",
             x->read_errno ? strerror(x->read_errno) : "read callback failed");
    break;
  case BULKUP_ERROR_FILE_CHANGED:
    snprintf(s->message, sizeof s->message,
             "source changed while it was being uploaded");
    break;
  case BULKUP_ERROR_CANCELLED:
    snprintf(s->message, sizeof s->message, "cancelled");
    break;
  case BULKUP_ERROR_PROTOCOL:
    /* bk_rs_after's own description, if it gave one. */
    if (strncmp(s->message, "resumable upload:", 17) == 0)
      break;
    /* fall through */
  default:
    snprintf(s->message, sizeof s->message, "%s after %d attempt%s",
             s->errbuf[0] ? s->errbuf : curl_easy_strerror(o->curl), attempts,
             attempts == 1 ? "" : "s");
    break;
  }
}


/* ---- the worker's handles ---------------------------------------------- */

bulkup_err bk_worker_init_curl(bk_worker *w) {
  w->slots = bk_calloc(w->nslots, sizeof *w->slots);
  if (!w->slots)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  for (unsigned i = 0; i < w->nslots; i++) {
    w->slots[i].u = w->u;
    w->slots[i].w = w;
    w->slots[i].x.fd = -1;
  }
  w->multi = curl_multi_init();
  if (!w->multi)
    return bk_error(BULKUP_ENOMEM, "curl_multi_init failed");
  /* An idle connection per slot, and a few more in case items alternate
   * between hosts. One transfer per connection (no HTTP/2 multiplexing):
   * each slot's phases, timeouts and faults stay its own, and the server
   * sees as many connections as there are slots. */
  curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, (long)w->nslots + 4);
  curl_multi_setopt(w->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
  for (unsigned i = 0; i < w->nslots; i++) {
    bulkup_err rc = bk_setup_easy(&w->slots[i]);
    if (rc != BULKUP_OK)
      return rc; /* bk_worker_cleanup_curl frees what was made */
  }
  return BULKUP_OK;
}

void bk_worker_cleanup_curl(bk_worker *w) {
  for (unsigned i = 0; w->slots && i < w->nslots; i++) {
    bk_slot *s = &w->slots[i];
    /* Workers end with every slot idle; a handle is never left in the
     * multi. */
    if (s->easy)
      curl_easy_cleanup(s->easy);
    s->easy = NULL;
    curl_slist_free_all(s->headers);
    s->headers = NULL;
    bk_free(s->buf);
    s->buf = NULL;
    bk_free(s->redacted_url);
    s->redacted_url = NULL;
    free(s->fresh_url);
    s->fresh_url = NULL;
    curl_slist_free_all(s->rs_headers);
    s->rs_headers = NULL;
    bk_free(s->session);
    s->session = NULL;
  }
  if (w->multi)
    curl_multi_cleanup(w->multi);
  w->multi = NULL;
  bk_free(w->slots);
  w->slots = NULL;
}

/* ---- resumable uploads: helpers ----------------------------------------- */

/* The length of a URL's scheme://host:port prefix. */
static size_t bk_origin_len(const char *url) {
  const char *p = strstr(url, "://");
  if (!p)
    return strlen(url);
  p += 3;
  return (size_t)(p - url) + strcspn(p, "/?#");
}

/* Did this URL's server refuse a resumable session start earlier? */
static bool bk_origin_is_plain(struct bulkup_uploader *u, const char *url) {
  size_t n = bk_origin_len(url);
  bool found = false;
  bk_mutex_lock(&u->lock);
  for (unsigned i = 0; i < u->n_plain_origins && !found; i++)
    found = strlen(u->plain_origins[i]) == n &&
            strncasecmp(u->plain_origins[i], url, n) == 0;
  bk_mutex_unlock(&u->lock);
  return found;
}

static void bk_origin_set_plain(struct bulkup_uploader *u, const char *url) {
  size_t n = bk_origin_len(url);
  char *o = bk_strndup(url, n);
  if (!o)
    return; /* only a shortcut: the next large item asks again */
  bk_mutex_lock(&u->lock);
  for (unsigned i = 0; i < u->n_plain_origins; i++) {
    if (strlen(u->plain_origins[i]) == n &&
        strncasecmp(u->plain_origins[i], url, n) == 0) {
      bk_mutex_unlock(&u->lock);
      bk_free(o);
      return;
    }
  }
  unsigned cap = (unsigned)BK_ARRAY_LEN(u->plain_origins);
  if (u->n_plain_origins == cap) {
    bk_free(u->plain_origins[0]);
    memmove(&u->plain_origins[0], &u->plain_origins[1],
            (cap - 1) * sizeof u->plain_origins[0]);
    u->n_plain_origins--;
  }
  u->plain_origins[u->n_plain_origins++] = o;
  bk_mutex_unlock(&u->lock);
}

/* The journal's modification time of the item's source. */
static int64_t bk_journal_mtime(const bk_slot *s) {
  if (s->x.job->source != BULKUP_SOURCE_FILE)
    return 0;
  return (int64_t)s->x.st.st_mtim.tv_sec * 1000000000LL +
         s->x.st.st_mtim.tv_nsec;
}

/* Journal the item's session URL (NULL: forget it). */
static void bk_rs_journal(bk_slot *s, const char *session) {
  struct bulkup_uploader *u = s->u;
  bk_job *j = s->x.job;
  if (!u->opt.journal || !j->journal_key)
    return;
  if (bulkup_journal_record_session(u->opt.journal, j->journal_key,
                                    s->x.size, bk_journal_mtime(s),
                                    session) != BULKUP_OK)
    bk_log(u, BULKUP_LOG_ERROR, "item %llu: resumable session not "
           "journalled: %s", (unsigned long long)j->index,
           bulkup_last_error_message());
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
  bk_job *j = s->x.job;
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

/* ---- the slot's state machine ------------------------------------------ */

static void bk_slot_attempt(bk_slot *s);
static void bk_slot_end(bk_slot *s);

/* What bk_rs_after made of a resumable request's answer. */
typedef enum bk_rs_next {
  BK_RS_HANDLED,  /* the next request is under way, or the item ended */
  BK_RS_GENERIC,  /* decide as for a plain PUT (retry, fail, succeed) */
  BK_RS_FAILED    /* a failure to retry under the usual limits (kind set) */
} bk_rs_next;

/* End the item as a protocol failure. */
static bk_rs_next bk_rs_fail(bk_slot *s, const char *why) {
  s->kind = BULKUP_ERROR_PROTOCOL;
  snprintf(s->message, sizeof s->message, "resumable upload: %s", why);
  bk_slot_end(s);
  return BK_RS_HANDLED;
}

/* Give up the resumable protocol for this item: one plain PUT of the
 * whole item. The requests made so far stay counted; the refused request
 * is not an attempt of the PUT, which gets the full retry allowance. */
static void bk_rs_to_plain(bk_slot *s, int status) {
  bulkup_result *res = &s->res;
  bk_log(s->u, BULKUP_LOG_INFO, "item %llu: the server does not take a "
         "resumable upload here (HTTP %d); sending it with one PUT: %s",
         (unsigned long long)s->x.job->index, status, res->url);
  bk_free(s->session);
  s->session = NULL;
  s->rs = BK_RS_NONE;
  res->resumable = false;
  if (res->attempts > 0)
    res->attempts--;
  s->rt.retries = 0;
  s->rt.conn_retries = 0;
  bk_slot_attempt(s);
}

/* A resumable request was answered (transport failures go the generic
 * way: retried, then continued by a status query). */
static bk_rs_next bk_rs_after(bk_slot *s) {
  struct bulkup_uploader *u = s->u;
  bk_xfer *x = &s->x;
  bk_job *j = x->job;
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
      bk_slot_attempt(s);
      return BK_RS_HANDLED;
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
        bk_origin_set_plain(u, s->url);
      bk_rs_to_plain(s, st);
      return BK_RS_HANDLED;
    }
    return BK_RS_GENERIC;
  }

  /* A chunk or a status query. */
  if (st >= 200 && st < 300 && s->rs == BK_RS_CHUNK &&
      s->confirmed + x->body_len < x->size) {
    /* "Done" before the last byte: this server took the chunk for the
     * whole object (it does not speak the protocol, yet answered the
     * start). One plain PUT of the whole item, plain PUTs from now on. */
    bk_origin_set_plain(u, s->url);
    bk_rs_to_plain(s, st);
    return BK_RS_HANDLED;
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
      bk_slot_attempt(s);
      return BK_RS_HANDLED;
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
    bk_slot_attempt(s);
    return BK_RS_HANDLED;
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
    bk_slot_attempt(s);
    return BK_RS_HANDLED;
  }
  return BK_RS_GENERIC;
}

/* The item ends: report it and free the slot. */
static void bk_slot_complete(bk_slot *s) {
  bk_job *j = s->x.job;
  bk_item_done(s->u, &s->res);
  bk_free(j);
  s->x.job = NULL;
  s->state = BK_SLOT_IDLE;
  s->w->busy--;
}

/* The item's attempts are over (s->kind says how): record the result. */
static void bk_slot_end(bk_slot *s) {
  struct bulkup_uploader *u = s->u;
  bulkup_result *res = &s->res;
  bk_job *j = s->x.job;
  bulkup_error_kind kind = s->kind;
  curl_slist_free_all(s->headers);
  s->headers = NULL;
  curl_slist_free_all(s->rs_headers);
  s->rs_headers = NULL;
  /* An unfinished session stays in the journal for a rerun. */
  bk_free(s->session);
  s->session = NULL;
  s->rs = BK_RS_NONE;

  if (kind == BULKUP_ERROR_NONE) {
    res->status = BULKUP_ITEM_SUCCEEDED;
    res->error = BULKUP_ERROR_NONE;
    if (u->opt.journal && j->journal_key) {
      if (bulkup_journal_record(u->opt.journal, j->journal_key, s->x.size,
                                bk_journal_mtime(s)) != BULKUP_OK)
        bk_log(u, BULKUP_LOG_ERROR, "item %llu: not journalled: %s",
               (unsigned long long)j->index, bulkup_last_error_message());
    }
    bk_retry_succeeded(&u->budget, &s->rt);
  } else {
    res->error = kind;
    res->status = kind == BULKUP_ERROR_CANCELLED ? BULKUP_ITEM_CANCELLED
                                                 : BULKUP_ITEM_FAILED;
    if (kind != BULKUP_ERROR_RETRY_BUDGET)
      bk_describe_failure(s, kind, &s->o, res->attempts);
    if (s->x.excerpt_len && s->o.http_status >= 300) {
      res->response_excerpt = s->x.excerpt;
      res->response_excerpt_len = s->x.excerpt_len;
    }
    bk_log(u, res->status == BULKUP_ITEM_CANCELLED ? BULKUP_LOG_INFO
                                                    : BULKUP_LOG_WARN,
           "item %llu %s: %s: %s", (unsigned long long)j->index,
           bulkup_item_status_name(res->status), s->message, res->url);
  }
  bk_source_close(s);
  res->elapsed_s = bk_now() - s->t0;
  bk_slot_complete(s);
}

void bk_slot_start(bk_slot *s, bk_job *j) {
  struct bulkup_uploader *u = s->u;
  bulkup_result *res = &s->res;
  s->t0 = bk_now();
  s->w->busy++;
  s->state = BK_SLOT_WAITING; /* taken; RUNNING once an attempt is added */
  s->x.job = j;
  s->x.excerpt_len = 0;
  s->headers = NULL;
  s->url = j->url;
  s->rt = (bk_retry_state){0};
  s->refreshed = false;
  s->rs = BK_RS_NONE;
  s->confirmed = 0;
  s->restarts = 0;
  s->o = (bk_outcome){.curl = CURLE_OK};
  s->kind = BULKUP_ERROR_NONE;
  bk_mutex_lock(&u->lock);
  u->in_flight++;
  bk_mutex_unlock(&u->lock);

  memset(res, 0, sizeof *res);
  res->index = j->index;
  res->path = j->path;
  res->title = j->title;
  res->user = j->user;
  res->status = BULKUP_ITEM_FAILED;
  res->response_excerpt = "";
  s->message[0] = '\0';
  bk_free(s->redacted_url);
  s->redacted_url = bulkup_redact_url(j->url);
  res->url = s->redacted_url ? s->redacted_url : "(url withheld)";
  res->message = s->message;

  /* Items that end before any attempt. */
  if (j->prefail != BULKUP_ERROR_NONE) {
    res->error = j->prefail;
    snprintf(s->message, sizeof s->message, "%s",
             j->prefail_message ? j->prefail_message : "invalid item");
    bk_slot_complete(s);
    return;
  }
  if (atomic_load(&u->cancelled)) {
    res->status = BULKUP_ITEM_CANCELLED;
    res->error = BULKUP_ERROR_CANCELLED;
    snprintf(s->message, sizeof s->message, "cancelled before it started");
    res->size = j->source == BULKUP_SOURCE_FILE ? 0 : j->size;
    bk_slot_complete(s);
    return;
  }
  if (!bk_url_scheme_ok(j->url)) {
    res->error = BULKUP_ERROR_URL;
    snprintf(s->message, sizeof s->message,
             "URL scheme not allowed: only http and https are");
    bk_slot_complete(s);
    return;
  }
  bulkup_error_kind kind = bk_source_open(s, j);
  if (kind != BULKUP_ERROR_NONE) {
    res->error = kind;
    res->elapsed_s = bk_now() - s->t0;
    bk_slot_complete(s);
    return;
  }
  res->size = s->x.size;

  char md5[32];
  if (u->opt.content_md5 && !bk_source_md5(s, md5)) {
    res->error = BULKUP_ERROR_FILE;
    snprintf(s->message, sizeof s->message,
             "cannot read source to compute Content-MD5");
    bk_source_close(s);
    res->elapsed_s = bk_now() - s->t0;
    bk_slot_complete(s);
    return;
  }
  s->headers = bk_build_headers(s, j, u->opt.content_md5 ? md5 : NULL);
  if (!s->headers) {
    res->error = BULKUP_ERROR_NOMEM;
    snprintf(s->message, sizeof s->message, "out of memory for headers");
    bk_source_close(s);
    bk_slot_complete(s);
    return;
  }
  if (s->x.size > 0 && s->x.size >= u->opt.resumable_threshold &&
      !bk_origin_is_plain(u, s->url)) {
    res->resumable = true;
    res->attempts = 1;
    s->rs = BK_RS_START;
    if (u->opt.journal && j->journal_key) {
      char *sess = bulkup_journal_session(u->opt.journal, j->journal_key,
                                          s->x.size, bk_journal_mtime(s));
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
  bk_slot_attempt(s);
}

/* The attempt is over and s->o says how: count it, then succeed, fail,
 * try a fresh URL at once, or wait for a retry. */
static void bk_slot_after_attempt(bk_slot *s) {
  struct bulkup_uploader *u = s->u;
  const bulkup_upload_policy *p = &u->policy;
  bulkup_result *res = &s->res;
  bk_job *j = s->x.job;
  bk_outcome *o = &s->o;

  /* An attempt that never got a connection is one request; one in which
   * libcurl re-sent on a fresh connection counts every request. */
  int requests = s->x.requests > 1 ? s->x.requests : 1;
  if (s->x.abort == BK_ABORT_CONN_LOST)
    requests--; /* the re-send it stopped was never sent */
  res->requests += requests;
  if (s->rs == BK_RS_NONE)
    res->attempts += requests;
  else
    res->attempts += requests - 1; /* libcurl's silent re-sends */
  res->bytes_sent += s->x.bytes_earlier + (uint64_t)s->x.ulnow;
  res->http_status = o->http_status;
  bk_verdict v;
  bk_rs_next next = s->rs != BK_RS_NONE ? bk_rs_after(s) : BK_RS_GENERIC;
  if (next == BK_RS_HANDLED)
    return;
  if (next == BK_RS_FAILED)
    v = BK_RETRY;
  else
    v = bk_classify(o, &s->kind);

  /* A streamed file must be unchanged after the upload, not only readable
   * during it. */
  if (v == BK_SUCCESS && !bk_source_unchanged(s)) {
    v = BK_FAIL;
    s->kind = BULKUP_ERROR_FILE_CHANGED;
  }
  if (o->curl == CURLE_SEND_FAIL_REWIND) {
    /* The failure survives curl_easy_reset (curl issue 18206): replace the
     * handle. */
    curl_easy_cleanup(s->easy);
    s->easy = NULL;
  }
  if (v == BK_FAIL && !s->refreshed && u->opt.refresh_url &&
      (s->rs == BK_RS_NONE || s->rs == BK_RS_START) &&
      bk_says_expired(&s->x, o->http_status)) {
    /* One fresh URL, tried at once; it is not a retry of the same
     * request. */
    s->refreshed = true;
    res->error = s->kind;
    snprintf(s->message, sizeof s->message, "signed URL expired");
    char *fresh = u->opt.refresh_url(u->opt.userdata, res);
    if (fresh && bk_url_scheme_ok(fresh)) {
      if (s->rs != BK_RS_NONE)
        res->attempts++;
      free(s->fresh_url);
      s->fresh_url = fresh;
      s->url = fresh;
      bk_free(s->redacted_url);
      s->redacted_url = bulkup_redact_url(fresh);
      res->url = s->redacted_url ? s->redacted_url : "(url withheld)";
      bk_log(u, BULKUP_LOG_INFO, "item %llu: signed URL expired; retrying "
             "with a fresh one: %s", (unsigned long long)j->index, res->url);
      bk_slot_attempt(s);
      return;
    }
    free(fresh);
  }
  if (v == BK_SUCCESS || v == BK_FAIL) {
    bk_slot_end(s);
    return;
  }

  bk_retry_decision d =
      bk_retry_decide(p, &u->budget, &s->rt, v, s->kind, o->http_status,
                      s->x.retry_after, bk_rng_01(&s->w->rng));
  if (!d.retry) {
    if (d.budget_exhausted) {
      bk_describe_failure(s, s->kind, o, res->attempts);
      size_t ml = strlen(s->message);
      snprintf(s->message + ml, sizeof s->message - ml,
               "; not retried: the shared retry budget is exhausted");
      s->kind = BULKUP_ERROR_RETRY_BUDGET;
    }
    bk_slot_end(s);
    return;
  }
  if (s->rs != BK_RS_NONE) {
    res->attempts++;
    /* A chunk's fate is unknown: ask the server what it has (unless its
     * own answer said). */
    if (s->rs == BK_RS_CHUNK && next != BK_RS_FAILED)
      s->rs = BK_RS_QUERY;
  }
  double wait = d.wait;
  bk_log(u, BULKUP_LOG_INFO, "item %llu: %s (HTTP %d); retry %u in %.3f s: %s",
         (unsigned long long)j->index, bulkup_error_kind_name(s->kind),
         o->http_status, d.retry_no, wait, res->url);
  /* The wait is a timer: the slot stays this item's, the worker serves its
   * other slots meanwhile, and a cancel ends the wait at once (it wakes
   * the worker, whose next bk_slot_tick ends the item). */
  s->wake_at = bk_now() + (wait > 0 ? wait : 0);
  s->state = BK_SLOT_WAITING;
}

/* Start an attempt: point the easy handle at the item and add it to the
 * worker's multi. */
static void bk_slot_attempt(bk_slot *s) {
  bk_xfer *x = &s->x;
  if (!s->easy && bk_setup_easy(s) != BULKUP_OK) {
    s->kind = BULKUP_ERROR_NOMEM;
    snprintf(s->message, sizeof s->message, "cannot create a curl handle");
    bk_slot_end(s);
    return;
  }
  /* A plain PUT sends the whole source; a resumable upload's start and
   * queries send nothing, its chunks a window of the source. */
  const char *url = s->url;
  struct curl_slist *headers = s->headers;
  uint64_t body_start = 0, body_len = x->size;
  if (s->rs != BK_RS_NONE) {
    curl_slist_free_all(s->rs_headers);
    s->rs_headers = bk_rs_headers(s);
    if (!s->rs_headers) {
      s->kind = BULKUP_ERROR_NOMEM;
      snprintf(s->message, sizeof s->message, "out of memory for headers");
      bk_slot_end(s);
      return;
    }
    headers = s->rs_headers;
    body_len = 0;
    if (s->rs != BK_RS_START)
      url = s->session;
    if (s->rs == BK_RS_CHUNK) {
      body_start = s->confirmed;
      body_len = bk_rs_chunk_len(s);
    }
  }
  CURLcode sc = curl_easy_setopt(s->easy, CURLOPT_URL, url);
  if (sc == CURLE_OK)
    sc = curl_easy_setopt(s->easy, CURLOPT_INFILESIZE_LARGE,
                          (curl_off_t)body_len);
  if (sc == CURLE_OK)
    sc = curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, headers);
  bool post = s->rs == BK_RS_START;
  if (sc == CURLE_OK && post != s->posting) {
    sc = curl_easy_setopt(s->easy, CURLOPT_CUSTOMREQUEST, post ? "POST" : NULL);
    if (sc == CURLE_OK)
      s->posting = post;
  }
  if (sc != CURLE_OK) {
    s->kind = sc == CURLE_OUT_OF_MEMORY ? BULKUP_ERROR_NOMEM
                                        : BULKUP_ERROR_URL;
    s->o = (bk_outcome){.curl = sc};
    snprintf(s->errbuf, sizeof s->errbuf, "%s", curl_easy_strerror(sc));
    bk_slot_end(s);
    return;
  }

  x->offset = body_start;
  x->body_start = body_start;
  x->body_len = body_len;
  x->requests = 0;
  x->bytes_earlier = 0;
  x->connected = false;
  x->body_sent = false;
  x->ulnow = 0;
  x->abort = BK_ABORT_NONE;
  x->read_errno = 0;
  x->excerpt_len = 0;
  x->retry_after = -1;
  x->location[0] = '\0';
  x->location_truncated = false;
  x->range_last = -1;
  x->last_up = bk_now();
  s->errbuf[0] = '\0';

  CURLMcode mc = curl_multi_add_handle(s->w->multi, s->easy);
  if (mc != CURLM_OK) {
    s->o = (bk_outcome){.curl = CURLE_OUT_OF_MEMORY};
    snprintf(s->errbuf, sizeof s->errbuf, "curl_multi_add_handle: %s",
             curl_multi_strerror(mc));
    bk_slot_after_attempt(s);
    return;
  }
  s->state = BK_SLOT_RUNNING;
}

void bk_slot_attempt_done(bk_slot *s, CURLcode result) {
  bk_xfer *x = &s->x;
  /* Removing an unfinished transfer closes its connection. */
  curl_multi_remove_handle(s->w->multi, s->easy);
  s->state = BK_SLOT_WAITING; /* between attempts until decided */
  long status = 0;
  curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
  s->o.curl = x->abort != BK_ABORT_NONE ? CURLE_ABORTED_BY_CALLBACK : result;
  s->o.http_status = (int)status;
  s->o.connected = x->connected;
  s->o.abort = x->abort;
  bk_slot_after_attempt(s);
}

void bk_slot_tick(bk_slot *s, double now) {
  struct bulkup_uploader *u = s->u;
  if (s->state == BK_SLOT_WAITING) {
    if (atomic_load(&u->cancelled)) {
      s->kind = BULKUP_ERROR_CANCELLED;
      s->o.abort = BK_ABORT_CANCEL;
      bk_slot_end(s);
    } else if (now >= s->wake_at) {
      bk_slot_attempt(s);
    }
    return;
  }
  if (s->state != BK_SLOT_RUNNING)
    return;
  bk_xfer *x = &s->x;
  const bulkup_upload_policy *p = &u->policy;
  if (x->abort == BK_ABORT_NONE) {
    if (atomic_load(&u->cancelled))
      x->abort = BK_ABORT_CANCEL;
    else if (x->connected && !x->body_sent && p->write_timeout > 0 &&
             now - x->last_up >= p->write_timeout)
      x->abort = BK_ABORT_TIMEOUT_WRITE;
    else if (x->body_sent && p->read_timeout > 0 &&
             now - x->body_sent_at >= p->read_timeout)
      x->abort = BK_ABORT_TIMEOUT_READ;
  }
  if (x->abort != BK_ABORT_NONE)
    bk_slot_attempt_done(s, CURLE_ABORTED_BY_CALLBACK);
}

double bk_slot_next(const bk_slot *s) {
  if (s->state == BK_SLOT_WAITING)
    return s->wake_at;
  double t = INFINITY;
  if (s->state != BK_SLOT_RUNNING)
    return t;
  const bk_xfer *x = &s->x;
  const bulkup_upload_policy *p = &s->u->policy;
  if (x->abort != BK_ABORT_NONE)
    return 0;
  if (x->connected && !x->body_sent && p->write_timeout > 0)
    t = x->last_up + p->write_timeout;
  if (x->body_sent && p->read_timeout > 0 &&
      x->body_sent_at + p->read_timeout < t)
    t = x->body_sent_at + p->read_timeout;
  return t;
}
