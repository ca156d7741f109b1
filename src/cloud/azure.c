/* cloud/azure.c - recognising Azure Blob Storage URLs. */
#include "internal.h"
#include "cloud/azure.h"

#include <strings.h>

/* Is `name` one of the query's parameter names? */
static bool bk_query_has(const char *q, const char *name) {
  size_t nl = strlen(name);
  while (q && *q) {
    if (strncmp(q, name, nl) == 0 && q[nl] == '=')
      return true;
    q = strchr(q, '&');
    if (q)
      q++;
  }
  return false;
}

bool bk_azure_url(const char *url) {
  if (!url)
    return false;
  const char *p = strstr(url, "://");
  if (!p)
    return false;
  p += 3;
  size_t hl = strcspn(p, "/?#");
  /* Skip user info and port. */
  const char *at = memchr(p, '@', hl);
  if (at) {
    hl -= (size_t)(at + 1 - p);
    p = at + 1;
  }
  const char *colon = memchr(p, ':', hl);
  if (colon)
    hl = (size_t)(colon - p);
  static const char suffix[] = ".blob.core.windows.net";
  size_t sl = sizeof suffix - 1;
  if (hl > sl && strncasecmp(p + hl - sl, suffix, sl) == 0)
    return true;
  const char *q = strchr(url, '?');
  if (!q)
    return false;
  q++;
  size_t ql = strcspn(q, "#");
  char buf[4096];
  if (ql >= sizeof buf)
    ql = sizeof buf - 1;
  memcpy(buf, q, ql);
  buf[ql] = '\0';
  return bk_query_has(buf, "sv") && bk_query_has(buf, "sig");
}
