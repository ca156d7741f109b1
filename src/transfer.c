/* transfer.c - one item on one worker: open the source, PUT it with the
 * worker's libcurl easy handle, enforce the per-phase timeouts, retry with
 * backoff, and describe the outcome.
 *
 * Each worker drives its easy handle through a private multi handle rather
 * than curl_easy_perform: the worker's loop then wakes at the exact phase
 * deadlines, and bulkup_uploader_cancel can wake it at once with
 * curl_multi_wakeup. Connections and TLS sessions live in the multi
 * handle's cache and are reused from item to item. */
#include "internal.h"
#include "uploader.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Files up to this size are read whole, once, into the worker's buffer:
 * one open, fstat, read, fstat, close per file, and retries resend the
 * same snapshot. Larger files are streamed with pread. */
#define BK_SMALL_FILE_MAX (256 * 1024)

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

bool bk_sleep_cancellable(struct bulkup_uploader *u, double seconds) {
  if (seconds <= 0)
    return !atomic_load(&u->cancelled);
  double deadline = bk_now() + seconds;
  bk_mutex_lock(&u->lock);
  while (!atomic_load(&u->cancelled) && bk_now() < deadline)
    bk_cond_timedwait(&u->cancel_cond, &u->lock, deadline);
  bk_mutex_unlock(&u->lock);
  return !atomic_load(&u->cancelled);
}

/* ---- libcurl callbacks ------------------------------------------------ */

static size_t bk_read_cb(char *dst, size_t size, size_t nmemb, void *ud) {
  bk_worker *w = ud;
  bk_xfer *x = &w->x;
  size_t want = size * nmemb;
  if (atomic_load_explicit(&w->u->cancelled, memory_order_relaxed)) {
    x->abort = BK_ABORT_CANCEL;
    return CURL_READFUNC_ABORT;
  }
  uint64_t left = x->size - x->offset;
  if (want > left)
    want = (size_t)left;
  if (want == 0)
    return 0;
  size_t got = 0;
  if (x->mem) {
    memcpy(dst, x->mem + x->offset, want);
    got = want;
  } else if (x->fd >= 0) {
    while (got < want) {
      ssize_t r = pread(x->fd, dst + got, want - got, (off_t)(x->offset + got));
      if (r < 0) {
        if (errno == EINTR)
          continue;
        x->read_errno = errno;
        x->abort = BK_ABORT_FILE;
        return CURL_READFUNC_ABORT;
      }
      if (r == 0) {
        /* The file is shorter than when it was opened. */
        x->abort = BK_ABORT_FILE_CHANGED;
        return CURL_READFUNC_ABORT;
      }
      got += (size_t)r;
    }
  } else {
    bk_job *j = x->job;
    while (got < want) {
      int64_t r = j->read(j->read_ctx, x->offset + got, dst + got, want - got);
      if (r < 0 || (uint64_t)r > want - got) {
        x->abort = BK_ABORT_FILE;
        return CURL_READFUNC_ABORT;
      }
      if (r == 0) {
        x->abort = BK_ABORT_FILE_CHANGED;
        return CURL_READFUNC_ABORT;
      }
      got += (size_t)r;
    }
  }
  x->offset += got;
  return got;
}

static int bk_seek_cb(void *ud, curl_off_t offset, int origin) {
  bk_worker *w = ud;
  if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > w->x.size)
    return CURL_SEEKFUNC_CANTSEEK;
  w->x.offset = (uint64_t)offset;
  return CURL_SEEKFUNC_OK;
}

static size_t bk_write_cb(char *src, size_t size, size_t nmemb, void *ud) {
  bk_worker *w = ud;
  bk_xfer *x = &w->x;
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
  bk_worker *w = ud;
  bk_xfer *x = &w->x;
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
  bk_worker *w = ud;
  bk_xfer *x = &w->x;
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
  bk_worker *w = ud;
  bk_xfer *x = &w->x;
  if (atomic_load_explicit(&w->u->cancelled, memory_order_relaxed)) {
    x->abort = BK_ABORT_CANCEL;
    return 1;
  }
  if (ulnow > x->ulnow) {
    atomic_fetch_add_explicit(&w->u->bytes_sent,
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

static long bk_ms(double seconds) {
  if (seconds <= 0)
    return 0;
  double ms = ceil(seconds * 1000.0);
  return ms > (double)LONG_MAX / 2 ? LONG_MAX / 2 : (long)ms;
}

static bulkup_err bk_setup_easy(bk_worker *w) {
  struct bulkup_uploader *u = w->u;
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
  BK_SET(CURLOPT_PROTOCOLS_STR, "http,https");
  BK_SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  BK_SET(CURLOPT_FOLLOWLOCATION, 0L);
  BK_SET(CURLOPT_UPLOAD, 1L);
  BK_SET(CURLOPT_READFUNCTION, bk_read_cb);
  BK_SET(CURLOPT_READDATA, w);
  BK_SET(CURLOPT_SEEKFUNCTION, bk_seek_cb);
  BK_SET(CURLOPT_SEEKDATA, w);
  BK_SET(CURLOPT_WRITEFUNCTION, bk_write_cb);
  BK_SET(CURLOPT_WRITEDATA, w);
  BK_SET(CURLOPT_HEADERFUNCTION, bk_header_cb);
  BK_SET(CURLOPT_HEADERDATA, w);
  BK_SET(CURLOPT_PREREQFUNCTION, bk_prereq_cb);
  BK_SET(CURLOPT_PREREQDATA, w);
  BK_SET(CURLOPT_XFERINFOFUNCTION, bk_xferinfo_cb);
  BK_SET(CURLOPT_XFERINFODATA, w);
  BK_SET(CURLOPT_NOPROGRESS, 0L);
  BK_SET(CURLOPT_SOCKOPTFUNCTION, bk_sockopt_cb);
  BK_SET(CURLOPT_ERRORBUFFER, w->errbuf);
  BK_SET(CURLOPT_TCP_KEEPALIVE, 1L);
  /* 0 means no limit: libcurl's 0 would mean its 300 s default. */
  long cto = bk_ms(u->policy.connect_timeout);
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
  w->easy = e;
  return BULKUP_OK;
}

bulkup_err bk_worker_init_curl(bk_worker *w) {
  w->multi = curl_multi_init();
  if (!w->multi)
    return bk_error(BULKUP_ENOMEM, "curl_multi_init failed");
  /* One transfer at a time per worker; keep a few idle connections in case
   * items alternate between hosts. */
  curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, 4L);
  bulkup_err rc = bk_setup_easy(w);
  if (rc != BULKUP_OK) {
    curl_multi_cleanup(w->multi);
    w->multi = NULL;
  }
  w->x.fd = -1;
  return rc;
}

void bk_worker_cleanup_curl(bk_worker *w) {
  if (w->easy)
    curl_easy_cleanup(w->easy);
  if (w->multi)
    curl_multi_cleanup(w->multi);
  w->easy = NULL;
  w->multi = NULL;
  bk_free(w->buf);
  w->buf = NULL;
  bk_free(w->redacted_url);
  w->redacted_url = NULL;
  free(w->fresh_url);
  w->fresh_url = NULL;
}

/* ---- one attempt ----------------------------------------------------- */

/* Milliseconds until the nearest phase deadline, at most 1000. */
static int bk_poll_ms(const bk_xfer *x, const bulkup_upload_policy *p,
                      double now) {
  double wait = 1.0;
  if (x->connected && !x->body_sent && p->write_timeout > 0) {
    double left = p->write_timeout - (now - x->last_up);
    if (left < wait)
      wait = left;
  }
  if (x->body_sent && p->read_timeout > 0) {
    double left = p->read_timeout - (now - x->body_sent_at);
    if (left < wait)
      wait = left;
  }
  int ms = (int)ceil(wait * 1000.0);
  return ms < 1 ? 1 : ms;
}

static void bk_attempt(bk_worker *w, bk_outcome *out) {
  struct bulkup_uploader *u = w->u;
  bk_xfer *x = &w->x;
  const bulkup_upload_policy *p = &u->policy;

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
  w->errbuf[0] = '\0';

  CURLcode result = CURLE_OK;
  CURLMcode mc = curl_multi_add_handle(w->multi, w->easy);
  if (mc != CURLM_OK) {
    out->curl = CURLE_OUT_OF_MEMORY;
    out->http_status = 0;
    out->connected = false;
    out->abort = BK_ABORT_NONE;
    snprintf(w->errbuf, sizeof w->errbuf, "curl_multi_add_handle: %s",
             curl_multi_strerror(mc));
    return;
  }
  bool done = false;
  for (;;) {
    int running = 0;
    mc = curl_multi_perform(w->multi, &running);
    if (mc != CURLM_OK) {
      result = CURLE_OUT_OF_MEMORY;
      snprintf(w->errbuf, sizeof w->errbuf, "curl_multi_perform: %s",
               curl_multi_strerror(mc));
      break;
    }
    if (running == 0) {
      int left;
      CURLMsg *m;
      while ((m = curl_multi_info_read(w->multi, &left)))
        if (m->msg == CURLMSG_DONE && m->easy_handle == w->easy) {
          result = m->data.result;
          done = true;
        }
      if (!done)
        result = CURLE_GOT_NOTHING;
      break;
    }
    if (x->abort != BK_ABORT_NONE)
      break;
    if (atomic_load(&u->cancelled)) {
      x->abort = BK_ABORT_CANCEL;
      break;
    }
    double now = bk_now();
    if (x->connected && !x->body_sent && p->write_timeout > 0 &&
        now - x->last_up >= p->write_timeout) {
      x->abort = BK_ABORT_TIMEOUT_WRITE;
      break;
    }
    if (x->body_sent && p->read_timeout > 0 &&
        now - x->body_sent_at >= p->read_timeout) {
      x->abort = BK_ABORT_TIMEOUT_READ;
      break;
    }
    curl_multi_poll(w->multi, NULL, 0, bk_poll_ms(x, p, now), NULL);
  }
  /* Removing an unfinished transfer closes its connection. */
  curl_multi_remove_handle(w->multi, w->easy);

  long status = 0;
  curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &status);
  out->curl = x->abort != BK_ABORT_NONE ? CURLE_ABORTED_BY_CALLBACK : result;
  out->http_status = (int)status;
  out->connected = x->connected;
  out->abort = x->abort;
}

/* ---- the source ------------------------------------------------------ */

static bool bk_same_file(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
         a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
         a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
         a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
         a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Open the job's source into w->x. Returns an error kind (NONE on
 * success) and writes the reason into w->message. */
static bulkup_error_kind bk_open_source(bk_worker *w, bk_job *j) {
  bk_xfer *x = &w->x;
  x->job = j;
  x->fd = -1;
  x->mem = NULL;
  if (j->source == BULKUP_SOURCE_MEMORY) {
    x->mem = j->data;
    x->size = j->size;
    return BULKUP_ERROR_NONE;
  }
  if (j->source == BULKUP_SOURCE_CALLBACK) {
    x->size = j->size;
    return BULKUP_ERROR_NONE;
  }
  int fd = open(j->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    snprintf(w->message, sizeof w->message, "cannot open file: %s",
             strerror(errno));
    return BULKUP_ERROR_FILE;
  }
  if (fstat(fd, &x->st) != 0) {
    snprintf(w->message, sizeof w->message, "cannot stat file: %s",
             strerror(errno));
    close(fd);
    return BULKUP_ERROR_FILE;
  }
  if (!S_ISREG(x->st.st_mode)) {
    snprintf(w->message, sizeof w->message, "not a regular file");
    close(fd);
    return BULKUP_ERROR_FILE;
  }
  x->size = (uint64_t)x->st.st_size;
  bk_mutex_lock(&w->u->lock);
  w->u->bytes_submitted += x->size;
  bk_mutex_unlock(&w->u->lock);
  if (x->size > BK_SMALL_FILE_MAX) {
    x->fd = fd;
    return BULKUP_ERROR_NONE;
  }
  if (w->bufcap < x->size || !w->buf) {
    unsigned char *nb = bk_realloc(w->buf, BK_SMALL_FILE_MAX);
    if (!nb) {
      close(fd);
      snprintf(w->message, sizeof w->message, "out of memory");
      return BULKUP_ERROR_NOMEM;
    }
    w->buf = nb;
    w->bufcap = BK_SMALL_FILE_MAX;
  }
  /* Read one byte more than expected: getting it means the file grew. */
  size_t got = 0;
  size_t want = (size_t)x->size + 1;
  bool grew = false;
  while (got < want) {
    ssize_t r;
    if (got < w->bufcap) {
      r = read(fd, w->buf + got, (want - got) < (w->bufcap - got)
                                       ? (want - got)
                                       : (w->bufcap - got));
    } else {
      unsigned char extra;
      r = read(fd, &extra, 1);
    }
    if (r < 0) {
      if (errno == EINTR)
        continue;
      snprintf(w->message, sizeof w->message, "cannot read file: %s",
               strerror(errno));
      close(fd);
      return BULKUP_ERROR_FILE;
    }
    if (r == 0)
      break;
    got += (size_t)r;
    if (got > x->size) {
      grew = true;
      break;
    }
  }
  struct stat after;
  int st_rc = fstat(fd, &after);
  close(fd);
  if (grew || got < x->size || st_rc != 0 || !bk_same_file(&x->st, &after)) {
    snprintf(w->message, sizeof w->message,
             "file changed while it was being read");
    return BULKUP_ERROR_FILE_CHANGED;
  }
  x->mem = w->buf;
  return BULKUP_ERROR_NONE;
}

static void bk_close_source(bk_worker *w) {
  if (w->x.fd >= 0)
    close(w->x.fd);
  w->x.fd = -1;
  w->x.mem = NULL;
}

/* Base64 MD5 of the whole source, for Content-MD5. */
static bool bk_source_md5(bk_worker *w, char out[32]) {
  bk_xfer *x = &w->x;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx || !EVP_DigestInit_ex(ctx, EVP_md5(), NULL)) {
    EVP_MD_CTX_free(ctx);
    return false;
  }
  bool ok = true;
  if (x->mem) {
    ok = EVP_DigestUpdate(ctx, x->mem, (size_t)x->size);
  } else {
    unsigned char buf[65536];
    uint64_t off = 0;
    while (ok && off < x->size) {
      size_t want = sizeof buf;
      if (want > x->size - off)
        want = (size_t)(x->size - off);
      int64_t r;
      if (x->fd >= 0) {
        r = pread(x->fd, buf, want, (off_t)off);
        if (r < 0 && errno == EINTR)
          continue;
      } else {
        r = x->job->read(x->job->read_ctx, off, buf, want);
      }
      if (r <= 0) {
        ok = false;
        break;
      }
      ok = EVP_DigestUpdate(ctx, buf, (size_t)r);
      off += (uint64_t)r;
    }
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (ok)
    ok = EVP_DigestFinal_ex(ctx, md, &n);
  EVP_MD_CTX_free(ctx);
  if (!ok)
    return false;
  EVP_EncodeBlock((unsigned char *)out, md, (int)n);
  return true;
}

static struct curl_slist *bk_append(struct curl_slist *l, const char *h,
                                    bool *ok) {
  if (!*ok)
    return l;
  struct curl_slist *n = curl_slist_append(l, h);
  if (!n) {
    *ok = false;
    return l;
  }
  return n;
}

static struct curl_slist *bk_build_headers(bk_worker *w, bk_job *j,
                                           const char *md5) {
  bool ok = true;
  struct curl_slist *h = NULL;
  char line[1024];
  snprintf(line, sizeof line, "Content-Type: %s", j->content_type);
  h = bk_append(h, line, &ok);
  if (j->cache_control) {
    snprintf(line, sizeof line, "Cache-Control: %s", j->cache_control);
    h = bk_append(h, line, &ok);
  }
  if (md5) {
    snprintf(line, sizeof line, "Content-MD5: %s", md5);
    h = bk_append(h, line, &ok);
  }
  if (!w->u->opt.expect_continue)
    h = bk_append(h, "Expect:", &ok);
  for (size_t i = 0; j->headers && j->headers[i]; i++)
    h = bk_append(h, j->headers[i], &ok);
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

static void bk_describe_failure(bk_worker *w, bulkup_error_kind kind,
                                const bk_outcome *o, int attempts) {
  bk_xfer *x = &w->x;
  switch (kind) {
  case BULKUP_ERROR_HTTP_STATUS:
    if (o->http_status >= 300 && o->http_status < 400) {
      char *loc = x->location[0] ? bulkup_redact_url(x->location) : NULL;
      snprintf(w->message, sizeof w->message,
               "HTTP %d: redirect not followed (Location: %s)", o->http_status,
               loc ? loc : "none");
      bk_free(loc);
    } else {
      snprintf(w->message, sizeof w->message, "HTTP %d after %d attempt%s",
               o->http_status, attempts, attempts == 1 ? "" : "s");
    }
    break;
  case BULKUP_ERROR_TIMEOUT_WRITE:
    snprintf(w->message, sizeof w->message,
             "write timeout: no body progress for %.3g s (%llu of %llu bytes "
             "sent) after %d attempt%s",
             w->u->policy.write_timeout, (unsigned long long)x->ulnow,
             (unsigned long long)x->size, attempts, attempts == 1 ? "" : "s");
    break;
  case BULKUP_ERROR_TIMEOUT_READ:
    snprintf(w->message, sizeof w->message,
             "read timeout: no complete response %.3g s after the body was "
             "sent, after %d attempt%s",
             w->u->policy.read_timeout, attempts, attempts == 1 ? "" : "s");
    break;
  case BULKUP_ERROR_FILE:
    snprintf(w->message, sizeof w->message, "cannot read source: %s",
             x->read_errno ? strerror(x->read_errno) : "read callback failed");
    break;
  case BULKUP_ERROR_FILE_CHANGED:
    snprintf(w->message, sizeof w->message,
             "source changed while it was being uploaded");
    break;
  case BULKUP_ERROR_CANCELLED:
    snprintf(w->message, sizeof w->message, "cancelled");
    break;
  default:
    snprintf(w->message, sizeof w->message, "%s after %d attempt%s",
             w->errbuf[0] ? w->errbuf : curl_easy_strerror(o->curl), attempts,
             attempts == 1 ? "" : "s");
    break;
  }
}

/* ---- one job --------------------------------------------------------- */

void bk_run_job(bk_worker *w, bk_job *j, bulkup_result *res) {
  struct bulkup_uploader *u = w->u;
  const bulkup_upload_policy *p = &u->policy;
  double t0 = bk_now();

  memset(res, 0, sizeof *res);
  res->index = j->index;
  res->path = j->path;
  res->title = j->title;
  res->user = j->user;
  res->status = BULKUP_ITEM_FAILED;
  res->response_excerpt = "";
  w->message[0] = '\0';
  bk_free(w->redacted_url);
  w->redacted_url = bulkup_redact_url(j->url);
  res->url = w->redacted_url ? w->redacted_url : "(url withheld)";
  res->message = w->message;

  if (j->prefail != BULKUP_ERROR_NONE) {
    res->error = j->prefail;
    snprintf(w->message, sizeof w->message, "%s",
             j->prefail_message ? j->prefail_message : "invalid item");
    return;
  }
  if (atomic_load(&u->cancelled)) {
    res->status = BULKUP_ITEM_CANCELLED;
    res->error = BULKUP_ERROR_CANCELLED;
    snprintf(w->message, sizeof w->message, "cancelled before it started");
    res->size = j->source == BULKUP_SOURCE_FILE ? 0 : j->size;
    return;
  }
  if (!bk_scheme_allowed(j->url)) {
    res->error = BULKUP_ERROR_URL;
    snprintf(w->message, sizeof w->message,
             "URL scheme not allowed: only http and https are");
    return;
  }
  bulkup_error_kind kind = bk_open_source(w, j);
  if (kind != BULKUP_ERROR_NONE) {
    res->error = kind;
    res->elapsed_s = bk_now() - t0;
    return;
  }
  res->size = w->x.size;

  char md5[32];
  if (u->opt.content_md5 && !bk_source_md5(w, md5)) {
    res->error = BULKUP_ERROR_FILE;
    snprintf(w->message, sizeof w->message,
             "cannot read source to compute Content-MD5");
    bk_close_source(w);
    res->elapsed_s = bk_now() - t0;
    return;
  }
  struct curl_slist *headers =
      bk_build_headers(w, j, u->opt.content_md5 ? md5 : NULL);
  if (!headers) {
    res->error = BULKUP_ERROR_NOMEM;
    snprintf(w->message, sizeof w->message, "out of memory for headers");
    bk_close_source(w);
    return;
  }

  int conn_retries = 0, retries = 0;
  unsigned int budget_spent = 0;
  bool refreshed = false;
  const char *url = j->url;
  bk_outcome o = {.curl = CURLE_OK};
  for (;;) {
    if (!w->easy && bk_setup_easy(w) != BULKUP_OK) {
      kind = BULKUP_ERROR_NOMEM;
      snprintf(w->message, sizeof w->message, "cannot create a curl handle");
      break;
    }
    CURLcode sc = curl_easy_setopt(w->easy, CURLOPT_URL, url);
    if (sc == CURLE_OK)
      sc = curl_easy_setopt(w->easy, CURLOPT_INFILESIZE_LARGE,
                            (curl_off_t)w->x.size);
    if (sc == CURLE_OK)
      sc = curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, headers);
    if (sc != CURLE_OK) {
      kind = sc == CURLE_OUT_OF_MEMORY ? BULKUP_ERROR_NOMEM
                                       : BULKUP_ERROR_URL;
      o = (bk_outcome){.curl = sc};
      snprintf(w->errbuf, sizeof w->errbuf, "%s", curl_easy_strerror(sc));
      break;
    }

    bk_attempt(w, &o);
    /* An attempt that never got a connection is one request; one in which
     * libcurl re-sent on a fresh connection counts every request. */
    res->attempts += w->x.requests > 1 ? w->x.requests : 1;
    res->bytes_sent += w->x.bytes_earlier + (uint64_t)w->x.ulnow;
    res->http_status = o.http_status;
    bk_verdict v = bk_classify(&o, &kind);

    if (v == BK_SUCCESS && w->x.fd >= 0) {
      /* A streamed file must be unchanged after the upload, not only
       * readable during it. */
      struct stat after;
      if (fstat(w->x.fd, &after) != 0 || !bk_same_file(&w->x.st, &after)) {
        v = BK_FAIL;
        kind = BULKUP_ERROR_FILE_CHANGED;
      }
    }
    if (o.curl == CURLE_SEND_FAIL_REWIND) {
      /* The failure survives curl_easy_reset (curl issue 18206): replace
       * the handle. */
      curl_easy_cleanup(w->easy);
      w->easy = NULL;
    }
    if (v == BK_FAIL && !refreshed && u->opt.refresh_url &&
        bk_says_expired(&w->x, o.http_status)) {
      /* One fresh URL, tried at once; it is not a retry of the same
       * request. */
      refreshed = true;
      res->error = kind;
      snprintf(w->message, sizeof w->message, "signed URL expired");
      char *fresh = u->opt.refresh_url(u->opt.userdata, res);
      if (fresh && bk_scheme_allowed(fresh)) {
        free(w->fresh_url);
        w->fresh_url = fresh;
        url = fresh;
        bk_free(w->redacted_url);
        w->redacted_url = bulkup_redact_url(fresh);
        res->url = w->redacted_url ? w->redacted_url : "(url withheld)";
        bk_log(u, BULKUP_LOG_INFO, "item %llu: signed URL expired; retrying "
               "with a fresh one: %s", (unsigned long long)j->index, res->url);
        continue;
      }
      free(fresh);
    }
    if (v == BK_SUCCESS || v == BK_FAIL)
      break;

    bool allowed = v == BK_RETRY_CONNECT ? conn_retries < p->connection_retries
                                         : retries < p->max_retries;
    if (!allowed)
      break;
    unsigned int cost = (kind == BULKUP_ERROR_TIMEOUT_READ ||
                         kind == BULKUP_ERROR_TIMEOUT_WRITE ||
                         kind == BULKUP_ERROR_TIMEOUT_CONNECT)
                            ? BK_TIMEOUT_RETRY_COST
                            : BK_RETRY_COST;
    if (!bk_budget_take(&u->budget, cost)) {
      bk_describe_failure(w, kind, &o, res->attempts);
      size_t ml = strlen(w->message);
      snprintf(w->message + ml, sizeof w->message - ml,
               "; not retried: the shared retry budget is exhausted");
      kind = BULKUP_ERROR_RETRY_BUDGET;
      v = BK_FAIL;
      break;
    }
    budget_spent += cost;
    if (v == BK_RETRY_CONNECT)
      conn_retries++;
    else
      retries++;
    unsigned int n = (unsigned int)(conn_retries + retries);
    double ra = -1;
    if (o.http_status == 429 || o.http_status == 503)
      ra = w->x.retry_after;
    double wait = bulkup_retry_wait(p, n, ra, bk_rand01(w));
    bk_log(u, BULKUP_LOG_INFO, "item %llu: %s (HTTP %d); retry %u in %.3f s: %s",
           (unsigned long long)j->index, bulkup_error_kind_name(kind),
           o.http_status, n, wait, res->url);
    if (!bk_sleep_cancellable(u, wait)) {
      kind = BULKUP_ERROR_CANCELLED;
      o.abort = BK_ABORT_CANCEL;
      break;
    }
  }
  curl_slist_free_all(headers);

  if (kind == BULKUP_ERROR_NONE) {
    res->status = BULKUP_ITEM_SUCCEEDED;
    res->error = BULKUP_ERROR_NONE;
    if (u->opt.journal && j->journal_key) {
      int64_t mtime = 0;
      if (j->source == BULKUP_SOURCE_FILE)
        mtime = (int64_t)w->x.st.st_mtim.tv_sec * 1000000000LL +
                w->x.st.st_mtim.tv_nsec;
      if (bulkup_journal_record(u->opt.journal, j->journal_key, w->x.size,
                                mtime) != BULKUP_OK)
        bk_log(u, BULKUP_LOG_ERROR, "item %llu: not journalled: %s",
               (unsigned long long)j->index, bulkup_last_error_message());
    }
    bk_budget_refund(&u->budget, budget_spent ? budget_spent
                                              : BK_NO_RETRY_INCREMENT);
  } else {
    res->error = kind;
    res->status = kind == BULKUP_ERROR_CANCELLED ? BULKUP_ITEM_CANCELLED
                                                 : BULKUP_ITEM_FAILED;
    if (kind != BULKUP_ERROR_RETRY_BUDGET)
      bk_describe_failure(w, kind, &o, res->attempts);
    if (w->x.excerpt_len && o.http_status >= 300) {
      res->response_excerpt = w->x.excerpt;
      res->response_excerpt_len = w->x.excerpt_len;
    }
    bk_log(u, res->status == BULKUP_ITEM_CANCELLED ? BULKUP_LOG_INFO
                                                    : BULKUP_LOG_WARN,
           "item %llu %s: %s: %s", (unsigned long long)j->index,
           bulkup_item_status_name(res->status), w->message, res->url);
  }
  bk_close_source(w);
  res->elapsed_s = bk_now() - t0;
}
