/* cloud/azure_blocks.c - Azure Blob Storage's block protocol, wire
 * format: Put Block's URL and block IDs, Put Block List's URL and body.
 * The engine (src/engine/parts.c) sends them, with x-ms-version
 * (cloud/azure.h) on each. */
#include "internal.h"
#include "cloud/multipart.h"
#include "util/str.h"

#include <stdio.h>

void bk_azure_block_id(unsigned index, char out[9]) {
  char digits[8];
  snprintf(digits, sizeof digits, "%06u", index % 1000000u);
  bk_b64_encode(digits, 6, out);
}

char *bk_azure_block_url(const char *url, unsigned index) {
  char id[9], enc[32], q[64];
  bk_azure_block_id(index, id);
  bk_pct_encode(id, strlen(id), enc, BK_PCT_UNRESERVED);
  snprintf(q, sizeof q, "comp=block&blockid=%s", enc);
  return bk_url_with_query(url, q);
}

char *bk_azure_blocklist_url(const char *url) {
  return bk_url_with_query(url, "comp=blocklist");
}

char *bk_azure_blocklist_body(unsigned n, size_t *len) {
  static const char head[] =
      "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>";
  static const char tail[] = "</BlockList>";
  size_t cap = sizeof head + sizeof tail + (size_t)n * 32 + 1;
  char *out = bk_malloc(cap);
  if (!out)
    return NULL;
  size_t o = sizeof head - 1;
  memcpy(out, head, o);
  for (unsigned i = 0; i < n; i++) {
    char id[9];
    bk_azure_block_id(i, id);
    o += (size_t)snprintf(out + o, cap - o, "<Latest>%s</Latest>", id);
  }
  memcpy(out + o, tail, sizeof tail);
  *len = o + sizeof tail - 1;
  return out;
}
