/*
 * results.c - the --results JSON Lines writer (see results.h).
 *
 * One mutex guards the stream: workers format their record straight into
 * the stdio buffer under it (a record is short, and the buffer is large,
 * so a worker holds it for microseconds); the signal thread takes it to
 * flush. It is the innermost lock: nothing else is taken while it is held.
 */
#include "results.h"

#include "cli.h"
#include "util/str.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RESULTS_BUFFER (1 << 20)

struct results {
  pthread_mutex_t mu;
  FILE *f;
  bool owned; /* ours to close (not stdout) */
  char *buf;
  char *path;
  uint64_t count;
  int error; /* first errno of a failed write */
  bool gone; /* the reader closed the pipe (EPIPE): no more records */
  bool gone_said;
  void (*say)(const char *fmt, ...); /* messages; default cli_error */
};

void results_set_say(results *w, void (*say)(const char *fmt, ...)) {
  w->say = say;
}

/* After writing under the lock: a write error is kept, except EPIPE (the
 * reader went away, as `| head` does): that ends the stream, once, and is
 * not an error of the run. */
static void results_check(results *w) {
  if (!ferror(w->f))
    return;
  int e = errno ? errno : EIO;
  if (e == EPIPE) {
    w->gone = true;
    clearerr(w->f);
    return;
  }
  if (!w->error)
    w->error = e;
}

/* Say once (outside the lock) that the stream ended. */
static void results_say_gone(results *w) {
  bool say = false;
  pthread_mutex_lock(&w->mu);
  if (w->gone && !w->gone_said)
    say = w->gone_said = true;
  pthread_mutex_unlock(&w->mu);
  if (say)
    (w->say ? w->say : cli_error)("warning: --results %s: the reader closed the pipe; no more "
               "records are written (the uploads and the report go on)",
               w->path);
}

void json_put_string(FILE *f, const char *s) {
  if (!s) {
    fputs("null", f);
    return;
  }
  putc_unlocked('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    unsigned char ch = *p;
    switch (ch) {
    case '"':
      fputs("\\\"", f);
      break;
    case '\\':
      fputs("\\\\", f);
      break;
    case '\n':
      fputs("\\n", f);
      break;
    case '\r':
      fputs("\\r", f);
      break;
    case '\t':
      fputs("\\t", f);
      break;
    default:
      if (ch < 0x20 || ch == 0x7f) {
        fprintf(f, "\\u%04x", ch);
      } else if (ch < 0x80) {
        putc_unlocked(ch, f);
      } else {
        /* JSON text is UTF-8: a byte that is not part of a well-formed
         * sequence becomes U+FFFD (the exact bytes: json_put_b64). */
        size_t k = bk_utf8_seq((const char *)p, strnlen((const char *)p, 4));
        if (k) {
          fwrite(p, 1, k, f);
          p += k - 1;
        } else {
          fputs("\\ufffd", f);
        }
      }
    }
  }
  putc_unlocked('"', f);
}

bool json_put_b64(FILE *f, const char *key, const char *s) {
  if (!s)
    return true;
  size_t n = strlen(s);
  if (bk_utf8_valid(s, n))
    return true;
  char small[256];
  char *out = BK_B64_ENCODED_LEN(n) < sizeof small
                  ? small
                  : malloc(BK_B64_ENCODED_LEN(n) + 1);
  if (!out)
    return false;
  bk_b64_encode(s, n, out);
  fprintf(f, ", \"%s\": \"%s\"", key, out);
  if (out != small)
    free(out);
  return true;
}

results *results_open(const char *path, char *err, size_t errlen) {
  results *w = calloc(1, sizeof *w);
  if (!w || !(w->path = strdup(path))) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  if (strcmp(path, "-") == 0) {
    w->f = stdout;
  } else {
    w->f = fopen(path, "we");
    if (!w->f) {
      snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
      goto fail;
    }
    w->owned = true;
    /* stdout keeps its own buffer: setvbuf is only valid on a stream not
     * yet used. */
    w->buf = malloc(RESULTS_BUFFER);
    if (!w->buf) {
      fclose(w->f);
      snprintf(err, errlen, "out of memory");
      goto fail;
    }
    setvbuf(w->f, w->buf, _IOFBF, RESULTS_BUFFER);
  }
  pthread_mutex_init(&w->mu, NULL);
  return w;
fail:
  if (w) {
    free(w->buf);
    free(w->path);
    free(w);
  }
  return NULL;
}

void results_on_complete(void *arg, const bulkup_result *r) {
  results *w = arg;
  pthread_mutex_lock(&w->mu);
  w->count++;
  if (w->gone) {
    pthread_mutex_unlock(&w->mu);
    return;
  }
  errno = 0;
  FILE *f = w->f;
  fprintf(f, "{\"index\": %llu, \"path\": ", (unsigned long long)r->index);
  json_put_string(f, r->path);
  json_put_b64(f, "path_b64", r->path);
  fputs(", \"title\": ", f);
  json_put_string(f, r->title ? r->title : "");
  json_put_b64(f, "title_b64", r->title);
  fputs(", \"url\": ", f);
  json_put_string(f, r->url ? r->url : "");
  fprintf(f,
          ", \"status\": \"%s\", \"error\": \"%s\", \"http_status\": %d, "
          "\"attempts\": %d, \"size\": %llu, \"bytes_sent\": %llu, "
          "\"elapsed_s\": %.6f",
          bulkup_item_status_name(r->status), bulkup_error_kind_name(r->error),
          r->http_status, r->attempts, (unsigned long long)r->size,
          (unsigned long long)r->bytes_sent, r->elapsed_s);
  if (r->resumable)
    fprintf(f, ", \"resumable\": true, \"requests\": %d", r->requests);
  if (r->status != BULKUP_ITEM_SUCCEEDED) {
    fputs(", \"message\": ", f);
    json_put_string(f, r->message ? r->message : "");
  }
  fputs("}\n", f);
  results_check(w);
  bool gone = w->gone && !w->gone_said;
  pthread_mutex_unlock(&w->mu);
  if (gone)
    results_say_gone(w);
}

void results_flush(results *w) {
  if (!w)
    return;
  pthread_mutex_lock(&w->mu);
  errno = 0;
  if (!w->gone && fflush(w->f) != 0)
    results_check(w);
  pthread_mutex_unlock(&w->mu);
}

uint64_t results_count(results *w) {
  pthread_mutex_lock(&w->mu);
  uint64_t n = w->count;
  pthread_mutex_unlock(&w->mu);
  return n;
}

int results_close(results *w, char *err, size_t errlen) {
  if (!w)
    return 0;
  errno = 0;
  if (!w->gone && fflush(w->f) != 0)
    results_check(w);
  results_say_gone(w);
  int e = w->error;
  if (w->gone)
    clearerr(w->f); /* what stdio still holds is dropped below */
  if (w->owned) {
    if (fsync(fileno(w->f)) != 0 && !e && errno != EINVAL)
      e = errno;
    if (fclose(w->f) != 0 && !e)
      e = errno;
  }
  if (e)
    snprintf(err, errlen, "cannot write %s: %s", w->path, strerror(e));
  pthread_mutex_destroy(&w->mu);
  free(w->buf);
  free(w->path);
  free(w);
  return e;
}
