/* Redaction of credentials: signed URLs are bearer credentials, so nothing
 * bulkup reports, logs or returns may carry one verbatim, nor the pieces
 * of one that a server echoes in an error body (S3's SignatureDoesNotMatch
 * holds SignatureProvided and the X-Amz-Credential of the request).
 *
 * One table names the query parameters bulkup knows: those whose value is
 * a credential (redacted wherever they appear) and those that only sign a
 * URL (left out of an item's identity, bulkup_url_identity, so that a
 * manifest signed again names the same items). */
#include "bulkup.h"
#include "net/redact.h"
#include "util/alloc.h"
#include "util/base.h"
#include "util/str.h"

#include <string.h>

#include <ctype.h>
#include <strings.h>

enum {
  BK_P_SECRET = 1,  /* the value is a credential: redacted */
  BK_P_SIGNING = 2, /* part of a URL's signature, not of what it names */
  BK_P_SAS = 4,     /* Azure SAS: signing only in a query that has sig= */
};

typedef struct bk_param {
  const char *name;
  unsigned flags;
} bk_param;

static const bk_param bk_params[] = {
    /* GCS V4 and S3 SigV4 (every other X-Goog-* and X-Amz-* parameter is
     * signing too: see bk_param_flags). */
    {"x-goog-signature", BK_P_SECRET | BK_P_SIGNING},
    {"x-goog-credential", BK_P_SECRET | BK_P_SIGNING},
    {"x-goog-security-token", BK_P_SECRET | BK_P_SIGNING},
    {"x-amz-signature", BK_P_SECRET | BK_P_SIGNING},
    {"x-amz-credential", BK_P_SECRET | BK_P_SIGNING},
    {"x-amz-security-token", BK_P_SECRET | BK_P_SIGNING},
    /* V2 signatures (S3, GCS). */
    {"signature", BK_P_SECRET | BK_P_SIGNING},
    {"awsaccesskeyid", BK_P_SECRET | BK_P_SIGNING},
    {"googleaccessid", BK_P_SECRET | BK_P_SIGNING},
    {"expires", BK_P_SIGNING},
    /* Azure SAS: the signature, and the fields it signs. */
    {"sig", BK_P_SECRET | BK_P_SAS},
    {"sv", BK_P_SAS},     {"ss", BK_P_SAS},     {"srt", BK_P_SAS},
    {"sp", BK_P_SAS},     {"se", BK_P_SAS},     {"st", BK_P_SAS},
    {"spr", BK_P_SAS},    {"sip", BK_P_SAS},    {"sr", BK_P_SAS},
    {"si", BK_P_SAS},     {"sdd", BK_P_SAS},    {"ses", BK_P_SAS},
    {"skoid", BK_P_SAS},  {"sktid", BK_P_SAS},  {"skt", BK_P_SAS},
    {"ske", BK_P_SAS},    {"sks", BK_P_SAS},    {"skv", BK_P_SAS},
    {"saoid", BK_P_SAS},  {"suoid", BK_P_SAS},  {"scid", BK_P_SAS},
    {"sduoid", BK_P_SAS}, {"rscc", BK_P_SAS},   {"rscd", BK_P_SAS},
    {"rsce", BK_P_SAS},   {"rscl", BK_P_SAS},   {"rsct", BK_P_SAS},
    /* Other credentials: their value names a different thing when it
     * changes (a session, a key), so they stay part of the identity. */
    {"token", BK_P_SECRET},
    {"access_token", BK_P_SECRET},
    {"key", BK_P_SECRET},
    {"api_key", BK_P_SECRET},
    {"apikey", BK_P_SECRET},
    {"password", BK_P_SECRET},
    {"client_secret", BK_P_SECRET},
    {"upload_id", BK_P_SECRET},
    /* SigV4's Authorization header: Credential=AKID/DATE/..., Signature= */
    {"credential", BK_P_SECRET},
};

/* Header lines whose value is a credential ("Name: value" in free text,
 * a logged request, an echoed one): the value is redacted to the line's
 * end. */
static const char *const bk_secret_headers[] = {
    "authorization", "proxy-authorization", "x-amz-security-token",
    "x-goog-security-token", "x-api-key",
};

/* XML elements of error bodies whose content is a credential, besides
 * those named like a secret parameter (<X-Amz-Credential>, <Signature>):
 * S3 echoes the signature it was given and the access key id, and
 * CanonicalRequestBytes is the hex of a canonical request, query included. */
static const char *const bk_secret_elements[] = {
    "signatureprovided", "awsaccesskeyid", "canonicalrequestbytes",
    "credential",        "securitytoken",  "accesskeyid",
    /* S3's SignatureDoesNotMatch: the canonical request it computed holds
     * the signed headers' values, X-Amz-Security-Token among them */
    "canonicalrequest",
};

/* A parameter name, percent-decoded ("X%2DAmz%2DSignature" is
 * X-Amz-Signature to the server), into buf; false when it is too long to
 * be one of ours. */
static bool bk_decode_name(const char *name, size_t len, char *buf,
                           size_t cap, size_t *out) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (o + 1 >= cap)
      return false;
    unsigned char c = (unsigned char)name[i];
    if (c == '%' && i + 2 < len && bk_hex_value(name[i + 1]) >= 0 &&
        bk_hex_value(name[i + 2]) >= 0) {
      c = (unsigned char)(bk_hex_value(name[i + 1]) * 16 +
                          bk_hex_value(name[i + 2]));
      i += 2;
    } else if (c == '+') {
      c = ' ';
    }
    buf[o++] = (char)c;
  }
  buf[o] = '\0';
  *out = o;
  return true;
}

/* The flags of a parameter name (raw, as in the URL). */
static unsigned bk_param_flags(const char *name, size_t len) {
  char buf[64];
  size_t n;
  if (!bk_decode_name(name, len, buf, sizeof buf, &n))
    return 0;
  for (size_t i = 0; i < BK_ARRAY_LEN(bk_params); i++)
    if (strlen(bk_params[i].name) == n &&
        strncasecmp(bk_params[i].name, buf, n) == 0)
      return bk_params[i].flags;
  if ((n > 7 && strncasecmp(buf, "x-goog-", 7) == 0) ||
      (n > 6 && strncasecmp(buf, "x-amz-", 6) == 0))
    return BK_P_SIGNING;
  return 0;
}

static bool bk_is_secret_name(const char *name, size_t len) {
  return (bk_param_flags(name, len) & BK_P_SECRET) != 0;
}

static bool bk_is_secret_element(const char *name, size_t len) {
  if (bk_is_secret_name(name, len))
    return true;
  for (size_t i = 0; i < BK_ARRAY_LEN(bk_secret_elements); i++)
    if (strlen(bk_secret_elements[i]) == len &&
        strncasecmp(bk_secret_elements[i], name, len) == 0)
      return true;
  return false;
}

/* ---- an output buffer ---------------------------------------------------- */

typedef struct bk_out {
  char *p;
  size_t n, cap;
  bool failed;
} bk_out;

static void bk_put(bk_out *o, const char *s, size_t n) {
  if (o->failed)
    return;
  if (o->n + n + 1 > o->cap) {
    size_t ncap = o->cap ? o->cap : 64;
    while (ncap < o->n + n + 1)
      ncap *= 2;
    char *np = bk_realloc(o->p, ncap);
    if (!np) {
      o->failed = true;
      return;
    }
    o->p = np;
    o->cap = ncap;
  }
  memcpy(o->p + o->n, s, n);
  o->n += n;
  o->p[o->n] = '\0';
}

static const char bk_red[] = "REDACTED";
#define BK_RED_LEN (sizeof bk_red - 1)

static char *bk_out_take(bk_out *o, size_t *len) {
  if (!o->failed && !o->p)
    bk_put(o, "", 0);
  if (o->failed) {
    bk_free(o->p);
    return NULL;
  }
  if (len)
    *len = o->n;
  return o->p;
}

/* ---- URLs ------------------------------------------------------------------ */

/* Where the authority of `url` starts (after "scheme://"), or NULL: a
 * scheme ends at the first "://" only if nothing before it is a path,
 * query or fragment character ("a?b://c@d" has no userinfo). */
static const char *bk_authority(const char *url, size_t len) {
  const char *auth = memmem(url, len, "://", 3);
  if (!auth)
    return NULL;
  for (const char *q = url; q < auth; q++)
    if (*q == '/' || *q == '?' || *q == '#')
      return NULL;
  return auth + 3;
}

/* Copy the scheme and authority of url[0..len) with its userinfo
 * redacted: user:password@ keeps the user, a lone user@ (a token, as in
 * https://TOKEN@host/) is replaced. Returns how many bytes were used. */
static size_t bk_put_authority(bk_out *o, const char *url, size_t len) {
  const char *host = bk_authority(url, len);
  if (!host)
    return 0;
  size_t rest = len - (size_t)(host - url);
  size_t hl = 0;
  while (hl < rest && !strchr("/?#", host[hl]) && host[hl])
    hl++;
  const char *at = NULL;
  for (size_t i = 0; i < hl; i++)
    if (host[i] == '@')
      at = host + i; /* the last '@' ends the userinfo */
  if (!at) {
    bk_put(o, url, (size_t)(host - url) + hl);
    return (size_t)(host - url) + hl;
  }
  const char *colon = memchr(host, ':', (size_t)(at - host));
  if (colon)
    bk_put(o, url, (size_t)(colon + 1 - url));
  else
    bk_put(o, url, (size_t)(host - url));
  bk_put(o, bk_red, BK_RED_LEN);
  bk_put(o, at, (size_t)(host + hl - at));
  return (size_t)(host - url) + hl;
}

char *bulkup_redact_url(const char *url) {
  if (!url)
    return NULL;
  size_t n = strlen(url);
  bk_out o = {0};
  size_t used = bk_put_authority(&o, url, n);
  const char *p = url + used;
  const char *query = strchr(p, '?');
  const char *frag = strchr(p, '#');
  if (frag && query && frag < query)
    query = NULL;
  if (!query) {
    bk_put(&o, p, strlen(p));
    return bk_out_take(&o, NULL);
  }
  bk_put(&o, p, (size_t)(query + 1 - p));
  p = query + 1;
  /* Walk name[=value] pairs separated by & (or ;), up to a fragment. */
  while (*p && *p != '#') {
    size_t plen = strcspn(p, "&;#");
    const char *eq = memchr(p, '=', plen);
    size_t nlen = eq ? (size_t)(eq - p) : plen;
    if (eq && bk_is_secret_name(p, nlen)) {
      bk_put(&o, p, nlen + 1);
      bk_put(&o, bk_red, BK_RED_LEN);
    } else {
      bk_put(&o, p, plen);
    }
    p += plen;
    if (*p == '&' || *p == ';')
      bk_put(&o, p++, 1);
  }
  bk_put(&o, p, strlen(p));
  return bk_out_take(&o, NULL);
}

bool bk_query_has(const char *q, size_t len, const char *name) {
  size_t i = 0;
  while (i < len) {
    size_t plen = 0;
    while (i + plen < len && !strchr("&;", q[i + plen]))
      plen++;
    const char *eq = memchr(q + i, '=', plen);
    size_t nlen = eq ? (size_t)(eq - (q + i)) : plen;
    char buf[64];
    size_t n;
    if (bk_decode_name(q + i, nlen, buf, sizeof buf, &n) &&
        n == strlen(name) && strncasecmp(buf, name, n) == 0)
      return true;
    i += plen + 1;
  }
  return false;
}

char *bulkup_url_identity(const char *url) {
  if (!url)
    return NULL;
  size_t n = strlen(url);
  bk_out o = {0};
  size_t used = bk_put_authority(&o, url, n);
  const char *p = url + used;
  size_t before = strcspn(p, "?#");
  bk_put(&o, p, before);
  p += before;
  if (*p != '?') {
    bk_put(&o, p, strlen(p));
    return bk_out_take(&o, NULL);
  }
  p++;
  size_t qlen = strcspn(p, "#");
  bool sas = bk_query_has(p, qlen, "sig");
  const char *end = p + qlen;
  bool first = true;
  while (p < end) {
    size_t plen = 0;
    while (p + plen < end && p[plen] != '&' && p[plen] != ';')
      plen++;
    const char *eq = memchr(p, '=', plen);
    size_t nlen = eq ? (size_t)(eq - p) : plen;
    unsigned f = bk_param_flags(p, nlen);
    bool drop = (f & BK_P_SIGNING) || (sas && (f & BK_P_SAS)) || plen == 0;
    if (!drop) {
      bk_put(&o, first ? "?" : "&", 1);
      first = false;
      if (eq && (f & BK_P_SECRET)) {
        bk_put(&o, p, nlen + 1);
        bk_put(&o, bk_red, BK_RED_LEN);
      } else {
        bk_put(&o, p, plen);
      }
    }
    p += plen;
    if (p < end)
      p++;
  }
  bk_put(&o, end, strlen(end));
  return bk_out_take(&o, NULL);
}

/* ---- free text ---------------------------------------------------------------- */

static bool bk_name_char(unsigned char c) {
  return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '%';
}

/* The length of an XML element's name at s[0..len) (after '<'). */
static size_t bk_element_name(const char *s, size_t len) {
  size_t i = 0;
  while (i < len && (isalnum((unsigned char)s[i]) || s[i] == '-' ||
                     s[i] == '_' || s[i] == ':'))
    i++;
  return i;
}

/* Find "</NAME>" in s[0..len), case-insensitively. */
static const char *bk_find_close(const char *s, size_t len, const char *name,
                                 size_t nlen) {
  for (size_t i = 0; i + nlen + 3 <= len; i++)
    if (s[i] == '<' && s[i + 1] == '/' &&
        strncasecmp(s + i + 2, name, nlen) == 0 && s[i + 2 + nlen] == '>')
      return s + i;
  return NULL;
}

/*
 * Redact text[0..len) (an error body, a message): any NAME=VALUE whose NAME
 * is a credential parameter (percent-encoded or not, wherever it appears:
 * a URL, a canonical request, a form), the content of an XML element named
 * like one or listed in bk_secret_elements, a JSON "NAME": "VALUE" of one,
 * the value of a header line named in bk_secret_headers (Authorization,
 * X-Amz-Security-Token), and the userinfo of any scheme://user@ it holds.
 * NULs are kept. Returns
 * a NUL-terminated copy (its length in *out_len) or NULL when out of
 * memory.
 */
char *bk_redact_text(const char *text, size_t len, size_t *out_len) {
  bk_out o = {0};
  size_t i = 0, copied = 0;
  while (i < len) {
    unsigned char c = (unsigned char)text[i];
    /* scheme://userinfo@ */
    if (c == ':' && i + 2 < len && text[i + 1] == '/' && text[i + 2] == '/') {
      size_t s = i;
      while (s > copied && (isalnum((unsigned char)text[s - 1]) ||
                            text[s - 1] == '+' || text[s - 1] == '.' ||
                            text[s - 1] == '-'))
        s--;
      if (s < i) {
        size_t a = i + 3, e = a;
        while (e < len && !strchr("/?#@ \t\r\n\"'<>", text[e]) && text[e])
          e++;
        if (e < len && text[e] == '@') {
          bk_put(&o, text + copied, a - copied);
          const char *colon = memchr(text + a, ':', e - a);
          if (colon)
            bk_put(&o, text + a, (size_t)(colon + 1 - (text + a)));
          bk_put(&o, bk_red, BK_RED_LEN);
          copied = i = e;
          continue;
        }
      }
    }
    /* Header-Name: VALUE, at a line's start (or after a space) */
    if (c == ':' && i > copied) {
      size_t s = i;
      while (s > copied && (isalnum((unsigned char)text[s - 1]) ||
                            text[s - 1] == '-'))
        s--;
      bool at_start = s == 0 || strchr(" \t\r\n\"'>", text[s - 1]);
      bool secret = false;
      for (size_t h = 0; at_start && h < BK_ARRAY_LEN(bk_secret_headers); h++)
        if (strlen(bk_secret_headers[h]) == i - s &&
            strncasecmp(bk_secret_headers[h], text + s, i - s) == 0)
          secret = true;
      if (secret) {
        size_t e = i + 1;
        while (e < len && (text[e] == ' ' || text[e] == '\t'))
          e++;
        size_t v = e;
        while (e < len && !strchr("\r\n\"<", text[e]) && text[e])
          e++;
        if (e > v) {
          bk_put(&o, text + copied, v - copied);
          bk_put(&o, bk_red, BK_RED_LEN);
          copied = i = e;
          continue;
        }
      }
    }
    /* NAME=VALUE */
    if (c == '=' && i > copied) {
      size_t s = i;
      while (s > copied && bk_name_char((unsigned char)text[s - 1]))
        s--;
      if (s < i && bk_is_secret_name(text + s, i - s)) {
        size_t e = i + 1;
        while (e < len && !strchr("&;# \t\r\n\"'<>,)", text[e]) && text[e])
          e++;
        bk_put(&o, text + copied, i + 1 - copied);
        bk_put(&o, bk_red, BK_RED_LEN);
        copied = i = e;
        continue;
      }
    }
    /* <NAME>VALUE</NAME> */
    if (c == '<' && i + 1 < len) {
      size_t nl = bk_element_name(text + i + 1, len - i - 1);
      size_t gt = i + 1 + nl;
      if (nl && gt < len && text[gt] == '>' &&
          bk_is_secret_element(text + i + 1, nl)) {
        const char *close =
            bk_find_close(text + gt + 1, len - gt - 1, text + i + 1, nl);
        size_t e = close ? (size_t)(close - text) : len;
        bk_put(&o, text + copied, gt + 1 - copied);
        bk_put(&o, bk_red, BK_RED_LEN);
        copied = i = e;
        continue;
      }
    }
    /* "NAME": "VALUE" */
    if (c == '"' && i + 1 < len) {
      size_t nl = 0;
      while (i + 1 + nl < len && bk_name_char((unsigned char)text[i + 1 + nl]))
        nl++;
      size_t q = i + 1 + nl;
      if (nl && q < len && text[q] == '"' &&
          bk_is_secret_name(text + i + 1, nl)) {
        size_t k = q + 1;
        while (k < len && (text[k] == ' ' || text[k] == '\t'))
          k++;
        if (k < len && text[k] == ':') {
          k++;
          while (k < len && (text[k] == ' ' || text[k] == '\t'))
            k++;
          if (k < len && text[k] == '"') {
            size_t e = k + 1;
            while (e < len && text[e] != '"') {
              if (text[e] == '\\' && e + 1 < len)
                e++;
              e++;
            }
            bk_put(&o, text + copied, k + 1 - copied);
            bk_put(&o, bk_red, BK_RED_LEN);
            copied = i = e;
            continue;
          }
        }
      }
    }
    i++;
  }
  bk_put(&o, text + copied, len - copied);
  return bk_out_take(&o, out_len);
}
