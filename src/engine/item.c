/* engine/item.c - an item: bulkup_item_init, and the queued copy of a
 * submitted one (one allocation, the strings after the struct, its title,
 * Content-Type and Cache-Control resolved). */
#include "internal.h"
#include "engine/engine.h"
#include "util/str.h"
#include "cloud/azure.h"

void bulkup_item_init(bulkup_item *item) {
  memset(item, 0, sizeof *item);
  item->source = BULKUP_SOURCE_FILE;
  item->data_type = BULKUP_DATA_TYPE_IMAGE;
}

/* The last segment of a URL's path, without query or fragment. */
static size_t bk_url_tail(const char *url, const char **start) {
  const char *scheme = strstr(url, "://");
  const char *p = scheme ? scheme + 3 : url;
  size_t plen = strcspn(p, "?#");
  const char *end = p + plen;
  const char *s = end;
  while (s > p && s[-1] != '/')
    s--;
  if (s == p) { /* no path at all: the host */
    *start = p;
    return plen;
  }
  *start = s;
  return (size_t)(end - s);
}

bk_item *bk_item_new(const bulkup_item *it, const char *message) {
  const char *title = it->title;
  size_t title_len;
  const char *url = it->url ? it->url : "";
  if (title) {
    title_len = strlen(title);
  } else if ((it->source == BULKUP_SOURCE_FILE || message) && it->path) {
    title = bk_basename(it->path);
    title_len = strlen(title);
  } else {
    title_len = bk_url_tail(url, &title);
  }
  const char *ctype = it->content_type
                          ? it->content_type
                          : bulkup_content_type_for(
                                it->data_type,
                                it->source == BULKUP_SOURCE_FILE ? it->path
                                                                 : url);
  /* The URL's path decides for memory sources, so strip the query: */
  const char *cache = it->cache_control ? it->cache_control : "max-age=86400";
  if (!*cache)
    cache = NULL;
  size_t nh = 0;
  size_t total = sizeof(bk_item);
  if (it->headers)
    while (it->headers[nh])
      total += strlen(it->headers[nh++]) + 1;
  total += (nh + 1) * sizeof(char *);
  size_t lpath = it->path && (it->source == BULKUP_SOURCE_FILE || message)
                     ? strlen(it->path) + 1
                     : 0;
  size_t lurl = strlen(url) + 1;
  size_t lmsg = message ? strlen(message) + 1 : 0;
  size_t ljk = it->journal_key && !message ? strlen(it->journal_key) + 1 : 0;
  size_t lct = strlen(ctype) + 1;
  size_t lcc = cache ? strlen(cache) + 1 : 0;
  total += lpath + lurl + title_len + 1 + lct + lcc + lmsg + ljk;

  bk_item *j = bk_malloc(total);
  if (!j)
    return NULL;
  memset(j, 0, sizeof *j);
  char **hdrs = (char **)(j + 1);
  char *w = (char *)(hdrs + nh + 1);
#define BK_PUT(dst, src, n)                                                   \
  do {                                                                        \
    memcpy(w, src, n);                                                        \
    dst = w;                                                                  \
    w += n;                                                                   \
  } while (0)
  if (lpath)
    BK_PUT(j->path, it->path, lpath);
  BK_PUT(j->url, url, lurl);
  if (lmsg)
    BK_PUT(j->prefail_message, message, lmsg);
  if (ljk)
    BK_PUT(j->journal_key, it->journal_key, ljk);
  j->storage = it->storage;
  if (j->storage == BULKUP_STORAGE_AUTO)
    j->storage = bk_azure_url(url) ? BULKUP_STORAGE_AZURE : BULKUP_STORAGE_HTTP;
  memcpy(w, title, title_len);
  w[title_len] = '\0';
  j->title = w;
  w += title_len + 1;
  BK_PUT(j->content_type, ctype, lct);
  if (cache)
    BK_PUT(j->cache_control, cache, lcc);
  for (size_t i = 0; i < nh; i++) {
    size_t l = strlen(it->headers[i]) + 1;
    memcpy(w, it->headers[i], l);
    hdrs[i] = w;
    w += l;
  }
#undef BK_PUT
  hdrs[nh] = NULL;
  j->headers = nh ? (const char **)hdrs : NULL;
  j->source = it->source;
  j->data = it->data;
  j->size = it->size;
  j->read = it->read;
  j->read_ctx = it->read_ctx;
  j->user = it->user;
  return j;
}
