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
  u->opt.log(u->opt.userdata, level, buf);
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

static bool bk_header_is(const char *line, size_t len, const char *name,
                         const char **value, size_t *vlen) {
  size_t nl = strlen(name);
  if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
    return false;
  const char *v = line + nl + 1;
  const char *end = line + len;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
    end--;
  *value = v;
  *vlen = (size_t)(end - v);
  return true;
}

static size_t bk_header_cb(char *line, size_t size, size_t nmemb, void *ud) {
  bk_slot *sl = ud;
  bk_xfer *x = &sl->x;
  size_t len = size * nmemb;
  const char *v;
  size_t vl;
  if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
    /* A new response (after a 100 Continue, say): forget the last one. */
    x->retry_after = -1;
    x->location[0] = '\0';
    x->excerpt_len = 0;
  } else if (bk_header_is(line, len, "Retry-After", &v, &vl)) {
    char tmp[128];
    if (vl < sizeof tmp) {
      memcpy(tmp, v, vl);
      tmp[vl] = '\0';
      double secs;
      if (bulkup_parse_retry_after(tmp, time(NULL), &secs))
        x->retry_after = secs;
    }
  } else if (bk_header_is(line, len, "Location", &v, &vl)) {
    size_t n = vl < sizeof x->location - 1 ? vl : sizeof x->location - 1;
    memcpy(x->location, v, n);
    x->location[n] = '\0';
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
  x->bytes_earlier += (uint64_t)x->ulnow;
  x->ulnow = 0;
  x->connected = true;
  x->body_sent = false;
  x->last_up = bk_now();
  if (x->size == 0) {
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
    if (x->connected && (uint64_t)ulnow >= x->size && !x->body_sent) {
      x->body_sent = true;
      x->body_sent_at = x->last_up;
    }
  }
  return 0;
}

static int bk_sockopt_cb(void *ud, curl_socket_t fd, curlsocktype purpose) {
  BK_UNUSED(ud);
  BK_UNUSED(fd);
  BK_UNUSED(purpose);
  return CURL_SOCKOPT_OK;
}

/* ---- the easy handle ------------------------------------------------- */

static bulkup_err bk_setup_easy(bk_slot *s) {
  struct bulkup_uploader *u = s->u;
  CURL *e = curl_easy_init();
  if (!e)
    return bk_error(BULKUP_ENOMEM, "curl_easy_init failed");
  CURLcode rc = CURLE_OK;
#define BK_SET(opt, val)                                                      \
  do {                                                                        \
    if (rc == CURLE_OK)                                                       \
      rc = curl_easy_setopt(e, opt, val);                                     \
  } while (0)
  BK_SET(CURLOPT_NOSIGNAL, 1L);
  BK_SET(CURLOPT_PRIVATE, (void *)s);
  BK_SET(CURLOPT_PROTOCOLS_STR, "http,https");
  BK_SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  BK_SET(CURLOPT_FOLLOWLOCATION, 0L);
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
  BK_SET(CURLOPT_SOCKOPTFUNCTION, bk_sockopt_cb);
  BK_SET(CURLOPT_ERRORBUFFER, s->errbuf);
  BK_SET(CURLOPT_TCP_KEEPALIVE, 1L);
  /* 0 means no limit: libcurl's 0 would mean its 300 s default. */
  long cto = bk_curl_ms(u->policy.connect_timeout);
  BK_SET(CURLOPT_CONNECTTIMEOUT_MS, cto ? cto : LONG_MAX / 2);
  BK_SET(CURLOPT_SSL_VERIFYPEER, u->opt.insecure ? 0L : 1L);
  BK_SET(CURLOPT_SSL_VERIFYHOST, u->opt.insecure ? 0L : 2L);
  if (u->opt.ca_file)
    BK_SET(CURLOPT_CAINFO, u->opt.ca_file);
  BK_SET(CURLOPT_USERAGENT, u->opt.user_agent);
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

static bool bk_scheme_allowed(const char *url) {
  return strncasecmp(url, "http://", 7) == 0 ||
         strncasecmp(url, "https://", 8) == 0;
}

static double bk_rand01(bk_worker *w) {
  /* xorshift64*: jitter only, not security. */
  uint64_t x = w->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  w->rng = x;
  return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
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
             (unsigned long long)x->size, attempts, attempts == 1 ? "" : "s");
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
  }
  if (w->multi)
    curl_multi_cleanup(w->multi);
  w->multi = NULL;
  bk_free(w->slots);
  w->slots = NULL;
}

/* ---- the slot's state machine ------------------------------------------ */

static void bk_slot_attempt(bk_slot *s);

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

  if (kind == BULKUP_ERROR_NONE) {
    res->status = BULKUP_ITEM_SUCCEEDED;
    res->error = BULKUP_ERROR_NONE;
    if (u->opt.journal && j->journal_key) {
      int64_t mtime = 0;
      if (j->source == BULKUP_SOURCE_FILE)
        mtime = (int64_t)s->x.st.st_mtim.tv_sec * 1000000000LL +
                s->x.st.st_mtim.tv_nsec;
      if (bulkup_journal_record(u->opt.journal, j->journal_key, s->x.size,
                                mtime) != BULKUP_OK)
        bk_log(u, BULKUP_LOG_ERROR, "item %llu: not journalled: %s",
               (unsigned long long)j->index, bulkup_last_error_message());
    }
    bk_budget_refund(&u->budget, s->budget_spent ? s->budget_spent
                                                 : BK_NO_RETRY_INCREMENT);
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
  s->conn_retries = 0;
  s->retries = 0;
  s->budget_spent = 0;
  s->refreshed = false;
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
  if (!bk_scheme_allowed(j->url)) {
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
  res->attempts += s->x.requests > 1 ? s->x.requests : 1;
  res->bytes_sent += s->x.bytes_earlier + (uint64_t)s->x.ulnow;
  res->http_status = o->http_status;
  bk_verdict v = bk_classify(o, &s->kind);

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
      bk_says_expired(&s->x, o->http_status)) {
    /* One fresh URL, tried at once; it is not a retry of the same
     * request. */
    s->refreshed = true;
    res->error = s->kind;
    snprintf(s->message, sizeof s->message, "signed URL expired");
    char *fresh = u->opt.refresh_url(u->opt.userdata, res);
    if (fresh && bk_scheme_allowed(fresh)) {
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

  bool allowed = v == BK_RETRY_CONNECT ? s->conn_retries < p->connection_retries
                                       : s->retries < p->max_retries;
  if (!allowed) {
    bk_slot_end(s);
    return;
  }
  bulkup_error_kind kind = s->kind;
  unsigned int cost = (kind == BULKUP_ERROR_TIMEOUT_READ ||
                       kind == BULKUP_ERROR_TIMEOUT_WRITE ||
                       kind == BULKUP_ERROR_TIMEOUT_CONNECT)
                          ? BK_TIMEOUT_RETRY_COST
                          : BK_RETRY_COST;
  if (!bk_budget_take(&u->budget, cost)) {
    bk_describe_failure(s, kind, o, res->attempts);
    size_t ml = strlen(s->message);
    snprintf(s->message + ml, sizeof s->message - ml,
             "; not retried: the shared retry budget is exhausted");
    s->kind = BULKUP_ERROR_RETRY_BUDGET;
    bk_slot_end(s);
    return;
  }
  s->budget_spent += cost;
  if (v == BK_RETRY_CONNECT)
    s->conn_retries++;
  else
    s->retries++;
  unsigned int n = (unsigned int)(s->conn_retries + s->retries);
  double ra = -1;
  if (o->http_status == 429 || o->http_status == 503)
    ra = s->x.retry_after;
  double wait = bulkup_retry_wait(p, n, ra, bk_rand01(s->w));
  bk_log(u, BULKUP_LOG_INFO, "item %llu: %s (HTTP %d); retry %u in %.3f s: %s",
         (unsigned long long)j->index, bulkup_error_kind_name(kind),
         o->http_status, n, wait, res->url);
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
  CURLcode sc = curl_easy_setopt(s->easy, CURLOPT_URL, s->url);
  if (sc == CURLE_OK)
    sc = curl_easy_setopt(s->easy, CURLOPT_INFILESIZE_LARGE,
                          (curl_off_t)x->size);
  if (sc == CURLE_OK)
    sc = curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
  if (sc != CURLE_OK) {
    s->kind = sc == CURLE_OUT_OF_MEMORY ? BULKUP_ERROR_NOMEM
                                        : BULKUP_ERROR_URL;
    s->o = (bk_outcome){.curl = sc};
    snprintf(s->errbuf, sizeof s->errbuf, "%s", curl_easy_strerror(sc));
    bk_slot_end(s);
    return;
  }

  x->offset = 0;
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
