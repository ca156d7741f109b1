/* Redaction of credentials in URLs: signed URLs are bearer credentials, so
 * nothing bulkup reports, logs or returns may carry one verbatim. */
#include "bulkup.h"
#include "util/alloc.h"
#include "util/base.h"
#include "util/error.h"

#include <string.h>

#include <ctype.h>
#include <strings.h>

static const char *const bk_secret_params[] = {
    "x-goog-signature",     "x-goog-credential", "x-amz-signature",
    "x-amz-credential",     "x-amz-security-token", "sig",
    "signature",            "token",             "access_token",
    "x-goog-security-token", "awsaccesskeyid",   "googleaccessid",
    "key",                  "api_key",           "apikey",
    "password",             "client_secret",     "upload_id",
};

static bool bk_is_secret_name(const char *name, size_t len) {
  for (size_t i = 0; i < BK_ARRAY_LEN(bk_secret_params); i++) {
    const char *p = bk_secret_params[i];
    if (strlen(p) == len && strncasecmp(p, name, len) == 0)
      return true;
  }
  return false;
}

char *bulkup_redact_url(const char *url) {
  if (!url)
    return NULL;
  static const char red[] = "REDACTED";
  size_t n = strlen(url);
  /* Worst case every byte becomes a parameter value replaced by REDACTED:
   * bounded by n * sizeof red. Allocate generously once. */
  char *out = bk_malloc(n * (sizeof red) + 1);
  if (!out)
    return NULL;
  size_t o = 0;
  const char *p = url;

  /* userinfo: scheme://user:password@host -> scheme://user:REDACTED@host */
  const char *auth = strstr(url, "://");
  /* A scheme ends at the first "://" only if nothing before it is a
   * path, query or fragment character ("a?b://c@d" has no userinfo). */
  if (auth && strcspn(url, "/?#") < (size_t)(auth - url))
    auth = NULL;
  const char *query = strchr(url, '?');
  const char *frag = strchr(url, '#');
  if (frag && query && frag < query)
    query = NULL;
  if (auth) {
    const char *host = auth + 3;
    size_t hl = strcspn(host, "/?#");
    const char *at = memchr(host, '@', hl);
    if (at) {
      const char *colon = memchr(host, ':', (size_t)(at - host));
      if (colon) {
        size_t keep = (size_t)(colon + 1 - url);
        memcpy(out + o, url, keep);
        o += keep;
        memcpy(out + o, red, sizeof red - 1);
        o += sizeof red - 1;
        p = at;
      }
    }
  }
  if (!query) {
    size_t rest = strlen(p);
    memcpy(out + o, p, rest);
    o += rest;
    out[o] = '\0';
    return out;
  }
  size_t head = (size_t)(query + 1 - p);
  memcpy(out + o, p, head);
  o += head;
  p = query + 1;
  /* Walk name[=value] pairs separated by & (or ;), up to a fragment. */
  while (*p && *p != '#') {
    size_t plen = strcspn(p, "&;#");
    const char *eq = memchr(p, '=', plen);
    size_t nlen = eq ? (size_t)(eq - p) : plen;
    if (eq && bk_is_secret_name(p, nlen)) {
      memcpy(out + o, p, nlen + 1);
      o += nlen + 1;
      memcpy(out + o, red, sizeof red - 1);
      o += sizeof red - 1;
    } else {
      memcpy(out + o, p, plen);
      o += plen;
    }
    p += plen;
    if (*p == '&' || *p == ';')
      out[o++] = *p++;
  }
  size_t rest = strlen(p);
  memcpy(out + o, p, rest);
  o += rest;
  out[o] = '\0';
  return out;
}
