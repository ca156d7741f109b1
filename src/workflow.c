/* workflow.c - the whole workflow: check the paths, fetch signed URLs in
 * batches while the engine uploads, refresh expired URLs, then create the
 * image group from the successes and wait for its job.
 *
 * Threads: the calling thread is the producer (it fetches a batch of URLs
 * and submits its items, blocking while the engine's queue is full, then
 * fetches the next batch). Workers call back into this file when an item
 * ends (bk_wf_complete) and when a URL expired (bk_wf_refresh). The
 * per-item table (object key, item uuid, final status) is indexed by the
 * item's position in `paths`, which is also its engine index because the
 * one producer submits in input order. `lock` guards the table: the
 * producer writes an entry before submitting it and a worker may replace
 * its key (refresh) or record its status (completion) afterwards. */
#include "internal.h"
#include "api.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct bk_wf_item {
  char *object_key;
  char *item_uuid;
  bulkup_item_status status;
  bool submitted;
  bool ended;
} bk_wf_item;

typedef struct bk_wf {
  bulkup_api *api;
  bulkup_data_type type;
  size_t n;
  bk_wf_item *items;
  pthread_mutex_t lock;
  /* The caller's callbacks, called from ours. */
  const bulkup_uploader_options *user;
} bk_wf;

struct bulkup_upload_keys {
  size_t n;
  bk_wf_item *items;
};

void bulkup_workflow_options_init(bulkup_workflow_options *o) {
  memset(o, 0, sizeof *o);
  o->title = NULL;
  o->data_type = BULKUP_DATA_TYPE_IMAGE;
  o->poll_timeout = BULKUP_DEFAULT_POLL_TIMEOUT;
  o->poll_interval = 0.5;
  o->poll_interval_max = 10.0;
  bulkup_uploader_options_init(&o->upload);
}

static const char *bk_basename(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

static void bk_items_free(bk_wf_item *items, size_t n) {
  if (!items)
    return;
  for (size_t i = 0; i < n; i++) {
    bk_free(items[i].object_key);
    bk_free(items[i].item_uuid);
  }
  bk_free(items);
}

/* ---- checks ------------------------------------------------------------ */

static bool bk_finite_nonneg(double v) { return v >= 0 && isfinite(v); }

static bulkup_err bk_wf_validate(const bulkup_workflow_options *o) {
  if (!bk_finite_nonneg(o->poll_timeout))
    return bk_error(BULKUP_EINVAL, "poll_timeout must be a finite number >= 0");
  if (!bk_finite_nonneg(o->poll_interval) ||
      !bk_finite_nonneg(o->poll_interval_max))
    return bk_error(BULKUP_EINVAL,
                    "poll_interval and poll_interval_max must be finite "
                    "numbers >= 0");
  return BULKUP_OK;
}

/* Every path must be a readable regular file, before any request. */
static bulkup_err bk_check_paths(const char *const *paths, size_t n) {
  if (n && !paths)
    return bk_error(BULKUP_EINVAL, "paths must not be NULL");
  for (size_t i = 0; i < n; i++) {
    const char *p = paths[i];
    if (!p || !*p)
      return bk_error(BULKUP_EINVAL, "paths[%zu] is empty", i);
    struct stat st;
    if (stat(p, &st) != 0) {
      int e = errno;
      return bk_error(e == ENOENT || e == ENOTDIR ? BULKUP_ENOENT
                      : e == EACCES              ? BULKUP_EPERM
                                                 : BULKUP_EIO,
                      "'%s': %s", p, strerror(e));
    }
    if (!S_ISREG(st.st_mode))
      return bk_error(BULKUP_EINVAL, "'%s' is not a regular file", p);
    /* O_NONBLOCK: harmless for a regular file, and the file might have been
     * replaced by a FIFO since the stat. */
    int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
      int e = errno;
      return bk_error(e == ENOENT ? BULKUP_ENOENT
                      : e == EACCES ? BULKUP_EPERM
                                    : BULKUP_EIO,
                      "cannot read '%s': %s", p, strerror(e));
    }
    close(fd);
  }
  return BULKUP_OK;
}

/* ---- engine callbacks ------------------------------------------------- */

static void bk_wf_complete(void *ud, const bulkup_result *r) {
  bk_wf *wf = ud;
  if (r->index < wf->n) {
    bk_mutex_lock(&wf->lock);
    wf->items[r->index].status = r->status;
    wf->items[r->index].ended = true;
    bk_mutex_unlock(&wf->lock);
  }
  if (wf->user->on_complete)
    wf->user->on_complete(wf->user->userdata, r);
}

static void bk_wf_progress(void *ud, const bulkup_progress *p) {
  bk_wf *wf = ud;
  wf->user->on_progress(wf->user->userdata, p);
}

static void bk_wf_log(void *ud, bulkup_log_level level, const char *msg) {
  bk_wf *wf = ud;
  wf->user->log(wf->user->userdata, level, msg);
}

/* A worker's item was refused because its signed URL expired: one fresh
 * URL from the API. Its object key differs from the first one, so the
 * table is updated and the group will name the object actually stored. */
static char *bk_wf_refresh(void *ud, const bulkup_result *r) {
  bk_wf *wf = ud;
  if (r->index >= wf->n)
    return NULL;
  bulkup_signed_url *v = NULL;
  size_t n = 0;
  bulkup_err rc = bulkup_api_presign(wf->api, wf->type, 1, &v, &n);
  if (rc != BULKUP_OK) {
    bk_api_log(wf->api, BULKUP_LOG_WARN, "item %llu: cannot refresh its "
               "expired URL: %s", (unsigned long long)r->index,
               bulkup_last_error_message());
    return NULL;
  }
  /* The engine frees the URL with free(): plain strdup, not bk_strdup. */
  char *url = strdup(v[0].signed_url);
  if (url) {
    bk_mutex_lock(&wf->lock);
    bk_wf_item *it = &wf->items[r->index];
    bk_free(it->object_key);
    bk_free(it->item_uuid);
    it->object_key = v[0].object_key;
    it->item_uuid = v[0].item_uuid;
    v[0].object_key = v[0].item_uuid = NULL;
    bk_mutex_unlock(&wf->lock);
  }
  bulkup_signed_urls_free(v, n);
  return url;
}

/* ---- the upload phase ------------------------------------------------- */

/* Upload every path. *started tells whether the engine ran (then *report
 * is set if report is not NULL). Returns the producer's error if it had
 * one (the run was then cancelled), else the engine's verdict. */
static bulkup_err bk_wf_upload(bk_wf *wf, const bulkup_workflow_options *opt,
                               const char *const *paths,
                               bulkup_report **report, bool *started) {
  *started = false;
  bulkup_uploader_options uo = opt->upload;
  uo.userdata = wf;
  uo.on_complete = bk_wf_complete;
  uo.on_progress = opt->upload.on_progress ? bk_wf_progress : NULL;
  uo.log = opt->upload.log ? bk_wf_log : NULL;
  uo.refresh_url = bk_wf_refresh;

  bulkup_uploader *u;
  bulkup_err rc = bulkup_uploader_new(&u, &uo);
  if (rc != BULKUP_OK)
    return rc;
  *started = true;
  /* bulkup_api_cancel reaches this run's uploads through the handle. */
  bk_api_uploader reg;
  bk_api_register_uploader(wf->api, &reg, u);

  bulkup_err prc = BULKUP_OK;
  for (size_t start = 0; start < wf->n && prc == BULKUP_OK;
       start += BULKUP_API_MAX_PRESIGN) {
    size_t k = wf->n - start;
    if (k > BULKUP_API_MAX_PRESIGN)
      k = BULKUP_API_MAX_PRESIGN;
    bulkup_signed_url *v = NULL;
    size_t got = 0;
    prc = bulkup_api_presign(wf->api, wf->type, k, &v, &got);
    if (prc != BULKUP_OK)
      break;
    bk_api_log(wf->api, BULKUP_LOG_DEBUG, "fetched %zu signed URLs for items "
               "%zu..%zu", got, start, start + got - 1);
    for (size_t j = 0; j < got; j++) {
      size_t idx = start + j;
      bk_mutex_lock(&wf->lock);
      wf->items[idx].object_key = v[j].object_key;
      wf->items[idx].item_uuid = v[j].item_uuid;
      bk_mutex_unlock(&wf->lock);
      v[j].object_key = v[j].item_uuid = NULL;

      bulkup_item it;
      bulkup_item_init(&it);
      it.path = paths[idx];
      it.url = v[j].signed_url;
      it.title = bk_basename(paths[idx]);
      it.data_type = wf->type;
      uint64_t index = 0;
      prc = bulkup_uploader_submit(u, &it, &index);
      if (prc != BULKUP_OK)
        break;
      if (index != idx) {
        /* Cannot happen with one producer; the table would be wrong. */
        prc = bk_error(BULKUP_ESTATE, "engine index %llu for path %zu",
                       (unsigned long long)index, idx);
        break;
      }
      bk_mutex_lock(&wf->lock);
      wf->items[idx].submitted = true;
      bk_mutex_unlock(&wf->lock);
    }
    bulkup_signed_urls_free(v, got);
  }

  char saved[512] = "";
  if (prc != BULKUP_OK) {
    /* No point finishing uploads of a run that failed: stop at once. */
    snprintf(saved, sizeof saved, "%s", bulkup_last_error_message());
    bulkup_uploader_cancel(u);
  }
  bulkup_report *rep = NULL;
  rc = bulkup_uploader_finish(u, &rep);
  bk_api_unregister_uploader(wf->api, &reg);
  bulkup_uploader_free(u);
  if (report)
    *report = rep;
  else
    bulkup_report_free(rep);
  if (prc != BULKUP_OK)
    return bk_error(prc, "%s", saved);
  return rc;
}

static bulkup_err bk_wf_init(bk_wf *wf, bulkup_api *api,
                             const bulkup_workflow_options *opt,
                             bulkup_data_type type, size_t n) {
  memset(wf, 0, sizeof *wf);
  wf->api = api;
  wf->type = type;
  wf->n = n;
  wf->user = &opt->upload;
  wf->items = bk_calloc(n ? n : 1, sizeof *wf->items);
  if (!wf->items)
    return bk_error(BULKUP_ENOMEM, "out of memory for %zu items", n);
  bk_mutex_init(&wf->lock);
  return BULKUP_OK;
}

static void bk_wf_destroy(bk_wf *wf) {
  if (!wf->items)
    return;
  bk_items_free(wf->items, wf->n);
  wf->items = NULL;
  bk_mutex_destroy(&wf->lock);
}

static bulkup_err bk_wf_common_checks(bulkup_api *api,
                                      const bulkup_workflow_options *opt,
                                      const char *const *paths, size_t n,
                                      bulkup_data_type type) {
  if (!api)
    return bk_error(BULKUP_EINVAL, "api must not be NULL");
  if ((int)type < 0 || type >= BULKUP_DATA_TYPE_MISSING)
    return bk_error(BULKUP_EINVAL, "data type must be a known type");
  bulkup_err rc = bk_wf_validate(opt);
  if (rc != BULKUP_OK)
    return rc;
  return bk_check_paths(paths, n);
}

/* ---- image group ------------------------------------------------------ */

/* json-c helpers that take ownership of `v` whatever happens (json-c's
 * own add functions leave it to the caller on failure). */
static bool bk_jadd(json_object *o, const char *key, json_object *v) {
  if (!o || !v || json_object_object_add(o, key, v) != 0) {
    json_object_put(v);
    return false;
  }
  return true;
}

static bool bk_jpush(json_object *a, json_object *v) {
  if (!a || !v || json_object_array_add(a, v) != 0) {
    json_object_put(v);
    return false;
  }
  return true;
}

/* The group's JSON body from the successes, in input order. */
static bulkup_err bk_group_body(const bk_wf *wf, const char *const *paths,
                                const bulkup_workflow_options *opt,
                                char **body, size_t *len, size_t *count) {
  *body = NULL;
  *count = 0;
  json_object *root = json_object_new_object();
  json_object *groups = json_object_new_array();
  json_object *g = json_object_new_object();
  json_object *images = json_object_new_array();
  /* From here on each object is owned by its parent. */
  bool ok = bk_jadd(root, "image_groups", groups);
  ok = ok ? bk_jpush(groups, g) : (json_object_put(g), false);
  ok = ok ? bk_jadd(g, "images", images) : (json_object_put(images), false);
  if (!ok) {
    json_object_put(root);
    return bk_error(BULKUP_ENOMEM, "out of memory building the group");
  }
  size_t k = 0;
  for (size_t i = 0; ok && i < wf->n; i++) {
    if (!wf->items[i].ended || wf->items[i].status != BULKUP_ITEM_SUCCEEDED)
      continue;
    json_object *im = json_object_new_object();
    ok = bk_jpush(images, im) &&
         bk_jadd(im, "url", json_object_new_string(wf->items[i].object_key)) &&
         bk_jadd(im, "title", json_object_new_string(bk_basename(paths[i])));
    k++;
  }
  const char *title = opt->title;
  for (size_t i = 0; !title && i < wf->n; i++)
    if (wf->items[i].ended && wf->items[i].status == BULKUP_ITEM_SUCCEEDED)
      title = bk_basename(paths[i]);
  ok = ok && bk_jadd(g, "title", json_object_new_string(title ? title : ""));
  ok = ok &&
       bk_jadd(g, "create_video", json_object_new_boolean(opt->create_video)) &&
       bk_jadd(g, "cluster_by_resolution",
               json_object_new_boolean(opt->cluster_by_resolution));
  const char *s = ok ? json_object_to_json_string_ext(
                           root, JSON_C_TO_STRING_PLAIN |
                                     JSON_C_TO_STRING_NOSLASHESCAPE)
                     : NULL;
  if (s) {
    *len = strlen(s);
    *body = bk_strndup(s, *len);
  }
  json_object_put(root);
  *count = k;
  if (!*body)
    return bk_error(BULKUP_ENOMEM, "out of memory building the group");
  return BULKUP_OK;
}

bulkup_err bulkup_create_image_group(bulkup_api *api,
                                     const bulkup_workflow_options *opt,
                                     const char *const *paths, size_t npaths,
                                     bulkup_image_group **group,
                                     bulkup_report **report) {
  if (group)
    *group = NULL;
  if (report)
    *report = NULL;
  if (!group)
    return bk_error(BULKUP_EINVAL, "group must not be NULL");
  bulkup_workflow_options defaults;
  if (!opt) {
    bulkup_workflow_options_init(&defaults);
    opt = &defaults;
  }
  if (npaths == 0)
    return bk_error(BULKUP_EINVAL, "an image group needs at least one path");
  bulkup_err rc =
      bk_wf_common_checks(api, opt, paths, npaths, opt->data_type);
  if (rc != BULKUP_OK)
    return rc;

  bk_wf wf;
  if ((rc = bk_wf_init(&wf, api, opt, opt->data_type, npaths)) != BULKUP_OK)
    return rc;
  bool started;
  rc = bk_wf_upload(&wf, opt, paths, report, &started);
  if (rc == BULKUP_EALLFAILED)
    rc = bk_error(BULKUP_EALLFAILED,
                  "All image uploads failed. Image group was not created.");
  else if (rc == BULKUP_EUPLOAD) {
    char saved[400];
    snprintf(saved, sizeof saved, "%s", bulkup_last_error_message());
    rc = bk_error(BULKUP_EUPLOAD, "%s; image group was not created (set "
                  "allow_failures to create it from the successes)", saved);
  }
  if (rc != BULKUP_OK) {
    bk_wf_destroy(&wf);
    return rc;
  }

  char *body = NULL;
  size_t body_len = 0, count = 0;
  rc = bk_group_body(&wf, paths, opt, &body, &body_len, &count);
  bk_wf_destroy(&wf);
  if (rc != BULKUP_OK)
    return rc;
  if (count == 0) {
    bk_free(body);
    return bk_error(BULKUP_EALLFAILED,
                    "All image uploads failed. Image group was not created.");
  }
  char *process_hash = NULL;
  rc = bk_api_create_group(api, body, body_len, &process_hash);
  bk_free(body);
  if (rc != BULKUP_OK)
    return rc;
  bk_api_log(api, BULKUP_LOG_INFO, "image group of %zu images posted; job %s",
             count, process_hash);
  bk_poll_opts po = {.timeout = opt->poll_timeout,
                     .interval = opt->poll_interval,
                     .interval_max = opt->poll_interval_max};
  rc = bk_api_wait_job(api, process_hash, &po, count, group);
  bk_free(process_hash);
  return rc;
}

/* ---- plain upload ----------------------------------------------------- */

size_t bulkup_upload_keys_count(const bulkup_upload_keys *k) {
  return k ? k->n : 0;
}

bulkup_err bulkup_upload_keys_get(const bulkup_upload_keys *k, size_t i,
                                  bulkup_uploaded *out) {
  if (!k || !out || i >= k->n)
    return bk_error(BULKUP_EINVAL, "index out of range");
  const bk_wf_item *it = &k->items[i];
  out->submitted = it->submitted;
  out->status = it->status;
  out->object_key = it->object_key;
  out->item_uuid = it->item_uuid;
  return BULKUP_OK;
}

void bulkup_upload_keys_free(bulkup_upload_keys *k) {
  if (!k)
    return;
  bk_items_free(k->items, k->n);
  bk_free(k);
}

bulkup_err bulkup_api_upload(bulkup_api *api,
                             const bulkup_workflow_options *opt,
                             const char *const *paths, size_t npaths,
                             bulkup_data_type type, bulkup_upload_keys **keys,
                             bulkup_report **report) {
  if (keys)
    *keys = NULL;
  if (report)
    *report = NULL;
  bulkup_workflow_options defaults;
  if (!opt) {
    bulkup_workflow_options_init(&defaults);
    opt = &defaults;
  }
  bulkup_err rc = bk_wf_common_checks(api, opt, paths, npaths, type);
  if (rc != BULKUP_OK)
    return rc;
  bulkup_upload_keys *k = keys ? bk_calloc(1, sizeof *k) : NULL;
  if (keys && !k)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  bk_wf wf;
  if ((rc = bk_wf_init(&wf, api, opt, type, npaths)) != BULKUP_OK) {
    bk_free(k);
    return rc;
  }
  bool started;
  rc = bk_wf_upload(&wf, opt, paths, report, &started);
  if (k && started) {
    char saved[512];
    snprintf(saved, sizeof saved, "%s", bulkup_last_error_message());
    /* Keys of items that did not succeed name nothing stored: drop them. */
    for (size_t i = 0; i < wf.n; i++) {
      bk_wf_item *it = &wf.items[i];
      if (!it->submitted) {
        it->status = BULKUP_ITEM_CANCELLED;
      } else if (!it->ended) {
        it->status = BULKUP_ITEM_CANCELLED; /* not reached: finish waits */
      }
      if (!it->submitted || !it->ended ||
          it->status != BULKUP_ITEM_SUCCEEDED) {
        bk_free(it->object_key);
        bk_free(it->item_uuid);
        it->object_key = it->item_uuid = NULL;
      }
    }
    k->n = wf.n;
    k->items = wf.items;
    wf.items = NULL;
    bk_mutex_destroy(&wf.lock);
    *keys = k;
    if (rc != BULKUP_OK)
      bk_error(rc, "%s", saved);
  } else {
    bk_free(k);
    bk_wf_destroy(&wf);
  }
  return rc;
}
