/*
 * urlenc.c - percent-encoding of relative paths, URL scheme checks.
 */
#include "urlenc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_kept(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
         c == '~' || c == '/';
}

/* Encode into out (which has room for 3 * len bytes); returns the length. */
static size_t encode_into(char *out, const char *s, size_t len) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (is_kept(c)) {
      out[o++] = (char)c;
    } else {
      out[o++] = '%';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  return o;
}

char *urlenc_path(const char *s, size_t len) {
  if (len > (((size_t)-1) - 1) / 3)
    return NULL;
  char *out = malloc(3 * len + 1);
  if (!out)
    return NULL;
  out[encode_into(out, s, len)] = '\0';
  return out;
}

char *urlenc_join(const char *prefix, const char *rel) {
  size_t plen = strlen(prefix);
  while (plen > 0 && prefix[plen - 1] == '/')
    plen--;
  size_t rlen = strlen(rel);
  if (rlen > (((size_t)-1) - plen - 2) / 3)
    return NULL;
  char *out = malloc(plen + 1 + 3 * rlen + 1);
  if (!out)
    return NULL;
  memcpy(out, prefix, plen);
  out[plen] = '/';
  size_t n = encode_into(out + plen + 1, rel, rlen);
  out[plen + 1 + n] = '\0';
  return out;
}

bool url_is_http(const char *url) {
  if (!url)
    return false;
  size_t skip;
  if (strncasecmp(url, "http://", 7) == 0)
    skip = 7;
  else if (strncasecmp(url, "https://", 8) == 0)
    skip = 8;
  else
    return false;
  for (const unsigned char *p = (const unsigned char *)url; *p; p++)
    if (*p <= 0x20 || *p == 0x7f)
      return false;
  const char *auth = url + skip;
  size_t alen = strcspn(auth, "/?#");
  const char *host = auth;
  for (size_t i = 0; i < alen; i++)
    if (auth[i] == '@')
      host = auth + i + 1;
  size_t hlen = alen - (size_t)(host - auth);
  return hlen > 0 && host[0] != ':';
}
