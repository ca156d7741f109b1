/*
 * upload.h - what the parts of `bulkup upload` share.
 *
 * upload.c is the entry point: it parses and checks the options
 * (upload_options.c; --help is upload_help.c), starts the signal thread,
 * and hands the run to the direct modes or to the workflow.
 * upload_direct.c runs the direct modes (--to, --manifest): items PUT
 * straight to URLs by the upload engine. upload_api.c runs the platform
 * workflow (--api, or the embedded reference server when there is no
 * target at all): signed URLs from the API, then an image group (or,
 * without --image-group under --api, plain uploads that print their object
 * keys). Calls go one way: upload.c -> upload_options.c -> upload_api.c's
 * option checks; upload.c -> upload_direct.c and upload_api.c, which never
 * call each other or back; what both use is below them: signals.c (the
 * signal thread, messages), inputs.c (the one walk of the PATHs, shards),
 * console.c (the dry run's line, the summary, --report).
 */
#ifndef BULKUP_CLI_UPLOAD_H
#define BULKUP_CLI_UPLOAD_H

#include "progress.h"
#include "reqheaders.h"
#include "results.h"
#include "upload_s3.h"

#include <bulkup.h>

#include <stdbool.h>
#include <stdint.h>

/* The workflow's four kinds: the SDK's four upload calls. */
typedef enum upload_kind {
  UPLOAD_KIND_NONE = 0, /* none given: an image group (embedded default) */
  UPLOAD_KIND_IMAGE_GROUP,
  UPLOAD_KIND_DICOM_SERIES,
  UPLOAD_KIND_VIDEO,
  UPLOAD_KIND_IMAGE
} upload_kind;

typedef struct upload_cli {
  /* direct modes */
  const char *to;
  const char *manifest;
  /* the workflow: --api URL / --dataset HASH (else the embedded server) */
  const char *api;
  const char *dataset;     /* --dataset HASH */
  const char *folder;      /* --folder UUID */
  const char *key_file;
  const char *key_id;      /* checked against the key's derived id */
  upload_kind kind;        /* which SDK call (default: image group) */
  const char *kind_option; /* the option that chose it, for messages */
  const char *title;       /* --image-group / --dicom-series TITLE */
  const char *store;       /* the embedded server's root */
  int create_video;        /* -1 default (on), 0 --no-create-video, 1 */
  unsigned long files_per_job; /* --files-per-job N (0: default 1) */
  bool data_type_given;    /* --data-type was given */

  char **paths;
  int npaths;
  bulkup_uploader_options opt;
  const char *report;
  const char *journal;
  const char *content_type;
  bulkup_data_type data_type;
  int progress; /* -1 auto, 0 off, 1 on */
  bool quiet;
  int verbose;
  /* at scale */
  uint32_t shard_k, shard_n; /* --shard K/N; shard_n 0: the whole input */
  bool dry_run;
  const char *results; /* --results FILE */
  /* The run's account of its input, set by the direct modes when the
   * uploader is done (zero in the workflow): items of this run's input
   * (its shard), those skipped as journalled, those never started (an
   * interrupted run: not yet submitted). input == submitted + skipped +
   * not_started. */
  struct {
    bool set;
    uint64_t input, skipped, not_started;
  } acct;
  /* s3:// and gs:// (upload_s3.c): the options, and the run's state
   * (set by the direct modes while they run) */
  upload_s3_opts s3o;
  upload_s3 *s3;
  const char *cache_control; /* --cache-control (NULL: the default) */
  /* --header, --metadata, --azure-sas, --azure-endpoint (reqheaders.h) */
  cli_extras x;
} upload_cli;

/* Whether the options select the workflow (--api, --dataset, or no
 * --to/--manifest). */
bool upload_is_workflow(const upload_cli *c);

/* ---- the command line (upload_options.c) -------------------------------- */

/* Parse argv into *c (every field set: defaults, then the options). -1 to
 * go on, else the exit status (0 after --help, 2 for bad usage, after a
 * message). */
int upload_parse_args(upload_cli *c, int argc, char **argv);
/* Check the options together (what parsing them one at a time cannot);
 * -1 when fine, else the exit status (after a message). */
int upload_check_args(upload_cli *c);

/* ---- the direct modes (upload_direct.c) ---------------------------------- */

/* Run --to or --manifest; returns the exit status. Signals are already
 * routed to the signal thread. */
int upload_direct_run(upload_cli *c);

/* ---- shards (inputs.c) --------------------------------------------------
 * An item belongs to shard bulkup_shard_hash(key) % N: the key is its path
 * relative to its PATH (--to, the workflow) or its URL up to the query
 * (--manifest). */

/* Whether the `len` bytes at `key` fall in this run's shard (always true
 * without --shard). */
bool upload_in_shard(const upload_cli *c, const char *key, size_t len);
/* "shard K/N" for messages; "" without --shard. Static storage. */
const char *upload_shard_text(const upload_cli *c);

/* ---- signals (signals.c) -------------------------------------------------
 * SIGINT and SIGTERM are taken by one thread. The first one is recorded
 * (upload_signal()) and handed to the cancel hook of what is running, if
 * any; the second quits at once with 128 + signal. */

/* The hook a first signal calls, from the signal thread: `fn(arg, sig)`.
 * NULL (the default) when nothing that can be cancelled runs; the signal
 * is then only recorded, for the main thread to see. Setting a hook after
 * a signal arrived does not call it: check upload_signal() afterwards. */
void upload_set_cancel(void (*fn)(void *arg, int sig), void *arg);
/* The --results writer that a first signal flushes (NULL: none). */
void upload_set_results(results *r);
/* The first signal received, or 0. */
int upload_signal(void);
/* 130 for SIGINT, 143 for SIGTERM. */
int upload_exit_for_signal(void);
/* The signal thread's body, for pthread_create(); `arg` is the sigset_t
 * (SIGINT, SIGTERM, SIGUSR1) blocked in every thread. It returns on
 * SIGUSR1 once upload_signal_thread_stopping() was called. */
void *upload_signal_thread(void *arg);
/* Ask the signal thread to return at its next SIGUSR1. */
void upload_signal_thread_stopping(void);
/* A descriptor the first signal writes a byte to (to wake a manifest
 * read); -1 (the default): none. Set before the signal thread starts. */
void upload_set_wake_fd(int fd);

/* ---- messages (signals.c) ------------------------------------------------ */

/* "bulkup: <message>" on stderr, never in the middle of the progress
 * line. Thread-safe. */
void upload_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The library's log callback: "bulkup: warning: <message>". */
void upload_log_cb(void *userdata, bulkup_log_level level,
                   const char *message);
/* The library log level the -q / -v options ask for. */
bulkup_log_level upload_log_level(const upload_cli *c);
/* Whether to draw the progress line (--progress, --no-progress, -q, tty). */
bool upload_show_progress(const upload_cli *c);

/* Make `p` the progress line that upload_say() steps around (NULL: none).
 * Returns the previous one. */
progress *upload_swap_progress(progress *p);

/* ---- the end of a run (console.c) --------------------------------------- */

/* The dry run's report line on stdout. */
void upload_print_dry_run(const upload_cli *c, uint64_t input,
                          uint64_t files, uint64_t bytes);
/* "uploaded N of M files ..." and, with list_failures, the first
 * failures, on stderr. */
void upload_print_summary(const upload_cli *c, const bulkup_report *rep,
                          bool list_failures);
/* Write --report if asked; false (after a message) if it failed. */
bool upload_write_report(const upload_cli *c, const bulkup_report *rep);

/* ---- the PATHs (inputs.c) -----------------------------------------------
 * The one walk of the PATH arguments, for the three passes that read them:
 * the direct run's check (counting) and its upload, and the workflow's
 * list. A PATH that is a file is one file, keyed by its base name; a
 * directory is walked recursively (walk.h: a link to a file is followed, a
 * link to a directory, a broken link and anything but a regular file are
 * skipped with a note), each file keyed by its path relative to the
 * directory. The key picks the shard, and ends the file's --to URL. */

/* A file of this run's shard, as the walk gives it. */
typedef struct upload_file {
  const char *path; /* to open: the PATH, or the directory's path joined
                       with the key */
  const char *key;  /* the relative path ("a/b.jpg"), or the base name */
  uint64_t size;    /* bytes, from stat; 0 for a directory's files when
                       sizes are not asked for */
} upload_file;

typedef enum upload_walk_pass {
  /* Before anything is uploaded: every PATH exists, is a file or a
   * directory, and a file is readable; skipped entries are noted (not with
   * -q); entries that cannot be read are named and the walk goes on, and
   * the result is then 2 (bad input); a signal ends the walk (130/143). */
  UPLOAD_WALK_CHECK,
  /* The direct run's second walk, as it uploads: skipped entries are not
   * noted again; a problem is said (upload_say) and counted in
   * upload_walk.problems, and the walk goes on. */
  UPLOAD_WALK_AGAIN
} upload_walk_pass;

typedef struct upload_walk {
  upload_walk_pass pass;
  bool sizes;  /* upload_file.size of a directory's files is needed */
  bool sorted; /* a directory's files in byte order of their paths (kept
                  until the directory is walked); else in directory order,
                  streamed, in bounded memory */
  /* Called for each file of this run's shard, in order: -1 to go on, or a
   * status that ends the walk, which upload_walk_paths() returns. */
  int (*file)(void *arg, const upload_file *f);
  void *arg;
  /* set by the walk */
  uint64_t input;         /* files of every shard */
  unsigned long problems; /* UPLOAD_WALK_AGAIN: problems said */
} upload_walk;

/* Walk the PATHs in order. Returns -1 when the walk went through, else
 * what ended it: what file() returned, 1 (out of memory, said), or in
 * UPLOAD_WALK_CHECK 2 for bad input (each problem named) and 130/143 for
 * a signal. */
int upload_walk_paths(const upload_cli *c, upload_walk *w);

/* ---- the workflow (upload_api.c) ---------------------------------------- */

/* Run the workflow; returns the exit status. Signals are already routed to
 * the signal thread. */
int upload_api_run(upload_cli *c);
/* The first workflow-only option given, for the direct modes' refusal
 * ("--dataset"), or NULL. */
const char *upload_api_option_given(const upload_cli *c);
/* The workflow's own checks of the options; -1 when fine, else the exit
 * status (after a message). */
int upload_api_check_args(upload_cli *c);
/* Pick the kind (--image-group, --dicom-series, --video, --image): one at
 * most; -1 when fine, else the exit status. */
int upload_api_set_kind(upload_cli *c, upload_kind kind, const char *option,
                        const char *title);

/* The open files a run of these options needs at most (see
 * fit_open_files in upload.c). */
unsigned long long upload_fds_needed(const upload_cli *c);

#endif
