/* jobs.c - the v1 queries of the upload path: the dataset GET, the job
 * (datasetdatalongpolling POST) with the payload of ENCORD_WIRE.md §7,
 * the long poll (§8) and its data units (§9). */
#include "internal.h"
#include "client.h"
#include "jobs.h"
#include "pyjson.h"

#include <math.h>
#include <stdio.h>

/* ---- data units ----------------------------------------------------------- */

bulkup_image_group *bk_units_new(const char *process_hash) {
  bulkup_image_group *g = bk_calloc(1, sizeof *g);
  if (!g)
    return NULL;
  g->process_hash = bk_strdup(process_hash ? process_hash : "");
  if (!g->process_hash) {
    bk_free(g);
    return NULL;
  }
  return g;
}

static bool bk_units_push(bulkup_image_group *g, const char *dh,
                          const char *title, const char *backing) {
  if (g->n == g->cap) {
    size_t nc = g->cap ? g->cap * 2 : 4;
    char **a = bk_realloc(g->data_hash, nc * sizeof *a);
    if (!a)
      return false;
    g->data_hash = a;
    char **b = bk_realloc(g->title, nc * sizeof *b);
    if (!b)
      return false;
    g->title = b;
    char **c = bk_realloc(g->backing, nc * sizeof *c);
    if (!c)
      return false;
    g->backing = c;
    char **d = bk_realloc(g->file_link, nc * sizeof *d);
    if (!d)
      return false;
    g->file_link = d;
    g->cap = nc;
  }
  char *x = bk_strdup(dh), *y = bk_strdup(title), *z = bk_strdup(backing);
  if (!x || !y || !z) {
    bk_free(x);
    bk_free(y);
    bk_free(z);
    return false;
  }
  g->data_hash[g->n] = x;
  g->title[g->n] = y;
  g->backing[g->n] = z;
  g->file_link[g->n] = NULL;
  g->n++;
  return true;
}

bulkup_err bk_units_append(bulkup_image_group *a,
                           const bulkup_image_group *b) {
  for (size_t i = 0; i < b->n; i++) {
    if (!bk_units_push(a, b->data_hash[i], b->title[i], b->backing[i]))
      return bk_error(BULKUP_ENOMEM, "out of memory");
    if (b->file_link[i] &&
        !(a->file_link[a->n - 1] = bk_strdup(b->file_link[i])))
      return bk_error(BULKUP_ENOMEM, "out of memory");
  }
  return BULKUP_OK;
}

bulkup_err bk_units_link(bulkup_image_group *g, const bk_job_file *files,
                         size_t n) {
  bool *taken = bk_calloc(n ? n : 1, sizeof *taken);
  if (!taken)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  for (size_t i = 0; i < g->n; i++) {
    size_t pick = n;
    for (size_t j = 0; j < n && pick == n; j++)
      if (!taken[j] && strcmp(files[j].title, g->title[i]) == 0)
        pick = j;
    if (pick == n && i < n && !taken[i])
      pick = i;
    if (pick == n)
      continue;
    taken[pick] = true;
    bk_free(g->file_link[i]);
    if (!(g->file_link[i] = bk_strdup(files[pick].url))) {
      bk_free(taken);
      return bk_error(BULKUP_ENOMEM, "out of memory");
    }
  }
  bk_free(taken);
  return BULKUP_OK;
}

const char *bulkup_image_group_process_hash(const bulkup_image_group *g) {
  return g ? g->process_hash : "";
}

size_t bulkup_image_group_count(const bulkup_image_group *g) {
  return g ? g->n : 0;
}

const char *bulkup_image_group_data_hash(const bulkup_image_group *g,
                                         size_t i) {
  return g && i < g->n ? g->data_hash[i] : NULL;
}

const char *bulkup_image_group_title(const bulkup_image_group *g, size_t i) {
  return g && i < g->n ? g->title[i] : NULL;
}

const char *bulkup_image_group_backing_item_uuid(const bulkup_image_group *g,
                                                 size_t i) {
  return g && i < g->n ? g->backing[i] : NULL;
}

const char *bulkup_image_group_file_link(const bulkup_image_group *g,
                                         size_t i) {
  return g && i < g->n ? g->file_link[i] : NULL;
}

void bulkup_image_group_free(bulkup_image_group *g) {
  if (!g)
    return;
  for (size_t i = 0; i < g->n; i++) {
    bk_free(g->data_hash[i]);
    bk_free(g->title[i]);
    bk_free(g->backing[i]);
    bk_free(g->file_link[i]);
  }
  bk_free(g->data_hash);
  bk_free(g->title);
  bk_free(g->backing);
  bk_free(g->file_link);
  bk_free(g->process_hash);
  bk_free(g);
}

/* ---- the dataset ------------------------------------------------------------ */

struct bulkup_dataset {
  char *hash, *title, *description, *type, *folder;
};

void bulkup_dataset_free(bulkup_dataset *d) {
  if (!d)
    return;
  bk_free(d->hash);
  bk_free(d->title);
  bk_free(d->description);
  bk_free(d->type);
  bk_free(d->folder);
  bk_free(d);
}

const char *bulkup_dataset_hash(const bulkup_dataset *d) {
  return d ? d->hash : "";
}
const char *bulkup_dataset_title(const bulkup_dataset *d) {
  return d ? d->title : "";
}
const char *bulkup_dataset_description(const bulkup_dataset *d) {
  return d ? d->description : "";
}
const char *bulkup_dataset_type(const bulkup_dataset *d) {
  return d ? d->type : "";
}
const char *bulkup_dataset_backing_folder(const bulkup_dataset *d) {
  return d ? d->folder : NULL;
}

/* A JSON string member (any bytes but NUL, empty allowed), or NULL. */
static const char *bk_json_text(json_object *o, const char *camel,
                                const char *snake) {
  json_object *v = bk_json_get2(o, camel, snake);
  if (!v || !json_object_is_type(v, json_type_string))
    return NULL;
  const char *s = json_object_get_string(v);
  if (strlen(s) != (size_t)json_object_get_string_len(v))
    return NULL;
  return s;
}

bulkup_err bulkup_api_get_dataset(bulkup_api *api, const char *dataset_hash,
                                  bulkup_dataset **out) {
  if (out)
    *out = NULL;
  if (!api || !out)
    return bk_error(BULKUP_EINVAL, "api and out must not be NULL");
  if (!dataset_hash || !*dataset_hash)
    return bk_error(BULKUP_EINVAL, "the dataset hash must not be empty");
  json_object *root, *resp;
  /* §11: uid null, the hash in ResourceID only. */
  bulkup_err rc = bk_api_v1(
      api, "dataset", "GET", "null",
      "{\"dataset_access_settings\": {\"fetch_client_metadata\": false}}",
      dataset_hash, true, 0, "dataset GET", &root, &resp);
  if (rc != BULKUP_OK)
    return rc;
  const char *title = bk_json_text(resp, "title", NULL);
  const char *desc = bk_json_text(resp, "description", NULL);
  const char *hash = bk_json_text(resp, "dataset_hash", NULL);
  json_object *type = bk_json_get2(resp, "dataset_type", NULL);
  json_object *folder = bk_json_get2(resp, "backing_folder_uuid", NULL);
  if (!title || !desc || !hash || !type ||
      !(json_object_is_type(type, json_type_string) ||
        json_object_is_type(type, json_type_int))) {
    json_object_put(root);
    return bk_error(BULKUP_EPROTOCOL, "dataset GET: the answer lacks a "
                    "title, description, dataset_type or dataset_hash");
  }
  bulkup_dataset *d = bk_calloc(1, sizeof *d);
  if (d) {
    d->hash = bk_strdup(hash);
    d->title = bk_strdup(title);
    d->description = bk_strdup(desc);
    d->type = bk_strdup(json_object_get_string(type));
    if (folder && json_object_is_type(folder, json_type_string))
      d->folder = bk_strdup(json_object_get_string(folder));
  }
  json_object_put(root);
  if (!d || !d->hash || !d->title || !d->description || !d->type ||
      (folder && json_object_is_type(folder, json_type_string) &&
       !d->folder)) {
    bulkup_dataset_free(d);
    return bk_error(BULKUP_ENOMEM, "out of memory");
  }
  *out = d;
  return BULKUP_OK;
}

/* ---- the job's payload (§7) -------------------------------------------------- */

static void bk_pj_files(bk_pj *w, const bk_job_file *f, size_t n) {
  bk_pj_raw(w, "[");
  for (size_t i = 0; i < n; i++) {
    bk_pj_raw(w, i ? ", {" : "{");
    bk_pj_key(w, true, "url");
    bk_pj_str(w, f[i].url);
    bk_pj_key(w, false, "title");
    bk_pj_str(w, f[i].title);
    bk_pj_raw(w, "}");
  }
  bk_pj_raw(w, "]");
}

/* One DataUploadVideo / DataUploadImage (storage.py:517-551). */
static void bk_pj_single(bk_pj *w, const bk_job_file *f, const char *type) {
  bk_pj_raw(w, "{");
  bk_pj_key(w, true, "objectUrl");
  bk_pj_str(w, f->url);
  bk_pj_key(w, false, "title");
  bk_pj_str(w, f->title);
  bk_pj_key(w, false, "clientMetadata");
  bk_pj_raw(w, "{}");
  bk_pj_key(w, false, "externalFileType");
  bk_pj_str(w, type);
  bk_pj_raw(w, "}");
}

bulkup_err bk_job_payload(bk_job_kind kind, const bk_job_file *files,
                          size_t n, const char *title, bool create_video,
                          const char *folder_uuid, char **out, size_t *len) {
  *out = NULL;
  bk_pj w;
  bk_pj_init(&w);
  bk_pj_raw(&w, "{");
  bk_pj_key(&w, true, "dataItems");
  bk_pj_raw(&w, "{");
  /* videos */
  bk_pj_key(&w, true, "videos");
  bk_pj_raw(&w, "[");
  if (kind == BK_JOB_VIDEOS)
    for (size_t i = 0; i < n; i++) {
      if (i)
        bk_pj_raw(&w, ", ");
      bk_pj_single(&w, &files[i], "VIDEO");
    }
  bk_pj_raw(&w, "]");
  /* imageGroups */
  bk_pj_key(&w, false, "imageGroups");
  bk_pj_raw(&w, "[");
  if (kind == BK_JOB_IMAGE_GROUP) {
    bk_pj_raw(&w, "{");
    bk_pj_key(&w, true, "images");
    bk_pj_files(&w, files, n);
    if (title) {
      bk_pj_key(&w, false, "title");
      bk_pj_str(&w, title);
    }
    bk_pj_key(&w, false, "clientMetadata");
    bk_pj_raw(&w, "{}");
    bk_pj_key(&w, false, "createVideo");
    bk_pj_bool(&w, create_video);
    bk_pj_key(&w, false, "externalFileType");
    bk_pj_str(&w, "IMG_GROUP");
    bk_pj_key(&w, false, "clusterByResolution");
    bk_pj_bool(&w, create_video); /* always equal (client.py:433) */
    bk_pj_raw(&w, "}");
  }
  bk_pj_raw(&w, "]");
  /* dicomSeries */
  bk_pj_key(&w, false, "dicomSeries");
  bk_pj_raw(&w, "[");
  if (kind == BK_JOB_DICOM_SERIES) {
    bk_pj_raw(&w, "{");
    bk_pj_key(&w, true, "dicomFiles");
    bk_pj_files(&w, files, n);
    if (title) {
      bk_pj_key(&w, false, "title");
      bk_pj_str(&w, title);
    }
    bk_pj_key(&w, false, "clientMetadata");
    bk_pj_raw(&w, "{}");
    bk_pj_key(&w, false, "externalFileType");
    bk_pj_str(&w, "DICOM");
    bk_pj_raw(&w, "}");
  }
  bk_pj_raw(&w, "]");
  /* images */
  bk_pj_key(&w, false, "images");
  bk_pj_raw(&w, "[");
  if (kind == BK_JOB_IMAGES)
    for (size_t i = 0; i < n; i++) {
      if (i)
        bk_pj_raw(&w, ", ");
      bk_pj_single(&w, &files[i], "IMAGE");
    }
  bk_pj_raw(&w, "]");
  static const char *const empty[] = {"imageGroupsFromItems", "audio", "nifti",
                                      "text", "pdf"};
  for (size_t i = 0; i < BK_ARRAY_LEN(empty); i++) {
    bk_pj_key(&w, false, empty[i]);
    bk_pj_raw(&w, "[]");
  }
  bk_pj_key(&w, false, "skipDuplicateUrls");
  bk_pj_bool(&w, false);
  bk_pj_key(&w, false, "upsertMetadata");
  bk_pj_bool(&w, false);
  bk_pj_raw(&w, "}");
  bk_pj_key(&w, false, "ignoreErrors");
  bk_pj_bool(&w, false);
  if (folder_uuid) {
    bk_pj_key(&w, false, "folderUuid");
    bk_pj_str(&w, folder_uuid);
  }
  bk_pj_raw(&w, "}");
  return bk_pj_finish(&w, out, len);
}

/* The dataset hash as the JSON value of values.uid. */
static char *bk_uid_json(const char *dataset_hash) {
  bk_pj w;
  bk_pj_init(&w);
  bk_pj_str(&w, dataset_hash);
  char *s;
  size_t n;
  return bk_pj_finish(&w, &s, &n) == BULKUP_OK ? s : NULL;
}

bulkup_err bk_job_post(bulkup_api *api, const char *dataset_hash,
                       const char *payload, char **process_hash) {
  *process_hash = NULL;
  char *uid = bk_uid_json(dataset_hash);
  if (!uid)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  json_object *root, *resp;
  bulkup_err rc = bk_api_v1(api, "datasetdatalongpolling", "POST", uid,
                            payload, dataset_hash, false, 0, "job POST",
                            &root, &resp);
  bk_free(uid);
  if (rc != BULKUP_OK)
    return rc;
  /* Read as a raw dict: the key is exactly process_hash (§7). */
  const char *ph = bk_json_str2(resp, "process_hash", NULL, 1024);
  if (!ph) {
    json_object_put(root);
    return bk_error(BULKUP_EPROTOCOL, "job POST: the answer has no "
                    "\"process_hash\"");
  }
  *process_hash = bk_strdup(ph);
  json_object_put(root);
  return *process_hash ? BULKUP_OK : bk_error(BULKUP_ENOMEM, "out of memory");
}

/* ---- the poll's answer (§8) -------------------------------------------------- */

static bool bk_json_is_count(json_object *o, const char *camel,
                             const char *snake) {
  json_object *v = bk_json_get2(o, camel, snake);
  return v && json_object_is_type(v, json_type_int);
}

/* ERROR: the reasons (errors, then each data unit error), printable. */
static bulkup_err bk_job_error(json_object *resp, const char *process_hash) {
  char why[600];
  size_t k = 0;
  why[0] = '\0';
  json_object *lists[2] = {
      bk_json_get2(resp, "errors", NULL),
      bk_json_get2(resp, "dataUnitErrors", "data_unit_errors")};
  for (int l = 0; l < 2; l++) {
    json_object *arr = lists[l];
    if (!arr || !json_object_is_type(arr, json_type_array))
      continue;
    size_t n = json_object_array_length(arr);
    for (size_t i = 0; i < n && k + 4 < sizeof why; i++) {
      json_object *e = json_object_array_get_idx(arr, i);
      const char *s = NULL;
      if (json_object_is_type(e, json_type_string))
        s = json_object_get_string(e);
      else if (json_object_is_type(e, json_type_object))
        s = bk_json_text(e, "error", NULL);
      if (!s)
        continue;
      if (k) {
        memcpy(why + k, "; ", 2);
        k += 2;
      }
      for (; *s && k + 1 < sizeof why; s++)
        why[k++] = ((unsigned char)*s >= 0x20 && *s != 0x7f) ? *s : '?';
      why[k] = '\0';
    }
  }
  return bk_error(BULKUP_EJOB, "job %s failed: %s", process_hash,
                  k ? why : "no reason given");
}

bulkup_err bk_job_read_status(json_object *resp, const char *process_hash,
                              bool *final, bulkup_image_group **out) {
  *final = false;
  *out = NULL;
  if (!json_object_is_type(resp, json_type_object))
    return bk_error(BULKUP_EPROTOCOL, "job %s: the poll answer is not an "
                    "object", process_hash);
  const char *status = bk_json_str2(resp, "status", NULL, 64);
  json_object *arr = bk_json_get2(resp, "dataHashesWithTitles",
                                  "data_hashes_with_titles");
  json_object *errors = bk_json_get2(resp, "errors", NULL);
  json_object *due = bk_json_get2(resp, "dataUnitErrors", "data_unit_errors");
  if (!status || !arr || !json_object_is_type(arr, json_type_array) ||
      !errors || !json_object_is_type(errors, json_type_array) || !due ||
      !json_object_is_type(due, json_type_array) ||
      !bk_json_is_count(resp, "unitsPendingCount", "units_pending_count") ||
      !bk_json_is_count(resp, "unitsDoneCount", "units_done_count") ||
      !bk_json_is_count(resp, "unitsErrorCount", "units_error_count") ||
      !bk_json_is_count(resp, "unitsCancelledCount",
                        "units_cancelled_count"))
    return bk_error(BULKUP_EPROTOCOL, "job %s: the poll answer is not a "
                    "DatasetDataLongPolling (status, data_hashes_with_titles, "
                    "errors, data_unit_errors and the four units_*_count are "
                    "required)", process_hash);
  if (strcmp(status, "PENDING") == 0)
    return BULKUP_OK;
  if (strcmp(status, "DONE") != 0 && strcmp(status, "ERROR") != 0 &&
      strcmp(status, "CANCELLED") != 0)
    return bk_error(BULKUP_EPROTOCOL, "job %s: unknown status '%.40s'",
                    process_hash, status);
  *final = true;
  if (strcmp(status, "ERROR") == 0)
    return bk_job_error(resp, process_hash);
  if (strcmp(status, "CANCELLED") == 0)
    return bk_error(BULKUP_ECANCELED, "job %s was cancelled", process_hash);
  bulkup_image_group *g = bk_units_new(process_hash);
  if (!g)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  size_t n = json_object_array_length(arr);
  for (size_t i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx(arr, i);
    const char *dh = bk_json_str2(e, "dataHash", "data_hash", 1024);
    const char *t = bk_json_text(e, "title", NULL);
    const char *bu = bk_json_str2(e, "backingItemUuid", "backing_item_uuid",
                                  256);
    char canon[37];
    if (!dh || !t || !bu || !bk_uuid_canon(bu, canon)) {
      bulkup_image_group_free(g);
      return bk_error(BULKUP_EPROTOCOL, "job %s: entry %zu of "
                      "data_hashes_with_titles lacks a data_hash, a title or "
                      "a UUID backing_item_uuid", process_hash, i);
    }
    if (!bk_units_push(g, dh, t, canon)) {
      bulkup_image_group_free(g);
      return bk_error(BULKUP_ENOMEM, "out of memory");
    }
  }
  *out = g;
  return BULKUP_OK;
}

bulkup_err bk_api_parse_job(const char *body, size_t len,
                            const char *process_hash, bool *final,
                            bulkup_image_group **out) {
  *final = false;
  *out = NULL;
  json_object *root;
  bulkup_err rc = bk_json_parse("job poll", body, len, &root);
  if (rc != BULKUP_OK)
    return rc;
  rc = bk_job_read_status(root, process_hash, final, out);
  json_object_put(root);
  return rc;
}

/* ---- the long poll (§8) ---------------------------------------------------- */

/* The SDK's outer poll loop: this many failed requests in a row are ridden
 * out, this far apart (client.py:143-144). */
#define BK_POLL_MAX_FAILURES 3
#define BK_POLL_FAILURE_GAP 10.0
/* A server that answers PENDING at once instead of holding the poll is
 * not asked again sooner than this. */
#define BK_POLL_MIN_GAP 1.0

bulkup_err bk_job_wait(bulkup_api *api, const char *dataset_hash,
                       const char *process_hash, double timeout,
                       bulkup_image_group **out) {
  *out = NULL;
  char *uid = bk_uid_json(dataset_hash);
  if (!uid)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  double start = bk_now();
  int failures = 0;
  unsigned polls = 0;
  bulkup_err rc;
  for (;;) {
    double remaining = timeout > 0 ? start + timeout - bk_now() : 10.0;
    if (remaining <= 0) {
      rc = bk_error(BULKUP_ETIMEDOUT, "job %s did not end within %.6g s (%u "
                    "polls)", process_hash, timeout, polls);
      break;
    }
    long long hold = (long long)ceil(remaining < 10.0 ? remaining : 10.0);
    if (hold < 1)
      hold = 1;
    bk_pj w;
    bk_pj_init(&w);
    bk_pj_raw(&w, "{");
    bk_pj_key(&w, true, "process_hash");
    bk_pj_str(&w, process_hash);
    bk_pj_key(&w, false, "timeout_seconds");
    bk_pj_int(&w, hold);
    bk_pj_raw(&w, "}");
    char *payload;
    size_t plen;
    if ((rc = bk_pj_finish(&w, &payload, &plen)) != BULKUP_OK)
      break;
    double t0 = bk_now();
    json_object *root = NULL, *resp = NULL;
    polls++;
    rc = bk_api_v1(api, "datasetdatalongpolling", "GET", uid, payload,
                   dataset_hash, true, (double)hold, "job poll", &root,
                   &resp);
    bk_free(payload);
    if (rc == BULKUP_ETIMEDOUT || rc == BULKUP_ECURL) {
      if (++failures > BK_POLL_MAX_FAILURES)
        break;
      bk_api_log(api, BULKUP_LOG_WARN, "job %s: poll failed (%d of %d in a "
                 "row allowed): %s", process_hash, failures,
                 BK_POLL_MAX_FAILURES, bulkup_last_error_message());
      double gap = BK_POLL_FAILURE_GAP;
      if (timeout > 0 && start + timeout - bk_now() < gap)
        gap = start + timeout - bk_now();
      if (!bk_api_sleep(api, gap)) {
        rc = bk_error(BULKUP_ECANCELED, "cancelled while waiting for job %s",
                      process_hash);
        break;
      }
      continue;
    }
    if (rc != BULKUP_OK)
      break;
    failures = 0;
    bool final = false;
    rc = bk_job_read_status(resp, process_hash, &final, out);
    json_object_put(root);
    if (rc != BULKUP_OK || final)
      break;
    double took = bk_now() - t0;
    if (took < BK_POLL_MIN_GAP &&
        !bk_api_sleep(api, BK_POLL_MIN_GAP - took)) {
      rc = bk_error(BULKUP_ECANCELED, "cancelled while waiting for job %s",
                    process_hash);
      break;
    }
  }
  bk_free(uid);
  return rc;
}
