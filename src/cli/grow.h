/*
 * grow.h - room in a growing array (grow.c).
 *
 * The tool's lists (the files a walk keeps, the workflow's file list, the
 * --header and --metadata options and an item's header lines, the
 * occurrences `report merge` counts) grow by doubling through this one
 * function. It uses realloc, like the
 * rest of src/cli (the library's allocator and its failure hooks are
 * libbulkup's own).
 */
#ifndef BULKUP_CLI_GROW_H
#define BULKUP_CLI_GROW_H

#include <stdbool.h>
#include <stddef.h>

/* Makes room for at least `need` elements of `size` bytes in the array *p,
 * which has room for *cap. When it lacks room, *p is reallocated to hold
 * the first of `first`, 2 * first, ... (when *cap is 0) or of 2 * *cap,
 * 4 * *cap, ... that is at least `need`, and *cap says the new room.
 * Returns false when the allocation fails or its byte size would not fit
 * in a size_t (errno is then ENOMEM); *p and *cap are left as they were,
 * and the array is still the caller's to free. */
bool cli_grow(void **p, size_t *cap, size_t need, size_t size, size_t first);

#endif
