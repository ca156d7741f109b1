/*
 * walk.h - a streaming, recursive walk of a directory tree.
 *
 * The walk yields one regular file at a time, in directory order (not
 * sorted), holding one open directory per level and never the list of
 * files, so a tree of any size is walked in bounded memory.
 *
 * Symbolic links: a link to a regular file is followed (the file is
 * yielded under the link's name); a link to a directory is NOT followed
 * (skipped, with a note), so a tree with link cycles still ends, and a
 * broken link is skipped with a note. Other kinds of files (FIFOs,
 * sockets, devices) are skipped with a note. The root itself is followed
 * if it is a link.
 */
#ifndef BULKUP_CLI_WALK_H
#define BULKUP_CLI_WALK_H

#include <stdbool.h>
#include <stdint.h>

typedef struct walk walk;

typedef enum walk_status {
  WALK_FILE = 1,  /* a regular file: walk_path()/walk_rel()/walk_size() */
  WALK_DONE = 0,  /* nothing more */
  WALK_SKIP = 2,  /* something not uploaded: walk_message() says what */
  WALK_ERROR = -1 /* a directory or entry could not be read: walk_message();
                     the walk goes on with the rest */
} walk_status;

/* walk_open - start walking the directory `root`. NULL with errno set
 * (ENOMEM, or what opendir() says). */
walk *walk_open(const char *root);

/* The next file, skip note or error. */
walk_status walk_next(walk *w);

/* The current file's path: the root joined with the relative path. */
const char *walk_path(const walk *w);
/* The current file's path relative to the root ("a/b.jpg"). */
const char *walk_rel(const walk *w);
/* The current file's size in bytes (from stat). */
uint64_t walk_size(const walk *w);

/* walk_need_sizes - with need false, regular files whose directory entry
 * says so (d_type) are returned without a stat, and walk_size() is 0 for
 * them: one system call less per file when the caller has no use for the
 * size. Other entries (links, unknown types) are still stat'ed. Default:
 * sizes needed. */
void walk_need_sizes(walk *w, bool need);
/* The text of the last WALK_SKIP or WALK_ERROR. */
const char *walk_message(const walk *w);

/* Close every directory still open and free the walk. NULL does
 * nothing. */
void walk_close(walk *w);

#endif
