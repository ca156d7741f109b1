/*
 * test_cli_units.c - the command-line tool's parts: manifest reader,
 * percent-encoding, directory walk, the walk of the PATHs (inputs.c),
 * number parsing, progress formatting, array growth.
 */
#include "bk_test.h"

#include "grow.h"
#include "manifest.h"
#include "numparse.h"
#include "progress.h"
#include "report_merge.h"
#include "upload.h"
#include "urlenc.h"
#include "walk.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- manifest ------------------------------------------------------------ */

static manifest_reader *mem_reader(const char *text, size_t len,
                                   manifest_format fmt) {
  /* fmemopen on a copy: the reader owns and closes the stream. */
  FILE *f = fmemopen((void *)text, len, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  manifest_reader *r = manifest_open_stream(f, "m", fmt, true);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  return r;
}

#define READER(lit, fmt) mem_reader(lit, sizeof(lit) - 1, fmt)

static void expect_entry(manifest_reader *r, const char *path,
                         const char *url, unsigned long line) {
  manifest_entry e;
  manifest_status st = manifest_next(r, &e);
  CU_ASSERT_EQUAL(st, MANIFEST_ENTRY);
  if (st != MANIFEST_ENTRY) {
    fprintf(stderr, "\n  expected entry %s, got %d (%s)\n", path, st,
            manifest_error(r));
    return;
  }
  CU_ASSERT_STRING_EQUAL(e.path, path);
  CU_ASSERT_STRING_EQUAL(e.url, url);
  CU_ASSERT_EQUAL(e.line, line);
  if (e.line != line)
    fprintf(stderr, "\n  %s: line %lu, expected %lu\n", path, e.line, line);
}

static void expect_bad(manifest_reader *r, const char *needle) {
  manifest_entry e;
  manifest_status st = manifest_next(r, &e);
  CU_ASSERT_EQUAL(st, MANIFEST_BAD);
  CU_ASSERT_PTR_NOT_NULL(strstr(manifest_error(r), needle));
  if (!strstr(manifest_error(r), needle))
    fprintf(stderr, "\n  error '%s' lacks '%s'\n", manifest_error(r), needle);
}

static void expect_eof(manifest_reader *r) {
  manifest_entry e;
  CU_ASSERT_EQUAL(manifest_next(r, &e), MANIFEST_EOF);
  CU_ASSERT_EQUAL(manifest_next(r, &e), MANIFEST_EOF);
}

static void test_csv_header(void) {
  manifest_reader *r =
      READER("path,url\na.jpg,http://h/a\nb.jpg,https://h/b\n", MANIFEST_AUTO);
  CU_ASSERT_EQUAL(manifest_get_format(r), MANIFEST_CSV);
  expect_entry(r, "a.jpg", "http://h/a", 2);
  expect_entry(r, "b.jpg", "https://h/b", 3);
  expect_eof(r);
  manifest_close(r);
}

static void test_csv_no_header_no_final_newline(void) {
  manifest_reader *r = READER("a.jpg,http://h/a\nb.jpg,http://h/b",
                              MANIFEST_CSV);
  expect_entry(r, "a.jpg", "http://h/a", 1);
  expect_entry(r, "b.jpg", "http://h/b", 2);
  expect_eof(r);
  manifest_close(r);
}

static void test_csv_header_columns(void) {
  /* A header sets the columns, in any order. */
  manifest_reader *r =
      READER("url,title,path,content_type\nhttp://h/a,Tee,a.jpg,\n"
             "http://h/b,,b.png,image/png\n",
             MANIFEST_CSV);
  manifest_entry e;
  CU_ASSERT_EQUAL_FATAL(manifest_next(r, &e), MANIFEST_ENTRY);
  CU_ASSERT_STRING_EQUAL(e.path, "a.jpg");
  CU_ASSERT_STRING_EQUAL(e.url, "http://h/a");
  CU_ASSERT_STRING_EQUAL(e.title, "Tee");
  CU_ASSERT_PTR_NULL(e.content_type);
  CU_ASSERT_EQUAL_FATAL(manifest_next(r, &e), MANIFEST_ENTRY);
  CU_ASSERT_PTR_NULL(e.title);
  CU_ASSERT_STRING_EQUAL(e.content_type, "image/png");
  expect_eof(r);
  manifest_close(r);
  /* Without a header: path,url[,content_type[,title]]. */
  r = READER("a,http://h/a,text/plain,Title A\n", MANIFEST_CSV);
  CU_ASSERT_EQUAL_FATAL(manifest_next(r, &e), MANIFEST_ENTRY);
  CU_ASSERT_STRING_EQUAL(e.content_type, "text/plain");
  CU_ASSERT_STRING_EQUAL(e.title, "Title A");
  manifest_close(r);
  /* With a header, every record has the header's field count. */
  r = READER("path,url\na,http://h/a,extra\n", MANIFEST_CSV);
  expect_bad(r, "line 2: expected 2 fields as in the header, got 3");
  manifest_close(r);
}

static void test_csv_quoted_fields(void) {
  manifest_reader *r =
      READER("\"a,b.jpg\",http://h/1\n"
             "\"say \"\"hi\"\".jpg\",http://h/2\n"
             "\"multi\nline.jpg\",http://h/3\n"
             "next.jpg,\"http://h/4\"\n"
             "\"\"\"\",http://h/5\n",
             MANIFEST_CSV);
  expect_entry(r, "a,b.jpg", "http://h/1", 1);
  expect_entry(r, "say \"hi\".jpg", "http://h/2", 2);
  expect_entry(r, "multi\nline.jpg", "http://h/3", 3);
  expect_entry(r, "next.jpg", "http://h/4", 5);
  expect_entry(r, "\"", "http://h/5", 6);
  expect_eof(r);
  manifest_close(r);
}

static void test_csv_crlf_and_blank_lines(void) {
  manifest_reader *r =
      READER("\r\n\xEF\xBB\xBFpath,url\r\n" /* BOM is only skipped at the
                                               very start: see below */
             "a,http://h/a\r\n",
             MANIFEST_CSV);
  /* A BOM after a blank line is data: "\xEF\xBB\xBFpath" is no column
   * name, so the record is a 2-field data record. */
  expect_entry(r, "\xEF\xBB\xBFpath", "url", 2);
  expect_entry(r, "a", "http://h/a", 3);
  manifest_close(r);

  r = READER("\xEF\xBB\xBFpath,url\r\na,http://h/a\r\n\r\n"
             "\"b\r\nc\",http://h/b\r\n  \r\n\n\nd,http://h/d",
             MANIFEST_AUTO);
  CU_ASSERT_EQUAL(manifest_get_format(r), MANIFEST_CSV);
  expect_entry(r, "a", "http://h/a", 2);
  expect_entry(r, "b\r\nc", "http://h/b", 4);
  expect_entry(r, "d", "http://h/d", 9);
  expect_eof(r);
  manifest_close(r);
}

static void test_csv_bad_lines(void) {
  manifest_reader *r =
      READER("a,http://h/a\n"
             "lonely\n"
             "c,http://h/c,ct,title,extra\n"
             "d\"q,http://h/d\n"
             "\"e\"x,http://h/e\n"
             ",http://h/f\n"
             "g,\n"
             "ok,http://h/ok\n"
             "\"never closed,http://h/z\nmore\n",
             MANIFEST_CSV);
  expect_entry(r, "a", "http://h/a", 1);
  expect_bad(r, "m line 2: expected 2 to 4 fields");
  CU_ASSERT_EQUAL(manifest_error_line(r), 2);
  expect_bad(r, "m line 3: expected 2 to 4 fields");
  expect_bad(r, "m line 4: quote inside an unquoted field");
  expect_bad(r, "m line 5: text after a closing quote");
  expect_bad(r, "m line 6: empty path");
  expect_bad(r, "m line 7: empty url");
  /* Reading goes on after bad records. */
  expect_entry(r, "ok", "http://h/ok", 8);
  expect_bad(r, "m line 9: quoted field opened on line 9 is not closed");
  expect_eof(r);
  manifest_close(r);
}

static void test_csv_nul_and_non_utf8(void) {
  static const char text[] = "\xff\xfe name\x80.jpg,http://h/x\n"
                             "a\0b,http://h/y\n"
                             "z,http://h/z\n";
  manifest_reader *r = mem_reader(text, sizeof text - 1, MANIFEST_AUTO);
  expect_entry(r, "\xff\xfe name\x80.jpg", "http://h/x", 1);
  expect_bad(r, "line 2: NUL byte");
  expect_entry(r, "z", "http://h/z", 3);
  expect_eof(r);
  manifest_close(r);
}

static void test_csv_record_too_long(void) {
  size_t n = MANIFEST_MAX_RECORD + 100;
  char *text = malloc(n + 64);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  memset(text, 'x', n);
  strcpy(text + n, ",http://h/x\nok,http://h/ok\n");
  manifest_reader *r = mem_reader(text, strlen(text), MANIFEST_CSV);
  expect_bad(r, "line 1: record longer than");
  expect_entry(r, "ok", "http://h/ok", 2);
  manifest_close(r);
  free(text);
}

static void test_jsonl_fields(void) {
  manifest_reader *r = READER(
      "\n  \n{\"path\": \"a b.jpg\", \"url\": \"https://h/a\", "
      "\"content_type\": \"image/jpeg\", \"title\": \"T\", \"data_type\": "
      "\"image\", \"extra\": [1, 2]}\r\n"
      "{\"path\":\"caf\\u00e9\\n.png\",\"url\":\"http://h/b\",\"title\":null}\n",
      MANIFEST_AUTO);
  CU_ASSERT_EQUAL(manifest_get_format(r), MANIFEST_JSONL);
  manifest_entry e;
  CU_ASSERT_EQUAL_FATAL(manifest_next(r, &e), MANIFEST_ENTRY);
  CU_ASSERT_STRING_EQUAL(e.path, "a b.jpg");
  CU_ASSERT_STRING_EQUAL(e.url, "https://h/a");
  CU_ASSERT_STRING_EQUAL(e.content_type, "image/jpeg");
  CU_ASSERT_STRING_EQUAL(e.title, "T");
  CU_ASSERT_STRING_EQUAL(e.data_type, "image");
  CU_ASSERT_EQUAL(e.line, 3);
  CU_ASSERT_EQUAL_FATAL(manifest_next(r, &e), MANIFEST_ENTRY);
  CU_ASSERT_STRING_EQUAL(e.path, "caf\xc3\xa9\n.png");
  CU_ASSERT_PTR_NULL(e.title);
  CU_ASSERT_PTR_NULL(e.content_type);
  CU_ASSERT_EQUAL(e.line, 4);
  expect_eof(r);
  manifest_close(r);
}

static void test_jsonl_bad_lines(void) {
  manifest_reader *r =
      READER("{\"path\": \"a\"}\n"
             "[1, 2]\n"
             "\"just a string\"\n"
             "42\n"
             "{\"path\": \"a\", \"url\": \n"
             "{\"path\": 3, \"url\": \"http://h/x\"}\n"
             "{\"path\": \"\", \"url\": \"http://h/x\"}\n"
             "{\"path\": \"a\", \"url\": \"http://h/x\"} junk\n"
             "{'path': 'a', 'url': 'http://h/x'}\n"
             "{\"path\": \"a\\u0000b\", \"url\": \"http://h/x\"}\n"
             "{\"path\": \"ok\", \"url\": \"http://h/ok\"}\n",
             MANIFEST_JSONL);
  expect_bad(r, "m line 1: missing \"url\"");
  expect_bad(r, "m line 2: not a JSON object");
  expect_bad(r, "m line 3: not a JSON object");
  expect_bad(r, "m line 4: not a JSON object");
  expect_bad(r, "m line 5: invalid JSON");
  expect_bad(r, "m line 6: \"path\" must be a string");
  expect_bad(r, "m line 7: empty \"path\"");
  expect_bad(r, "m line 8: invalid JSON");
  expect_bad(r, "m line 9: invalid JSON");
  expect_bad(r, "m line 10: \"path\" holds a NUL");
  expect_entry(r, "ok", "http://h/ok", 11);
  expect_eof(r);
  manifest_close(r);
}

static void test_manifest_format_and_open(void) {
  CU_ASSERT_EQUAL(manifest_format_for_name("x.csv"), MANIFEST_CSV);
  CU_ASSERT_EQUAL(manifest_format_for_name("dir/X.CSV"), MANIFEST_CSV);
  CU_ASSERT_EQUAL(manifest_format_for_name("x.jsonl"), MANIFEST_JSONL);
  CU_ASSERT_EQUAL(manifest_format_for_name("x.ndjson"), MANIFEST_JSONL);
  CU_ASSERT_EQUAL(manifest_format_for_name("x.txt"), MANIFEST_AUTO);
  CU_ASSERT_EQUAL(manifest_format_for_name("d.csv/x"), MANIFEST_AUTO);
  CU_ASSERT_EQUAL(manifest_format_for_name("-"), MANIFEST_AUTO);

  char err[256] = "";
  CU_ASSERT_PTR_NULL(manifest_open("/nonexistent/m.csv", MANIFEST_AUTO, err,
                                   sizeof err));
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot open manifest /nonexistent/m.csv"));

  /* The extension wins over sniffing: a .csv whose first byte is '{'. */
  char *dir = bk_tmpdir("cli-manifest");
  CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
  char path[512];
  snprintf(path, sizeof path, "%s/m.csv", dir);
  static const char text[] = "{weird,http://h/w\n";
  CU_ASSERT_EQUAL(bk_write_file(path, text, sizeof text - 1), 0);
  manifest_reader *r = manifest_open(path, MANIFEST_AUTO, err, sizeof err);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(manifest_get_format(r), MANIFEST_CSV);
  expect_entry(r, "{weird", "http://h/w", 1);
  manifest_close(r);
  /* And a JSONL file sniffed without a telling extension. */
  snprintf(path, sizeof path, "%s/m.txt", dir);
  static const char jtext[] = "\n{\"path\":\"p\",\"url\":\"http://h/p\"}";
  CU_ASSERT_EQUAL(bk_write_file(path, jtext, sizeof jtext - 1), 0);
  r = manifest_open(path, MANIFEST_AUTO, err, sizeof err);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(manifest_get_format(r), MANIFEST_JSONL);
  expect_entry(r, "p", "http://h/p", 2);
  expect_eof(r);
  manifest_close(r);
  /* An empty manifest has no records. */
  r = READER("", MANIFEST_AUTO);
  expect_eof(r);
  manifest_close(r);
  bk_rm_rf(dir);
  free(dir);
}

/* ---- percent-encoding ---------------------------------------------------- */

static void expect_enc(const char *in, size_t len, const char *want) {
  char *got = urlenc_path(in, len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(got);
  CU_ASSERT_STRING_EQUAL(got, want);
  if (strcmp(got, want) != 0)
    fprintf(stderr, "\n  encoded '%s', expected '%s'\n", got, want);
  free(got);
}

#define ENC(lit, want) expect_enc(lit, sizeof(lit) - 1, want)

static void test_urlenc(void) {
  ENC("", "");
  ENC("a b.jpg", "a%20b.jpg");
  ENC("say \"hi\" 'x'", "say%20%22hi%22%20%27x%27");
  ENC("100%", "100%25");
  ENC("a?b#c", "a%3Fb%23c");
  ENC("dir/sub/file.jpg", "dir/sub/file.jpg");
  ENC("AZaz09-._~", "AZaz09-._~");
  ENC("+&=;:@,$!*()[]", "%2B%26%3D%3B%3A%40%2C%24%21%2A%28%29%5B%5D");
  ENC("caf\xc3\xa9", "caf%C3%A9");
  ENC("\xff\xfe\x80", "%FF%FE%80");
  ENC("tab\tnl\ncr\r", "tab%09nl%0Acr%0D");
  ENC("back\\slash", "back%5Cslash");
  /* Embedded NUL: per byte, too. */
  expect_enc("a\0b", 3, "a%00b");

  char *u = urlenc_join("http://h/p/", "a b/c#1.jpg");
  CU_ASSERT_STRING_EQUAL(u, "http://h/p/a%20b/c%231.jpg");
  free(u);
  u = urlenc_join("https://h/p", "x");
  CU_ASSERT_STRING_EQUAL(u, "https://h/p/x");
  free(u);
  u = urlenc_join("http://h//", "x");
  CU_ASSERT_STRING_EQUAL(u, "http://h/x");
  free(u);
}

static void test_url_is_http(void) {
  CU_ASSERT_TRUE(url_is_http("http://h"));
  CU_ASSERT_TRUE(url_is_http("https://h:8443/a/b?x=1"));
  CU_ASSERT_TRUE(url_is_http("HTTPS://H/x"));
  CU_ASSERT_TRUE(url_is_http("http://user@h/x"));
  CU_ASSERT_TRUE(url_is_http("http://[::1]:80/x"));
  CU_ASSERT_FALSE(url_is_http(NULL));
  CU_ASSERT_FALSE(url_is_http(""));
  CU_ASSERT_FALSE(url_is_http("file:///tmp/x"));
  CU_ASSERT_FALSE(url_is_http("ftp://h/x"));
  CU_ASSERT_FALSE(url_is_http("gopher://h/x"));
  CU_ASSERT_FALSE(url_is_http("http:/h/x"));
  CU_ASSERT_FALSE(url_is_http("http://"));
  CU_ASSERT_FALSE(url_is_http("http:///x"));
  CU_ASSERT_FALSE(url_is_http("http://user@/x"));
  CU_ASSERT_FALSE(url_is_http("http://:80/x"));
  CU_ASSERT_FALSE(url_is_http("http://h/a b"));
  CU_ASSERT_FALSE(url_is_http("http://h/a\r\nX: y"));
  CU_ASSERT_FALSE(url_is_http(" http://h/x"));
  CU_ASSERT_FALSE(url_is_http("httpx://h/x"));
}

/* ---- directory walk ------------------------------------------------------ */

static char *walk_root;

static void mkfile(const char *rel, size_t size) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", walk_root, rel);
  char *buf = malloc(size + 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  bk_fill_random(buf, size, size);
  CU_ASSERT_EQUAL(bk_write_file(path, buf, size), 0);
  free(buf);
}

static void mkdir_rel(const char *rel) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", walk_root, rel);
  CU_ASSERT_EQUAL(mkdir(path, 0700), 0);
}

static void symlink_rel(const char *target, const char *rel) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", walk_root, rel);
  CU_ASSERT_EQUAL(symlink(target, path), 0);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Walk `root`; the sorted "rel:size" list of files, and the skip notes. */
static size_t walk_all(const char *root, char **files, size_t max,
                       size_t *nskips, size_t *nerrors, char *skips,
                       size_t skiplen) {
  walk *w = walk_open(root);
  CU_ASSERT_PTR_NOT_NULL_FATAL(w);
  size_t n = 0;
  *nskips = *nerrors = 0;
  skips[0] = '\0';
  walk_status st;
  while ((st = walk_next(w)) != WALK_DONE) {
    if (st == WALK_FILE) {
      /* The path is the root without trailing slashes, '/', rel. */
      char expect_path[2048];
      size_t rl = strlen(root);
      while (rl > 1 && root[rl - 1] == '/')
        rl--;
      snprintf(expect_path, sizeof expect_path, "%.*s/%s", (int)rl, root,
               walk_rel(w));
      CU_ASSERT_STRING_EQUAL(walk_path(w), expect_path);
      struct stat sb;
      CU_ASSERT_EQUAL(stat(walk_path(w), &sb), 0);
      CU_ASSERT_EQUAL((uint64_t)sb.st_size, walk_size(w));
      if (n < max) {
        char buf[1200];
        snprintf(buf, sizeof buf, "%s:%llu", walk_rel(w),
                 (unsigned long long)walk_size(w));
        files[n++] = strdup(buf);
      }
    } else if (st == WALK_SKIP) {
      (*nskips)++;
      strncat(skips, walk_message(w), skiplen - strlen(skips) - 2);
      strcat(skips, "|");
    } else {
      (*nerrors)++;
    }
  }
  walk_close(w);
  qsort(files, n, sizeof *files, cmp_str);
  return n;
}

static void test_walk_tree(void) {
  walk_root = bk_tmpdir("cli-walk");
  CU_ASSERT_PTR_NOT_NULL_FATAL(walk_root);
  mkfile("a.txt", 10);
  mkdir_rel("d1");
  mkfile("d1/b.bin", 0);
  mkdir_rel("d1/d2");
  mkfile("d1/d2/c.jpg", 3000);
  mkdir_rel("sp ace");
  mkfile("sp ace/na me \"q\".txt", 5);
  mkfile("nl\nname.txt", 7);
  mkfile("\xff\xfe.bin", 1);
  mkdir_rel("empty");
  /* Symlink policy: links to files are followed, links to directories
   * and broken links are skipped, and a cycle does not loop. */
  symlink_rel("a.txt", "link-to-file");
  symlink_rel("d2/c.jpg", "d1/deep-link");
  symlink_rel("d1", "link-to-dir");
  symlink_rel("..", "d1/d2/loop");
  symlink_rel("missing-target", "broken");
  char fifo[1024];
  snprintf(fifo, sizeof fifo, "%s/fifo", walk_root);
  CU_ASSERT_EQUAL(mkfifo(fifo, 0600), 0);

  char *files[32];
  size_t nskips, nerrors;
  char skips[4096];
  size_t n = walk_all(walk_root, files, 32, &nskips, &nerrors, skips,
                      sizeof skips);
  static const char *const want[] = {
      "a.txt:10",       "d1/b.bin:0",         "d1/d2/c.jpg:3000",
      "d1/deep-link:3000", "link-to-file:10", "nl\nname.txt:7",
      "sp ace/na me \"q\".txt:5", "\xff\xfe.bin:1"};
  size_t nwant = sizeof want / sizeof want[0];
  CU_ASSERT_EQUAL(n, nwant);
  for (size_t i = 0; i < n && i < nwant; i++) {
    CU_ASSERT_STRING_EQUAL(files[i], want[i]);
    if (strcmp(files[i], want[i]) != 0)
      fprintf(stderr, "\n  walk: got '%s', expected '%s'\n", files[i],
              want[i]);
  }
  for (size_t i = 0; i < n; i++)
    free(files[i]);
  CU_ASSERT_EQUAL(nerrors, 0);
  CU_ASSERT_EQUAL(nskips, 4); /* link-to-dir, loop, broken, fifo */
  CU_ASSERT_PTR_NOT_NULL(strstr(skips, "link-to-dir: symbolic link to a directory"));
  CU_ASSERT_PTR_NOT_NULL(strstr(skips, "loop: symbolic link to a directory"));
  CU_ASSERT_PTR_NOT_NULL(strstr(skips, "broken: broken symbolic link"));
  CU_ASSERT_PTR_NOT_NULL(strstr(skips, "fifo: not a regular file"));

  /* A trailing slash on the root changes nothing in the relative paths. */
  char slashed[1024];
  snprintf(slashed, sizeof slashed, "%s/d1//", walk_root);
  n = walk_all(slashed, files, 32, &nskips, &nerrors, skips, sizeof skips);
  CU_ASSERT_EQUAL(n, 3);
  if (n == 3) {
    CU_ASSERT_STRING_EQUAL(files[0], "b.bin:0");
    CU_ASSERT_STRING_EQUAL(files[1], "d2/c.jpg:3000");
    CU_ASSERT_STRING_EQUAL(files[2], "deep-link:3000");
  }
  for (size_t i = 0; i < n; i++)
    free(files[i]);

  /* The root may itself be a link to a directory. */
  char viaLink[1024];
  snprintf(viaLink, sizeof viaLink, "%s/link-to-dir", walk_root);
  n = walk_all(viaLink, files, 32, &nskips, &nerrors, skips, sizeof skips);
  CU_ASSERT_EQUAL(n, 3);
  for (size_t i = 0; i < n; i++)
    free(files[i]);

  bk_rm_rf(walk_root);
  free(walk_root);
  walk_root = NULL;
}

static void test_walk_errors(void) {
  errno = 0;
  CU_ASSERT_PTR_NULL(walk_open("/nonexistent/dir"));
  CU_ASSERT_EQUAL(errno, ENOENT);
  walk_root = bk_tmpdir("cli-walk2");
  CU_ASSERT_PTR_NOT_NULL_FATAL(walk_root);
  mkfile("f", 1);
  char f[1024];
  snprintf(f, sizeof f, "%s/f", walk_root);
  errno = 0;
  CU_ASSERT_PTR_NULL(walk_open(f));
  CU_ASSERT_EQUAL(errno, ENOTDIR);
  /* An unreadable subdirectory is an error; the walk goes on. Root can
   * read anything, so this part only runs for other users. */
  if (geteuid() != 0) {
    mkdir_rel("locked");
    mkfile("locked/x", 1);
    char locked[1024];
    snprintf(locked, sizeof locked, "%s/locked", walk_root);
    CU_ASSERT_EQUAL(chmod(locked, 0), 0);
    char *files[8];
    size_t nskips, nerrors;
    char skips[1024];
    size_t n = walk_all(walk_root, files, 8, &nskips, &nerrors, skips,
                        sizeof skips);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(nerrors, 1);
    for (size_t i = 0; i < n; i++)
      free(files[i]);
    chmod(locked, 0700);
  }
  bk_rm_rf(walk_root);
  free(walk_root);
  walk_root = NULL;
}

/* ---- the walk of the PATHs (inputs.c) ------------------------------------ */

typedef struct seen {
  char keys[16][64];
  char paths[16][1024];
  uint64_t sizes[16];
  size_t n;
  size_t stop_at; /* return 42 at this file (1-based); 0: never */
} seen;

static int cmp_key(const void *a, const void *b) {
  return strcmp((const char *)a, (const char *)b);
}

static int see_file(void *arg, const upload_file *f) {
  seen *s = arg;
  CU_ASSERT_FATAL(s->n < 16);
  snprintf(s->keys[s->n], sizeof s->keys[0], "%s", f->key);
  snprintf(s->paths[s->n], sizeof s->paths[0], "%s", f->path);
  s->sizes[s->n] = f->size;
  s->n++;
  return s->stop_at && s->n == s->stop_at ? 42 : -1;
}

static void test_walk_paths(void) {
  walk_root = bk_tmpdir("cli-paths");
  CU_ASSERT_PTR_NOT_NULL_FATAL(walk_root);
  /* Byte order of whole paths: "a-c" (0x2d) before "a/b" (0x2f). */
  mkdir_rel("d");
  mkdir_rel("d/a");
  mkfile("d/a/b", 3);
  mkfile("d/a-c", 5);
  mkfile("d/B", 7);
  symlink_rel("a", "d/link-to-dir");
  char fifo[1024];
  snprintf(fifo, sizeof fifo, "%s/d/fifo", walk_root);
  CU_ASSERT_EQUAL(mkfifo(fifo, 0600), 0);
  mkfile("one.bin", 11);
  char dir[1024], file[1024];
  snprintf(dir, sizeof dir, "%s/d", walk_root);
  snprintf(file, sizeof file, "%s/one.bin", walk_root);
  char *paths[] = {file, dir};
  upload_cli c;
  memset(&c, 0, sizeof c);
  c.paths = paths;
  c.npaths = 2;
  c.quiet = true; /* the skip notes are not this test's */

  /* The check, sorted: the file PATH keyed by its base name, then the
   * directory's files in byte order; the link to a directory and the FIFO
   * skipped. */
  seen s;
  memset(&s, 0, sizeof s);
  upload_walk w = {.pass = UPLOAD_WALK_CHECK,
                   .sizes = true,
                   .sorted = true,
                   .file = see_file,
                   .arg = &s};
  CU_ASSERT_EQUAL(upload_walk_paths(&c, &w), -1);
  CU_ASSERT_EQUAL(w.input, 4);
  CU_ASSERT_EQUAL_FATAL(s.n, 4);
  CU_ASSERT_STRING_EQUAL(s.keys[0], "one.bin");
  CU_ASSERT_STRING_EQUAL(s.paths[0], file);
  CU_ASSERT_EQUAL(s.sizes[0], 11);
  CU_ASSERT_STRING_EQUAL(s.keys[1], "B");
  CU_ASSERT_STRING_EQUAL(s.keys[2], "a-c");
  CU_ASSERT_STRING_EQUAL(s.keys[3], "a/b");
  CU_ASSERT_EQUAL(s.sizes[1], 7);
  CU_ASSERT_EQUAL(s.sizes[2], 5);
  CU_ASSERT_EQUAL(s.sizes[3], 3);
  char expect[1100];
  snprintf(expect, sizeof expect, "%s/a/b", dir);
  CU_ASSERT_STRING_EQUAL(s.paths[3], expect);

  /* The second walk, streamed without sizes: the same files (in directory
   * order), no problems. */
  memset(&s, 0, sizeof s);
  w = (upload_walk){.pass = UPLOAD_WALK_AGAIN, .file = see_file, .arg = &s};
  CU_ASSERT_EQUAL(upload_walk_paths(&c, &w), -1);
  CU_ASSERT_EQUAL(w.input, 4);
  CU_ASSERT_EQUAL(w.problems, 0);
  CU_ASSERT_EQUAL_FATAL(s.n, 4);
  CU_ASSERT_STRING_EQUAL(s.keys[0], "one.bin");
  qsort(s.keys[1], 3, sizeof s.keys[0], cmp_key);
  CU_ASSERT_STRING_EQUAL(s.keys[1], "B");
  CU_ASSERT_STRING_EQUAL(s.keys[2], "a-c");
  CU_ASSERT_STRING_EQUAL(s.keys[3], "a/b");

  /* What the callback returns ends the walk, and is returned. */
  memset(&s, 0, sizeof s);
  s.stop_at = 2;
  w = (upload_walk){
      .pass = UPLOAD_WALK_CHECK, .sorted = true, .file = see_file, .arg = &s};
  CU_ASSERT_EQUAL(upload_walk_paths(&c, &w), 42);
  CU_ASSERT_EQUAL(s.n, 2);

  /* A shard gets the files whose key hashes to it; the input counts all. */
  uint64_t total = 0;
  for (uint32_t k = 0; k < 3; k++) {
    c.shard_k = k;
    c.shard_n = 3;
    memset(&s, 0, sizeof s);
    w = (upload_walk){
        .pass = UPLOAD_WALK_CHECK, .sorted = true, .file = see_file, .arg = &s};
    CU_ASSERT_EQUAL(upload_walk_paths(&c, &w), -1);
    CU_ASSERT_EQUAL(w.input, 4);
    for (size_t i = 0; i < s.n; i++)
      CU_ASSERT_TRUE(upload_in_shard(&c, s.keys[i], strlen(s.keys[i])));
    total += s.n;
  }
  CU_ASSERT_EQUAL(total, 4);
  c.shard_n = 0;
  c.shard_k = 0;

  /* A PATH that is neither a file nor a directory: bad input before any
   * file is given; in the second walk, it is given as a file (its item
   * then fails). */
  char *bad_paths[] = {fifo, file};
  c.paths = bad_paths;
  memset(&s, 0, sizeof s);
  w = (upload_walk){.pass = UPLOAD_WALK_CHECK, .file = see_file, .arg = &s};
  CU_ASSERT_EQUAL(upload_walk_paths(&c, &w), 2);
  CU_ASSERT_EQUAL(s.n, 0);
  memset(&s, 0, sizeof s);
  w = (upload_walk){.pass = UPLOAD_WALK_AGAIN, .file = see_file, .arg = &s};
  CU_ASSERT_EQUAL(upload_walk_paths(&c, &w), -1);
  CU_ASSERT_EQUAL_FATAL(s.n, 2);
  CU_ASSERT_STRING_EQUAL(s.keys[0], "fifo");

  /* An unreadable subdirectory: named, and the check ends as bad input
   * after the walk; the second walk counts it and goes on. Root reads
   * anything, so this part only runs for other users. */
  if (geteuid() != 0) {
    c.paths = paths;
    mkdir_rel("d/locked");
    char locked[1100];
    snprintf(locked, sizeof locked, "%s/locked", dir);
    CU_ASSERT_EQUAL(chmod(locked, 0), 0);
    memset(&s, 0, sizeof s);
    w = (upload_walk){.pass = UPLOAD_WALK_CHECK, .file = see_file, .arg = &s};
    CU_ASSERT_EQUAL(upload_walk_paths(&c, &w), 2);
    CU_ASSERT_EQUAL(s.n, 4);
    memset(&s, 0, sizeof s);
    w = (upload_walk){.pass = UPLOAD_WALK_AGAIN, .file = see_file, .arg = &s};
    CU_ASSERT_EQUAL(upload_walk_paths(&c, &w), -1);
    CU_ASSERT_EQUAL(s.n, 4);
    CU_ASSERT_EQUAL(w.problems, 1);
    chmod(locked, 0700);
  }
  bk_rm_rf(walk_root);
  free(walk_root);
  walk_root = NULL;
}

/* ---- numbers ------------------------------------------------------------- */

static void test_parse_long(void) {
  long v = -7;
  CU_ASSERT_EQUAL(num_parse_long("8", 1, 1024, &v), NUM_OK);
  CU_ASSERT_EQUAL(v, 8);
  CU_ASSERT_EQUAL(num_parse_long("1024", 1, 1024, &v), NUM_OK);
  CU_ASSERT_EQUAL(v, 1024);
  CU_ASSERT_EQUAL(num_parse_long("+3", 0, 10, &v), NUM_OK);
  CU_ASSERT_EQUAL(v, 3);
  CU_ASSERT_EQUAL(num_parse_long("0", 0, 10, &v), NUM_OK);
  CU_ASSERT_EQUAL(v, 0);
  v = 99;
  CU_ASSERT_EQUAL(num_parse_long("1025", 1, 1024, &v), NUM_RANGE);
  CU_ASSERT_EQUAL(num_parse_long("0", 1, 1024, &v), NUM_RANGE);
  CU_ASSERT_EQUAL(num_parse_long("-1", 0, 10, &v), NUM_RANGE);
  CU_ASSERT_EQUAL(num_parse_long("99999999999999999999999", 0, 10, &v),
                  NUM_RANGE);
  CU_ASSERT_EQUAL(num_parse_long("", 0, 10, &v), NUM_EMPTY);
  CU_ASSERT_EQUAL(num_parse_long(NULL, 0, 10, &v), NUM_EMPTY);
  CU_ASSERT_EQUAL(num_parse_long(" 8", 0, 10, &v), NUM_SYNTAX);
  CU_ASSERT_EQUAL(num_parse_long("8 ", 0, 10, &v), NUM_SYNTAX);
  CU_ASSERT_EQUAL(num_parse_long("8x", 0, 10, &v), NUM_SYNTAX);
  CU_ASSERT_EQUAL(num_parse_long("0x10", 0, 100, &v), NUM_SYNTAX);
  CU_ASSERT_EQUAL(num_parse_long("1.5", 0, 10, &v), NUM_SYNTAX);
  CU_ASSERT_EQUAL(num_parse_long("-", 0, 10, &v), NUM_SYNTAX);
  CU_ASSERT_EQUAL(num_parse_long("eight", 0, 10, &v), NUM_SYNTAX);
  CU_ASSERT_EQUAL(v, 99); /* untouched on failure */
}

static void test_parse_double(void) {
  double d = -1;
  CU_ASSERT_EQUAL(num_parse_double("1.5", 0, 100, &d), NUM_OK);
  CU_ASSERT_DOUBLE_EQUAL(d, 1.5, 1e-12);
  CU_ASSERT_EQUAL(num_parse_double("0.25", 0, 100, &d), NUM_OK);
  CU_ASSERT_DOUBLE_EQUAL(d, 0.25, 1e-12);
  CU_ASSERT_EQUAL(num_parse_double(".5", 0, 100, &d), NUM_OK);
  CU_ASSERT_DOUBLE_EQUAL(d, 0.5, 1e-12);
  CU_ASSERT_EQUAL(num_parse_double("5.", 0, 100, &d), NUM_OK);
  CU_ASSERT_DOUBLE_EQUAL(d, 5.0, 1e-12);
  CU_ASSERT_EQUAL(num_parse_double("1e-3", 0, 100, &d), NUM_OK);
  CU_ASSERT_DOUBLE_EQUAL(d, 0.001, 1e-15);
  CU_ASSERT_EQUAL(num_parse_double("2E+1", 0, 100, &d), NUM_OK);
  CU_ASSERT_DOUBLE_EQUAL(d, 20.0, 1e-12);
  CU_ASSERT_EQUAL(num_parse_double("0", 0, 100, &d), NUM_OK);
  CU_ASSERT_DOUBLE_EQUAL(d, 0.0, 0);
  d = 42;
  CU_ASSERT_EQUAL(num_parse_double("-0.1", 0, 100, &d), NUM_RANGE);
  CU_ASSERT_EQUAL(num_parse_double("100.5", 0, 100, &d), NUM_RANGE);
  CU_ASSERT_EQUAL(num_parse_double("1e400", 0, 1e9, &d), NUM_RANGE);
  CU_ASSERT_EQUAL(num_parse_double("nan", 0, 100, &d), NUM_SYNTAX);
  CU_ASSERT_EQUAL(num_parse_double("inf", 0, 100, &d), NUM_SYNTAX);
  CU_ASSERT_EQUAL(num_parse_double("0x1p3", 0, 100, &d), NUM_SYNTAX);
  CU_ASSERT_EQUAL(num_parse_double("", 0, 100, &d), NUM_EMPTY);
  CU_ASSERT_EQUAL(num_parse_double("1.5s", 0, 100, &d), NUM_SYNTAX);
  CU_ASSERT_EQUAL(num_parse_double(" 1", 0, 100, &d), NUM_SYNTAX);
  CU_ASSERT_EQUAL(num_parse_double("1 ", 0, 100, &d), NUM_SYNTAX);
  CU_ASSERT_EQUAL(num_parse_double(".", 0, 100, &d), NUM_SYNTAX);
  CU_ASSERT_EQUAL(num_parse_double("1e", 0, 100, &d), NUM_SYNTAX);
  CU_ASSERT_EQUAL(num_parse_double("1,5", 0, 100, &d), NUM_SYNTAX);
  CU_ASSERT_DOUBLE_EQUAL(d, 42, 0); /* untouched on failure */
  CU_ASSERT_STRING_EQUAL(num_status_text(NUM_RANGE), "is out of range");
  CU_ASSERT_STRING_EQUAL(num_status_text(NUM_SYNTAX), "is not a number");
}

/* ---- progress line ------------------------------------------------------- */

static void test_progress_format(void) {
  char buf[512];
  progress_human_bytes(buf, sizeof buf, 0);
  CU_ASSERT_STRING_EQUAL(buf, "0 B");
  progress_human_bytes(buf, sizeof buf, 999);
  CU_ASSERT_STRING_EQUAL(buf, "999 B");
  progress_human_bytes(buf, sizeof buf, 1500);
  CU_ASSERT_STRING_EQUAL(buf, "1.5 kB");
  progress_human_bytes(buf, sizeof buf, 2.5e6);
  CU_ASSERT_STRING_EQUAL(buf, "2.5 MB");
  progress_human_bytes(buf, sizeof buf, 3e12);
  CU_ASSERT_STRING_EQUAL(buf, "3.0 TB");
  progress_human_duration(buf, sizeof buf, 7);
  CU_ASSERT_STRING_EQUAL(buf, "0:07");
  progress_human_duration(buf, sizeof buf, 754);
  CU_ASSERT_STRING_EQUAL(buf, "12:34");
  progress_human_duration(buf, sizeof buf, 3723);
  CU_ASSERT_STRING_EQUAL(buf, "1:02:03");
  progress_human_duration(buf, sizeof buf, -1);
  CU_ASSERT_STRING_EQUAL(buf, "--:--");

  bulkup_progress p;
  memset(&p, 0, sizeof p);
  p.submitted = 500;
  p.succeeded = 410;
  p.failed = 2;
  p.retries = 3;
  p.bytes_succeeded = 41000000;
  progress_totals t = {true, 1000, 100000000};
  progress_rates r = {10.0, 2e6, 1e6};
  progress_format(buf, sizeof buf, &p, &t, &r);
  CU_ASSERT_STRING_EQUAL(buf, "412/1000 files  41.0 MB/100.0 MB  10.0 files/s"
                              "  2.0 MB/s  ETA 0:59  retries 3  failed 2");
  /* Unknown totals: done/submitted, no ETA; cancellations shown. */
  t.known = false;
  p.cancelled = 4;
  progress_format(buf, sizeof buf, &p, &t, &r);
  CU_ASSERT_STRING_EQUAL(buf, "416/500 files  41.0 MB  10.0 files/s  2.0 MB/s"
                              "  retries 3  failed 2  cancelled 4");
  /* The transfers allowed in flight, when the library says. */
  p.concurrency = 64;
  progress_format(buf, sizeof buf, &p, &t, &r);
  CU_ASSERT_STRING_EQUAL(buf, "416/500 files  41.0 MB  10.0 files/s  2.0 MB/s"
                              "  64 transfers  retries 3  failed 2"
                              "  cancelled 4");
  /* A small buffer truncates without overflowing. */
  char small[16];
  progress_format(small, sizeof small, &p, &t, &r);
  CU_ASSERT_EQUAL(strlen(small), sizeof small - 1);
}

static void test_parse_size(void) {
  unsigned long long v = 0;
  CU_ASSERT_EQUAL(num_parse_size("64M", 0, 1ULL << 40, &v), NUM_OK);
  CU_ASSERT_EQUAL(v, 64ULL << 20);
  CU_ASSERT_EQUAL(num_parse_size("256KiB", 0, 1ULL << 40, &v), NUM_OK);
  CU_ASSERT_EQUAL(v, 256ULL << 10);
  CU_ASSERT_EQUAL(num_parse_size("1g", 0, 1ULL << 40, &v), NUM_OK);
  CU_ASSERT_EQUAL(v, 1ULL << 30);
  CU_ASSERT_EQUAL(num_parse_size("100", 0, 1ULL << 40, &v), NUM_OK);
  CU_ASSERT_EQUAL(v, 100);
  CU_ASSERT_EQUAL(num_parse_size("", 0, 10, &v), NUM_EMPTY);
  CU_ASSERT_EQUAL(num_parse_size("-1", 0, 10, &v), NUM_SYNTAX);
  CU_ASSERT_EQUAL(num_parse_size(" 1", 0, 10, &v), NUM_SYNTAX);
  CU_ASSERT_EQUAL(num_parse_size("1Q", 0, 10, &v), NUM_SYNTAX);
  CU_ASSERT_EQUAL(num_parse_size("1MiBs", 0, 1ULL << 40, &v), NUM_SYNTAX);
  CU_ASSERT_EQUAL(num_parse_size("2T", 0, 1ULL << 40, &v), NUM_RANGE);
  CU_ASSERT_EQUAL(num_parse_size("1K", 2048, 1ULL << 40, &v), NUM_RANGE);
  CU_ASSERT_EQUAL(num_parse_size("99999999999999999999", 0, ~0ULL, &v),
                  NUM_RANGE);
}

/* A report written to a pipe or a device goes into it: the path is not
 * replaced by a regular file (it used to be renamed over, which replaced
 * /dev/null itself when run as root). */
static void test_write_file_not_regular(void) {
  int p[2];
  CU_ASSERT_FATAL(pipe(p) == 0);
  char path[64], err[256] = "";
  snprintf(path, sizeof path, "/proc/self/fd/%d", p[1]);
  CU_ASSERT_EQUAL(cli_write_file_atomic(path, "{\"a\": 1}\n", 9, err,
                                        sizeof err), 0);
  char got[32] = "";
  CU_ASSERT_EQUAL(read(p[0], got, sizeof got - 1), 9);
  CU_ASSERT_STRING_EQUAL(got, "{\"a\": 1}\n");
  struct stat st;
  CU_ASSERT_EQUAL(stat(path, &st), 0);
  CU_ASSERT_TRUE(S_ISFIFO(st.st_mode));
  close(p[0]);
  close(p[1]);
  /* A regular file is still replaced atomically. */
  char *dir = bk_tmpdir("atomic");
  CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
  char file[1024];
  snprintf(file, sizeof file, "%s/r.json", dir);
  CU_ASSERT_EQUAL(cli_write_file_atomic(file, "one", 3, err, sizeof err), 0);
  CU_ASSERT_EQUAL(cli_write_file_atomic(file, "two!", 4, err, sizeof err), 0);
  CU_ASSERT_EQUAL(stat(file, &st), 0);
  CU_ASSERT_TRUE(S_ISREG(st.st_mode));
  CU_ASSERT_EQUAL(st.st_size, 4);
  bk_rm_rf(dir);
  free(dir);
}

/* ---- array growth -------------------------------------------------------- */

static void test_grow(void) {
  void *p = NULL;
  size_t cap = 0;
  /* From nothing: the first room, doubled until it holds `need`. */
  CU_ASSERT_TRUE(cli_grow(&p, &cap, 1, sizeof(int), 64));
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT_EQUAL(cap, 64);
  int *v = p;
  for (int i = 0; i < 64; i++)
    v[i] = i;
  /* Enough room: nothing moves. */
  CU_ASSERT_TRUE(cli_grow(&p, &cap, 64, sizeof(int), 64));
  CU_ASSERT_PTR_EQUAL(p, v);
  CU_ASSERT_EQUAL(cap, 64);
  /* One more: twice the room, the contents kept. */
  CU_ASSERT_TRUE(cli_grow(&p, &cap, 65, sizeof(int), 64));
  CU_ASSERT_EQUAL(cap, 128);
  v = p;
  CU_ASSERT_EQUAL(v[0], 0);
  CU_ASSERT_EQUAL(v[63], 63);
  /* Far more: doubled as often as it takes. */
  CU_ASSERT_TRUE(cli_grow(&p, &cap, 1000, sizeof(int), 64));
  CU_ASSERT_EQUAL(cap, 1024);
  v = p;
  CU_ASSERT_EQUAL(v[63], 63);
  /* A size that does not fit in a size_t fails with ENOMEM, and the array
   * is left as it was. */
  errno = 0;
  CU_ASSERT_FALSE(cli_grow(&p, &cap, SIZE_MAX / 2 + 2, sizeof(int), 64));
  CU_ASSERT_EQUAL(errno, ENOMEM);
  errno = 0;
  CU_ASSERT_FALSE(cli_grow(&p, &cap, SIZE_MAX / 4, sizeof(int), 64));
  CU_ASSERT_EQUAL(errno, ENOMEM);
  CU_ASSERT_PTR_EQUAL(p, v);
  CU_ASSERT_EQUAL(cap, 1024);
  CU_ASSERT_EQUAL(v[63], 63);
  free(p);
  /* A room of 0 given as the first starts from 1. */
  p = NULL;
  cap = 0;
  CU_ASSERT_TRUE(cli_grow(&p, &cap, 3, 1, 0));
  CU_ASSERT_EQUAL(cap, 4);
  free(p);
}

static void reg(void) {
  bk_suite("cli_manifest", NULL, NULL);
  bk_test("csv with header", test_csv_header);
  bk_test("csv without header or final newline",
          test_csv_no_header_no_final_newline);
  bk_test("csv header sets columns", test_csv_header_columns);
  bk_test("csv quoted fields", test_csv_quoted_fields);
  bk_test("csv crlf and blank lines", test_csv_crlf_and_blank_lines);
  bk_test("csv bad lines", test_csv_bad_lines);
  bk_test("csv NUL and non-UTF-8 bytes", test_csv_nul_and_non_utf8);
  bk_test("csv record too long", test_csv_record_too_long);
  bk_test("jsonl fields", test_jsonl_fields);
  bk_test("jsonl bad lines", test_jsonl_bad_lines);
  bk_test("format by name, sniffing, open errors",
          test_manifest_format_and_open);
  bk_suite("cli_urlenc", NULL, NULL);
  bk_test("percent-encoding", test_urlenc);
  bk_test("http(s) URL check", test_url_is_http);
  bk_suite("cli_walk", NULL, NULL);
  bk_test("tree, names and symlink policy", test_walk_tree);
  bk_test("errors", test_walk_errors);
  bk_test("the PATHs: one walk, sorted or streamed, passes, shards",
          test_walk_paths);
  bk_suite("cli_numbers", NULL, NULL);
  bk_test("whole numbers", test_parse_long);
  bk_test("seconds", test_parse_double);
  bk_test("sizes", test_parse_size);
  bk_suite("cli_write", NULL, NULL);
  bk_test("pipes and devices are written into, not replaced",
          test_write_file_not_regular);
  bk_suite("cli_progress", NULL, NULL);
  bk_test("progress line", test_progress_format);
  bk_suite("cli_grow", NULL, NULL);
  bk_test("doubling, kept contents, overflow", test_grow);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
