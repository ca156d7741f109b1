/*
 * store.c - the object stores: in memory (tests, raw mode) and a root
 * directory on disk (`bulkup serve`).
 *
 * Memory: a hash table of (key, bytes, SHA-256) behind the store's mutex;
 * a writer buffers the body and commit moves the buffer into the table.
 *
 * Disk: an object is the file {root}/{key}. A writer streams the body to
 * a temporary file in the target's own folder (".bks-tmp.<name>.XXXXXX",
 * so rename() never crosses a file system), and commit does fsync, rename
 * over the target and fsync of the folder: a reader sees the old object
 * or the whole new one, never a part. {root}/.resumable holds the
 * resumable sessions (resumable.c), out of reach of any object key.
 * Keys are validated again here
 * (bks_object_key_valid), so nothing escapes the root whatever the
 * caller checked. The disk store needs no lock of its own: the file
 * system serializes renames.
 */
#include "bks_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_PREFIX ".bks-tmp"
/* the folder of resumable sessions (resumable.c), at the root */
#define RS_FOLDER ".resumable"

typedef struct mem_obj {
  struct mem_obj *next;
  char *key;
  unsigned char *data;
  size_t len;
  char sha256[65];
} mem_obj;

struct bks_store {
  char *root; /* NULL: memory */
  pthread_mutex_t mu;
  mem_obj *objs[BKS_BUCKETS];
};

struct bks_writer {
  bks_store *st;
  char *key;
  /* memory */
  unsigned char *data;
  size_t len, cap;
  /* disk */
  int fd;
  char *tmp, *final, *dir;
};

int bks_object_key_valid(const char *key) {
  if (!key)
    return 0;
  size_t len = strlen(key);
  if (len == 0 || len > BKS_KEY_MAX || key[0] == '/')
    return 0;
  size_t rs = sizeof RS_FOLDER - 1;
  if (strncmp(key, RS_FOLDER, rs) == 0 && (key[rs] == '/' || key[rs] == '\0'))
    return 0;
  const char *seg = key;
  for (size_t i = 0; i <= len; i++) {
    unsigned char c = (unsigned char)key[i];
    if (c == '\\' || (c > 0 && c < 0x20) || c == 0x7f)
      return 0;
    if (c == '/' || c == '\0') {
      size_t n = (size_t)(key + i - seg);
      if (n == 0 || (n == 1 && seg[0] == '.') ||
          (n == 2 && seg[0] == '.' && seg[1] == '.') ||
          (n >= sizeof TMP_PREFIX - 1 &&
           memcmp(seg, TMP_PREFIX, sizeof TMP_PREFIX - 1) == 0))
        return 0;
      seg = key + i + 1;
    }
  }
  return 1;
}

/* ---- memory ------------------------------------------------------------- */

bks_store *bks_store_new_memory(void) {
  bks_store *st = calloc(1, sizeof *st);
  if (st)
    pthread_mutex_init(&st->mu, NULL);
  return st;
}

static mem_obj **mem_find(bks_store *st, const char *key) {
  mem_obj **pp = &st->objs[bks_hash(key)];
  while (*pp && strcmp((*pp)->key, key) != 0)
    pp = &(*pp)->next;
  return pp;
}

static void mem_obj_free(mem_obj *o) {
  free(o->data);
  free(o->key);
  free(o);
}

void bks_store_clear(bks_store *st) {
  if (st->root)
    return;
  pthread_mutex_lock(&st->mu);
  for (size_t b = 0; b < BKS_BUCKETS; b++) {
    while (st->objs[b]) {
      mem_obj *o = st->objs[b];
      st->objs[b] = o->next;
      mem_obj_free(o);
    }
  }
  pthread_mutex_unlock(&st->mu);
}

/* ---- disk --------------------------------------------------------------- */

/* mkdir -p for an absolute or relative path (mode 0755). */
static int mkdirs(const char *path) {
  char *p = bks_strdup(path);
  if (!p)
    return -1;
  int rc = 0;
  for (char *s = p + 1; rc == 0; s++) {
    if (*s != '/' && *s != '\0')
      continue;
    char saved = *s;
    *s = '\0';
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
      rc = -1;
    else {
      struct stat sb;
      if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        rc = -1;
      }
    }
    *s = saved;
    if (saved == '\0')
      break;
  }
  free(p);
  return rc;
}

bks_store *bks_store_new_disk(const char *root, char *err, size_t errlen) {
  if (!root || !*root) {
    bks_set_err(err, errlen, "empty store root");
    return NULL;
  }
  if (mkdirs(root) != 0) {
    bks_set_err(err, errlen, "store root %s: %s", root, strerror(errno));
    return NULL;
  }
  bks_store *st = bks_store_new_memory();
  if (!st || !(st->root = bks_strdup(root))) {
    bks_store_free(st);
    bks_set_err(err, errlen, "out of memory");
    return NULL;
  }
  /* strip trailing slashes (but keep "/") */
  size_t n = strlen(st->root);
  while (n > 1 && st->root[n - 1] == '/')
    st->root[--n] = '\0';
  return st;
}

void bks_store_free(bks_store *st) {
  if (!st)
    return;
  if (!st->root)
    bks_store_clear(st);
  pthread_mutex_destroy(&st->mu);
  free(st->root);
  free(st);
}

const char *bks_store_root(const bks_store *st) { return st->root; }

/* {root}/{key}, or NULL (errno EINVAL) for a key the store refuses. */
static char *disk_path(bks_store *st, const char *key) {
  if (!bks_object_key_valid(key)) {
    errno = EINVAL;
    return NULL;
  }
  return bks_asprintf("%s/%s", st->root, key);
}

/* ---- writers ------------------------------------------------------------- */

bks_writer *bks_store_begin(bks_store *st, const char *key,
                            unsigned long long size_hint) {
  bks_writer *w = calloc(1, sizeof *w);
  if (!w)
    return NULL;
  w->st = st;
  w->fd = -1;
  if (!(w->key = bks_strdup(key)))
    goto fail;
  if (!st->root) {
    if (size_hint > 0 && size_hint <= BKS_PREALLOC_MAX) {
      w->data = malloc((size_t)size_hint);
      if (w->data)
        w->cap = (size_t)size_hint;
    }
    return w;
  }
  if (!(w->final = disk_path(st, key)))
    goto fail;
  char *slash = strrchr(w->final, '/');
  w->dir = bks_strndup(w->final, (size_t)(slash - w->final));
  if (!w->dir || mkdirs(w->dir) != 0)
    goto fail;
  w->tmp = bks_asprintf("%s/" TMP_PREFIX ".%s.XXXXXX", w->dir, slash + 1);
  if (!w->tmp)
    goto fail;
  w->fd = mkostemp(w->tmp, O_CLOEXEC);
  if (w->fd < 0) {
    free(w->tmp);
    w->tmp = NULL;
    goto fail;
  }
  return w;
fail: {
  int e = errno;
  bks_writer_abort(w);
  errno = e;
  return NULL;
}
}

int bks_writer_write(bks_writer *w, const void *data, size_t len) {
  if (len == 0)
    return 0;
  if (w->st->root)
    return bks_write_all(w->fd, data, len);
  if (w->len + len > w->cap) {
    size_t cap = w->cap ? w->cap : 65536;
    while (cap < w->len + len)
      cap *= 2;
    unsigned char *d = realloc(w->data, cap);
    if (!d)
      return -1;
    w->data = d;
    w->cap = cap;
  }
  memcpy(w->data + w->len, data, len);
  w->len += len;
  return 0;
}

static void writer_free(bks_writer *w) {
  free(w->data);
  free(w->key);
  free(w->tmp);
  free(w->final);
  free(w->dir);
  free(w);
}

void bks_writer_abort(bks_writer *w) {
  if (!w)
    return;
  if (w->fd >= 0)
    close(w->fd);
  if (w->tmp)
    unlink(w->tmp);
  writer_free(w);
}

int bks_writer_commit(bks_writer *w, const char sha256[65]) {
  bks_store *st = w->st;
  if (st->root) {
    int rc = -1;
    if (fchmod(w->fd, 0644) == 0 && fsync(w->fd) == 0) {
      int fd = w->fd;
      w->fd = -1;
      if (close(fd) == 0 && rename(w->tmp, w->final) == 0) {
        free(w->tmp);
        w->tmp = NULL; /* renamed: nothing to unlink */
        bks_fsync_dir(w->dir);
        rc = 0;
      }
    }
    bks_writer_abort(w);
    return rc;
  }
  unsigned char *data = w->data ? w->data : malloc(1);
  if (!data) {
    bks_writer_abort(w);
    return -1;
  }
  pthread_mutex_lock(&st->mu);
  mem_obj **pp = mem_find(st, w->key);
  mem_obj *o = *pp;
  if (!o && (o = calloc(1, sizeof *o)) != NULL) {
    o->key = w->key;
    w->key = NULL;
    *pp = o;
  }
  if (o) {
    free(o->data);
    o->data = data;
    o->len = w->len;
    memcpy(o->sha256, sha256, 65);
    w->data = NULL;
  }
  pthread_mutex_unlock(&st->mu);
  if (o == NULL && data != w->data)
    free(data);
  bks_writer_abort(w);
  return o ? 0 : -1;
}

/* ---- reading ------------------------------------------------------------- */

int bks_store_exists(bks_store *st, const char *key) {
  if (st->root) {
    char *path = disk_path(st, key);
    struct stat sb;
    int ok = path && lstat(path, &sb) == 0 && S_ISREG(sb.st_mode);
    free(path);
    return ok;
  }
  pthread_mutex_lock(&st->mu);
  int ok = *mem_find(st, key) != NULL;
  pthread_mutex_unlock(&st->mu);
  return ok;
}

void *bks_store_read(bks_store *st, const char *key, size_t *len) {
  if (st->root) {
    char *path = disk_path(st, key);
    struct stat sb;
    void *data = NULL;
    if (path && lstat(path, &sb) == 0 && S_ISREG(sb.st_mode))
      data = bks_read_file(path, (size_t)-1, len);
    free(path);
    return data;
  }
  void *copy = NULL;
  pthread_mutex_lock(&st->mu);
  mem_obj *o = *mem_find(st, key);
  if (o) {
    copy = malloc(o->len ? o->len : 1);
    if (copy) {
      if (o->len)
        memcpy(copy, o->data, o->len);
      if (len)
        *len = o->len;
    }
  }
  pthread_mutex_unlock(&st->mu);
  return copy;
}

void *bks_store_read_head(bks_store *st, const char *key, size_t max,
                          size_t *len) {
  if (st->root) {
    char *path = disk_path(st, key);
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
    free(path);
    struct stat sb;
    if (fd < 0)
      return NULL;
    unsigned char *buf = NULL;
    size_t n = 0;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
        (buf = malloc(max ? max : 1))) {
      while (n < max) {
        ssize_t r = read(fd, buf + n, max - n);
        if (r < 0 && errno == EINTR)
          continue;
        if (r <= 0)
          break;
        n += (size_t)r;
      }
    }
    close(fd);
    if (buf && len)
      *len = n;
    return buf;
  }
  void *copy = NULL;
  pthread_mutex_lock(&st->mu);
  mem_obj *o = *mem_find(st, key);
  if (o) {
    size_t n = o->len < max ? o->len : max;
    copy = malloc(n ? n : 1);
    if (copy) {
      if (n)
        memcpy(copy, o->data, n);
      if (len)
        *len = n;
    }
  }
  pthread_mutex_unlock(&st->mu);
  return copy;
}

long long bks_store_info(bks_store *st, const char *key, char sha256[65]) {
  if (st->root) {
    size_t len = 0;
    void *data = bks_store_read(st, key, &len);
    if (!data)
      return -1;
    if (sha256)
      bks_sha256_hex(data, len, sha256);
    free(data);
    return (long long)len;
  }
  long long size = -1;
  pthread_mutex_lock(&st->mu);
  mem_obj *o = *mem_find(st, key);
  if (o) {
    size = (long long)o->len;
    if (sha256)
      memcpy(sha256, o->sha256, 65);
  }
  pthread_mutex_unlock(&st->mu);
  return size;
}

int bks_store_delete(bks_store *st, const char *key) {
  if (st->root) {
    char *path = disk_path(st, key);
    int rc = path && unlink(path) == 0 ? 0 : -1;
    free(path);
    return rc;
  }
  pthread_mutex_lock(&st->mu);
  mem_obj **pp = mem_find(st, key);
  mem_obj *o = *pp;
  if (o)
    *pp = o->next;
  pthread_mutex_unlock(&st->mu);
  if (o)
    mem_obj_free(o);
  return o ? 0 : -1;
}
