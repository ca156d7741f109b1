/* net/redact.h - redaction of credentials in free text (net/redact.c;
 * URLs: bulkup_redact_url and bulkup_url_identity, public). */
#ifndef BK_NET_REDACT_H
#define BK_NET_REDACT_H

#include <stdbool.h>
#include <stddef.h>

/* A copy of text[0..len) with credentials redacted (the parameters and XML
 * elements of redact.c's table, userinfo); NUL-terminated, its length in
 * *out_len (NULs inside are kept). NULL when out of memory. Freed with
 * bk_free(). */
char *bk_redact_text(const char *text, size_t len, size_t *out_len);

/* Whether the query q[0..len) (after the '?', before any '#') has a
 * parameter named `name` (ASCII case-insensitive, percent-decoded as the
 * server decodes it; '&' and ';' separate parameters). */
bool bk_query_has(const char *q, size_t len, const char *name);

#endif
