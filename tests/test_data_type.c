#include "bk_test.h"
#include "internal.h"

static const struct {
  bulkup_data_type type;
  const char *value;
  const char *upper;
} cases[] = {
    {BULKUP_DATA_TYPE_VIDEO, "video", "VIDEO"},
    {BULKUP_DATA_TYPE_IMG_GROUP, "img_group", "IMG_GROUP"},
    {BULKUP_DATA_TYPE_DICOM, "dicom", "DICOM"},
    {BULKUP_DATA_TYPE_IMAGE, "image", "IMAGE"},
    {BULKUP_DATA_TYPE_DICOM_STUDY, "dicom_study", "DICOM_STUDY"},
    {BULKUP_DATA_TYPE_NIFTI, "nifti", "NIFTI"},
    {BULKUP_DATA_TYPE_AUDIO, "audio", "AUDIO"},
    {BULKUP_DATA_TYPE_PLAIN_TEXT, "plain_text", "PLAIN_TEXT"},
    {BULKUP_DATA_TYPE_PDF, "pdf", "PDF"},
    {BULKUP_DATA_TYPE_GROUP, "group", "GROUP"},
    {BULKUP_DATA_TYPE_SCENE, "scene", "SCENE"},
    {BULKUP_DATA_TYPE_MISSING, "_MISSING_DATA_TYPE_", "_MISSING_DATA_TYPE_"},
};

static void test_numeric_values_stable(void) {
  CU_ASSERT_EQUAL(BK_ARRAY_LEN(cases), BULKUP_DATA_TYPE_COUNT);
  for (size_t i = 0; i < BK_ARRAY_LEN(cases); i++)
    CU_ASSERT_EQUAL((int)cases[i].type, (int)i);
}

static void test_to_string(void) {
  for (size_t i = 0; i < BK_ARRAY_LEN(cases); i++) {
    CU_ASSERT_STRING_EQUAL(bulkup_data_type_to_string(cases[i].type),
                           cases[i].value);
    CU_ASSERT_STRING_EQUAL(bulkup_data_type_to_upper_case_string(cases[i].type),
                           cases[i].upper);
  }
}

static void test_from_string(void) {
  for (size_t i = 0; i < BK_ARRAY_LEN(cases); i++)
    CU_ASSERT_EQUAL(bulkup_data_type_from_string(cases[i].value),
                    cases[i].type);
}

static void test_from_upper_case_string(void) {
  for (size_t i = 0; i < BK_ARRAY_LEN(cases); i++)
    CU_ASSERT_EQUAL(bulkup_data_type_from_upper_case_string(cases[i].upper),
                    cases[i].type);
}

static void test_round_trips(void) {
  for (int t = 0; t < BULKUP_DATA_TYPE_COUNT; t++) {
    bulkup_data_type dt = (bulkup_data_type)t;
    CU_ASSERT_EQUAL(
        bulkup_data_type_from_string(bulkup_data_type_to_string(dt)), dt);
    CU_ASSERT_EQUAL(bulkup_data_type_from_upper_case_string(
                        bulkup_data_type_to_upper_case_string(dt)),
                    dt);
  }
}

static void test_case_sensitivity(void) {
  /* DataType(value) is an exact match on the lower-case value. */
  CU_ASSERT_EQUAL(bulkup_data_type_from_string("IMAGE"),
                  BULKUP_DATA_TYPE_MISSING);
  CU_ASSERT_EQUAL(bulkup_data_type_from_string("Image"),
                  BULKUP_DATA_TYPE_MISSING);
  CU_ASSERT_EQUAL(bulkup_data_type_from_string("IMG_GROUP"),
                  BULKUP_DATA_TYPE_MISSING);
  /* from_upper_case_string compares against value.upper() exactly. */
  CU_ASSERT_EQUAL(bulkup_data_type_from_upper_case_string("image"),
                  BULKUP_DATA_TYPE_MISSING);
  CU_ASSERT_EQUAL(bulkup_data_type_from_upper_case_string("Image"),
                  BULKUP_DATA_TYPE_MISSING);
  CU_ASSERT_EQUAL(bulkup_data_type_from_upper_case_string("img_group"),
                  BULKUP_DATA_TYPE_MISSING);
  CU_ASSERT_EQUAL(bulkup_data_type_from_upper_case_string("IMG_GROUP"),
                  BULKUP_DATA_TYPE_IMG_GROUP);
  CU_ASSERT_EQUAL(bulkup_data_type_from_upper_case_string("PLAIN_TEXT"),
                  BULKUP_DATA_TYPE_PLAIN_TEXT);
  /* MISSING's value is already upper case; it matches both ways. */
  CU_ASSERT_EQUAL(bulkup_data_type_from_upper_case_string("_MISSING_DATA_TYPE_"),
                  BULKUP_DATA_TYPE_MISSING);
  CU_ASSERT_EQUAL(bulkup_data_type_from_string("_MISSING_DATA_TYPE_"),
                  BULKUP_DATA_TYPE_MISSING);
  CU_ASSERT_EQUAL(bulkup_data_type_from_string("_missing_data_type_"),
                  BULKUP_DATA_TYPE_MISSING);
}

static void test_unknowns(void) {
  static const char *const unknown[] = {
      "",       "vide",   "videos", " video", "video ", "img-group",
      "imggroup", "IMG GROUP", "point_cloud", "dicom_studies", "d",
      "video\n"};
  for (size_t i = 0; i < BK_ARRAY_LEN(unknown); i++) {
    CU_ASSERT_EQUAL(bulkup_data_type_from_string(unknown[i]),
                    BULKUP_DATA_TYPE_MISSING);
    CU_ASSERT_EQUAL(bulkup_data_type_from_upper_case_string(unknown[i]),
                    BULKUP_DATA_TYPE_MISSING);
  }
  /* Prefix of a longer value, and a value with a suffix. */
  CU_ASSERT_EQUAL(bulkup_data_type_from_string("dicom_"),
                  BULKUP_DATA_TYPE_MISSING);
  CU_ASSERT_EQUAL(bulkup_data_type_from_upper_case_string("DICOM_STUDYX"),
                  BULKUP_DATA_TYPE_MISSING);
  CU_ASSERT_EQUAL(bulkup_data_type_from_string("dicom"),
                  BULKUP_DATA_TYPE_DICOM);
  CU_ASSERT_EQUAL(bulkup_data_type_from_string("dicom_study"),
                  BULKUP_DATA_TYPE_DICOM_STUDY);
}

static void test_null(void) {
  CU_ASSERT_EQUAL(bulkup_data_type_from_string(NULL), BULKUP_DATA_TYPE_MISSING);
  CU_ASSERT_EQUAL(bulkup_data_type_from_upper_case_string(NULL),
                  BULKUP_DATA_TYPE_MISSING);
}

static void test_out_of_range(void) {
  const int bad[] = {BULKUP_DATA_TYPE_COUNT, 12, 13, 100, -1, -12, 0x7fffffff};
  for (size_t i = 0; i < BK_ARRAY_LEN(bad); i++) {
    bulkup_data_type t = (bulkup_data_type)bad[i];
    CU_ASSERT_STRING_EQUAL(bulkup_data_type_to_string(t),
                           "_MISSING_DATA_TYPE_");
    CU_ASSERT_STRING_EQUAL(bulkup_data_type_to_upper_case_string(t),
                           "_MISSING_DATA_TYPE_");
  }
}

static void reg(void) {
  bk_suite("data_type", NULL, NULL);
  bk_test("numeric values stable", test_numeric_values_stable);
  bk_test("to_string", test_to_string);
  bk_test("from_string", test_from_string);
  bk_test("from_upper_case_string", test_from_upper_case_string);
  bk_test("round trips", test_round_trips);
  bk_test("case sensitivity", test_case_sensitivity);
  bk_test("unknowns", test_unknowns);
  bk_test("NULL", test_null);
  bk_test("out of range", test_out_of_range);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
