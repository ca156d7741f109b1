/* engine/slot.c - one item on one slot of a worker: the plain PUT's state
 * machine. It opens the source, runs attempts on the slot's libcurl easy
 * handle inside the worker's multi handle, enforces the per-phase
 * timeouts, asks retry.c whether and when to retry and schedules the retry
 * as a timer (the slot stays reserved for its item meanwhile), and
 * describes the outcome. A resumable upload's requests are chosen by
 * resumable.c, which says what to do next; this file does it.
 *
 * Everything here runs on the worker's thread; the only shared state it
 * touches goes through run.c (the counters, under u->lock), the retry
 * budget (lock-free) and the journal (its own lock). Connections live in
 * the worker's multi handle and are reused from item to item; each slot's
 * easy handle keeps its TLS session cache. */
#include "internal.h"
#include "engine/slot.h"
#include "cloud/azure.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>

/* A request body in memory and shorter than this goes out in the same
 * send as the request's headers (bk_slot_attempt): libcurl 7.x appends
 * CURLOPT_POSTFIELDS of less than its MAX_INITIAL_POST_SIZE (64 KiB) to
 * the headers over HTTP/1.x. */
#define BK_INLINE_BODY_MAX (64 * 1024 - 1)

/* The method of an inline-body request that names none: a plain PUT. */
static const char bk_put_method[] = "PUT";

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
    x->etag[0] = '\0';
    x->error_code[0] = '\0';
  } else if (bk_header_match(line, len, "x-ms-error-code", &v, &vl)) {
    size_t n = vl < sizeof x->error_code - 1 ? vl : sizeof x->error_code - 1;
    for (size_t i = 0; i < n; i++) /* a token: anything else is not kept */
      if (!isalnum((unsigned char)v[i]) && v[i] != '_' && v[i] != '-')
        n = i;
    memcpy(x->error_code, v, n);
    x->error_code[n] = '\0';
  } else if (bk_header_retry_after(line, len, time(NULL), &secs)) {
    x->retry_after = secs;
  } else if (bk_header_match(line, len, "Location", &v, &vl)) {
    size_t n = vl < sizeof x->location - 1 ? vl : sizeof x->location - 1;
    memcpy(x->location, v, n);
    x->location[n] = '\0';
    x->location_truncated = n < vl;
  } else if (bk_header_match(line, len, "Range", &v, &vl)) {
    x->range_last = bk_parse_range(v, vl);
  } else if (bk_header_match(line, len, "ETag", &v, &vl)) {
    size_t n = vl < sizeof x->etag - 1 ? vl : sizeof x->etag - 1;
    memcpy(x->etag, v, n);
    x->etag[n] = '\0';
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
  if (u->opt.http_version == BULKUP_HTTP_1_1) {
    BK_SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  } else {
    /* BULKUP_HTTP_DEFAULT and _2: h2 over TLS (ALPN), HTTP/1.1 for plain
     * http (CURLOPT_PIPEWAIT per attempt, https only: bk_slot_attempt). */
    BK_SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  }
#undef BK_SET
  if (rc != CURLE_OK) {
    curl_easy_cleanup(e);
    return bk_error(rc == CURLE_OUT_OF_MEMORY ? BULKUP_ENOMEM : BULKUP_ECURL,
                    "libcurl setup failed: %s", curl_easy_strerror(rc));
  }
  s->easy = e;
  s->method = NULL;
  s->inline_body = false;
  return BULKUP_OK;
}

bulkup_err bk_slot_init(bk_slot *s) { return bk_setup_easy(s); }

void bk_slot_cleanup(bk_slot *s) {
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
  bk_hook_sign_reset(s);
  bk_free(s->session);
  s->session = NULL;
  bk_free(s->mp_url);
  s->mp_url = NULL;
  curl_slist_free_all(s->mp_headers);
  s->mp_headers = NULL;
}

static struct curl_slist *bk_build_headers(bk_slot *s, bk_item *j,
                                           const char *md5) {
  bool ok = true;
  struct curl_slist *h = NULL;
  char line[1024];
  /* The item's own headers win over bulkup's choices (libcurl would send
   * both). */
  const char *const *own = (const char *const *)j->headers;
  if (!bk_headers_have(own, "Content-Type")) {
    snprintf(line, sizeof line, "Content-Type: %s", j->content_type);
    h = bk_slist_add(h, line, &ok);
  }
  /* Azure keeps a blob's Cache-Control from x-ms-blob-cache-control. */
  bool azure = j->storage == BULKUP_STORAGE_AZURE; /* given, or AUTO: bk_azure_url */
  if (j->cache_control && !bk_headers_have(own, "Cache-Control") &&
      !(azure && bk_headers_have(own, "x-ms-blob-cache-control"))) {
    snprintf(line, sizeof line, "%s: %s",
             azure ? "x-ms-blob-cache-control" : "Cache-Control",
             j->cache_control);
    h = bk_slist_add(h, line, &ok);
  }
  if (azure)
    h = bk_azure_add_headers(h, own, true, &ok);
  if (md5 && !bk_headers_have(own, "Content-MD5")) {
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

static void bk_describe_failure(bk_slot *s, bulkup_error_kind kind,
                                const bk_outcome *o, int attempts) {
  bk_xfer *x = &s->x;
  if (s->keep_message) {
    /* The failure was described where it happened (signing). */
    s->keep_message = false;
    return;
  }
  switch (kind) {
  case BULKUP_ERROR_HTTP_STATUS:
    if (o->http_status >= 300 && o->http_status < 400) {
      char *loc = x->location[0] ? bulkup_redact_url(x->location) : NULL;
      snprintf(s->message, sizeof s->message,
               "HTTP %d: redirect not followed (Location: %s)", o->http_status,
               loc ? loc : "none");
      bk_free(loc);
    } else {
      snprintf(s->message, sizeof s->message, "HTTP %d%s%s after %d attempt%s",
               o->http_status, x->error_code[0] ? " " : "", x->error_code,
               attempts, attempts == 1 ? "" : "s");
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


/* ---- the slot's state machine ------------------------------------------ */

static void bk_slot_attempt(bk_slot *s);
static void bk_slot_end(bk_slot *s);
static void bk_slot_try(bk_slot *s);
static void bk_slot_open(bk_slot *s);

/* The item ends: report it and free the slot. */
static void bk_slot_complete(bk_slot *s) {
  bk_item *j = s->x.item;
  bk_item_done(s->u, &s->res);
  bk_free(j);
  s->x.item = NULL;
  s->state = BK_SLOT_IDLE;
  s->w->busy--;
}

/* A multipart job said what the slot does next (parts.c). */
static void bk_slot_mp_next(bk_slot *s, bk_mp_next next) {
  if (next == BK_MP_GO) {
    bk_slot_try(s);
    return;
  }
  if (next == BK_MP_REPORT) {
    bulkup_result *res = &s->res;
    if (res->status != BULKUP_ITEM_SUCCEEDED)
      bk_log(s->u, res->status == BULKUP_ITEM_CANCELLED ? BULKUP_LOG_INFO
                                                         : BULKUP_LOG_WARN,
             "item %llu %s: %s: %s", (unsigned long long)res->index,
             bulkup_item_status_name(res->status), res->message, res->url);
    bk_item_done(s->u, res);
  }
  bk_mp_leave(s); /* frees the item with the job, once every slot let go */
  s->state = BK_SLOT_IDLE;
  s->w->busy--;
}

/* A multipart request's attempts are over (s->kind says how). */
static void bk_slot_mp_end(bk_slot *s) {
  struct bulkup_uploader *u = s->u;
  bulkup_result *res = &s->res;
  if (s->kind != BULKUP_ERROR_NONE) {
    bk_retry_release(&u->budget, &s->rt, bk_now());
    if (s->kind != BULKUP_ERROR_RETRY_BUDGET)
      bk_describe_failure(s, s->kind, &s->o, res->attempts + 1);
    if (s->x.excerpt_len && s->o.http_status >= 300) {
      res->response_excerpt = s->x.excerpt;
      res->response_excerpt_len = s->x.excerpt_len;
    }
  } else if (bk_retry_succeeded_at(&u->budget, &s->rt, bk_now())) {
    bk_log(u, BULKUP_LOG_WARN, "item %llu: a part succeeded: the server "
           "answers again; the uploads go on",
           (unsigned long long)res->index);
  }
  bk_slot_mp_next(s, bk_mp_after(s));
}

bool bk_slot_take_part(bk_slot *s) {
  if (!bk_mp_take(s))
    return false;
  s->t0 = bk_now();
  s->w->busy++;
  s->state = BK_SLOT_WAITING;
  s->headers = NULL;
  s->url = s->x.item->url;
  s->refreshed = true; /* refresh_url is for single PUTs */
  s->rs = BK_RS_NONE;
  bk_slot_try(s);
  return true;
}

/* The item's attempts are over (s->kind says how): record the result. */
static void bk_slot_end(bk_slot *s) {
  struct bulkup_uploader *u = s->u;
  bulkup_result *res = &s->res;
  bk_item *j = s->x.item;
  bulkup_error_kind kind = s->kind;
  if (s->mp) {
    bk_slot_mp_end(s);
    return;
  }
  if (kind != BULKUP_ERROR_NONE)
    bk_retry_release(&u->budget, &s->rt, bk_now());
  curl_slist_free_all(s->headers);
  s->headers = NULL;
  bk_rs_reset(s);
  bk_hook_sign_reset(s);

  if (kind == BULKUP_ERROR_NONE) {
    res->status = BULKUP_ITEM_SUCCEEDED;
    res->error = BULKUP_ERROR_NONE;
    if (u->opt.journal && j->journal_key) {
      if (bulkup_journal_record(u->opt.journal, j->journal_key, s->x.size,
                                bk_source_mtime(s)) != BULKUP_OK) {
        bk_log(u, BULKUP_LOG_ERROR, "item %llu: not journalled: %s",
               (unsigned long long)j->index, bulkup_last_error_message());
        bk_run_journal_failed(u, bulkup_last_error_message());
      }
    }
    if (bk_retry_succeeded_at(&u->budget, &s->rt, bk_now()))
      bk_log(u, BULKUP_LOG_WARN, "item %llu succeeded: the server answers "
             "again; the uploads go on", (unsigned long long)j->index);
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

void bk_slot_start(bk_slot *s, bk_item *j) {
  struct bulkup_uploader *u = s->u;
  bulkup_result *res = &s->res;
  s->t0 = bk_now();
  s->w->busy++;
  s->state = BK_SLOT_WAITING; /* taken; RUNNING once an attempt is added */
  s->x.item = j;
  s->x.excerpt_len = 0;
  s->headers = NULL;
  s->url = j->url;
  s->rt = (bk_retry_state){0};
  s->refreshed = false;
  s->opening = false;
  s->rs = BK_RS_NONE;
  s->confirmed = 0;
  s->restarts = 0;
  s->o = (bk_outcome){.curl = CURLE_OK};
  s->kind = BULKUP_ERROR_NONE;
  s->keep_message = false;
  bk_run_item_started(u);

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
  s->open_retries = 0;
  bk_slot_open(s);
}

/* Open the item's source and start its first attempt. A descriptor
 * shortage (EMFILE, ENFILE) is a local, passing condition: the open is
 * tried again after the retry backoff, up to max_retries times. */
static void bk_slot_open(bk_slot *s) {
  struct bulkup_uploader *u = s->u;
  bulkup_result *res = &s->res;
  bk_item *j = s->x.item;
  s->opening = false;
  s->fd_short = false;
  bulkup_error_kind kind = bk_source_open(s, j);
  if (kind != BULKUP_ERROR_NONE && s->fd_short &&
      s->open_retries < (unsigned)u->policy.max_retries) {
    s->open_retries++;
    double wait = bulkup_retry_wait(&u->policy, s->open_retries, -1,
                                    bk_rng_01(&s->w->rng));
    bk_log(u, BULKUP_LOG_INFO, "item %llu: %s (out of descriptors); open "
           "retry %u in %.3f s: %s", (unsigned long long)j->index,
           s->message, s->open_retries, wait, j->path);
    s->opening = true;
    s->wake_at = bk_now() + wait;
    s->state = BK_SLOT_WAITING;
    return;
  }
  if (kind != BULKUP_ERROR_NONE) {
    if (s->fd_short && s->open_retries) {
      size_t ml = strlen(s->message);
      snprintf(s->message + ml, sizeof s->message - ml, " (tried %u times)",
               s->open_retries + 1);
    }
    res->error = kind;
    res->elapsed_s = bk_now() - s->t0;
    bk_slot_complete(s);
    return;
  }
  res->size = s->x.size;
  bk_mp_next mpn;
  if (bk_mp_begin(s, &mpn)) {
    bk_slot_mp_next(s, mpn);
    return;
  }

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
  bk_rs_begin(s);
  bk_slot_try(s);
}

/* The attempt is over and s->o says how: count it, then succeed, fail,
 * try a fresh URL at once, or wait for a retry. */
static void bk_slot_after_attempt(bk_slot *s) {
  struct bulkup_uploader *u = s->u;
  const bulkup_upload_policy *p = &u->policy;
  bulkup_result *res = &s->res;
  bk_item *j = s->x.item;
  bk_outcome *o = &s->o;

  /* An attempt that never got a connection is one request; one in which
   * libcurl re-sent on a fresh connection counts every request. */
  int requests = s->x.requests > 1 ? s->x.requests : 1;
  if (s->x.abort == BK_ABORT_CONN_LOST)
    requests--; /* the re-send it stopped was never sent */
  res->requests += requests;
  if (s->rs == BK_RS_NONE && !s->mp)
    res->attempts += requests;
  else
    res->attempts += requests - 1; /* libcurl's silent re-sends */
  res->bytes_sent += s->x.bytes_earlier + (uint64_t)s->x.ulnow;
  res->http_status = o->http_status;
  bk_verdict v;
  bk_rs_next next = s->rs != BK_RS_NONE ? bk_rs_after(s) : BK_RS_GENERIC;
  if (next == BK_RS_SEND) {
    bk_slot_attempt(s);
    return;
  }
  if (next == BK_RS_END) {
    bk_slot_end(s);
    return;
  }
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
  if (v == BK_FAIL && !s->refreshed && !s->mp && u->opt.refresh_url &&
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

  bk_run_pushback(u);
  double now = bk_now();
  bk_retry_decision d =
      bk_retry_decide_at(p, &u->budget, &s->rt, v, s->kind, o->http_status,
                         s->x.retry_after, bk_rng_01(&s->w->rng), now);
  if (d.outage_began)
    bk_log(u, BULKUP_LOG_WARN, "the uploads are failing and nothing succeeds "
           "(item %llu: %s, HTTP %d): waiting for the server, one probe "
           "request at a time; giving up after %g s without a success",
           (unsigned long long)j->index, bulkup_error_kind_name(s->kind),
           o->http_status, u->opt.no_progress_limit);
  if (d.hold) {
    /* Neither retried nor failed: an outage holds the item, or the
     * budget owes its retry. It asks again at wake_at (bk_slot_try). */
    if (s->rs != BK_RS_NONE)
      bk_rs_retrying(s, next);
    s->wake_at = now + d.wait;
    s->state = BK_SLOT_WAITING;
    return;
  }
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
  if (s->rs != BK_RS_NONE)
    bk_rs_retrying(s, next);
  else if (s->mp)
    res->attempts++; /* a request of the item tried again */
  double wait = d.wait;
  bk_log(u, BULKUP_LOG_INFO,
         "item %llu: %s (HTTP %d%s%s); retry %u in %.3f s: %s",
         (unsigned long long)j->index, bulkup_error_kind_name(s->kind),
         o->http_status, s->x.error_code[0] ? " " : "", s->x.error_code,
         d.retry_no, wait, res->url);
  /* The wait is a timer: the slot stays this item's, the worker serves its
   * other slots meanwhile, and a cancel ends the wait at once (it wakes
   * the worker, whose next bk_slot_tick ends the item). */
  s->wake_at = now + (wait > 0 ? wait : 0);
  s->state = BK_SLOT_WAITING;
}

/* An attempt that does not follow a success of the same item: ask the
 * retry layer whether it may go now (an outage lets only one probe at a
 * time through), then send it, wait, or give up. */
static void bk_slot_try(bk_slot *s) {
  struct bulkup_uploader *u = s->u;
  double now = bk_now(), wait = 0;
  switch (bk_retry_admit(&u->budget, &s->rt, now, &wait)) {
  case BK_ADMIT_GO:
    bk_slot_attempt(s);
    return;
  case BK_ADMIT_WAIT:
    s->wake_at = now + wait;
    s->state = BK_SLOT_WAITING;
    return;
  case BK_ADMIT_GIVE_UP:
    break;
  }
  double quiet = bk_retry_stalled_for(&u->budget, now);
  if (s->res.attempts > 0 || s->res.requests > 0) {
    bk_describe_failure(s, s->kind, &s->o, s->res.attempts);
    size_t ml = strlen(s->message);
    snprintf(s->message + ml, sizeof s->message - ml,
             "; not retried: nothing has succeeded for %.0f s "
             "(no_progress_limit)", quiet);
  } else {
    snprintf(s->message, sizeof s->message,
             "not tried: nothing has succeeded for %.0f s (no_progress_limit)",
             quiet);
  }
  s->kind = BULKUP_ERROR_RETRY_BUDGET;
  bk_slot_end(s);
}

/* Whether the request's headers name its Content-Type (libcurl's test:
 * the name, then ':' or ';'). */
static bool bk_has_content_type(const struct curl_slist *h) {
  for (; h; h = h->next)
    if (strncasecmp(h->data, "Content-Type", 12) == 0 &&
        (h->data[12] == ':' || h->data[12] == ';'))
      return true;
  return false;
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
  if (s->rs != BK_RS_NONE &&
      !bk_rs_request(s, &url, &headers, &body_start, &body_len)) {
    s->kind = BULKUP_ERROR_NOMEM;
    snprintf(s->message, sizeof s->message, "out of memory for headers");
    bk_slot_end(s);
    return;
  }
  const char *method = s->rs == BK_RS_START ? "POST" : NULL;
  bulkup_request_kind kind = s->rs != BK_RS_NONE ? BULKUP_REQUEST_RESUMABLE
                                                 : BULKUP_REQUEST_PUT;
  if (s->mp && !bk_mp_request(s, &url, &headers, &body_start, &body_len,
                              &method, &kind)) {
    s->kind = BULKUP_ERROR_NOMEM;
    snprintf(s->message, sizeof s->message,
             "cannot make the request (out of memory, or the source could "
             "not be read for its Content-MD5)");
    s->keep_message = true;
    bk_slot_end(s);
    return;
  }
  /* Last, when the request's headers are final: its signature. A
   * multipart upload's completing request has its body in memory. */
  const void *body_mem =
      s->mp && s->mp_phase == BK_MP_COMPLETE ? (const void *)s->x.mem : NULL;
  bulkup_error_kind sk = bk_hook_sign(s, method ? method : "PUT", url,
                                      &headers, body_start, body_len,
                                      body_mem, kind);
  if (sk != BULKUP_ERROR_NONE) {
    s->kind = sk;
    s->o = (bk_outcome){.curl = CURLE_OK};
    s->keep_message = true;
    bk_slot_end(s);
    return;
  }
  CURLcode sc = curl_easy_setopt(s->easy, CURLOPT_URL, url);
  /* https with h2 allowed: wait for a connection that may multiplex
   * rather than open one more. Never for plain http, which cannot
   * multiplex here: with libcurl 7.88 a transfer waiting so could stall
   * for good after an allocation failure on the connection it waited for
   * (tests/test_alloc_fail.c). */
  if (sc == CURLE_OK && s->u->opt.http_version != BULKUP_HTTP_1_1)
    sc = curl_easy_setopt(s->easy, CURLOPT_PIPEWAIT,
                          strncasecmp(url, "https:", 6) == 0 ? 1L : 0L);
  if (sc == CURLE_OK)
    sc = curl_easy_setopt(s->easy, CURLOPT_INFILESIZE_LARGE,
                          (curl_off_t)body_len);
  if (sc == CURLE_OK)
    sc = curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, headers);
  /* A small body already in memory (a small file read whole, a memory
   * item) is handed to libcurl as CURLOPT_POSTFIELDS rather than through
   * the read callback: over HTTP/1.1 libcurl then sends headers and body
   * in one send(), where the read callback's body takes a poll and a
   * second send() after the headers (and the server a second read). For
   * libcurl that is a POST (CURLOPT_UPLOAD off); CURLOPT_CUSTOMREQUEST
   * names the real method, and the Content-Type the headers carry keeps
   * libcurl from adding its form type. The bytes are the slot's (or the
   * item's) until the attempt ends; a re-send needs no rewind. A cancel
   * is seen by the progress callback, as between read callbacks. Not with
   * expect_continue: libcurl's PUT asks "Expect: 100-continue" for any
   * body, its POST only past 1 MiB. Nor for a resumable upload's chunks:
   * a body sent with the headers counts as sent at once, and a chunk
   * that met a dead kept-alive connection would go to a status query
   * (bk_prereq_cb) where libcurl can simply send it again. */
  const unsigned char *inl = NULL;
  if (x->mem && body_len > 0 && body_len <= BK_INLINE_BODY_MAX &&
      s->rs == BK_RS_NONE && !s->u->opt.expect_continue &&
      bk_has_content_type(headers))
    inl = x->mem + body_start;
  if (sc == CURLE_OK && inl) {
    s->inline_body = true;
    sc = curl_easy_setopt(s->easy, CURLOPT_UPLOAD, 0L);
    if (sc == CURLE_OK)
      sc = curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                            (curl_off_t)body_len);
    if (sc == CURLE_OK)
      sc = curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, (const void *)inl);
  } else if (sc == CURLE_OK && s->inline_body) {
    sc = curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, NULL);
    if (sc == CURLE_OK)
      sc = curl_easy_setopt(s->easy, CURLOPT_UPLOAD, 1L);
    if (sc == CURLE_OK)
      s->inline_body = false;
  }
  const char *custom = inl && !method ? bk_put_method : method;
  if (sc == CURLE_OK && custom != s->method) {
    sc = curl_easy_setopt(s->easy, CURLOPT_CUSTOMREQUEST, custom);
    if (sc == CURLE_OK)
      s->method = custom;
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
  x->error_code[0] = '\0';
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
  s->o.error_code = x->error_code;
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
      if (s->opening)
        bk_slot_open(s);
      else
        bk_slot_try(s);
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
