/* cloud/azure.h - Azure Blob Storage (cloud/azure.c): which URLs are Azure
 * blobs, and the headers every request to one needs. Library only; calls
 * the utility and net layers, nothing above (scripts/check-layers). The
 * public part is include/bulkup/azure.h. */
#ifndef BK_CLOUD_AZURE_H
#define BK_CLOUD_AZURE_H

#include "internal.h"

#include <curl/curl.h>

/* The x-ms-version sent on every Azure request (Put Blob, Put Block, Put
 * Block List). */
#define BK_AZURE_VERSION BULKUP_AZURE_VERSION

/* bulkup_azure_url(): the host ends in .blob.core.windows.net, or the
 * query has sv= and sig=. */
bool bk_azure_url(const char *url);

/* Append to `h` the headers an Azure request needs that the item's own
 * `item_headers` (NULL-ended "Name: value" lines, may be NULL) do not
 * set: x-ms-version: BK_AZURE_VERSION always, and with `put_blob` (a
 * whole blob in one request, not a Put Block or Put Block List)
 * x-ms-blob-type: BlockBlob. Same contract as bk_slist_add: on allocation
 * failure *ok turns false. */
struct curl_slist *bk_azure_add_headers(struct curl_slist *h,
                                        const char *const *item_headers,
                                        bool put_blob, bool *ok);

#endif
