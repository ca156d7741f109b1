/*
 * manifest.c - streaming CSV and JSON Lines manifest reader.
 *
 * Both formats are read byte by byte from a stdio stream into a record
 * buffer that is reused from record to record; nothing else is kept, so
 * memory does not grow with the manifest. A record that does not parse is
 * consumed to its end (for CSV by the same state machine, so a bad quote
 * costs at most the rest of the file) and reported; the caller decides
 * whether to go on.
 */
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bulkup.h>
#include <json-c/json.h>

/* Columns a CSV record may carry. */
enum column { COL_PATH, COL_URL, COL_CONTENT_TYPE, COL_TITLE, COL_DATA_TYPE,
              COL_COUNT };
static const char *const column_names[COL_COUNT] = {
    "path", "url", "content_type", "title", "data_type"};

#define SNIFF_MAX 4096
#define MAX_FIELDS 16

#define INPUT_BUFFER 65536

struct manifest_reader {
  FILE *f;
  bool owned;
  /* A pipe or terminal, read with poll() and read() on fd so that a byte
   * on wake_fd (manifest_set_wake_fd) ends a wait for input that may never
   * come (an idle producer); -1: read through stdio. */
  int fd, wake_fd;
  unsigned char *in;
  size_t in_pos, in_len;
  int in_errno;     /* a read error of the fd */
  bool interrupted; /* woken: the input ends here */
  char *name;
  manifest_format fmt;
  /* Bytes read ahead while sniffing the format, replayed first. */
  unsigned char *pb;
  size_t pb_len, pb_pos;
  unsigned long line; /* line of the next byte, from 1 */
  bool eof;
  /* The current record: field bytes, NUL-separated. */
  char *buf;
  size_t len, cap;
  size_t field_off[MAX_FIELDS];
  size_t nfields;
  bool field_quoted[MAX_FIELDS];
  /* CSV columns: columns[i] is what field i holds. */
  int columns[MAX_FIELDS];
  size_t ncolumns;
  bool header_seen; /* a header or a first data record was read */
  bool has_header;
  /* JSONL */
  json_tokener *tok;
  json_object *obj;
  /* The record's "headers" as "Name: value" lines (JSONL only). */
  char *hdr_buf;
  const char *hdr_lines[MANIFEST_MAX_HEADERS + 1];
  char err[1024];
  unsigned long err_line;
};

/* ---- bytes in -------------------------------------------------------- */

static int g_wake_fd = -1;

void manifest_set_wake_fd(int fd) { g_wake_fd = fd; }

/* Fill r->in from r->fd; false at the end of the input, on an error
 * (in_errno) or when woken (interrupted). */
static bool refill(manifest_reader *r) {
  for (;;) {
    struct pollfd p[2] = {{.fd = r->fd, .events = POLLIN},
                          {.fd = r->wake_fd, .events = POLLIN}};
    int n = poll(p, r->wake_fd >= 0 ? 2 : 1, -1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      r->in_errno = errno;
      return false;
    }
    if (r->wake_fd >= 0 && (p[1].revents & POLLIN)) {
      r->interrupted = true;
      return false;
    }
    ssize_t got = read(r->fd, r->in, INPUT_BUFFER);
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      r->in_errno = errno;
      return false;
    }
    r->in_pos = 0;
    r->in_len = (size_t)got;
    return got > 0;
  }
}

/* The next byte of the input itself, or EOF. */
static int raw_getc(manifest_reader *r) {
  if (r->fd < 0)
    return getc_unlocked(r->f);
  if (r->in_pos == r->in_len && !refill(r))
    return EOF;
  return r->in[r->in_pos++];
}

static int rd(manifest_reader *r) {
  int c;
  if (r->pb_pos < r->pb_len)
    c = r->pb[r->pb_pos++];
  else if (r->eof)
    return EOF;
  else {
    c = raw_getc(r);
    if (c == EOF) {
      r->eof = true;
      return EOF;
    }
  }
  if (c == '\n')
    r->line++;
  return c;
}

/* Look at the next byte without taking it. */
static int peek(manifest_reader *r) {
  if (r->pb_pos < r->pb_len)
    return r->pb[r->pb_pos];
  if (r->eof)
    return EOF;
  int c = raw_getc(r);
  if (c == EOF) {
    r->eof = true;
    return EOF;
  }
  if (r->fd >= 0)
    r->in_pos--; /* raw_getc took it from the buffer */
  else
    ungetc(c, r->f);
  return c;
}

static void set_err(manifest_reader *r, unsigned long line, const char *fmt,
                    ...) __attribute__((format(printf, 3, 4)));
static void set_err(manifest_reader *r, unsigned long line, const char *fmt,
                    ...) {
  r->err_line = line;
  int n = snprintf(r->err, sizeof r->err, "%s line %lu: ", r->name, line);
  if (n < 0 || (size_t)n >= sizeof r->err)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->err + n, sizeof r->err - (size_t)n, fmt, ap);
  va_end(ap);
}

static bool io_failed(manifest_reader *r) {
  if (r->interrupted) {
    snprintf(r->err, sizeof r->err, "reading %s: interrupted", r->name);
    return true;
  }
  if (r->fd >= 0 && r->in_errno) {
    snprintf(r->err, sizeof r->err, "error reading %s: %s", r->name,
             strerror(r->in_errno));
    return true;
  }
  if (!ferror(r->f))
    return false;
  snprintf(r->err, sizeof r->err, "error reading %s: %s", r->name,
           strerror(errno ? errno : EIO));
  return true;
}

/* Append a byte to the record; false once the record is too long (the
 * byte is dropped). */
static bool put(manifest_reader *r, char c) {
  if (r->len >= MANIFEST_MAX_RECORD)
    return false;
  if (r->len + 1 >= r->cap) {
    size_t ncap = r->cap ? r->cap * 2 : 256;
    char *nb = realloc(r->buf, ncap);
    if (!nb)
      return false;
    r->buf = nb;
    r->cap = ncap;
  }
  r->buf[r->len++] = c;
  return true;
}

/* ---- opening --------------------------------------------------------- */

manifest_format manifest_format_for_name(const char *path) {
  const char *dot = path ? strrchr(path, '.') : NULL;
  if (!dot || strchr(dot, '/'))
    return MANIFEST_AUTO;
  if (strcasecmp(dot, ".csv") == 0)
    return MANIFEST_CSV;
  if (strcasecmp(dot, ".jsonl") == 0 || strcasecmp(dot, ".ndjson") == 0)
    return MANIFEST_JSONL;
  return MANIFEST_AUTO;
}

/* Read ahead to the first non-blank byte, keep what was read for replay,
 * and skip a byte order mark. */
static bool sniff(manifest_reader *r) {
  r->pb = malloc(SNIFF_MAX);
  if (!r->pb)
    return false;
  int first = EOF;
  while (r->pb_len < SNIFF_MAX) {
    int c = raw_getc(r);
    if (c == EOF) {
      r->eof = true;
      break;
    }
    r->pb[r->pb_len++] = (unsigned char)c;
    if (r->pb_len == 3 && memcmp(r->pb, "\xEF\xBB\xBF", 3) == 0) {
      r->pb_pos = 3;
      continue;
    }
    if (r->pb_len < 3 && r->pb[0] == 0xEF &&
        (r->pb_len == 1 || r->pb[1] == 0xBB))
      continue; /* perhaps a byte order mark */
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
      first = c;
      break;
    }
  }
  if (first == EOF && r->pb_len > r->pb_pos)
    first = r->pb[r->pb_pos]; /* a short, odd prefix: not JSON */
  if (r->fmt == MANIFEST_AUTO)
    r->fmt = first == '{' ? MANIFEST_JSONL : MANIFEST_CSV;
  return true;
}

manifest_reader *manifest_open_stream(FILE *f, const char *name,
                                      manifest_format fmt, bool owned) {
  manifest_reader *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->f = f;
  r->owned = owned;
  r->fd = -1;
  r->wake_fd = -1;
  struct stat st;
  int fd = fileno(f);
  if (g_wake_fd >= 0 && fd >= 0 && fstat(fd, &st) == 0 &&
      !S_ISREG(st.st_mode)) {
    /* Nothing was read from f through stdio yet (just opened, or
     * standard input untouched), so reading its fd loses nothing. */
    r->in = malloc(INPUT_BUFFER);
    if (r->in) {
      r->fd = fd;
      r->wake_fd = g_wake_fd;
    }
  }
  r->fmt = fmt;
  r->line = 1;
  r->name = strdup(name ? name : "manifest");
  if (!r->name || !sniff(r)) {
    r->owned = false;
    manifest_close(r);
    return NULL;
  }
  if (r->fmt == MANIFEST_JSONL) {
    r->tok = json_tokener_new();
    if (!r->tok) {
      r->owned = false;
      manifest_close(r);
      return NULL;
    }
    json_tokener_set_flags(r->tok, JSON_TOKENER_STRICT);
  }
  return r;
}

/* Open a manifest file. A named FIFO's open() would wait for a writer,
 * out of reach of a signal: it is opened without waiting (O_NONBLOCK) and
 * read with poll() (refill), which waits for the producer and wakes on the
 * wake descriptor, as a pipe on standard input is. Without a wake
 * descriptor, and for anything else, the descriptor blocks as usual. */
static FILE *open_input(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    return NULL;
  struct stat st;
  bool fifo = fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
  if (fifo && g_wake_fd < 0) {
    /* Read through stdio: a read before any writer came would see the
     * end of the input. Wait for the writer in open(), as before. */
    close(fd);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
      return NULL;
  } else if (!fifo) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
      int e = errno;
      close(fd);
      errno = e;
      return NULL;
    }
  }
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    int e = errno;
    close(fd);
    errno = e;
  }
  return f;
}

manifest_reader *manifest_open(const char *path, manifest_format fmt,
                               char *err, size_t errlen) {
  bool is_stdin = strcmp(path, "-") == 0;
  if (fmt == MANIFEST_AUTO && !is_stdin)
    fmt = manifest_format_for_name(path);
  FILE *f = is_stdin ? stdin : open_input(path);
  if (!f) {
    snprintf(err, errlen, "cannot open manifest %s: %s", path,
             strerror(errno));
    return NULL;
  }
  manifest_reader *r =
      manifest_open_stream(f, is_stdin ? "<stdin>" : path, fmt, !is_stdin);
  if (!r) {
    snprintf(err, errlen, "out of memory");
    if (!is_stdin)
      fclose(f);
    return NULL;
  }
  if (ferror(f) || r->in_errno) {
    snprintf(err, errlen, "cannot read manifest %s: %s", path,
             strerror(r->in_errno ? r->in_errno : errno ? errno : EIO));
    manifest_close(r);
    return NULL;
  }
  return r;
}

void manifest_close(manifest_reader *r) {
  if (!r)
    return;
  if (r->obj)
    json_object_put(r->obj);
  if (r->tok)
    json_tokener_free(r->tok);
  if (r->owned && r->f)
    fclose(r->f);
  free(r->pb);
  free(r->in);
  free(r->buf);
  free(r->hdr_buf);
  free(r->name);
  free(r);
}

manifest_format manifest_get_format(const manifest_reader *r) {
  return r->fmt;
}

const char *manifest_error(const manifest_reader *r) { return r->err; }

unsigned long manifest_error_line(const manifest_reader *r) {
  return r->err_line;
}

/* ---- CSV --------------------------------------------------------------- */

/* Read one CSV record into buf/field_off. Returns 1 for a record, 0 at the
 * end of input, -1 for a bad record (message set), -2 for I/O errors.
 * *start gets the record's first line. */
static int csv_record(manifest_reader *r, unsigned long *start) {
  enum { FIELD_START, UNQUOTED, QUOTED, QUOTE_IN_QUOTED } st = FIELD_START;
  r->len = 0;
  r->nfields = 0;
  *start = r->line;
  unsigned long quote_line = 0;
  const char *bad = NULL;
  bool too_many = false, too_long = false, any = false;

#define END_FIELD()                                                            \
  do {                                                                         \
    if (!put(r, '\0'))                                                         \
      too_long = true;                                                         \
    if (r->nfields < MAX_FIELDS) {                                             \
      r->field_quoted[r->nfields] = st != UNQUOTED && st != FIELD_START;      \
      r->nfields++;                                                            \
    } else                                                                     \
      too_many = true;                                                         \
  } while (0)
#define START_FIELD()                                                          \
  do {                                                                         \
    if (r->nfields < MAX_FIELDS)                                               \
      r->field_off[r->nfields] = r->len;                                       \
  } while (0)

  START_FIELD();
  for (;;) {
    int c = rd(r);
    if (c == EOF && io_failed(r))
      return -2;
    if (c == EOF && !any)
      return 0;
    any = true;
    if (c == '\0') {
      if (!bad)
        bad = "NUL byte in record";
      continue;
    }
    bool eol = c == '\n' || c == '\r' || c == EOF;
    if (c == '\r' && st != QUOTED) {
      if (peek(r) == '\n')
        rd(r);
      else
        r->line++; /* a lone CR ends a line too */
    }
    switch (st) {
    case FIELD_START:
    case UNQUOTED:
      if (eol) {
        END_FIELD();
        goto done;
      }
      if (c == ',') {
        END_FIELD();
        st = FIELD_START;
        START_FIELD();
      } else if (c == '"' && st == FIELD_START) {
        st = QUOTED;
        quote_line = r->line;
      } else {
        if (c == '"' && !bad)
          bad = "quote inside an unquoted field (quote the whole field and "
                "double the quote)";
        if (!put(r, (char)c))
          too_long = true;
        st = UNQUOTED;
      }
      break;
    case QUOTED:
      if (c == EOF) {
        set_err(r, *start, "quoted field opened on line %lu is not closed",
                quote_line);
        return -1;
      }
      if (c == '"')
        st = QUOTE_IN_QUOTED;
      else if (!put(r, (char)c))
        too_long = true;
      break;
    case QUOTE_IN_QUOTED:
      if (c == '"') {
        if (!put(r, '"'))
          too_long = true;
        st = QUOTED;
      } else if (c == ',') {
        END_FIELD();
        st = FIELD_START;
        START_FIELD();
      } else if (eol) {
        END_FIELD();
        goto done;
      } else {
        if (!bad)
          bad = "text after a closing quote";
        if (!put(r, (char)c))
          too_long = true;
        st = UNQUOTED;
      }
      break;
    }
  }
done:
#undef END_FIELD
#undef START_FIELD
  if (too_long) {
    set_err(r, *start, "record longer than %d bytes", MANIFEST_MAX_RECORD);
    return -1;
  }
  if (too_many) {
    set_err(r, *start, "more than %d fields", MAX_FIELDS);
    return -1;
  }
  if (bad) {
    set_err(r, *start, "%s", bad);
    return -1;
  }
  return 1;
}

static const char *field(manifest_reader *r, size_t i) {
  return r->buf + r->field_off[i];
}

static bool csv_blank(manifest_reader *r) {
  if (r->nfields != 1 || r->field_quoted[0])
    return false;
  for (const char *p = field(r, 0); *p; p++)
    if (*p != ' ' && *p != '\t')
      return false;
  return true;
}

/* Whether the record names columns; if so, take them. */
static bool csv_take_header(manifest_reader *r) {
  int cols[MAX_FIELDS];
  bool seen[COL_COUNT] = {false};
  for (size_t i = 0; i < r->nfields; i++) {
    int k = -1;
    for (int j = 0; j < COL_COUNT; j++)
      if (strcmp(field(r, i), column_names[j]) == 0)
        k = j;
    if (k < 0 || seen[k])
      return false;
    seen[k] = true;
    cols[i] = k;
  }
  if (!seen[COL_PATH] || !seen[COL_URL])
    return false;
  memcpy(r->columns, cols, sizeof cols);
  r->ncolumns = r->nfields;
  r->has_header = true;
  return true;
}

static manifest_status csv_next(manifest_reader *r, manifest_entry *e) {
  for (;;) {
    unsigned long start;
    int rc = csv_record(r, &start);
    if (rc == 0)
      return MANIFEST_EOF;
    if (rc == -2)
      return MANIFEST_IOERR;
    if (rc == -1)
      return MANIFEST_BAD;
    if (csv_blank(r))
      continue;
    if (!r->header_seen) {
      r->header_seen = true;
      if (csv_take_header(r))
        continue;
      for (int j = 0; j < COL_COUNT; j++)
        r->columns[j] = j;
    }
    if (r->has_header && r->nfields != r->ncolumns) {
      set_err(r, start, "expected %zu fields as in the header, got %zu",
              r->ncolumns, r->nfields);
      return MANIFEST_BAD;
    }
    if (!r->has_header && (r->nfields < 2 || r->nfields > 4)) {
      set_err(r, start,
              "expected 2 to 4 fields (path,url[,content_type[,title]]), got "
              "%zu",
              r->nfields);
      return MANIFEST_BAD;
    }
    const char *v[COL_COUNT] = {NULL};
    for (size_t i = 0; i < r->nfields; i++)
      v[r->columns[i]] = *field(r, i) ? field(r, i) : NULL;
    if (!v[COL_PATH]) {
      set_err(r, start, "empty path");
      return MANIFEST_BAD;
    }
    if (!v[COL_URL]) {
      set_err(r, start, "empty url");
      return MANIFEST_BAD;
    }
    e->path = v[COL_PATH];
    e->url = v[COL_URL];
    e->content_type = v[COL_CONTENT_TYPE];
    e->title = v[COL_TITLE];
    e->data_type = v[COL_DATA_TYPE];
    e->line = start;
    return MANIFEST_ENTRY;
  }
}

/* ---- JSON Lines -------------------------------------------------------- */

/* Read one line (without its LF, and without a CR before it). Returns 1,
 * 0 at the end, -1 when too long (consumed), -2 on I/O error. */
static int json_line(manifest_reader *r) {
  r->len = 0;
  bool any = false, too_long = false;
  for (;;) {
    int c = rd(r);
    if (c == EOF) {
      if (io_failed(r))
        return -2;
      if (!any)
        return 0;
      break;
    }
    any = true;
    if (c == '\n')
      break;
    if (!put(r, (char)c))
      too_long = true;
  }
  if (too_long)
    return -1;
  if (r->len > 0 && r->buf[r->len - 1] == '\r')
    r->len--;
  if (!put(r, '\0'))
    return -1;
  r->len--;
  return 1;
}

static bool json_blank(const char *s) {
  for (; *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\r')
      return false;
  return true;
}

/* Fetch an optional string member; false (message set) on a wrong type. */
static bool json_str(manifest_reader *r, unsigned long line, const char *key,
                     bool required, const char **out) {
  *out = NULL;
  json_object *v = NULL;
  if (!json_object_object_get_ex(r->obj, key, &v) || v == NULL) {
    if (required) {
      set_err(r, line, "missing \"%s\"", key);
      return false;
    }
    return true;
  }
  if (!json_object_is_type(v, json_type_string)) {
    set_err(r, line, "\"%s\" must be a string", key);
    return false;
  }
  const char *s = json_object_get_string(v);
  size_t n = (size_t)json_object_get_string_len(v);
  if (strlen(s) != n) {
    set_err(r, line, "\"%s\" holds a NUL character", key);
    return false;
  }
  if (n == 0) {
    if (required) {
      set_err(r, line, "empty \"%s\"", key);
      return false;
    }
    return true;
  }
  *out = s;
  return true;
}

/* The optional "headers" member: an object of string values, each checked
 * as every extra header is (bulkup_header_check), into r->hdr_lines. */
static bool json_headers(manifest_reader *r, unsigned long line,
                         manifest_entry *e) {
  json_object *h = NULL;
  free(r->hdr_buf);
  r->hdr_buf = NULL;
  if (!json_object_object_get_ex(r->obj, "headers", &h) || h == NULL)
    return true;
  if (!json_object_is_type(h, json_type_object)) {
    set_err(r, line, "\"headers\" must be an object of \"Name\": \"value\"");
    return false;
  }
  size_t total = 0, n = 0;
  json_object_object_foreach(h, k1, v1) {
    if (!json_object_is_type(v1, json_type_string)) {
      set_err(r, line, "header \"%.100s\": the value must be a string", k1);
      return false;
    }
    if (++n > MANIFEST_MAX_HEADERS) {
      set_err(r, line, "more than %d headers", MANIFEST_MAX_HEADERS);
      return false;
    }
    total += strlen(k1) + 2 + (size_t)json_object_get_string_len(v1) + 1;
  }
  if (n == 0)
    return true;
  r->hdr_buf = malloc(total);
  if (!r->hdr_buf) {
    set_err(r, line, "out of memory");
    return false;
  }
  char *w = r->hdr_buf;
  n = 0;
  json_object_object_foreach(h, k, v) {
    const char *s = json_object_get_string(v);
    size_t vl = (size_t)json_object_get_string_len(v);
    size_t kl = strlen(k);
    if (strlen(s) != vl) {
      set_err(r, line, "header \"%.100s\": the value holds a NUL character",
              k);
      return false;
    }
    memcpy(w, k, kl);
    memcpy(w + kl, ": ", 2);
    memcpy(w + kl + 2, s, vl + 1);
    const char *why = bulkup_header_check(w);
    if (why) {
      set_err(r, line, "header \"%.100s\": %s", k, why);
      return false;
    }
    r->hdr_lines[n++] = w;
    w += kl + 2 + vl + 1;
  }
  r->hdr_lines[n] = NULL;
  e->headers = r->hdr_lines;
  return true;
}

static manifest_status jsonl_next(manifest_reader *r, manifest_entry *e) {
  for (;;) {
    unsigned long start = r->line;
    int rc = json_line(r);
    if (rc == 0)
      return MANIFEST_EOF;
    if (rc == -2)
      return MANIFEST_IOERR;
    if (rc == -1) {
      set_err(r, start, "line longer than %d bytes", MANIFEST_MAX_RECORD);
      return MANIFEST_BAD;
    }
    if (json_blank(r->buf))
      continue;
    if (strlen(r->buf) != r->len) {
      set_err(r, start, "NUL byte in line");
      return MANIFEST_BAD;
    }
    if (r->obj) {
      json_object_put(r->obj);
      r->obj = NULL;
    }
    json_tokener_reset(r->tok);
    /* Include the terminating NUL so that the tokener knows the text
     * ends here (a bare number would otherwise wait for more digits). */
    r->obj = json_tokener_parse_ex(r->tok, r->buf, (int)r->len + 1);
    enum json_tokener_error jerr = json_tokener_get_error(r->tok);
    if (jerr != json_tokener_success) {
      if (r->obj) {
        json_object_put(r->obj);
        r->obj = NULL;
      }
      set_err(r, start, "invalid JSON: %s", json_tokener_error_desc(jerr));
      return MANIFEST_BAD;
    }
    size_t end = json_tokener_get_parse_end(r->tok);
    if (end < r->len && !json_blank(r->buf + end)) {
      set_err(r, start, "invalid JSON: text after the object");
      return MANIFEST_BAD;
    }
    if (!json_object_is_type(r->obj, json_type_object)) {
      set_err(r, start, "not a JSON object");
      return MANIFEST_BAD;
    }
    if (!json_str(r, start, "path", true, &e->path) ||
        !json_str(r, start, "url", true, &e->url) ||
        !json_str(r, start, "content_type", false, &e->content_type) ||
        !json_str(r, start, "title", false, &e->title) ||
        !json_str(r, start, "data_type", false, &e->data_type) ||
        !json_headers(r, start, e))
      return MANIFEST_BAD;
    e->line = start;
    return MANIFEST_ENTRY;
  }
}

bool header_value_ok(const char *v) {
  for (const unsigned char *p = (const unsigned char *)v; *p; p++)
    if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
      return false;
  return true;
}

manifest_status manifest_next(manifest_reader *r, manifest_entry *e) {
  r->err[0] = '\0';
  r->err_line = 0;
  memset(e, 0, sizeof *e);
  manifest_status st =
      r->fmt == MANIFEST_JSONL ? jsonl_next(r, e) : csv_next(r, e);
  /* A field that becomes a request header: a CR or LF in it would end the
   * header and start another (or a second request). NUL bytes are refused
   * for every field already. */
  if (st == MANIFEST_ENTRY && e->content_type &&
      !header_value_ok(e->content_type)) {
    set_err(r, e->line,
            "content_type holds a line break or another control character "
            "(it is sent as a header)");
    memset(e, 0, sizeof *e);
    return MANIFEST_BAD;
  }
  return st;
}
