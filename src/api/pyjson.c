/* pyjson.c - json.dumps-compatible JSON text (see pyjson.h). */
#include "internal.h"
#include "pyjson.h"

#include <stdio.h>

void bk_pj_init(bk_pj *w) { memset(w, 0, sizeof *w); }

static void bk_pj_put(bk_pj *w, const char *p, size_t n) {
  if (w->broken)
    return;
  if (w->len + n + 1 > w->cap) {
    size_t ncap = w->cap ? w->cap : 256;
    while (ncap < w->len + n + 1)
      ncap *= 2;
    char *nb = bk_realloc(w->buf, ncap);
    if (!nb) {
      w->broken = true;
      return;
    }
    w->buf = nb;
    w->cap = ncap;
  }
  memcpy(w->buf + w->len, p, n);
  w->len += n;
  w->buf[w->len] = '\0';
}

void bk_pj_raw(bk_pj *w, const char *text) {
  bk_pj_put(w, text, strlen(text));
}

static void bk_pj_u16(bk_pj *w, unsigned v) {
  char e[8];
  snprintf(e, sizeof e, "\\u%04x", v & 0xffffu);
  bk_pj_put(w, e, 6);
}

/* The code point of the UTF-8 sequence at s (strict: no overlongs, no
 * surrogates, at most U+10FFFF); its length in *n, or 0 if invalid. */
static unsigned long bk_utf8_next(const unsigned char *s, size_t *n) {
  unsigned char c = s[0];
  unsigned long cp;
  size_t len;
  if (c < 0x80) {
    *n = 1;
    return c;
  }
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    cp = c & 0x07;
  } else {
    *n = 0;
    return 0;
  }
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) {
      *n = 0;
      return 0;
    }
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
    *n = 0;
    return 0;
  }
  *n = len;
  return cp;
}

void bk_pj_str(bk_pj *w, const char *str) {
  const unsigned char *s = (const unsigned char *)str;
  bk_pj_put(w, "\"", 1);
  while (*s) {
    unsigned char c = *s;
    const char *named = NULL;
    switch (c) {
    case '"': named = "\\\""; break;
    case '\\': named = "\\\\"; break;
    case '\n': named = "\\n"; break;
    case '\r': named = "\\r"; break;
    case '\t': named = "\\t"; break;
    case '\b': named = "\\b"; break;
    case '\f': named = "\\f"; break;
    default: break;
    }
    if (named) {
      bk_pj_put(w, named, 2);
      s++;
      continue;
    }
    if (c < 0x20 || c == 0x7f) {
      /* json.dumps escapes everything outside ' '..'~', DEL included. */
      bk_pj_u16(w, c);
      s++;
      continue;
    }
    if (c < 0x80) {
      bk_pj_put(w, (const char *)s, 1);
      s++;
      continue;
    }
    size_t n;
    unsigned long cp = bk_utf8_next(s, &n);
    if (n == 0) {
      bk_pj_u16(w, 0xdc00u | c); /* surrogateescape */
      s++;
      continue;
    }
    if (cp >= 0x10000) {
      unsigned long v = cp - 0x10000;
      bk_pj_u16(w, (unsigned)(0xd800 | (v >> 10)));
      bk_pj_u16(w, (unsigned)(0xdc00 | (v & 0x3ff)));
    } else {
      bk_pj_u16(w, (unsigned)cp);
    }
    s += n;
  }
  bk_pj_put(w, "\"", 1);
}

void bk_pj_key(bk_pj *w, bool first, const char *key) {
  if (!first)
    bk_pj_put(w, ", ", 2);
  bk_pj_str(w, key);
  bk_pj_put(w, ": ", 2);
}

void bk_pj_int(bk_pj *w, long long v) {
  char b[32];
  int n = snprintf(b, sizeof b, "%lld", v);
  bk_pj_put(w, b, (size_t)n);
}

void bk_pj_bool(bk_pj *w, bool v) { bk_pj_raw(w, v ? "true" : "false"); }

bulkup_err bk_pj_finish(bk_pj *w, char **out, size_t *len) {
  *out = NULL;
  *len = 0;
  if (w->broken || !w->buf) {
    bk_pj_free(w);
    return bk_error(BULKUP_ENOMEM, "out of memory building a request body");
  }
  *out = w->buf;
  *len = w->len;
  memset(w, 0, sizeof *w);
  return BULKUP_OK;
}

void bk_pj_free(bk_pj *w) {
  bk_free(w->buf);
  memset(w, 0, sizeof *w);
}
