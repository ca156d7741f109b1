/*
 * bulkup/s3.h - S3-compatible storage (AWS S3, MinIO, R2, Wasabi, and
 * Google Cloud Storage through its XML API): AWS Signature Version 4,
 * the credentials chain of the AWS tools, and the signer the upload
 * engine calls before each request (bulkup_uploader_options.sign_request).
 *
 *   bulkup_s3_credentials *cred;
 *   bulkup_s3_credentials_options co;
 *   bulkup_s3_credentials_options_init(&co);
 *   if (bulkup_s3_credentials_load(&cred, &co) != BULKUP_OK)
 *     ... bulkup_last_error_message() says what was looked for
 *   bulkup_s3_signer_options so;
 *   bulkup_s3_signer_options_init(&so);
 *   so.region = "us-east-1";
 *   bulkup_s3_signer *sg;
 *   bulkup_s3_signer_new(&sg, cred, &so);
 *   opt.sign_request = bulkup_s3_sign_request; opt.sign_userdata = sg;
 *   opt.sign_payload = bulkup_s3_signer_wants_payload_hash(sg);
 *   ... run the uploader, then bulkup_s3_signer_free(sg) and
 *   bulkup_s3_credentials_free(cred).
 *
 * Secrets are never part of a message: errors name files, profiles and
 * variables, never a key.
 */
#ifndef BULKUP_S3_H
#define BULKUP_S3_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"
#include "uploader.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- SigV4, one request ------------------------------------------------ */

/* The payload hash S3 accepts for a body not covered by the signature. */
#define BULKUP_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

/* A request to sign. Nothing is copied or kept. */
typedef struct bulkup_sigv4_input {
  const char *method;        /* "PUT", "GET", ... */
  const char *path;          /* the path as sent, percent-encoded; NULL or
                                "" means "/" */
  const char *query;         /* the query as sent, without '?'; NULL or ""
                                for none */
  const char *const *headers; /* "Name: value" (or "Name:value") lines,
                                NULL-ended, all signed; must include Host
                                and X-Amz-Date. Several lines of one name
                                are joined with ',' in their order */
  const char *payload_hash;  /* lower-case hex SHA-256 of the body, or
                                BULKUP_SIGV4_UNSIGNED_PAYLOAD; NULL means
                                the hash of an empty body */
  const char *amz_date;      /* "YYYYMMDDTHHMMSSZ", as in X-Amz-Date */
  const char *region;        /* "us-east-1"; GCS: "auto" */
  const char *service;       /* "s3" */
  const char *access_key_id;     /* the key id (AKIA...) */
  const char *secret_access_key; /* the secret: never logged */
  /* false (S3): the path is signed as it is sent: no dot segments
   * removed, no '/' collapsed, an escape "%XX" kept as it is (never
   * encoded twice), other bytes outside the unreserved set and '/'
   * escaped. true (every other AWS service): dot segments and repeated
   * '/' are removed and the path is escaped once more, '%' included. */
  bool normalize_path;
} bulkup_sigv4_input;

/* The signature and the steps leading to it (for a signer's log or a
 * test). Strings are allocated; free them with bulkup_sigv4_output_free. */
typedef struct bulkup_sigv4_output {
  char *canonical_request; /* the canonical request, as signed */
  char *string_to_sign;    /* the string to sign */
  char *signed_headers;    /* "host;x-amz-date" */
  char *authorization;     /* the Authorization header's value */
  char signature[65];      /* lower-case hex */
} bulkup_sigv4_output;

/*
 * bulkup_sigv4_sign - compute the canonical request, the string to sign,
 * the signing key (HMAC-SHA256 chain over date, region, service,
 * "aws4_request") and the Authorization value
 * "AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
 * SignedHeaders=..., Signature=...". *out is zeroed first.
 * Returns BULKUP_OK; BULKUP_EINVAL (a field missing or malformed: a
 * header line without a colon, a date not of 16 characters);
 * BULKUP_ENOMEM. Thread-safe.
 */
BULKUP_EXTERN bulkup_err bulkup_sigv4_sign(bulkup_sigv4_output *out,
                                           const bulkup_sigv4_input *in);

/* bulkup_sigv4_output_free - free the strings (and zero *out). NULL does
 * nothing. */
BULKUP_EXTERN void bulkup_sigv4_output_free(bulkup_sigv4_output *out);

/* ---- credentials ---------------------------------------------------------- */

/* Whose keys to look for. */
typedef enum bulkup_s3_provider {
  BULKUP_S3_AWS = 0, /* AWS and S3-compatible services */
  BULKUP_S3_GCS = 1  /* Google Cloud Storage HMAC keys */
} bulkup_s3_provider;

/* Options for bulkup_s3_credentials_load; fill with _init. */
typedef struct bulkup_s3_credentials_options {
  bulkup_s3_provider provider; /* default BULKUP_S3_AWS */
  /* The profile to read from the shared files; NULL: AWS_PROFILE, else
   * "default". A profile given here (or in AWS_PROFILE) skips the
   * environment's keys, as the AWS CLI's --profile does. */
  const char *profile;
} bulkup_s3_credentials_options;

/* bulkup_s3_credentials_options_init - the defaults: the environment,
 * then the shared files, the default profile. */
BULKUP_EXTERN void
bulkup_s3_credentials_options_init(bulkup_s3_credentials_options *opt);

/* Credentials found. The strings are owned by the struct. */
typedef struct bulkup_s3_credentials {
  char *access_key_id;     /* the key id */
  char *secret_access_key; /* the secret: wiped when freed */
  char *session_token; /* NULL when none */
  char *region;        /* AWS_REGION, AWS_DEFAULT_REGION or the
                          profile's region in the config file; NULL when
                          none */
  char *source;        /* where the keys came from, for messages: "the
                          environment (AWS_ACCESS_KEY_ID)", "FILE, profile
                          NAME"; never a secret */
} bulkup_s3_credentials;

/*
 * bulkup_s3_credentials_load - find credentials the way the AWS tools do:
 *  1. unless a profile was chosen (opt.profile or AWS_PROFILE): the
 *     environment, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (with
 *     AWS_SESSION_TOKEN if set); for GCS, GOOG_ACCESS_KEY_ID and
 *     GOOG_SECRET_ACCESS_KEY;
 *  2. the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else
 *     ~/.aws/credentials), section [PROFILE]: aws_access_key_id,
 *     aws_secret_access_key, aws_session_token;
 *  3. the config file (AWS_CONFIG_FILE, else ~/.aws/config), section
 *     [profile PROFILE] ([default] for the default profile): the same
 *     keys.
 * The region: AWS_REGION, else AWS_DEFAULT_REGION, else the config
 * file's profile "region" (GCS: none; its region is "auto").
 * Returns BULKUP_OK and *out (free with bulkup_s3_credentials_free);
 * BULKUP_EINVAL when none were found or a file is malformed, with
 * bulkup_last_error_message() naming every variable and file looked at;
 * BULKUP_ENOMEM.
 */
BULKUP_EXTERN bulkup_err
bulkup_s3_credentials_load(bulkup_s3_credentials **out,
                           const bulkup_s3_credentials_options *opt);

/* bulkup_s3_credentials_free - NULL does nothing. The secrets are wiped
 * before the memory is freed. */
BULKUP_EXTERN void bulkup_s3_credentials_free(bulkup_s3_credentials *c);

/* ---- the upload engine's signer ----------------------------------------- */

/* How a request's body is covered by its signature. */
typedef enum bulkup_s3_payload {
  /* UNSIGNED-PAYLOAD over https (TLS protects the body in transit, and
   * Content-MD5 or x-amz-checksum-* lets the server check it), the
   * SHA-256 of the body over http (S3 requires it there). The default:
   * bench/RESULTS.md ("S3: payload signing") has the cost of hashing. */
  BULKUP_S3_PAYLOAD_AUTO = 0,
  BULKUP_S3_PAYLOAD_SIGNED = 1,  /* always the SHA-256 of the body */
  BULKUP_S3_PAYLOAD_UNSIGNED = 2 /* always UNSIGNED-PAYLOAD */
} bulkup_s3_payload;

/* Options for bulkup_s3_signer_new; fill with _init. Strings are
 * copied. */
typedef struct bulkup_s3_signer_options {
  const char *region;  /* required: "us-east-1"; GCS "auto" */
  const char *service; /* default "s3" */
  bulkup_s3_payload payload; /* default BULKUP_S3_PAYLOAD_AUTO */
  /* Whether a request goes over https, for PAYLOAD_AUTO: true (the
   * default) gives UNSIGNED-PAYLOAD. Set it to false for http
   * endpoints. */
  bool https;
  /* Send the body's CRC-32C (bulkup_request.payload_crc32c; set
   * bulkup_uploader_options.sign_crc32c) as x-amz-checksum-crc32c, or for
   * BULKUP_S3_GCS as "x-goog-hash: crc32c=...", signed with the rest, on
   * the requests whose bulkup_request.kind is BULKUP_REQUEST_PUT or
   * BULKUP_REQUEST_MULTIPART_PART (each part its own). For AWS,
   * BULKUP_REQUEST_MULTIPART_CREATE gets "x-amz-checksum-algorithm:
   * CRC32C", as S3 requires before it takes a part's checksum; seeing
   * that header on the create, the engine lists every part's CRC-32C
   * (<ChecksumCRC32C>) in the CompleteMultipartUpload XML. GCS's create
   * and Complete carry no checksum (its XML API checks each part's
   * x-goog-hash, and its Complete takes part numbers and ETags only).
   * The Complete and the abort carry no checksum header. Default
   * false. */
  bool crc32c;
  bulkup_s3_provider provider; /* for the checksum header; default AWS */
} bulkup_s3_signer_options;

/* bulkup_s3_signer_options_init - the defaults documented above. */
BULKUP_EXTERN void
bulkup_s3_signer_options_init(bulkup_s3_signer_options *opt);

/* A signer: credentials and the signing settings. Opaque; thread-safe
 * (the signing key of the day, derived once a day, is kept under a lock),
 * so bulkup_s3_sign_request may run on several threads at once. */
typedef struct bulkup_s3_signer bulkup_s3_signer;

/*
 * bulkup_s3_signer_new - copy the credentials and options into a signer.
 * Returns BULKUP_OK; BULKUP_EINVAL (no region, no keys); BULKUP_ENOMEM.
 */
BULKUP_EXTERN bulkup_err bulkup_s3_signer_new(bulkup_s3_signer **out,
                                              const bulkup_s3_credentials *c,
                                              const bulkup_s3_signer_options *opt);

/* bulkup_s3_signer_free - NULL does nothing; secrets are wiped. */
BULKUP_EXTERN void bulkup_s3_signer_free(bulkup_s3_signer *s);

/* Whether the signer needs the bodies' SHA-256 (set
 * bulkup_uploader_options.sign_payload to this). */
BULKUP_EXTERN bool
bulkup_s3_signer_wants_payload_hash(const bulkup_s3_signer *s);

/* Whether the signer sends a CRC-32C (set
 * bulkup_uploader_options.sign_crc32c to this). */
BULKUP_EXTERN bool bulkup_s3_signer_wants_crc32c(const bulkup_s3_signer *s);

/*
 * bulkup_s3_sign_request - a bulkup_sign_request_fn: `sign_userdata` is
 * a bulkup_s3_signer. Signs the request with SigV4 at the current time:
 * adds X-Amz-Date, X-Amz-Content-SHA256, X-Amz-Security-Token (with a
 * session token), the CRC-32C header (with options.crc32c and a
 * payload_crc32c) and Authorization. Signed: host and every header of the
 * request but User-Agent, Expect and the "Name:" lines that remove a
 * header. Thread-safe.
 */
BULKUP_EXTERN bulkup_err bulkup_s3_sign_request(void *sign_userdata,
                                                bulkup_request *req);

/* ---- addressing ------------------------------------------------------------ */

/* How a bucket is named in a URL. */
typedef enum bulkup_s3_addressing {
  /* virtual-hosted for AWS endpoints (and storage.googleapis.com) when
   * the bucket name is DNS-compatible (lower-case letters, digits, '-',
   * 3 to 63 characters, no '.'), else path-style; path-style for every
   * custom endpoint */
  BULKUP_S3_ADDRESSING_AUTO = 0,
  BULKUP_S3_ADDRESSING_PATH = 1,   /* https://HOST/BUCKET/KEY */
  BULKUP_S3_ADDRESSING_VIRTUAL = 2 /* https://BUCKET.HOST/KEY */
} bulkup_s3_addressing;

/* Options for bulkup_s3_object_url; fill with _init. */
typedef struct bulkup_s3_url_options {
  bulkup_s3_provider provider; /* AWS: s3.REGION.amazonaws.com; GCS:
                                  storage.googleapis.com */
  const char *region;          /* AWS without endpoint: required */
  const char *endpoint_url;    /* "http://127.0.0.1:9000" or
                                  "https://host[:port][/base]"; NULL: the
                                  provider's */
  bulkup_s3_addressing addressing; /* default AUTO */
} bulkup_s3_url_options;

/* bulkup_s3_url_options_init - the defaults documented above. */
BULKUP_EXTERN void bulkup_s3_url_options_init(bulkup_s3_url_options *opt);

/*
 * bulkup_s3_object_url - the https (or the endpoint's http) URL of an
 * object: `bucket` and `key` (raw bytes; the key is percent-encoded, '/'
 * kept). *out is allocated (free()). Returns BULKUP_OK; BULKUP_EINVAL (no
 * bucket, a bucket with '/', virtual addressing with a bucket that is not
 * DNS-compatible, an endpoint that is not http(s)://host, no region);
 * BULKUP_ENOMEM.
 */
BULKUP_EXTERN bulkup_err bulkup_s3_object_url(char **out, const char *bucket,
                                              const char *key,
                                              const bulkup_s3_url_options *opt);

/* bulkup_s3_bucket_dns_ok - a bucket name usable as a host name label
 * (see BULKUP_S3_ADDRESSING_AUTO). */
BULKUP_EXTERN bool bulkup_s3_bucket_dns_ok(const char *bucket);

#ifdef __cplusplus
}
#endif
#endif /* BULKUP_S3_H */
