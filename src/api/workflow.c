/* workflow.c - the SDK's four upload calls (ENCORD_WIRE.md §1), done
 * properly: check the paths, fetch signed URLs in batches while the engine
 * uploads, refresh expired URLs, then post the job (jobs.c) from the
 * successes and wait for its data units.
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
#include "client.h"
#include "jobs.h"
#include "mimetypes.h"
#include "util/str.h"

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
  int http_status; /* of the last answer to its PUT */
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
  o->create_video = true; /* the SDK's default (dataset.py:257) */
  o->files_per_job = 1;   /* the SDK's way: one job per file */
  o->poll_timeout = BULKUP_DEFAULT_POLL_TIMEOUT;
  bulkup_uploader_options_init(&o->upload);
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
    wf->items[r->index].http_status = r->http_status;
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

/* The SDK's Content-Type (utils.py:74-85): an image's by its extension
 * (mimetypes.guess_type, mimetypes.c), none ("": the header is left out)
 * when it has none;
 * video application/octet-stream; DICOM application/dicom. */
static const char *bk_wf_content_type(bulkup_data_type type,
                                      const char *path) {
  if (type == BULKUP_DATA_TYPE_IMAGE || type == BULKUP_DATA_TYPE_IMG_GROUP) {
    const char *ct = bk_mime_guess(path);
    return ct ? ct : "";
  }
  return bulkup_content_type_for(type, path);
}

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
  /* The URLs are signed for a PUT: a resumable session's POST would only
   * be refused (§5: never a POST). */
  uo.resumable_threshold = BULKUP_RESUMABLE_NEVER;

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
      /* §5: an image of unknown type goes with no Content-Type. */
      it.content_type = bk_wf_content_type(wf->type, paths[idx]);
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

  bk_error_saved saved;
  if (prc != BULKUP_OK) {
    /* No point finishing uploads of a run that failed: stop at once. */
    bk_error_save(&saved);
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
    return bk_error_restore(&saved, prc);
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
  if (type != BULKUP_DATA_TYPE_IMAGE && type != BULKUP_DATA_TYPE_IMG_GROUP &&
      type != BULKUP_DATA_TYPE_VIDEO && type != BULKUP_DATA_TYPE_DICOM)
    return bk_error(BULKUP_EINVAL, "the data type must be image, img_group, "
                    "video or dicom (the API's upload item types)");
  bulkup_err rc = bk_wf_validate(opt);
  if (rc != BULKUP_OK)
    return rc;
  return bk_check_paths(paths, n);
}

/* ---- the job-creating calls ---------------------------------------------- */

/* What each call posts, and how it names itself in messages. */
typedef struct bk_wf_kind {
  bk_job_kind job;
  bulkup_data_type type; /* presign type and Content-Type */
  const char *things;    /* "image", "DICOM file", "video" */
  const char *unit;      /* "Image group", "DICOM series", ... */
  bool many_units;       /* one unit per file (videos, images) */
} bk_wf_kind;

static const bk_wf_kind bk_kind_group = {BK_JOB_IMAGE_GROUP,
                                         BULKUP_DATA_TYPE_IMAGE, "image",
                                         "Image group", false};
static const bk_wf_kind bk_kind_dicom = {BK_JOB_DICOM_SERIES,
                                         BULKUP_DATA_TYPE_DICOM, "DICOM file",
                                         "DICOM series", false};
static const bk_wf_kind bk_kind_videos = {BK_JOB_VIDEOS,
                                          BULKUP_DATA_TYPE_VIDEO, "video",
                                          "Video", true};
static const bk_wf_kind bk_kind_images = {BK_JOB_IMAGES,
                                          BULKUP_DATA_TYPE_IMAGE, "image",
                                          "Image", true};

static bool bk_stored(const bk_wf_item *it) {
  /* §5: success is exactly 200. */
  return it->ended && it->status == BULKUP_ITEM_SUCCEEDED &&
         it->http_status == 200;
}

/* Post one job of `n` files and wait for its units, checking their count
 * (`expect` exact, or at least 1 when expect is 0). */
static bulkup_err bk_wf_job(bulkup_api *api, const bulkup_workflow_options *opt,
                            const bk_wf_kind *k, const bk_job_file *files,
                            size_t n, const char *title, size_t expect,
                            bulkup_image_group **units) {
  *units = NULL;
  char *payload = NULL;
  size_t plen = 0;
  bulkup_err rc = bk_job_payload(k->job, files, n, title, opt->create_video,
                                 opt->folder_uuid, &payload, &plen);
  if (rc != BULKUP_OK)
    return rc;
  char *ph = NULL;
  rc = bk_job_post(api, opt->dataset_hash, payload, &ph);
  bk_free(payload);
  if (rc != BULKUP_OK)
    return rc;
  bk_api_log(api, BULKUP_LOG_INFO, "job %s posted (%zu %s%s)", ph, n,
             k->things, n == 1 ? "" : "s");
  rc = bk_job_wait(api, opt->dataset_hash, ph, opt->poll_timeout, units);
  if (rc == BULKUP_OK) {
    size_t got = (*units)->n;
    if (expect ? got != expect : got == 0) {
      bulkup_image_group_free(*units);
      *units = NULL;
      rc = expect ? bk_error(BULKUP_EPROTOCOL, "job %s: DONE with %zu data "
                             "unit%s, expected %zu", ph, got,
                             got == 1 ? "" : "s", expect)
                  : bk_error(BULKUP_EJOB, "job %s: DONE without a data unit",
                             ph);
    }
  }
  bk_free(ph);
  return rc;
}

static bulkup_err bk_wf_run(bulkup_api *api, const bulkup_workflow_options *opt,
                            const char *const *paths, size_t npaths,
                            const bk_wf_kind *k, bulkup_image_group **units,
                            bulkup_report **report) {
  if (units)
    *units = NULL;
  if (report)
    *report = NULL;
  if (!units)
    return bk_error(BULKUP_EINVAL, "the result pointer must not be NULL");
  if (!opt)
    return bk_error(BULKUP_EINVAL, "options are required (the dataset "
                    "hash)");
  if (!opt->dataset_hash || !*opt->dataset_hash)
    return bk_error(BULKUP_EINVAL, "dataset_hash must be set");
  for (const unsigned char *p = (const unsigned char *)opt->dataset_hash; *p;
       p++)
    if (*p < 0x20 || *p >= 0x7f)
      return bk_error(BULKUP_EINVAL, "dataset_hash must be printable ASCII");
  char folder[37];
  bulkup_workflow_options o = *opt;
  if (opt->folder_uuid) {
    if (!bk_uuid_canon(opt->folder_uuid, folder))
      return bk_error(BULKUP_EINVAL, "folder_uuid '%.80s' is not a UUID",
                      opt->folder_uuid);
    o.folder_uuid = folder; /* sent canonical, as pydantic's mode="json" */
  }
  if (npaths == 0)
    return bk_error(BULKUP_EINVAL, "at least one path is needed");
  if (k->many_units && opt->title && npaths > 1)
    return bk_error(BULKUP_EINVAL, "a title names one file: with several "
                    "paths each file is titled by its basename");
  if (k->many_units && opt->files_per_job == 0)
    return bk_error(BULKUP_EINVAL, "files_per_job must be at least 1");
  bulkup_err rc = bk_wf_common_checks(api, opt, paths, npaths, k->type);
  if (rc != BULKUP_OK)
    return rc;

  bk_wf wf;
  if ((rc = bk_wf_init(&wf, api, opt, k->type, npaths)) != BULKUP_OK)
    return rc;
  bool started;
  rc = bk_wf_upload(&wf, opt, paths, report, &started);
  size_t stored = 0, not200 = 0;
  for (size_t i = 0; i < wf.n; i++) {
    if (bk_stored(&wf.items[i]))
      stored++;
    else if (wf.items[i].ended && wf.items[i].status == BULKUP_ITEM_SUCCEEDED)
      not200++;
  }
  if (rc == BULKUP_OK && not200 && !opt->upload.cloud.allow_failures)
    rc = bk_error(BULKUP_EUPLOAD, "%zu upload%s answered a 2xx other than "
                  "200 (the API's storage answers exactly 200)", not200,
                  not200 == 1 ? "" : "s");
  if (rc == BULKUP_EALLFAILED || (rc == BULKUP_OK && stored == 0))
    rc = bk_error(BULKUP_EALLFAILED, "All %s uploads failed. %s was not "
                  "created.", k->things, k->many_units ? "No data unit"
                                                       : k->unit);
  else if (rc == BULKUP_EUPLOAD) {
    char saved[400];
    snprintf(saved, sizeof saved, "%s", bulkup_last_error_message());
    rc = bk_error(BULKUP_EUPLOAD, "%s; %s was created (set allow_failures "
                  "to create %s from the successes)", saved,
                  k->many_units ? "no data unit" : "no job",
                  k->many_units ? "them" : "it");
  }
  if (rc != BULKUP_OK) {
    bk_wf_destroy(&wf);
    return rc;
  }

  /* The stored files, in input order. */
  bk_job_file *files = bk_calloc(stored, sizeof *files);
  if (!files) {
    bk_wf_destroy(&wf);
    return bk_error(BULKUP_ENOMEM, "out of memory");
  }
  size_t nf = 0;
  for (size_t i = 0; i < wf.n; i++)
    if (bk_stored(&wf.items[i])) {
      files[nf].url = wf.items[i].object_key;
      files[nf].title = (k->many_units && o.title) ? o.title
                                                   : bk_basename(paths[i]);
      nf++;
    }

  bulkup_image_group *all = NULL;
  if (!k->many_units) {
    rc = bk_wf_job(api, &o, k, files, nf, o.title,
                   k->job == BK_JOB_DICOM_SERIES ? 1 : 0, &all);
  } else {
    size_t per = o.files_per_job;
    for (size_t at = 0; at < nf && rc == BULKUP_OK; at += per) {
      size_t m = nf - at < per ? nf - at : per;
      bulkup_image_group *u = NULL;
      rc = bk_wf_job(api, &o, k, files + at, m, NULL, m, &u);
      if (rc == BULKUP_OK && (rc = bk_units_link(u, files + at, m)) != BULKUP_OK)
        bulkup_image_group_free(u);
      if (rc != BULKUP_OK)
        break;
      if (!all) {
        all = u;
      } else {
        rc = bk_units_append(all, u);
        bulkup_image_group_free(u);
      }
      if (rc == BULKUP_OK && at + m < nf)
        bk_api_log(api, BULKUP_LOG_INFO, "%zu of %zu %ss have their data "
                   "units", at + m, nf, k->things);
    }
  }
  bk_free(files);
  bk_wf_destroy(&wf);
  if (rc != BULKUP_OK) {
    bulkup_image_group_free(all);
    return rc;
  }
  *units = all;
  return BULKUP_OK;
}

bulkup_err bulkup_create_image_group(bulkup_api *api,
                                     const bulkup_workflow_options *opt,
                                     const char *const *paths, size_t npaths,
                                     bulkup_image_group **group,
                                     bulkup_report **report) {
  return bk_wf_run(api, opt, paths, npaths, &bk_kind_group, group, report);
}

bulkup_err bulkup_create_dicom_series(bulkup_api *api,
                                      const bulkup_workflow_options *opt,
                                      const char *const *paths,
                                      size_t npaths, bulkup_data_units **units,
                                      bulkup_report **report) {
  return bk_wf_run(api, opt, paths, npaths, &bk_kind_dicom, units, report);
}

bulkup_err bulkup_upload_videos(bulkup_api *api,
                                const bulkup_workflow_options *opt,
                                const char *const *paths, size_t npaths,
                                bulkup_data_units **units,
                                bulkup_report **report) {
  return bk_wf_run(api, opt, paths, npaths, &bk_kind_videos, units, report);
}

bulkup_err bulkup_upload_images(bulkup_api *api,
                                const bulkup_workflow_options *opt,
                                const char *const *paths, size_t npaths,
                                bulkup_data_units **units,
                                bulkup_report **report) {
  return bk_wf_run(api, opt, paths, npaths, &bk_kind_images, units, report);
}

bulkup_err bulkup_upload_video(bulkup_api *api,
                               const bulkup_workflow_options *opt,
                               const char *path, bulkup_data_units **units,
                               bulkup_report **report) {
  const char *const one[1] = {path};
  return bk_wf_run(api, opt, path ? one : NULL, path ? 1 : 0, &bk_kind_videos,
                   units, report);
}

bulkup_err bulkup_upload_image(bulkup_api *api,
                               const bulkup_workflow_options *opt,
                               const char *path, bulkup_data_units **units,
                               bulkup_report **report) {
  const char *const one[1] = {path};
  return bk_wf_run(api, opt, path ? one : NULL, path ? 1 : 0, &bk_kind_images,
                   units, report);
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
    bk_error_saved saved;
    bk_error_save(&saved);
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
      bk_error_restore(&saved, rc);
  } else {
    bk_free(k);
    bk_wf_destroy(&wf);
  }
  return rc;
}
