/*
 * bulkup/common.h - export macro, error codes and error detail.
 *
 * Included by <bulkup.h>; do not include it directly.
 */
#ifndef BULKUP_COMMON_H
#define BULKUP_COMMON_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * BULKUP_EXTERN marks the declarations the shared library exports (its
 * other symbols are hidden). A program linking the static library defines
 * BULKUP_STATIC (CMake's bulkup::bulkup_static does it), which makes it
 * empty.
 */
#if defined(BULKUP_STATIC)
#define BULKUP_EXTERN
#elif defined(__GNUC__) && __GNUC__ >= 4
#define BULKUP_EXTERN __attribute__((visibility("default")))
#else
#define BULKUP_EXTERN
#endif

/*
 * The error table: one row per code, (NAME, value, text).
 *
 * A released code never changes its value or its meaning; new codes are
 * added at the end with the next free negative value. BULKUP_OK is 0.
 * Detail (a libcurl or OpenSSL message, the name of a bad field) is not a
 * code of its own: it is in bulkup_last_error_message() or in the item's
 * result text.
 */
#define BULKUP_ERRNO_MAP(XX)                                                  \
  XX(EINVAL, -1, "invalid argument")                                          \
  XX(ENOMEM, -2, "out of memory")                                             \
  XX(EIO, -3, "input/output error")                                           \
  XX(ENOENT, -4, "no such file or directory")                                 \
  XX(EPARSE, -5, "malformed input")                                           \
  XX(ECURL, -6, "transfer library error")                                     \
  XX(EUPLOAD, -7, "one or more uploads failed")                               \
  XX(ECANCELED, -8, "operation canceled")                                     \
  XX(EPROTOCOL, -9, "protocol error")                                         \
  XX(ESTATE, -10, "call not valid in the object's current state")             \
  XX(ECRYPTO, -11, "cryptographic library error")                             \
  XX(EALLFAILED, -12, "all uploads failed")                                   \
  XX(EPERM, -13, "permission denied")                                         \
  XX(ETHREAD, -14, "thread library error")                                    \
  XX(ESCHEME, -15, "URL scheme not allowed")                                  \
  XX(ETIMEDOUT, -16, "operation timed out")                                   \
  XX(EHTTP, -17, "unexpected HTTP status")                                    \
  XX(EJOB, -18, "the server's job failed")

/* Result of every fallible bulkup call: BULKUP_OK or a negative code. */
typedef enum bulkup_err {
  BULKUP_OK = 0,
#define BULKUP__ERR_ENUM(name, value, text) BULKUP_##name = value,
  BULKUP_ERRNO_MAP(BULKUP__ERR_ENUM)
#undef BULKUP__ERR_ENUM
  BULKUP__ERR_MIN = -18
} bulkup_err;

/*
 * bulkup_strerror - a short, static English text for an error code.
 *
 * Never returns NULL: an unknown code gives "unknown error".
 * Thread-safe.
 */
BULKUP_EXTERN const char *bulkup_strerror(int err);

/*
 * bulkup_err_name - the code's symbolic name without the prefix
 * ("EINVAL"), "OK" for 0, or "UNKNOWN". Thread-safe; static storage.
 */
BULKUP_EXTERN const char *bulkup_err_name(int err);

/*
 * bulkup_last_error_message - detail about the last error raised by a
 * bulkup call on the calling thread (for example "requests.read_timeout
 * must be a finite number >= 0"), or "" when there is none.
 *
 * The text is thread-local and stays valid until the next bulkup call on
 * the same thread. Calls that succeed do not clear it.
 */
BULKUP_EXTERN const char *bulkup_last_error_message(void);

#ifdef __cplusplus
}
#endif
#endif /* BULKUP_COMMON_H */
