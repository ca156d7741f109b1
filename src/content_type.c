/* content_type.c - where a Content-Type is chosen: from the item's data
 * type and its file name's (or URL path's) extension. */
#include "internal.h"
#include "util/str.h"

#include <strings.h>

static const struct {
  const char *ext;
  const char *type;
} bk_image_types[] = {
    {"jpg", "image/jpeg"},  {"jpeg", "image/jpeg"}, {"jpe", "image/jpeg"},
    {"png", "image/png"},   {"gif", "image/gif"},   {"bmp", "image/bmp"},
    {"webp", "image/webp"}, {"tif", "image/tiff"},  {"tiff", "image/tiff"},
    {"avif", "image/avif"}, {"heic", "image/heic"}, {"heif", "image/heif"},
    {"svg", "image/svg+xml"}, {"ico", "image/vnd.microsoft.icon"},
};

static const char *bk_extension(const char *name) {
  if (!name)
    return NULL;
  const char *base = bk_basename(name);
  const char *dot = strrchr(base, '.');
  return (dot && dot != base) ? dot + 1 : NULL;
}

const char *bulkup_content_type_for(bulkup_data_type type, const char *name) {
  switch (type) {
  case BULKUP_DATA_TYPE_IMAGE:
  case BULKUP_DATA_TYPE_IMG_GROUP: {
    const char *ext = bk_extension(name);
    if (ext)
      for (size_t i = 0; i < BK_ARRAY_LEN(bk_image_types); i++)
        if (strcasecmp(ext, bk_image_types[i].ext) == 0)
          return bk_image_types[i].type;
    return "application/octet-stream";
  }
  case BULKUP_DATA_TYPE_DICOM:
  case BULKUP_DATA_TYPE_DICOM_STUDY:
    return "application/dicom";
  case BULKUP_DATA_TYPE_PDF:
    return "application/pdf";
  case BULKUP_DATA_TYPE_PLAIN_TEXT:
    return "text/plain";
  case BULKUP_DATA_TYPE_VIDEO:
  case BULKUP_DATA_TYPE_AUDIO:
  default:
    return "application/octet-stream";
  }
}
