/* cloud/s3url.c - an object's URL from a bucket and a key: the
 * provider's host or a custom endpoint, path-style or virtual-hosted. */
#include "cloud/cloud.h"
#include "util/str.h"

#include <ctype.h>
#include <stdio.h>
#include <strings.h>

void bulkup_s3_url_options_init(bulkup_s3_url_options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->provider = BULKUP_S3_AWS;
  opt->addressing = BULKUP_S3_ADDRESSING_AUTO;
}

bool bulkup_s3_bucket_dns_ok(const char *b) {
  size_t n = b ? strlen(b) : 0;
  if (n < 3 || n > 63 || b[0] == '-' || b[n - 1] == '-')
    return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)b[i];
    if (!(islower(c) || isdigit(c) || c == '-'))
      return false;
  }
  return true;
}

bulkup_err bulkup_s3_object_url(char **out, const char *bucket,
                                const char *key,
                                const bulkup_s3_url_options *opt) {
  if (!out)
    return bk_error(BULKUP_EINVAL, "s3 URL: no output");
  *out = NULL;
  bulkup_s3_url_options def;
  if (!opt) {
    bulkup_s3_url_options_init(&def);
    opt = &def;
  }
  if (!bucket || !*bucket || strchr(bucket, '/') ||
      strpbrk(bucket, "?#@:% \t\r\n"))
    return bk_error(BULKUP_EINVAL, "s3 URL: bad bucket name");
  bool gcs = opt->provider == BULKUP_S3_GCS;
  const char *scheme = "https";
  char host[512];
  const char *base = ""; /* an endpoint's path prefix, without the last / */
  size_t base_len = 0;
  bool custom = opt->endpoint_url && *opt->endpoint_url;
  if (custom) {
    const char *e = opt->endpoint_url;
    if (strncasecmp(e, "https://", 8) == 0) {
      e += 8;
    } else if (strncasecmp(e, "http://", 7) == 0) {
      scheme = "http";
      e += 7;
    } else {
      return bk_error(BULKUP_EINVAL, "--endpoint-url: not http(s)://HOST: "
                      "%s", opt->endpoint_url);
    }
    size_t hl = strcspn(e, "/?#");
    if (hl == 0 || hl >= sizeof host || strchr(e + hl, '?') ||
        strchr(e + hl, '#') || memchr(e, '@', hl))
      return bk_error(BULKUP_EINVAL, "--endpoint-url: not http(s)://HOST"
                      "[:PORT][/PATH]: %s", opt->endpoint_url);
    memcpy(host, e, hl);
    host[hl] = '\0';
    base = e + hl;
    base_len = strlen(base);
    while (base_len && base[base_len - 1] == '/')
      base_len--;
  } else if (gcs) {
    snprintf(host, sizeof host, "storage.googleapis.com");
  } else {
    if (!opt->region || !*opt->region || strpbrk(opt->region, "/:@ "))
      return bk_error(BULKUP_EINVAL, "s3 URL: no region (--region, "
                      "AWS_REGION, or region in the profile)");
    if (strcmp(opt->region, "us-east-1") == 0)
      snprintf(host, sizeof host, "s3.amazonaws.com");
    else
      snprintf(host, sizeof host, "s3.%s.amazonaws.com", opt->region);
  }
  bool dns = bulkup_s3_bucket_dns_ok(bucket);
  bool is_virtual;
  switch (opt->addressing) {
  case BULKUP_S3_ADDRESSING_PATH:
    is_virtual = false;
    break;
  case BULKUP_S3_ADDRESSING_VIRTUAL:
    if (!dns)
      return bk_error(BULKUP_EINVAL, "--addressing virtual: bucket \"%s\" "
                      "is not a DNS name (lower-case letters, digits, '-', "
                      "3 to 63)", bucket);
    is_virtual = true;
    break;
  default:
    is_virtual = !custom && dns;
    break;
  }
  const char *k = key ? key : "";
  size_t kl = strlen(k);
  char *ek = bk_malloc(3 * kl + 1);
  char *eb = bk_malloc(3 * strlen(bucket) + 1);
  if (!ek || !eb) {
    bk_free(ek);
    bk_free(eb);
    return bk_error(BULKUP_ENOMEM, "s3 URL: out of memory");
  }
  bk_pct_encode(k, kl, ek, BK_PCT_PATH);
  bk_pct_encode(bucket, strlen(bucket), eb, BK_PCT_UNRESERVED);
  size_t n = strlen(scheme) + strlen(host) + base_len + strlen(eb) +
             strlen(ek) + 16;
  char *u = malloc(n);
  if (u) {
    if (is_virtual)
      snprintf(u, n, "%s://%s.%s%.*s/%s", scheme, eb, host, (int)base_len,
               base, ek);
    else
      snprintf(u, n, "%s://%s%.*s/%s/%s", scheme, host, (int)base_len, base,
               eb, ek);
  }
  bk_free(ek);
  bk_free(eb);
  if (!u)
    return bk_error(BULKUP_ENOMEM, "s3 URL: out of memory");
  *out = u;
  return BULKUP_OK;
}
