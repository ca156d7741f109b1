/* The crash-safe journal: records, reload, torn and corrupt lines, keys
 * with any bytes, threads, and the engine recording succeeded items. */
#include "bk_test.h"
#include "bk_ts.h"
#include "internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dir;

static int init(void) {
  dir = bk_tmpdir("journal");
  return dir ? 0 : -1;
}

static int clean(void) {
  bk_rm_rf(dir);
  free(dir);
  return 0;
}

static char *jpath(const char *name) {
  static char p[1024];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return p;
}

static long file_size(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static void test_record_and_reload(void) {
  const char *p = jpath("basic.journal");
  bulkup_journal *j;
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_count(j), 0);
  CU_ASSERT_FALSE(bulkup_journal_contains(j, "a", 1, 2));
  CU_ASSERT_EQUAL(bulkup_journal_record(j, "a", 1, 2), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_record(j, "b", 10, -5), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_record(j, "a", 1, 2), BULKUP_OK); /* dup */
  CU_ASSERT_EQUAL(bulkup_journal_count(j), 2);
  CU_ASSERT_TRUE(bulkup_journal_contains(j, "a", 1, 2));
  CU_ASSERT_FALSE(bulkup_journal_contains(j, "a", 1, 3)); /* mtime changed */
  CU_ASSERT_FALSE(bulkup_journal_contains(j, "a", 2, 2)); /* size changed */
  CU_ASSERT_EQUAL(bulkup_journal_close(j), BULKUP_OK);
  long sz = file_size(p);
  CU_ASSERT_FATAL(sz > 0);

  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_count(j), 2);
  CU_ASSERT_EQUAL(bulkup_journal_ignored_lines(j), 0);
  CU_ASSERT_TRUE(bulkup_journal_contains(j, "a", 1, 2));
  CU_ASSERT_TRUE(bulkup_journal_contains(j, "b", 10, -5));
  /* Recording what is already there writes nothing. */
  CU_ASSERT_EQUAL(bulkup_journal_record(j, "b", 10, -5), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_close(j), BULKUP_OK);
  CU_ASSERT_EQUAL(file_size(p), sz);
}

static void test_keys_with_any_bytes(void) {
  const char *p = jpath("bytes.journal");
  const char *keys[] = {"http://h/a b\nc\r\td%41%", "\x01\x7f\xff\xfe",
                        "J1 00000000 1 2 fake", "", "\xc3\xa9t\xc3\xa9"};
  bulkup_journal *j;
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  for (size_t i = 0; i < BK_ARRAY_LEN(keys); i++)
    CU_ASSERT_EQUAL(bulkup_journal_record(j, keys[i], i, (int64_t)i), BULKUP_OK);
  bulkup_journal_close(j);
  /* One line per record, whatever the key holds. */
  FILE *f = fopen(p, "rb");
  int lines = 0, c;
  while ((c = fgetc(f)) != EOF)
    lines += c == '\n';
  fclose(f);
  CU_ASSERT_EQUAL(lines, (int)BK_ARRAY_LEN(keys));
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_count(j), BK_ARRAY_LEN(keys));
  for (size_t i = 0; i < BK_ARRAY_LEN(keys); i++)
    CU_ASSERT_TRUE(bulkup_journal_contains(j, keys[i], i, (int64_t)i));
  CU_ASSERT_FALSE(bulkup_journal_contains(j, "http://h/a b", 0, 0));
  bulkup_journal_close(j);
}

static void test_torn_last_line_tolerated(void) {
  const char *p = jpath("torn.journal");
  bulkup_journal *j;
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  for (int i = 0; i < 10; i++) {
    char k[32];
    snprintf(k, sizeof k, "key-%d", i);
    bulkup_journal_record(j, k, 100, 200);
  }
  bulkup_journal_close(j);
  long full = file_size(p);
  CU_ASSERT_FATAL(full > 0);
  if (full <= 0)
    return;
  /* Cut the file at every byte of the last line: the first nine records
   * always survive, the tenth only when its line is whole. */
  long last_start = full - 1;
  {
    FILE *f = fopen(p, "rb");
    char *buf = malloc((size_t)full);
    CU_ASSERT_EQUAL_FATAL(fread(buf, 1, (size_t)full, f), (size_t)full);
    fclose(f);
    while (last_start > 0 && buf[last_start - 1] != '\n')
      last_start--;
    free(buf);
  }
  for (long cut = last_start; cut <= full; cut++) {
    char copy[1100];
    snprintf(copy, sizeof copy, "%s.cut", p);
    FILE *in = fopen(p, "rb"), *out = fopen(copy, "wb");
    char *buf = malloc((size_t)full);
    CU_ASSERT_EQUAL_FATAL(fread(buf, 1, (size_t)full, in), (size_t)full);
    fwrite(buf, 1, (size_t)cut, out);
    fclose(in);
    fclose(out);
    free(buf);
    CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, copy, NULL), BULKUP_OK);
    /* Whole: the full file, or all of it but the final newline. */
    bool whole = cut >= full - 1;
    CU_ASSERT_EQUAL(bulkup_journal_count(j), whole ? 10u : 9u);
    CU_ASSERT_EQUAL(bulkup_journal_ignored_lines(j),
                    (whole || cut == last_start) ? 0u : 1u);
    CU_ASSERT_TRUE(bulkup_journal_contains(j, "key-8", 100, 200));
    CU_ASSERT_EQUAL(bulkup_journal_contains(j, "key-9", 100, 200), whole);
    /* Appending after a torn line starts a fresh line. */
    CU_ASSERT_EQUAL(bulkup_journal_record(j, "after", 1, 1), BULKUP_OK);
    bulkup_journal_close(j);
    CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, copy, NULL), BULKUP_OK);
    CU_ASSERT_TRUE(bulkup_journal_contains(j, "after", 1, 1));
    CU_ASSERT_EQUAL(bulkup_journal_count(j), whole ? 11u : 10u);
    bulkup_journal_close(j);
    unlink(copy);
  }
}

static void test_corrupt_line_ignored(void) {
  const char *p = jpath("corrupt.journal");
  bulkup_journal *j;
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  bulkup_journal_record(j, "one", 1, 1);
  bulkup_journal_record(j, "two", 2, 2);
  bulkup_journal_record(j, "three", 3, 3);
  bulkup_journal_close(j);
  /* Flip a byte of the second record's key: its CRC no longer matches. */
  int fd = open(p, O_RDWR);
  char buf[512];
  ssize_t n = read(fd, buf, sizeof buf);
  CU_ASSERT_FATAL(n > 0);
  char *second = memchr(buf, '\n', (size_t)n) + 1;
  char *nl = memchr(second, '\n', (size_t)(buf + n - second));
  nl[-1] ^= 1; /* "two" -> "twn" */
  pwrite(fd, buf, (size_t)n, 0);
  close(fd);
  /* And a line of garbage. */
  FILE *f = fopen(p, "ab");
  fputs("this is not a record\n", f);
  fclose(f);
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_count(j), 2);
  CU_ASSERT_EQUAL(bulkup_journal_ignored_lines(j), 2);
  CU_ASSERT_TRUE(bulkup_journal_contains(j, "one", 1, 1));
  CU_ASSERT_FALSE(bulkup_journal_contains(j, "two", 2, 2));
  CU_ASSERT_FALSE(bulkup_journal_contains(j, "twn", 2, 2));
  CU_ASSERT_TRUE(bulkup_journal_contains(j, "three", 3, 3));
  bulkup_journal_close(j);
}

static void test_open_errors(void) {
  bulkup_journal *j = (bulkup_journal *)1;
  CU_ASSERT_EQUAL(bulkup_journal_open(&j, "/nonexistent-dir/x.journal", NULL),
                  BULKUP_EIO);
  CU_ASSERT_PTR_NULL(j);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "/nonexistent-dir"));
  CU_ASSERT_EQUAL(bulkup_journal_open(&j, NULL, NULL), BULKUP_EINVAL);
  CU_ASSERT_EQUAL(bulkup_journal_close(NULL), BULKUP_OK);
}

typedef struct tharg {
  bulkup_journal *j;
  int base;
} tharg;

static void *recorder(void *arg) {
  tharg *a = arg;
  for (int i = 0; i < 2000; i++) {
    char k[32];
    snprintf(k, sizeof k, "t%d-%d", a->base, i);
    bulkup_journal_record(a->j, k, (uint64_t)i, 0);
  }
  return NULL;
}

static void test_threads(void) {
  const char *p = jpath("threads.journal");
  bulkup_journal_options o;
  bulkup_journal_options_init(&o);
  o.sync_every = 100;
  bulkup_journal *j;
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, &o), BULKUP_OK);
  pthread_t th[4];
  tharg args[4];
  for (int i = 0; i < 4; i++) {
    args[i] = (tharg){j, i};
    pthread_create(&th[i], NULL, recorder, &args[i]);
  }
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  CU_ASSERT_EQUAL(bulkup_journal_count(j), 8000);
  bulkup_journal_close(j);
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_count(j), 8000);
  CU_ASSERT_EQUAL(bulkup_journal_ignored_lines(j), 0);
  CU_ASSERT_TRUE(bulkup_journal_contains(j, "t3-1999", 1999, 0));
  bulkup_journal_close(j);
}

static void test_engine_records_successes_only(void) {
  bk_ts *ts;
  CU_ASSERT_FATAL(bk_ts_start(&ts, NULL) == 0);
  bk_ts_action deny = {.fault = BK_TS_STATUS, .status = 403};
  bk_ts_script(ts, "/j/1", &deny, 1);
  const char *p = jpath("engine.journal");
  bulkup_journal *j;
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  char file[1024];
  snprintf(file, sizeof file, "%s/src.bin", dir);
  char data[5000];
  bk_fill_random(data, sizeof data, 3);
  bk_write_file(file, data, sizeof data);
  struct stat st;
  stat(file, &st);
  int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;

  bulkup_uploader_options o;
  bulkup_uploader_options_init(&o);
  bk_test_threads(&o);
  o.workers = 2;
  o.journal = j;
  o.cloud.allow_failures = true;
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  for (int i = 0; i < 3; i++) {
    char path[32], key[64];
    snprintf(path, sizeof path, "/j/%d", i);
    snprintf(key, sizeof key, "key-%d", i);
    char *url = bk_ts_url(ts, path);
    bulkup_item it;
    bulkup_item_init(&it);
    it.path = file;
    it.url = url;
    it.journal_key = i == 2 ? NULL : key; /* item 2: not journalled */
    CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
    free(url);
  }
  bulkup_item mem;
  bulkup_item_init(&mem);
  mem.source = BULKUP_SOURCE_MEMORY;
  mem.data = data;
  mem.size = 100;
  char *url = bk_ts_url(ts, "/j/mem");
  mem.url = url;
  mem.journal_key = "key-mem";
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &mem, NULL), BULKUP_OK);
  free(url);
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  CU_ASSERT_EQUAL(bulkup_journal_count(j), 2);
  CU_ASSERT_TRUE(bulkup_journal_contains(j, "key-0", 5000, mtime));
  CU_ASSERT_FALSE(bulkup_journal_contains(j, "key-1", 5000, mtime)); /* 403 */
  CU_ASSERT_TRUE(bulkup_journal_contains(j, "key-mem", 100, 0));
  bulkup_journal_close(j);
  bk_ts_stop(ts);
}

static void reg(void) {
  bk_suite("journal", init, clean);
  bk_test("record and reload", test_record_and_reload);
  bk_test("keys with any bytes", test_keys_with_any_bytes);
  bk_test("torn last line tolerated", test_torn_last_line_tolerated);
  bk_test("corrupt line ignored", test_corrupt_line_ignored);
  bk_test("open errors", test_open_errors);
  bk_test("threads", test_threads);
  bk_test("engine records successes only", test_engine_records_successes_only);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
