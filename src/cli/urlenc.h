/*
 * urlenc.h - percent-encoding of relative paths for URLs.
 */
#ifndef BULKUP_CLI_URLENC_H
#define BULKUP_CLI_URLENC_H

#include <stdbool.h>
#include <stddef.h>

/*
 * urlenc_path - a malloc'ed copy of the first `len` bytes of `s` with every
 * byte percent-encoded (upper-case hex) except the RFC 3986 unreserved
 * characters (A-Z a-z 0-9 - . _ ~) and '/'. Works per byte, so non-UTF-8
 * bytes are encoded like any other ("\xff" gives "%FF"). NULL when out of
 * memory.
 */
char *urlenc_path(const char *s, size_t len);

/*
 * urlenc_join - a malloc'ed "PREFIX/ENCODED" where PREFIX is `prefix`
 * without its trailing slashes and ENCODED is urlenc_path(rel). NULL when
 * out of memory.
 */
char *urlenc_join(const char *prefix, const char *rel);

/*
 * url_is_http - whether `url` starts with "http://" or "https://"
 * (scheme case-insensitive) followed by a non-empty host (the authority
 * part before any '/', '?' or '#' is not empty and does not start with
 * '@' or ':'), and holds no ASCII control character or space.
 */
bool url_is_http(const char *url);

#endif
