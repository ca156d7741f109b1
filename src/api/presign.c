/* presign.c - GET /v2/public/presigned-urls (ENCORD_WIRE.md §4): the
 * request target in the SDK's parameter order and the answer, read in
 * either casing. */
#include "internal.h"
#include "client.h"
#include "presign.h"

#include <stdio.h>
#include <strings.h>

const char *bk_upload_item_type(bulkup_data_type type) {
  switch (type) {
  case BULKUP_DATA_TYPE_IMAGE:
  case BULKUP_DATA_TYPE_IMG_GROUP:
    return "image";
  case BULKUP_DATA_TYPE_VIDEO:
    return "video";
  case BULKUP_DATA_TYPE_DICOM:
    return "dicomFile";
  default:
    return NULL;
  }
}

bulkup_err bk_presign_target(bulkup_data_type type, size_t count, char *out,
                             size_t outsz) {
  const char *t = bk_upload_item_type(type);
  if (!t)
    return bk_error(BULKUP_EINVAL, "presign takes an image, video or DICOM "
                    "type (the SDK's uploadItemType image, video, "
                    "dicomFile)");
  int n = snprintf(out, outsz,
                   "/v2/public/presigned-urls?count=%zu&uploadItemType=%s",
                   count, t);
  if (n < 0 || (size_t)n >= outsz)
    return bk_error(BULKUP_EINVAL, "presign target too long");
  return BULKUP_OK;
}

static bulkup_err bk_presign_from_json(json_object *root, size_t count,
                                      bulkup_signed_url **out);

void bulkup_signed_urls_free(bulkup_signed_url *v, size_t n) {
  if (!v)
    return;
  for (size_t i = 0; i < n; i++) {
    bk_free(v[i].item_uuid);
    bk_free(v[i].object_key);
    bk_free(v[i].signed_url);
  }
  bk_free(v);
}

bulkup_err bulkup_api_presign(bulkup_api *api, bulkup_data_type type,
                              size_t count, bulkup_signed_url **out,
                              size_t *n) {
  if (out)
    *out = NULL;
  if (n)
    *n = 0;
  if (!api || !out || !n)
    return bk_error(BULKUP_EINVAL, "api, out and n must not be NULL");
  if (count < 1 || count > BULKUP_API_MAX_PRESIGN)
    return bk_error(BULKUP_EINVAL, "count must be between 1 and %d (got %zu)",
                    BULKUP_API_MAX_PRESIGN, count);
  char target[160];
  bulkup_err rc = bk_presign_target(type, count, target, sizeof target);
  if (rc != BULKUP_OK)
    return rc;
  json_object *root;
  rc = bk_api_v2_get(api, target, "GET presigned-urls", &root);
  if (rc != BULKUP_OK)
    return rc;
  rc = bk_presign_from_json(root, count, out);
  json_object_put(root);
  if (rc == BULKUP_OK)
    *n = count;
  return rc;
}

static bulkup_err bk_presign_from_json(json_object *root, size_t count,
                                      bulkup_signed_url **out) {
  *out = NULL;
  bulkup_err rc = BULKUP_OK;
  json_object *results = bk_json_get2(root, "results", NULL);
  if (!results || !json_object_is_type(results, json_type_array)) {
    return bk_error(BULKUP_EPROTOCOL, "presigned-urls: the answer has no "
                    "\"results\" array");
  }
  size_t got = json_object_array_length(results);
  if (got != count) {
    return bk_error(BULKUP_EPROTOCOL, "presigned-urls: asked for %zu signed "
                    "URLs, the API returned %zu", count, got);
  }
  bulkup_signed_url *v = bk_calloc(count ? count : 1, sizeof *v);
  if (!v)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  for (size_t i = 0; i < count; i++) {
    json_object *e = json_object_array_get_idx(results, i);
    const char *uuid = NULL, *key = NULL, *url = NULL;
    if (json_object_is_type(e, json_type_object)) {
      uuid = bk_json_str2(e, "itemUuid", "item_uuid", 256);
      key = bk_json_str2(e, "objectKey", "object_key", 4096);
      url = bk_json_str2(e, "signedUrl", "signed_url", 65536);
    }
    char canon[37];
    if (!uuid || !key || !url) {
      rc = bk_error(BULKUP_EPROTOCOL, "presigned-urls: result %zu lacks a "
                    "valid itemUuid, objectKey or signedUrl", i);
      break;
    }
    if (!bk_uuid_canon(uuid, canon)) {
      rc = bk_error(BULKUP_EPROTOCOL, "presigned-urls: result %zu: itemUuid "
                    "is not a UUID", i);
      break;
    }
    if (!bk_http_url(url)) {
      rc = bk_error(BULKUP_EPROTOCOL, "presigned-urls: result %zu: the "
                    "signed URL is not an http or https URL; refused", i);
      break;
    }
    v[i].item_uuid = bk_strdup(canon);
    v[i].object_key = bk_strdup(key);
    v[i].signed_url = bk_strdup(url);
    if (!v[i].item_uuid || !v[i].object_key || !v[i].signed_url) {
      rc = bk_error(BULKUP_ENOMEM, "out of memory");
      break;
    }
  }
  if (rc != BULKUP_OK) {
    bulkup_signed_urls_free(v, count);
    return rc;
  }
  *out = v;
  return BULKUP_OK;
}

bulkup_err bk_api_parse_presign(const char *body, size_t len, size_t count,
                                bulkup_signed_url **out) {
  *out = NULL;
  json_object *root;
  bulkup_err rc = bk_json_parse("presigned-urls", body, len, &root);
  if (rc != BULKUP_OK)
    return rc;
  rc = bk_presign_from_json(root, count, out);
  json_object_put(root);
  return rc;
}
