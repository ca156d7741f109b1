/* jobs.h - the v1 queries of the upload path (internal): the dataset GET
 * (ENCORD_WIRE.md §11), the job POST with its payload (§7) and the long
 * poll (§8), and the data units a job created (§9). */
#ifndef BULKUP_API_JOBS_H
#define BULKUP_API_JOBS_H

#include "internal.h"

#include <json-c/json.h>

struct bulkup_image_group {
  char *process_hash;
  size_t n, cap;
  char **data_hash;
  char **title;
  char **backing; /* backing_item_uuid, canonical */
  char **file_link; /* video/image units: the file's objectKey; else NULL */
};

/* The four payload kinds of §7. */
typedef enum bk_job_kind {
  BK_JOB_IMAGE_GROUP,
  BK_JOB_DICOM_SERIES,
  BK_JOB_VIDEOS,
  BK_JOB_IMAGES
} bk_job_kind;

/* One uploaded file as a job names it: the presign's objectKey and the
 * file's title. */
typedef struct bk_job_file {
  const char *url;
  const char *title;
} bk_job_file;

/*
 * bk_job_payload - the DatasetDataLongPollingParams payload of §7 as
 * json.dumps writes it: {"dataItems": {eleven keys}, "ignoreErrors":
 * false[, "folderUuid": folder]}. IMAGE_GROUP and DICOM_SERIES make one
 * entry of all `n` files (title omitted when NULL; create_video gives
 * createVideo and clusterByResolution); VIDEOS and IMAGES make one entry
 * per file (each file's own title). bk_malloc'ed text in *out.
 */
bulkup_err bk_job_payload(bk_job_kind kind, const bk_job_file *files,
                          size_t n, const char *title, bool create_video,
                          const char *folder_uuid, char **out, size_t *len);

/* The job POST (never retried, §10): *process_hash (bk_malloc'ed) from
 * {"process_hash": ...}. */
bulkup_err bk_job_post(bulkup_api *api, const char *dataset_hash,
                       const char *payload, char **process_hash);

/*
 * bk_job_wait - long-poll the job until DONE (then *out holds its data
 * units), ERROR (BULKUP_EJOB with the API's errors), CANCELLED
 * (BULKUP_ECANCELED), or `timeout` seconds (0: no bound) passed
 * (BULKUP_ETIMEDOUT). Each poll asks for timeout_seconds = min(remaining,
 * 10) (an int, rounded up); three failed requests in a row (transport
 * failures, after their own retries) are ridden out, 10 s apart.
 */
bulkup_err bk_job_wait(bulkup_api *api, const char *dataset_hash,
                       const char *process_hash, double timeout,
                       bulkup_image_group **out);

/* Read one poll answer's "response" (a DatasetDataLongPolling, either
 * casing, every field required). *final tells whether the status was
 * DONE (then *out holds the units), ERROR or CANCELLED (an error). The
 * fuzzing entry point (parse_job below wraps it). */
bulkup_err bk_job_read_status(json_object *resp, const char *process_hash,
                              bool *final, bulkup_image_group **out);
bulkup_err bk_api_parse_job(const char *body, size_t len,
                            const char *process_hash, bool *final,
                            bulkup_image_group **out);

/* Give each unit of g the objectKey of its file (video / image jobs): by
 * title among the job's files (the first not taken), else by position. */
bulkup_err bk_units_link(bulkup_image_group *g, const bk_job_file *files,
                         size_t n);
/* Append b's units to a (b is left as it was). */
bulkup_err bk_units_append(bulkup_image_group *a, const bulkup_image_group *b);
/* An empty result named after `process_hash`. */
bulkup_image_group *bk_units_new(const char *process_hash);

#endif
