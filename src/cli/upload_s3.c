/* upload_s3.c - `bulkup upload` to s3:// and gs:// (upload_s3.h).
 *
 * The library does the work (bulkup/s3.h): this file chooses the
 * credentials, region and addressing from the options, builds each item's
 * URL and headers, and installs the signer. A run may mix providers in a
 * manifest; each has its credentials and signer, made when its first item
 * comes, on the main thread, before that item is submitted (so a worker
 * reading the signer sees it complete: the queue's lock orders them). */
#include "upload_s3.h"

#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { P_AWS = 0, P_GCS = 1 };

bool upload_s3_is_dest(const char *url) {
  return url && (strncmp(url, "s3://", 5) == 0 || strncmp(url, "gs://", 5) == 0);
}

int upload_s3_check(const upload_s3_opts *o, bool have_dest, bool manifest) {
  const char *given = o->endpoint_url     ? "--endpoint-url"
                      : o->region         ? "--region"
                      : o->profile        ? "--profile"
                      : o->addressing     ? "--addressing"
                      : o->checksum       ? "--checksum"
                      : o->storage_class  ? "--storage-class"
                      : o->sse            ? "--sse"
                      : o->sse_kms_key_id ? "--sse-kms-key-id"
                                          : NULL;
  if (given && !have_dest && !manifest)
    return cli_usage_error("upload", "%s is for s3:// and gs:// destinations "
                           "(--to s3://BUCKET/PREFIX, or a manifest)", given);
  if (o->addressing && strcmp(o->addressing, "path") != 0 &&
      strcmp(o->addressing, "virtual") != 0 &&
      strcmp(o->addressing, "auto") != 0)
    return cli_usage_error("upload", "--addressing: '%s' is not path, "
                           "virtual or auto", o->addressing);
  if (o->checksum && strcmp(o->checksum, "md5") != 0 &&
      strcmp(o->checksum, "crc32c") != 0 && strcmp(o->checksum, "none") != 0)
    return cli_usage_error("upload", "--checksum: '%s' is not md5, crc32c "
                           "or none", o->checksum);
  if (o->sse && strcmp(o->sse, "aws:kms") != 0 && strcmp(o->sse, "AES256") != 0)
    return cli_usage_error("upload", "--sse: '%s' is not aws:kms or AES256",
                           o->sse);
  if (o->sse_kms_key_id && (!o->sse || strcmp(o->sse, "aws:kms") != 0))
    return cli_usage_error("upload", "--sse-kms-key-id needs --sse aws:kms");
  const char *vals[] = {o->storage_class, o->sse_kms_key_id, o->region,
                        o->profile, o->endpoint_url};
  const char *names[] = {"--storage-class", "--sse-kms-key-id", "--region",
                         "--profile", "--endpoint-url"};
  for (size_t i = 0; i < sizeof vals / sizeof *vals; i++)
    if (vals[i] && (!*vals[i] || strpbrk(vals[i], "\r\n")))
      return cli_usage_error("upload", "%s: empty or not one line",
                             names[i]);
  if (o->endpoint_url && strncasecmp(o->endpoint_url, "http://", 7) != 0 &&
      strncasecmp(o->endpoint_url, "https://", 8) != 0)
    return cli_usage_error("upload", "--endpoint-url: '%s' is not an http:// "
                           "or https:// URL", o->endpoint_url);
  return -1;
}

static bulkup_err sign_cb(void *ud, bulkup_request *req) {
  upload_s3 *st = ud;
  for (int p = 0; p < 2; p++)
    if (req->item->user == &st->mark[p])
      return bulkup_s3_sign_request(st->signer[p], req);
  return BULKUP_OK; /* not an s3:// or gs:// item */
}

static int provider_of(const char *url) {
  return strncmp(url, "gs://", 5) == 0 ? P_GCS : P_AWS;
}

/* The header lines of a provider's items. */
static bool build_headers(upload_s3 *st, int p) {
  const upload_s3_opts *o = &st->o;
  char line[1024];
  int k = 0;
  const char *pre = p == P_GCS ? "x-goog-" : "x-amz-";
  if (o->storage_class) {
    snprintf(line, sizeof line, "%sstorage-class: %s", pre, o->storage_class);
    if (!(st->headers[p][k++] = strdup(line)))
      return false;
  }
  if (o->sse) {
    snprintf(line, sizeof line, "x-amz-server-side-encryption: %s", o->sse);
    if (!(st->headers[p][k++] = strdup(line)))
      return false;
  }
  if (o->sse_kms_key_id) {
    snprintf(line, sizeof line,
             "x-amz-server-side-encryption-aws-kms-key-id: %s",
             o->sse_kms_key_id);
    if (!(st->headers[p][k++] = strdup(line)))
      return false;
  }
  st->headers[p][k] = NULL;
  return true;
}

/* Credentials and the signer of provider p, made once. */
static bool load_provider(upload_s3 *st, int p) {
  if (st->signer[p])
    return true;
  if (st->failed[p])
    return false;
  st->failed[p] = true;
  bulkup_s3_credentials_options co;
  bulkup_s3_credentials_options_init(&co);
  co.provider = p == P_GCS ? BULKUP_S3_GCS : BULKUP_S3_AWS;
  co.profile = st->o.profile;
  if (bulkup_s3_credentials_load(&st->cred[p], &co) != BULKUP_OK) {
    cli_error("%s", bulkup_last_error_message());
    return false;
  }
  bulkup_s3_signer_options so;
  bulkup_s3_signer_options_init(&so);
  so.provider = co.provider;
  so.https = st->https;
  so.crc32c = st->checksum == 0;
  so.region = p == P_GCS ? "auto"
              : st->o.region ? st->o.region
              : st->cred[p]->region ? st->cred[p]->region
              : st->o.endpoint_url ? "us-east-1"
                                   : NULL;
  if (!so.region) {
    cli_error("s3://: no region: give --region, set AWS_REGION, or put "
              "region in the profile of the config file");
    return false;
  }
  if (bulkup_s3_signer_new(&st->signer[p], st->cred[p], &so) != BULKUP_OK) {
    cli_error("%s", bulkup_last_error_message());
    return false;
  }
  if (!build_headers(st, p)) {
    cli_error("out of memory");
    return false;
  }
  st->failed[p] = false;
  return true;
}

int upload_s3_setup(upload_s3 *st, const upload_s3_opts *o,
                    bulkup_uploader_options *opt, const char *dest,
                    bool manifest, bool unknown) {
  st->o = *o;
  st->manifest = manifest;
  st->addressing = !o->addressing || strcmp(o->addressing, "auto") == 0
                       ? BULKUP_S3_ADDRESSING_AUTO
                   : strcmp(o->addressing, "path") == 0
                       ? BULKUP_S3_ADDRESSING_PATH
                       : BULKUP_S3_ADDRESSING_VIRTUAL;
  st->checksum = !o->checksum || strcmp(o->checksum, "crc32c") == 0 ? 0
                 : strcmp(o->checksum, "md5") == 0                   ? 1
                                                                     : 2;
  st->https = !o->endpoint_url || strncasecmp(o->endpoint_url, "https://", 8) == 0;
  opt->sign_request = sign_cb;
  opt->sign_userdata = st;
  /* Over http S3 requires the body's SHA-256; over https the signature
   * leaves the body out (UNSIGNED-PAYLOAD) and the checksum covers it. */
  opt->sign_payload = !st->https;
  bool any = o->endpoint_url || o->region || o->profile || o->addressing ||
             o->checksum || o->storage_class || o->sse || o->sse_kms_key_id;
  opt->sign_crc32c = st->checksum == 0 && (!unknown || any);
  if (st->checksum == 1)
    opt->content_md5 = true;
  if (dest) {
    /* S3 has no GCS-style resumable sessions. */
    opt->resumable_threshold = BULKUP_RESUMABLE_NEVER;
    if (!load_provider(st, provider_of(dest)))
      return CLI_EXIT_USAGE;
  }
  return -1;
}

const char *upload_s3_item(upload_s3 *st, const char *dest, const char *rel,
                           bulkup_item *item, char **url_out, char *buf,
                           size_t n) {
  *url_out = NULL;
  int p = provider_of(dest);
  if (!load_provider(st, p))
    return "no credentials (see above)";
  const char *b = dest + 5;
  size_t bl = strcspn(b, "/");
  if (bl == 0 || bl >= 256) {
    snprintf(buf, n, "'%.*s': no bucket (s3://BUCKET/KEY)", 300, dest);
    return buf;
  }
  char bucket[256];
  memcpy(bucket, b, bl);
  bucket[bl] = '\0';
  const char *prefix = b[bl] == '/' ? b + bl + 1 : "";
  char *key;
  if (rel) {
    size_t pl = strlen(prefix);
    bool slash = pl && prefix[pl - 1] != '/';
    key = malloc(pl + strlen(rel) + 2);
    if (key)
      sprintf(key, "%s%s%s", prefix, slash ? "/" : "", rel);
  } else {
    key = strdup(prefix);
  }
  if (!key)
    return "out of memory";
  if (!*key) {
    free(key);
    snprintf(buf, n, "'%.*s': no object key", 300, dest);
    return buf;
  }
  bulkup_s3_url_options uo;
  bulkup_s3_url_options_init(&uo);
  uo.provider = p == P_GCS ? BULKUP_S3_GCS : BULKUP_S3_AWS;
  uo.endpoint_url = st->o.endpoint_url;
  uo.addressing = st->addressing;
  uo.region = p == P_GCS ? "auto"
              : st->o.region ? st->o.region
              : st->cred[p]->region ? st->cred[p]->region
                                    : "us-east-1";
  char *url = NULL;
  bulkup_err rc = bulkup_s3_object_url(&url, bucket, key, &uo);
  free(key);
  if (rc != BULKUP_OK) {
    snprintf(buf, n, "%s", bulkup_last_error_message());
    return buf;
  }
  *url_out = url;
  item->url = url;
  item->headers = (const char *const *)st->headers[p];
  item->user = &st->mark[p];
  return NULL;
}

void upload_s3_free(upload_s3 *st) {
  for (int p = 0; p < 2; p++) {
    bulkup_s3_signer_free(st->signer[p]);
    bulkup_s3_credentials_free(st->cred[p]);
    for (int k = 0; k < 8 && st->headers[p][k]; k++)
      free(st->headers[p][k]);
    st->signer[p] = NULL;
    st->cred[p] = NULL;
  }
}
