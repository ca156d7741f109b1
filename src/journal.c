/* journal.c - the crash-safe record of completed items and of the
 * resumable sessions still open.
 *
 * Line formats (one record each, '\n'-terminated):
 *   J1 <crc> <size> <mtime_ns> <key>          an item completed
 *   S1 <crc> <size> <mtime_ns> <key> <url>    an item's resumable session
 *   S1 <crc> <size> <mtime_ns> <key>          (trailing space, empty url)
 *                                             its session forgotten
 * <crc> is the CRC-32 of the rest of the line (everything after the CRC
 * field and its space), 8 lowercase hex digits. <key> and <url> escape '%',
 * bytes below 0x21 (the space among them) and 0x7f as %XX, so neither holds
 * a space and the one between them is the separator. The identity kept in
 * memory is the first 16 bytes of SHA-256(size, mtime, key).
 *
 * Memory: completed identities in an open-addressing set of digests (16
 * bytes each); open sessions in a second, small table of digest and URL,
 * from which a completion or a forget removes the entry and frees the URL.
 *
 * What is in memory is always what a reader of the file would rebuild: a
 * record changes memory only once its line is written, and a call that
 * would not change what the file says writes nothing. */
#include "internal.h"
#include "util/sha256.h"
#include "util/str.h"

#include <fcntl.h>
#include <inttypes.h>
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

/* An open session; d {0,0} marks an empty slot. */
typedef struct bk_session {
  bk_digest d;
  char *url;
} bk_session;

struct bulkup_journal {
  pthread_mutex_t lock; /* guards everything below */
  int fd;
  char *path;
  bulkup_journal_options opt;
  bk_digest *slots; /* completed items; open addressing; {0,0} is empty */
  size_t cap, count;
  bk_session *sess; /* open sessions; NULL while there are none */
  size_t sess_cap, sess_count;
  uint64_t ignored;
  unsigned int unsynced;
  double last_sync;
  bool need_newline; /* the file may end in a torn line */
  bool private_ok;   /* checked: group and others cannot read the file */
  bool loaded_urls;  /* the file held a session URL when it was opened */
};

void bulkup_journal_options_init(bulkup_journal_options *o) {
  o->sync_every = 256;
  o->sync_interval = 1.0;
}

/* The identity: SHA-256 of (size, mtime, key), which cannot fail
 * (util/sha256.c), so two different keys never share an identity by an
 * error. */
static bk_digest bk_identity(const char *key, size_t klen, uint64_t size,
                             int64_t mtime) {
  unsigned char md[BK_SHA256_LEN];
  unsigned char hdr[16];
  memcpy(hdr, &size, 8);
  memcpy(hdr + 8, &mtime, 8);
  bk_sha256_ctx c;
  bk_sha256_init(&c);
  bk_sha256_update(&c, hdr, sizeof hdr);
  bk_sha256_update(&c, key, klen);
  bk_sha256_final(&c, md);
  bk_digest d;
  memcpy(&d.a, md, 8);
  memcpy(&d.b, md + 8, 8);
  if (d.a == 0 && d.b == 0)
    d.b = 1; /* never the empty marker */
  return d;
}

static bool bk_digest_empty(bk_digest d) { return d.a == 0 && d.b == 0; }

static bool bk_digest_eq(bk_digest x, bk_digest y) {
  return x.a == y.a && x.b == y.b;
}

/* --- completed items ---------------------------------------------------- */

static bool bk_done_find(const bulkup_journal *j, bk_digest d, size_t *pos) {
  size_t mask = j->cap - 1;
  size_t i = (size_t)d.a & mask;
  for (;;) {
    const bk_digest *s = &j->slots[i];
    if (bk_digest_empty(*s)) {
      *pos = i;
      return false;
    }
    if (bk_digest_eq(*s, d)) {
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
    if (!bk_digest_empty(old[i])) {
      size_t pos;
      bk_done_find(j, old[i], &pos);
      j->slots[pos] = old[i];
    }
  }
  bk_free(old);
  return BULKUP_OK;
}

/* Room for one more completed item, so that the insert after a write
 * cannot fail. */
static bulkup_err bk_reserve(bulkup_journal *j) {
  return (j->count + 1) * 2 > j->cap ? bk_grow(j) : BULKUP_OK;
}

/* Insert into reserved room; a no-op if already there. */
static void bk_insert_reserved(bulkup_journal *j, bk_digest d) {
  size_t pos;
  if (!bk_done_find(j, d, &pos)) {
    j->slots[pos] = d;
    j->count++;
  }
}

/* --- open sessions ------------------------------------------------------ */
/* Linear probing with backward-shift deletion (no tombstones), kept at
 * most half full; the table is freed whenever the last session ends. */

static bool bk_sess_find(const bulkup_journal *j, bk_digest d, size_t *pos) {
  if (!j->sess_cap)
    return false;
  size_t mask = j->sess_cap - 1;
  size_t i = (size_t)d.a & mask;
  for (;;) {
    const bk_session *s = &j->sess[i];
    if (bk_digest_empty(s->d)) {
      *pos = i;
      return false;
    }
    if (bk_digest_eq(s->d, d)) {
      *pos = i;
      return true;
    }
    i = (i + 1) & mask;
  }
}

/* Room for one more open session. */
static bulkup_err bk_sess_reserve(bulkup_journal *j) {
  if ((j->sess_count + 1) * 2 <= j->sess_cap)
    return BULKUP_OK;
  size_t ncap = j->sess_cap ? j->sess_cap * 2 : 16;
  bk_session *ns = bk_calloc(ncap, sizeof *ns);
  if (!ns)
    return bk_error(BULKUP_ENOMEM, "out of memory for the journal");
  bk_session *old = j->sess;
  size_t ocap = j->sess_cap;
  j->sess = ns;
  j->sess_cap = ncap;
  for (size_t i = 0; i < ocap; i++) {
    if (!bk_digest_empty(old[i].d)) {
      size_t pos = 0;
      bk_sess_find(j, old[i].d, &pos);
      j->sess[pos] = old[i];
    }
  }
  bk_free(old);
  return BULKUP_OK;
}

/* Set d's session to url (taking it) in reserved room, replacing and
 * freeing any earlier one. */
static void bk_sess_put(bulkup_journal *j, bk_digest d, char *url) {
  size_t pos = 0;
  if (bk_sess_find(j, d, &pos)) {
    bk_free(j->sess[pos].url);
  } else {
    j->sess[pos].d = d;
    j->sess_count++;
  }
  j->sess[pos].url = url;
}

/* End the session in slot pos. */
static void bk_sess_remove_at(bulkup_journal *j, size_t pos) {
  bk_free(j->sess[pos].url);
  if (--j->sess_count == 0) {
    bk_free(j->sess);
    j->sess = NULL;
    j->sess_cap = 0;
    return;
  }
  /* Shift later entries of the probe run back into the hole, unless their
   * home slot lies cyclically in (hole, k]. */
  size_t mask = j->sess_cap - 1, hole = pos;
  for (size_t k = (hole + 1) & mask; !bk_digest_empty(j->sess[k].d);
       k = (k + 1) & mask) {
    size_t home = (size_t)j->sess[k].d.a & mask;
    if (((k - home) & mask) >= ((k - hole) & mask)) {
      j->sess[hole] = j->sess[k];
      hole = k;
    }
  }
  j->sess[hole] = (bk_session){{0, 0}, NULL};
}

static void bk_sess_remove(bulkup_journal *j, bk_digest d) {
  size_t pos;
  if (bk_sess_find(j, d, &pos))
    bk_sess_remove_at(j, pos);
}

static void bk_sess_free_all(bulkup_journal *j) {
  for (size_t i = 0; i < j->sess_cap; i++)
    bk_free(j->sess[i].url);
  bk_free(j->sess);
  j->sess = NULL;
  j->sess_cap = j->sess_count = 0;
}

/* --- reading ------------------------------------------------------------ */

/* A decimal number in [*pp, e) followed by a space; moves *pp past the
 * space. Bounded by e: the last line of a file has no '\n' to stop at. */
static bool bk_take_u64(const char **pp, const char *e, uint64_t *out) {
  const char *p = *pp;
  uint64_t v = 0;
  if (p == e || *p < '0' || *p > '9')
    return false;
  for (; p < e && *p >= '0' && *p <= '9'; p++) {
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return false;
    v = v * 10 + d;
  }
  if (p == e || *p != ' ')
    return false;
  *pp = p + 1;
  *out = v;
  return true;
}

static bool bk_take_i64(const char **pp, const char *e, int64_t *out) {
  const char *p = *pp;
  bool neg = p < e && *p == '-';
  uint64_t m;
  if (neg)
    p++;
  if (!bk_take_u64(&p, e, &m) || m > (uint64_t)INT64_MAX + (neg ? 1 : 0))
    return false;
  if (!neg)
    *out = (int64_t)m;
  else if (m == (uint64_t)INT64_MAX + 1)
    *out = INT64_MIN;
  else
    *out = -(int64_t)m;
  *pp = p;
  return true;
}

/* Unescape [s, e) in place; the result's length in *n. */
static bool bk_unescape(char *s, const char *e, size_t *n) {
  return bk_pct_decode(s, (size_t)(e - s), s, n, false);
}

/* Parse one line (without its '\n') and apply it. *ok false: the line is
 * torn or corrupt (ignored). Only running out of memory is an error. */
static bulkup_err bk_parse_line(bulkup_journal *j, char *line, size_t len,
                                bool *ok) {
  *ok = false;
  if (len < 12 || line[2] != ' ' || line[11] != ' ')
    return BULKUP_OK;
  bool session;
  if (memcmp(line, "J1", 2) == 0)
    session = false;
  else if (memcmp(line, "S1", 2) == 0)
    session = true;
  else
    return BULKUP_OK;
  uint32_t want = 0;
  for (int i = 3; i < 11; i++) {
    int v = bk_hex_value(line[i]);
    if (v < 0)
      return BULKUP_OK;
    want = want << 4 | (uint32_t)v;
  }
  char *rest = line + 12;
  const char *e = line + len;
  if (bk_crc32(rest, (size_t)(e - rest)) != want)
    return BULKUP_OK;
  const char *p = rest;
  uint64_t size;
  int64_t mtime;
  if (!bk_take_u64(&p, e, &size) || !bk_take_i64(&p, e, &mtime))
    return BULKUP_OK;
  char *key = (char *)p, *key_end = (char *)e, *url = NULL;
  if (session) {
    key_end = memchr(key, ' ', (size_t)(e - key));
    if (!key_end)
      return BULKUP_OK;
    url = key_end + 1;
    if (memchr(url, ' ', (size_t)(e - url)))
      return BULKUP_OK; /* one separator only: the writer escapes spaces */
  }
  size_t klen, ulen = 0;
  if (!bk_unescape(key, key_end, &klen) ||
      (session && !bk_unescape(url, e, &ulen)))
    return BULKUP_OK;
  /* No writer puts a NUL in a URL (it is a C string). */
  if (session && memchr(url, '\0', ulen))
    return BULKUP_OK;
  bk_digest d = bk_identity(key, klen, size, mtime);
  if (!session) {
    bulkup_err rc = bk_reserve(j);
    if (rc != BULKUP_OK)
      return rc;
    bk_insert_reserved(j, d);
    bk_sess_remove(j, d);
  } else if (ulen == 0) {
    bk_sess_remove(j, d);
  } else {
    char *copy = bk_strndup(url, ulen);
    if (!copy)
      return bk_error(BULKUP_ENOMEM, "out of memory for the journal");
    bulkup_err rc = bk_sess_reserve(j);
    if (rc != BULKUP_OK) {
      bk_free(copy);
      return rc;
    }
    bk_sess_put(j, d, copy);
    j->loaded_urls = true;
  }
  *ok = true;
  return BULKUP_OK;
}

static bulkup_err bk_load(bulkup_journal *j) {
  size_t cap = 65536, len = 0;
  char *buf = bk_malloc(cap);
  if (!buf)
    return bk_error(BULKUP_ENOMEM, "out of memory reading the journal");
  bulkup_err rc = BULKUP_OK;
  bool ok;
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
        rc = bk_parse_line(j, buf, len, &ok);
        if (rc == BULKUP_OK && !ok)
          j->ignored++;
        j->need_newline = true;
      }
      break;
    }
    len += (size_t)r;
    size_t start = 0;
    for (size_t i = 0; i < len && rc == BULKUP_OK; i++) {
      if (buf[i] == '\n') {
        if (i > start) {
          rc = bk_parse_line(j, buf + start, i - start, &ok);
          if (rc == BULKUP_OK && !ok)
            j->ignored++;
        }
        start = i + 1;
      }
    }
    if (rc != BULKUP_OK)
      break;
    memmove(buf, buf + start, len - start);
    len -= start;
  }
  bk_free(buf);
  return rc;
}

/* A journal made by an older bulkup (or by hand) may be readable by group
 * or others: take those bits away. 0, or an errno; *mode gets the mode
 * found. */
static int bk_make_private(bulkup_journal *j, unsigned *mode) {
  struct stat st;
  *mode = 0;
  if (fstat(j->fd, &st) != 0)
    return errno;
  *mode = (unsigned)(st.st_mode & 0777);
  if ((st.st_mode & 077) && fchmod(j->fd, st.st_mode & 07700) != 0)
    return errno;
  j->private_ok = true;
  return 0;
}

/* Under the lock, before a session URL goes into the file: private, or
 * no credential is written into it. */
static bulkup_err bk_private_locked(bulkup_journal *j) {
  unsigned mode;
  int e = j->private_ok ? 0 : bk_make_private(j, &mode);
  if (e)
    return bk_error(BULKUP_EIO,
                    "journal %s is readable by others (mode %03o) and cannot "
                    "be made private (%s): a session URL is not written "
                    "into it",
                    j->path, mode, strerror(e));
  return BULKUP_OK;
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
  /* 0600: session URLs are bearer credentials. */
  j->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
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
    bk_sess_free_all(j);
    bk_free(j->path);
    bk_free(j);
    return rc;
  }
  /* Session URLs already in the file: made private now. Should that fail
   * (another user's file), opening still succeeds; the first new session
   * URL then fails with the reason. */
  unsigned mode;
  if (j->loaded_urls)
    (void)bk_make_private(j, &mode);
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
  bool found = bk_done_find(j, d, &pos);
  bk_mutex_unlock(&j->lock);
  return found;
}

/* --- writing ------------------------------------------------------------ */

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

static void bk_escape_into(char *dst, size_t *o, const char *s, size_t n) {
  *o += bk_pct_encode(s, n, dst + *o, BK_PCT_PRINTABLE);
}

/* Format a record line (url NULL: a completion line; otherwise a session
 * line, "" forgetting). buf[0] is left for the '\n' that ends a torn line,
 * so that a record is one write(2) either way; the line itself is
 * buf[1..*len]. Freed with bk_free; NULL when out of memory. */
static char *bk_format_line(const char *key, size_t klen, uint64_t size,
                            int64_t mtime, const char *url, size_t ulen,
                            size_t *len) {
  if (klen > SIZE_MAX / 4 - 64 || ulen > SIZE_MAX / 4 - 64 - klen) {
    bk_error(BULKUP_ENOMEM, "journal record too large");
    return NULL;
  }
  /* '\n' + "J1 " + crc + " " + numbers + key + " " + url + "\n" */
  size_t cap = 1 + 12 + 48 + klen * 3 + 1 + ulen * 3 + 2;
  char *buf = bk_malloc(cap);
  if (!buf) {
    bk_error(BULKUP_ENOMEM, "out of memory");
    return NULL;
  }
  buf[0] = '\n';
  char *line = buf + 1;
  int n = snprintf(line + 12, cap - 13, "%" PRIu64 " %" PRId64 " ", size,
                   mtime);
  size_t o = 12 + (size_t)n;
  bk_escape_into(line, &o, key, klen);
  if (url) {
    line[o++] = ' ';
    bk_escape_into(line, &o, url, ulen);
  }
  uint32_t crc = bk_crc32(line + 12, o - 12);
  char head[13];
  snprintf(head, sizeof head, "%s %08" PRIx32 " ", url ? "S1" : "J1", crc);
  memcpy(line, head, 12);
  line[o++] = '\n';
  *len = o;
  return buf;
}

/* Append a line made by bk_format_line, then sync if a batch is due.
 * *written: the line is in the file (memory must follow it) even if the
 * sync then failed. */
static bulkup_err bk_append_locked(bulkup_journal *j, const char *buf,
                                   size_t len, bool *written) {
  *written = false;
  bulkup_err rc = j->need_newline ? bk_write_all(j, buf, len + 1)
                                  : bk_write_all(j, buf + 1, len);
  if (rc != BULKUP_OK) {
    /* Part of the line may have reached the file. */
    j->need_newline = true;
    return rc;
  }
  *written = true;
  j->need_newline = false;
  if (++j->unsynced >= j->opt.sync_every ||
      bk_now() - j->last_sync >= j->opt.sync_interval)
    rc = bk_sync_locked(j);
  return rc;
}

bulkup_err bulkup_journal_record(bulkup_journal *j, const char *key,
                                 uint64_t size, int64_t mtime_ns) {
  if (!j || !key)
    return bk_error(BULKUP_EINVAL, "journal and key must not be NULL");
  size_t klen = strlen(key), len;
  char *buf = bk_format_line(key, klen, size, mtime_ns, NULL, 0, &len);
  if (!buf)
    return BULKUP_ENOMEM;
  bk_digest d = bk_identity(key, klen, size, mtime_ns);
  bk_mutex_lock(&j->lock);
  size_t pos, spos;
  bool done = bk_done_find(j, d, &pos);
  bool open_session = bk_sess_find(j, d, &spos);
  bulkup_err rc = BULKUP_OK;
  /* Already recorded: write nothing, unless a session was opened for it
   * since, which this line ends. */
  if (!done || open_session) {
    bool written = false;
    if (!done)
      rc = bk_reserve(j);
    if (rc == BULKUP_OK)
      rc = bk_append_locked(j, buf, len, &written);
    if (written) {
      if (!done)
        bk_insert_reserved(j, d);
      if (open_session)
        bk_sess_remove_at(j, spos);
    }
  }
  bk_mutex_unlock(&j->lock);
  bk_free(buf);
  return rc;
}

bulkup_err bulkup_journal_record_session(bulkup_journal *j, const char *key,
                                         uint64_t size, int64_t mtime_ns,
                                         const char *session_url) {
  if (!j || !key)
    return bk_error(BULKUP_EINVAL, "journal and key must not be NULL");
  bool forget = !session_url || !*session_url;
  size_t klen = strlen(key), ulen = forget ? 0 : strlen(session_url), len;
  char *buf = bk_format_line(key, klen, size, mtime_ns,
                             forget ? "" : session_url, ulen, &len);
  char *copy = forget ? NULL : bk_strndup(session_url, ulen);
  if (!buf || (!forget && !copy)) {
    bk_free(buf);
    bk_free(copy);
    return bk_error(BULKUP_ENOMEM, "out of memory");
  }
  bk_digest d = bk_identity(key, klen, size, mtime_ns);
  bk_mutex_lock(&j->lock);
  size_t pos;
  bool open_session = bk_sess_find(j, d, &pos);
  bulkup_err rc = BULKUP_OK;
  bool written = false;
  if (forget) {
    if (open_session) {
      rc = bk_append_locked(j, buf, len, &written);
      if (written)
        bk_sess_remove_at(j, pos);
    }
  } else if (!open_session || strcmp(j->sess[pos].url, copy) != 0) {
    rc = bk_private_locked(j);
    if (rc == BULKUP_OK && !open_session)
      rc = bk_sess_reserve(j);
    if (rc == BULKUP_OK)
      rc = bk_append_locked(j, buf, len, &written);
    if (written) {
      bk_sess_put(j, d, copy);
      copy = NULL;
    }
  }
  bk_mutex_unlock(&j->lock);
  bk_free(copy);
  bk_free(buf);
  return rc;
}

char *bulkup_journal_session(bulkup_journal *j, const char *key, uint64_t size,
                             int64_t mtime_ns) {
  if (!j || !key)
    return NULL;
  bk_digest d = bk_identity(key, strlen(key), size, mtime_ns);
  bk_mutex_lock(&j->lock);
  size_t pos;
  char *url = bk_sess_find(j, d, &pos) ? bk_strdup(j->sess[pos].url) : NULL;
  bk_mutex_unlock(&j->lock);
  return url;
}

uint64_t bulkup_journal_session_count(bulkup_journal *j) {
  if (!j)
    return 0;
  bk_mutex_lock(&j->lock);
  uint64_t n = j->sess_count;
  bk_mutex_unlock(&j->lock);
  return n;
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
  bk_sess_free_all(j);
  bk_free(j->path);
  bk_free(j);
  return rc;
}
