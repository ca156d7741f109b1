/* presign.h - the v2 signed upload URLs (internal; ENCORD_WIRE.md §4). */
#ifndef BULKUP_API_PRESIGN_H
#define BULKUP_API_PRESIGN_H

#include "internal.h"

/* The uploadItemType the SDK sends for a data type: "image" (IMAGE,
 * IMG_GROUP), "video", "dicomFile" (DICOM); NULL for the others. */
const char *bk_upload_item_type(bulkup_data_type type);

/* The request target of a presign: "/v2/public/presigned-urls?count=N&
 * uploadItemType=T" (params in the SDK's order) into out. */
bulkup_err bk_presign_target(bulkup_data_type type, size_t count, char *out,
                             size_t outsz);

/* Parse a presign answer (either casing, §3): it must hold exactly
 * `count` results, each with a UUID itemUuid, an objectKey and an http(s)
 * signedUrl; *out is freed with bulkup_signed_urls_free(count). The
 * fuzzing entry point. */
bulkup_err bk_api_parse_presign(const char *body, size_t len, size_t count,
                                bulkup_signed_url **out);

#endif
