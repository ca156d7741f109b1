/* net/redact.h - redaction of credentials in free text (net/redact.c;
 * URLs: bulkup_redact_url and bulkup_url_identity, public). */
#ifndef BK_NET_REDACT_H
#define BK_NET_REDACT_H

#include <stddef.h>

/* A copy of text[0..len) with credentials redacted (the parameters and XML
 * elements of redact.c's table, userinfo); NUL-terminated, its length in
 * *out_len (NULs inside are kept). NULL when out of memory. Freed with
 * bk_free(). */
char *bk_redact_text(const char *text, size_t len, size_t *out_len);

#endif
