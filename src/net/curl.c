/* net/curl.c - libcurl's global init, header lists, the common option
 * block and the scheme check (net/curl.h). */
#include "bulkup.h"
#include "util/alloc.h"
#include "util/base.h"
#include "util/error.h"
#include "net/curl.h"

#include <pthread.h>
#include <string.h>

#include <limits.h>
#include <math.h>
#include <strings.h>

static pthread_once_t bk_curl_once = PTHREAD_ONCE_INIT;
static CURLcode bk_curl_init_rc = CURLE_FAILED_INIT;

static void bk_curl_global_init_once(void) {
  /* Once per process, before any worker exists. Never cleaned up:
   * curl_global_cleanup is not thread-safe and the process may still
   * use libcurl elsewhere. libcurl allocates through bulkup's hook, so the
   * allocation-failure tests reach inside it. */
  bk_curl_init_rc =
      curl_global_init_mem(CURL_GLOBAL_DEFAULT, bk_curl_malloc, bk_curl_free,
                           bk_curl_realloc, bk_curl_strdup, bk_curl_calloc);
}

bulkup_err bk_curl_global_init(void) {
  pthread_once(&bk_curl_once, bk_curl_global_init_once);
  if (bk_curl_init_rc != CURLE_OK)
    return bk_error(BULKUP_ECURL, "curl_global_init failed: %s",
                    curl_easy_strerror(bk_curl_init_rc));
  return BULKUP_OK;
}

struct curl_slist *bk_slist_add(struct curl_slist *l, const char *h,
                                bool *ok) {
  if (!*ok)
    return l;
  struct curl_slist *n = curl_slist_append(l, h);
  if (!n) {
    *ok = false;
    return l;
  }
  return n;
}

long bk_curl_ms(double seconds) {
  if (seconds <= 0)
    return 0;
  double ms = ceil(seconds * 1000.0);
  return ms > (double)LONG_MAX / 2 ? LONG_MAX / 2 : (long)ms;
}

bool bk_url_scheme_ok(const char *url) {
  return strncasecmp(url, "http://", 7) == 0 ||
         strncasecmp(url, "https://", 8) == 0;
}

CURLcode bk_curl_setup_common(CURL *e, const bk_curl_common *c) {
  CURLcode rc = CURLE_OK;
#define BK_SET(opt, val)                                                      \
  do {                                                                        \
    if (rc == CURLE_OK)                                                       \
      rc = curl_easy_setopt(e, opt, val);                                     \
  } while (0)
  BK_SET(CURLOPT_NOSIGNAL, 1L);
  BK_SET(CURLOPT_PROTOCOLS_STR, "http,https");
  BK_SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  BK_SET(CURLOPT_FOLLOWLOCATION, 0L);
  long cto = bk_curl_ms(c->connect_timeout);
  BK_SET(CURLOPT_CONNECTTIMEOUT_MS, cto ? cto : LONG_MAX / 2);
  BK_SET(CURLOPT_SSL_VERIFYPEER, c->insecure ? 0L : 1L);
  BK_SET(CURLOPT_SSL_VERIFYHOST, c->insecure ? 0L : 2L);
  if (c->ca_file)
    BK_SET(CURLOPT_CAINFO, c->ca_file);
  if (c->user_agent)
    BK_SET(CURLOPT_USERAGENT, c->user_agent);
  if (c->errbuf)
    BK_SET(CURLOPT_ERRORBUFFER, c->errbuf);
#undef BK_SET
  return rc;
}
