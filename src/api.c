/* api.c - the API client: signed JSON requests over libcurl with the
 * requests settings' timeouts and retries, a capped response size, and
 * shape-checked JSON answers (doc/api-protocol.md).
 *
 * Requests run with curl_easy_perform on a handle taken from a small
 * locked pool, so one bulkup_api serves several threads at once (the
 * producer fetching URL batches and workers refreshing expired URLs).
 * Failures are classified by bk_classify (retry.c), the same rules as
 * uploads. */
#include "internal.h"
#include "api.h"
#include "keys.h"
#include "retry.h"
#include "sign.h"

#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>

/* Largest response cap a caller may set (the JSON parser takes an int
 * length, and the buffer doubling must not overflow). */
#define BK_API_MAX_RESPONSE_CAP ((size_t)1 << 30)

void bk_api_log(bulkup_api *api, bulkup_log_level level, const char *fmt,
                ...) {
  if (!api->log || level > api->log_level)
    return;
  char buf[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  api->log(api->userdata, level, buf);
}

/* ---- options, new, free ----------------------------------------------- */

void bulkup_api_options_init(bulkup_api_options *o) {
  memset(o, 0, sizeof *o);
  bulkup_requests_settings_init(&o->requests);
  bulkup_backoff_settings_init(&o->backoff);
  o->log_level = BULKUP_LOG_WARN;
}

/* Split "scheme://authority[/prefix]" into origin and prefix. */
static bulkup_err bk_split_base(const char *base, char **origin,
                                char **prefix) {
  bool https = strncasecmp(base, "https://", 8) == 0;
  if (!https && strncasecmp(base, "http://", 7) != 0)
    return bk_error(BULKUP_ESCHEME, "base_url must start with http:// or "
                    "https://");
  for (const unsigned char *p = (const unsigned char *)base; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f || *p == '?' || *p == '#')
      return bk_error(BULKUP_EINVAL, "base_url must be a plain URL without "
                      "spaces, query or fragment");
  const char *auth = base + (https ? 8 : 7);
  const char *slash = strchr(auth, '/');
  size_t alen = slash ? (size_t)(slash - auth) : strlen(auth);
  if (alen == 0)
    return bk_error(BULKUP_EINVAL, "base_url has no host");
  size_t olen = (size_t)(auth - base) + alen;
  const char *pfx = slash ? slash : "";
  size_t plen = strlen(pfx);
  while (plen > 0 && pfx[plen - 1] == '/')
    plen--;
  *origin = bk_strndup(base, olen);
  *prefix = bk_strndup(pfx, plen);
  if (!*origin || !*prefix) {
    bk_free(*origin);
    bk_free(*prefix);
    *origin = *prefix = NULL;
    return bk_error(BULKUP_ENOMEM, "out of memory");
  }
  return BULKUP_OK;
}

bulkup_err bulkup_api_new(bulkup_api **out, const bulkup_api_options *opt) {
  if (!out)
    return bk_error(BULKUP_EINVAL, "out must not be NULL");
  *out = NULL;
  if (!opt)
    return bk_error(BULKUP_EINVAL, "options must not be NULL");
  if (!opt->base_url)
    return bk_error(BULKUP_EINVAL, "api.base_url must be set");
  if (!bk_sign_key_id_ok(opt->key_id))
    return bk_error(BULKUP_EINVAL, "api.key_id must be 1..256 printable "
                    "ASCII characters without '\"' or '\\'");
  if ((opt->key_file != NULL) == (opt->key_pem != NULL))
    return bk_error(BULKUP_EINVAL, "set exactly one of api.key_file and "
                    "api.key_pem");
  if ((int)opt->log_level < BULKUP_LOG_ERROR ||
      opt->log_level > BULKUP_LOG_DEBUG)
    return bk_error(BULKUP_EINVAL, "api.log_level is out of range");
  if (opt->max_response_size > BK_API_MAX_RESPONSE_CAP)
    return bk_error(BULKUP_EINVAL, "api.max_response_size must be at most "
                    "%zu bytes", (size_t)BK_API_MAX_RESPONSE_CAP);
  if (opt->user_agent && strpbrk(opt->user_agent, "\r\n"))
    return bk_error(BULKUP_EINVAL, "api.user_agent must be one line");
  bulkup_upload_policy policy;
  bulkup_err rc = bulkup_upload_policy_merge(&policy, &opt->requests, NULL,
                                             &opt->backoff);
  if (rc != BULKUP_OK)
    return rc;
  if ((rc = bk_curl_global_init()) != BULKUP_OK)
    return rc;

  bulkup_api *api = bk_calloc(1, sizeof *api);
  if (!api)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  bk_mutex_init(&api->pool_lock);
  bk_mutex_init(&api->cancel_lock);
  bk_cond_init(&api->cancel_cond);
  atomic_init(&api->cancelled, false);
  api->policy = policy;
  api->insecure = opt->insecure;
  api->max_response = opt->max_response_size ? opt->max_response_size
                                             : BULKUP_DEFAULT_API_MAX_RESPONSE;
  api->log = opt->log;
  api->log_level = opt->log_level;
  api->userdata = opt->userdata;
  if ((rc = bk_split_base(opt->base_url, &api->origin, &api->prefix)) !=
      BULKUP_OK)
    goto fail;
  char ua[64];
  snprintf(ua, sizeof ua, "bulkup/%s", BULKUP_VERSION_STRING);
  api->user_agent = bk_strdup(opt->user_agent ? opt->user_agent : ua);
  api->key_id = bk_strdup(opt->key_id);
  api->ca_file = opt->ca_file ? bk_strdup(opt->ca_file) : NULL;
  if (!api->user_agent || !api->key_id || (opt->ca_file && !api->ca_file)) {
    rc = bk_error(BULKUP_ENOMEM, "out of memory");
    goto fail;
  }
  if (opt->key_file)
    rc = bk_key_load_file(opt->key_file, &api->key);
  else
    rc = bk_key_load_mem(opt->key_pem, opt->key_pem_len, &api->key);
  if (rc != BULKUP_OK)
    goto fail;
  if (api->insecure)
    bk_api_log(api, BULKUP_LOG_WARN, "TLS verification of the API is OFF "
               "(insecure): use only with test servers");
  *out = api;
  return BULKUP_OK;
fail:
  bulkup_api_free(api);
  return rc;
}

void bulkup_api_free(bulkup_api *api) {
  if (!api)
    return;
  for (size_t i = 0; i < api->nidle; i++)
    curl_easy_cleanup(api->idle[i]);
  bk_mutex_destroy(&api->pool_lock);
  bk_cond_destroy(&api->cancel_cond);
  bk_mutex_destroy(&api->cancel_lock);
  EVP_PKEY_free(api->key); /* OpenSSL wipes the private key */
  bk_free(api->origin);
  bk_free(api->prefix);
  bk_free(api->key_id);
  bk_free(api->ca_file);
  bk_free(api->user_agent);
  bk_free(api);
}

/* ---- the handle pool -------------------------------------------------- */

static CURL *bk_pool_take(bulkup_api *api) {
  CURL *e = NULL;
  bk_mutex_lock(&api->pool_lock);
  if (api->nidle > 0)
    e = api->idle[--api->nidle];
  bk_mutex_unlock(&api->pool_lock);
  if (e)
    curl_easy_reset(e); /* keeps its connections */
  else
    e = curl_easy_init();
  return e;
}

static void bk_pool_give(bulkup_api *api, CURL *e) {
  if (!e)
    return;
  bk_mutex_lock(&api->pool_lock);
  if (api->nidle < BK_API_POOL) {
    api->idle[api->nidle++] = e;
    e = NULL;
  }
  bk_mutex_unlock(&api->pool_lock);
  if (e)
    curl_easy_cleanup(e);
}

/* ---- one request ------------------------------------------------------ */

typedef struct bk_api_call {
  const char *method;          /* "GET" or "POST" */
  const char *path;            /* endpoint path and query, after prefix */
  const char *body;            /* NULL for none */
  size_t body_len;
  const char *idempotency_key; /* NULL for none */
  bool retry;                  /* retry transient failures */
} bk_api_call;

typedef struct bk_api_reply {
  int status;
  char *body;      /* bk_malloc'ed, NUL-terminated (2xx only) */
  size_t len;
  bool transient;  /* on failure: the last failure was transient */
} bk_api_reply;

/* Per-attempt state written by libcurl's callbacks. */
typedef struct bk_attempt_state {
  bulkup_api *api;
  char *buf;
  size_t len, cap;
  bool too_big;
  bool nomem;
  bool connected;
  double retry_after;
} bk_attempt_state;

static size_t bk_api_write_cb(char *src, size_t size, size_t nmemb,
                              void *ud) {
  bk_attempt_state *st = ud;
  size_t n = size * nmemb;
  if (n > st->api->max_response - st->len) {
    st->too_big = true;
    return 0; /* CURLE_WRITE_ERROR: stop reading an oversized answer */
  }
  if (st->len + n + 1 > st->cap) {
    size_t ncap = st->cap ? st->cap : 4096;
    while (ncap < st->len + n + 1)
      ncap *= 2;
    if (ncap > st->api->max_response + 1)
      ncap = st->api->max_response + 1;
    char *nb = bk_realloc(st->buf, ncap);
    if (!nb) {
      st->nomem = true;
      return 0;
    }
    st->buf = nb;
    st->cap = ncap;
  }
  memcpy(st->buf + st->len, src, n);
  st->len += n;
  st->buf[st->len] = '\0';
  return n;
}

static size_t bk_api_header_cb(char *line, size_t size, size_t nmemb,
                               void *ud) {
  bk_attempt_state *st = ud;
  size_t len = size * nmemb;
  if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
    /* A new response (after 100 Continue): forget the previous one. */
    st->retry_after = -1;
    st->len = 0;
    if (st->buf)
      st->buf[0] = '\0';
    return len;
  }
  static const char name[] = "retry-after:";
  size_t nl = sizeof name - 1;
  if (len > nl && strncasecmp(line, name, nl) == 0) {
    char tmp[128];
    size_t vl = len - nl;
    if (vl < sizeof tmp) {
      memcpy(tmp, line + nl, vl);
      tmp[vl] = '\0';
      double secs;
      if (bulkup_parse_retry_after(tmp, time(NULL), &secs))
        st->retry_after = secs;
    }
  }
  return len;
}

static int bk_api_prereq_cb(void *ud, char *a, char *b, int c, int d) {
  BK_UNUSED(a);
  BK_UNUSED(b);
  BK_UNUSED(c);
  BK_UNUSED(d);
  ((bk_attempt_state *)ud)->connected = true;
  return CURL_PREREQFUNC_OK;
}

/* The API's {"error": "..."} text, printable and short, for messages. */
static void bk_error_excerpt(const char *body, size_t len, char *out,
                             size_t outsz) {
  out[0] = '\0';
  if (!body || len == 0)
    return;
  const char *text = body;
  size_t tl = len;
  json_tokener *tok = json_tokener_new();
  json_object *o = tok ? json_tokener_parse_ex(tok, body, (int)(len > INT_MAX ? INT_MAX : len)) : NULL;
  json_object *e;
  if (o && json_object_is_type(o, json_type_object) &&
      json_object_object_get_ex(o, "error", &e) &&
      json_object_is_type(e, json_type_string)) {
    text = json_object_get_string(e);
    tl = (size_t)json_object_get_string_len(e);
  }
  size_t k = 0;
  for (size_t i = 0; i < tl && k + 1 < outsz && k < 200; i++) {
    unsigned char c = (unsigned char)text[i];
    out[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
  }
  out[k] = '\0';
  json_object_put(o);
  if (tok)
    json_tokener_free(tok);
}

/* One attempt. Fills *o and the state; returns BULKUP_OK when an outcome
 * was obtained (whatever it is), or an error that ends the request at
 * once (signing, allocation, an oversized answer). */
/* Abort a request in flight when the handle is cancelled. */
static int bk_api_xferinfo_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow,
                              curl_off_t ultotal, curl_off_t ulnow) {
  (void)dltotal;
  (void)dlnow;
  (void)ultotal;
  (void)ulnow;
  return atomic_load((atomic_bool *)ud) ? 1 : 0;
}

static bulkup_err bk_api_attempt(bulkup_api *api, const bk_api_call *c,
                                 CURL **easyp, bk_attempt_state *st,
                                 bk_outcome *o, char *errbuf) {
  char target[2048];
  int tn = snprintf(target, sizeof target, "%s%s", api->prefix, c->path);
  if (tn < 0 || (size_t)tn >= sizeof target)
    return bk_error(BULKUP_EINVAL, "request target too long");
  bk_sig_headers sig;
  bulkup_err rc = bk_sign_request(api->key, api->key_id, c->method, target,
                                  c->body, c->body_len, time(NULL), &sig);
  if (rc != BULKUP_OK)
    return rc;
  bool ok = true;
  struct curl_slist *h = NULL;
  h = bk_slist_add(h, sig.content_digest, &ok);
  h = bk_slist_add(h, sig.signature_input, &ok);
  h = bk_slist_add(h, sig.signature, &ok);
  h = bk_slist_add(h, "Accept: application/json", &ok);
  h = bk_slist_add(h, "Expect:", &ok);
  if (c->body)
    h = bk_slist_add(h, "Content-Type: application/json", &ok);
  char idem[128];
  if (c->idempotency_key) {
    snprintf(idem, sizeof idem, "Idempotency-Key: %s", c->idempotency_key);
    h = bk_slist_add(h, idem, &ok);
  }
  bk_sig_headers_free(&sig);
  if (!ok) {
    curl_slist_free_all(h);
    return bk_error(BULKUP_ENOMEM, "out of memory for request headers");
  }
  size_t ul = strlen(api->origin) + (size_t)tn + 1;
  char *url = bk_malloc(ul);
  CURL *e = *easyp ? *easyp : bk_pool_take(api);
  *easyp = e;
  if (!url || !e) {
    bk_free(url);
    curl_slist_free_all(h);
    return bk_error(BULKUP_ENOMEM, "out of memory");
  }
  snprintf(url, ul, "%s%s", api->origin, target);

  st->len = 0;
  st->too_big = st->nomem = st->connected = false;
  st->retry_after = -1;
  errbuf[0] = '\0';
  const bulkup_upload_policy *p = &api->policy;
  long cto = bk_curl_ms(p->connect_timeout);
  long total = (p->connect_timeout > 0 && p->read_timeout > 0 &&
                p->write_timeout > 0)
                   ? bk_curl_ms(p->connect_timeout + p->read_timeout +
                           p->write_timeout)
                   : 0;
  CURLcode cc = CURLE_OK;
#define BK_SET(opt, val)                                                      \
  do {                                                                        \
    if (cc == CURLE_OK)                                                       \
      cc = curl_easy_setopt(e, opt, val);                                     \
  } while (0)
  BK_SET(CURLOPT_NOSIGNAL, 1L);
  BK_SET(CURLOPT_PROTOCOLS_STR, "http,https");
  BK_SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  BK_SET(CURLOPT_FOLLOWLOCATION, 0L);
  /* The request line must be exactly the signed @request-target. */
  BK_SET(CURLOPT_PATH_AS_IS, 1L);
  BK_SET(CURLOPT_URL, url);
  BK_SET(CURLOPT_HTTPHEADER, h);
  BK_SET(CURLOPT_USERAGENT, api->user_agent);
  BK_SET(CURLOPT_WRITEFUNCTION, bk_api_write_cb);
  BK_SET(CURLOPT_WRITEDATA, st);
  BK_SET(CURLOPT_HEADERFUNCTION, bk_api_header_cb);
  BK_SET(CURLOPT_HEADERDATA, st);
  BK_SET(CURLOPT_PREREQFUNCTION, bk_api_prereq_cb);
  BK_SET(CURLOPT_PREREQDATA, st);
  BK_SET(CURLOPT_ERRORBUFFER, errbuf);
  BK_SET(CURLOPT_XFERINFOFUNCTION, bk_api_xferinfo_cb);
  BK_SET(CURLOPT_XFERINFODATA, &api->cancelled);
  BK_SET(CURLOPT_NOPROGRESS, 0L);
  BK_SET(CURLOPT_CONNECTTIMEOUT_MS, cto ? cto : LONG_MAX / 2);
  BK_SET(CURLOPT_TIMEOUT_MS, total);
  BK_SET(CURLOPT_SSL_VERIFYPEER, api->insecure ? 0L : 1L);
  BK_SET(CURLOPT_SSL_VERIFYHOST, api->insecure ? 0L : 2L);
  if (api->ca_file)
    BK_SET(CURLOPT_CAINFO, api->ca_file);
  if (strcmp(c->method, "POST") == 0) {
    BK_SET(CURLOPT_POST, 1L);
    BK_SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
    BK_SET(CURLOPT_POSTFIELDS, c->body ? c->body : "");
  } else {
    BK_SET(CURLOPT_HTTPGET, 1L);
  }
#undef BK_SET
  if (cc != CURLE_OK) {
    bk_free(url);
    curl_slist_free_all(h);
    return bk_error(BULKUP_ECURL, "libcurl setup failed: %s",
                    curl_easy_strerror(cc));
  }
  cc = curl_easy_perform(e);
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  /* The handle must not keep pointers to what we free now. */
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
  bk_free(url);
  curl_slist_free_all(h);
  if (st->too_big)
    return bk_error(BULKUP_EPROTOCOL, "API %s %s: the response is larger "
                    "than %zu bytes", c->method, c->path, api->max_response);
  if (st->nomem)
    return bk_error(BULKUP_ENOMEM, "out of memory for the API response");
  o->curl = cc;
  o->http_status = (int)status;
  o->connected = st->connected;
  o->abort = BK_ABORT_NONE;
  return BULKUP_OK;
}

static double bk_rand01(void) {
  unsigned char b[4];
  if (RAND_bytes(b, sizeof b) != 1) {
    ERR_clear_error();
    return 0.5;
  }
  uint32_t v = ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) |
               ((uint32_t)b[2] << 8) | b[3];
  return (double)v / 4294967296.0;
}

/* Sleep, but wake at once on bulkup_api_cancel. False if cancelled. */
static bool bk_sleep(bulkup_api *api, double seconds) {
  double deadline = bk_now() + (seconds > 0 ? seconds : 0);
  bk_mutex_lock(&api->cancel_lock);
  while (!atomic_load(&api->cancelled) && bk_now() < deadline)
    bk_cond_timedwait(&api->cancel_cond, &api->cancel_lock, deadline);
  bk_mutex_unlock(&api->cancel_lock);
  return !atomic_load(&api->cancelled);
}

bool bk_api_is_cancelled(bulkup_api *api) {
  return atomic_load(&api->cancelled);
}

void bulkup_api_cancel(bulkup_api *api) {
  if (!api)
    return;
  bk_mutex_lock(&api->cancel_lock);
  atomic_store(&api->cancelled, true);
  bk_cond_broadcast(&api->cancel_cond);
  for (bk_api_uploader *n = api->uploaders; n; n = n->next)
    bulkup_uploader_cancel(n->u);
  bk_mutex_unlock(&api->cancel_lock);
}

void bk_api_register_uploader(bulkup_api *api, bk_api_uploader *node,
                              bulkup_uploader *u) {
  node->u = u;
  bk_mutex_lock(&api->cancel_lock);
  node->next = api->uploaders;
  api->uploaders = node;
  if (atomic_load(&api->cancelled))
    bulkup_uploader_cancel(u);
  bk_mutex_unlock(&api->cancel_lock);
}

void bk_api_unregister_uploader(bulkup_api *api, bk_api_uploader *node) {
  bk_mutex_lock(&api->cancel_lock);
  for (bk_api_uploader **pp = &api->uploaders; *pp; pp = &(*pp)->next) {
    if (*pp == node) {
      *pp = node->next;
      break;
    }
  }
  bk_mutex_unlock(&api->cancel_lock);
}


/* Run a request with retries. On BULKUP_OK the reply holds a 2xx answer
 * and its body; on error the detail is set and r->transient says whether
 * the last failure was transient. */
static bulkup_err bk_api_do(bulkup_api *api, const bk_api_call *c,
                            bk_api_reply *r) {
  memset(r, 0, sizeof *r);
  bk_attempt_state st;
  memset(&st, 0, sizeof st);
  st.api = api;
  CURL *easy = NULL;
  char errbuf[CURL_ERROR_SIZE];
  int conn_retries = 0, retries = 0;
  bulkup_err rc;
  const bulkup_upload_policy *p = &api->policy;
  for (;;) {
    if (atomic_load(&api->cancelled)) {
      rc = bk_error(BULKUP_ECANCELED, "API %s %s: cancelled", c->method,
                    c->path);
      break;
    }
    bk_outcome o;
    rc = bk_api_attempt(api, c, &easy, &st, &o, errbuf);
    if (rc != BULKUP_OK)
      break;
    bulkup_error_kind kind;
    bk_verdict v = bk_classify(&o, &kind);
    r->status = o.http_status;
    if (kind == BULKUP_ERROR_CANCELLED && atomic_load(&api->cancelled)) {
      rc = bk_error(BULKUP_ECANCELED, "API %s %s: cancelled", c->method,
                    c->path);
      break;
    }
    if (o.curl == CURLE_SEND_FAIL_REWIND) {
      curl_easy_cleanup(easy);
      easy = NULL;
    }
    if (v == BK_SUCCESS) {
      r->body = st.buf ? st.buf : bk_strdup("");
      r->len = st.len;
      st.buf = NULL;
      rc = r->body ? BULKUP_OK : bk_error(BULKUP_ENOMEM, "out of memory");
      break;
    }
    r->transient = v != BK_FAIL;
    bool allowed = c->retry && v != BK_FAIL &&
                   (v == BK_RETRY_CONNECT
                        ? conn_retries < p->connection_retries
                        : retries < p->max_retries);
    if (!allowed) {
      if (kind == BULKUP_ERROR_HTTP_STATUS) {
        char why[256];
        bk_error_excerpt(st.buf, st.len, why, sizeof why);
        rc = bk_error(BULKUP_EHTTP, "API %s %s: HTTP %d%s%s", c->method,
                      c->path, o.http_status, why[0] ? ": " : "", why);
      } else if (kind == BULKUP_ERROR_TIMEOUT_CONNECT ||
                 kind == BULKUP_ERROR_TIMEOUT_READ) {
        rc = bk_error(BULKUP_ETIMEDOUT, "API %s %s: timed out: %s",
                      c->method, c->path,
                      errbuf[0] ? errbuf : curl_easy_strerror(o.curl));
      } else {
        rc = bk_error(BULKUP_ECURL, "API %s %s: %s (%s)", c->method, c->path,
                      errbuf[0] ? errbuf : curl_easy_strerror(o.curl),
                      bulkup_error_kind_name(kind));
      }
      int tries = 1 + conn_retries + retries;
      bk_api_log(api, BULKUP_LOG_WARN, "%s (after %d attempt%s)",
                 bulkup_last_error_message(), tries, tries == 1 ? "" : "s");
      break;
    }
    if (v == BK_RETRY_CONNECT)
      conn_retries++;
    else
      retries++;
    unsigned int n = (unsigned int)(conn_retries + retries);
    double ra = (o.http_status == 429 || o.http_status == 503)
                    ? st.retry_after
                    : -1;
    double wait = bulkup_retry_wait(p, n, ra, bk_rand01());
    bk_api_log(api, BULKUP_LOG_INFO, "API %s %s: %s (HTTP %d); retry %u in "
               "%.3f s", c->method, c->path, bulkup_error_kind_name(kind),
               o.http_status, n, wait);
    bk_sleep(api, wait); /* a cancel is seen at the top of the loop */
  }
  bk_free(st.buf);
  bk_pool_give(api, easy);
  return rc;
}

/* ---- JSON ------------------------------------------------------------- */

/* Parse a whole body as one JSON value (trailing whitespace allowed). */
static bulkup_err bk_json_parse(const char *what, const char *body,
                                size_t len, json_object **out) {
  *out = NULL;
  if (len > INT_MAX)
    return bk_error(BULKUP_EPROTOCOL, "%s: response too large", what);
  json_tokener *tok = json_tokener_new_ex(32);
  if (!tok)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  json_object *o = json_tokener_parse_ex(tok, body, (int)len);
  enum json_tokener_error je = json_tokener_get_error(tok);
  size_t end = json_tokener_get_parse_end(tok);
  json_tokener_free(tok);
  if (!o || je != json_tokener_success) {
    json_object_put(o);
    return bk_error(BULKUP_EPROTOCOL, "%s: the answer is not valid JSON (%s)",
                    what, je == json_tokener_continue
                              ? "truncated"
                              : json_tokener_error_desc(je));
  }
  for (size_t i = end; i < len; i++)
    if (!strchr(" \t\r\n", body[i])) {
      json_object_put(o);
      return bk_error(BULKUP_EPROTOCOL, "%s: trailing data after the JSON "
                      "answer", what);
    }
  *out = o;
  return BULKUP_OK;
}

/* A member that must be a string of 1..maxlen bytes, no NUL and no control
 * characters. */
static const char *bk_json_str(json_object *obj, const char *key,
                               size_t maxlen) {
  json_object *v;
  if (!json_object_object_get_ex(obj, key, &v) ||
      !json_object_is_type(v, json_type_string))
    return NULL;
  const char *s = json_object_get_string(v);
  size_t n = (size_t)json_object_get_string_len(v);
  if (n == 0 || n > maxlen || strlen(s) != n)
    return NULL;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
      return NULL;
  return s;
}

static bool bk_http_url(const char *u) {
  if (strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8) != 0)
    return false;
  for (const unsigned char *p = (const unsigned char *)u; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f)
      return false;
  return true;
}

/* ---- presign ---------------------------------------------------------- */

void bulkup_signed_urls_free(bulkup_signed_url *v, size_t n) {
  if (!v)
    return;
  for (size_t i = 0; i < n; i++) {
    bk_free(v[i].item_uuid);
    bk_free(v[i].object_key);
    bk_free(v[i].signed_url);
  }
  bk_free(v);
}

bulkup_err bulkup_api_presign(bulkup_api *api, bulkup_data_type type,
                              size_t count, bulkup_signed_url **out,
                              size_t *n) {
  if (out)
    *out = NULL;
  if (n)
    *n = 0;
  if (!api || !out || !n)
    return bk_error(BULKUP_EINVAL, "api, out and n must not be NULL");
  if (count < 1 || count > BULKUP_API_MAX_PRESIGN)
    return bk_error(BULKUP_EINVAL, "count must be between 1 and %d (got %zu)",
                    BULKUP_API_MAX_PRESIGN, count);
  if ((int)type < 0 || type >= BULKUP_DATA_TYPE_MISSING)
    return bk_error(BULKUP_EINVAL, "presign needs a known data type");
  char path[160];
  snprintf(path, sizeof path,
           "/v2/public/presigned-urls?count=%zu&upload_item_type=%s", count,
           bulkup_data_type_to_upper_case_string(type));
  bk_api_call c = {.method = "GET", .path = path, .retry = true};
  bk_api_reply r;
  bulkup_err rc = bk_api_do(api, &c, &r);
  if (rc != BULKUP_OK)
    return rc;
  rc = bk_api_parse_presign(r.body, r.len, count, out);
  bk_free(r.body);
  if (rc == BULKUP_OK)
    *n = count;
  return rc;
}

bulkup_err bk_api_parse_presign(const char *body, size_t len, size_t count,
                                bulkup_signed_url **out) {
  *out = NULL;
  json_object *root;
  bulkup_err rc = bk_json_parse("presigned-urls", body, len, &root);
  if (rc != BULKUP_OK)
    return rc;
  json_object *results;
  if (!json_object_is_type(root, json_type_object) ||
      !json_object_object_get_ex(root, "results", &results) ||
      !json_object_is_type(results, json_type_array)) {
    json_object_put(root);
    return bk_error(BULKUP_EPROTOCOL, "presigned-urls: the answer has no "
                    "\"results\" array");
  }
  size_t got = json_object_array_length(results);
  if (got != count) {
    json_object_put(root);
    return bk_error(BULKUP_EPROTOCOL, "presigned-urls: asked for %zu signed "
                    "URLs, the API returned %zu", count, got);
  }
  bulkup_signed_url *v = bk_calloc(count, sizeof *v);
  if (!v) {
    json_object_put(root);
    return bk_error(BULKUP_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < count; i++) {
    json_object *e = json_object_array_get_idx(results, i);
    const char *uuid = NULL, *key = NULL, *url = NULL;
    if (json_object_is_type(e, json_type_object)) {
      uuid = bk_json_str(e, "item_uuid", 256);
      key = bk_json_str(e, "object_key", 1024);
      url = bk_json_str(e, "signed_url", 16384);
    }
    if (!uuid || !key || !url) {
      rc = bk_error(BULKUP_EPROTOCOL, "presigned-urls: result %zu lacks a "
                    "valid item_uuid, object_key or signed_url", i);
      break;
    }
    if (!bk_http_url(url)) {
      rc = bk_error(BULKUP_EPROTOCOL, "presigned-urls: result %zu: the "
                    "signed URL is not an http or https URL; refused", i);
      break;
    }
    v[i].item_uuid = bk_strdup(uuid);
    v[i].object_key = bk_strdup(key);
    v[i].signed_url = bk_strdup(url);
    if (!v[i].item_uuid || !v[i].object_key || !v[i].signed_url) {
      rc = bk_error(BULKUP_ENOMEM, "out of memory");
      break;
    }
  }
  json_object_put(root);
  if (rc != BULKUP_OK) {
    bulkup_signed_urls_free(v, count);
    return rc;
  }
  *out = v;
  return BULKUP_OK;
}

/* ---- image groups ----------------------------------------------------- */

bulkup_err bk_random_hex128(char out[33]) {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) {
    ERR_clear_error();
    return bk_error(BULKUP_ECRYPTO, "RAND_bytes failed");
  }
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < sizeof b; i++) {
    out[2 * i] = hex[b[i] >> 4];
    out[2 * i + 1] = hex[b[i] & 15];
  }
  out[32] = '\0';
  return BULKUP_OK;
}

/* A job id that can go into a URL path as one segment. */
static bool bk_job_id_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 256 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
          c == '~'))
      return false;
  }
  return true;
}

bulkup_err bk_api_create_group(bulkup_api *api, const char *body,
                               size_t body_len, char **process_hash) {
  *process_hash = NULL;
  char key[33];
  bulkup_err rc = bk_random_hex128(key);
  if (rc != BULKUP_OK)
    return rc;
  /* Retried only because the key makes the POST idempotent: a retry after
   * a lost answer returns the group the first POST created. */
  bk_api_call c = {.method = "POST",
                   .path = "/v2/public/image-groups",
                   .body = body,
                   .body_len = body_len,
                   .idempotency_key = key,
                   .retry = true};
  bk_api_reply r;
  rc = bk_api_do(api, &c, &r);
  if (rc != BULKUP_OK)
    return rc;
  json_object *root;
  rc = bk_json_parse("image-groups", r.body, r.len, &root);
  bk_free(r.body);
  if (rc != BULKUP_OK)
    return rc;
  const char *ph = json_object_is_type(root, json_type_object)
                       ? bk_json_str(root, "process_hash", 256)
                       : NULL;
  if (!ph || !bk_job_id_ok(ph)) {
    json_object_put(root);
    return bk_error(BULKUP_EPROTOCOL, "image-groups: the answer has no valid "
                    "\"process_hash\"");
  }
  *process_hash = bk_strdup(ph);
  json_object_put(root);
  return *process_hash ? BULKUP_OK : bk_error(BULKUP_ENOMEM, "out of memory");
}

const char *bulkup_image_group_process_hash(const bulkup_image_group *g) {
  return g ? g->process_hash : "";
}

size_t bulkup_image_group_count(const bulkup_image_group *g) {
  return g ? g->n : 0;
}

const char *bulkup_image_group_data_hash(const bulkup_image_group *g,
                                         size_t i) {
  return g && i < g->n ? g->data_hash[i] : NULL;
}

const char *bulkup_image_group_title(const bulkup_image_group *g, size_t i) {
  return g && i < g->n ? g->title[i] : NULL;
}

void bulkup_image_group_free(bulkup_image_group *g) {
  if (!g)
    return;
  for (size_t i = 0; i < g->n; i++) {
    if (g->data_hash)
      bk_free(g->data_hash[i]);
    if (g->title)
      bk_free(g->title[i]);
  }
  bk_free(g->data_hash);
  bk_free(g->title);
  bk_free(g->process_hash);
  bk_free(g);
}

/* A DONE answer into a group result. */
static bulkup_err bk_job_done(json_object *root, const char *process_hash,
                              size_t expected, bulkup_image_group **out) {
  json_object *arr;
  if (!json_object_object_get_ex(root, "data_hashes_with_titles", &arr) ||
      !json_object_is_type(arr, json_type_array))
    return bk_error(BULKUP_EPROTOCOL, "job %s: DONE without a "
                    "\"data_hashes_with_titles\" array", process_hash);
  size_t n = json_object_array_length(arr);
  if (expected && n != expected)
    return bk_error(BULKUP_EPROTOCOL, "job %s: %zu images posted, the API "
                    "reports %zu", process_hash, expected, n);
  bulkup_image_group *g = bk_calloc(1, sizeof *g);
  if (!g)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  g->process_hash = bk_strdup(process_hash);
  g->data_hash = bk_calloc(n ? n : 1, sizeof *g->data_hash);
  g->title = bk_calloc(n ? n : 1, sizeof *g->title);
  if (!g->process_hash || !g->data_hash || !g->title) {
    bulkup_image_group_free(g);
    return bk_error(BULKUP_ENOMEM, "out of memory");
  }
  g->n = n;
  for (size_t i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx(arr, i);
    const char *dh = NULL, *t = NULL;
    if (json_object_is_type(e, json_type_object)) {
      dh = bk_json_str(e, "data_hash", 1024);
      t = bk_json_str(e, "title", 4096);
    }
    if (!dh || !t) {
      bulkup_image_group_free(g);
      return bk_error(BULKUP_EPROTOCOL, "job %s: entry %zu lacks a valid "
                      "data_hash or title", process_hash, i);
    }
    g->data_hash[i] = bk_strdup(dh);
    g->title[i] = bk_strdup(t);
    if (!g->data_hash[i] || !g->title[i]) {
      bulkup_image_group_free(g);
      return bk_error(BULKUP_ENOMEM, "out of memory");
    }
  }
  *out = g;
  return BULKUP_OK;
}

/* An ERROR answer: the reasons, printable, joined with "; ". */
static bulkup_err bk_job_error(json_object *root, const char *process_hash) {
  char why[400];
  size_t k = 0;
  why[0] = '\0';
  json_object *arr;
  if (json_object_object_get_ex(root, "errors", &arr) &&
      json_object_is_type(arr, json_type_array)) {
    size_t n = json_object_array_length(arr);
    for (size_t i = 0; i < n && k + 1 < sizeof why; i++) {
      json_object *e = json_object_array_get_idx(arr, i);
      const char *s = json_object_is_type(e, json_type_string)
                          ? json_object_get_string(e)
                          : NULL;
      if (!s)
        continue;
      if (k && k + 3 < sizeof why) {
        memcpy(why + k, "; ", 2);
        k += 2;
      }
      for (; *s && k + 1 < sizeof why; s++)
        why[k++] = ((unsigned char)*s >= 0x20 && *s != 0x7f) ? *s : '?';
      why[k] = '\0';
    }
  }
  return bk_error(BULKUP_EJOB, "image group job %s failed: %s", process_hash,
                  k ? why : "no reason given");
}

bulkup_err bk_api_parse_job(const char *body, size_t len,
                            const char *process_hash, size_t expected,
                            bool *final, bulkup_image_group **out) {
  *final = false;
  *out = NULL;
  json_object *root;
  bulkup_err rc = bk_json_parse("job status", body, len, &root);
  if (rc != BULKUP_OK)
    return rc;
  const char *status = json_object_is_type(root, json_type_object)
                           ? bk_json_str(root, "status", 64)
                           : NULL;
  if (!status) {
    json_object_put(root);
    return bk_error(BULKUP_EPROTOCOL, "job %s: the answer has no "
                    "\"status\"", process_hash);
  }
  *final = true;
  if (strcmp(status, "DONE") == 0)
    rc = bk_job_done(root, process_hash, expected, out);
  else if (strcmp(status, "ERROR") == 0)
    rc = bk_job_error(root, process_hash);
  else if (strcmp(status, "CANCELLED") == 0)
    rc = bk_error(BULKUP_ECANCELED, "image group job %s was cancelled",
                  process_hash);
  else
    *final = false;
  json_object_put(root);
  return rc;
}

bulkup_err bk_api_wait_job(bulkup_api *api, const char *process_hash,
                           const bk_poll_opts *po, size_t expected,
                           bulkup_image_group **out) {
  *out = NULL;
  if (!bk_job_id_ok(process_hash))
    return bk_error(BULKUP_EPROTOCOL, "invalid job id");
  char path[400];
  snprintf(path, sizeof path, "/v2/public/image-groups/jobs/%s", process_hash);
  double start = bk_now();
  double interval = po->interval > 0 ? po->interval : 0;
  double cap = po->interval_max > 0 ? po->interval_max : 10.0;
  double wait = interval;
  int failures = 0;
  unsigned polls = 0;
  for (;;) {
    /* Wait first: the job was just created. Never beyond the deadline. */
    if (po->timeout > 0) {
      double left = start + po->timeout - bk_now();
      if (left <= 0)
        return bk_error(BULKUP_ETIMEDOUT, "image group job %s did not end "
                        "within %.3g s (%u polls)", process_hash,
                        po->timeout, polls);
      bk_sleep(api, wait < left ? wait : left);
    } else {
      bk_sleep(api, wait);
    }
    if (atomic_load(&api->cancelled))
      return bk_error(BULKUP_ECANCELED, "cancelled while waiting for image "
                      "group job %s", process_hash);
    polls++;
    bk_api_call c = {.method = "GET", .path = path, .retry = false};
    bk_api_reply r;
    bulkup_err rc = bk_api_do(api, &c, &r);
    if (rc != BULKUP_OK) {
      if (!r.transient)
        return rc;
      if (++failures > BK_POLL_MAX_CONSECUTIVE_FAILURES) {
        char detail[300];
        snprintf(detail, sizeof detail, "%s", bulkup_last_error_message());
        return bk_error(rc, "polling image group job %s: %d transient "
                        "failures in a row; last: %s", process_hash,
                        failures, detail);
      }
      wait = bulkup_retry_wait(&api->policy, (unsigned)failures, -1,
                               bk_rand01());
      continue;
    }
    failures = 0;
    bool final = false;
    rc = bk_api_parse_job(r.body, r.len, process_hash, expected, &final, out);
    bk_free(r.body);
    if (rc != BULKUP_OK || final)
      return rc;
    /* PENDING (or any other non-final status): wait longer each time. */
    double next = (interval > 0 ? interval : 0.05) * 1.5;
    interval = next < cap ? next : cap;
    wait = interval;
  }
}
