/*
 * inputs.c - the PATH arguments and the shard of `bulkup upload`: the one
 * walk of the PATHs (over walk.c) that the direct run (upload.c: its check,
 * then its upload) and the workflow (upload_api.c: its list) make, with
 * its checks and messages, and which items fall in this run's --shard.
 * Nothing else in src/cli walks the PATHs.
 */
#include "upload.h"

#include "cli.h"
#include "grow.h"
#include "walk.h"

#include <bulkup.h>

#include <errno.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every PATH exists, is a file or a directory, and a file is readable;
 * each problem is named. Returns -1 when all are fine, else the exit
 * status for bad input (nothing is uploaded). */
static int check_path_args(const upload_cli *c) {
  int bad = 0;
  for (int i = 0; i < c->npaths; i++) {
    struct stat st;
    if (stat(c->paths[i], &st) != 0) {
      cli_error("%s: %s", c->paths[i], strerror(errno));
      bad++;
    } else if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
      cli_error("%s: not a regular file or directory", c->paths[i]);
      bad++;
    } else if (S_ISREG(st.st_mode) && access(c->paths[i], R_OK) != 0) {
      cli_error("%s: %s", c->paths[i], strerror(errno));
      bad++;
    }
  }
  if (bad) {
    cli_error("nothing uploaded: %d PATH%s cannot be uploaded", bad,
              bad == 1 ? "" : "s");
    return CLI_EXIT_USAGE;
  }
  return -1;
}

/* A message of the walk: before the upload on stderr as it is; during it
 * (UPLOAD_WALK_AGAIN) around the progress line. */
static void walk_say(const upload_walk *w, const char *msg) {
  if (w->pass == UPLOAD_WALK_AGAIN)
    upload_say("%s", msg);
  else
    cli_error("%s", msg);
}

/* One file of this run's shard, given to the caller. */
static int give(upload_walk *w, const char *path, const char *key,
                uint64_t size) {
  upload_file f = {path, key, size};
  return w->file(w->arg, &f);
}

/* A file PATH: one file, keyed by its base name. */
static int walk_file_arg(const upload_cli *c, upload_walk *w,
                         const char *path, uint64_t size) {
  char *copy = strdup(path);
  if (!copy) {
    walk_say(w, "out of memory");
    return CLI_EXIT_FAILED;
  }
  const char *base = basename(copy);
  int rc = -1;
  w->input++;
  if (upload_in_shard(c, base, strlen(base)))
    rc = give(w, path, base, size);
  free(copy);
  return rc;
}

/* The files of a directory, kept for sorting (upload_walk.sorted). */
typedef struct kept {
  char *path;     /* the whole path */
  size_t rel_off; /* where the key (the relative path) starts in it */
  uint64_t size;
} kept;

typedef struct kept_list {
  kept *v;
  size_t n, cap;
} kept_list;

static bool keep(kept_list *l, const char *path, const char *rel,
                 uint64_t size) {
  void *v = l->v;
  if (!cli_grow(&v, &l->cap, l->n + 1, sizeof *l->v, 64))
    return false;
  l->v = v;
  char *copy = strdup(path);
  if (!copy)
    return false;
  l->v[l->n++] = (kept){copy, (size_t)(rel - path), size};
  return true;
}

static void kept_free(kept_list *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i].path);
  free(l->v);
  memset(l, 0, sizeof *l);
}

static int cmp_kept(const void *a, const void *b) {
  return strcmp(((const kept *)a)->path, ((const kept *)b)->path);
}

/* A directory PATH, walked. *bad counts the entries that could not be
 * read (UPLOAD_WALK_CHECK). */
static int walk_dir_arg(const upload_cli *c, upload_walk *w,
                        const char *root, int *bad) {
  bool check = w->pass == UPLOAD_WALK_CHECK;
  walk *wk = walk_open(root);
  if (!wk) {
    if (check) {
      cli_error("cannot open directory %s: %s", root, strerror(errno));
      return CLI_EXIT_USAGE;
    }
    upload_say("cannot open directory %s: %s", root, strerror(errno));
    w->problems++;
    return -1;
  }
  walk_need_sizes(wk, w->sizes);
  kept_list l = {0};
  int rc = -1;
  walk_status ws;
  unsigned long steps = 0;
  while (rc == -1 && (ws = walk_next(wk)) != WALK_DONE) {
    if (check && (++steps & 1023) == 0 && upload_signal()) {
      rc = upload_exit_for_signal();
    } else if (ws == WALK_FILE) {
      w->input++;
      const char *rel = walk_rel(wk);
      if (!upload_in_shard(c, rel, strlen(rel)))
        continue;
      if (!w->sorted)
        rc = give(w, walk_path(wk), rel, walk_size(wk));
      else if (!keep(&l, walk_path(wk), rel, walk_size(wk))) {
        walk_say(w, "out of memory");
        rc = CLI_EXIT_FAILED;
      }
    } else if (ws == WALK_SKIP) {
      /* Noted once, when the input is checked. */
      if (check && !c->quiet)
        walk_say(w, walk_message(wk));
    } else {
      walk_say(w, walk_message(wk));
      if (check)
        (*bad)++;
      else
        w->problems++;
    }
  }
  walk_close(wk);
  if (rc == -1 && l.n) {
    qsort(l.v, l.n, sizeof *l.v, cmp_kept);
    for (size_t i = 0; i < l.n && rc == -1; i++)
      rc = give(w, l.v[i].path, l.v[i].path + l.v[i].rel_off, l.v[i].size);
  }
  kept_free(&l);
  return rc;
}

int upload_walk_paths(const upload_cli *c, upload_walk *w) {
  bool check = w->pass == UPLOAD_WALK_CHECK;
  if (check) {
    int checked = check_path_args(c);
    if (checked >= 0)
      return checked;
  }
  int bad = 0, rc = -1;
  for (int i = 0; i < c->npaths && rc == -1; i++) {
    struct stat st;
    bool found = stat(c->paths[i], &st) == 0;
    if (!found && check) {
      cli_error("%s: %s", c->paths[i], strerror(errno));
      return CLI_EXIT_USAGE;
    }
    /* The check walks what is not a file (and says so if it is no
     * directory either); the second walk walks directories, and takes the
     * rest as a file: a file, or something that vanished or changed since
     * the check, whose item then reports what happens to it. */
    bool dir = found && (check ? !S_ISREG(st.st_mode) : S_ISDIR(st.st_mode));
    if (dir)
      rc = walk_dir_arg(c, w, c->paths[i], &bad);
    else
      rc = walk_file_arg(c, w, c->paths[i], found ? (uint64_t)st.st_size : 0);
  }
  if (rc != -1)
    return rc;
  if (bad) {
    cli_error("nothing uploaded: %d part%s of the input cannot be read", bad,
              bad == 1 ? "" : "s");
    return CLI_EXIT_USAGE;
  }
  return -1;
}

bool upload_in_shard(const upload_cli *c, const char *key, size_t len) {
  return c->shard_n <= 1 || bulkup_shard_hash(key, len) % c->shard_n ==
                                c->shard_k;
}

const char *upload_shard_text(const upload_cli *c) {
  static char buf[48];
  if (!c->shard_n)
    return "";
  snprintf(buf, sizeof buf, "shard %u/%u", c->shard_k, c->shard_n);
  return buf;
}
