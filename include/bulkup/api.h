/*
 * bulkup/api.h - the platform API client and the whole upload workflow:
 * signed upload URLs fetched while uploads run, then an image group
 * created from the uploaded objects (doc/api-protocol.md).
 *
 *   bulkup_api_options ao;
 *   bulkup_api_options_init(&ao);
 *   ao.base_url = "https://api.example.com";
 *   ao.key_id = "my-key";
 *   ao.key_file = "/home/me/.ssh/id_ed25519";
 *   bulkup_api *api;
 *   if (bulkup_api_new(&api, &ao) != BULKUP_OK) ...
 *
 *   bulkup_workflow_options wo;
 *   bulkup_workflow_options_init(&wo);
 *   wo.title = "holiday";
 *   wo.upload.workers = 16;
 *   bulkup_image_group *g;
 *   bulkup_report *rep;
 *   bulkup_err rc = bulkup_create_image_group(api, &wo, paths, n, &g, &rep);
 *   for (size_t i = 0; rc == BULKUP_OK && i < bulkup_image_group_count(g); i++)
 *     ... bulkup_image_group_data_hash(g, i), bulkup_image_group_title(g, i)
 *   bulkup_image_group_free(g);
 *   bulkup_report_free(rep);
 *   bulkup_api_free(api);
 *
 * Every API request is signed with an Ed25519 key (Content-Digest,
 * Signature-Input and Signature headers, RFC 9421 style). Storage PUTs go
 * through the upload engine (uploader.h) and are not signed: the signed
 * URL carries the server's signature.
 */
#ifndef BULKUP_API_H
#define BULKUP_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "data_type.h"
#include "report.h"
#include "settings.h"
#include "uploader.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default cap on the size of one API response body: 16 MiB. A larger
 * answer is a protocol error (BULKUP_EPROTOCOL), so that an endless
 * response cannot exhaust memory. */
#define BULKUP_DEFAULT_API_MAX_RESPONSE (16u * 1024u * 1024u)

/* Most signed URLs one presign request may ask for (the API's limit). */
#define BULKUP_API_MAX_PRESIGN 200

/*
 * Options for bulkup_api_new(). Fill with bulkup_api_options_init(), then
 * set base_url, key_id and one key source. Every string and the in-memory
 * key are copied by bulkup_api_new(); the struct may be reused or freed
 * afterwards.
 */
typedef struct bulkup_api_options {
  /* The API's base URL, http or https, without query ("https://host" or
   * "https://host/prefix"); endpoint paths ("/v2/public/...") are appended
   * to it. Required. */
  const char *base_url;
  /* The key id sent in the signature's keyid parameter: 1..256 printable
   * ASCII characters, no '"' or '\'. Required. */
  const char *key_id;
  /* The Ed25519 private key, from exactly one of:
   * - key_file: a PEM PKCS#8 file ("BEGIN PRIVATE KEY") or an unencrypted
   *   OpenSSH file ("BEGIN OPENSSH PRIVATE KEY"). A file readable or
   *   writable by group or others is refused (BULKUP_EPERM), as ssh does.
   * - key_pem / key_pem_len: the same text in memory (no permission check).
   * Encrypted keys are refused: decrypt them first (ssh-keygen -p, or
   * openssl pkey). The key is parsed once, in bulkup_api_new(); buffers
   * that held it are wiped. */
  const char *key_file;
  const char *key_pem; /* the key text (need not be NUL-terminated) */
  size_t key_pem_len;  /* its length in bytes */
  /* Timeouts, retries and backoff of API requests; seed defaults.
   * connect_timeout bounds connection establishment
   * (CURLOPT_CONNECTTIMEOUT_MS). API bodies are small, so the read and
   * write timeouts are applied together as one limit on the whole request:
   * connect_timeout + write_timeout + read_timeout (CURLOPT_TIMEOUT_MS);
   * if any of the three is 0 (no limit) the request has no total limit.
   * max_retries and connection_retries count as for uploads; the waits
   * are bulkup_retry_wait() under `backoff`. */
  bulkup_requests_settings requests;
  bulkup_backoff_settings backoff; /* waits between API retries */
  /* TLS: peer and host verification are on unless `insecure` is set (test
   * servers only). ca_file: a PEM bundle to trust instead of the
   * system's. */
  const char *ca_file;
  bool insecure; /* no TLS verification: test servers only */
  /* User-Agent header; NULL = "bulkup/VERSION". */
  const char *user_agent;
  /* Cap on one response body in bytes; 0 = BULKUP_DEFAULT_API_MAX_RESPONSE
   * (the default); at most 1 GiB. */
  size_t max_response_size;
  /* Log callback for retries and failures of API requests, optional;
   * called from any thread (the engine's workers call the API when a
   * signed URL expired), possibly concurrently. Messages never contain
   * signatures or signed URLs. */
  bulkup_log_fn log;
  bulkup_log_level log_level; /* default BULKUP_LOG_WARN */
  void *userdata;             /* passed to log */
} bulkup_api_options;

/* bulkup_api_options_init - zero the struct; seed requests settings,
 * default backoff, log level WARN. */
BULKUP_EXTERN void bulkup_api_options_init(bulkup_api_options *opt);

/* An API client: the base URL, the signing key, and a small pool of
 * libcurl handles. Opaque. */
typedef struct bulkup_api bulkup_api;

/*
 * bulkup_api_new - validate the options, load the key and create the
 * client. No network traffic.
 *
 * Returns BULKUP_OK and *out (free with bulkup_api_free); BULKUP_EINVAL
 * (bulkup_last_error_message() names the field); BULKUP_ESCHEME for a
 * base URL that is not http or https; BULKUP_ENOENT, BULKUP_EPERM
 * ("permissions 0644 for 'k' are too open"), BULKUP_EIO or BULKUP_EPARSE
 * for the key; BULKUP_ENOMEM; BULKUP_ECURL. On error *out is NULL.
 *
 * Thread-safety: the returned handle may be used by several threads at
 * once (each request takes its own libcurl handle from a locked pool).
 */
BULKUP_EXTERN bulkup_err bulkup_api_new(bulkup_api **out,
                                        const bulkup_api_options *opt);

/* bulkup_api_free - free the client and wipe its key. No request may be
 * running on it. NULL does nothing. */
BULKUP_EXTERN void bulkup_api_free(bulkup_api *api);

/*
 * bulkup_api_cancel - stop everything running on this handle as soon as
 * possible: API requests in flight are aborted and waits between retries
 * and polls end at once (those calls return BULKUP_ECANCELED); a
 * bulkup_create_image_group or bulkup_api_upload in progress cancels its
 * uploads (queued items end as cancelled) and returns BULKUP_ECANCELED with
 * its complete report, and creates no image group unless its POST was
 * already sent. The handle stays cancelled: later calls fail with
 * BULKUP_ECANCELED. Thread-safe and idempotent; returns at once; not
 * async-signal-safe (from a signal, notify a thread that calls it).
 */
BULKUP_EXTERN void bulkup_api_cancel(bulkup_api *api);

/* One signed upload URL, as the API issued it. */
typedef struct bulkup_signed_url {
  char *item_uuid;  /* the platform's id for the item */
  char *object_key; /* where the object will live ("uploads/<uuid>") */
  char *signed_url; /* where to PUT it: a credential, do not log it */
} bulkup_signed_url;

/*
 * bulkup_api_presign - ask for `count` signed upload URLs (1..200) for
 * items of type `type` (sent as upload_item_type in upper case).
 *
 * On success *out is an array of `count` entries and *n is count; free it
 * with bulkup_signed_urls_free(*out, *n). Transient failures (connection,
 * timeouts, 408/429/5xx) are retried under the requests settings.
 * Returns BULKUP_OK; BULKUP_EINVAL for a count out of range or a MISSING
 * type; BULKUP_EHTTP when the API answered another status (the status and
 * the API's "error" text are in bulkup_last_error_message());
 * BULKUP_EPROTOCOL for an answer that is not the documented JSON, holds a
 * different number of results, an entry with a missing or malformed
 * field, a signed URL whose scheme is not http or https (file://, ftp://
 * ... are refused and nothing is fetched), or a body over
 * max_response_size; BULKUP_ETIMEDOUT or BULKUP_ECURL when the request
 * could not complete after its retries; BULKUP_ENOMEM. On error *out is
 * NULL and *n is 0.
 * Thread-safe.
 */
BULKUP_EXTERN bulkup_err bulkup_api_presign(bulkup_api *api,
                                            bulkup_data_type type,
                                            size_t count,
                                            bulkup_signed_url **out,
                                            size_t *n);

/* bulkup_signed_urls_free - free an array from bulkup_api_presign (the
 * strings included). NULL does nothing. */
BULKUP_EXTERN void bulkup_signed_urls_free(bulkup_signed_url *urls, size_t n);

/* Default bound on waiting for the image group job, in seconds. */
#define BULKUP_DEFAULT_POLL_TIMEOUT 3600.0

/*
 * Options for bulkup_create_image_group() and bulkup_api_upload(). Fill
 * with bulkup_workflow_options_init(). Strings are copied where kept.
 */
typedef struct bulkup_workflow_options {
  /* The image group's title; NULL (default): the basename of the group's
   * first image. */
  const char *title;
  bool create_video;          /* default false */
  bool cluster_by_resolution; /* default false */
  /* The upload item type of bulkup_create_image_group (sent upper case as
   * upload_item_type; it also picks the Content-Type). Default IMAGE.
   * bulkup_api_upload takes its type as a parameter instead. */
  bulkup_data_type data_type;
  /* Bound on the total time spent polling the group's job, seconds; 0
   * means no bound. Default BULKUP_DEFAULT_POLL_TIMEOUT (3600). */
  double poll_timeout;
  /* Wait before the first poll and between polls: it starts at
   * poll_interval and grows 1.5-fold per poll up to poll_interval_max.
   * Defaults 0.5 s and 10 s. */
  double poll_interval;
  double poll_interval_max; /* the longest wait between polls */
  /* The upload engine's options: workers, queue_capacity, requests (for
   * the storage PUTs), cloud (max_retries/backoff_factor overrides and
   * allow_failures), backoff, TLS, callbacks. Filled with
   * bulkup_uploader_options_init(). refresh_url is ignored: the workflow
   * installs its own (a fresh URL from the API for an expired one).
   * on_complete, on_progress and log are called as documented in
   * uploader.h; a result's `index` is the item's position in `paths` and
   * its `user` is NULL. */
  bulkup_uploader_options upload;
} bulkup_workflow_options;

/* bulkup_workflow_options_init - the defaults documented above. */
BULKUP_EXTERN void
bulkup_workflow_options_init(bulkup_workflow_options *opt);

/* The image group a workflow created: its job id and, in the order the
 * images were posted (input order, failed items left out), the data hash
 * and title of each image. Opaque; immutable; readable from any thread. */
typedef struct bulkup_image_group bulkup_image_group;

/* The job id (process_hash) the API gave for the group. Never NULL. */
BULKUP_EXTERN const char *
bulkup_image_group_process_hash(const bulkup_image_group *g);
/* Number of images in the group. */
BULKUP_EXTERN size_t bulkup_image_group_count(const bulkup_image_group *g);
/* Image i's data hash / title (i < count; otherwise NULL). Owned by the
 * group. */
BULKUP_EXTERN const char *
bulkup_image_group_data_hash(const bulkup_image_group *g, size_t i);
/* Image i's title, as bulkup_image_group_data_hash. */
BULKUP_EXTERN const char *
bulkup_image_group_title(const bulkup_image_group *g, size_t i);
/* Free the group result. NULL does nothing. */
BULKUP_EXTERN void bulkup_image_group_free(bulkup_image_group *g);

/*
 * bulkup_create_image_group - the SDK's create_image_group, done properly:
 *
 * 1. every path is checked (exists, regular file, readable) before any
 *    network traffic: a missing one is BULKUP_ENOENT naming it;
 * 2. signed URLs are fetched in batches of at most 200 while the uploads
 *    run: a batch is fetched, its items are submitted (submit blocks while
 *    the engine's queue is full), then the next batch is fetched, so no
 *    URL waits long and memory stays bounded by the queue;
 * 3. an upload refused because its URL expired gets one fresh URL from the
 *    API (a new object key too, which the group then uses);
 * 4. after the uploads: if any failed and upload.cloud.allow_failures is
 *    false, no group is created (BULKUP_EUPLOAD); with allow_failures the
 *    group is made from the successes, in input order; if every item
 *    failed, BULKUP_EALLFAILED ("All image uploads failed. Image group was
 *    not created.");
 * 5. the group is posted with an Idempotency-Key (random, the same on
 *    every retry of that POST, so a retried POST creates one group), and
 *    its job is polled until DONE, ERROR or CANCELLED (three transient
 *    poll failures in a row are allowed; poll_timeout bounds the wait).
 *
 * `opt` NULL means the defaults. Titles are the paths' basenames.
 * On BULKUP_OK, *group is the result (free with bulkup_image_group_free).
 * *report (may be NULL to discard it) receives the upload report whenever
 * the uploads started, on success and on failure alike (free with
 * bulkup_report_free); otherwise it is NULL.
 *
 * Returns BULKUP_OK; BULKUP_EINVAL (no paths, bad options); BULKUP_ENOENT,
 * BULKUP_EPERM or BULKUP_EINVAL for a path that is missing, unreadable or
 * not a regular file (before any request); BULKUP_EUPLOAD,
 * BULKUP_EALLFAILED as above; an API error of bulkup_api_presign (the
 * run is then cancelled: items not yet started end as cancelled in the
 * report); BULKUP_EHTTP/BULKUP_EPROTOCOL/BULKUP_ECURL/BULKUP_ETIMEDOUT
 * from the group POST or the polls; BULKUP_EJOB when the job ended in
 * ERROR (the API's reasons are in bulkup_last_error_message());
 * BULKUP_ECANCELED when it ended CANCELLED; BULKUP_ETIMEDOUT when
 * poll_timeout passed; BULKUP_ENOMEM. On error *group is NULL.
 *
 * Blocks until done. Thread-safe with respect to other calls on the same
 * api handle.
 */
BULKUP_EXTERN bulkup_err
bulkup_create_image_group(bulkup_api *api, const bulkup_workflow_options *opt,
                          const char *const *paths, size_t npaths,
                          bulkup_image_group **group, bulkup_report **report);

/* What happened to one path of bulkup_api_upload(). */
typedef struct bulkup_uploaded {
  /* False when the run stopped (an API error) before this path was
   * submitted; status and keys are then meaningless. */
  bool submitted;
  bulkup_item_status status; /* how the path's upload ended */
  /* The object key and item uuid under which the object was stored, when
   * status is SUCCEEDED (a refreshed URL's key if the first expired);
   * NULL otherwise. Owned by the result. */
  const char *object_key;
  const char *item_uuid; /* the platform's id for the item, as above */
} bulkup_uploaded;

/* The outcome of bulkup_api_upload(), one entry per path, in input order.
 * Opaque; immutable; readable from any thread. */
typedef struct bulkup_upload_keys bulkup_upload_keys;

/* Number of entries: npaths of the call. */
BULKUP_EXTERN size_t bulkup_upload_keys_count(const bulkup_upload_keys *k);
/* Entry i into *out (i < count: BULKUP_OK; else BULKUP_EINVAL). The
 * strings stay valid until bulkup_upload_keys_free. */
BULKUP_EXTERN bulkup_err bulkup_upload_keys_get(const bulkup_upload_keys *k,
                                                size_t i,
                                                bulkup_uploaded *out);
/* Free the result. NULL does nothing. */
BULKUP_EXTERN void bulkup_upload_keys_free(bulkup_upload_keys *k);

/*
 * bulkup_api_upload - steps 1 to 3 of bulkup_create_image_group for any
 * data type, without a group: upload every path to a signed URL of type
 * `type` and say under which object key each one was stored.
 * opt->title, create_video, cluster_by_resolution, data_type and the
 * poll settings are ignored (opt NULL means the defaults).
 *
 * *keys (may be NULL) and *report (may be NULL) are set whenever the
 * uploads started, on success and failure alike, so that a caller learns
 * which objects were stored even when others failed; otherwise NULL.
 * Returns as bulkup_uploader_finish does (BULKUP_OK; BULKUP_EUPLOAD;
 * BULKUP_EALLFAILED with allow_failures), or the errors of the path
 * checks and of bulkup_api_presign as for bulkup_create_image_group. An
 * empty `paths` (npaths 0) is BULKUP_OK with an empty result.
 * Blocks until done. Thread-safe as above.
 */
BULKUP_EXTERN bulkup_err
bulkup_api_upload(bulkup_api *api, const bulkup_workflow_options *opt,
                  const char *const *paths, size_t npaths,
                  bulkup_data_type type, bulkup_upload_keys **keys,
                  bulkup_report **report);

#ifdef __cplusplus
}
#endif
#endif /* BULKUP_API_H */
