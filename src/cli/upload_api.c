/*
 * upload_api.c - `bulkup upload` in its workflow modes: the files go to
 * signed URLs that the platform API issues, and an image group is made
 * from them (bulkup_create_image_group), or, with --api and no
 * --image-group, they are only uploaded and their object keys printed
 * (bulkup_api_upload).
 *
 * The API is --api URL with the key of --key-file / --key-id, or, with no
 * target at all, an embedded reference server (src/server) started for the
 * run on 127.0.0.1, storing objects under --store, with a throwaway
 * Ed25519 key made here: its private half goes to the API client in memory
 * (and is wiped once the client has parsed it), its public half is
 * authorized in the server in-process.
 *
 * The input is checked and listed in full before any request: every PATH
 * exists, every directory is walked (walk.c) and its files sorted, so the
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
#include "walk.h"

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

#define EMBEDDED_KEY_ID "bulkup-embedded"
#define DEFAULT_STORE "./bulkup-store"

/* ---- the input ------------------------------------------------------------
 */

typedef struct file_list {
  char **v;
  size_t n, cap;
  uint64_t bytes;
} file_list;

static bool list_add(file_list *l, const char *path, uint64_t size) {
  if (l->n == l->cap) {
    size_t ncap = l->cap ? l->cap * 2 : 64;
    char **nv = realloc(l->v, ncap * sizeof *nv);
    if (!nv)
      return false;
    l->v = nv;
    l->cap = ncap;
  }
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

static int cmp_path(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* List every file of the PATHs that is in this run's shard: a file as
 * given, a directory's files in sorted byte order. *input counts the files
 * of every shard. Returns -1 to go on, or an exit status (2 for bad input,
 * with every problem named). */
static int collect(const upload_cli *c, file_list *l, uint64_t *input) {
  int checked = upload_check_path_args(c);
  if (checked >= 0)
    return checked;
  int bad = 0;
  for (int i = 0; i < c->npaths; i++) {
    struct stat st;
    if (stat(c->paths[i], &st) != 0) {
      cli_error("%s: %s", c->paths[i], strerror(errno));
      return CLI_EXIT_USAGE;
    }
    if (S_ISREG(st.st_mode)) {
      /* The shard key: the base name, as a directory's file's is its path
       * relative to the directory. */
      const char *slash = strrchr(c->paths[i], '/');
      const char *base = slash ? slash + 1 : c->paths[i];
      (*input)++;
      if (!upload_in_shard(c, base, strlen(base)))
        continue;
      if (!list_add(l, c->paths[i], (uint64_t)st.st_size)) {
        cli_error("out of memory");
        return CLI_EXIT_FAILED;
      }
      continue;
    }
    walk *w = walk_open(c->paths[i]);
    if (!w) {
      cli_error("cannot open directory %s: %s", c->paths[i], strerror(errno));
      return CLI_EXIT_USAGE;
    }
    size_t first = l->n;
    walk_status ws;
    unsigned long steps = 0;
    while ((ws = walk_next(w)) != WALK_DONE) {
      if ((++steps & 1023) == 0 && upload_signal()) {
        walk_close(w);
        return upload_exit_for_signal();
      }
      if (ws == WALK_FILE) {
        (*input)++;
        const char *rel = walk_rel(w);
        if (!upload_in_shard(c, rel, strlen(rel)))
          continue;
        if (!list_add(l, walk_path(w), walk_size(w))) {
          walk_close(w);
          cli_error("out of memory");
          return CLI_EXIT_FAILED;
        }
      } else if (ws == WALK_SKIP) {
        if (!c->quiet)
          cli_error("%s", walk_message(w));
      } else {
        cli_error("%s", walk_message(w));
        bad++;
      }
    }
    walk_close(w);
    qsort(l->v + first, l->n - first, sizeof *l->v, cmp_path);
  }
  if (bad) {
    cli_error("nothing uploaded: %d part%s of the input cannot be read", bad,
              bad == 1 ? "" : "s");
    return CLI_EXIT_USAGE;
  }
  return -1;
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
  if (!e->store || !e->url ||
      bks_server_add_key(e->srv, pub) != 0) {
    cli_error("out of memory");
    return CLI_EXIT_FAILED;
  }
  ao->base_url = e->url;
  ao->key_id = EMBEDDED_KEY_ID;
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

/* Print the outcome of a group run on stdout (the result) and stderr. */
static void print_group(const upload_cli *c, const char *title,
                        const bulkup_image_group *grp) {
  size_t n = bulkup_image_group_count(grp);
  if (!c->quiet)
    upload_say("image group '%s' created: %zu image%s (job %s)", title, n,
               n == 1 ? "" : "s", bulkup_image_group_process_hash(grp));
  for (size_t i = 0; i < n; i++)
    printf("%s  %s\n", bulkup_image_group_data_hash(grp, i),
           bulkup_image_group_title(grp, i));
  fflush(stdout);
}

/* Plain mode: "OBJECT_KEY  PATH" for every file that was uploaded. */
static void print_keys(const file_list *files, const bulkup_upload_keys *k) {
  size_t n = bulkup_upload_keys_count(k);
  for (size_t i = 0; i < n && i < files->n; i++) {
    bulkup_uploaded u;
    if (bulkup_upload_keys_get(k, i, &u) == BULKUP_OK && u.submitted &&
        u.status == BULKUP_ITEM_SUCCEEDED && u.object_key)
      printf("%s  %s\n", u.object_key, files->v[i]);
  }
  fflush(stdout);
}

int upload_api_run(upload_cli *c) {
  file_list files = {0};
  embedded emb = {0};
  bulkup_api *api = NULL;
  bulkup_image_group *grp = NULL;
  bulkup_upload_keys *keys = NULL;
  bulkup_report *rep = NULL;
  char *title = NULL;
  results *res = NULL;
  bool group_mode = c->image_group || !c->api;
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
    if (group_mode) {
      cli_error("nothing to upload: no files in %s%s", c->paths[0],
                c->npaths > 1 ? " and the other PATHs" : "");
      status = CLI_EXIT_USAGE;
    } else {
      if (!c->quiet)
        cli_error("nothing to upload: no files in the PATHs");
      status = CLI_EXIT_OK;
    }
    goto done;
  }
  if (group_mode) {
    title = c->image_group ? strdup(c->image_group)
                           : default_title(c->paths[0]);
    if (!title) {
      cli_error("out of memory");
      status = CLI_EXIT_FAILED;
      goto done;
    }
  }

  if (c->opt.insecure)
    cli_error("WARNING: --insecure: TLS certificates and host names are NOT "
              "verified; anyone on the network path can read and alter these "
              "uploads. Use --cacert FILE to trust a test server instead.");

  bulkup_api_options ao;
  bulkup_api_options_init(&ao);
  ao.requests = c->opt.requests;
  ao.backoff = c->opt.backoff;
  ao.ca_file = c->opt.ca_file;
  ao.insecure = c->opt.insecure;
  ao.log = upload_log_cb;
  ao.log_level = upload_log_level(c);
  if (c->api) {
    ao.base_url = c->api;
    ao.key_file = c->key_file;
    ao.key_id = c->key_id;
  } else {
    status = embedded_start(c, &emb, &ao);
    if (status != -1)
      goto done;
    if (!c->quiet)
      cli_error("embedded server: %s, store %s (objects under uploads/), "
                "a throwaway key for this run",
                emb.url, emb.store);
  }
  bulkup_err err = bulkup_api_new(&api, &ao);
  wipe_key(&emb); /* parsed (or refused): the PEM is no longer needed */
  if (err != BULKUP_OK) {
    const char *detail = bulkup_last_error_message();
    cli_error("%s", *detail ? detail : bulkup_strerror(err));
    status = status_for_api_new(err);
    goto done;
  }

  char size[32];
  progress_human_bytes(size, sizeof size, (double)files.bytes);
  if (!c->quiet) {
    if (group_mode)
      cli_error("uploading %zu file%s (%s)%s%s, then creating image group "
                "'%s'",
                files.n, files.n == 1 ? "" : "s", size, c->api ? " to " : "",
                c->api ? c->api : "", title);
    else
      cli_error("uploading %zu file%s (%s) to %s (no --image-group: no "
                "group is created)",
                files.n, files.n == 1 ? "" : "s", size, c->api);
  }

  bulkup_workflow_options wo;
  bulkup_workflow_options_init(&wo);
  wo.upload = c->opt;
  wo.upload.log = upload_log_cb;
  wo.upload.log_level = upload_log_level(c);
  wo.upload.on_complete = NULL;
  wo.upload.journal = NULL;
  wo.title = title;
  wo.create_video = c->create_video;
  wo.cluster_by_resolution = c->cluster_by_resolution;
  wo.data_type = c->data_type;
  callbacks cbs = {NULL, NULL};
  wo.upload.on_progress = NULL;
  wo.upload.userdata = &cbs;
  if (c->results) {
    char rerr[1024];
    res = cbs.res = results_open(c->results, rerr, sizeof rerr);
    if (!res) {
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

  /* From here a signal goes to the hook; one that came before it was set
   * is seen just after. */
  upload_set_cancel(workflow_interrupt, api);
  if (upload_signal()) {
    upload_set_cancel(NULL, NULL);
    progress_stop(upload_swap_progress(NULL));
    status = upload_exit_for_signal();
    goto done;
  }
  const char *const *paths = (const char *const *)files.v;
  if (group_mode)
    err = bulkup_create_image_group(api, &wo, paths, files.n, &grp, &rep);
  else
    err = bulkup_api_upload(api, &wo, paths, files.n, c->data_type, &keys,
                            &rep);
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
                group_mode ? "no image group was created" : "run stopped");
    else
      cli_error("%s", *message ? message : bulkup_strerror(err));
    if (!sig && err == BULKUP_EUPLOAD && group_mode)
      cli_error("(--allow-failures makes the group from the files that were "
                "uploaded)");
  }
  if (grp)
    print_group(c, title, grp);
  if (keys)
    print_keys(&files, keys);
  if (emb.srv && rep && !c->quiet) {
    bulkup_summary s;
    bulkup_report_summary(rep, &s);
    if (s.succeeded)
      cli_error("%llu object%s stored under %s/uploads/",
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
  bulkup_image_group_free(grp);
  bulkup_upload_keys_free(keys);
  bulkup_report_free(rep);
  bulkup_api_free(api);
  embedded_stop(&emb);
  list_free(&files);
  free(title);
  return status;
}
