/* util/base.h - the few macros every part of bulkup uses. Part of the
 * utility layer (src/util): includes nothing of bulkup's. */
#ifndef BK_UTIL_BASE_H
#define BK_UTIL_BASE_H

#define BK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define BK_UNUSED(x) ((void)(x))

#if defined(__GNUC__)
#define BK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define BK_PRINTF(f, a)
#endif

#endif
