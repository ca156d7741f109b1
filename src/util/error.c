/* util/error.c - error names and texts, and the thread-local message. */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char bk_last_error[BK_ERROR_MAX];

const char *bulkup_strerror(int err) {
  switch (err) {
  case BULKUP_OK:
    return "success";
#define BK_ERR_TEXT(name, value, text)                                        \
  case BULKUP_##name:                                                         \
    return text;
    BULKUP_ERRNO_MAP(BK_ERR_TEXT)
#undef BK_ERR_TEXT
  default:
    return "unknown error";
  }
}

const char *bulkup_err_name(int err) {
  switch (err) {
  case BULKUP_OK:
    return "OK";
#define BK_ERR_NAME(name, value, text)                                        \
  case BULKUP_##name:                                                         \
    return #name;
    BULKUP_ERRNO_MAP(BK_ERR_NAME)
#undef BK_ERR_NAME
  default:
    return "UNKNOWN";
  }
}

const char *bulkup_last_error_message(void) { return bk_last_error; }

bulkup_err bk_error(bulkup_err err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(bk_last_error, sizeof(bk_last_error), fmt, ap);
  va_end(ap);
  return err;
}

void bk_error_save(bk_error_saved *s) {
  memcpy(s->text, bk_last_error, sizeof s->text);
}

bulkup_err bk_error_restore(const bk_error_saved *s, bulkup_err err) {
  memcpy(bk_last_error, s->text, sizeof bk_last_error);
  bk_last_error[sizeof bk_last_error - 1] = '\0';
  return err;
}
