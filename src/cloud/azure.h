/* cloud/azure.h - what an Azure Blob Storage URL is, and the REST version
 * bulkup speaks to it (azure.c). Shared by the single-PUT headers and the
 * block protocol (azure_blocks.c). */
#ifndef BULKUP_CLOUD_AZURE_H
#define BULKUP_CLOUD_AZURE_H

#include <stdbool.h>

/* The x-ms-version bulkup sends on every Azure request: a version that
 * has Put Block, Put Block List and SAS tokens as Azurite 3.35 and the
 * service implement them. */
#define BK_AZURE_VERSION "2023-11-03"

/* An Azure blob URL: its host ends in ".blob.core.windows.net", or its
 * query has both an "sv=" and a "sig=" parameter (a SAS, as Azurite and
 * other endpoints use). */
bool bk_azure_url(const char *url);

#endif
