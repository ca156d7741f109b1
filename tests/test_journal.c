/* The crash-safe journal: records, reload, torn and corrupt lines, keys
 * with any bytes, threads, and the engine recording succeeded items; the
 * resumable-session records (S1 lines) likewise, with the file's mode and
 * allocation failures. */
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

/* --- resumable sessions ------------------------------------------------- */

/* The session for an identity equals want (NULL: none). */
static bool session_is(bulkup_journal *j, const char *key, uint64_t size,
                       int64_t mtime, const char *want) {
  char *got = bulkup_journal_session(j, key, size, mtime);
  bool same = want ? got && strcmp(got, want) == 0 : got == NULL;
  bulkup_free(got);
  return same;
}

static char *slurp(const char *p, size_t *len) {
  FILE *f = fopen(p, "rb");
  if (!f)
    return NULL;
  size_t cap = 4096, n = 0, r;
  char *buf = malloc(cap + 1);
  while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap)
      buf = realloc(buf, (cap *= 2) + 1);
  }
  fclose(f);
  buf[n] = '\0';
  *len = n;
  return buf;
}

static void test_session_record_lookup(void) {
  const char *p = jpath("sess.journal");
  bulkup_journal *j;
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_session_count(j), 0);
  CU_ASSERT_PTR_NULL(bulkup_journal_session(j, "big", 5, 6));

  CU_ASSERT_EQUAL(bulkup_journal_record_session(j, "big", 5, 6, "https://s/1"),
                  BULKUP_OK);
  CU_ASSERT_TRUE(session_is(j, "big", 5, 6, "https://s/1"));
  CU_ASSERT_EQUAL(bulkup_journal_session_count(j), 1);
  /* Size or mtime changed: another identity, no session. */
  CU_ASSERT_PTR_NULL(bulkup_journal_session(j, "big", 4, 6));
  CU_ASSERT_PTR_NULL(bulkup_journal_session(j, "big", 5, 7));
  CU_ASSERT_PTR_NULL(bulkup_journal_session(j, "bi", 5, 6));
  /* A session is not a completion. */
  CU_ASSERT_FALSE(bulkup_journal_contains(j, "big", 5, 6));
  CU_ASSERT_EQUAL(bulkup_journal_count(j), 0);

  /* Replace. */
  CU_ASSERT_EQUAL(bulkup_journal_record_session(j, "big", 5, 6, "https://s/2"),
                  BULKUP_OK);
  CU_ASSERT_TRUE(session_is(j, "big", 5, 6, "https://s/2"));
  CU_ASSERT_EQUAL(bulkup_journal_session_count(j), 1);
  /* The same URL again writes nothing. */
  bulkup_journal_sync(j);
  long sz = file_size(p);
  CU_ASSERT_EQUAL(bulkup_journal_record_session(j, "big", 5, 6, "https://s/2"),
                  BULKUP_OK);
  CU_ASSERT_EQUAL(file_size(p), sz);

  /* Forget, with NULL and with "". */
  CU_ASSERT_EQUAL(bulkup_journal_record_session(j, "f1", 1, 1, "https://s/f1"),
                  BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_record_session(j, "f2", 1, 1, "https://s/f2"),
                  BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_session_count(j), 3);
  CU_ASSERT_EQUAL(bulkup_journal_record_session(j, "f1", 1, 1, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_record_session(j, "f2", 1, 1, ""), BULKUP_OK);
  CU_ASSERT_PTR_NULL(bulkup_journal_session(j, "f1", 1, 1));
  CU_ASSERT_PTR_NULL(bulkup_journal_session(j, "f2", 1, 1));
  CU_ASSERT_EQUAL(bulkup_journal_session_count(j), 1);
  /* Forgetting what is not open writes nothing. */
  sz = file_size(p);
  CU_ASSERT_EQUAL(bulkup_journal_record_session(j, "f1", 1, 1, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_record_session(j, "never", 1, 1, ""),
                  BULKUP_OK);
  CU_ASSERT_EQUAL(file_size(p), sz);

  /* Completion ends the session. */
  CU_ASSERT_EQUAL(bulkup_journal_record(j, "big", 5, 6), BULKUP_OK);
  CU_ASSERT_PTR_NULL(bulkup_journal_session(j, "big", 5, 6));
  CU_ASSERT_TRUE(bulkup_journal_contains(j, "big", 5, 6));
  CU_ASSERT_EQUAL(bulkup_journal_session_count(j), 0);
  CU_ASSERT_EQUAL(bulkup_journal_count(j), 1);

  /* A session opened for a completed item stays open until ended again;
   * recording the completion again then writes a line, to end it. */
  CU_ASSERT_EQUAL(bulkup_journal_record_session(j, "big", 5, 6, "https://s/3"),
                  BULKUP_OK);
  CU_ASSERT_TRUE(session_is(j, "big", 5, 6, "https://s/3"));
  sz = file_size(p);
  CU_ASSERT_EQUAL(bulkup_journal_record(j, "big", 5, 6), BULKUP_OK);
  CU_ASSERT(file_size(p) > sz);
  CU_ASSERT_PTR_NULL(bulkup_journal_session(j, "big", 5, 6));
  CU_ASSERT_EQUAL(bulkup_journal_count(j), 1);
  sz = file_size(p);
  CU_ASSERT_EQUAL(bulkup_journal_record(j, "big", 5, 6), BULKUP_OK);
  CU_ASSERT_EQUAL(file_size(p), sz);

  /* Bad arguments. */
  CU_ASSERT_EQUAL(bulkup_journal_record_session(NULL, "k", 1, 1, "u"),
                  BULKUP_EINVAL);
  CU_ASSERT_EQUAL(bulkup_journal_record_session(j, NULL, 1, 1, "u"),
                  BULKUP_EINVAL);
  CU_ASSERT_PTR_NULL(bulkup_journal_session(NULL, "k", 1, 1));
  CU_ASSERT_PTR_NULL(bulkup_journal_session(j, NULL, 1, 1));
  CU_ASSERT_EQUAL(bulkup_journal_session_count(NULL), 0);
  CU_ASSERT_EQUAL(bulkup_journal_close(j), BULKUP_OK);

  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_ignored_lines(j), 0);
  CU_ASSERT_EQUAL(bulkup_journal_session_count(j), 0);
  CU_ASSERT_EQUAL(bulkup_journal_count(j), 1);
  CU_ASSERT_TRUE(bulkup_journal_contains(j, "big", 5, 6));
  bulkup_journal_close(j);
}

static void test_session_reopen(void) {
  const char *p = jpath("sess-reopen.journal");
  /* Keys and URLs with any bytes, an empty key among them. */
  static const char *keys[] = {"plain", "a b%20c\n", "", "\x01\xff\x7f",
                               "done", "forgot", "replaced"};
  static const char *urls[] = {
      "https://storage.example/upload?upload_id=AB%2Fcd&x=1",
      "http://h/with space\ttab\nnewline",
      "https://s/empty-key",
      "\xc3\xa9\x7f%",
      "https://s/done",
      "https://s/forgot",
      "https://s/first"};
  bulkup_journal *j;
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_record(j, "old", 1, 1), BULKUP_OK);
  for (size_t i = 0; i < BK_ARRAY_LEN(keys); i++)
    CU_ASSERT_EQUAL(bulkup_journal_record_session(j, keys[i], 1000 + i,
                                                  -(int64_t)i, urls[i]),
                    BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_record(j, "done", 1004, -4), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_record_session(j, "forgot", 1005, -5, NULL),
                  BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_record_session(j, "replaced", 1006, -6,
                                                "https://s/second"),
                  BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_session_count(j), 5);
  CU_ASSERT_EQUAL(bulkup_journal_close(j), BULKUP_OK);

  /* One line per record, whatever the keys and URLs hold. */
  size_t n = 0;
  char *text = slurp(p, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  size_t lines = 0;
  for (size_t i = 0; i < n; i++)
    lines += text[i] == '\n';
  CU_ASSERT_EQUAL(lines, 1 + BK_ARRAY_LEN(keys) + 3);
  free(text);

  for (int round = 0; round < 2; round++) {
    CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
    CU_ASSERT_EQUAL(bulkup_journal_ignored_lines(j), 0);
    CU_ASSERT_EQUAL(bulkup_journal_session_count(j), 5);
    CU_ASSERT_EQUAL(bulkup_journal_count(j), 2u + (unsigned)round);
    for (size_t i = 0; i < 4; i++)
      CU_ASSERT_TRUE(session_is(j, keys[i], 1000 + i, -(int64_t)i, urls[i]));
    CU_ASSERT_TRUE(session_is(j, "done", 1004, -4, NULL));
    CU_ASSERT_TRUE(bulkup_journal_contains(j, "done", 1004, -4));
    CU_ASSERT_TRUE(session_is(j, "forgot", 1005, -5, NULL));
    CU_ASSERT_TRUE(session_is(j, "replaced", 1006, -6, "https://s/second"));
    CU_ASSERT_TRUE(session_is(j, "plain", 1000, 1, NULL)); /* mtime */
    CU_ASSERT_TRUE(session_is(j, "plain", 1001, 0, NULL)); /* size */
    CU_ASSERT_TRUE(bulkup_journal_contains(j, "old", 1, 1));
    /* A second round after ending one (completed) and opening it again. */
    if (round == 0) {
      CU_ASSERT_EQUAL(bulkup_journal_record(j, "plain", 1000, 0), BULKUP_OK);
      CU_ASSERT_EQUAL(bulkup_journal_record_session(j, "plain", 1000, 0,
                                                    urls[0]),
                      BULKUP_OK);
    }
    CU_ASSERT_EQUAL(bulkup_journal_close(j), BULKUP_OK);
  }
}

/* The format, byte for byte: what is written, and a hand-made file read. */
static const char sample_journal[] =
    "J1 728f8d87 1 2 a\n"
    "S1 d0902d5f 5 6 big https://s/u?id=1\n"
    "S1 38df07ae 7 8 other https://s/o\n"
    "J1 d675f7dd 7 8 other\n"
    "S1 5c4d0ad1 9 10 gone https://s/g\n"
    "S1 3acfa5a8 9 10 gone \n"
    "S1 d84f748b 11 -12 a%20b https://s/x%25y\n";

static void test_session_line_format(void) {
  const char *p = jpath("format.journal");
  bulkup_journal *j;
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  bulkup_journal_record(j, "a", 1, 2);
  bulkup_journal_record_session(j, "big", 5, 6, "https://s/u?id=1");
  bulkup_journal_record_session(j, "other", 7, 8, "https://s/o");
  bulkup_journal_record(j, "other", 7, 8);
  bulkup_journal_record_session(j, "gone", 9, 10, "https://s/g");
  bulkup_journal_record_session(j, "gone", 9, 10, NULL);
  bulkup_journal_record_session(j, "a b", 11, -12, "https://s/x%y");
  bulkup_journal_close(j);
  size_t n;
  char *text = slurp(p, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  CU_ASSERT_EQUAL(n, sizeof sample_journal - 1);
  CU_ASSERT_STRING_EQUAL(text, sample_journal);
  free(text);

  const char *q = jpath("format-handmade.journal");
  CU_ASSERT_EQUAL_FATAL(
      bk_write_file(q, sample_journal, sizeof sample_journal - 1), 0);
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, q, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_ignored_lines(j), 0);
  CU_ASSERT_EQUAL(bulkup_journal_count(j), 2);
  CU_ASSERT_EQUAL(bulkup_journal_session_count(j), 2);
  CU_ASSERT_TRUE(session_is(j, "big", 5, 6, "https://s/u?id=1"));
  CU_ASSERT_TRUE(session_is(j, "other", 7, 8, NULL));
  CU_ASSERT_TRUE(session_is(j, "gone", 9, 10, NULL));
  CU_ASSERT_TRUE(session_is(j, "a b", 11, -12, "https://s/x%y"));
  bulkup_journal_close(j);
}

/* A journal written before session lines existed reads as before. */
static void test_old_journal_readable(void) {
  const char *p = jpath("old.journal");
  static const char old[] = "J1 728f8d87 1 2 a\n"
                            "J1 d675f7dd 7 8 other\n";
  CU_ASSERT_EQUAL_FATAL(bk_write_file(p, old, sizeof old - 1), 0);
  bulkup_journal *j;
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_count(j), 2);
  CU_ASSERT_EQUAL(bulkup_journal_ignored_lines(j), 0);
  CU_ASSERT_EQUAL(bulkup_journal_session_count(j), 0);
  CU_ASSERT_TRUE(bulkup_journal_contains(j, "a", 1, 2));
  CU_ASSERT_TRUE(bulkup_journal_contains(j, "other", 7, 8));
  /* Appending sessions to it, and reading it back. */
  CU_ASSERT_EQUAL(bulkup_journal_record_session(j, "new", 3, 4, "https://s/n"),
                  BULKUP_OK);
  bulkup_journal_close(j);
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_count(j), 2);
  CU_ASSERT_TRUE(session_is(j, "new", 3, 4, "https://s/n"));
  bulkup_journal_close(j);
}

static void test_session_torn_last_line(void) {
  const char *p = jpath("sess-torn.journal");
  bulkup_journal *j;
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  bulkup_journal_record(j, "done", 1, 1);
  bulkup_journal_record_session(j, "first", 2, 2, "https://s/first");
  bulkup_journal_record_session(j, "torn", 3, 3, "https://s/old");
  /* The last line replaces torn's session. */
  bulkup_journal_record_session(j, "torn", 3, 3, "https://s/new?id=x%20y");
  bulkup_journal_close(j);
  size_t full = 0;
  char *text = slurp(p, &full);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  size_t last_start = full - 1;
  while (last_start > 0 && text[last_start - 1] != '\n')
    last_start--;
  char copy[1100];
  snprintf(copy, sizeof copy, "%s.cut", p);
  for (size_t cut = last_start; cut <= full; cut++) {
    CU_ASSERT_EQUAL_FATAL(bk_write_file(copy, text, cut), 0);
    CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, copy, NULL), BULKUP_OK);
    bool whole = cut >= full - 1;
    CU_ASSERT_EQUAL(bulkup_journal_ignored_lines(j),
                    (whole || cut == last_start) ? 0u : 1u);
    CU_ASSERT_EQUAL(bulkup_journal_session_count(j), 2);
    CU_ASSERT_TRUE(session_is(j, "first", 2, 2, "https://s/first"));
    CU_ASSERT_TRUE(session_is(j, "torn", 3, 3,
                              whole ? "https://s/new?id=x%20y"
                                    : "https://s/old"));
    CU_ASSERT_TRUE(bulkup_journal_contains(j, "done", 1, 1));
    /* The next record starts on a fresh line, and reads back. */
    CU_ASSERT_EQUAL(bulkup_journal_record_session(j, "after", 4, 4,
                                                  "https://s/after"),
                    BULKUP_OK);
    CU_ASSERT_EQUAL(bulkup_journal_record(j, "first", 2, 2), BULKUP_OK);
    bulkup_journal_close(j);
    CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, copy, NULL), BULKUP_OK);
    CU_ASSERT_EQUAL(bulkup_journal_ignored_lines(j),
                    (whole || cut == last_start) ? 0u : 1u);
    CU_ASSERT_TRUE(session_is(j, "after", 4, 4, "https://s/after"));
    CU_ASSERT_TRUE(session_is(j, "first", 2, 2, NULL));
    CU_ASSERT_EQUAL(bulkup_journal_session_count(j), 2);
    bulkup_journal_close(j);
    unlink(copy);
  }
  free(text);
}

static void test_session_corrupt_line(void) {
  const char *p = jpath("sess-corrupt.journal");
  bulkup_journal *j;
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  bulkup_journal_record_session(j, "one", 1, 1, "https://s/one");
  bulkup_journal_record_session(j, "two", 2, 2, "https://s/two");
  bulkup_journal_record_session(j, "two", 2, 2, "https://s/TWO");
  bulkup_journal_record_session(j, "three", 3, 3, "https://s/three");
  bulkup_journal_record(j, "three", 3, 3);
  bulkup_journal_close(j);
  size_t n = 0;
  char *text = slurp(p, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  /* Flip a byte of the URL of the third line (two's replacement) and one
   * of the key of the fifth (three's completion): their CRCs fail. */
  char *line = text;
  for (int i = 0; i < 2; i++)
    line = strchr(line, '\n') + 1;
  char *nl = strchr(line, '\n');
  nl[-1] ^= 1; /* "TWO" -> "TWN" */
  for (int i = 0; i < 2; i++)
    line = strchr(line, '\n') + 1;
  nl = strchr(line, '\n');
  nl[-1] ^= 1;
  CU_ASSERT_EQUAL_FATAL(bk_write_file(p, text, n), 0);
  free(text);
  /* And a session line of garbage with the right tag. */
  FILE *f = fopen(p, "ab");
  fputs("S1 00000000 1 1 one https://evil/\n", f);
  fputs("S1 zzzzzzzz 1 1 one https://evil/\n", f);
  fclose(f);
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_ignored_lines(j), 4);
  CU_ASSERT_TRUE(session_is(j, "one", 1, 1, "https://s/one"));
  /* The replacement is lost: the earlier session stands. */
  CU_ASSERT_TRUE(session_is(j, "two", 2, 2, "https://s/two"));
  /* The completion is lost: the session stays open, the item not done. */
  CU_ASSERT_TRUE(session_is(j, "three", 3, 3, "https://s/three"));
  CU_ASSERT_FALSE(bulkup_journal_contains(j, "three", 3, 3));
  CU_ASSERT_EQUAL(bulkup_journal_session_count(j), 3);
  bulkup_journal_close(j);
}

static void test_created_mode_0600(void) {
  const char *p = jpath("mode.journal");
  mode_t old = umask(022);
  bulkup_journal *j;
  bulkup_err rc = bulkup_journal_open(&j, p, NULL);
  umask(old);
  CU_ASSERT_EQUAL_FATAL(rc, BULKUP_OK);
  bulkup_journal_record_session(j, "k", 1, 1, "https://s/secret");
  bulkup_journal_close(j);
  struct stat st;
  CU_ASSERT_EQUAL_FATAL(stat(p, &st), 0);
  CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
}

/* A journal left readable by group and others (an older bulkup made it
 * 0644): plain records leave its mode alone, the first session URL makes
 * it private before it is written, and the items already in it remain;
 * one that holds session URLs is made private when opened. */
static void test_existing_mode_tightened(void) {
  const char *p = jpath("mode-old.journal");
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CU_ASSERT_FATAL(fd >= 0);
  CU_ASSERT_EQUAL_FATAL(fchmod(fd, 0644), 0);
  close(fd);
  bulkup_journal *j;
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_record(j, "done", 5, 5), BULKUP_OK);
  struct stat st;
  CU_ASSERT_EQUAL_FATAL(stat(p, &st), 0);
  CU_ASSERT_EQUAL(st.st_mode & 07777, 0644);
  CU_ASSERT_EQUAL(bulkup_journal_record_session(j, "big", 9, 9,
                                                "https://s/secret"),
                  BULKUP_OK);
  CU_ASSERT_EQUAL_FATAL(stat(p, &st), 0);
  CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
  bulkup_journal_close(j);
  /* Session URLs already in a 0644 file: private as soon as it is
   * opened, with nothing written. */
  CU_ASSERT_EQUAL_FATAL(chmod(p, 0644), 0);
  long size = file_size(p);
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL_FATAL(stat(p, &st), 0);
  CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
  CU_ASSERT_EQUAL(file_size(p), size);
  CU_ASSERT_TRUE(bulkup_journal_contains(j, "done", 5, 5));
  CU_ASSERT_TRUE(session_is(j, "big", 9, 9, "https://s/secret"));
  bulkup_journal_close(j);
  /* A journal with no session URL in it keeps its mode when opened. */
  const char *q = jpath("mode-plain.journal");
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, q, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_record(j, "done", 5, 5), BULKUP_OK);
  bulkup_journal_close(j);
  CU_ASSERT_EQUAL_FATAL(chmod(q, 0644), 0);
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, q, NULL), BULKUP_OK);
  bulkup_journal_close(j);
  CU_ASSERT_EQUAL_FATAL(stat(q, &st), 0);
  CU_ASSERT_EQUAL(st.st_mode & 07777, 0644);
}

typedef struct sess_arg {
  bulkup_journal *j;
  int base;
} sess_arg;

/* Per item i of thread t: open a session, replace it, then end it by
 * completion (i % 3 == 0), forget it (1), or leave it open (2). */
#define SESS_ITEMS 600
#define SESS_THREADS 4

static void *session_worker(void *arg) {
  sess_arg *a = arg;
  for (int i = 0; i < SESS_ITEMS; i++) {
    char k[32], u1[64], u2[64];
    snprintf(k, sizeof k, "s%d-%d", a->base, i);
    snprintf(u1, sizeof u1, "https://s/%d/%d?v=1", a->base, i);
    snprintf(u2, sizeof u2, "https://s/%d/%d?v=2", a->base, i);
    bool ok = bulkup_journal_record_session(a->j, k, (uint64_t)i, 7, u1) ==
              BULKUP_OK;
    ok = ok && session_is(a->j, k, (uint64_t)i, 7, u1);
    ok = ok && bulkup_journal_record_session(a->j, k, (uint64_t)i, 7, u2) ==
                   BULKUP_OK;
    ok = ok && session_is(a->j, k, (uint64_t)i, 7, u2);
    if (i % 3 == 0)
      ok = ok && bulkup_journal_record(a->j, k, (uint64_t)i, 7) == BULKUP_OK;
    else if (i % 3 == 1)
      ok = ok && bulkup_journal_record_session(a->j, k, (uint64_t)i, 7,
                                               NULL) == BULKUP_OK;
    /* And plain completions in between, as other workers would. */
    snprintf(k, sizeof k, "c%d-%d", a->base, i);
    ok = ok && bulkup_journal_record(a->j, k, (uint64_t)i, 7) == BULKUP_OK;
    if (!ok)
      return (void *)1;
    (void)bulkup_journal_session_count(a->j);
  }
  return NULL;
}

static void check_threads_state(bulkup_journal *j) {
  CU_ASSERT_EQUAL(bulkup_journal_session_count(j),
                  SESS_THREADS * (SESS_ITEMS / 3));
  CU_ASSERT_EQUAL(bulkup_journal_count(j),
                  SESS_THREADS * (SESS_ITEMS + SESS_ITEMS / 3));
  bool all = true;
  for (int t = 0; t < SESS_THREADS; t++)
    for (int i = 0; i < SESS_ITEMS; i++) {
      char k[32], u2[64];
      snprintf(k, sizeof k, "s%d-%d", t, i);
      snprintf(u2, sizeof u2, "https://s/%d/%d?v=2", t, i);
      all = all && session_is(j, k, (uint64_t)i, 7, i % 3 == 2 ? u2 : NULL);
      all = all && bulkup_journal_contains(j, k, (uint64_t)i, 7) == (i % 3 == 0);
    }
  CU_ASSERT_TRUE(all);
}

static void test_session_threads(void) {
  const char *p = jpath("sess-threads.journal");
  bulkup_journal_options o;
  bulkup_journal_options_init(&o);
  o.sync_every = 64;
  bulkup_journal *j;
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, &o), BULKUP_OK);
  pthread_t th[SESS_THREADS];
  sess_arg args[SESS_THREADS];
  for (int i = 0; i < SESS_THREADS; i++) {
    args[i] = (sess_arg){j, i};
    CU_ASSERT_EQUAL_FATAL(
        pthread_create(&th[i], NULL, session_worker, &args[i]), 0);
  }
  for (int i = 0; i < SESS_THREADS; i++) {
    void *r;
    pthread_join(th[i], &r);
    CU_ASSERT_PTR_NULL(r);
  }
  check_threads_state(j);
  CU_ASSERT_EQUAL(bulkup_journal_close(j), BULKUP_OK);
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_ignored_lines(j), 0);
  check_threads_state(j);
  bulkup_journal_close(j);
}

/* What a journal holds, compared with what a fresh read of its file gives:
 * memory must never say what the file does not. */
static void check_matches_file(bulkup_journal *j, const char *p,
                               const char *const *keys, size_t n) {
  bulkup_journal *r;
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&r, p, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_journal_session_count(r),
                  bulkup_journal_session_count(j));
  CU_ASSERT_EQUAL(bulkup_journal_count(r), bulkup_journal_count(j));
  for (size_t i = 0; i < n; i++) {
    char *a = bulkup_journal_session(j, keys[i], 1, 1);
    char *b = bulkup_journal_session(r, keys[i], 1, 1);
    CU_ASSERT_TRUE(a ? b && strcmp(a, b) == 0 : !b);
    bulkup_free(a);
    bulkup_free(b);
    CU_ASSERT_EQUAL(bulkup_journal_contains(j, keys[i], 1, 1),
                    bulkup_journal_contains(r, keys[i], 1, 1));
  }
  bulkup_journal_close(r);
}

/* Every allocation of each session call fails in turn: the call returns
 * OK or BULKUP_ENOMEM, a failed call changes nothing (in memory or in the
 * file), and nothing leaks (LeakSanitizer in the sanitizer build). */
static void test_session_alloc_fail(void) {
  const char *p = jpath("sess-alloc.journal");
  static const char *const keys[] = {"k0", "k1", "k2", "k3"};
  bulkup_journal *j;
  CU_ASSERT_EQUAL_FATAL(bulkup_journal_open(&j, p, NULL), BULKUP_OK);
  long faulted = 0;
  for (int op = 0; op < 7; op++) {
    for (long n = 0;; n++) {
      const char *k = keys[op % 4];
      char *before = bulkup_journal_session(j, k, 1, 1);
      uint64_t count = bulkup_journal_count(j);
      char url[64];
      snprintf(url, sizeof url, "https://s/%d/%ld", op, n);
      bk_alloc_fail_nth(n);
      bulkup_err rc;
      switch (op) {
      case 0: case 1: case 2: /* open */
      case 4:                 /* replace */
        rc = bulkup_journal_record_session(j, k, 1, 1, url);
        break;
      case 3: /* k3: opened (even n) and forgotten (odd n) in turn */
        rc = bulkup_journal_record_session(j, k, 1, 1, n % 2 ? NULL : url);
        break;
      case 5: /* complete k1 */
        rc = bulkup_journal_record(j, "k1", 1, 1);
        break;
      default: { /* look up */
        char *s = bulkup_journal_session(j, "k2", 1, 1);
        rc = s ? BULKUP_OK : BULKUP_ENOMEM;
        bulkup_free(s);
      }
      }
      bool pending = bk_alloc_fault_pending();
      long made = bk_alloc_fail_nth(-1);
      CU_ASSERT(rc == BULKUP_OK || rc == BULKUP_ENOMEM);
      if (rc == BULKUP_ENOMEM) {
        CU_ASSERT_FALSE(pending);
        faulted++;
        /* Nothing changed. */
        char *after = bulkup_journal_session(j, k, 1, 1);
        CU_ASSERT_TRUE(before ? after && strcmp(before, after) == 0 : !after);
        bulkup_free(after);
        CU_ASSERT_EQUAL(bulkup_journal_count(j), count);
      }
      bulkup_free(before);
      check_matches_file(j, p, keys, BK_ARRAY_LEN(keys));
      if (pending && made <= n)
        break; /* the call no longer reaches the n-th allocation */
    }
  }
  CU_ASSERT(faulted >= 7);
  CU_ASSERT_EQUAL(bulkup_journal_close(j), BULKUP_OK);

  /* Opening a journal with open sessions, every allocation failing in
   * turn: ENOMEM and no journal, or everything read. */
  for (long n = 0;; n++) {
    bulkup_journal *r = (bulkup_journal *)1;
    bk_alloc_fail_nth(n);
    bulkup_err rc = bulkup_journal_open(&r, p, NULL);
    bool pending = bk_alloc_fault_pending();
    long made = bk_alloc_fail_nth(-1);
    if (rc == BULKUP_OK) {
      CU_ASSERT_TRUE(pending);
      CU_ASSERT(bulkup_journal_session_count(r) > 0);
      CU_ASSERT_EQUAL(bulkup_journal_ignored_lines(r), 0);
      bulkup_journal_close(r);
    } else {
      CU_ASSERT_EQUAL(rc, BULKUP_ENOMEM);
      CU_ASSERT_PTR_NULL(r);
    }
    if (pending && made <= n)
      break;
  }
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
  bk_test("session: record, lookup, replace, forget, complete",
          test_session_record_lookup);
  bk_test("session: reopen restores open sessions", test_session_reopen);
  bk_test("session: line format", test_session_line_format);
  bk_test("old journal readable", test_old_journal_readable);
  bk_test("session: torn last line", test_session_torn_last_line);
  bk_test("session: corrupt line ignored", test_session_corrupt_line);
  bk_test("created with mode 0600", test_created_mode_0600);
  bk_test("an existing 0644 journal made private before a session URL",
          test_existing_mode_tightened);
  bk_test("session: threads", test_session_threads);
  bk_test("session: allocation failures", test_session_alloc_fail);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
