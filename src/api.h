/* api.h - the API client's internals shared by api.c and workflow.c. */
#ifndef BULKUP_API_INTERNAL_H
#define BULKUP_API_INTERNAL_H

#include "internal.h"

#include <stdatomic.h>

#include <curl/curl.h>
#include <openssl/evp.h>

/* Idle libcurl handles kept for reuse (their connections stay open). */
#define BK_API_POOL 8

/* A job poll tolerates this many transient failures in a row (the SDK's
 * rule); one more ends the wait. */
#define BK_POLL_MAX_CONSECUTIVE_FAILURES 3

struct bulkup_api {
  char *origin;      /* "https://host:port" */
  char *prefix;      /* "" or "/prefix", no trailing slash */
  char *key_id;
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

struct bulkup_image_group {
  char *process_hash;
  size_t n;
  char **data_hash;
  char **title;
};

void bk_api_log(bulkup_api *api, bulkup_log_level level, const char *fmt, ...)
    BK_PRINTF(3, 4);

/* POST /v2/public/image-groups with `body` (JSON) under a fresh random
 * Idempotency-Key, retried on transient failures with the same key.
 * *process_hash is bk_malloc'ed. */
bulkup_err bk_api_create_group(bulkup_api *api, const char *body,
                               size_t body_len, char **process_hash);

typedef struct bk_poll_opts {
  double timeout;      /* total seconds, 0 = none */
  double interval;     /* first wait */
  double interval_max; /* cap of the growing wait */
} bk_poll_opts;

/* Poll GET /v2/public/image-groups/jobs/<process_hash> until DONE (then
 * *out holds `expected` data hashes and titles), ERROR (BULKUP_EIO with
 * the reasons), CANCELLED (BULKUP_ECANCELED), or the timeout
 * (BULKUP_ETIMEDOUT). */
bulkup_err bk_api_wait_job(bulkup_api *api, const char *process_hash,
                           const bk_poll_opts *po, size_t expected,
                           bulkup_image_group **out);

/* 32 lower-hex characters from 16 random bytes (RAND_bytes) into out[33]. */
bulkup_err bk_random_hex128(char out[33]);

/* The parsers of the API's answers, apart from the requests (fuzzed by
 * tests/fuzz). A presign answer must hold exactly `count` results with
 * http(s) signed URLs; *out is freed with bulkup_signed_urls_free(count).
 * A job answer: *final tells whether the status was DONE (then *out is the
 * group), ERROR or CANCELLED (an error), or not final (PENDING). */
bulkup_err bk_api_parse_presign(const char *body, size_t len, size_t count,
                                bulkup_signed_url **out);
bulkup_err bk_api_parse_job(const char *body, size_t len,
                            const char *process_hash, size_t expected,
                            bool *final, bulkup_image_group **out);

#endif
