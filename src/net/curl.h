/* net/curl.h - what every libcurl user of the library shares (net/curl.c,
 * net/header.c): the global init, header lists, the common option block,
 * the scheme check and response-header parsing. Library only; uses the
 * utility layer and nothing above it. */
#ifndef BK_NET_CURL_H
#define BK_NET_CURL_H

#include "bulkup.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* curl_global_init once per process, thread-safely, with bulkup's
 * allocator hooks; every libcurl user in the library calls it first. */
bulkup_err bk_curl_global_init(void);

/* Append a header line to a libcurl list; on allocation failure *ok turns
 * false (and stays so) and the list is returned unchanged, so a run of
 * appends needs one check at the end. */
struct curl_slist *bk_slist_add(struct curl_slist *l, const char *h, bool *ok);

/* Seconds as libcurl milliseconds: rounded up, 0 for <= 0, no overflow. */
long bk_curl_ms(double seconds);

/* Whether the URL is one bulkup sends to: "http://" or "https://" (the
 * scheme in any case). */
bool bk_url_scheme_ok(const char *url);

/* The options every request of the library sets, uploads and API calls
 * alike. */
typedef struct bk_curl_common {
  double connect_timeout; /* seconds; 0: no limit (not libcurl's 300 s) */
  bool insecure;          /* do not verify the peer's certificate */
  const char *ca_file;    /* NULL: the system's CA store */
  const char *user_agent; /* may be NULL */
  char *errbuf;           /* CURL_ERROR_SIZE bytes; may be NULL */
} bk_curl_common;

/* Set them on `e`: no signals, http and https only (redirects too), no
 * redirects followed, the connect timeout, TLS verification and CA file,
 * the User-Agent and the error buffer. The first failure's code (the
 * handle may then hold some of them). */
CURLcode bk_curl_setup_common(CURL *e, const bk_curl_common *c);

/* ---- response headers (net/header.c), for CURLOPT_HEADERFUNCTION ------- */

/* The line starts a new response ("HTTP/..."): after a 1xx, say, whatever
 * the previous response's headers said is to be forgotten. */
bool bk_header_is_status(const char *line, size_t len);
/* The line is header `name` (case-insensitive): its value, without the
 * leading and trailing white space and CR LF, in *value / *vlen. */
bool bk_header_match(const char *line, size_t len, const char *name,
                     const char **value, size_t *vlen);
/* The line is a Retry-After header with a value bulkup_parse_retry_after
 * takes (delay-seconds or an HTTP-date, relative to `now`): the seconds in
 * *seconds. */
bool bk_header_retry_after(const char *line, size_t len, time_t now,
                           double *seconds);

/* Whether the NULL-ended "Name: value" lines (NULL: none) set header
 * `name` (case-insensitive). */
bool bk_headers_have(const char *const *headers, const char *name);

#endif
