/*
 * upload_api.c - `bulkup upload` in its workflow modes: the SDK's four
 * upload calls over the Encord API (ENCORD_WIRE.md), one library call
 * each: --image-group (bulkup_create_image_group), --dicom-series
 * (bulkup_create_dicom_series), --video (bulkup_upload_videos), --image
 * (bulkup_upload_images), after the SDK's get_dataset preamble
 * (bulkup_api_get_dataset). Standard output carries one
 * "DATA_HASH  TITLE" line per data unit the API reported, nothing else.
 *
 * The API is --api URL (default https://api.encord.com) with --dataset
 * HASH and the key of --key-file (else $ENCORD_SSH_KEY_FILE, else
 * $ENCORD_SSH_KEY: the library reads them), or, with no target at all, an
 * embedded reference server (src/server) started for the run on
 * 127.0.0.1, storing objects under --store, with a throwaway Ed25519 key
 * made here: its private half goes to the API client in memory (and is
 * wiped once the client has parsed it), its public half is authorized in
 * the server in-process.
 *
 * The input is checked and listed in full before any request: every PATH
 * exists, every directory is walked (inputs.c) and its files sorted, so the
 * group's images come in a stable order. The library's workflow takes the
 * whole list (it needs every path for the group anyway).
 *
 * Signals: upload.c's signal thread calls the hook installed here, which
 * calls bulkup_api_cancel: uploads in flight are aborted, queued ones end
 * as cancelled, no image group is created, and the run ends with its
 * report and 130/143.
 */
#include "upload.h"

#include "cli.h"
#include "grow.h"
#include "urlenc.h"

#include "bks_server.h"

#include <bulkup.h>

#include <errno.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_STORE "./bulkup-store"

/* ---- the options ------------------------------------------------------------
 */

int upload_api_set_kind(upload_cli *c, upload_kind kind, const char *option,
                        const char *title) {
  if (c->kind != UPLOAD_KIND_NONE && c->kind != kind)
    return cli_usage_error("upload", "%s and %s cannot be used together: "
                           "one kind per run", c->kind_option, option);
  if (title && !*title)
    return cli_usage_error("upload", "%s: empty title", option);
  c->kind = kind;
  c->kind_option = option;
  if (title)
    c->title = title;
  return -1;
}

const char *upload_api_option_given(const upload_cli *c) {
  return c->kind_option              ? c->kind_option
         : c->dataset                ? "--dataset"
         : c->folder                 ? "--folder"
         : c->key_file               ? "--key-file"
         : c->key_id                 ? "--key-id"
         : c->store                  ? "--store"
         : c->create_video == 1      ? "--create-video"
         : c->create_video == 0      ? "--no-create-video"
         : c->files_per_job          ? "--files-per-job"
                                     : NULL;
}

int upload_api_check_args(upload_cli *c) {
  bool remote = c->api || c->dataset;
  if (c->npaths == 0) {
    if (remote)
      return cli_usage_error("upload", "--%s needs at least one PATH",
                             c->dataset ? "dataset" : "api");
    return cli_usage_error(
        "upload", "nothing to upload: PATHs alone go to an embedded server; "
                  "otherwise --dataset HASH (the Encord API), --to "
                  "URL_PREFIX or --manifest FILE is required");
  }
  if (c->api) {
    if (!url_is_http(c->api))
      return cli_usage_error("upload",
                             "--api: '%s' is not an http:// or https:// URL",
                             c->api);
    if (strpbrk(c->api, "?#"))
      return cli_usage_error(
          "upload", "--api: the base URL may not hold a query or fragment");
  }
  if (remote) {
    if (!c->dataset || !*c->dataset)
      return cli_usage_error("upload", "--api needs --dataset HASH (the "
                             "dataset the data units go to)");
    if (c->kind == UPLOAD_KIND_NONE)
      return cli_usage_error("upload", "--dataset needs the kind: "
                             "--image-group TITLE, --dicom-series TITLE, "
                             "--video or --image");
    if (c->store)
      return cli_usage_error("upload",
                             "--store is for the embedded server; with "
                             "--dataset the API's storage keeps the objects");
  } else {
    if (c->key_file || c->key_id)
      return cli_usage_error("upload",
                             "--%s goes with --dataset (the embedded server "
                             "makes a throwaway key for its run)",
                             c->key_file ? "key-file" : "key-id");
    if (c->folder)
      return cli_usage_error("upload", "--folder goes with --dataset");
    if (c->store && !*c->store)
      return cli_usage_error("upload", "--store: empty directory name");
  }
  for (const unsigned char *p = (const unsigned char *)(c->dataset ? c->dataset
                                                                   : "");
       *p; p++)
    if (*p <= 0x20 || *p >= 0x7f)
      return cli_usage_error("upload", "--dataset: '%s' is not a dataset "
                             "hash", c->dataset);
  if (c->create_video != -1 && c->kind != UPLOAD_KIND_IMAGE_GROUP &&
      c->kind != UPLOAD_KIND_NONE)
    return cli_usage_error("upload", "--%s goes with --image-group",
                           c->create_video ? "create-video"
                                           : "no-create-video");
  if (c->files_per_job && c->kind != UPLOAD_KIND_VIDEO &&
      c->kind != UPLOAD_KIND_IMAGE)
    return cli_usage_error("upload", "--files-per-job goes with --video or "
                           "--image");
  if (c->data_type_given)
    return cli_usage_error("upload", "--data-type works with --to and "
                           "--manifest only (in the workflow the kind picks "
                           "the upload type: --image-group, --dicom-series, "
                           "--video, --image)");
  if (c->journal)
    return cli_usage_error("upload",
                           "--journal works with --to and --manifest only");
  if (c->content_type)
    return cli_usage_error("upload",
                           "--content-type works with --to and --manifest "
                           "only (in the workflow the kind picks the "
                           "Content-Type, as the SDK)");
  return -1;
}

/* ---- the input ------------------------------------------------------------
 */

typedef struct file_list {
  char **v;
  size_t n, cap;
  uint64_t bytes;
} file_list;

static bool list_add(file_list *l, const char *path, uint64_t size) {
  void *v = l->v;
  if (!cli_grow(&v, &l->cap, l->n + 1, sizeof *l->v, 64))
    return false;
  l->v = v;
  char *copy = strdup(path);
  if (!copy)
    return false;
  l->v[l->n++] = copy;
  l->bytes += size;
  return true;
}

static void list_free(file_list *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

static int list_file(void *arg, const upload_file *f) {
  if (!list_add(arg, f->path, f->size)) {
    cli_error("out of memory");
    return CLI_EXIT_FAILED;
  }
  return -1;
}

/* List every file of the PATHs that is in this run's shard: a file as
 * given, a directory's files in sorted byte order. *input counts the files
 * of every shard. Returns -1 to go on, or an exit status (2 for bad input,
 * with every problem named). */
static int collect(const upload_cli *c, file_list *l, uint64_t *input) {
  upload_walk w = {.pass = UPLOAD_WALK_CHECK,
                   .sizes = true,
                   .sorted = true,
                   .file = list_file,
                   .arg = l};
  int rc = upload_walk_paths(c, &w);
  *input = w.input;
  return rc;
}

/* The group's default title: the base name of the first PATH (of its real
 * path, so that "." and "dir/" name the directory). */
static char *default_title(const char *path) {
  char *real = realpath(path, NULL);
  const char *p = real ? real : path;
  size_t n = strlen(p);
  while (n > 1 && p[n - 1] == '/')
    n--;
  size_t b = n;
  while (b > 0 && p[b - 1] != '/')
    b--;
  char *t = n > b ? strndup(p + b, n - b) : strdup("images");
  free(real);
  return t;
}

/* ---- the embedded server ----------------------------------------------------
 */

typedef struct embedded {
  bks_server *srv;
  char dataset[80]; /* the server's dataset, where the units go */
  char *url;   /* "http://127.0.0.1:PORT" */
  char *store; /* absolute path of the root */
  BIO *pem;    /* the throwaway private key, PEM PKCS#8, until handed over */
  char *pem_data;
  size_t pem_len;
} embedded;

static void openssl_error(const char *what) {
  char buf[256] = "";
  unsigned long e = ERR_get_error();
  if (e)
    ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  cli_error("%s%s%s", what, *buf ? ": " : "", buf);
}

/* Make an Ed25519 key: the private key as PEM in e->pem, the raw public key
 * in pub. */
static bool make_key(embedded *e, unsigned char pub[32]) {
  EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  if (!k) {
    openssl_error("cannot make an Ed25519 key");
    return false;
  }
  size_t publen = 32;
  bool ok = EVP_PKEY_get_raw_public_key(k, pub, &publen) == 1 && publen == 32;
  if (!ok)
    openssl_error("cannot read the Ed25519 public key");
  e->pem = ok ? BIO_new(BIO_s_mem()) : NULL;
  if (ok && (!e->pem || PEM_write_bio_PrivateKey(e->pem, k, NULL, NULL, 0,
                                                 NULL, NULL) != 1)) {
    openssl_error("cannot write the Ed25519 private key");
    ok = false;
  }
  EVP_PKEY_free(k);
  if (ok) {
    char *data = NULL;
    long len = BIO_get_mem_data(e->pem, &data);
    if (len <= 0 || !data) {
      cli_error("cannot write the Ed25519 private key");
      ok = false;
    } else {
      e->pem_data = data;
      e->pem_len = (size_t)len;
    }
  }
  return ok;
}

/* Wipe the private key's PEM and free it. */
static void wipe_key(embedded *e) {
  if (!e->pem)
    return;
  if (e->pem_data && e->pem_len)
    OPENSSL_cleanse(e->pem_data, e->pem_len);
  BIO_free(e->pem);
  e->pem = NULL;
  e->pem_data = NULL;
  e->pem_len = 0;
}

static void embedded_stop(embedded *e) {
  wipe_key(e);
  bks_server_stop(e->srv);
  e->srv = NULL;
  free(e->url);
  free(e->store);
  e->url = e->store = NULL;
}

/* Start the server on 127.0.0.1 (a port the system picks) over the store,
 * authorize a fresh key, and point `ao` at both. -1, or an exit status. */
static int embedded_start(const upload_cli *c, embedded *e,
                          bulkup_api_options *ao) {
  unsigned char pub[32];
  if (!make_key(e, pub))
    return CLI_EXIT_FAILED;

  /* A client that goes away must not kill the server's threads (they
   * inherit this mask): EPIPE instead of SIGPIPE. */
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);

  bks_config cfg;
  bks_config_init(&cfg);
  cfg.mode = BKS_MODE_API;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.root = c->store ? c->store : DEFAULT_STORE;
  cfg.keep_log = 0;      /* no request log growing with the run */
  cfg.job_pending = 0.1; /* the group's job is done almost at once */
  char err[512];
  if (bks_server_start(&e->srv, &cfg, err, sizeof err) != 0) {
    cli_error("cannot start the embedded server: %s", err);
    return CLI_EXIT_FAILED;
  }
  e->store = realpath(cfg.root, NULL);
  if (!e->store)
    e->store = strdup(cfg.root);
  e->url = bks_server_url(e->srv, NULL);
  const char *ds = e->srv ? bks_server_dataset(e->srv) : NULL;
  if (ds)
    snprintf(e->dataset, sizeof e->dataset, "%s", ds);
  if (!ds || !e->store || !e->url || bks_server_add_key(e->srv, pub) != 0) {
    cli_error("out of memory");
    return CLI_EXIT_FAILED;
  }
  ao->base_url = e->url;
  ao->key_pem = e->pem_data;
  ao->key_pem_len = e->pem_len;
  return -1;
}

/* ---- signals -------------------------------------------------------------------
 */

/* A signal cancels the workflow: uploads in flight are aborted, queued
 * ones end as cancelled, no image group is created (unless its POST had
 * already been sent), and the run ends with its report. */
static void workflow_interrupt(void *arg, int sig) {
  upload_say("%s: cancelling the run (files already stored stay; send the "
             "signal again to quit at once)",
             sig == SIGINT ? "interrupted" : "terminated");
  bulkup_api_cancel(arg);
}

/* What the workflow's callbacks share (one userdata for all of them). */
typedef struct callbacks {
  progress *prog;
  results *res;
} callbacks;

static void feed_progress(void *userdata, const bulkup_progress *p) {
  progress_feed(((callbacks *)userdata)->prog, p);
}

static void feed_results(void *userdata, const bulkup_result *r) {
  results_on_complete(((callbacks *)userdata)->res, r);
}

/* ---- the run ---------------------------------------------------------------------
 */

static int status_for_api_new(bulkup_err err) {
  return err == BULKUP_ENOMEM || err == BULKUP_ECURL ? CLI_EXIT_FAILED
                                                     : CLI_EXIT_USAGE;
}

/* The result on stdout: one "DATA_HASH  TITLE" line per data unit (a
 * title's line breaks and other control characters shown as '?', so that
 * a line is a unit). */
static void print_units(const bulkup_data_units *u) {
  size_t n = bulkup_image_group_count(u);
  for (size_t i = 0; i < n; i++) {
    fputs(bulkup_image_group_data_hash(u, i), stdout);
    fputs("  ", stdout);
    for (const unsigned char *t =
             (const unsigned char *)bulkup_image_group_title(u, i);
         *t; t++)
      putchar(*t < 0x20 || *t == 0x7f ? '?' : *t);
    putchar('\n');
  }
  fflush(stdout);
}

static const char *kind_name(upload_kind k) {
  switch (k) {
  case UPLOAD_KIND_DICOM_SERIES: return "DICOM series";
  case UPLOAD_KIND_VIDEO: return "videos";
  case UPLOAD_KIND_IMAGE: return "images";
  default: return "image group";
  }
}

int upload_api_run(upload_cli *c) {
  file_list files = {0};
  embedded emb = {0};
  bulkup_api *api = NULL;
  bulkup_data_units *units = NULL;
  bulkup_dataset *ds = NULL;
  bulkup_report *rep = NULL;
  char *title = NULL;
  results *res = NULL;
  bool remote = c->api || c->dataset;
  upload_kind kind = c->kind ? c->kind : UPLOAD_KIND_IMAGE_GROUP;
  bool many = kind == UPLOAD_KIND_VIDEO || kind == UPLOAD_KIND_IMAGE;
  uint64_t input = 0;
  int status = collect(c, &files, &input);
  if (status != -1)
    goto done;
  if (upload_signal()) {
    status = upload_exit_for_signal();
    goto done;
  }
  if (c->dry_run) {
    upload_print_dry_run(c, input, files.n, files.bytes);
    status = CLI_EXIT_OK;
    goto done;
  }
  if (c->shard_n && !c->quiet)
    cli_error("%s: %zu of the %llu files in the PATHs", upload_shard_text(c),
              files.n, (unsigned long long)input);
  if (files.n == 0 && input > 0 && c->shard_n) {
    /* Another shard's files only: nothing to do here, and not an error. */
    status = CLI_EXIT_OK;
    goto done;
  }
  if (files.n == 0) {
    cli_error("nothing to upload: no files in %s%s", c->paths[0],
              c->npaths > 1 ? " and the other PATHs" : "");
    status = CLI_EXIT_USAGE;
    goto done;
  }
  /* The title: the one given; the embedded default's group is named after
   * the first PATH; against the API an untitled group or series is named
   * by the server (the SDK sends none). */
  if (c->title)
    title = strdup(c->title);
  else if (!remote && kind == UPLOAD_KIND_IMAGE_GROUP)
    title = default_title(c->paths[0]);
  if ((c->title || (!remote && kind == UPLOAD_KIND_IMAGE_GROUP)) && !title) {
    cli_error("out of memory");
    status = CLI_EXIT_FAILED;
    goto done;
  }

  if (c->opt.insecure)
    cli_error("WARNING: --insecure: TLS certificates and host names are NOT "
              "verified; anyone on the network path can read and alter these "
              "uploads. Use --cacert FILE to trust a test server instead.");

  /* Item 14 of issue 13: the requests settings and backoff of the run
   * govern every API request, as they govern the uploads. */
  bulkup_api_options ao;
  bulkup_api_options_init(&ao);
  ao.requests = c->opt.requests;
  ao.backoff = c->opt.backoff;
  /* --max-retries and --backoff-factor are kept as the CloudUploadSettings
   * override of the uploads; the user meant them for the whole run, so the
   * API requests get the same values. */
  bulkup_upload_policy pol;
  if (bulkup_upload_policy_merge(&pol, &c->opt.requests, &c->opt.cloud,
                                 &c->opt.backoff) == BULKUP_OK) {
    ao.requests.max_retries = pol.max_retries;
    ao.requests.backoff_factor = pol.backoff_factor;
  }
  ao.ca_file = c->opt.ca_file;
  ao.insecure = c->opt.insecure;
  ao.log = upload_log_cb;
  ao.log_level = upload_log_level(c);
  const char *dataset = c->dataset;
  if (remote) {
    ao.base_url = c->api; /* NULL: https://api.encord.com */
    ao.key_file = c->key_file; /* NULL: $ENCORD_SSH_KEY_FILE, $ENCORD_SSH_KEY */
    ao.key_id = c->key_id;     /* a check only */
  } else {
    status = embedded_start(c, &emb, &ao);
    if (status != -1)
      goto done;
    dataset = emb.dataset;
    if (!c->quiet)
      cli_error("embedded server: %s, store %s, a throwaway key and dataset "
                "for this run", emb.url, emb.store);
  }
  bulkup_err err = bulkup_api_new(&api, &ao);
  wipe_key(&emb); /* parsed (or refused): the PEM is no longer needed */
  if (err != BULKUP_OK) {
    const char *detail = bulkup_last_error_message();
    cli_error("%s", *detail ? detail : bulkup_strerror(err));
    status = status_for_api_new(err);
    goto done;
  }

  /* The SDK's preamble: get_dataset proves the key may use the dataset
   * before anything is uploaded. */
  upload_set_cancel(workflow_interrupt, api);
  if (upload_signal()) {
    upload_set_cancel(NULL, NULL);
    status = upload_exit_for_signal();
    goto done;
  }
  err = bulkup_api_get_dataset(api, dataset, &ds);
  if (err != BULKUP_OK) {
    upload_set_cancel(NULL, NULL);
    int sig = upload_signal();
    if (sig) {
      status = upload_exit_for_signal();
    } else {
      const char *detail = bulkup_last_error_message();
      cli_error("%s", *detail ? detail : bulkup_strerror(err));
      status = CLI_EXIT_FAILED;
    }
    goto done;
  }

  char size[32];
  progress_human_bytes(size, sizeof size, (double)files.bytes);
  if (!c->quiet)
    cli_error("uploading %zu file%s (%s) to dataset '%s' (%s), then creating "
              "%s%s%s%s", files.n, files.n == 1 ? "" : "s", size,
              bulkup_dataset_title(ds), bulkup_dataset_hash(ds),
              kind_name(kind), title ? " '" : "", title ? title : "",
              title ? "'" : "");

  bulkup_workflow_options wo;
  bulkup_workflow_options_init(&wo);
  wo.upload = c->opt;
  wo.upload.log = upload_log_cb;
  wo.upload.log_level = upload_log_level(c);
  wo.upload.on_complete = NULL;
  wo.upload.journal = NULL;
  wo.dataset_hash = dataset;
  wo.folder_uuid = c->folder;
  wo.title = title;
  if (c->create_video != -1)
    wo.create_video = c->create_video == 1;
  if (c->files_per_job)
    wo.files_per_job = c->files_per_job;
  callbacks cbs = {NULL, NULL};
  wo.upload.on_progress = NULL;
  wo.upload.userdata = &cbs;
  if (c->results) {
    char rerr[1024];
    res = cbs.res = results_open(c->results, rerr, sizeof rerr);
    if (!res) {
      upload_set_cancel(NULL, NULL);
      cli_error("--results: %s", rerr);
      status = CLI_EXIT_USAGE;
      goto done;
    }
    wo.upload.on_complete = feed_results;
    upload_set_results(res);
  }
  if (upload_show_progress(c)) {
    progress_totals pt = {true, files.n, files.bytes};
    cbs.prog = progress_start_fed(stderr, &pt, 0.25);
    upload_swap_progress(cbs.prog);
    wo.upload.on_progress = cbs.prog ? feed_progress : NULL;
  }

  const char *const *paths = (const char *const *)files.v;
  switch (kind) {
  case UPLOAD_KIND_DICOM_SERIES:
    err = bulkup_create_dicom_series(api, &wo, paths, files.n, &units, &rep);
    break;
  case UPLOAD_KIND_VIDEO:
    err = bulkup_upload_videos(api, &wo, paths, files.n, &units, &rep);
    break;
  case UPLOAD_KIND_IMAGE:
    err = bulkup_upload_images(api, &wo, paths, files.n, &units, &rep);
    break;
  default:
    err = bulkup_create_image_group(api, &wo, paths, files.n, &units, &rep);
    break;
  }
  char message[1024];
  snprintf(message, sizeof message, "%s",
           err == BULKUP_OK ? "" : bulkup_last_error_message());
  upload_set_cancel(NULL, NULL);
  progress_stop(upload_swap_progress(NULL));
  bool results_ok = true;
  if (res) {
    char rerr[1024];
    upload_set_results(NULL);
    if (results_close(res, rerr, sizeof rerr) != 0) {
      cli_error("--results: %s", rerr);
      results_ok = false;
    }
    res = NULL;
  }

  int sig = upload_signal();
  if (err == BULKUP_OK)
    status = CLI_EXIT_OK;
  else if (!rep && (err == BULKUP_ENOENT || err == BULKUP_EPERM ||
                    err == BULKUP_EINVAL))
    status = CLI_EXIT_USAGE; /* the input changed since it was checked */
  else
    status = CLI_EXIT_FAILED;
  if (sig)
    status = upload_exit_for_signal();
  if (!results_ok && status == CLI_EXIT_OK)
    status = CLI_EXIT_FAILED;

  if (rep && !c->quiet) {
    bulkup_summary s;
    bulkup_report_summary(rep, &s);
    /* Nothing submitted (the first API request failed): no summary. After
     * a signal, the refused items are not news: the totals only. */
    if (s.submitted)
      upload_print_summary(c, rep, !sig);
  }
  if (err != BULKUP_OK) {
    if (sig)
      cli_error("%s: %s", sig == SIGINT ? "interrupted" : "terminated",
                "no job was posted unless its request had been sent");
    else
      cli_error("%s", *message ? message : bulkup_strerror(err));
    if (!sig && err == BULKUP_EUPLOAD)
      cli_error("(--allow-failures makes the data units from the files "
                "that were uploaded)");
  }
  if (units) {
    size_t n = bulkup_image_group_count(units);
    if (!c->quiet)
      cli_error("%zu data unit%s created (%s%s)", n, n == 1 ? "" : "s",
                many ? "first job " : "job ",
                bulkup_image_group_process_hash(units));
    print_units(units);
  }
  if (emb.srv && rep && !c->quiet) {
    bulkup_summary s;
    bulkup_report_summary(rep, &s);
    if (s.succeeded)
      cli_error("%llu object%s stored under %s/",
                (unsigned long long)s.succeeded, s.succeeded == 1 ? "" : "s",
                emb.store);
  }
  if (rep && c->report) {
    if (!upload_write_report(c, rep)) {
      if (status == CLI_EXIT_OK)
        status = CLI_EXIT_FAILED;
    } else if (!c->quiet) {
      cli_error("report: %s", c->report);
    }
  }

done:
  if (res) {
    char rerr[1024];
    upload_set_results(NULL);
    results_close(res, rerr, sizeof rerr);
  }
  bulkup_image_group_free(units);
  bulkup_dataset_free(ds);
  bulkup_report_free(rep);
  bulkup_api_free(api);
  embedded_stop(&emb);
  list_free(&files);
  free(title);
  return status;
}
