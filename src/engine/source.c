/* engine/source.c - an item's bytes: open the source inside the worker that sends
 * it, hand its bytes to libcurl (positional reads, so a retry or a
 * libcurl rewind starts again anywhere), hash it for Content-MD5, and tell
 * whether a file changed while it was being sent. */
#include "internal.h"
#include "engine/engine.h"
#include "util/crc32c.h"
#include "util/str.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <unistd.h>

/* Files up to this size are read whole, once, into the slot's buffer: one
 * open, fstat, read, fstat, close per file, and retries resend the same
 * snapshot. Larger files are streamed with pread. */
#define BK_SMALL_FILE_MAX (256 * 1024)
/* The slot's buffer grows in these steps, up to BK_SMALL_FILE_MAX. */
#define BK_BUF_STEP (64 * 1024)

size_t bk_source_read_cb(char *dst, size_t size, size_t nmemb, void *ud) {
  bk_slot *s = ud;
  bk_xfer *x = &s->x;
  size_t want = size * nmemb;
  if (atomic_load_explicit(&s->u->cancelled, memory_order_relaxed)) {
    x->abort = BK_ABORT_CANCEL;
    return CURL_READFUNC_ABORT;
  }
  uint64_t end = x->body_start + x->body_len;
  uint64_t left = end > x->offset ? end - x->offset : 0;
  if (want > left)
    want = (size_t)left;
  if (want == 0)
    return 0;
  size_t got = 0;
  if (x->mem) {
    memcpy(dst, x->mem + x->offset, want);
    got = want;
  } else if (x->fd >= 0) {
    while (got < want) {
      ssize_t r = pread(x->fd, dst + got, want - got, (off_t)(x->offset + got));
      if (r < 0) {
        if (errno == EINTR)
          continue;
        x->read_errno = errno;
        x->abort = BK_ABORT_FILE;
        return CURL_READFUNC_ABORT;
      }
      if (r == 0) {
        /* The file is shorter than when it was opened. */
        x->abort = BK_ABORT_FILE_CHANGED;
        return CURL_READFUNC_ABORT;
      }
      got += (size_t)r;
    }
  } else {
    bk_item *j = x->item;
    while (got < want) {
      int64_t r = j->read(j->read_ctx, x->offset + got, dst + got, want - got);
      if (r < 0 || (uint64_t)r > want - got) {
        x->abort = BK_ABORT_FILE;
        return CURL_READFUNC_ABORT;
      }
      if (r == 0) {
        x->abort = BK_ABORT_FILE_CHANGED;
        return CURL_READFUNC_ABORT;
      }
      got += (size_t)r;
    }
  }
  x->offset += got;
  return got;
}

int bk_source_seek_cb(void *ud, curl_off_t offset, int origin) {
  bk_slot *s = ud;
  /* Offsets are in the request's body, which starts at body_start. */
  if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > s->x.body_len)
    return CURL_SEEKFUNC_CANTSEEK;
  s->x.offset = s->x.body_start + (uint64_t)offset;
  return CURL_SEEKFUNC_OK;
}

static bool bk_same_file(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
         a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
         a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
         a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
         a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

bool bk_source_unchanged(const bk_slot *s) {
  if (s->x.fd < 0)
    return true;
  struct stat after;
  return fstat(s->x.fd, &after) == 0 && bk_same_file(&s->x.st, &after);
}

/* Clear O_NONBLOCK on a source opened with it (bk_source_open), if it is
 * set: false if it was not (nothing to try again) or cannot be cleared. */
static bool bk_source_blocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl >= 0 && (fl & O_NONBLOCK) &&
         fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0;
}

/* Make the slot's buffer hold at least n bytes (up to BK_SMALL_FILE_MAX). */
static bool bk_source_buf(bk_slot *s, size_t n) {
  if (s->buf && s->bufcap >= n)
    return true;
  size_t cap = (n + BK_BUF_STEP) / BK_BUF_STEP * BK_BUF_STEP;
  if (cap > BK_SMALL_FILE_MAX)
    cap = BK_SMALL_FILE_MAX;
  unsigned char *nb = bk_realloc(s->buf, cap);
  if (!nb)
    return false;
  s->buf = nb;
  s->bufcap = cap;
  return true;
}

/* A regular file whose size is 0 may still have content: files of /proc
 * and /sys say 0 and are generated as they are read. Read what there is
 * (up to BK_SMALL_FILE_MAX) and send that snapshot; more than that cannot
 * be sent with a known length, and fails the item. An empty file is an
 * empty upload. Closes fd. */
static bulkup_error_kind bk_source_open_sizeless(bk_slot *s, int fd) {
  bk_xfer *x = &s->x;
  size_t got = 0;
  for (;;) {
    if (got == BK_SMALL_FILE_MAX) {
      /* Full: is there more? */
      unsigned char probe;
      ssize_t r = read(fd, &probe, 1);
      if (r < 0 && (errno == EINTR ||
                    (errno == EAGAIN && bk_source_blocking(fd))))
        continue;
      if (r > 0) {
        close(fd);
        snprintf(s->message, sizeof s->message,
                 "the file's size is 0 but it has more than %d bytes (a "
                 "file of /proc or /sys?): not uploaded",
                 BK_SMALL_FILE_MAX);
        return BULKUP_ERROR_FILE;
      }
      break;
    }
    if (!bk_source_buf(s, got + BK_BUF_STEP)) {
      close(fd);
      snprintf(s->message, sizeof s->message, "out of memory");
      return BULKUP_ERROR_NOMEM;
    }
    size_t room = s->bufcap - got;
    ssize_t r = read(fd, s->buf + got, room);
    if (r < 0) {
      if (errno == EINTR || (errno == EAGAIN && bk_source_blocking(fd)))
        continue;
      snprintf(s->message, sizeof s->message, "cannot read file: %s",
               strerror(errno));
      close(fd);
      return BULKUP_ERROR_FILE;
    }
    if (r == 0)
      break;
    got += (size_t)r;
  }
  /* A real file that was written meanwhile says so now: its size (or
   * times) moved. A generated file still says 0. */
  struct stat after;
  int st_rc = fstat(fd, &after);
  close(fd);
  if (st_rc != 0 || after.st_size != 0 ||
      (got == 0 && !bk_same_file(&x->st, &after))) {
    snprintf(s->message, sizeof s->message,
             "file changed while it was being read");
    return BULKUP_ERROR_FILE_CHANGED;
  }
  x->size = got;
  x->mem = s->buf;
  bk_run_add_bytes(s->u, x->size);
  return BULKUP_ERROR_NONE;
}

bulkup_error_kind bk_source_open(bk_slot *s, bk_item *j) {
  bk_xfer *x = &s->x;
  x->item = j;
  x->fd = -1;
  x->mem = NULL;
  if (j->source == BULKUP_SOURCE_MEMORY) {
    x->mem = j->data;
    x->size = j->size;
    return BULKUP_ERROR_NONE;
  }
  if (j->source == BULKUP_SOURCE_CALLBACK) {
    x->size = j->size;
    return BULKUP_ERROR_NONE;
  }
  /* O_NONBLOCK: this is the event loop's thread, and opening a FIFO (or
   * some devices) for reading blocks until a writer comes. Regular files
   * ignore the flag; anything else fails below at once. */
  int fd = open(j->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    /* Out of descriptors (the process's or the system's): not the file's
     * fault, and others free theirs as transfers end (the slot retries). */
    s->fd_short = errno == EMFILE || errno == ENFILE;
    snprintf(s->message, sizeof s->message, "cannot open file: %s",
             strerror(errno));
    return BULKUP_ERROR_FILE;
  }
  if (fstat(fd, &x->st) != 0) {
    snprintf(s->message, sizeof s->message, "cannot stat file: %s",
             strerror(errno));
    close(fd);
    return BULKUP_ERROR_FILE;
  }
  if (!S_ISREG(x->st.st_mode)) {
    snprintf(s->message, sizeof s->message, "not a regular file");
    close(fd);
    return BULKUP_ERROR_FILE;
  }
  /* O_NONBLOCK stays on a file read whole here: Linux's local filesystems
   * ignore it for regular files, and clearing it cost two fcntl calls per
   * file. One that honours it fails a read with EAGAIN, and the read loops
   * clear it then. A streamed file's descriptor goes to libcurl's read
   * callback and the digests, and is made blocking at once. */
  x->size = (uint64_t)x->st.st_size;
  if (x->size == 0)
    return bk_source_open_sizeless(s, fd);
  bk_run_add_bytes(s->u, x->size);
  if (x->size > BK_SMALL_FILE_MAX) {
    bk_source_blocking(fd);
    x->fd = fd;
    return BULKUP_ERROR_NONE;
  }
  if (!s->buf || s->bufcap < x->size) {
    size_t cap = ((size_t)x->size + BK_BUF_STEP) / BK_BUF_STEP * BK_BUF_STEP;
    if (cap > BK_SMALL_FILE_MAX)
      cap = BK_SMALL_FILE_MAX;
    unsigned char *nb = bk_realloc(s->buf, cap);
    if (!nb) {
      close(fd);
      snprintf(s->message, sizeof s->message, "out of memory");
      return BULKUP_ERROR_NOMEM;
    }
    s->buf = nb;
    s->bufcap = cap;
  }
  /* Read exactly the size fstat gave: one read(2) for a small file. A file
   * that grows, shrinks or is rewritten meanwhile is caught by the fstat
   * after (size, mtime, ctime), so no extra read for end-of-file. */
  size_t got = 0;
  size_t want = (size_t)x->size;
  while (got < want) {
    ssize_t r = read(fd, s->buf + got, want - got);
    if (r < 0) {
      if (errno == EINTR || (errno == EAGAIN && bk_source_blocking(fd)))
        continue;
      snprintf(s->message, sizeof s->message, "cannot read file: %s",
               strerror(errno));
      close(fd);
      return BULKUP_ERROR_FILE;
    }
    if (r == 0)
      break;
    got += (size_t)r;
  }
  struct stat after;
  int st_rc = fstat(fd, &after);
  close(fd);
  if (got < x->size || st_rc != 0 || !bk_same_file(&x->st, &after)) {
    snprintf(s->message, sizeof s->message,
             "file changed while it was being read");
    return BULKUP_ERROR_FILE_CHANGED;
  }
  x->mem = s->buf;
  return BULKUP_ERROR_NONE;
}

void bk_source_close(bk_slot *s) {
  if (s->x.fd >= 0)
    close(s->x.fd);
  s->x.fd = -1;
  s->x.mem = NULL;
}

/* The digest (`md`) of `len` bytes of the source from `start`, or of
 * `len` bytes of `mem` when it is not NULL. */
static bool bk_source_digest(bk_slot *s, const EVP_MD *md_type,
                             uint64_t start, uint64_t len, const void *mem,
                             unsigned char *md, unsigned int *n,
                             uint32_t *crc) {
  bk_xfer *x = &s->x;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx || !EVP_DigestInit_ex(ctx, md_type, NULL)) {
    EVP_MD_CTX_free(ctx);
    return false;
  }
  bool ok = true;
  if (mem) {
    ok = EVP_DigestUpdate(ctx, mem, (size_t)len);
    if (crc)
      *crc = bk_crc32c(0, mem, (size_t)len);
  } else if (start > x->size || len > x->size - start) {
    ok = false;
  } else if (x->mem) {
    ok = EVP_DigestUpdate(ctx, x->mem + start, (size_t)len);
    if (crc)
      *crc = bk_crc32c(0, x->mem + start, (size_t)len);
  } else {
    if (crc)
      *crc = 0;
    unsigned char buf[65536];
    uint64_t off = start, end = start + len;
    while (ok && off < end) {
      size_t want = sizeof buf;
      if (want > end - off)
        want = (size_t)(end - off);
      int64_t r;
      if (x->fd >= 0) {
        r = pread(x->fd, buf, want, (off_t)off);
        if (r < 0 && errno == EINTR)
          continue;
      } else {
        r = x->item->read(x->item->read_ctx, off, buf, want);
      }
      if (r <= 0) {
        ok = false;
        break;
      }
      ok = EVP_DigestUpdate(ctx, buf, (size_t)r);
      if (crc)
        *crc = bk_crc32c(*crc, buf, (size_t)r);
      off += (uint64_t)r;
    }
  }
  if (ok)
    ok = EVP_DigestFinal_ex(ctx, md, n);
  EVP_MD_CTX_free(ctx);
  return ok;
}

bool bk_source_md5(bk_slot *s, char out[32]) {
  return bk_source_md5_range(s, 0, s->x.size, out);
}

bool bk_source_md5_range(bk_slot *s, uint64_t start, uint64_t len,
                         char out[32]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!bk_source_digest(s, EVP_md5(), start, len, NULL, md, &n, NULL))
    return false;
  bk_b64_encode(md, n, out);
  return true;
}

bool bk_source_sha256_hex(bk_slot *s, uint64_t start, uint64_t len,
                          const void *mem, char out[65], char crc_out[9]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  uint32_t crc = 0;
  if (!bk_source_digest(s, EVP_sha256(), start, len, mem, md, &n,
                        crc_out ? &crc : NULL) ||
      n != 32)
    return false;
  bk_hex_encode(md, n, out, false);
  if (crc_out)
    bk_crc32c_base64(crc, crc_out);
  return true;
}

int64_t bk_source_mtime(const bk_slot *s) {
  if (s->x.item->source != BULKUP_SOURCE_FILE)
    return 0;
  return (int64_t)s->x.st.st_mtim.tv_sec * 1000000000LL +
         s->x.st.st_mtim.tv_nsec;
}
