/*
 * bulkup/api.h - the Encord API client and the SDK's four upload calls,
 * on the wire exactly as Encord's Python SDK v0.1.190 speaks them
 * (../shared/spec/ENCORD_WIRE.md; doc/api-protocol.md).
 *
 * One library call per SDK call:
 *
 *   SDK (encord)                               bulkup
 *   EncordUserClient.create_with_ssh_private_key  bulkup_api_new
 *   user_client.get_dataset(hash)              bulkup_api_get_dataset
 *   dataset.create_image_group(paths, ...)     bulkup_create_image_group
 *   dataset.create_dicom_series(paths, ...)    bulkup_create_dicom_series
 *   dataset.upload_video(path, ...)            bulkup_upload_video
 *   dataset.upload_image(path, ...)            bulkup_upload_image
 *   (many videos / images at once)             bulkup_upload_videos,
 *                                              bulkup_upload_images
 *
 *   bulkup_api_options ao;
 *   bulkup_api_options_init(&ao);          // https://api.encord.com
 *   ao.key_file = "/home/me/.ssh/encord";  // or ENCORD_SSH_KEY_FILE ...
 *   bulkup_api *api;
 *   if (bulkup_api_new(&api, &ao) != BULKUP_OK) ...
 *
 *   bulkup_workflow_options wo;
 *   bulkup_workflow_options_init(&wo);
 *   wo.dataset_hash = "6a8f3c2e-1d4b-4e59-9a7c-0b1e2f3a4d5c";
 *   wo.title = "holiday";
 *   wo.upload.workers = 16;
 *   bulkup_data_units *units;
 *   bulkup_report *rep;
 *   bulkup_err rc = bulkup_create_image_group(api, &wo, paths, n, &units,
 *                                             &rep);
 *   for (size_t i = 0; rc == BULKUP_OK && i < bulkup_image_group_count(units);
 *        i++)
 *     ... bulkup_image_group_data_hash(units, i),
 *         bulkup_image_group_title(units, i)
 *   bulkup_image_group_free(units);
 *   bulkup_report_free(rep);
 *   bulkup_api_free(api);
 *
 * Requests (ENCORD_WIRE.md §2-§8):
 * - v2, the signed upload URLs: GET {base}/v2/public/presigned-urls?count=N
 *   &uploadItemType=image|video|dicomFile, signed RFC 9421 style
 *   (Content-Digest of the empty body, Signature-Input with created =
 *   now - 30, keyid = the public key in hex, alg "ed25519", Signature).
 * - v1, everything else: POST {base}/public with a json.dumps body
 *   {"query_type", "query_method", "values": {"uid", "payload"}},
 *   ResourceType: dataset, ResourceID: the dataset hash, and
 *   Authorization: PUBHEX:hex(Ed25519(SHA-256(body))).
 * - Storage PUTs go through the upload engine (uploader.h), unsigned (the
 *   signed URL carries the server's signature), with the SDK's
 *   Content-Type (image: by extension, none when unknown; video
 *   application/octet-stream; DICOM application/dicom) and
 *   Cache-Control: max-age=86400; success is exactly 200; never a
 *   resumable session.
 *
 * Retries (§10), all under bulkup_api_options.requests and .backoff:
 * presign, dataset GET and job polls are retried on connection failures
 * (connection_retries) and on timeouts, 413/429/500/502/503 (max_retries),
 * waits bulkup_retry_wait() (Retry-After honoured for 413/429/503); the
 * job POST is never retried (the API is not known to de-duplicate it), so
 * a lost answer to it is an error, never a second job. A poll also rides
 * out three failed requests in a row (10 s apart), as the SDK's loop does.
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

/* The API's default base URL (the SDK's default domain). */
#define BULKUP_ENCORD_API_URL "https://api.encord.com"

/* Default cap on the size of one API response body: 16 MiB. A larger
 * answer is a protocol error (BULKUP_EPROTOCOL), so that an endless
 * response cannot exhaust memory. */
#define BULKUP_DEFAULT_API_MAX_RESPONSE (16u * 1024u * 1024u)

/* Most signed URLs one presign request asks for (the SDK's batch). */
#define BULKUP_API_MAX_PRESIGN 200

/* The environment variable naming the key file when the options name no
 * key (the SDK's). */
#define BULKUP_ENV_KEY_FILE "ENCORD_SSH_KEY_FILE"
/* The environment variable holding the key text itself, read when
 * BULKUP_ENV_KEY_FILE is not set (the SDK's). */
#define BULKUP_ENV_KEY "ENCORD_SSH_KEY"

/*
 * Options for bulkup_api_new(). Fill with bulkup_api_options_init(). Every
 * string and the in-memory key are copied by bulkup_api_new(); the struct
 * may be reused or freed afterwards.
 */
typedef struct bulkup_api_options {
  /* The API's base URL, http or https, without query ("https://host" or
   * "https://host/prefix"); the v2 paths ("/v2/public/...") and the v1
   * endpoint "/public" are appended to it. NULL (the default):
   * BULKUP_ENCORD_API_URL. */
  const char *base_url;
  /* Optional check: the key id is always derived from the key (the raw
   * 32-byte Ed25519 public key in 64 lower-case hex digits, §2). If
   * key_id is set and differs (case-insensitively), bulkup_api_new
   * refuses (BULKUP_EINVAL, naming both). NULL (default): no check. */
  const char *key_id;
  /* The Ed25519 private key, from the first of:
   * - key_file: a PEM PKCS#8 file ("BEGIN PRIVATE KEY") or an unencrypted
   *   OpenSSH file ("BEGIN OPENSSH PRIVATE KEY"). A file readable or
   *   writable by group or others is refused (BULKUP_EPERM), as ssh does.
   * - key_pem / key_pem_len: the same text in memory (no permission check).
   * - neither set: the file named by $ENCORD_SSH_KEY_FILE, else the text
   *   of $ENCORD_SSH_KEY (the SDK's variables); neither set: BULKUP_EINVAL.
   * Setting both key_file and key_pem is BULKUP_EINVAL. Encrypted keys are
   * refused: decrypt them first (ssh-keygen -p, or openssl pkey). The key
   * is parsed once, in bulkup_api_new(); buffers that held it are wiped. */
  const char *key_file;
  const char *key_pem; /* the key text (need not be NUL-terminated) */
  size_t key_pem_len;  /* its length in bytes */
  /* The seed's RequestsSettings for every API request, exactly as for
   * uploads: connect_timeout bounds connection establishment; read_timeout
   * bounds a wait for response bytes and write_timeout a wait to send
   * request bytes (each: no progress for that long ends the attempt as a
   * timeout; 0 = no limit); max_retries counts retries of a request after
   * a timeout or a 413/429/500/502/503 answer, connection_retries after a
   * failed connection; the waits are bulkup_retry_wait() under `backoff`
   * (its backoff_factor: 0 s before the first retry, factor * 2^(n-1)
   * after, capped). A job poll asks the server to hold it up to 10 s: its
   * read limit is read_timeout plus those seconds. */
  bulkup_requests_settings requests;
  bulkup_backoff_settings backoff; /* waits between API retries */
  /* TLS: peer and host verification are on unless `insecure` is set (test
   * servers only). ca_file: a PEM bundle to trust instead of the
   * system's. */
  const char *ca_file;
  bool insecure; /* no TLS verification: test servers only */
  /* User-Agent header of API requests; NULL = "bulkup/VERSION". */
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
 * default backoff, log level WARN, base_url NULL (= the Encord API). */
BULKUP_EXTERN void bulkup_api_options_init(bulkup_api_options *opt);

/* An API client: the base URL, the signing key, and a small pool of
 * libcurl handles. Opaque. */
typedef struct bulkup_api bulkup_api;

/*
 * bulkup_api_new - validate the options, load the key and create the
 * client. No network traffic.
 *
 * Returns BULKUP_OK and *out (free with bulkup_api_free); BULKUP_EINVAL
 * (bulkup_last_error_message() names the field; also a key_id that is
 * not the key's); BULKUP_ESCHEME for a base URL that is not http or
 * https; BULKUP_ENOENT, BULKUP_EPERM ("permissions 0644 for 'k' are too
 * open"), BULKUP_EIO or BULKUP_EPARSE for the key; BULKUP_ENOMEM;
 * BULKUP_ECURL. On error *out is NULL.
 *
 * Thread-safety: the returned handle may be used by several threads at
 * once (each request takes its own libcurl handle from a locked pool).
 */
BULKUP_EXTERN bulkup_err bulkup_api_new(bulkup_api **out,
                                        const bulkup_api_options *opt);

/* bulkup_api_key_id - the key id this client signs with: the public key
 * in 64 lower-case hex digits (the v2 keyid and the first half of the v1
 * Authorization). Owned by the handle. "" for NULL. */
BULKUP_EXTERN const char *bulkup_api_key_id(const bulkup_api *api);

/* bulkup_api_free - free the client and wipe its key. No request may be
 * running on it. NULL does nothing. */
BULKUP_EXTERN void bulkup_api_free(bulkup_api *api);

/*
 * bulkup_api_cancel - stop everything running on this handle as soon as
 * possible: API requests in flight are aborted and waits between retries
 * and polls end at once (those calls return BULKUP_ECANCELED); an upload
 * call in progress cancels its uploads (queued items end as cancelled)
 * and returns BULKUP_ECANCELED with its complete report, and creates no
 * job unless its POST was already sent. The handle stays cancelled: later
 * calls fail with BULKUP_ECANCELED. Thread-safe and idempotent; returns
 * at once; not async-signal-safe (from a signal, notify a thread that
 * calls it).
 */
BULKUP_EXTERN void bulkup_api_cancel(bulkup_api *api);

/* ---- errors the API reports -------------------------------------------
 * A refused request is BULKUP_EHTTP and bulkup_last_error_message() says
 * what the API said, in words: v1 answers {"status": N, "response":
 * ["AUTHENTICATION_ERROR"]} ("the API refused the request:
 * AUTHENTICATION_ERROR: the key is not registered with Encord or the
 * signature was refused"), AUTHORISATION_ERROR, RESOURCE_NOT_FOUND_ERROR,
 * SSH_KEY_NOT_FOUND_ERROR, INVALID_ARGUMENTS_ERROR,
 * UPLOAD_OPERATION_NOT_SUPPORTED_ERROR and others by name; v2 answers
 * (status other than 200/204) by status and their "message" or "detail".
 * An answer that is not the documented JSON is BULKUP_EPROTOCOL. */

/* ---- v2: signed upload URLs ---------------------------------------------- */

/* One signed upload URL, as the API issued it. */
typedef struct bulkup_signed_url {
  char *item_uuid;  /* itemUuid, canonical lower-case UUID (the SDK's
                       data_hash of the upload) */
  char *object_key; /* objectKey: what the job's "url"/"objectUrl" names */
  char *signed_url; /* where to PUT it: a credential, do not log it */
} bulkup_signed_url;

/*
 * bulkup_api_presign - ask for `count` signed upload URLs (1..200) for
 * items of type `type`: BULKUP_DATA_TYPE_IMAGE and IMG_GROUP are sent as
 * uploadItemType=image, VIDEO as video, DICOM as dicomFile (the SDK's
 * three); other types are BULKUP_EINVAL.
 *
 * On success *out is an array of `count` entries and *n is count; free it
 * with bulkup_signed_urls_free(*out, *n). The answer's keys are read in
 * camelCase or snake_case (itemUuid/item_uuid, objectKey/object_key,
 * signedUrl/signed_url), unknown keys ignored. Retried as the header
 * comment says. Returns BULKUP_OK; BULKUP_EINVAL; BULKUP_EHTTP (the API's
 * status and message/detail in bulkup_last_error_message());
 * BULKUP_EPROTOCOL for an answer that is not the documented JSON, holds a
 * different number of results, an entry with a missing or malformed
 * field (itemUuid must be a UUID), a signed URL whose scheme is not http
 * or https (file://, ftp:// ... are refused and nothing is fetched), or a
 * body over max_response_size; BULKUP_ETIMEDOUT or BULKUP_ECURL when the
 * request could not complete after its retries; BULKUP_ENOMEM. On error
 * *out is NULL and *n is 0. Thread-safe.
 */
BULKUP_EXTERN bulkup_err bulkup_api_presign(bulkup_api *api,
                                            bulkup_data_type type,
                                            size_t count,
                                            bulkup_signed_url **out,
                                            size_t *n);

/* bulkup_signed_urls_free - free an array from bulkup_api_presign (the
 * strings included). NULL does nothing. */
BULKUP_EXTERN void bulkup_signed_urls_free(bulkup_signed_url *urls, size_t n);

/* ---- v1: the dataset --------------------------------------------------- */

/* A dataset as the API describes it (the v1 `dataset` GET). Opaque;
 * immutable; readable from any thread. */
typedef struct bulkup_dataset bulkup_dataset;

/*
 * bulkup_api_get_dataset - the SDK's get_dataset(hash): one v1 request
 * (query_type "dataset", query_method "GET", uid null, payload
 * {"dataset_access_settings": {"fetch_client_metadata": false}}, with
 * ResourceID: dataset_hash), retried as a GET. It proves the key may use
 * the dataset before anything is uploaded. On BULKUP_OK *out is the
 * dataset (free with bulkup_dataset_free); on error NULL (BULKUP_EINVAL
 * for an empty hash or one that cannot be a header value; the API's
 * errors as above).
 */
BULKUP_EXTERN bulkup_err bulkup_api_get_dataset(bulkup_api *api,
                                                const char *dataset_hash,
                                                bulkup_dataset **out);
/* Its dataset_hash (never NULL; "" for NULL). */
BULKUP_EXTERN const char *bulkup_dataset_hash(const bulkup_dataset *d);
/* Its title (never NULL). */
BULKUP_EXTERN const char *bulkup_dataset_title(const bulkup_dataset *d);
/* Its description (never NULL; may be ""). */
BULKUP_EXTERN const char *bulkup_dataset_description(const bulkup_dataset *d);
/* Its dataset_type as text (a string answer as is, a number in decimal). */
BULKUP_EXTERN const char *bulkup_dataset_type(const bulkup_dataset *d);
/* Its backing_folder_uuid, NULL when the answer has none. */
BULKUP_EXTERN const char *
bulkup_dataset_backing_folder(const bulkup_dataset *d);
/* Free it. NULL does nothing. */
BULKUP_EXTERN void bulkup_dataset_free(bulkup_dataset *d);

/* ---- the upload calls ---------------------------------------------------- */

/* Default bound on waiting for a job: 7 days, as the SDK. */
#define BULKUP_DEFAULT_POLL_TIMEOUT (7.0 * 24 * 3600)

/*
 * Options of the upload calls. Fill with bulkup_workflow_options_init().
 * Strings are copied where kept.
 */
typedef struct bulkup_workflow_options {
  /* The dataset the data units go to (values.uid and ResourceID of the
   * job requests). Required by the job-creating calls. */
  const char *dataset_hash;
  /* The storage folder of the new items (payload folderUuid), a UUID;
   * NULL (default): none sent (mirror datasets need none; others may). */
  const char *folder_uuid;
  /* The data unit's title. Image group / DICOM series: NULL (default)
   * sends none, the server names it. Video / image: NULL means the file's
   * basename (the SDK's `title or basename`); with several paths it must
   * be NULL (each file is titled by its basename). */
  const char *title;
  /* Image groups only: createVideo, and clusterByResolution with it (the
   * SDK ties them). Default true, as the SDK. */
  bool create_video;
  /* bulkup_upload_videos / bulkup_upload_images: how many files go in one
   * job. 1 (the default) is the SDK's way: one job, one data unit per
   * file. N > 1 lists up to N files in one job's "videos" / "images" (the
   * payload's types are lists, §7); each still makes its own data unit.
   * The jobs are posted once the uploads ended, then awaited in order. */
  size_t files_per_job;
  /* Bound on the total time spent waiting for a job, seconds; 0 means no
   * bound. Default BULKUP_DEFAULT_POLL_TIMEOUT (7 days, the SDK's). Each
   * poll asks the server to hold it min(remaining, 10) s. */
  double poll_timeout;
  /* The upload engine's options: workers, queue_capacity, requests (for
   * the storage PUTs), cloud (max_retries/backoff_factor overrides and
   * allow_failures), backoff, TLS, callbacks. Filled with
   * bulkup_uploader_options_init(). refresh_url is ignored (the workflow
   * installs its own: a fresh URL from the API for an expired one) and so
   * is resumable_threshold (the signed URLs are for PUT: never a
   * resumable session). on_complete, on_progress and log are called as
   * documented in uploader.h; a result's `index` is the item's position
   * in `paths` and its `user` is NULL. */
  bulkup_uploader_options upload;
} bulkup_workflow_options;

/* bulkup_workflow_options_init - the defaults documented above. */
BULKUP_EXTERN void
bulkup_workflow_options_init(bulkup_workflow_options *opt);

/* What a job created: one entry per data unit the API reports in
 * data_hashes_with_titles (§9) - an image group (possibly several when
 * clusterByResolution split it), a DICOM series, a video or an image -
 * in the API's order (calls that post several jobs: the jobs' order).
 * The type's name is historical: every upload call returns one. Opaque;
 * immutable; readable from any thread. */
typedef struct bulkup_image_group bulkup_image_group;
/* The same type under the name the four upload calls use. */
typedef struct bulkup_image_group bulkup_data_units;

/* The job id (process_hash) of the (first) job. Never NULL. */
BULKUP_EXTERN const char *
bulkup_image_group_process_hash(const bulkup_image_group *g);
/* Number of data units. */
BULKUP_EXTERN size_t bulkup_image_group_count(const bulkup_image_group *g);
/* Data unit i's data_hash (i < count; otherwise NULL). Owned by the
 * result. */
BULKUP_EXTERN const char *
bulkup_image_group_data_hash(const bulkup_image_group *g, size_t i);
/* Data unit i's title, as bulkup_image_group_data_hash. */
BULKUP_EXTERN const char *
bulkup_image_group_title(const bulkup_image_group *g, size_t i);
/* Data unit i's backing_item_uuid (canonical lower-case), as above. */
BULKUP_EXTERN const char *
bulkup_image_group_backing_item_uuid(const bulkup_image_group *g, size_t i);
/* Video and image units: the objectKey their file was stored under (the
 * SDK's file_link); NULL for image groups and DICOM series. With several
 * files in one job (files_per_job > 1) a unit is matched to its file by
 * title, else by position. */
BULKUP_EXTERN const char *
bulkup_image_group_file_link(const bulkup_image_group *g, size_t i);
/* Free the result. NULL does nothing. */
BULKUP_EXTERN void bulkup_image_group_free(bulkup_image_group *g);

/*
 * bulkup_create_image_group - the SDK's create_image_group(paths, title,
 * create_video, folder), done better:
 *
 * 1. every path is checked (exists, regular file, readable) before any
 *    network traffic: a missing one is BULKUP_ENOENT naming it;
 * 2. signed URLs (uploadItemType=image) are fetched in batches of at most
 *    200 while the uploads run (the SDK fetches all of them first): a
 *    batch is fetched, its items are submitted (submit blocks while the
 *    engine's queue is full), then the next batch is fetched;
 * 3. an upload refused because its URL expired gets one fresh URL from the
 *    API (a new object key too, which the job then names);
 * 4. after the uploads: if any failed and upload.cloud.allow_failures is
 *    false, no job is created (BULKUP_EUPLOAD); with allow_failures the
 *    group is made from the successes, in input order; if every item
 *    failed, BULKUP_EALLFAILED ("All image uploads failed. Image group was
 *    not created.");
 * 5. one datasetdatalongpolling POST: dataItems.imageGroups = [{"images":
 *    [{"url": objectKey, "title": basename}, ...], ["title",]
 *    "clientMetadata": {}, "createVideo", "externalFileType":
 *    "IMG_GROUP", "clusterByResolution"}], ignoreErrors false,
 *    [folderUuid]; not retried; then long polls until DONE, ERROR or
 *    CANCELLED.
 *
 * `opt` NULL is BULKUP_EINVAL (the dataset hash is required). On
 * BULKUP_OK, *group holds the data units created (one or more). *report
 * (may be NULL to discard it) receives the upload report whenever the
 * uploads started, on success and on failure alike (free with
 * bulkup_report_free); otherwise it is NULL.
 *
 * Returns BULKUP_OK; BULKUP_EINVAL (no paths, no dataset hash, a
 * folder_uuid that is not a UUID, bad options); BULKUP_ENOENT,
 * BULKUP_EPERM or BULKUP_EINVAL for a path that is missing, unreadable or
 * not a regular file (before any request); BULKUP_EUPLOAD,
 * BULKUP_EALLFAILED as above; an API error of the presign (the run is
 * then cancelled: items not yet started end as cancelled in the report);
 * BULKUP_EHTTP/BULKUP_EPROTOCOL/BULKUP_ECURL/BULKUP_ETIMEDOUT from the
 * job POST or the polls; BULKUP_EJOB when the job ended in ERROR (the
 * API's errors in bulkup_last_error_message()), or DONE with no data
 * unit; BULKUP_ECANCELED when it ended CANCELLED or the handle was
 * cancelled; BULKUP_ETIMEDOUT when poll_timeout passed; BULKUP_ENOMEM.
 * On error *group is NULL.
 *
 * Blocks until done. Thread-safe with respect to other calls on the same
 * api handle.
 */
BULKUP_EXTERN bulkup_err
bulkup_create_image_group(bulkup_api *api, const bulkup_workflow_options *opt,
                          const char *const *paths, size_t npaths,
                          bulkup_image_group **group, bulkup_report **report);

/*
 * bulkup_create_dicom_series - the SDK's create_dicom_series(paths,
 * title, folder): as bulkup_create_image_group with
 * uploadItemType=dicomFile, Content-Type application/dicom, and
 * dataItems.dicomSeries = [{"dicomFiles": [{"url", "title"}, ...],
 * ["title",] "clientMetadata": {}, "externalFileType": "DICOM"}].
 * create_video is ignored. Exactly one data unit is expected (the SDK's
 * check): another count is BULKUP_EPROTOCOL.
 */
BULKUP_EXTERN bulkup_err
bulkup_create_dicom_series(bulkup_api *api,
                           const bulkup_workflow_options *opt,
                           const char *const *paths, size_t npaths,
                           bulkup_data_units **units, bulkup_report **report);

/*
 * bulkup_upload_video - the SDK's upload_video(path, title, folder): one
 * presign (uploadItemType=video), the PUT (application/octet-stream),
 * one job with dataItems.videos = [{"objectUrl": objectKey, "title":
 * title or basename, "clientMetadata": {}, "externalFileType": "VIDEO"}],
 * exactly one data unit expected. Otherwise as bulkup_create_image_group.
 */
BULKUP_EXTERN bulkup_err bulkup_upload_video(bulkup_api *api,
                                             const bulkup_workflow_options *opt,
                                             const char *path,
                                             bulkup_data_units **units,
                                             bulkup_report **report);

/* bulkup_upload_image - the SDK's upload_image(path, title, folder): as
 * bulkup_upload_video with uploadItemType=image, the image Content-Type
 * (by extension; none when unknown) and dataItems.images, externalFileType
 * "IMAGE". */
BULKUP_EXTERN bulkup_err bulkup_upload_image(bulkup_api *api,
                                             const bulkup_workflow_options *opt,
                                             const char *path,
                                             bulkup_data_units **units,
                                             bulkup_report **report);

/*
 * bulkup_upload_videos / bulkup_upload_images - many files in one call:
 * every upload runs at once in the engine (URLs fetched 200 at a time
 * while they run), then the jobs (opt->files_per_job files each, default
 * 1 = one job per file, the SDK's way) are posted and awaited. One data
 * unit per file is expected; the result lists every job's units in input
 * order. opt->title must be NULL. Failures as bulkup_create_image_group:
 * with a failed upload no job is created unless allow_failures (then the
 * successes only). A failed or refused job ends the call with its error
 * (the units of the jobs already done are lost to the caller but stay in
 * the dataset; the log names each job that completed).
 */
BULKUP_EXTERN bulkup_err
bulkup_upload_videos(bulkup_api *api, const bulkup_workflow_options *opt,
                     const char *const *paths, size_t npaths,
                     bulkup_data_units **units, bulkup_report **report);
/* bulkup_upload_images - as bulkup_upload_videos, with image URLs and
 * Content-Types and dataItems.images (the SDK's upload_image, per file). */
BULKUP_EXTERN bulkup_err
bulkup_upload_images(bulkup_api *api, const bulkup_workflow_options *opt,
                     const char *const *paths, size_t npaths,
                     bulkup_data_units **units, bulkup_report **report);

/* ---- uploads without a job ---------------------------------------------- */

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
 * bulkup_api_upload - steps 1 to 4 of bulkup_create_image_group for
 * IMAGE, IMG_GROUP, VIDEO or DICOM, without a job: upload every path to a
 * signed URL of type `type` and say under which object key each one was
 * stored (for a caller that posts its own job). opt->dataset_hash and the
 * job options are ignored (opt NULL means the defaults).
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
