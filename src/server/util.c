/*
 * util.c - small helpers of the server library: strings, uuids,
 * whole files, the stop-aware wait, and allocating wrappers over the
 * shared util library (src/util: hex, base64, percent-escapes, random
 * bytes), which the server links as bulkup_util. The clocks are util's
 * (bk_now, bk_now_real in src/util/thread.c).
 */
#include "bks_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

char *bks_strndup(const char *s, size_t n) {
  if (!s)
    return NULL;
  char *p = malloc(n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

char *bks_strdup(const char *s) { return s ? bks_strndup(s, strlen(s)) : NULL; }

void bks_copy(char *dst, size_t cap, const char *s, size_t len) {
  if (!s)
    len = 0;
  if (len >= cap)
    len = cap - 1;
  if (len)
    memcpy(dst, s, len);
  dst[len] = '\0';
}

unsigned bks_hash(const char *s) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h % BKS_BUCKETS;
}

void bks_uuid4(char out[37]) {
  unsigned char b[16];
  if (!bk_random_bytes(b, sizeof b)) {
    /* never expected; a uuid must still be unique within the process */
    static _Atomic unsigned long long fallback;
    unsigned long long v = ++fallback;
    double t = bk_now_real();
    memcpy(b, &v, 8);
    memcpy(b + 8, &t, 8);
  }
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  char hex[33];
  bk_hex_encode(b, 16, hex, false);
  snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
           hex + 16, hex + 20);
}

int bks_unhex(const char *s, unsigned char *out, size_t n) {
  if (strlen(s) != 2 * n)
    return -1;
  for (size_t i = 0; i < n; i++) {
    int a = bk_hex_value(s[2 * i]), b = bk_hex_value(s[2 * i + 1]);
    if (a < 0 || b < 0)
      return -1;
    out[i] = (unsigned char)(a * 16 + b);
  }
  return 0;
}

char *bks_pct_decode(const char *s, size_t len) {
  char *out = malloc(len + 1);
  size_t n = 0;
  if (!out || !bk_pct_decode(s, len, out, &n, true)) {
    free(out);
    return NULL;
  }
  out[n] = '\0';
  return out;
}

char *bks_pct_encode_path(const char *s) {
  size_t len = strlen(s);
  char *out = malloc(3 * len + 1);
  if (out)
    bk_pct_encode(s, len, out, BK_PCT_PATH);
  return out;
}

char *bks_pct_encode(const char *s) {
  size_t len = strlen(s);
  char *out = malloc(3 * len + 1);
  if (out)
    bk_pct_encode(s, len, out, BK_PCT_UNRESERVED);
  return out;
}

char *bks_query_get(const char *query, const char *name, int *found) {
  size_t nlen = strlen(name);
  if (found)
    *found = 0;
  const char *p = query;
  while (p && *p) {
    const char *amp = strchr(p, '&');
    size_t plen = amp ? (size_t)(amp - p) : strlen(p);
    if (plen > nlen && p[nlen] == '=' && memcmp(p, name, nlen) == 0) {
      if (found)
        *found = 1;
      return bks_pct_decode(p + nlen + 1, plen - nlen - 1);
    }
    p = amp ? amp + 1 : NULL;
  }
  return NULL;
}

char *bks_asprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0)
    s = NULL;
  va_end(ap);
  return s;
}

void bks_set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

void bks_sha256_hex(const void *data, size_t len, char out[65]) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  if (!EVP_Digest(data, len, d, &n, EVP_sha256(), NULL))
    n = 0;
  bk_hex_encode(d, n, out, false);
}

/* ---- files ----------------------------------------------------------------- */

int bks_write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

void bks_fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
}

char *bks_read_file(const char *path, size_t max, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n + 1 >= cap) {
      size_t ncap = cap ? 2 * cap : 65536;
      char *b = realloc(buf, ncap);
      if (!b) {
        free(buf);
        close(fd);
        errno = ENOMEM;
        return NULL;
      }
      buf = b;
      cap = ncap;
    }
    ssize_t r = read(fd, buf + n, cap - n - 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      int e = errno;
      free(buf);
      close(fd);
      errno = e;
      return NULL;
    }
    if (r == 0)
      break;
    n += (size_t)r;
    if (n > max) {
      free(buf);
      close(fd);
      errno = EFBIG;
      return NULL;
    }
  }
  close(fd);
  buf[n] = '\0';
  if (len)
    *len = n;
  return buf;
}

/* ---- waiting ----------------------------------------------------------------- */

int bks_wait(int stop_fd, int fd, double seconds) {
  if (!(seconds > 0)) /* also NaN */
    return BKS_WAIT_TIMEOUT;
  double end = bk_now() + seconds;
  for (;;) {
    double left = end - bk_now();
    if (left <= 0)
      return BKS_WAIT_TIMEOUT;
    int ms = left * 1000.0 >= INT_MAX ? INT_MAX : (int)(left * 1000.0) + 1;
    struct pollfd p[2] = {{stop_fd, POLLIN, 0}, {fd, POLLRDHUP, 0}};
    int rc = poll(p, 2, ms);
    if (rc < 0 && errno != EINTR)
      return BKS_WAIT_STOP; /* cannot wait safely: give up waiting */
    if (rc <= 0)
      continue;
    if (p[0].revents)
      return BKS_WAIT_STOP;
    if (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR))
      return BKS_WAIT_PEER;
  }
}
