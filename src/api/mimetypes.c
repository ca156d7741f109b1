/* mimetypes.c - guess_type as Python's mimetypes does it (see
 * mimetypes.h). */
#include "internal.h"
#include "mimetypes.h"
#include "util/str.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct bk_mime {
  char *ext;  /* with its dot, as written in the file */
  char *type;
  size_t order; /* later entries win */
} bk_mime;

static bk_mime *bk_mimes;
static size_t bk_nmimes;
static pthread_once_t bk_mime_once = PTHREAD_ONCE_INIT;

/* Python's built-in image types (a fact of its mimetypes module), the
 * ones the system files do not override. */
static const char *const bk_builtin[][2] = {
    {".jpg", "image/jpeg"},   {".jpeg", "image/jpeg"}, {".jpe", "image/jpeg"},
    {".png", "image/png"},    {".gif", "image/gif"},   {".bmp", "image/bmp"},
    {".webp", "image/webp"},  {".tif", "image/tiff"},  {".tiff", "image/tiff"},
    {".avif", "image/avif"},  {".heic", "image/heic"}, {".heif", "image/heif"},
    {".svg", "image/svg+xml"}, {".ico", "image/vnd.microsoft.icon"},
    {".ief", "image/ief"},    {".ras", "image/x-cmu-raster"},
    {".pnm", "image/x-portable-anymap"}, {".pbm", "image/x-portable-bitmap"},
    {".pgm", "image/x-portable-graymap"}, {".ppm", "image/x-portable-pixmap"},
    {".rgb", "image/x-rgb"},  {".xbm", "image/x-xbitmap"},
    {".xpm", "image/x-xpixmap"}, {".xwd", "image/x-xwindowdump"},
};

static const char *const bk_mime_files[] = {
    "/etc/mime.types",
    "/etc/httpd/mime.types",
    "/etc/httpd/conf/mime.types",
    "/etc/apache/mime.types",
    "/etc/apache2/mime.types",
    "/usr/local/etc/httpd/conf/mime.types",
    "/usr/local/lib/netscape/mime.types",
    "/usr/local/etc/mime.types",
};

static bool bk_mime_add(size_t *cap, const char *ext, size_t el,
                        const char *type, size_t tl) {
  if (bk_nmimes == *cap) {
    size_t nc = *cap ? *cap * 2 : 256;
    bk_mime *nv = realloc(bk_mimes, nc * sizeof *nv);
    if (!nv)
      return false;
    bk_mimes = nv;
    *cap = nc;
  }
  bk_mime *m = &bk_mimes[bk_nmimes];
  m->ext = malloc(el + 2);
  m->type = strndup(type, tl);
  if (!m->ext || !m->type) {
    free(m->ext);
    free(m->type);
    return false;
  }
  m->ext[0] = '.';
  memcpy(m->ext + 1, ext, el);
  m->ext[el + 1] = '\0';
  m->order = bk_nmimes++;
  return true;
}

static int bk_mime_cmp(const void *a, const void *b) {
  const bk_mime *x = a, *y = b;
  int c = strcmp(x->ext, y->ext);
  if (c)
    return c;
  return x->order < y->order ? -1 : x->order > y->order;
}

/* "type ext ext ..." lines; '#' starts a comment (mimetypes.readfp). */
static void bk_mime_read(FILE *f, size_t *cap) {
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    char *hash = strchr(line, '#');
    if (hash)
      *hash = '\0';
    const char *w[64];
    size_t wl[64], n = 0;
    for (char *p = line; *p && n < 64;) {
      while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
      if (!*p)
        break;
      w[n] = p;
      while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
        p++;
      wl[n] = (size_t)(p - w[n]);
      n++;
    }
    for (size_t i = 1; i < n; i++)
      if (!bk_mime_add(cap, w[i], wl[i], w[0], wl[0]))
        return;
  }
}

static void bk_mime_load(void) {
  size_t cap = 0;
  for (size_t i = 0; i < BK_ARRAY_LEN(bk_builtin); i++)
    if (!bk_mime_add(&cap, bk_builtin[i][0] + 1, strlen(bk_builtin[i][0]) - 1,
                     bk_builtin[i][1], strlen(bk_builtin[i][1])))
      return;
  for (size_t i = 0; i < BK_ARRAY_LEN(bk_mime_files); i++) {
    FILE *f = fopen(bk_mime_files[i], "re");
    if (!f)
      continue;
    bk_mime_read(f, &cap);
    fclose(f);
  }
  if (bk_nmimes)
    qsort(bk_mimes, bk_nmimes, sizeof *bk_mimes, bk_mime_cmp);
}

/* The last entry (the winner) for `ext`, or NULL. */
static const char *bk_mime_find(const char *ext) {
  size_t lo = 0, hi = bk_nmimes;
  const char *found = NULL;
  while (lo < hi) { /* the first entry >= ext ... */
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(bk_mimes[mid].ext, ext) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  for (; lo < bk_nmimes && strcmp(bk_mimes[lo].ext, ext) == 0; lo++)
    found = bk_mimes[lo].type; /* ... and the last of its run */
  return found;
}

/* posixpath.splitext of a base name: the extension's start, or NULL. */
static const char *bk_splitext(const char *base, size_t len) {
  size_t i = 0;
  while (i < len && base[i] == '.')
    i++; /* leading dots do not start an extension */
  const char *dot = NULL;
  for (; i < len; i++)
    if (base[i] == '.')
      dot = base + i;
  return dot;
}

const char *bk_mime_guess(const char *path) {
  pthread_once(&bk_mime_once, bk_mime_load);
  if (!path)
    return NULL;
  char name[1024];
  snprintf(name, sizeof name, "%s", bk_basename(path));
  size_t len = strlen(name);
  const char *ext = bk_splitext(name, len);
  static const char *const suffix[][2] = {
      {".svgz", ".svg.gz"}, {".tgz", ".tar.gz"}, {".taz", ".tar.gz"},
      {".tz", ".tar.gz"},   {".tbz2", ".tar.bz2"}, {".txz", ".tar.xz"}};
  for (size_t i = 0; ext && i < BK_ARRAY_LEN(suffix); i++)
    if (strcmp(ext, suffix[i][0]) == 0) {
      size_t at = (size_t)(ext - name);
      snprintf(name + at, sizeof name - at, "%s", suffix[i][1]);
      len = strlen(name);
      ext = bk_splitext(name, len);
      break;
    }
  static const char *const enc[] = {".gz", ".Z", ".bz2", ".xz", ".br"};
  for (size_t i = 0; ext && i < BK_ARRAY_LEN(enc); i++)
    if (strcmp(ext, enc[i]) == 0) {
      name[ext - name] = '\0';
      len = strlen(name);
      ext = bk_splitext(name, len);
      break;
    }
  if (!ext)
    return NULL;
  const char *t = bk_mime_find(ext);
  if (t)
    return t;
  char lower[1024];
  size_t k = 0;
  for (; ext[k] && k + 1 < sizeof lower; k++)
    lower[k] = (ext[k] >= 'A' && ext[k] <= 'Z') ? (char)(ext[k] + 32) : ext[k];
  lower[k] = '\0';
  return bk_mime_find(lower);
}
