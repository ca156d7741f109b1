/*
 * stream_memory - a pipeline that produces frames in memory and uploads
 * them as it goes, never holding more than a bounded number at once.
 *
 *   stream_memory URL_PREFIX [FRAMES] [--callback]
 *
 * Each frame is a 320x240 greyscale PGM image, PUT to
 * URL_PREFIX/frame-NNNNNN.pgm. By default a frame is rendered into a
 * malloc'ed buffer and submitted as BULKUP_SOURCE_MEMORY; the buffer is
 * freed by the completion callback, once the library is done with it.
 * With --callback nothing is rendered ahead: the frame is submitted as
 * BULKUP_SOURCE_CALLBACK and its bytes are computed by a positional read
 * function while it is sent (and again, from offset 0, on a retry).
 *
 * Backpressure: the queue holds 2 items. bulkup_uploader_submit() blocks
 * while the queue is full, so the producer runs only as fast as the
 * uploads; the frames alive at once never exceed queue + workers + the one
 * being produced, however many frames are made. The program prints that
 * high-water mark and the time the producer spent blocked.
 * Exit status: 0 every frame uploaded, 1 some failed or the bound was
 * broken, 2 bad usage.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <bulkup.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WIDTH 320
#define HEIGHT 240
#define WORKERS 4
#define QUEUE 2

/* One frame: its number and, for memory frames, its bytes. */
typedef struct frame {
  unsigned int number;
  char header[32];
  size_t header_len;
  unsigned char *bytes; /* memory source: header + pixels; else NULL */
  uint64_t size;
} frame;

static atomic_uint alive;      /* frames created and not yet freed */
static atomic_uint alive_peak; /* high-water mark of alive */

static unsigned char pixel(unsigned int number, uint64_t i) {
  unsigned int x = (unsigned int)(i % WIDTH), y = (unsigned int)(i / WIDTH);
  return (unsigned char)((x + y + 4 * number) ^ (x * y / 64));
}

static frame *frame_new(unsigned int number, int render) {
  frame *f = calloc(1, sizeof *f);
  if (f == NULL)
    return NULL;
  f->number = number;
  f->header_len = (size_t)snprintf(f->header, sizeof f->header,
                                   "P5\n%d %d\n255\n", WIDTH, HEIGHT);
  f->size = f->header_len + (uint64_t)WIDTH * HEIGHT;
  if (render) {
    f->bytes = malloc(f->size);
    if (f->bytes == NULL) {
      free(f);
      return NULL;
    }
    memcpy(f->bytes, f->header, f->header_len);
    for (uint64_t i = 0; i < (uint64_t)WIDTH * HEIGHT; i++)
      f->bytes[f->header_len + i] = pixel(number, i);
  }
  unsigned int now = atomic_fetch_add(&alive, 1) + 1;
  unsigned int peak = atomic_load(&alive_peak);
  while (now > peak && !atomic_compare_exchange_weak(&alive_peak, &peak, now))
    ;
  return f;
}

static void frame_free(frame *f) {
  free(f->bytes);
  free(f);
  atomic_fetch_sub(&alive, 1);
}

/* BULKUP_SOURCE_CALLBACK: bytes [offset, offset + len) of the frame,
 * computed on the spot. Called from a worker thread. */
static int64_t frame_read(void *ctx, uint64_t offset, void *buf, size_t len) {
  const frame *f = ctx;
  unsigned char *out = buf;
  size_t n = 0;
  while (n < len && offset + n < f->size) {
    uint64_t at = offset + n;
    out[n++] = at < f->header_len ? (unsigned char)f->header[at]
                                  : pixel(f->number, at - f->header_len);
  }
  return (int64_t)n;
}

/* Called once per item, from the worker that ran it: the library no longer
 * needs the frame's bytes (memory) or read context (callback). */
static void on_complete(void *userdata, const bulkup_result *r) {
  (void)userdata;
  if (r->status != BULKUP_ITEM_SUCCEEDED)
    fprintf(stderr, "frame %" PRIu64 ": %s: %s\n", r->index,
            bulkup_item_status_name(r->status), r->message);
  frame_free(r->user);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  const char *prefix = NULL;
  unsigned long frames = 100;
  int use_callback = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--callback") == 0)
      use_callback = 1;
    else if (prefix == NULL)
      prefix = argv[i];
    else
      frames = strtoul(argv[i], NULL, 10);
  }
  if (prefix == NULL || frames == 0) {
    fprintf(stderr, "usage: %s URL_PREFIX [FRAMES] [--callback]\n", argv[0]);
    return 2;
  }

  bulkup_uploader_options opt;
  bulkup_uploader_options_init(&opt);
  opt.workers = WORKERS;
  opt.queue_capacity = QUEUE;
  opt.on_complete = on_complete;
  bulkup_uploader *up;
  if (bulkup_uploader_new(&up, &opt) != BULKUP_OK) {
    fprintf(stderr, "stream_memory: %s\n", bulkup_last_error_message());
    return 2;
  }

  double blocked = 0;
  int stopped = 0;
  for (unsigned long n = 0; n < frames && !stopped; n++) {
    frame *f = frame_new((unsigned int)n, !use_callback);
    if (f == NULL) {
      fprintf(stderr, "stream_memory: out of memory\n");
      break;
    }
    char url[2048];
    snprintf(url, sizeof url, "%s/frame-%06lu.pgm", prefix, n);
    bulkup_item it;
    bulkup_item_init(&it);
    it.url = url;
    it.content_type = "image/x-portable-graymap";
    it.size = f->size;
    it.user = f;
    if (use_callback) {
      it.source = BULKUP_SOURCE_CALLBACK;
      it.read = frame_read;
      it.read_ctx = f;
    } else {
      it.source = BULKUP_SOURCE_MEMORY;
      it.data = f->bytes;
    }
    double t0 = now_s();
    bulkup_err rc = bulkup_uploader_submit(up, &it, NULL); /* may block */
    blocked += now_s() - t0;
    if (rc != BULKUP_OK) {
      /* Not submitted: on_complete will not see it. */
      fprintf(stderr, "stream_memory: submit: %s\n", bulkup_strerror(rc));
      frame_free(f);
      stopped = 1;
    }
  }

  bulkup_report *rep;
  bulkup_err rc = bulkup_uploader_finish(up, &rep);
  bulkup_summary sum;
  bulkup_report_summary(rep, &sum);
  unsigned int peak = atomic_load(&alive_peak);
  printf("%s: %llu of %llu frames uploaded (%.1f MiB) in %.2f s\n",
         use_callback ? "callback" : "memory",
         (unsigned long long)sum.succeeded, (unsigned long long)sum.submitted,
         (double)sum.bytes_succeeded / (1024.0 * 1024.0), sum.elapsed_s);
  printf("producer blocked %.2f s; at most %u frames alive (bound %d)\n",
         blocked, peak, QUEUE + WORKERS + 1);
  bulkup_report_free(rep);
  bulkup_uploader_free(up);
  if (peak > QUEUE + WORKERS + 1)
    return 1;
  return rc == BULKUP_OK && !stopped ? 0 : 1;
}
