/*
 * walk.c - recursive directory walk with openat()/fdopendir().
 *
 * Each level of the tree is one open DIR on a stack; subdirectories are
 * opened relative to their parent's descriptor with O_NOFOLLOW, so a
 * directory swapped for a link during the walk is not followed either.
 * The current path is kept in one growing buffer: each level remembers
 * where its part of the path ends.
 */
#include "walk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct level {
  DIR *dir;
  size_t path_len; /* length of the path of this directory */
};

struct walk {
  struct level *stack;
  size_t depth, cap;
  char *path;
  size_t path_cap;
  size_t rel_off; /* where the relative part starts in path */
  size_t cur_len; /* length of the current entry's path */
  uint64_t size;
  bool no_sizes; /* walk_need_sizes(w, false) */
  char msg[4096 + 256];
};

static bool path_reserve(walk *w, size_t need) {
  if (need <= w->path_cap)
    return true;
  size_t ncap = w->path_cap ? w->path_cap : 256;
  while (ncap < need)
    ncap *= 2;
  char *np = realloc(w->path, ncap);
  if (!np)
    return false;
  w->path = np;
  w->path_cap = ncap;
  return true;
}

static bool push(walk *w, DIR *d, size_t path_len) {
  if (w->depth == w->cap) {
    size_t ncap = w->cap ? w->cap * 2 : 16;
    struct level *ns = realloc(w->stack, ncap * sizeof *ns);
    if (!ns)
      return false;
    w->stack = ns;
    w->cap = ncap;
  }
  w->stack[w->depth].dir = d;
  w->stack[w->depth].path_len = path_len;
  w->depth++;
  return true;
}

walk *walk_open(const char *root) {
  walk *w = calloc(1, sizeof *w);
  if (!w)
    return NULL;
  size_t n = strlen(root);
  while (n > 1 && root[n - 1] == '/')
    n--;
  if (!path_reserve(w, n + 2)) {
    free(w);
    errno = ENOMEM;
    return NULL;
  }
  memcpy(w->path, root, n);
  w->path[n] = '\0';
  /* "/" walks as "/x"; "dir" as "dir/x". */
  w->rel_off = (n == 1 && root[0] == '/') ? 1 : n + 1;
  DIR *d = opendir(w->path);
  if (!d) {
    int e = errno;
    walk_close(w);
    errno = e;
    return NULL;
  }
  if (!push(w, d, n)) {
    closedir(d);
    walk_close(w);
    errno = ENOMEM;
    return NULL;
  }
  return w;
}

void walk_close(walk *w) {
  if (!w)
    return;
  for (size_t i = 0; i < w->depth; i++)
    closedir(w->stack[i].dir);
  free(w->stack);
  free(w->path);
  free(w);
}

const char *walk_path(const walk *w) { return w->path; }
const char *walk_rel(const walk *w) { return w->path + w->rel_off; }
uint64_t walk_size(const walk *w) { return w->size; }
const char *walk_message(const walk *w) { return w->msg; }

/* Set path to the entry `name` of the top directory. */
static bool set_entry(walk *w, const char *name) {
  size_t base = w->stack[w->depth - 1].path_len;
  size_t nl = strlen(name);
  bool root_slash = base == 1 && w->path[0] == '/' && w->rel_off == 1;
  size_t sep = root_slash ? 0 : 1;
  if (!path_reserve(w, base + sep + nl + 1))
    return false;
  if (sep)
    w->path[base] = '/';
  memcpy(w->path + base + sep, name, nl + 1);
  w->cur_len = base + sep + nl;
  return true;
}

static walk_status note(walk *w, walk_status st, const char *fmt,
                        const char *a) {
  snprintf(w->msg, sizeof w->msg, fmt, w->path, a);
  return st;
}

void walk_need_sizes(walk *w, bool need) { w->no_sizes = !need; }

walk_status walk_next(walk *w) {
  while (w->depth > 0) {
    struct level *top = &w->stack[w->depth - 1];
    errno = 0;
    struct dirent *de = readdir(top->dir);
    if (!de) {
      int e = errno;
      w->path[top->path_len] = '\0';
      closedir(top->dir);
      w->depth--;
      if (e != 0)
        return note(w, WALK_ERROR, "error reading directory %s: %s",
                    strerror(e));
      continue;
    }
    const char *name = de->d_name;
    if (name[0] == '.' &&
        (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
      continue;
    if (!set_entry(w, name))
      return note(w, WALK_ERROR, "%s: %s", strerror(ENOMEM));
    int dfd = dirfd(top->dir);
    if (w->no_sizes && de->d_type == DT_REG) {
      /* The file system says what it is: no stat needed (the uploader
       * opens and fstats it anyway). */
      w->size = 0;
      return WALK_FILE;
    }
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT)
        continue; /* removed since readdir */
      return note(w, WALK_ERROR, "cannot stat %s: %s", strerror(errno));
    }
    if (S_ISLNK(st.st_mode)) {
      struct stat target;
      if (fstatat(dfd, name, &target, 0) != 0)
        return note(w, WALK_SKIP, "skipping %s: broken symbolic link (%s)",
                    strerror(errno));
      if (S_ISDIR(target.st_mode))
        return note(w, WALK_SKIP,
                    "skipping %s: symbolic link to a directory%s", "");
      if (!S_ISREG(target.st_mode))
        return note(w, WALK_SKIP,
                    "skipping %s: symbolic link to a special file%s", "");
      w->size = (uint64_t)target.st_size;
      return WALK_FILE;
    }
    if (S_ISREG(st.st_mode)) {
      w->size = (uint64_t)st.st_size;
      return WALK_FILE;
    }
    if (S_ISDIR(st.st_mode)) {
      int fd = openat(dfd, name,
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      DIR *sub = fd >= 0 ? fdopendir(fd) : NULL;
      if (!sub) {
        int e = errno;
        if (fd >= 0)
          close(fd);
        return note(w, WALK_ERROR, "cannot open directory %s: %s",
                    strerror(e));
      }
      if (!push(w, sub, w->cur_len)) {
        closedir(sub);
        return note(w, WALK_ERROR, "%s: %s", strerror(ENOMEM));
      }
      continue;
    }
    return note(w, WALK_SKIP, "skipping %s: not a regular file%s", "");
  }
  return WALK_DONE;
}
