/*
 * bk_test.h - CUnit glue shared by the test programs.
 *
 * A test program defines its suites with bk_suite()/bk_test() inside a
 * register function and calls bk_test_main(argc, argv, register_fn). The
 * program exits 0 only when every assertion passed and every test ran.
 * An optional argument selects one suite by name.
 */
#ifndef BK_TEST_H
#define BK_TEST_H

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

typedef void (*bk_register_fn)(void);

/* Add a suite (with optional setup/teardown) and make it current. */
CU_pSuite bk_suite(const char *name, CU_InitializeFunc init,
                   CU_CleanupFunc clean);
/* Add a test to the current suite. */
void bk_test(const char *name, CU_TestFunc fn);
/* Run everything registered by `reg`; returns the process exit status. */
int bk_test_main(int argc, char **argv, bk_register_fn reg);

struct bulkup_uploader_options;
/* The engine's thread setting for a test run: BULKUP_TEST_THREADS, if set
 * (a number, as bulkup_uploader_options.threads), replaces o->threads, so
 * that a suite runs as well with several transfers per thread as with the
 * default. Tests that set threads themselves do so after this. */
void bk_test_threads(struct bulkup_uploader_options *o);

/* A fresh temporary directory under $TMPDIR (or /tmp), created 0700;
 * the caller frees the string and removes the directory (bk_rm_rf). */
char *bk_tmpdir(const char *tag);
/* Remove a directory tree. Returns 0 on success. */
int bk_rm_rf(const char *path);
/* Write `len` bytes to `path`; returns 0 on success. */
int bk_write_file(const char *path, const void *data, size_t len);
/* Fill buf with deterministic pseudo-random bytes from `seed`. */
void bk_fill_random(void *buf, size_t len, unsigned long long seed);
/* Lower-case hex SHA-256 of data into out[65]. */
void bk_sha256_hex(const void *data, size_t len, char out[65]);
/* The same for a file; returns 0 on success. */
int bk_sha256_file_hex(const char *path, char out[65]);

#endif
