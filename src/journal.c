/* journal.c - the crash-safe record of completed items.
 *
 * Line format (one record, '\n'-terminated):
 *   J1 <crc32 of the rest, 8 hex> <size> <mtime_ns> <escaped key>
 * where the rest is everything after the CRC field and its space, and the
 * key escapes '%', bytes below 0x21 and 0x7f as %XX. The identity kept in
 * memory is the first 16 bytes of SHA-256(size, mtime, key). */
#include "internal.h"

#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32), table built once. */
static uint32_t bk_crc_table[256];
static pthread_once_t bk_crc_once = PTHREAD_ONCE_INIT;

static void bk_crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    bk_crc_table[i] = c;
  }
}

static uint32_t bk_crc32(const void *data, size_t len) {
  pthread_once(&bk_crc_once, bk_crc_init);
  const unsigned char *p = data;
  uint32_t c = 0xFFFFFFFFu;
  while (len--)
    c = bk_crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

typedef struct bk_digest {
  uint64_t a, b;
} bk_digest;

struct bulkup_journal {
  pthread_mutex_t lock; /* guards everything below */
  int fd;
  char *path;
  bulkup_journal_options opt;
  bk_digest *slots; /* open addressing; {0,0} is empty */
  size_t cap, count;
  uint64_t ignored;
  unsigned int unsynced;
  double last_sync;
  bool need_newline; /* the file ends in a torn line */
};

void bulkup_journal_options_init(bulkup_journal_options *o) {
  o->sync_every = 256;
  o->sync_interval = 1.0;
}

static bk_digest bk_identity(const char *key, size_t klen, uint64_t size,
                             int64_t mtime) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  unsigned char hdr[16];
  memcpy(hdr, &size, 8);
  memcpy(hdr + 8, &mtime, 8);
  bk_digest d = {0, 0};
  if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
      EVP_DigestUpdate(c, hdr, sizeof hdr) && EVP_DigestUpdate(c, key, klen) &&
      EVP_DigestFinal_ex(c, md, &n)) {
    memcpy(&d.a, md, 8);
    memcpy(&d.b, md + 8, 8);
  }
  EVP_MD_CTX_free(c);
  if (d.a == 0 && d.b == 0)
    d.b = 1; /* never the empty marker */
  return d;
}

static bool bk_slot_find(const bulkup_journal *j, bk_digest d, size_t *pos) {
  size_t mask = j->cap - 1;
  size_t i = (size_t)d.a & mask;
  for (;;) {
    const bk_digest *s = &j->slots[i];
    if (s->a == 0 && s->b == 0) {
      *pos = i;
      return false;
    }
    if (s->a == d.a && s->b == d.b) {
      *pos = i;
      return true;
    }
    i = (i + 1) & mask;
  }
}

static bulkup_err bk_grow(bulkup_journal *j) {
  size_t ncap = j->cap ? j->cap * 2 : 1024;
  bk_digest *ns = bk_calloc(ncap, sizeof *ns);
  if (!ns)
    return bk_error(BULKUP_ENOMEM, "out of memory for the journal");
  bk_digest *old = j->slots;
  size_t ocap = j->cap;
  j->slots = ns;
  j->cap = ncap;
  for (size_t i = 0; i < ocap; i++) {
    if (old[i].a || old[i].b) {
      size_t pos;
      bk_slot_find(j, old[i], &pos);
      j->slots[pos] = old[i];
    }
  }
  bk_free(old);
  return BULKUP_OK;
}

/* Insert; true if it was new. */
static bulkup_err bk_insert(bulkup_journal *j, bk_digest d, bool *added) {
  *added = false;
  if ((j->count + 1) * 2 > j->cap) {
    bulkup_err rc = bk_grow(j);
    if (rc != BULKUP_OK)
      return rc;
  }
  size_t pos;
  if (bk_slot_find(j, d, &pos))
    return BULKUP_OK;
  j->slots[pos] = d;
  j->count++;
  *added = true;
  return BULKUP_OK;
}

static int bk_hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Parse one line (without its '\n'); on success insert its identity. */
static bool bk_parse_line(bulkup_journal *j, char *line, size_t len) {
  if (len < 12 || memcmp(line, "J1 ", 3) != 0 || line[11] != ' ')
    return false;
  uint32_t want = 0;
  for (int i = 3; i < 11; i++) {
    int v = bk_hexval(line[i]);
    if (v < 0)
      return false;
    want = want << 4 | (uint32_t)v;
  }
  const char *rest = line + 12;
  size_t rlen = len - 12;
  if (bk_crc32(rest, rlen) != want)
    return false;
  /* <size> <mtime> <key> */
  char *end;
  errno = 0;
  unsigned long long size = strtoull(rest, &end, 10);
  if (errno || end == rest || *end != ' ')
    return false;
  const char *p = end + 1;
  long long mtime = strtoll(p, &end, 10);
  if (errno || end == p || *end != ' ')
    return false;
  p = end + 1;
  /* Unescape the key in place. */
  char *k = (char *)p, *w = (char *)p;
  const char *e = line + len;
  while (k < e) {
    if (*k == '%') {
      if (e - k < 3)
        return false;
      int hi = bk_hexval(k[1]), lo = bk_hexval(k[2]);
      if (hi < 0 || lo < 0)
        return false;
      *w++ = (char)(hi << 4 | lo);
      k += 3;
    } else {
      *w++ = *k++;
    }
  }
  bool added;
  bk_digest d = bk_identity(p, (size_t)(w - p), (uint64_t)size, (int64_t)mtime);
  return bk_insert(j, d, &added) == BULKUP_OK;
}

static bulkup_err bk_load(bulkup_journal *j) {
  size_t cap = 65536, len = 0;
  char *buf = bk_malloc(cap);
  if (!buf)
    return bk_error(BULKUP_ENOMEM, "out of memory reading the journal");
  bulkup_err rc = BULKUP_OK;
  for (;;) {
    if (len == cap) {
      if (cap >= (size_t)1 << 30) { /* a 1 GiB line is not ours */
        rc = bk_error(BULKUP_EPARSE, "%s: a line is longer than 1 GiB", j->path);
        break;
      }
      char *nb = bk_realloc(buf, cap * 2);
      if (!nb) {
        rc = bk_error(BULKUP_ENOMEM, "out of memory reading the journal");
        break;
      }
      buf = nb;
      cap *= 2;
    }
    ssize_t r = read(j->fd, buf + len, cap - len);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      rc = bk_error(BULKUP_EIO, "cannot read %s: %s", j->path, strerror(errno));
      break;
    }
    if (r == 0) {
      if (len > 0) {
        /* The last line has no '\n': torn by a crash, unless only the
         * newline is missing (then its CRC still checks out). Either way
         * the next record starts on a fresh line. */
        if (!bk_parse_line(j, buf, len))
          j->ignored++;
        j->need_newline = true;
      }
      break;
    }
    len += (size_t)r;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
      if (buf[i] == '\n') {
        if (i > start && !bk_parse_line(j, buf + start, i - start))
          j->ignored++;
        start = i + 1;
      }
    }
    memmove(buf, buf + start, len - start);
    len -= start;
  }
  bk_free(buf);
  return rc;
}

bulkup_err bulkup_journal_open(bulkup_journal **out, const char *path,
                               const bulkup_journal_options *opt) {
  if (!out || !path)
    return bk_error(BULKUP_EINVAL, "out and path must not be NULL");
  *out = NULL;
  bulkup_journal *j = bk_calloc(1, sizeof *j);
  if (!j)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  if (opt)
    j->opt = *opt;
  else
    bulkup_journal_options_init(&j->opt);
  if (j->opt.sync_every == 0)
    j->opt.sync_every = 1;
  j->path = bk_strdup(path);
  j->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  bulkup_err rc = BULKUP_OK;
  if (!j->path)
    rc = bk_error(BULKUP_ENOMEM, "out of memory");
  else if (j->fd < 0)
    rc = bk_error(BULKUP_EIO, "cannot open journal %s: %s", path,
                  strerror(errno));
  else if ((rc = bk_grow(j)) == BULKUP_OK)
    rc = bk_load(j);
  if (rc != BULKUP_OK) {
    if (j->fd >= 0)
      close(j->fd);
    bk_free(j->slots);
    bk_free(j->path);
    bk_free(j);
    return rc;
  }
  bk_mutex_init(&j->lock);
  j->last_sync = bk_now();
  *out = j;
  return BULKUP_OK;
}

bool bulkup_journal_contains(bulkup_journal *j, const char *key, uint64_t size,
                             int64_t mtime_ns) {
  if (!j || !key)
    return false;
  bk_digest d = bk_identity(key, strlen(key), size, mtime_ns);
  bk_mutex_lock(&j->lock);
  size_t pos;
  bool found = bk_slot_find(j, d, &pos);
  bk_mutex_unlock(&j->lock);
  return found;
}

static bulkup_err bk_sync_locked(bulkup_journal *j) {
  j->unsynced = 0;
  j->last_sync = bk_now();
  if (fdatasync(j->fd) != 0)
    return bk_error(BULKUP_EIO, "cannot sync journal %s: %s", j->path,
                    strerror(errno));
  return BULKUP_OK;
}

static bulkup_err bk_write_all(bulkup_journal *j, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(j->fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return bk_error(BULKUP_EIO, "cannot write journal %s: %s", j->path,
                      strerror(errno));
    }
    p += w;
    n -= (size_t)w;
  }
  return BULKUP_OK;
}

bulkup_err bulkup_journal_record(bulkup_journal *j, const char *key,
                                 uint64_t size, int64_t mtime_ns) {
  if (!j || !key)
    return bk_error(BULKUP_EINVAL, "journal and key must not be NULL");
  size_t klen = strlen(key);
  /* "J1 " + crc + " " + numbers + escaped key + "\n" */
  size_t cap = 3 + 8 + 1 + 48 + klen * 3 + 2;
  char *line = bk_malloc(cap);
  if (!line)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  int n = snprintf(line + 12, cap - 12, "%" PRIu64 " %" PRId64 " ", size,
                   mtime_ns);
  size_t o = 12 + (size_t)n;
  static const char hx[] = "0123456789ABCDEF";
  for (size_t i = 0; i < klen; i++) {
    unsigned char c = (unsigned char)key[i];
    if (c == '%' || c < 0x21 || c == 0x7f) {
      line[o++] = '%';
      line[o++] = hx[c >> 4];
      line[o++] = hx[c & 15];
    } else {
      line[o++] = (char)c;
    }
  }
  uint32_t crc = bk_crc32(line + 12, o - 12);
  char head[13];
  snprintf(head, sizeof head, "J1 %08" PRIx32 " ", crc);
  memcpy(line, head, 12);
  line[o++] = '\n';

  bk_digest d = bk_identity(key, klen, size, mtime_ns);
  bk_mutex_lock(&j->lock);
  bool added = false;
  bulkup_err rc = bk_insert(j, d, &added);
  if (rc == BULKUP_OK && added) {
    if (j->need_newline) {
      rc = bk_write_all(j, "\n", 1);
      if (rc == BULKUP_OK)
        j->need_newline = false;
    }
    if (rc == BULKUP_OK)
      rc = bk_write_all(j, line, o);
    if (rc == BULKUP_OK &&
        (++j->unsynced >= j->opt.sync_every ||
         bk_now() - j->last_sync >= j->opt.sync_interval))
      rc = bk_sync_locked(j);
  }
  bk_mutex_unlock(&j->lock);
  bk_free(line);
  return rc;
}

bulkup_err bulkup_journal_sync(bulkup_journal *j) {
  if (!j)
    return bk_error(BULKUP_EINVAL, "journal must not be NULL");
  bk_mutex_lock(&j->lock);
  bulkup_err rc = bk_sync_locked(j);
  bk_mutex_unlock(&j->lock);
  return rc;
}

uint64_t bulkup_journal_count(bulkup_journal *j) {
  if (!j)
    return 0;
  bk_mutex_lock(&j->lock);
  uint64_t n = j->count;
  bk_mutex_unlock(&j->lock);
  return n;
}

uint64_t bulkup_journal_ignored_lines(bulkup_journal *j) {
  if (!j)
    return 0;
  bk_mutex_lock(&j->lock);
  uint64_t n = j->ignored;
  bk_mutex_unlock(&j->lock);
  return n;
}

bulkup_err bulkup_journal_close(bulkup_journal *j) {
  if (!j)
    return BULKUP_OK;
  bk_mutex_lock(&j->lock);
  bulkup_err rc = bk_sync_locked(j);
  bk_mutex_unlock(&j->lock);
  if (close(j->fd) != 0 && rc == BULKUP_OK)
    rc = bk_error(BULKUP_EIO, "cannot close journal %s: %s", j->path,
                  strerror(errno));
  bk_mutex_destroy(&j->lock);
  bk_free(j->slots);
  bk_free(j->path);
  bk_free(j);
  return rc;
}
