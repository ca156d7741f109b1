/* util/str.c - base names, hex, base64, percent-escapes (util/str.h). */
#include "util/str.h"

#include <stdint.h>
#include <string.h>

const char *bk_basename(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* ---- hex ---------------------------------------------------------------- */

static const char bk_hex_lower[] = "0123456789abcdef";
static const char bk_hex_upper[] = "0123456789ABCDEF";

void bk_hex_encode(const void *data, size_t n, char *out, bool upper) {
  const unsigned char *d = data;
  const char *hx = upper ? bk_hex_upper : bk_hex_lower;
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hx[d[i] >> 4];
    out[2 * i + 1] = hx[d[i] & 15];
  }
  out[2 * n] = '\0';
}

int bk_hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* ---- base64 ---------------------------------------------------------------- */

static const char bk_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t bk_b64_encode(const void *data, size_t n, char *out) {
  const unsigned char *d = data;
  size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t w = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
    out[o++] = bk_b64_alphabet[w >> 18];
    out[o++] = bk_b64_alphabet[(w >> 12) & 63];
    out[o++] = bk_b64_alphabet[(w >> 6) & 63];
    out[o++] = bk_b64_alphabet[w & 63];
  }
  if (i < n) {
    uint32_t w = (uint32_t)d[i] << 16;
    if (i + 1 < n)
      w |= (uint32_t)d[i + 1] << 8;
    out[o++] = bk_b64_alphabet[w >> 18];
    out[o++] = bk_b64_alphabet[(w >> 12) & 63];
    out[o++] = i + 1 < n ? bk_b64_alphabet[(w >> 6) & 63] : '=';
    out[o++] = '=';
  }
  out[o] = '\0';
  return o;
}

static int bk_b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

long bk_b64_decode(const char *in, size_t len, unsigned char *out, size_t cap,
                   unsigned flags) {
  uint32_t acc = 0;
  int nbits = 0, pad = 0;
  size_t n = 0, quantum = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    if ((flags & BK_B64_SPACE) &&
        (c == ' ' || c == '\t' || c == '\r' || c == '\n'))
      continue;
    if (c == '=') {
      pad++;
      quantum++;
      continue;
    }
    int v = bk_b64_value(c);
    if (v < 0 || pad) /* a stray character, or data after the padding */
      return -1;
    acc = (acc << 6) | (uint32_t)v;
    nbits += 6;
    quantum++;
    if (nbits >= 8) {
      nbits -= 8;
      if (n == cap)
        return -1;
      out[n++] = (unsigned char)(acc >> nbits);
    }
    acc &= (1u << nbits) - 1;
  }
  if (quantum % 4 != 0 || pad > 2)
    return -1;
  /* Leftover bits must be zero (canonical encoding) and match the padding. */
  if (acc != 0 || (pad == 1 && nbits != 2) || (pad == 2 && nbits != 4) ||
      (pad == 0 && nbits != 0))
    return -1;
  return (long)n;
}

/* ---- percent-escapes -------------------------------------------------------- */

static bool bk_pct_keep(unsigned char c, bk_pct_mode mode) {
  switch (mode) {
  case BK_PCT_PRINTABLE:
    return c != '%' && c >= 0x21 && c != 0x7f;
  case BK_PCT_PATH:
    if (c == '/')
      return true;
    /* fall through */
  case BK_PCT_UNRESERVED:
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
  }
  return false;
}

size_t bk_pct_encode(const char *s, size_t n, char *out, bk_pct_mode mode) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (bk_pct_keep(c, mode)) {
      out[o++] = (char)c;
    } else {
      out[o++] = '%';
      out[o++] = bk_hex_upper[c >> 4];
      out[o++] = bk_hex_upper[c & 15];
    }
  }
  out[o] = '\0';
  return o;
}

bool bk_pct_decode(const char *s, size_t n, char *out, size_t *outlen,
                   bool no_nul) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    char c = s[i];
    if (c == '%') {
      if (n - i < 3)
        return false;
      int hi = bk_hex_value(s[i + 1]), lo = bk_hex_value(s[i + 2]);
      if (hi < 0 || lo < 0)
        return false;
      c = (char)(hi << 4 | lo);
      i += 3;
    } else {
      i++;
    }
    if (no_nul && c == '\0')
      return false;
    out[o++] = c;
  }
  *outlen = o;
  return true;
}

/* ---- UTF-8 ------------------------------------------------------------------ */

size_t bk_utf8_seq(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  if (n == 0)
    return 0;
  unsigned c = p[0];
  if (c < 0x80)
    return 1;
  size_t len;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2;
  else if (c >= 0xE0 && c <= 0xEF)
    len = 3;
  else if (c >= 0xF0 && c <= 0xF4)
    len = 4;
  else
    return 0; /* a continuation byte, C0/C1 (overlong), F5..FF */
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++)
    if ((p[i] & 0xC0) != 0x80)
      return 0;
  if ((c == 0xE0 && p[1] < 0xA0) || /* overlong */
      (c == 0xED && p[1] > 0x9F) || /* U+D800..U+DFFF */
      (c == 0xF0 && p[1] < 0x90) || /* overlong */
      (c == 0xF4 && p[1] > 0x8F))   /* beyond U+10FFFF */
    return 0;
  return len;
}

bool bk_utf8_valid(const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    size_t k = bk_utf8_seq(s + i, n - i);
    if (!k)
      return false;
    i += k;
  }
  return true;
}
