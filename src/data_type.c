/*
 * data_type.c - the SDK's DataType enum: values and their upper-case form.
 */
#include "internal.h"

/* Indexed by bulkup_data_type; the order is the header's (and the
 * SDK's member order, which from_upper_case_string iterates). */
static const struct {
  const char *value;
  const char *upper;
} bk_data_types[BULKUP_DATA_TYPE_COUNT] = {
    [BULKUP_DATA_TYPE_VIDEO] = {"video", "VIDEO"},
    [BULKUP_DATA_TYPE_IMG_GROUP] = {"img_group", "IMG_GROUP"},
    [BULKUP_DATA_TYPE_DICOM] = {"dicom", "DICOM"},
    [BULKUP_DATA_TYPE_IMAGE] = {"image", "IMAGE"},
    [BULKUP_DATA_TYPE_DICOM_STUDY] = {"dicom_study", "DICOM_STUDY"},
    [BULKUP_DATA_TYPE_NIFTI] = {"nifti", "NIFTI"},
    [BULKUP_DATA_TYPE_AUDIO] = {"audio", "AUDIO"},
    [BULKUP_DATA_TYPE_PLAIN_TEXT] = {"plain_text", "PLAIN_TEXT"},
    [BULKUP_DATA_TYPE_PDF] = {"pdf", "PDF"},
    [BULKUP_DATA_TYPE_GROUP] = {"group", "GROUP"},
    [BULKUP_DATA_TYPE_SCENE] = {"scene", "SCENE"},
    [BULKUP_DATA_TYPE_MISSING] = {"_MISSING_DATA_TYPE_",
                                  "_MISSING_DATA_TYPE_"},
};

/*
 * DataType(value): an exact match on the value. MISSING's own value is a
 * member value too, so "_MISSING_DATA_TYPE_" maps to MISSING either way.
 */
bulkup_data_type bulkup_data_type_from_string(const char *value) {
  if (!value)
    return BULKUP_DATA_TYPE_MISSING;
  for (int i = 0; i < BULKUP_DATA_TYPE_COUNT; i++)
    if (strcmp(value, bk_data_types[i].value) == 0)
      return (bulkup_data_type)i;
  return BULKUP_DATA_TYPE_MISSING;
}

const char *bulkup_data_type_to_string(bulkup_data_type t) {
  /* Compare as unsigned so that a negative number is out of range too. */
  if ((unsigned)t >= BULKUP_DATA_TYPE_COUNT)
    t = BULKUP_DATA_TYPE_MISSING;
  return bk_data_types[t].value;
}

bulkup_data_type bulkup_data_type_from_upper_case_string(const char *value) {
  if (!value)
    return BULKUP_DATA_TYPE_MISSING;
  for (int i = 0; i < BULKUP_DATA_TYPE_COUNT; i++)
    if (strcmp(value, bk_data_types[i].upper) == 0)
      return (bulkup_data_type)i;
  return BULKUP_DATA_TYPE_MISSING;
}

const char *bulkup_data_type_to_upper_case_string(bulkup_data_type t) {
  if ((unsigned)t >= BULKUP_DATA_TYPE_COUNT)
    t = BULKUP_DATA_TYPE_MISSING;
  return bk_data_types[t].upper;
}
