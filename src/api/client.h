/* client.h - the Encord API client's core (internal): the handle, one
 * signed request (v1 or v2) with the requests settings' timeouts and
 * retries, the API's error envelopes turned into messages, and the JSON
 * readers shared by presign.c and jobs.c.
 *
 * Layers, calls one way: workflow.c -> jobs.c / presign.c -> client.c ->
 * sign.c / keys.c (pyjson.c writes the v1 bodies). */
#ifndef BULKUP_API_CLIENT_H
#define BULKUP_API_CLIENT_H

#include "internal.h"

#include <json-c/json.h>
#include <stdatomic.h>

#include <curl/curl.h>
#include <openssl/evp.h>

/* Idle libcurl handles kept for reuse (their connections stay open). */
#define BK_API_POOL 8

struct bulkup_api {
  char *origin;  /* "https://host:port" */
  char *prefix;  /* "" or "/prefix", no trailing slash */
  char key_id[65]; /* the public key, lower-case hex (§2) */
  EVP_PKEY *key;
  bulkup_upload_policy policy; /* requests settings + backoff */
  char *ca_file;
  bool insecure;
  char *user_agent;
  size_t max_response;
  bulkup_log_fn log;
  bulkup_log_level log_level;
  void *userdata;

  /* `pool_lock` guards the idle handles. A request takes one (or makes a
   * new one) and gives it back when done, so any number of threads may
   * run requests at once without sharing a handle. */
  pthread_mutex_t pool_lock;
  CURL *idle[BK_API_POOL];
  size_t nidle;

  /* bulkup_api_cancel: the flag, a condition variable (on cancel_lock)
   * that ends waits between retries and polls at once, and the uploaders
   * of the workflows running on this handle, cancelled with it. */
  atomic_bool cancelled;
  pthread_mutex_t cancel_lock;
  pthread_cond_t cancel_cond;
  struct bk_api_uploader *uploaders;
};

/* A workflow's uploader, registered while it runs (a node on the
 * workflow's stack). */
typedef struct bk_api_uploader {
  bulkup_uploader *u;
  struct bk_api_uploader *next;
} bk_api_uploader;

/* Register / unregister a running uploader; registering on a cancelled
 * handle cancels the uploader at once. */
void bk_api_register_uploader(bulkup_api *api, bk_api_uploader *node,
                              bulkup_uploader *u);
void bk_api_unregister_uploader(bulkup_api *api, bk_api_uploader *node);
bool bk_api_is_cancelled(bulkup_api *api);
/* Sleep, waking at once on bulkup_api_cancel. False if cancelled. */
bool bk_api_sleep(bulkup_api *api, double seconds);

void bk_api_log(bulkup_api *api, bulkup_log_level level, const char *fmt, ...)
    BK_PRINTF(3, 4);

/* ---- one request ----------------------------------------------------- */

typedef struct bk_api_call {
  bool v1;             /* v1: POST {base}/public, Authorization; else v2 GET */
  const char *target;  /* v2: path and query after the base ("/v2/...") */
  const char *body;    /* v1: the json.dumps body */
  size_t body_len;
  const char *resource_id; /* v1: ResourceID (the dataset hash) */
  /* The request's retries of §10: true (presign, dataset GET, polls):
   * timeouts and 413/429/500/502/503 are retried up to max_retries;
   * false (the job POST): never. Connection failures are retried up to
   * connection_retries either way (nothing was sent). */
  bool retry;
  /* Seconds the server may hold the request (a long poll): added to the
   * read timeout. */
  double hold;
  /* For messages: "presigned-urls", "dataset", "job POST", "job poll". */
  const char *what;
} bk_api_call;

typedef struct bk_api_reply {
  int status;     /* HTTP status of the last answer */
  char *body;     /* bk_malloc'ed, NUL-terminated */
  size_t len;
  /* On a transport failure (no answer): the detail is set and this says
   * whether the failure was a connection/timeout kind (the poll's outer
   * loop rides those out). */
  bool transport;
} bk_api_reply;

/*
 * bk_api_request - send one request with its retries. BULKUP_OK when an
 * answer was received (whatever its status: r->status, r->body; free the
 * body with bk_free); otherwise the transport failure after the retries
 * (BULKUP_ETIMEDOUT, BULKUP_ECURL, with r->transport set),
 * BULKUP_ECANCELED, BULKUP_EPROTOCOL (an answer over the size cap),
 * BULKUP_ENOMEM, BULKUP_ECRYPTO.
 */
bulkup_err bk_api_request(bulkup_api *api, const bk_api_call *c,
                          bk_api_reply *r);

/*
 * bk_api_v1 - a v1 query: build the body {"query_type": qt,
 * "query_method": qm, "values": {"uid": <uid_json>, "payload":
 * <payload_json>}} (uid_json and payload_json are JSON text from pyjson,
 * e.g. "\"<hash>\"" or "null"), send it with ResourceID `resource_id`,
 * and read the envelope (§6): on BULKUP_OK *response is the envelope's
 * "response" (owned by *root: json_object_put(*root) when done). An
 * envelope status other than 200 is BULKUP_EHTTP with the API's error
 * codes in words; a body that is not JSON is BULKUP_EPROTOCOL (or
 * BULKUP_EHTTP naming the HTTP status when that was not 200).
 */
bulkup_err bk_api_v1(bulkup_api *api, const char *query_type,
                     const char *query_method, const char *uid_json,
                     const char *payload_json, const char *resource_id,
                     bool retry, double hold, const char *what,
                     json_object **root, json_object **response);

/* The v1 body bytes bk_api_v1 sends (for the tests: json.dumps exactly).
 * bk_malloc'ed; NULL on allocation failure. */
char *bk_api_v1_body(const char *query_type, const char *query_method,
                     const char *uid_json, const char *payload_json,
                     size_t *len);

/* A v2 GET: send it and check the status (200 or 204, else BULKUP_EHTTP
 * with the status and the body's message/detail); on BULKUP_OK *root is
 * the parsed body. */
bulkup_err bk_api_v2_get(bulkup_api *api, const char *target,
                         const char *what, json_object **root);

/* ---- JSON readers ------------------------------------------------------ */

/* Parse a whole body as one JSON value (trailing whitespace allowed). */
bulkup_err bk_json_parse(const char *what, const char *body, size_t len,
                         json_object **out);
/* Member `camel` or `snake` (either casing, §3), NULL if neither. */
json_object *bk_json_get2(json_object *obj, const char *camel,
                          const char *snake);
/* A member string of 1..maxlen bytes, no NUL or control characters;
 * NULL otherwise. Either casing as bk_json_get2. */
const char *bk_json_str2(json_object *obj, const char *camel,
                         const char *snake, size_t maxlen);
/* Whether `s` parses as a UUID as pydantic reads one (32 hex digits, with
 * or without the four hyphens of the canonical form, optionally in
 * braces or after "urn:uuid:"); writes the canonical lower-case form
 * into out[37]. */
bool bk_uuid_canon(const char *s, char out[37]);
/* Whether `u` is an http or https URL of visible ASCII. */
bool bk_http_url(const char *u);

#endif
