/*
 * reqheaders.c - --header, --metadata and az:// destinations for
 * `bulkup upload` (reqheaders.h).
 */
#include "reqheaders.h"

#include "cli.h"
#include "grow.h"
#include "urlenc.h"

#include <bulkup.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int extras_add_header(cli_extras *x, const char *arg) {
  const char *why = bulkup_header_check(arg);
  if (why)
    return cli_usage_error("upload", "--header '%s': %s", arg, why);
  size_t cap = x->nheaders;
  void *p = x->headers;
  if (!cli_grow(&p, &cap, x->nheaders + 1, sizeof *x->headers, 8))
    return cli_usage_error("upload", "out of memory");
  x->headers = p;
  x->headers[x->nheaders++] = arg;
  return 0;
}

int extras_add_metadata(cli_extras *x, const char *arg) {
  const char *eq = strchr(arg, '=');
  size_t kl = eq ? (size_t)(eq - arg) : 0;
  for (size_t i = 0; i < kl; i++) {
    char c = arg[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '_'))
      kl = 0;
  }
  if (kl == 0)
    return cli_usage_error("upload",
                           "--metadata '%s': expected KEY=VALUE, KEY made of "
                           "letters, digits, '-' and '_'",
                           arg);
  char line[128];
  snprintf(line, sizeof line, "x-meta: %s", eq + 1);
  const char *why = bulkup_header_check(line);
  if (why || strlen(eq + 1) > 8192)
    return cli_usage_error("upload", "--metadata '%.*s': the value %s",
                           (int)kl, arg,
                           why ? (strstr(why, "empty") ? "is empty"
                                                       : "holds a control "
                                                         "character")
                               : "is too long");
  /* Only the start of a long value was checked above. */
  for (const unsigned char *p = (const unsigned char *)eq + 1; *p; p++)
    if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
      return cli_usage_error("upload",
                             "--metadata '%.*s': the value holds a control "
                             "character",
                             (int)kl, arg);
  size_t cap = x->nmeta;
  void *p = x->meta;
  if (!cli_grow(&p, &cap, x->nmeta + 1, sizeof *x->meta, 8))
    return cli_usage_error("upload", "out of memory");
  x->meta = p;
  x->meta[x->nmeta++] = (cli_meta){arg, kl, eq + 1};
  return 0;
}

void extras_free(cli_extras *x) {
  free(x->headers);
  free(x->meta);
  free(x->to_resolved);
  memset(x, 0, sizeof *x);
}

bool extras_is_az(const char *url) {
  return url && strncasecmp(url, "az://", 5) == 0;
}

/* Whether the http(s) URL's host is `host` or ends in ".host". */
static bool host_is(const char *url, const char *host) {
  const char *p = strstr(url, "://");
  if (!p)
    return false;
  p += 3;
  size_t n = strcspn(p, "/?#:");
  const char *at = memchr(p, '@', n);
  if (at) {
    n -= (size_t)(at + 1 - p);
    p = at + 1;
    n = strcspn(p, "/?#:");
  }
  size_t hl = strlen(host);
  return n >= hl && strncasecmp(p + n - hl, host, hl) == 0 &&
         (n == hl || p[n - hl - 1] == '.');
}

const char *extras_meta_prefix(const char *dest, const char *url) {
  if (extras_is_az(dest) || bulkup_azure_url(dest) ||
      (url && bulkup_azure_url(url)))
    return "x-ms-meta-";
  if ((dest && strncasecmp(dest, "gs://", 5) == 0) ||
      (dest && host_is(dest, "storage.googleapis.com")) ||
      (url && host_is(url, "storage.googleapis.com")))
    return "x-goog-meta-";
  return "x-amz-meta-";
}

/* Append `line` (taking it), dropping earlier lines of the same name. */
static bool put_line(hdrlist *h, char *line) {
  if (!line)
    return false;
  size_t nl = strcspn(line, ":");
  size_t w = 0;
  for (size_t i = 0; i < h->n; i++) {
    if (strncasecmp(h->lines[i], line, nl) == 0 && h->lines[i][nl] == ':')
      free(h->lines[i]);
    else
      h->lines[w++] = h->lines[i];
  }
  h->n = w;
  void *p = h->lines;
  if (!cli_grow(&p, &h->cap, h->n + 2, sizeof *h->lines, 8)) {
    free(line);
    return false;
  }
  h->lines = p;
  h->lines[h->n++] = line;
  h->lines[h->n] = NULL;
  return true;
}

const char *const *extras_item_headers(const cli_extras *x, const char *dest,
                                       const char *url,
                                       const char *const *line_headers,
                                       hdrlist *h, bool *oom) {
  memset(h, 0, sizeof *h);
  *oom = false;
  bool ok = true;
  for (size_t i = 0; ok && i < x->nheaders; i++)
    ok = put_line(h, strdup(x->headers[i]));
  if (x->nmeta) {
    const char *prefix = extras_meta_prefix(dest, url);
    for (size_t i = 0; ok && i < x->nmeta; i++) {
      const cli_meta *m = &x->meta[i];
      size_t n = strlen(prefix) + m->key_len + 2 + strlen(m->value) + 1;
      char *line = malloc(n);
      if (line)
        snprintf(line, n, "%s%.*s: %s", prefix, (int)m->key_len, m->key,
                 m->value);
      ok = put_line(h, line);
    }
  }
  for (size_t i = 0; ok && line_headers && line_headers[i]; i++)
    ok = put_line(h, strdup(line_headers[i]));
  if (!ok) {
    hdrlist_free(h);
    *oom = true;
    return NULL;
  }
  return h->n ? (const char *const *)h->lines : NULL;
}

void hdrlist_free(hdrlist *h) {
  for (size_t i = 0; i < h->n; i++)
    free(h->lines[i]);
  free(h->lines);
  memset(h, 0, sizeof *h);
}

char *extras_resolve_az(const cli_extras *x, const char *az, char *err,
                        size_t errlen) {
  if (!x->azure_sas || !*x->azure_sas) {
    snprintf(err, errlen,
             "%.200s: an az:// destination needs a SAS token (--azure-sas "
             "TOKEN or $AZURE_STORAGE_SAS_TOKEN)",
             az);
    return NULL;
  }
  char *out = NULL;
  if (bulkup_azure_resolve(az, x->azure_sas, x->azure_endpoint, false, &out) !=
      BULKUP_OK) {
    snprintf(err, errlen, "%.200s: %s", az, bulkup_last_error_message());
    return NULL;
  }
  /* The caller frees with free(): copy out of the library's allocator. */
  char *copy = strdup(out);
  bulkup_free(out);
  if (!copy)
    snprintf(err, errlen, "out of memory");
  return copy;
}

int extras_check(cli_extras *x, const char *to, bool workflow) {
  if (workflow && (x->nheaders || x->nmeta || x->azure_sas ||
                   x->azure_endpoint))
    return cli_usage_error(
        "upload", "--%s is for --to and --manifest: the workflow PUTs to the "
                  "signed URLs the API gives, with the headers they were "
                  "signed for",
        x->nheaders ? "header"
        : x->nmeta  ? "metadata"
        : x->azure_sas ? "azure-sas"
                       : "azure-endpoint");
  if (!x->azure_sas) {
    const char *env = getenv("AZURE_STORAGE_SAS_TOKEN");
    if (env && *env)
      x->azure_sas = env;
  }
  if (x->azure_endpoint) {
    char *out = NULL;
    if (bulkup_azure_resolve("az://a/c", NULL, x->azure_endpoint, true,
                             &out) != BULKUP_OK)
      return cli_usage_error("upload", "--azure-endpoint '%s': %s",
                             x->azure_endpoint, bulkup_last_error_message());
    bulkup_free(out);
  }
  if (to && extras_is_az(to)) {
    if (!x->azure_sas)
      return cli_usage_error("upload",
                             "--to %s: an az:// destination needs a SAS token "
                             "(--azure-sas TOKEN or $AZURE_STORAGE_SAS_TOKEN)",
                             to);
    char *out = NULL;
    if (bulkup_azure_resolve(to, NULL, x->azure_endpoint, true, &out) !=
        BULKUP_OK)
      return cli_usage_error("upload", "--to %s: %s", to,
                             bulkup_last_error_message());
    x->to_resolved = strdup(out);
    bulkup_free(out);
    if (!x->to_resolved)
      return cli_usage_error("upload", "out of memory");
  }
  if (x->azure_sas) {
    char *out = NULL;
    if (bulkup_azure_resolve("az://a/c/b", x->azure_sas, NULL, false, &out) !=
        BULKUP_OK)
      return cli_usage_error("upload", "--azure-sas: %s",
                             bulkup_last_error_message());
    bulkup_free(out);
  }
  return 0;
}

char *extras_to_url(const cli_extras *x, const char *to, const char *rel) {
  if (!x->to_resolved)
    return urlenc_join(to, rel);
  char *u = urlenc_join(x->to_resolved, rel);
  if (!u)
    return NULL;
  const char *sas = x->azure_sas[0] == '?' ? x->azure_sas + 1 : x->azure_sas;
  size_t n = strlen(u) + 1 + strlen(sas) + 1;
  char *v = malloc(n);
  if (v)
    snprintf(v, n, "%s?%s", u, sas);
  free(u);
  return v;
}
