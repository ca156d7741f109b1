/* util/str.h - string and byte encodings (util/str.c): base names, hex,
 * base64, percent-escapes. Shared: part of bulkup_util, which the server
 * and the CLI link too. Nothing here allocates or fails for lack of
 * memory: the caller gives the output buffer (the sizes are stated). */
#ifndef BK_UTIL_STR_H
#define BK_UTIL_STR_H

#include <stdbool.h>
#include <stddef.h>

/* The part of `path` after its last '/' (the whole of it when there is
 * none; "" for a path ending in '/'). Points into path. */
const char *bk_basename(const char *path);

/* ---- hex ---------------------------------------------------------------- */

/* n bytes as 2n hex digits (lower case, or upper), NUL-terminated:
 * `out` holds 2n + 1. */
void bk_hex_encode(const void *data, size_t n, char *out, bool upper);
/* A hex digit's value (either case), or -1. */
int bk_hex_value(char c);

/* ---- base64 (RFC 4648, standard alphabet, with padding) ---------------- */

/* The encoded length of n bytes, without the NUL. */
#define BK_B64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)
/* Encode; `out` holds BK_B64_ENCODED_LEN(n) + 1. Returns the length. */
size_t bk_b64_encode(const void *data, size_t n, char *out);

/* Decoding flags. */
#define BK_B64_SPACE 1u /* ASCII whitespace is allowed anywhere, skipped */

/* Strict decode: padding only at the end and as long as the length needs
 * (the encoded length, whitespace aside, a multiple of 4), no other
 * characters, no non-zero bits dropped by the padding (the one canonical
 * encoding). Returns the decoded length, or -1 for malformed input or a
 * result longer than `cap`. `out` may be NULL with cap 0 to validate. */
long bk_b64_decode(const char *in, size_t len, unsigned char *out, size_t cap,
                   unsigned flags);

/* ---- percent-escapes ------------------------------------------------------ */

/* Which bytes bk_pct_encode leaves as they are. */
typedef enum bk_pct_mode {
  /* Everything but '%', bytes below 0x21 (space among them) and 0x7f: for
   * one-line, space-separated records (the journal). */
  BK_PCT_PRINTABLE,
  /* The RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~) only. */
  BK_PCT_UNRESERVED,
  /* The unreserved characters and '/': a path. */
  BK_PCT_PATH
} bk_pct_mode;

/* Encode n bytes of s, "%XX" with upper-case hex for the others, NUL-
 * terminated: `out` holds 3n + 1. Works per byte (non-UTF-8 too). Returns
 * the length. */
size_t bk_pct_encode(const char *s, size_t n, char *out, bk_pct_mode mode);
/* Decode n bytes of s into out (which may be s itself: the result is never
 * longer). false on a malformed escape, or, with no_nul, a decoded NUL.
 * *outlen gets the length; out is not NUL-terminated. */
bool bk_pct_decode(const char *s, size_t n, char *out, size_t *outlen,
                   bool no_nul);

/* ---- UTF-8 ------------------------------------------------------------------ */

/* The length (1 to 4) of the well-formed UTF-8 sequence at s[0..n), or 0
 * when the bytes there are not one (a stray continuation byte, a
 * truncated sequence, an overlong form, a surrogate, beyond U+10FFFF). */
size_t bk_utf8_seq(const char *s, size_t n);
/* Whether s[0..n) is well-formed UTF-8 throughout. */
bool bk_utf8_valid(const char *s, size_t n);
/* U+FFFD, what JSON output puts for a byte that is not UTF-8. */
#define BK_UTF8_REPLACEMENT "\xEF\xBF\xBD"

#endif
