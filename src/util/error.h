/* util/error.h - the thread-local error message behind
 * bulkup_last_error_message() (util/error.c). Library only (the message is
 * libbulkup's state). */
#ifndef BK_UTIL_ERROR_H
#define BK_UTIL_ERROR_H

#include "bulkup.h"
#include "util/base.h"

/* The size of the message buffer, its terminating NUL included. */
#define BK_ERROR_MAX 512

/* Set the calling thread's bulkup_last_error_message() and return err. */
bulkup_err bk_error(bulkup_err err, const char *fmt, ...) BK_PRINTF(2, 3);

/* A copy of the calling thread's message, for code that must call
 * something that may overwrite it (a cleanup, a second attempt) and then
 * report the first failure. */
typedef struct bk_error_saved {
  char text[BK_ERROR_MAX];
} bk_error_saved;

void bk_error_save(bk_error_saved *s);
/* Put the saved message back and return err. */
bulkup_err bk_error_restore(const bk_error_saved *s, bulkup_err err);

#endif
