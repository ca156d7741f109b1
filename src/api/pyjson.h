/* pyjson.h - JSON text exactly as Python's json.dumps writes it with its
 * defaults (internal): separators ", " and ": ", ensure_ascii=True, keys
 * in the order written. The v1 signature covers these bytes
 * (ENCORD_WIRE.md §3, §6), so the Encord client builds every v1 body with
 * this writer and never with a general JSON library.
 *
 * The writer appends to a growing buffer; an allocation failure makes the
 * writer "broken" (every later call does nothing) and bk_pj_finish reports
 * it once. Callers write the punctuation themselves with bk_pj_raw:
 *
 *   bk_pj w; bk_pj_init(&w);
 *   bk_pj_raw(&w, "{"); bk_pj_key(&w, true, "uid");
 *   bk_pj_str(&w, hash); bk_pj_raw(&w, "}");
 *   char *body; size_t len;
 *   if (bk_pj_finish(&w, &body, &len) != BULKUP_OK) ...
 */
#ifndef BULKUP_API_PYJSON_H
#define BULKUP_API_PYJSON_H

#include "internal.h"

typedef struct bk_pj {
  char *buf;
  size_t len, cap;
  bool broken;
} bk_pj;

void bk_pj_init(bk_pj *w);
/* Append raw text (punctuation, literals such as "true", "[]"). */
void bk_pj_raw(bk_pj *w, const char *text);
/* Append a JSON string of the NUL-terminated bytes `s`, as json.dumps
 * writes the Python str they decode to: '"' and '\' escaped, \n \r \t \b
 * \f by name, other control characters and every non-ASCII character as
 * \uXXXX (UTF-16, so above U+FFFF a surrogate pair). A byte that is not
 * part of valid UTF-8 becomes U+DC80..U+DCFF, as Python's surrogateescape
 * decoding of a file name gives it (json.dumps writes it as \udcXX). */
void bk_pj_str(bk_pj *w, const char *s);
/* ", " unless first, then the key as a string, then ": ". */
void bk_pj_key(bk_pj *w, bool first, const char *key);
/* Append an integer in decimal. */
void bk_pj_int(bk_pj *w, long long v);
/* Append true / false. */
void bk_pj_bool(bk_pj *w, bool v);
/* Hand over the text (bk_malloc'ed, NUL-terminated) and its length, or
 * BULKUP_ENOMEM (the buffer is freed). The writer is empty afterwards. */
bulkup_err bk_pj_finish(bk_pj *w, char **out, size_t *len);
/* Free the buffer without handing it over. */
void bk_pj_free(bk_pj *w);

#endif
