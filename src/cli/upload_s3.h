/*
 * upload_s3.h - `bulkup upload` to S3-compatible storage and to GCS
 * through its XML API (upload_s3.c): s3://BUCKET/PREFIX for --to and
 * s3://BUCKET/KEY (or gs://) in manifests, mapped to https (or the
 * endpoint's http) URLs; the credentials chain; the SigV4 signer installed
 * as the uploader's sign_request; the S3 headers of the options.
 *
 * upload.c calls this file, never the other way.
 */
#ifndef BULKUP_CLI_UPLOAD_S3_H
#define BULKUP_CLI_UPLOAD_S3_H

#include <bulkup.h>

#include <stdbool.h>

/* The options, as given (NULL: not given). */
typedef struct upload_s3_opts {
  const char *endpoint_url;
  const char *region;
  const char *profile;
  const char *addressing;   /* path|virtual|auto */
  const char *checksum;     /* md5|crc32c|none */
  const char *storage_class;
  const char *sse;          /* aws:kms|AES256 */
  const char *sse_kms_key_id;
} upload_s3_opts;

/* The run's S3 state. Zero it, then upload_s3_setup. */
typedef struct upload_s3 {
  upload_s3_opts o;
  bool manifest;            /* items come from a manifest (lazy keys) */
  bulkup_s3_addressing addressing;
  int checksum;             /* 0 crc32c (default), 1 md5, 2 none */
  bool https;               /* the endpoint's scheme */
  bulkup_s3_credentials *cred[2]; /* by provider, loaded when first needed */
  bulkup_s3_signer *signer[2];
  bool failed[2];           /* loading failed once: said, not again */
  char *headers[2][8];      /* each provider's item headers, NULL-ended */
  char mark[2];             /* item.user of a signed item: &mark[provider] */
} upload_s3;

/* Whether the URL is s3:// or gs://. */
bool upload_s3_is_dest(const char *url);

/* Check the options' values; without an s3:// or gs:// destination
 * (`have_dest` false, and not a manifest), none may be given. Returns -1
 * when fine, else the exit status (a usage error was printed). */
int upload_s3_check(const upload_s3_opts *o, bool have_dest, bool manifest);

/* Set up the run (before bulkup_uploader_new): for --to (dest non-NULL)
 * load the credentials now, for a manifest when its first s3:// or gs://
 * item comes. Sets opt's sign_request, sign_userdata, sign_payload,
 * sign_crc32c, content_md5 and turns GCS-style resumable uploads off.
 * `unknown`: a manifest read as it goes, which may hold no s3:// URL at
 * all: the CRC-32C (an extra pass over every file, http items included)
 * is then computed only when an S3 option was given.
 * Returns -1 when fine, else an exit status (the error was printed). */
int upload_s3_setup(upload_s3 *st, const upload_s3_opts *o,
                    bulkup_uploader_options *opt, const char *dest,
                    bool manifest, bool unknown);

/* Point the item at its object: `dest` s3://BUCKET/KEY-or-PREFIX, plus
 * `rel` (a path under the prefix; NULL for a manifest's whole key). Sets
 * item->url (*url_out, free() it), item->headers and item->user. Returns
 * NULL when fine, else a message (static storage or buf). */
const char *upload_s3_item(upload_s3 *st, const char *dest, const char *rel,
                           bulkup_item *item, char **url_out, char *buf,
                           size_t n);

void upload_s3_free(upload_s3 *st);

#endif
