/* cloud/s3_multipart.c - S3 multipart upload's wire format: the request
 * URLs (CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
 * AbortMultipartUpload), the Complete body, and the UploadId of the
 * Create answer. The engine (src/engine/parts.c) sends them. */
#include "internal.h"
#include "cloud/multipart.h"
#include "util/str.h"

#include <stdio.h>

char *bk_url_with_query(const char *url, const char *query) {
  size_t ul = strcspn(url, "#");
  size_t ql = strlen(query);
  char *out = bk_malloc(ul + ql + 2);
  if (!out)
    return NULL;
  memcpy(out, url, ul);
  out[ul] = memchr(url, '?', ul) ? '&' : '?';
  memcpy(out + ul + 1, query, ql + 1);
  return out;
}

char *bk_s3_create_url(const char *url) {
  return bk_url_with_query(url, "uploads");
}

char *bk_s3_upload_url(const char *url, const char *upload_id) {
  size_t n = strlen(upload_id);
  char *enc = bk_malloc(3 * n + 16);
  if (!enc)
    return NULL;
  memcpy(enc, "uploadId=", 9);
  bk_pct_encode(upload_id, n, enc + 9, BK_PCT_UNRESERVED);
  char *out = bk_url_with_query(url, enc);
  bk_free(enc);
  return out;
}

char *bk_s3_part_url(const char *url, unsigned part_number,
                     const char *upload_id) {
  size_t n = strlen(upload_id);
  char *q = bk_malloc(3 * n + 48);
  if (!q)
    return NULL;
  int k = snprintf(q, 48, "partNumber=%u&uploadId=", part_number);
  bk_pct_encode(upload_id, n, q + k, BK_PCT_UNRESERVED);
  char *out = bk_url_with_query(url, q);
  bk_free(q);
  return out;
}

/* The text of the first <tag>...</tag> in xml[0..n), or NULL. */
static const char *bk_xml_text(const char *xml, size_t n, const char *tag,
                               size_t *len) {
  char open[64], close[64];
  snprintf(open, sizeof open, "<%s>", tag);
  snprintf(close, sizeof close, "</%s>", tag);
  const char *a = memmem(xml, n, open, strlen(open));
  if (!a)
    return NULL;
  a += strlen(open);
  const char *b = memmem(a, n - (size_t)(a - xml), close, strlen(close));
  if (!b)
    return NULL;
  *len = (size_t)(b - a);
  return a;
}

char *bk_s3_parse_upload_id(const char *xml, size_t n) {
  size_t len = 0;
  const char *t = bk_xml_text(xml, n, "UploadId", &len);
  if (!t || len == 0)
    return NULL;
  char *out = bk_malloc(len + 1);
  if (!out)
    return NULL;
  /* Unescape the five XML entities; anything else is kept as it is. */
  static const struct {
    const char *e;
    char c;
  } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'},
              {"&quot;", '"'}, {"&apos;", '\''}};
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    bool done = false;
    if (t[i] == '&')
      for (size_t k = 0; k < sizeof ents / sizeof ents[0]; k++) {
        size_t el = strlen(ents[k].e);
        if (i + el <= len && memcmp(t + i, ents[k].e, el) == 0) {
          out[o++] = ents[k].c;
          i += el;
          done = true;
          break;
        }
      }
    if (!done)
      out[o++] = t[i++];
  }
  out[o] = '\0';
  return out;
}

int bk_s3_body_is_error(const char *xml, size_t n) {
  return memmem(xml, n, "<Error>", 7) != NULL;
}

char *bk_s3_complete_body(const char *const *etags, const char (*crcs)[9],
                          unsigned n, size_t *len) {
  static const char head[] = "<CompleteMultipartUpload>";
  static const char tail[] = "</CompleteMultipartUpload>";
  size_t cap = sizeof head + sizeof tail + 1;
  for (unsigned i = 0; i < n; i++)
    cap += 80 + 6 * strlen(etags[i]) + (crcs ? 48 : 0);
  char *out = bk_malloc(cap);
  if (!out)
    return NULL;
  size_t o = 0;
  memcpy(out, head, sizeof head - 1);
  o += sizeof head - 1;
  for (unsigned i = 0; i < n; i++) {
    o += (size_t)snprintf(out + o, cap - o,
                          "<Part><PartNumber>%u</PartNumber><ETag>", i + 1);
    /* XML-escape the ETag (its quotes stay quotes: text content). */
    for (const char *p = etags[i]; *p; p++) {
      const char *r = *p == '&' ? "&amp;" : *p == '<' ? "&lt;"
                                          : *p == '>' ? "&gt;" : NULL;
      if (r) {
        memcpy(out + o, r, strlen(r));
        o += strlen(r);
      } else {
        out[o++] = *p;
      }
    }
    o += (size_t)snprintf(out + o, cap - o, "</ETag>");
    if (crcs) /* base64: nothing to escape */
      o += (size_t)snprintf(out + o, cap - o,
                            "<ChecksumCRC32C>%.8s</ChecksumCRC32C>", crcs[i]);
    o += (size_t)snprintf(out + o, cap - o, "</Part>");
  }
  memcpy(out + o, tail, sizeof tail);
  o += sizeof tail - 1;
  *len = o;
  return out;
}
