/*
 * bulkup/data_type.h - the platform's data types (the SDK's DataType enum).
 */
#ifndef BULKUP_DATA_TYPE_H
#define BULKUP_DATA_TYPE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The data types, with their string values. The first five are the
 * seed's; the next six were added by later SDK releases. MISSING stands
 * for any value this version does not know ("_MISSING_DATA_TYPE_").
 * The numeric values are stable.
 */
typedef enum bulkup_data_type {
  BULKUP_DATA_TYPE_VIDEO = 0,       /* "video" */
  BULKUP_DATA_TYPE_IMG_GROUP = 1,   /* "img_group" */
  BULKUP_DATA_TYPE_DICOM = 2,       /* "dicom" */
  BULKUP_DATA_TYPE_IMAGE = 3,       /* "image" */
  BULKUP_DATA_TYPE_DICOM_STUDY = 4, /* "dicom_study" */
  BULKUP_DATA_TYPE_NIFTI = 5,       /* "nifti" */
  BULKUP_DATA_TYPE_AUDIO = 6,       /* "audio" */
  BULKUP_DATA_TYPE_PLAIN_TEXT = 7,  /* "plain_text" */
  BULKUP_DATA_TYPE_PDF = 8,         /* "pdf" */
  BULKUP_DATA_TYPE_GROUP = 9,       /* "group" */
  BULKUP_DATA_TYPE_SCENE = 10,      /* "scene" */
  BULKUP_DATA_TYPE_MISSING = 11     /* "_MISSING_DATA_TYPE_" */
} bulkup_data_type;

/* Number of values in bulkup_data_type, MISSING included. */
#define BULKUP_DATA_TYPE_COUNT 12

/*
 * bulkup_data_type_from_string - the type whose value is exactly `value`
 * ("image" gives IMAGE); anything else, NULL and "IMAGE" included, gives
 * BULKUP_DATA_TYPE_MISSING (the SDK's DataType(value) with _missing_).
 */
BULKUP_EXTERN bulkup_data_type bulkup_data_type_from_string(const char *value);

/*
 * bulkup_data_type_to_string - the value ("img_group"); an out-of-range
 * number gives "_MISSING_DATA_TYPE_". Static storage.
 */
BULKUP_EXTERN const char *bulkup_data_type_to_string(bulkup_data_type t);

/*
 * bulkup_data_type_from_upper_case_string - the type whose upper-cased
 * value equals `value` exactly ("IMG_GROUP" gives IMG_GROUP); anything
 * else, NULL and lower case included, gives MISSING.
 */
BULKUP_EXTERN bulkup_data_type
bulkup_data_type_from_upper_case_string(const char *value);

/*
 * bulkup_data_type_to_upper_case_string - the value upper-cased
 * ("IMG_GROUP", "_MISSING_DATA_TYPE_"). Static storage.
 */
BULKUP_EXTERN const char *
bulkup_data_type_to_upper_case_string(bulkup_data_type t);

#ifdef __cplusplus
}
#endif
#endif /* BULKUP_DATA_TYPE_H */
