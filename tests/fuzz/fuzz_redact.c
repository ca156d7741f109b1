/* libFuzzer target: URL redaction, URL identity and free-text redaction. Whatever the URL, the value of a
 * sig/signature/token parameter never survives. */
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* The input is used as a URL, and again as a parameter value. */
  char *s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  char *r = bulkup_redact_url(s);
  if (!r)
    abort();
  free(r);
  r = bulkup_url_identity(s);
  if (!r)
    abort();
  free(r);
  /* Free text (an error body): any bytes, NULs included. */
  size_t tn = 0;
  char *t = bk_redact_text((const char *)data, size, &tn);
  if (!t || t[tn] != '\0')
    abort();
  free(t);
  /* A secret made of the input's safe bytes must vanish. */
  size_t n = strcspn(s, "&;#=?%");
  if (n >= 4) {
    char *url = malloc(n + 64);
    if (url) {
      snprintf(url, n + 64, "https://h/p?a=1&signature=%.*s&b=2", (int)n, s);
      char *red = bulkup_redact_url(url);
      if (!red)
        abort();
      char *secret = malloc(n + 16);
      snprintf(secret, n + 16, "signature=%.*s&", (int)n, s);
      if (strstr(red, secret) && strcmp(secret, "signature=REDACTED&") != 0)
        abort();
      free(secret);
      free(red);
      free(url);
    }
  }
  free(s);
  return 0;
}
