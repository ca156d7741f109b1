/*
 * internal.h - included first by every library source file above the
 * utility layer (src/util includes only its own headers).
 *
 * Internal names use the bk_ prefix (functions, types) and are not
 * exported from the shared library (hidden visibility).
 *
 * The layers, lowest first (scripts/check-layers enforces them: no file
 * calls or includes one of a layer above its own, and no two files call
 * each other):
 *   src/util/    alloc, error, thread, str, rand, sha256
 *   src/net/     libcurl's common parts (curl.c, header.c), redaction
 *   src/ (top)   retry (where a retry is decided), journal, report, shard,
 *                model, settings, content types, data types, version
 *   src/engine/  the upload engine: run/queue/source/resumable, slot,
 *                worker, uploader (the public API), in that order
 *   src/api/     the Encord API client and workflow
 * This header brings the utility layer's basics (base, alloc, error,
 * thread) and libcurl's common parts; the other util headers (str, rand,
 * sha256) are included where they are used.
 */
#ifndef BULKUP_INTERNAL_H
#define BULKUP_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bulkup.h"
#include "util/alloc.h"
#include "util/base.h"
#include "util/error.h"
#include "util/thread.h"
#include "net/curl.h"
#include "net/redact.h"

#endif /* BULKUP_INTERNAL_H */
