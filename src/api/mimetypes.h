/* mimetypes.h - the Content-Type the SDK's image uploads send (internal):
 * Python's mimetypes.guess_type(path)[0] (ENCORD_WIRE.md §5), which knows
 * a built-in table and then the system's mime.types files. */
#ifndef BULKUP_API_MIMETYPES_H
#define BULKUP_API_MIMETYPES_H

#include "internal.h"

/* The type of `path` as guess_type gives it, or NULL when it has none
 * (the SDK then sends no Content-Type). Its suffix rules: the last
 * extension of the base name (a leading dot does not start one), after
 * the suffix map (.tgz is .tar.gz, .svgz .svg.gz, ...) and without one
 * encoding extension (.gz, .Z, .bz2, .xz, .br); matched as written, then
 * in lower case. The table: the image types of bulkup_content_type_for,
 * then, overriding them, every type of the mime.types files Python reads
 * (/etc/mime.types and the others of mimetypes.knownfiles), read once.
 * Static storage; thread-safe. */
const char *bk_mime_guess(const char *path);

#endif
