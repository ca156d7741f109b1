/* cloud/azure.c - Azure Blob Storage: recognising a blob URL (a blob
 * endpoint's host, or a SAS in the query), the headers its requests need,
 * and az://ACCOUNT/CONTAINER/PATH destinations. */
#include "internal.h"
#include "cloud/azure.h"
#include "net/curl.h"
#include "net/redact.h"

#include <stdio.h>
#include <strings.h>

#define BK_AZURE_HOST_SUFFIX ".blob.core.windows.net"

/* The authority of an http(s) URL: [host_start, host_end) without
 * userinfo and port. false when the URL is not http(s). */
static bool bk_url_host(const char *url, const char **hs, size_t *hl) {
  const char *p;
  if (strncasecmp(url, "https://", 8) == 0)
    p = url + 8;
  else if (strncasecmp(url, "http://", 7) == 0)
    p = url + 7;
  else
    return false;
  size_t alen = strcspn(p, "/?#");
  const char *at = memrchr(p, '@', alen);
  if (at) {
    alen -= (size_t)(at + 1 - p);
    p = at + 1;
  }
  size_t h = alen;
  if (alen && p[0] == '[') {
    const char *rb = memchr(p, ']', alen);
    h = rb ? (size_t)(rb + 1 - p) : alen;
  } else {
    const char *colon = memchr(p, ':', alen);
    if (colon)
      h = (size_t)(colon - p);
  }
  *hs = p;
  *hl = h;
  return true;
}

bool bk_azure_url(const char *url) {
  if (!url)
    return false;
  const char *h;
  size_t hl;
  if (!bk_url_host(url, &h, &hl))
    return false;
  /* A fully qualified name may end with a dot. */
  if (hl && h[hl - 1] == '.')
    hl--;
  size_t sl = strlen(BK_AZURE_HOST_SUFFIX);
  if (hl > sl && strncasecmp(h + hl - sl, BK_AZURE_HOST_SUFFIX, sl) == 0)
    return true;
  const char *q = strchr(url, '?');
  if (!q)
    return false;
  q++;
  size_t ql = strcspn(q, "#");
  return bk_query_has(q, ql, "sv") && bk_query_has(q, ql, "sig");
}

bool bulkup_azure_url(const char *url) { return bk_azure_url(url); }

struct curl_slist *bk_azure_add_headers(struct curl_slist *h,
                                        const char *const *item_headers,
                                        bool put_blob, bool *ok) {
  if (!bk_headers_have(item_headers, "x-ms-version"))
    h = bk_slist_add(h, "x-ms-version: " BK_AZURE_VERSION, ok);
  if (put_blob && !bk_headers_have(item_headers, "x-ms-blob-type"))
    h = bk_slist_add(h, "x-ms-blob-type: BlockBlob", ok);
  return h;
}

/* No byte that would change what the URL says or break a request line. */
static bool bk_url_text_ok(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p <= 0x20 || *p == 0x7f || *p == '#')
      return false;
  return true;
}

bulkup_err bulkup_azure_resolve(const char *az, const char *sas,
                                const char *endpoint, bool allow_empty_path,
                                char **out) {
  if (!out)
    return bk_error(BULKUP_EINVAL, "out must not be NULL");
  *out = NULL;
  if (!az || strncasecmp(az, "az://", 5) != 0)
    return bk_error(BULKUP_EINVAL, "not an az://ACCOUNT/CONTAINER/PATH URL");
  if (!bk_url_text_ok(az) || strchr(az, '?'))
    return bk_error(BULKUP_EINVAL,
                    "an az:// URL may not hold a query, a fragment, a space "
                    "or a control character (the SAS goes in --azure-sas)");
  const char *acct = az + 5;
  size_t al = strcspn(acct, "/");
  const char *cont = acct[al] == '/' ? acct + al + 1 : acct + al;
  size_t cl = strcspn(cont, "/");
  const char *path = cont[cl] == '/' ? cont + cl + 1 : cont + cl;
  if (al == 0 || cl == 0)
    return bk_error(BULKUP_EINVAL,
                    "an az:// URL needs an account and a container: "
                    "az://ACCOUNT/CONTAINER/PATH");
  if (!*path && !allow_empty_path)
    return bk_error(BULKUP_EINVAL,
                    "an az:// URL needs a blob name after the container");
  if (sas && *sas == '?')
    sas++;
  if (sas && (!bk_url_text_ok(sas) || strchr(sas, '?')))
    return bk_error(BULKUP_EINVAL,
                    "the SAS token holds a space, a control character, a "
                    "'?' or a '#'");
  if (endpoint && *endpoint &&
      (!bk_url_scheme_ok(endpoint) || !bk_url_text_ok(endpoint) ||
       strchr(endpoint, '?')))
    return bk_error(BULKUP_EINVAL,
                    "the Azure endpoint must be an http:// or https:// URL "
                    "without query or fragment");
  size_t el = endpoint && *endpoint ? strlen(endpoint) : 0;
  while (el && endpoint[el - 1] == '/')
    el--;
  size_t n = (el ? el : 8 + al + strlen(BK_AZURE_HOST_SUFFIX)) + 1 + cl + 1 +
             strlen(path) + (sas ? 1 + strlen(sas) : 0) + 1;
  char *u = bk_malloc(n);
  if (!u)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  int w;
  if (el)
    w = snprintf(u, n, "%.*s/%.*s/%s", (int)el, endpoint, (int)cl, cont,
                 path);
  else
    w = snprintf(u, n, "https://%.*s" BK_AZURE_HOST_SUFFIX "/%.*s/%s",
                 (int)al, acct, (int)cl, cont, path);
  if (sas && *sas)
    snprintf(u + w, n - (size_t)w, "?%s", sas);
  *out = u;
  return BULKUP_OK;
}
