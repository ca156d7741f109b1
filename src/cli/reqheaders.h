/*
 * reqheaders.h - what `bulkup upload` adds to each PUT (reqheaders.c):
 * --header lines, --metadata pairs mapped to the destination's metadata
 * headers, and az:// destinations (--azure-sas, --azure-endpoint).
 *
 * The lists are parsed once, at option time; an item's headers are built
 * from them (and a JSON Lines record's own "headers") when it is
 * submitted, the library copying them.
 */
#ifndef BULKUP_CLI_REQHEADERS_H
#define BULKUP_CLI_REQHEADERS_H

#include <stdbool.h>
#include <stddef.h>

/* One --metadata KEY=VALUE (pointers into argv). */
typedef struct cli_meta {
  const char *key;
  size_t key_len;
  const char *value;
} cli_meta;

typedef struct cli_extras {
  const char **headers; /* --header lines, as given (argv strings) */
  size_t nheaders;
  cli_meta *meta;       /* --metadata, in order */
  size_t nmeta;
  const char *azure_sas;      /* --azure-sas, else $AZURE_STORAGE_SAS_TOKEN */
  const char *azure_endpoint; /* --azure-endpoint */
  char *to_resolved;          /* --to az://...: the http(s) prefix */
} cli_extras;

/* --header 'Name: value': checked (bulkup_header_check) and kept. 0, or
 * the usage exit status after a message. */
int extras_add_header(cli_extras *x, const char *arg);
/* --metadata KEY=VALUE: KEY letters, digits, '-' and '_', VALUE a header
 * value (not empty). 0, or the usage exit status after a message. */
int extras_add_metadata(cli_extras *x, const char *arg);
/* Free what the lists hold. */
void extras_free(cli_extras *x);

/* The metadata header prefix of a destination: "x-ms-meta-" for az:// and
 * Azure blob URLs (bulkup_azure_url), "x-goog-meta-" for gs:// and
 * storage.googleapis.com, "x-amz-meta-" otherwise (s3://, and the S3 API
 * that most other stores speak). `dest` is the destination as written
 * (az://, s3://, gs:// or http(s)), `url` the http(s) URL it became (may
 * be NULL). */
const char *extras_meta_prefix(const char *dest, const char *url);

/* An item's extra headers: NULL-ended, owned by *h (free with
 * hdrlist_free; the strings are copied by the uploader at submit). */
typedef struct hdrlist {
  char **lines;
  size_t n, cap;
} hdrlist;

/* Build them: the --header lines, then one "PREFIX-KEY: VALUE" per
 * --metadata (prefix by extras_meta_prefix(dest, url)), then the record's
 * own `line_headers` (NULL: none); a later header replaces an earlier one
 * of the same name. Returns the lines (NULL when there are none), or NULL
 * with *oom set when out of memory. */
const char *const *extras_item_headers(const cli_extras *x, const char *dest,
                                       const char *url,
                                       const char *const *line_headers,
                                       hdrlist *h, bool *oom);
void hdrlist_free(hdrlist *h);

/* Whether `url` is an az:// destination. */
bool extras_is_az(const char *url);
/* An az://ACCOUNT/CONTAINER/PATH destination as an http(s) URL with the
 * SAS (bulkup_azure_resolve): malloc'ed, or NULL with the reason in err
 * (no SAS given, a malformed az:// URL, out of memory). */
char *extras_resolve_az(const cli_extras *x, const char *az, char *err,
                        size_t errlen);
/* Take the SAS from $AZURE_STORAGE_SAS_TOKEN when --azure-sas was not
 * given; for --to az://..., resolve the prefix into to_resolved. `to` may
 * be NULL. 0, or the usage exit status after a message. */
int extras_check(cli_extras *x, const char *to, bool workflow);
/* The URL of a file under --to: PREFIX/REL (percent-encoded), with the SAS
 * for az://. malloc'ed; NULL when out of memory. */
char *extras_to_url(const cli_extras *x, const char *to, const char *rel);

#endif
