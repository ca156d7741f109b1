/* client.c - the Encord API client's core: the handle and its key, one
 * signed request (v1 POST /public or v2 GET) with the requests settings'
 * timeouts and retries (ENCORD_WIRE.md §10), a capped response size, and
 * the API's error envelopes (§4, §6) turned into clear messages.
 *
 * Requests run with curl_easy_perform on a handle taken from a small
 * locked pool, so one bulkup_api serves several threads at once (the
 * producer fetching URL batches and workers refreshing expired URLs).
 *
 * Timeouts are the engine's (transfer.c): connect_timeout bounds the
 * connection; write_timeout ends an attempt whose request bytes stop
 * moving for that long; read_timeout ends one whose answer has not come
 * that long after the request was sent (plus the seconds a long poll asks
 * the server to hold it). They are checked in libcurl's progress
 * callback, which runs at least once a second. */
#include "internal.h"
#include "client.h"
#include "keys.h"
#include "pyjson.h"
#include "retry.h"
#include "sign.h"
#include "util/rand.h"
#include "util/str.h"

#include <limits.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
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

/* The key: key_file, key_pem, else $ENCORD_SSH_KEY_FILE, else
 * $ENCORD_SSH_KEY (the SDK's order of the two variables). */
static bulkup_err bk_api_load_key(const bulkup_api_options *opt,
                                  EVP_PKEY **key) {
  if (opt->key_file)
    return bk_key_load_file(opt->key_file, key);
  if (opt->key_pem)
    return bk_key_load_mem(opt->key_pem, opt->key_pem_len, key);
  const char *file = getenv(BULKUP_ENV_KEY_FILE);
  if (file && *file) {
    bulkup_err rc = bk_key_load_file(file, key);
    if (rc != BULKUP_OK) {
      char detail[400];
      snprintf(detail, sizeof detail, "%s", bulkup_last_error_message());
      return bk_error(rc, "$%s: %s", BULKUP_ENV_KEY_FILE, detail);
    }
    return rc;
  }
  const char *text = getenv(BULKUP_ENV_KEY);
  if (text && *text) {
    bulkup_err rc = bk_key_load_mem(text, strlen(text), key);
    if (rc != BULKUP_OK) {
      char detail[400];
      snprintf(detail, sizeof detail, "%s", bulkup_last_error_message());
      return bk_error(rc, "$%s: %s", BULKUP_ENV_KEY, detail);
    }
    return rc;
  }
  return bk_error(BULKUP_EINVAL, "no private key: set api.key_file or "
                  "api.key_pem, or $%s or $%s", BULKUP_ENV_KEY_FILE,
                  BULKUP_ENV_KEY);
}

bulkup_err bulkup_api_new(bulkup_api **out, const bulkup_api_options *opt) {
  if (!out)
    return bk_error(BULKUP_EINVAL, "out must not be NULL");
  *out = NULL;
  if (!opt)
    return bk_error(BULKUP_EINVAL, "options must not be NULL");
  if (opt->key_file && opt->key_pem)
    return bk_error(BULKUP_EINVAL, "set at most one of api.key_file and "
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
  if ((rc = bk_split_base(opt->base_url ? opt->base_url
                                        : BULKUP_ENCORD_API_URL,
                          &api->origin, &api->prefix)) != BULKUP_OK)
    goto fail;
  char ua[64];
  snprintf(ua, sizeof ua, "bulkup/%s", BULKUP_VERSION_STRING);
  api->user_agent = bk_strdup(opt->user_agent ? opt->user_agent : ua);
  api->ca_file = opt->ca_file ? bk_strdup(opt->ca_file) : NULL;
  if (!api->user_agent || (opt->ca_file && !api->ca_file)) {
    rc = bk_error(BULKUP_ENOMEM, "out of memory");
    goto fail;
  }
  if ((rc = bk_api_load_key(opt, &api->key)) != BULKUP_OK)
    goto fail;
  if ((rc = bk_key_id_hex(api->key, api->key_id)) != BULKUP_OK)
    goto fail;
  if (opt->key_id && strcasecmp(opt->key_id, api->key_id) != 0) {
    rc = bk_error(BULKUP_EINVAL, "api.key_id '%.80s' is not this key's id: "
                  "the key id is the public key in hex, %s (leave key_id "
                  "unset: it is derived from the key)", opt->key_id,
                  api->key_id);
    goto fail;
  }
  if (api->insecure)
    bk_api_log(api, BULKUP_LOG_WARN, "TLS verification of the API is OFF "
               "(insecure): use only with test servers");
  *out = api;
  return BULKUP_OK;
fail:
  bulkup_api_free(api);
  return rc;
}

const char *bulkup_api_key_id(const bulkup_api *api) {
  return api ? api->key_id : "";
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
  bk_free(api->ca_file);
  bk_free(api->user_agent);
  bk_free(api);
}

/* ---- cancel ------------------------------------------------------------ */

bool bk_api_sleep(bulkup_api *api, double seconds) {
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

/* ---- one attempt ------------------------------------------------------ */

typedef enum bk_api_abort {
  BK_API_ABORT_NONE = 0,
  BK_API_ABORT_CANCEL,
  BK_API_ABORT_WRITE, /* request bytes stopped moving: write_timeout */
  BK_API_ABORT_READ   /* no answer in time: read_timeout (+ hold) */
} bk_api_abort;

/* Per-attempt state written by libcurl's callbacks. */
typedef struct bk_attempt_state {
  bulkup_api *api;
  char *buf;
  size_t len, cap;
  bool too_big;
  bool nomem;
  bool connected;
  double retry_after;
  /* timeouts */
  size_t body_len;    /* request body bytes (0 for a GET) */
  double hold;        /* long-poll seconds added to the read timeout */
  double last_up;     /* when request bytes last moved (or connected) */
  curl_off_t ulnow;   /* request bytes sent so far */
  bool body_sent;
  double body_sent_at;
  bool answering;     /* response bytes started */
  bk_api_abort abort;
} bk_attempt_state;

static size_t bk_api_write_cb(char *src, size_t size, size_t nmemb,
                              void *ud) {
  bk_attempt_state *st = ud;
  size_t n = size * nmemb;
  st->answering = true;
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
  st->answering = true;
  double secs;
  if (bk_header_is_status(line, len)) {
    /* A new response (after 100 Continue): forget the previous one. */
    st->retry_after = -1;
    st->len = 0;
    if (st->buf)
      st->buf[0] = '\0';
  } else if (bk_header_retry_after(line, len, time(NULL), &secs)) {
    st->retry_after = secs;
  }
  return len;
}

static int bk_api_prereq_cb(void *ud, char *a, char *b, int c, int d) {
  BK_UNUSED(a);
  BK_UNUSED(b);
  BK_UNUSED(c);
  BK_UNUSED(d);
  bk_attempt_state *st = ud;
  st->connected = true;
  st->last_up = bk_now();
  if (st->body_len == 0) {
    st->body_sent = true;
    st->body_sent_at = st->last_up;
  }
  return CURL_PREREQFUNC_OK;
}

/* Cancel, and the write and read timeouts (see the top of the file). */
static int bk_api_xferinfo_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow,
                              curl_off_t ultotal, curl_off_t ulnow) {
  BK_UNUSED(dltotal);
  BK_UNUSED(dlnow);
  BK_UNUSED(ultotal);
  bk_attempt_state *st = ud;
  const bulkup_upload_policy *p = &st->api->policy;
  if (atomic_load(&st->api->cancelled)) {
    st->abort = BK_API_ABORT_CANCEL;
    return 1;
  }
  if (!st->connected)
    return 0; /* libcurl's connect timeout applies */
  double now = bk_now();
  if (ulnow > st->ulnow) {
    st->ulnow = ulnow;
    st->last_up = now;
  }
  if (!st->body_sent && (size_t)ulnow >= st->body_len) {
    st->body_sent = true;
    st->body_sent_at = now;
  }
  if (!st->body_sent && p->write_timeout > 0 &&
      now - st->last_up >= p->write_timeout) {
    st->abort = BK_API_ABORT_WRITE;
    return 1;
  }
  if (st->body_sent && !st->answering && p->read_timeout > 0 &&
      now - st->body_sent_at >= p->read_timeout + st->hold) {
    st->abort = BK_API_ABORT_READ;
    return 1;
  }
  return 0;
}

/* uuid4().hex + "/1;o=1" (the SDK's X-Cloud-Trace-Context, §4). */
static void bk_trace_context(char out[48]) {
  unsigned char b[16];
  if (!bk_random_bytes(b, sizeof b)) {
    uint64_t x = bk_random_seed(), y = bk_random_seed();
    memcpy(b, &x, 8);
    memcpy(b + 8, &y, 8);
  }
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  bk_hex_encode(b, sizeof b, out, false);
  memcpy(out + 32, "/1;o=1", 7);
}

/* The outcome of one attempt. */
typedef struct bk_try {
  CURLcode curl;
  int status;      /* HTTP status, 0 if none */
  bool connected;
  bk_api_abort abort;
} bk_try;

/* One attempt. Returns BULKUP_OK when an outcome was obtained (whatever
 * it is) in *t, or an error that ends the request at once (signing,
 * allocation, an oversized answer). */
static bulkup_err bk_api_attempt(bulkup_api *api, const bk_api_call *c,
                                 CURL **easyp, bk_attempt_state *st,
                                 bk_try *t, char *errbuf) {
  const char *path = c->v1 ? "/public" : c->target;
  char target[2048];
  int tn = snprintf(target, sizeof target, "%s%s", api->prefix, path);
  if (tn < 0 || (size_t)tn >= sizeof target)
    return bk_error(BULKUP_EINVAL, "request target too long");
  bool ok = true;
  struct curl_slist *h = NULL;
  char line[1200];
  char trace[48];
  bk_trace_context(trace);
  if (c->v1) {
    /* §6, in the SDK's order; libcurl adds Host and Content-Length. */
    char auth[BK_V1_AUTH_LEN + 1];
    bulkup_err rc = bk_sign_v1(api->key, api->key_id, c->body, c->body_len,
                               auth, sizeof auth);
    if (rc != BULKUP_OK)
      return rc;
    h = bk_slist_add(h, "Accept: application/json", &ok);
    h = bk_slist_add(h, "Content-Type: application/json", &ok);
    h = bk_slist_add(h, "ResourceType: dataset", &ok);
    snprintf(line, sizeof line, "ResourceID: %s",
             c->resource_id ? c->resource_id : "");
    h = bk_slist_add(h, line, &ok);
    snprintf(line, sizeof line, "Authorization: %s", auth);
    h = bk_slist_add(h, line, &ok);
    OPENSSL_cleanse(line, sizeof line);
  } else {
    /* §4: no Accept, no Content-Type, no body. */
    bk_sig_headers sig;
    bulkup_err rc = bk_sign_request(api->key, api->key_id, "GET", target,
                                    NULL, 0, time(NULL), &sig);
    if (rc != BULKUP_OK)
      return rc;
    h = bk_slist_add(h, "Accept:", &ok); /* drop libcurl's Accept: * / * */
    h = bk_slist_add(h, "Accept-Encoding: identity", &ok);
    h = bk_slist_add(h, sig.content_digest, &ok);
    h = bk_slist_add(h, sig.signature_input, &ok);
    h = bk_slist_add(h, sig.signature, &ok);
    bk_sig_headers_free(&sig);
  }
  snprintf(line, sizeof line, "X-Cloud-Trace-Context: %s", trace);
  h = bk_slist_add(h, line, &ok);
  h = bk_slist_add(h, "Expect:", &ok);
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
  st->body_len = c->v1 ? c->body_len : 0;
  st->hold = c->hold > 0 ? c->hold : 0;
  st->last_up = bk_now();
  st->ulnow = 0;
  st->body_sent = false;
  st->body_sent_at = 0;
  st->answering = false;
  st->abort = BK_API_ABORT_NONE;
  errbuf[0] = '\0';
  bk_curl_common common = {.connect_timeout = api->policy.connect_timeout,
                           .insecure = api->insecure,
                           .ca_file = api->ca_file,
                           .user_agent = api->user_agent,
                           .errbuf = errbuf};
  CURLcode cc = bk_curl_setup_common(e, &common);
#define BK_SET(opt, val)                                                      \
  do {                                                                        \
    if (cc == CURLE_OK)                                                       \
      cc = curl_easy_setopt(e, opt, val);                                     \
  } while (0)
  /* The request line must be exactly the signed @request-target. */
  BK_SET(CURLOPT_PATH_AS_IS, 1L);
  BK_SET(CURLOPT_URL, url);
  BK_SET(CURLOPT_HTTPHEADER, h);
  BK_SET(CURLOPT_WRITEFUNCTION, bk_api_write_cb);
  BK_SET(CURLOPT_WRITEDATA, st);
  BK_SET(CURLOPT_HEADERFUNCTION, bk_api_header_cb);
  BK_SET(CURLOPT_HEADERDATA, st);
  BK_SET(CURLOPT_PREREQFUNCTION, bk_api_prereq_cb);
  BK_SET(CURLOPT_PREREQDATA, st);
  BK_SET(CURLOPT_XFERINFOFUNCTION, bk_api_xferinfo_cb);
  BK_SET(CURLOPT_XFERINFODATA, st);
  BK_SET(CURLOPT_NOPROGRESS, 0L);
  /* v1: "Accept-Encoding: gzip" (§6), and libcurl decodes a gzipped
   * answer; v2 says identity in its own header. */
  if (c->v1)
    BK_SET(CURLOPT_ACCEPT_ENCODING, "gzip");
  if (c->v1) {
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
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
  bk_free(url);
  curl_slist_free_all(h); /* held the Authorization: libcurl copies none */
  if (st->too_big)
    return bk_error(BULKUP_EPROTOCOL, "API %s: the response is larger "
                    "than %zu bytes", c->what, api->max_response);
  if (st->nomem)
    return bk_error(BULKUP_ENOMEM, "out of memory for the API response");
  t->curl = cc;
  t->status = cc == CURLE_OK ? (int)status : 0;
  t->connected = st->connected;
  t->abort = st->abort;
  return BULKUP_OK;
}

/* ---- retries ------------------------------------------------------------ */

/* How a failed attempt counts (§10): a connection failure (nothing sent),
 * a failure after the request went out (timeouts, resets), or a failure
 * retrying cannot cure. */
typedef enum bk_fail_kind {
  BK_FAIL_CONNECT,
  BK_FAIL_READ,
  BK_FAIL_FATAL
} bk_fail_kind;

static bk_fail_kind bk_fail_kind_of(const bk_try *t) {
  switch (t->curl) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_CONNECT:
    return BK_FAIL_CONNECT;
  case CURLE_OPERATION_TIMEDOUT:
    return t->connected ? BK_FAIL_READ : BK_FAIL_CONNECT;
  case CURLE_SSL_CONNECT_ERROR:
    return t->connected ? BK_FAIL_READ : BK_FAIL_CONNECT;
  case CURLE_ABORTED_BY_CALLBACK:
    return t->abort == BK_API_ABORT_CANCEL ? BK_FAIL_FATAL : BK_FAIL_READ;
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
  case CURLE_BAD_CONTENT_ENCODING:
  case CURLE_WEIRD_SERVER_REPLY:
    return t->connected ? BK_FAIL_READ : BK_FAIL_CONNECT;
  default:
    return BK_FAIL_FATAL; /* TLS verification, bad URL, ... */
  }
}

/* urllib3's status_forcelist in the SDK's sessions. */
static bool bk_status_retryable(int s) {
  return s == 413 || s == 429 || s == 500 || s == 502 || s == 503;
}

bulkup_err bk_api_request(bulkup_api *api, const bk_api_call *c,
                          bk_api_reply *r) {
  memset(r, 0, sizeof *r);
  bk_attempt_state st;
  memset(&st, 0, sizeof st);
  st.api = api;
  CURL *easy = NULL;
  char errbuf[CURL_ERROR_SIZE];
  bk_retry_state rs;
  memset(&rs, 0, sizeof rs);
  bulkup_err rc;
  const bulkup_upload_policy *p = &api->policy;
  for (;;) {
    if (atomic_load(&api->cancelled)) {
      rc = bk_error(BULKUP_ECANCELED, "API %s: cancelled", c->what);
      break;
    }
    bk_try t = {CURLE_OK, 0, false, BK_API_ABORT_NONE};
    rc = bk_api_attempt(api, c, &easy, &st, &t, errbuf);
    if (rc != BULKUP_OK)
      break;
    if (t.abort == BK_API_ABORT_CANCEL) {
      rc = bk_error(BULKUP_ECANCELED, "API %s: cancelled", c->what);
      break;
    }
    int tries = 1 + rs.conn_retries + rs.retries;
    /* The verdict of §10 (urllib3's rules in the SDK's sessions), then the
     * one retry decision of retry.c applies the limits and the waits. */
    bk_verdict v;
    bulkup_error_kind kind;
    if (t.curl == CURLE_OK) {
      r->status = t.status;
      if (!bk_status_retryable(t.status)) {
        r->body = st.buf ? st.buf : bk_strdup("");
        r->len = st.len;
        st.buf = NULL;
        rc = r->body ? BULKUP_OK : bk_error(BULKUP_ENOMEM, "out of memory");
        break;
      }
      v = c->retry ? BK_RETRY : BK_FAIL;
      kind = BULKUP_ERROR_HTTP_STATUS;
    } else {
      bk_fail_kind k = bk_fail_kind_of(&t);
      kind = t.abort == BK_API_ABORT_READ    ? BULKUP_ERROR_TIMEOUT_READ
             : t.abort == BK_API_ABORT_WRITE ? BULKUP_ERROR_TIMEOUT_WRITE
             : k == BK_FAIL_CONNECT          ? BULKUP_ERROR_CONNECT
                                             : BULKUP_ERROR_RECV;
      v = k == BK_FAIL_CONNECT ? BK_RETRY_CONNECT
          : k == BK_FAIL_READ && c->retry ? BK_RETRY
                                          : BK_FAIL;
    }
    bk_retry_decision d =
        bk_retry_decide(p, NULL, &rs, v, kind, t.status,
                        t.curl == CURLE_OK ? st.retry_after : -1, bk_rand01());
    if (!d.retry) {
      if (t.curl == CURLE_OK) {
        /* A retryable status with no retry left: the answer stands. */
        r->body = st.buf ? st.buf : bk_strdup("");
        r->len = st.len;
        st.buf = NULL;
        rc = r->body ? BULKUP_OK : bk_error(BULKUP_ENOMEM, "out of memory");
        break;
      }
      r->transport = v != BK_FAIL || bk_fail_kind_of(&t) != BK_FAIL_FATAL;
      if (t.abort == BK_API_ABORT_READ)
        rc = bk_error(BULKUP_ETIMEDOUT, "API %s: no answer within the read "
                      "timeout (%.3g s%s) (%d attempt%s)", c->what,
                      p->read_timeout, st.hold > 0 ? " + the long poll's "
                      "hold" : "", tries, tries == 1 ? "" : "s");
      else if (t.abort == BK_API_ABORT_WRITE)
        rc = bk_error(BULKUP_ETIMEDOUT, "API %s: the request stopped "
                      "moving for the write timeout (%.3g s) (%d "
                      "attempt%s)", c->what, p->write_timeout, tries,
                      tries == 1 ? "" : "s");
      else if (t.curl == CURLE_OPERATION_TIMEDOUT)
        rc = bk_error(BULKUP_ETIMEDOUT, "API %s: %s (%d attempt%s)",
                      c->what, errbuf[0] ? errbuf
                                         : curl_easy_strerror(t.curl),
                      tries, tries == 1 ? "" : "s");
      else
        rc = bk_error(BULKUP_ECURL, "API %s: %s (%d attempt%s)", c->what,
                      errbuf[0] ? errbuf : curl_easy_strerror(t.curl),
                      tries, tries == 1 ? "" : "s");
      bk_api_log(api, BULKUP_LOG_WARN, "%s", bulkup_last_error_message());
      break;
    }
    if (t.curl == CURLE_SEND_FAIL_REWIND) {
      curl_easy_cleanup(easy);
      easy = NULL;
    }
    bk_api_log(api, BULKUP_LOG_INFO, "API %s: %s; retry %u in %.3f s",
               c->what, bulkup_error_kind_name(kind), d.retry_no, d.wait);
    if (t.curl == CURLE_OK)
      bk_api_log(api, BULKUP_LOG_DEBUG, "API %s: HTTP %d", c->what, t.status);
    bk_api_sleep(api, d.wait); /* a cancel is seen at the top of the loop */
  }
  bk_free(st.buf);
  bk_pool_give(api, easy);
  return rc;
}

/* ---- JSON --------------------------------------------------------------- */

bulkup_err bk_json_parse(const char *what, const char *body, size_t len,
                         json_object **out) {
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

json_object *bk_json_get2(json_object *obj, const char *camel,
                          const char *snake) {
  json_object *v;
  if (!json_object_is_type(obj, json_type_object))
    return NULL;
  if (camel && json_object_object_get_ex(obj, camel, &v))
    return v;
  if (snake && json_object_object_get_ex(obj, snake, &v))
    return v;
  return NULL;
}

const char *bk_json_str2(json_object *obj, const char *camel,
                         const char *snake, size_t maxlen) {
  json_object *v = bk_json_get2(obj, camel, snake);
  if (!v || !json_object_is_type(v, json_type_string))
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

static int bk_hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

bool bk_uuid_canon(const char *s, char out[37]) {
  if (!s)
    return false;
  size_t n = strlen(s);
  if (n > 9 && strncasecmp(s, "urn:uuid:", 9) == 0) {
    s += 9;
    n -= 9;
  } else if (n >= 2 && s[0] == '{' && s[n - 1] == '}') {
    s++;
    n -= 2;
  }
  char hex[32];
  size_t k = 0;
  if (n == 36) {
    for (size_t i = 0; i < 36; i++) {
      bool dash = i == 8 || i == 13 || i == 18 || i == 23;
      if (dash) {
        if (s[i] != '-')
          return false;
      } else {
        if (bk_hexval(s[i]) < 0)
          return false;
        hex[k++] = s[i];
      }
    }
  } else if (n == 32) {
    for (size_t i = 0; i < 32; i++) {
      if (bk_hexval(s[i]) < 0)
        return false;
      hex[k++] = s[i];
    }
  } else {
    return false;
  }
  static const char lower[] = "0123456789abcdef";
  size_t o = 0;
  for (size_t i = 0; i < 32; i++) {
    if (i == 8 || i == 12 || i == 16 || i == 20)
      out[o++] = '-';
    out[o++] = lower[bk_hexval(hex[i])];
  }
  out[o] = '\0';
  return true;
}

bool bk_http_url(const char *u) {
  if (!bk_url_scheme_ok(u))
    return false;
  for (const unsigned char *p = (const unsigned char *)u; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f)
      return false;
  return true;
}

/* Printable, short copy of a string for a message. */
static void bk_printable(const char *s, size_t n, char *out, size_t outsz) {
  size_t k = 0;
  for (size_t i = 0; i < n && k + 1 < outsz && k < 300; i++) {
    unsigned char ch = (unsigned char)s[i];
    out[k++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
  }
  out[k] = '\0';
}

/* ---- v2 ------------------------------------------------------------------ */

static const char *bk_v2_status_name(int s) {
  switch (s) {
  case 400: return "invalid arguments";
  case 401: return "authentication failed: the key is not registered with "
                   "Encord or the signature was refused";
  case 403: return "not authorised for this resource";
  case 404: return "resource not found";
  case 405: return "method not allowed";
  case 413: return "payload too large";
  case 429: return "rate limited";
  default: return s >= 500 ? "server error" : "unexpected status";
  }
}

bulkup_err bk_api_v2_get(bulkup_api *api, const char *target,
                         const char *what, json_object **root) {
  *root = NULL;
  bk_api_call c = {.v1 = false, .target = target, .retry = true,
                   .what = what};
  bk_api_reply r;
  bulkup_err rc = bk_api_request(api, &c, &r);
  if (rc != BULKUP_OK)
    return rc;
  if (r.status != 200 && r.status != 204) {
    /* §4: the body's "message" or "detail". */
    char why[320] = "";
    json_object *o = NULL;
    if (bk_json_parse(what, r.body, r.len, &o) == BULKUP_OK) {
      json_object *m = bk_json_get2(o, "message", NULL);
      if (!m || !json_object_is_type(m, json_type_string))
        m = bk_json_get2(o, "detail", NULL);
      if (m && json_object_is_type(m, json_type_string))
        bk_printable(json_object_get_string(m),
                     (size_t)json_object_get_string_len(m), why, sizeof why);
      else if (m)
        bk_printable(json_object_to_json_string(m),
                     strlen(json_object_to_json_string(m)), why, sizeof why);
    }
    json_object_put(o);
    rc = bk_error(BULKUP_EHTTP, "API %s: HTTP %d (%s)%s%s", what, r.status,
                  bk_v2_status_name(r.status), why[0] ? ": " : "", why);
    bk_free(r.body);
    return rc;
  }
  rc = bk_json_parse(what, r.body, r.len, root);
  bk_free(r.body);
  return rc;
}

/* ---- v1 ------------------------------------------------------------------ */

char *bk_api_v1_body(const char *query_type, const char *query_method,
                     const char *uid_json, const char *payload_json,
                     size_t *len) {
  bk_pj w;
  bk_pj_init(&w);
  bk_pj_raw(&w, "{");
  bk_pj_key(&w, true, "query_type");
  bk_pj_str(&w, query_type);
  bk_pj_key(&w, false, "query_method");
  bk_pj_str(&w, query_method);
  bk_pj_key(&w, false, "values");
  bk_pj_raw(&w, "{");
  bk_pj_key(&w, true, "uid");
  bk_pj_raw(&w, uid_json);
  bk_pj_key(&w, false, "payload");
  bk_pj_raw(&w, payload_json);
  bk_pj_raw(&w, "}}");
  char *body;
  if (bk_pj_finish(&w, &body, len) != BULKUP_OK)
    return NULL;
  return body;
}

/* The v1 error codes of http/error_utils.py, in words. */
static const char *bk_v1_code_text(const char *code) {
  static const struct {
    const char *code, *text;
  } t[] = {
      {"AUTHENTICATION_ERROR", "the key is not registered with Encord or "
                               "the signature was refused"},
      {"AUTHORISATION_ERROR", "the key's user may not use this resource"},
      {"RESOURCE_NOT_FOUND_ERROR", "no such dataset (or resource)"},
      {"SSH_KEY_NOT_FOUND_ERROR", "this public key is not registered with "
                                  "Encord"},
      {"INVALID_ARGUMENTS_ERROR", "the request's arguments were refused"},
      {"UPLOAD_OPERATION_NOT_SUPPORTED_ERROR",
       "this upload is not supported for the dataset"},
      {"RESOURCE_EXISTS_ERROR", "the resource already exists"},
      {"UNKNOWN_ERROR", "the API failed"},
      {"OPERATION_NOT_ALLOWED_ERROR", "the operation is not allowed"},
      {"ANSWER_DICTIONARY_ERROR", "the answer dictionary was refused"},
      {"CORRUPTED_LABEL_ERROR", "corrupted label"},
      {"FILE_TYPE_NOT_SUPPORTED_ERROR", "file type not supported"},
      {"FILE_SIZE_NOT_SUPPORTED_ERROR", "file size not supported"},
      {"FEATURE_DOES_NOT_EXIST", "the feature does not exist"},
      {"MODEL_WEIGHTS_INCONSISTENT_ERROR", "model weights inconsistent"},
      {"MODEL_FEATURES_INCONSISTENT_ERROR", "model features inconsistent"},
      {"DUPLICATE_SSH_KEY_ERROR", "duplicate SSH key"},
      {"REQUEST_TOO_LARGE_ERROR", "the request is too large"},
      {"UPLOAD_URL_EXPIRED", "an upload URL expired"},
  };
  for (size_t i = 0; i < BK_ARRAY_LEN(t); i++)
    if (strcmp(code, t[i].code) == 0)
      return t[i].text;
  return NULL;
}

/* An error envelope (§6) into an error. */
static bulkup_err bk_v1_error(const char *what, int http_status,
                              json_object *env) {
  json_object *st = bk_json_get2(env, "status", NULL);
  long long es = st && json_object_is_type(st, json_type_int)
                     ? (long long)json_object_get_int64(st)
                     : 0;
  json_object *resp = bk_json_get2(env, "response", NULL);
  char codes[400] = "";
  const char *text = NULL;
  if (resp && json_object_is_type(resp, json_type_array)) {
    size_t n = json_object_array_length(resp), k = 0;
    for (size_t i = 0; i < n && k + 1 < sizeof codes; i++) {
      json_object *e = json_object_array_get_idx(resp, i);
      if (!json_object_is_type(e, json_type_string))
        continue;
      const char *s = json_object_get_string(e);
      if (!text && n == 1)
        text = bk_v1_code_text(s);
      char one[200];
      bk_printable(s, strlen(s), one, sizeof one);
      k += (size_t)snprintf(codes + k, sizeof codes - k, "%s%s",
                            k ? ", " : "", one);
      if (k >= sizeof codes)
        k = sizeof codes - 1;
    }
  } else if (resp && json_object_is_type(resp, json_type_string)) {
    const char *s = json_object_get_string(resp);
    bk_printable(s, strlen(s), codes, sizeof codes);
  }
  return bk_error(BULKUP_EHTTP, "the API refused the request (%s; status "
                  "%lld, HTTP %d): %s%s%s", what, es, http_status,
                  codes[0] ? codes : "no error code",
                  text ? ": " : "", text ? text : "");
}

bulkup_err bk_api_v1(bulkup_api *api, const char *query_type,
                     const char *query_method, const char *uid_json,
                     const char *payload_json, const char *resource_id,
                     bool retry, double hold, const char *what,
                     json_object **root, json_object **response) {
  *root = NULL;
  *response = NULL;
  if (resource_id) {
    for (const unsigned char *p = (const unsigned char *)resource_id; *p;
         p++)
      if (*p < 0x20 || *p >= 0x7f)
        return bk_error(BULKUP_EINVAL, "the dataset hash must be printable "
                        "ASCII");
  }
  size_t len = 0;
  char *body = bk_api_v1_body(query_type, query_method, uid_json,
                              payload_json, &len);
  if (!body)
    return bk_error(BULKUP_ENOMEM, "out of memory building a request body");
  bk_api_call c = {.v1 = true,
                   .body = body,
                   .body_len = len,
                   .resource_id = resource_id,
                   .retry = retry,
                   .hold = hold,
                   .what = what};
  bk_api_reply r;
  bulkup_err rc = bk_api_request(api, &c, &r);
  bk_free(body);
  if (rc != BULKUP_OK)
    return rc;
  /* §6: parsed as JSON whatever the HTTP status. */
  json_object *env = NULL;
  rc = bk_json_parse(what, r.body, r.len, &env);
  if (rc != BULKUP_OK) {
    if (r.status != 200) {
      char ex[200];
      bk_printable(r.body, r.len, ex, sizeof ex);
      rc = bk_error(BULKUP_EHTTP, "API %s: HTTP %d, and the answer is not "
                    "the API's JSON%s%s", what, r.status, ex[0] ? ": " : "",
                    ex);
    }
    bk_free(r.body);
    return rc;
  }
  bk_free(r.body);
  if (!json_object_is_type(env, json_type_object)) {
    json_object_put(env);
    return bk_error(BULKUP_EPROTOCOL, "API %s: the answer is not a JSON "
                    "object", what);
  }
  json_object *st = bk_json_get2(env, "status", NULL);
  if (!st || !json_object_is_type(st, json_type_int)) {
    json_object_put(env);
    return bk_error(r.status != 200 ? BULKUP_EHTTP : BULKUP_EPROTOCOL,
                    "API %s: HTTP %d, and the answer has no \"status\"",
                    what, r.status);
  }
  if (json_object_get_int64(st) != 200) {
    rc = bk_v1_error(what, r.status, env);
    json_object_put(env);
    return rc;
  }
  json_object *resp;
  if (!json_object_object_get_ex(env, "response", &resp)) {
    json_object_put(env);
    return bk_error(BULKUP_EPROTOCOL, "API %s: the answer has no "
                    "\"response\"", what);
  }
  *root = env;
  *response = resp;
  return BULKUP_OK;
}
