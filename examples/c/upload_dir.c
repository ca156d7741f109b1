/*
 * upload_dir - upload a directory tree to a URL prefix, with a progress
 * line fed by the library's progress callback.
 *
 *   upload_dir DIR URL_PREFIX [WORKERS]
 *
 * DIR/a/b.png is PUT to URL_PREFIX/a/b.png; bytes of the relative path
 * other than letters, digits and - . _ ~ / are percent-encoded. Any server
 * that takes PUTs will do (nginx with WebDAV, a bucket's signed prefix).
 * Exit status: 0 every file uploaded, 1 some failed, 2 bad usage.
 *
 * Uses only <bulkup.h>: build it with examples/CMakeLists.txt
 * (find_package(bulkup)) or examples/Makefile (pkg-config).
 */
#define _XOPEN_SOURCE 700 /* nftw */

#include <bulkup.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* nftw's callback takes no user pointer: the walk's state lives here. */
static struct {
  bulkup_uploader *up;
  const char *prefix;
  size_t root_len;
  bulkup_err err; /* the submit error that stopped the walk, if any */
} walk;

/* URL_PREFIX "/" REL, REL percent-encoded; malloc'ed, NULL if out of
 * memory. */
static char *url_for(const char *prefix, const char *rel) {
  static const char hex[] = "0123456789ABCDEF";
  size_t plen = strlen(prefix);
  while (plen > 0 && prefix[plen - 1] == '/')
    plen--;
  char *url = malloc(plen + 1 + 3 * strlen(rel) + 1);
  if (url == NULL)
    return NULL;
  memcpy(url, prefix, plen);
  char *o = url + plen;
  *o++ = '/';
  for (const unsigned char *p = (const unsigned char *)rel; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
        (*p >= '0' && *p <= '9') || strchr("-._~/", *p) != NULL) {
      *o++ = (char)*p;
    } else {
      *o++ = '%';
      *o++ = hex[*p >> 4];
      *o++ = hex[*p & 15];
    }
  }
  *o = '\0';
  return url;
}

static int visit(const char *path, const struct stat *st, int type,
                 struct FTW *ftw) {
  (void)ftw;
  if (type != FTW_F || !S_ISREG(st->st_mode))
    return 0; /* directories, FIFOs, sockets... */
  const char *rel = path + walk.root_len;
  while (*rel == '/')
    rel++;
  char *url = url_for(walk.prefix, rel);
  if (url == NULL) {
    walk.err = BULKUP_ENOMEM;
    return 1;
  }
  bulkup_item it;
  bulkup_item_init(&it);
  it.path = path;
  it.url = url;
  /* Blocks while the queue is full; copies path and url. */
  bulkup_err rc = bulkup_uploader_submit(walk.up, &it, NULL);
  free(url);
  if (rc != BULKUP_OK) {
    walk.err = rc;
    return 1; /* stops nftw */
  }
  return 0;
}

/* Called at most every progress_interval seconds and once at the end,
 * never twice at once: plain stdio is fine here. */
static void on_progress(void *userdata, const bulkup_progress *p) {
  int tty = *(const int *)userdata;
  fprintf(stderr, "%s%llu/%llu files, %llu failed, %.1f MiB sent, %.1f s%s",
          tty ? "\r" : "", (unsigned long long)(p->succeeded + p->failed),
          (unsigned long long)p->submitted, (unsigned long long)p->failed,
          (double)p->bytes_sent / (1024.0 * 1024.0), p->elapsed_s,
          tty ? "   " : "\n");
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: %s DIR URL_PREFIX [WORKERS]\n", argv[0]);
    return 2;
  }
  int tty = isatty(2);

  bulkup_uploader_options opt;
  bulkup_uploader_options_init(&opt); /* the seed's defaults */
  if (argc == 4)
    opt.workers = (unsigned int)strtoul(argv[3], NULL, 10);
  bulkup_cloud_upload_settings_set_max_retries(&opt.cloud, 3);
  opt.on_progress = on_progress;
  opt.progress_interval = tty ? 0.2 : 1.0;
  opt.userdata = &tty;

  if (bulkup_uploader_new(&walk.up, &opt) != BULKUP_OK) {
    fprintf(stderr, "upload_dir: %s\n", bulkup_last_error_message());
    return 2;
  }
  walk.prefix = argv[2];
  walk.root_len = strlen(argv[1]);
  walk.err = BULKUP_OK;
  /* FTW_PHYS: symbolic links are not followed (no cycles). */
  int walked = nftw(argv[1], visit, 32, FTW_PHYS);
  if (walked == -1) {
    perror(argv[1]);
    bulkup_uploader_free(walk.up); /* cancels what was submitted */
    return 2;
  }
  if (walk.err != BULKUP_OK) {
    fprintf(stderr, "upload_dir: submit: %s (%s)\n",
            bulkup_strerror(walk.err), bulkup_last_error_message());
    bulkup_uploader_cancel(walk.up);
  }

  bulkup_report *rep = NULL;
  bulkup_err rc = bulkup_uploader_finish(walk.up, &rep);
  if (tty)
    fputc('\n', stderr);

  bulkup_summary sum;
  bulkup_report_summary(rep, &sum);
  for (size_t i = 0; i < bulkup_report_failure_count(rep); i++) {
    const bulkup_result *r = bulkup_report_failure(rep, i);
    fprintf(stderr, "failed: %s -> %s: %s (%s, HTTP %d, %d attempts)\n",
            r->path ? r->path : "-", r->url, r->message,
            bulkup_error_kind_name(r->error), r->http_status, r->attempts);
  }
  printf("uploaded %llu of %llu files (%llu failed, %llu retries) in %.2f s\n",
         (unsigned long long)sum.succeeded, (unsigned long long)sum.submitted,
         (unsigned long long)sum.failed, (unsigned long long)sum.retries,
         sum.elapsed_s);

  bulkup_report_free(rep);
  bulkup_uploader_free(walk.up);
  return rc == BULKUP_OK && walk.err == BULKUP_OK ? 0 : 1;
}
