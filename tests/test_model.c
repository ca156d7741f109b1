#include "bk_test.h"
#include "internal.h"

#include <stdio.h>

/* Run on a NUL-terminated literal (the length excludes the NUL). */
static bulkup_err run(const char *json, bulkup_string_set **out) {
  *out = (bulkup_string_set *)(uintptr_t)0x1; /* must be overwritten */
  return bulkup_get_all_model_iteration_uids(out, json, strlen(json));
}

/* Expect BULKUP_EPARSE with exactly `msg` and *out NULL. */
static void expect_parse_error(const char *json, const char *msg) {
  bulkup_string_set *set;
  bulkup_err rc = run(json, &set);
  CU_ASSERT_EQUAL(rc, BULKUP_EPARSE);
  CU_ASSERT_PTR_NULL(set);
  if (msg) {
    CU_ASSERT_STRING_EQUAL(bulkup_last_error_message(), msg);
    if (strcmp(bulkup_last_error_message(), msg) != 0)
      fprintf(stderr, "got message: %s\n", bulkup_last_error_message());
  }
  bulkup_string_set_free(set == (bulkup_string_set *)(uintptr_t)0x1 ? NULL
                                                                    : set);
}

static void expect_set(const bulkup_string_set *set, const char *const *want,
                       size_t n) {
  CU_ASSERT_EQUAL_FATAL(bulkup_string_set_count(set), n);
  for (size_t i = 0; i < n; i++) {
    CU_ASSERT_STRING_EQUAL(bulkup_string_set_get(set, i), want[i]);
    CU_ASSERT_TRUE(bulkup_string_set_contains(set, want[i]));
  }
  CU_ASSERT_PTR_NULL(bulkup_string_set_get(set, n));
}

static void test_multiple_with_duplicates(void) {
  const char *json =
      "[{\"model_uid\":\"m1\",\"model_iteration_uids\":[\"a\",\"b\",\"a\"]},"
      " {\"model_uid\":\"m2\",\"model_iteration_uids\":[\"c\",\"b\"]},"
      " {\"model_uid\":\"m3\",\"model_iteration_uids\":[]},"
      " {\"model_uid\":\"m4\",\"model_iteration_uids\":[\"d\",\"a\",\"c\",\"e\"]}]";
  bulkup_string_set *set;
  CU_ASSERT_EQUAL_FATAL(run(json, &set), BULKUP_OK);
  const char *const want[] = {"a", "b", "c", "d", "e"};
  expect_set(set, want, 5);
  CU_ASSERT_FALSE(bulkup_string_set_contains(set, "f"));
  CU_ASSERT_FALSE(bulkup_string_set_contains(set, ""));
  CU_ASSERT_FALSE(bulkup_string_set_contains(set, "A"));
  CU_ASSERT_FALSE(bulkup_string_set_contains(set, "ab"));
  CU_ASSERT_FALSE(bulkup_string_set_contains(set, NULL));
  bulkup_string_set_free(set);
}

static void test_empty_array(void) {
  bulkup_string_set *set;
  CU_ASSERT_EQUAL_FATAL(run("[]", &set), BULKUP_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(set);
  CU_ASSERT_EQUAL(bulkup_string_set_count(set), 0);
  CU_ASSERT_PTR_NULL(bulkup_string_set_get(set, 0));
  CU_ASSERT_FALSE(bulkup_string_set_contains(set, "a"));
  bulkup_string_set_free(set);

  CU_ASSERT_EQUAL_FATAL(run("  \n[ \t]\r\n ", &set), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_string_set_count(set), 0);
  bulkup_string_set_free(set);

  /* Configurations with no uids at all. */
  CU_ASSERT_EQUAL_FATAL(
      run("[{\"model_iteration_uids\":[]},{\"model_iteration_uids\":[]}]", &set),
      BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_string_set_count(set), 0);
  bulkup_string_set_free(set);
}

static void test_null_set_accessors(void) {
  CU_ASSERT_EQUAL(bulkup_string_set_count(NULL), 0);
  CU_ASSERT_PTR_NULL(bulkup_string_set_get(NULL, 0));
  CU_ASSERT_FALSE(bulkup_string_set_contains(NULL, "a"));
  bulkup_string_set_free(NULL);
}

static void test_null_arguments(void) {
  bulkup_string_set *set = (bulkup_string_set *)(uintptr_t)0x1;
  CU_ASSERT_EQUAL(bulkup_get_all_model_iteration_uids(&set, NULL, 0),
                  BULKUP_EINVAL);
  CU_ASSERT_PTR_NULL(set);
  CU_ASSERT_EQUAL(bulkup_get_all_model_iteration_uids(NULL, "[]", 2),
                  BULKUP_EINVAL);
}

static void test_element_not_object(void) {
  expect_parse_error("[1]", "element 0: not an object");
  expect_parse_error("[{\"model_iteration_uids\":[]}, \"x\"]",
                     "element 1: not an object");
  expect_parse_error("[{\"model_iteration_uids\":[]}, null]",
                     "element 1: not an object");
  expect_parse_error("[[]]", "element 0: not an object");
}

static void test_missing_field(void) {
  expect_parse_error("[{}]", "element 0: missing model_iteration_uids");
  expect_parse_error(
      "[{\"model_iteration_uids\":[\"a\"]},{\"model_iteration_uids\":[]},"
      "{\"model_uid\":\"m\",\"model_iteration_uid\":[\"x\"]}]",
      "element 2: missing model_iteration_uids");
  /* Keys are case-sensitive. */
  expect_parse_error("[{\"Model_Iteration_Uids\":[]}]",
                     "element 0: missing model_iteration_uids");
}

static void test_field_not_array(void) {
  expect_parse_error("[{\"model_iteration_uids\":\"a\"}]",
                     "element 0: model_iteration_uids must be an array of "
                     "strings");
  expect_parse_error("[{\"model_iteration_uids\":[]},{\"model_iteration_uids\":[]},"
                     "{\"model_iteration_uids\":null}]",
                     "element 2: model_iteration_uids must be an array of "
                     "strings");
  expect_parse_error("[{\"model_iteration_uids\":{\"0\":\"a\"}}]",
                     "element 0: model_iteration_uids must be an array of "
                     "strings");
  expect_parse_error("[{\"model_iteration_uids\":5}]",
                     "element 0: model_iteration_uids must be an array of "
                     "strings");
}

static void test_non_string_entry(void) {
  expect_parse_error("[{\"model_iteration_uids\":[\"a\",1]}]",
                     "element 0: model_iteration_uids[1] is not a string");
  expect_parse_error("[{\"model_iteration_uids\":[\"a\"]},"
                     "{\"model_iteration_uids\":[\"b\",\"c\",null]}]",
                     "element 1: model_iteration_uids[2] is not a string");
  expect_parse_error("[{\"model_iteration_uids\":[[\"a\"]]}]",
                     "element 0: model_iteration_uids[0] is not a string");
  expect_parse_error("[{\"model_iteration_uids\":[true]}]",
                     "element 0: model_iteration_uids[0] is not a string");
  expect_parse_error("[{\"model_iteration_uids\":[{}]}]",
                     "element 0: model_iteration_uids[0] is not a string");
  /* An embedded NUL would truncate the uid as a C string. */
  expect_parse_error("[{\"model_iteration_uids\":[\"a\\u0000b\"]}]",
                     "element 0: model_iteration_uids[0] contains a NUL "
                     "character");
}

static void test_top_level_not_array(void) {
  const char *msg = "model configurations must be a JSON array";
  expect_parse_error("{}", msg);
  expect_parse_error("{\"model_iteration_uids\":[\"a\"]}", msg);
  expect_parse_error("\"[]\"", msg);
  expect_parse_error("5", msg);
  expect_parse_error("true", msg);
  expect_parse_error("null",
                     "model configurations must be a JSON array, not null");
}

static void test_invalid_json(void) {
  static const char *const bad[] = {
      "",
      "   ",
      "[",
      "[{",
      "[{\"model_iteration_uids\":[\"a\"",
      "]",
      "[1,]",
      "[{\"model_iteration_uids\":[\"a\",]}]",
      "['a']",
      "[{model_iteration_uids:[]}]",
      "[\"unterminated]",
      "[NaN]",
      "[/* comment */]",
      "\xff\xfe[]",
      "nul",
  };
  for (size_t i = 0; i < BK_ARRAY_LEN(bad); i++) {
    bulkup_string_set *set;
    bulkup_err rc = run(bad[i], &set);
    if (rc != BULKUP_EPARSE)
      fprintf(stderr, "case %zu: rc %d\n", i, rc);
    CU_ASSERT_EQUAL(rc, BULKUP_EPARSE);
    CU_ASSERT_PTR_NULL(set);
    CU_ASSERT_STRING_NOT_EQUAL(bulkup_last_error_message(), "");
  }
  expect_parse_error("", "invalid JSON: unexpected end of text");
  expect_parse_error("[{\"model_iteration_uids\":[",
                     "invalid JSON: unexpected end of text");
}

static void test_trailing_garbage(void) {
  static const char *const bad[] = {
      "[] x", "[]]", "[][]", "[]{}", "[] 1", "[],", "[]\x01",
  };
  for (size_t i = 0; i < BK_ARRAY_LEN(bad); i++) {
    bulkup_string_set *set;
    bulkup_err rc = run(bad[i], &set);
    if (rc != BULKUP_EPARSE)
      fprintf(stderr, "trailing case %zu: rc %d\n", i, rc);
    CU_ASSERT_EQUAL(rc, BULKUP_EPARSE);
    CU_ASSERT_PTR_NULL(set);
  }
  /* A NUL byte inside the given length is not whitespace. */
  bulkup_string_set *set = (bulkup_string_set *)(uintptr_t)0x1;
  CU_ASSERT_EQUAL(bulkup_get_all_model_iteration_uids(&set, "[]\0", 3),
                  BULKUP_EPARSE);
  CU_ASSERT_PTR_NULL(set);
  CU_ASSERT_STRING_EQUAL(bulkup_last_error_message(),
                         "invalid JSON: trailing characters at byte 2");
  CU_ASSERT_EQUAL(bulkup_get_all_model_iteration_uids(&set, "[]  \0  ", 7),
                  BULKUP_EPARSE);
  CU_ASSERT_PTR_NULL(set);
}

static void test_not_nul_terminated(void) {
  const char text[] = "[{\"model_iteration_uids\":[\"u1\",\"u2\"]}]";
  size_t len = sizeof text - 1;
  /* An exact-size heap copy: any read past len is caught by ASan. */
  char *buf = malloc(len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  memcpy(buf, text, len);
  bulkup_string_set *set;
  CU_ASSERT_EQUAL(bulkup_get_all_model_iteration_uids(&set, buf, len),
                  BULKUP_OK);
  const char *const want[] = {"u1", "u2"};
  expect_set(set, want, 2);
  bulkup_string_set_free(set);

  /* A truncated length is incomplete JSON, not a read of the rest. */
  CU_ASSERT_EQUAL(bulkup_get_all_model_iteration_uids(&set, buf, len - 1),
                  BULKUP_EPARSE);
  CU_ASSERT_PTR_NULL(set);
  free(buf);

  /* Bytes after len are ignored even if they would be garbage. */
  const char more[] = "[{\"model_iteration_uids\":[\"x\"]}]garbage";
  CU_ASSERT_EQUAL(bulkup_get_all_model_iteration_uids(&set, more, 32),
                  BULKUP_OK);
  const char *const want2[] = {"x"};
  expect_set(set, want2, 1);
  bulkup_string_set_free(set);

  /* Length 0 of a non-empty buffer is empty text. */
  CU_ASSERT_EQUAL(bulkup_get_all_model_iteration_uids(&set, "[]", 0),
                  BULKUP_EPARSE);
  CU_ASSERT_PTR_NULL(set);
}

static void test_deeply_nested(void) {
  size_t n = 100000;
  char *buf = malloc(2 * n + 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  memset(buf, '[', n);
  memset(buf + n, ']', n);
  buf[2 * n] = '\0';
  expect_parse_error(buf, NULL);
  /* Nesting inside the uid list and inside an element. */
  memset(buf, '{', n);
  expect_parse_error(buf, NULL);
  free(buf);

  char deep[2048];
  int off = snprintf(deep, sizeof deep, "[{\"model_iteration_uids\":");
  for (int i = 0; i < 500; i++)
    deep[off++] = '[';
  deep[off] = '\0';
  expect_parse_error(deep, NULL);
  /* Moderate nesting inside an ignored field is fine. */
  const char *ok = "[{\"model\":{\"a\":[[[[[{\"b\":[1,2,{}]}]]]]]},"
                   "\"model_iteration_uids\":[\"z\"]}]";
  bulkup_string_set *set;
  CU_ASSERT_EQUAL(run(ok, &set), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_string_set_count(set), 1);
  bulkup_string_set_free(set);
}

static const char realistic[] =
    "[\n"
    "  {\n"
    "    \"model_uid\": \"2b0a7c1e-8f3d-4e2a-9b6c-1d2e3f4a5b6c\",\n"
    "    \"title\": \"Cat detector\",\n"
    "    \"description\": \"Bounding boxes for cats, \\\"v2\\\" \\u00e9\",\n"
    "    \"feature_node_hashes\": [\"a1b2c3d4\", \"e5f6a7b8\"],\n"
    "    \"model\": \"yolov5\",\n"
    "    \"model_iteration_uids\": [\n"
    "      \"c0ffee00-0000-4000-8000-000000000001\",\n"
    "      \"c0ffee00-0000-4000-8000-000000000002\"\n"
    "    ]\n"
    "  },\n"
    "  {\n"
    "    \"model_uid\": \"7d8e9f00-1111-4222-8333-444455556666\",\n"
    "    \"title\": \"Dog segmenter\",\n"
    "    \"description\": \"\",\n"
    "    \"feature_node_hashes\": [],\n"
    "    \"model\": \"resnet101\",\n"
    "    \"extra_future_field\": {\"nested\": [1, 2.5, null, false]},\n"
    "    \"model_iteration_uids\": [\n"
    "      \"c0ffee00-0000-4000-8000-000000000003\",\n"
    "      \"c0ffee00-0000-4000-8000-000000000001\",\n"
    "      \"\\u00fcid-\\ud83d\\ude00\"\n"
    "    ]\n"
    "  }\n"
    "]\n";

static void test_realistic(void) {
  bulkup_string_set *set;
  CU_ASSERT_EQUAL_FATAL(run(realistic, &set), BULKUP_OK);
  const char *const want[] = {
      "c0ffee00-0000-4000-8000-000000000001",
      "c0ffee00-0000-4000-8000-000000000002",
      "c0ffee00-0000-4000-8000-000000000003",
      "\xc3\xbc" "id-\xf0\x9f\x98\x80",
  };
  expect_set(set, want, 4);
  CU_ASSERT_FALSE(bulkup_string_set_contains(set, "yolov5"));
  CU_ASSERT_FALSE(
      bulkup_string_set_contains(set, "2b0a7c1e-8f3d-4e2a-9b6c-1d2e3f4a5b6c"));
  bulkup_string_set_free(set);
}

/* Enough distinct uids to grow the index several times. */
static void test_many_uids(void) {
  enum { N = 3000 };
  size_t cap = (size_t)N * 24 + 64;
  char *buf = malloc(cap);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  size_t off = (size_t)snprintf(buf, cap, "[{\"model_iteration_uids\":[");
  for (int i = 0; i < N; i++)
    off += (size_t)snprintf(buf + off, cap - off, "%s\"u%d\"", i ? "," : "", i);
  off += (size_t)snprintf(buf + off, cap - off,
                          "]},{\"model_iteration_uids\":[");
  /* The same uids again, backwards: nothing new. */
  for (int i = N - 1; i >= 0; i--)
    off += (size_t)snprintf(buf + off, cap - off, "%s\"u%d\"",
                            i == N - 1 ? "" : ",", i);
  off += (size_t)snprintf(buf + off, cap - off, "]}]");
  CU_ASSERT_FATAL(off < cap);

  bulkup_string_set *set;
  CU_ASSERT_EQUAL_FATAL(bulkup_get_all_model_iteration_uids(&set, buf, off),
                        BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_string_set_count(set), N);
  char name[32];
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "u%d", i);
    CU_ASSERT_STRING_EQUAL(bulkup_string_set_get(set, (size_t)i), name);
    CU_ASSERT_TRUE(bulkup_string_set_contains(set, name));
  }
  CU_ASSERT_FALSE(bulkup_string_set_contains(set, "u3000"));
  CU_ASSERT_FALSE(bulkup_string_set_contains(set, "u"));
  bulkup_string_set_free(set);
  free(buf);
}

/* Every set size around the index's growth points: lookups of absent
 * strings must terminate and miss, present ones hit. */
static void test_set_sizes(void) {
  for (int k = 0; k <= 70; k++) {
    char buf[2048];
    size_t off =
        (size_t)snprintf(buf, sizeof buf, "[{\"model_iteration_uids\":[");
    for (int i = 0; i < k; i++)
      off += (size_t)snprintf(buf + off, sizeof buf - off, "%s\"s%d\"",
                              i ? "," : "", i);
    off += (size_t)snprintf(buf + off, sizeof buf - off, "]}]");
    CU_ASSERT_FATAL(off < sizeof buf);
    bulkup_string_set *set;
    CU_ASSERT_EQUAL_FATAL(bulkup_get_all_model_iteration_uids(&set, buf, off),
                          BULKUP_OK);
    CU_ASSERT_EQUAL(bulkup_string_set_count(set), (size_t)k);
    char name[16];
    for (int i = 0; i < k + 40; i++) {
      snprintf(name, sizeof name, "s%d", i);
      CU_ASSERT_EQUAL(bulkup_string_set_contains(set, name), i < k);
    }
    bulkup_string_set_free(set);
  }
}

static void test_allocation_failures(void) {
  long needed = -1;
  for (long n = 0; n < 10000; n++) {
    bk_alloc_fail_after(n);
    bulkup_string_set *set = (bulkup_string_set *)(uintptr_t)0x1;
    bulkup_err rc = bulkup_get_all_model_iteration_uids(&set, realistic,
                                                        sizeof realistic - 1);
    bk_alloc_fail_after(-1);
    if (rc == BULKUP_OK) {
      const char *const want[] = {
          "c0ffee00-0000-4000-8000-000000000001",
          "c0ffee00-0000-4000-8000-000000000002",
          "c0ffee00-0000-4000-8000-000000000003",
          "\xc3\xbc" "id-\xf0\x9f\x98\x80",
      };
      expect_set(set, want, 4);
      bulkup_string_set_free(set);
      needed = n;
      break;
    }
    CU_ASSERT_EQUAL(rc, BULKUP_ENOMEM);
    CU_ASSERT_PTR_NULL(set);
    CU_ASSERT_STRING_EQUAL(bulkup_last_error_message(), "out of memory");
    if (rc != BULKUP_ENOMEM)
      break;
  }
  /* The set, its index and item array, and one copy per uid: well above
   * 4 allocations, so every failure point above was really exercised. */
  CU_ASSERT_TRUE(needed >= 6);

  /* The same with many uids, so that growth of the index and of the item
   * array fails at every step too. */
  char buf[4096];
  size_t off = (size_t)snprintf(buf, sizeof buf, "[{\"model_iteration_uids\":[");
  for (int i = 0; i < 100; i++)
    off += (size_t)snprintf(buf + off, sizeof buf - off, "%s\"id%d\"",
                            i ? "," : "", i % 70);
  off += (size_t)snprintf(buf + off, sizeof buf - off, "]}]");
  CU_ASSERT_FATAL(off < sizeof buf);
  needed = -1;
  for (long n = 0; n < 10000; n++) {
    bk_alloc_fail_after(n);
    bulkup_string_set *set = (bulkup_string_set *)(uintptr_t)0x1;
    bulkup_err rc = bulkup_get_all_model_iteration_uids(&set, buf, off);
    bk_alloc_fail_after(-1);
    if (rc == BULKUP_OK) {
      CU_ASSERT_EQUAL(bulkup_string_set_count(set), 70);
      CU_ASSERT_STRING_EQUAL(bulkup_string_set_get(set, 69), "id69");
      bulkup_string_set_free(set);
      needed = n;
      break;
    }
    CU_ASSERT_EQUAL(rc, BULKUP_ENOMEM);
    CU_ASSERT_PTR_NULL(set);
    if (rc != BULKUP_ENOMEM)
      break;
  }
  CU_ASSERT_TRUE(needed >= 70);
}

static void reg(void) {
  bk_suite("model", NULL, NULL);
  bk_test("multiple configs with duplicates", test_multiple_with_duplicates);
  bk_test("empty array", test_empty_array);
  bk_test("NULL set accessors", test_null_set_accessors);
  bk_test("NULL arguments", test_null_arguments);
  bk_test("element not an object", test_element_not_object);
  bk_test("missing field", test_missing_field);
  bk_test("field not an array", test_field_not_array);
  bk_test("non-string entry", test_non_string_entry);
  bk_test("top level not an array", test_top_level_not_array);
  bk_test("invalid JSON", test_invalid_json);
  bk_test("trailing garbage", test_trailing_garbage);
  bk_test("not NUL-terminated", test_not_nul_terminated);
  bk_test("deeply nested", test_deeply_nested);
  bk_test("realistic configurations", test_realistic);
  bk_test("many uids", test_many_uids);
  bk_test("set sizes", test_set_sizes);
  bk_test("allocation failures", test_allocation_failures);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
