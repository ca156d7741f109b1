/*
 * v1.c - the v1 queries behind POST /public (ENCORD_WIRE §6-§9), once
 * api.c has checked the envelope, the headers and the signature:
 *
 *   dataset / GET                  the dataset's description (§11)
 *   datasetdatalongpolling / POST  create a job from the payload of §7
 *   datasetdatalongpolling / GET   long-poll a job (§8)
 *
 * A job holds the data items of the one non-empty list of its dataItems
 * (videos, imageGroups, dicomSeries or images); each item's objects must
 * be object keys presign made for the job's signer and that item type,
 * and stored. The job answers PENDING for job_pending seconds; the first
 * poll after that decides it once: each item whose objects are all still
 * stored becomes its data units (§9: an image group one unit, or one per
 * resolution when clusterByResolution is set; a DICOM series one; a video
 * or an image one), an item with a missing object becomes an error. The
 * job ends DONE when no item failed, else ERROR (with ignoreErrors too:
 * the units of the good items are created either way).
 *
 * Locking: datasets, jobs and the injected errors live under srv->mu; a
 * job's fixed part (items) never changes after creation and a job is
 * freed only when the server stops, so it is read without the lock. A
 * long poll waits on srv->job_cv (signalled when a job is cancelled and
 * when the server stops).
 */
#include "bks_internal.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* the longest a poll is held, whatever its timeout_seconds */
#define POLL_HOLD_MAX 60
#define TIMEOUT_MAX 604800

enum { JOB_PENDING, JOB_DONE, JOB_ERROR, JOB_CANCELLED };
enum { KIND_VIDEO, KIND_GROUP, KIND_DICOM, KIND_IMAGE, KIND_COUNT };

static const char *const kind_list[KIND_COUNT] = {"videos", "imageGroups",
                                                  "dicomSeries", "images"};
static const char *const kind_type[KIND_COUNT] = {"video", "image",
                                                  "dicomFile", "image"};
static const char *const kind_eft[KIND_COUNT] = {"VIDEO", "IMG_GROUP",
                                                 "DICOM", "IMAGE"};
static const char *const kind_action[KIND_COUNT] = {
    "create a video", "create an image group", "create a DICOM series",
    "create an image"};

typedef struct item {
  char *title;      /* NULL: none given (groups, series) */
  size_t n;
  char **urls, **titles; /* the objects (one for videos and images) */
  int cluster;      /* image group: clusterByResolution */
} item;

typedef struct unit {
  char *title;
  char data_hash[37];
  char backing[37];
} unit;

typedef struct unit_err {
  size_t item;
  char *error;
  char subtask[37];
} unit_err;

struct bks_job {
  bks_job *next;
  char hash[37];
  size_t dataset;
  char keyhex[65];
  int kind;
  double created; /* monotonic */
  int forced;     /* JOB_PENDING, or the outcome an injected fault sets */
  /* fixed at creation */
  item *items;
  size_t nitems;
  /* set once, when decided (under srv->mu) */
  int state;
  unit *units;
  size_t nunits;
  unit_err *uerrs;
  size_t nuerrs;
};

static void items_free(item *it, size_t n) {
  for (size_t i = 0; i < n; i++) {
    for (size_t k = 0; k < it[i].n; k++) {
      free(it[i].urls[k]);
      free(it[i].titles[k]);
    }
    free(it[i].urls);
    free(it[i].titles);
    free(it[i].title);
  }
  free(it);
}

static void units_free(unit *u, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(u[i].title);
  free(u);
}

static void uerrs_free(unit_err *e, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(e[i].error);
  free(e);
}

static void job_free(bks_job *j) {
  items_free(j->items, j->nitems);
  units_free(j->units, j->nunits);
  uerrs_free(j->uerrs, j->nuerrs);
  free(j);
}

void bks_v1_free(bks_server *srv) {
  for (size_t b = 0; b < BKS_BUCKETS; b++) {
    while (srv->jobs[b]) {
      bks_job *j = srv->jobs[b];
      srv->jobs[b] = j->next;
      job_free(j);
    }
  }
  for (size_t i = 0; i < srv->ndatasets; i++) {
    free(srv->datasets[i]->hash);
    free(srv->datasets[i]);
  }
  free(srv->datasets);
  srv->datasets = NULL;
  srv->ndatasets = srv->capdatasets = 0;
}

static bks_job *job_find_locked(bks_server *srv, const char *hash) {
  for (bks_job *j = srv->jobs[bks_hash(hash)]; j; j = j->next)
    if (strcmp(j->hash, hash) == 0)
      return j;
  return NULL;
}

int bks_v1_job_cancel(bks_server *srv, const char *hash) {
  int rc = -1;
  pthread_mutex_lock(&srv->mu);
  bks_job *j = job_find_locked(srv, hash);
  if (j && j->state == JOB_PENDING) {
    j->state = JOB_CANCELLED;
    rc = 0;
    pthread_cond_broadcast(&srv->job_cv);
  }
  pthread_mutex_unlock(&srv->mu);
  return rc;
}

/* ---- datasets ------------------------------------------------------------------ */

static int dataset_hash_ok(const char *h) {
  size_t n = h ? strlen(h) : 0;
  if (n == 0 || n > 128)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)h[i];
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
      return 0;
  }
  return 1;
}

long bks_dataset_find_locked(bks_server *srv, const char *hash) {
  for (size_t i = 0; i < srv->ndatasets; i++)
    if (strcmp(srv->datasets[i]->hash, hash) == 0)
      return (long)i;
  return -1;
}

int bks_dataset_add_locked(bks_server *srv, const char *hash) {
  if (!dataset_hash_ok(hash))
    return -1;
  if (bks_dataset_find_locked(srv, hash) >= 0)
    return 0;
  if (srv->ndatasets == srv->capdatasets) {
    size_t cap = srv->capdatasets ? 2 * srv->capdatasets : 4;
    bks_dataset **a = realloc(srv->datasets, cap * sizeof *a);
    if (!a)
      return -1;
    srv->datasets = a;
    srv->capdatasets = cap;
  }
  /* each dataset is its own allocation: the hash and folder pointers the
   * public API hands out stay valid when the array grows */
  bks_dataset *d = calloc(1, sizeof *d);
  if (!d || !(d->hash = bks_strdup(hash))) {
    free(d);
    return -1;
  }
  bks_uuid4(d->folder);
  srv->datasets[srv->ndatasets] = d;
  srv->ndatasets++;
  return 0;
}

/* ---- injected errors --------------------------------------------------------------- */

static const struct {
  const char *code;
  int status;
} v1_codes[] = {
    {"AUTHENTICATION_ERROR", 401},
    {"AUTHORISATION_ERROR", 403},
    {"RESOURCE_NOT_FOUND_ERROR", 404},
    {"SSH_KEY_NOT_FOUND_ERROR", 401},
    {"INVALID_ARGUMENTS_ERROR", 400},
    {"UPLOAD_OPERATION_NOT_SUPPORTED_ERROR", 400},
    {"UNKNOWN_ERROR", 500},
};

int bks_v1_code_status(const char *code) {
  for (size_t i = 0; i < sizeof v1_codes / sizeof v1_codes[0]; i++)
    if (strcmp(v1_codes[i].code, code) == 0)
      return v1_codes[i].status;
  return 0;
}

int bks_api_err_take_locked(bks_server *srv, int call, char code[48]) {
  bks_api_err *e = &srv->api_err[call];
  if (!e->code[0])
    return 0;
  memcpy(code, e->code, sizeof e->code);
  if (!e->forever && --e->left == 0)
    e->code[0] = '\0';
  srv->counters.api_faults++;
  return 1;
}

/* An injected v1 error for `call`, answered; or MHD_YES + *hit 0. */
static enum MHD_Result injected(bks_req *r, int call, int *hit) {
  char code[48];
  pthread_mutex_lock(&r->srv->mu);
  *hit = bks_api_err_take_locked(r->srv, call, code);
  pthread_mutex_unlock(&r->srv->mu);
  if (!*hit)
    return MHD_YES;
  return bks_respond_v1_error(r, bks_v1_code_status(code), code,
                              "injected by bulkup serve --fault-api-error");
}

/* ---- JSON helpers --------------------------------------------------------------------- */

static enum MHD_Result respond_ok(bks_req *r, json_object *response) {
  json_object *o = json_object_new_object();
  if (!o || !response) {
    json_object_put(o);
    json_object_put(response);
    return MHD_NO;
  }
  json_object_object_add(o, "status", json_object_new_int(200));
  json_object_object_add(o, "response", response);
  const char *s = json_object_to_json_string_ext(
      o, JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
  enum MHD_Result ret = s ? bks_respond_json(r, 200, s, NULL) : MHD_NO;
  json_object_put(o);
  return ret;
}

static enum MHD_Result invalid(bks_req *r, const char *why) {
  return bks_respond_v1_error(r, 400, "INVALID_ARGUMENTS_ERROR", why);
}

/* Does object o have exactly the keys `req` plus any of `opt`? NULL, or
 * the offending key's name (or "" for a missing one, *missing set). */
static const char *keys_check(json_object *o, const char *const *req,
                              size_t nreq, const char *const *opt,
                              size_t nopt, const char **missing) {
  *missing = NULL;
  json_object_object_foreach(o, name, val) {
    (void)val;
    int known = 0;
    for (size_t i = 0; i < nreq && !known; i++)
      known = strcmp(name, req[i]) == 0;
    for (size_t i = 0; i < nopt && !known; i++)
      known = strcmp(name, opt[i]) == 0;
    if (!known)
      return name;
  }
  for (size_t i = 0; i < nreq; i++) {
    json_object *v;
    if (!json_object_object_get_ex(o, req[i], &v)) {
      *missing = req[i];
      return "";
    }
  }
  return NULL;
}

static char *why_keys(const char *where, const char *bad, const char *missing) {
  if (missing)
    return bks_asprintf("%s: missing key %s", where, missing);
  return bks_asprintf("%s: unexpected key %.64s", where, bad);
}

static json_object *get(json_object *o, const char *k) {
  json_object *v = NULL;
  return json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static int is_str(json_object *v) {
  return json_object_is_type(v, json_type_string);
}

static int is_bool(json_object *v) {
  return json_object_is_type(v, json_type_boolean);
}

/* A canonical lower-case uuid. */
static int is_uuid(const char *s) {
  if (strlen(s) != 36)
    return 0;
  for (size_t i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-')
        return 0;
    } else if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f')) {
      return 0;
    }
  }
  return 1;
}

/* ---- dataset / GET ---------------------------------------------------------------------- */

static enum MHD_Result dataset_get(bks_req *r, json_object *values,
                                   size_t ds) {
  json_object *uid = get(values, "uid"), *payload = get(values, "payload");
  if (uid && !json_object_is_type(uid, json_type_null))
    return invalid(r, "dataset/GET: values.uid must be null (the dataset is "
                      "the ResourceID)");
  if (payload && !json_object_is_type(payload, json_type_null) &&
      !json_object_is_type(payload, json_type_object))
    return invalid(r, "dataset/GET: values.payload must be an object");
  int hit;
  enum MHD_Result ret = injected(r, BKS_CALL_DATASET, &hit);
  if (hit)
    return ret;
  bks_server *srv = r->srv;
  pthread_mutex_lock(&srv->mu);
  char *hash = bks_strdup(srv->datasets[ds]->hash);
  char folder[37];
  memcpy(folder, srv->datasets[ds]->folder, sizeof folder);
  srv->counters.datasets_fetched++;
  pthread_mutex_unlock(&srv->mu);
  json_object *o = json_object_new_object();
  char *title = hash ? bks_asprintf("bulkup dataset %.8s", hash) : NULL;
  if (!o || !hash || !title) {
    json_object_put(o);
    free(hash);
    free(title);
    return MHD_NO;
  }
  json_object_object_add(o, "title", json_object_new_string(title));
  json_object_object_add(o, "description", json_object_new_string(""));
  json_object_object_add(o, "dataset_type",
                         json_object_new_string("CORD_STORAGE"));
  json_object_object_add(o, "dataset_hash", json_object_new_string(hash));
  json_object_object_add(o, "backing_folder_uuid",
                         json_object_new_string(folder));
  free(hash);
  free(title);
  return respond_ok(r, o);
}

/* ---- datasetdatalongpolling / POST: the payload of §7 ---------------------------------- */

/* Parse one {"url", "title"} object (images of a group, dicomFiles). */
static const char *parse_file(json_object *f, char **url, char **title) {
  static const char *const req[] = {"url", "title"};
  const char *missing;
  if (!json_object_is_type(f, json_type_object) ||
      keys_check(f, req, 2, NULL, 0, &missing))
    return "each file must be exactly {\"url\": ..., \"title\": ...}";
  json_object *u = get(f, "url"), *t = get(f, "title");
  if (!is_str(u) || !is_str(t) || !json_object_get_string_len(u) ||
      !json_object_get_string_len(t))
    return "url and title must be non-empty strings";
  *url = bks_strdup(json_object_get_string(u));
  *title = bks_strdup(json_object_get_string(t));
  return *url && *title ? NULL : "out of memory";
}

/* One element of the kind's list into *it; NULL or a reason (*why_dyn
 * may hold a malloc'ed one instead). */
static const char *parse_item(int kind, json_object *e, item *it,
                              char **why_dyn) {
  const char *missing, *bad;
  if (!json_object_is_type(e, json_type_object))
    return "each data item must be an object";
  json_object *files = NULL;
  if (kind == KIND_GROUP) {
    static const char *const req[] = {"images", "clientMetadata",
                                      "createVideo", "externalFileType",
                                      "clusterByResolution"};
    static const char *const opt[] = {"title"};
    if ((bad = keys_check(e, req, 5, opt, 1, &missing))) {
      *why_dyn = why_keys("imageGroups[]", bad, missing);
      return *why_dyn ? NULL : "out of memory";
    }
    if (!is_bool(get(e, "createVideo")) ||
        !is_bool(get(e, "clusterByResolution")))
      return "imageGroups[]: createVideo and clusterByResolution must be "
             "booleans";
    it->cluster = json_object_get_boolean(get(e, "clusterByResolution"));
    files = get(e, "images");
  } else if (kind == KIND_DICOM) {
    static const char *const req[] = {"dicomFiles", "clientMetadata",
                                      "externalFileType"};
    static const char *const opt[] = {"title"};
    if ((bad = keys_check(e, req, 3, opt, 1, &missing))) {
      *why_dyn = why_keys("dicomSeries[]", bad, missing);
      return *why_dyn ? NULL : "out of memory";
    }
    files = get(e, "dicomFiles");
  } else {
    static const char *const req[] = {"objectUrl", "title", "clientMetadata",
                                      "externalFileType"};
    if ((bad = keys_check(e, req, 4, NULL, 0, &missing))) {
      *why_dyn = why_keys(kind_list[kind], bad, missing);
      return *why_dyn ? NULL : "out of memory";
    }
  }
  if (!json_object_is_type(get(e, "clientMetadata"), json_type_object))
    return "clientMetadata must be an object";
  json_object *eft = get(e, "externalFileType");
  if (!is_str(eft) || strcmp(json_object_get_string(eft), kind_eft[kind]))
    return kind == KIND_VIDEO   ? "externalFileType must be \"VIDEO\""
           : kind == KIND_GROUP ? "externalFileType must be \"IMG_GROUP\""
           : kind == KIND_DICOM ? "externalFileType must be \"DICOM\""
                                : "externalFileType must be \"IMAGE\"";
  json_object *t = get(e, "title");
  if (t) {
    if (!is_str(t) || !json_object_get_string_len(t))
      return "title must be a non-empty string";
    if (!(it->title = bks_strdup(json_object_get_string(t))))
      return "out of memory";
  }
  if (!files) { /* a video or an image: one object */
    json_object *u = get(e, "objectUrl");
    if (!is_str(u) || !json_object_get_string_len(u))
      return "objectUrl must be a non-empty string";
    it->urls = calloc(1, sizeof *it->urls);
    it->titles = calloc(1, sizeof *it->titles);
    if (!it->urls || !it->titles ||
        !(it->urls[0] = bks_strdup(json_object_get_string(u))) ||
        !(it->titles[0] = bks_strdup(it->title)))
      return "out of memory";
    it->n = 1;
    return NULL;
  }
  if (!json_object_is_type(files, json_type_array) ||
      json_object_array_length(files) == 0)
    return kind == KIND_GROUP ? "images must be a non-empty list"
                              : "dicomFiles must be a non-empty list";
  size_t n = json_object_array_length(files);
  it->urls = calloc(n, sizeof *it->urls);
  it->titles = calloc(n, sizeof *it->titles);
  if (!it->urls || !it->titles)
    return "out of memory";
  for (size_t i = 0; i < n; i++) {
    const char *why = parse_file(json_object_array_get_idx(files, i),
                                 &it->urls[i], &it->titles[i]);
    it->n = i + 1;
    if (why)
      return why;
  }
  return NULL;
}

/* Is every object of the job presigned for its signer and type, stored,
 * and named once? NULL or a malloc'ed reason. */
static char *check_objects(bks_server *srv, const bks_job *j) {
  const char *type = kind_type[j->kind];
  for (size_t i = 0; i < j->nitems; i++) {
    const item *it = &j->items[i];
    for (size_t k = 0; k < it->n; k++) {
      const char *u = it->urls[k];
      if (!bks_objkey_check(srv, j->keyhex, type, u, NULL))
        return bks_asprintf("%s[%zu]: %.200s is not an object key presigned "
                            "for this key with uploadItemType=%s",
                            kind_list[j->kind], i, u, type);
      if (!bks_store_exists(srv->store, u))
        return bks_asprintf("%s[%zu]: %.200s was presigned but nothing was "
                            "uploaded to it",
                            kind_list[j->kind], i, u);
      for (size_t a = 0; a <= i; a++)
        for (size_t b = 0; b < (a == i ? k : j->items[a].n); b++)
          if (strcmp(j->items[a].urls[b], u) == 0)
            return bks_asprintf("%s[%zu]: %.200s is named twice in the job",
                                kind_list[j->kind], i, u);
    }
  }
  return NULL;
}

/* The payload of §7 into job j (kind, items). NULL, or a reason. */
static const char *parse_payload(bks_server *srv, json_object *payload,
                                 size_t ds, bks_job *j, int *unsupported,
                                 char **why_dyn) {
  static const char *const req[] = {"dataItems", "ignoreErrors"};
  static const char *const opt[] = {"folderUuid"};
  const char *missing, *bad;
  if (!json_object_is_type(payload, json_type_object))
    return "values.payload must be an object";
  if ((bad = keys_check(payload, req, 2, opt, 1, &missing))) {
    *why_dyn = why_keys("payload", bad, missing);
    return *why_dyn ? NULL : "out of memory";
  }
  if (!is_bool(get(payload, "ignoreErrors")))
    return "ignoreErrors must be a boolean";
  json_object *folder = get(payload, "folderUuid");
  if (folder) {
    if (!is_str(folder) || !is_uuid(json_object_get_string(folder)))
      return "folderUuid must be a lower-case uuid";
    pthread_mutex_lock(&srv->mu);
    int known = strcmp(srv->datasets[ds]->folder,
                       json_object_get_string(folder)) == 0;
    pthread_mutex_unlock(&srv->mu);
    if (!known)
      return "folderUuid is not this dataset's folder";
  } else if (srv->require_folder) {
    return "folderUuid is required for this dataset (not a mirror dataset)";
  }
  json_object *di = get(payload, "dataItems");
  static const char *const di_keys[] = {
      "videos", "imageGroups", "dicomSeries", "images",
      "imageGroupsFromItems", "audio", "nifti", "text", "pdf",
      "skipDuplicateUrls", "upsertMetadata"};
  if (!json_object_is_type(di, json_type_object))
    return "dataItems must be an object";
  if ((bad = keys_check(di, di_keys, 11, NULL, 0, &missing))) {
    *why_dyn = why_keys("dataItems", bad, missing);
    return *why_dyn ? NULL : "out of memory";
  }
  if (!is_bool(get(di, "skipDuplicateUrls")) ||
      !is_bool(get(di, "upsertMetadata")))
    return "skipDuplicateUrls and upsertMetadata must be booleans";
  int kind = -1;
  size_t nonempty = 0;
  for (size_t i = 0; i < 9; i++) {
    json_object *l = get(di, di_keys[i]);
    if (!json_object_is_type(l, json_type_array))
      return "each list of dataItems must be a list";
    if (json_object_array_length(l) == 0)
      continue;
    nonempty++;
    if (i >= KIND_COUNT) {
      *unsupported = 1;
      return "this server creates videos, image groups, DICOM series and "
             "images only";
    }
    kind = (int)i;
  }
  if (nonempty != 1)
    return "exactly one list of dataItems must be non-empty";
  json_object *list = get(di, kind_list[kind]);
  size_t n = json_object_array_length(list);
  j->kind = kind;
  j->items = calloc(n, sizeof *j->items);
  if (!j->items)
    return "out of memory";
  for (size_t i = 0; i < n; i++) {
    j->nitems = i + 1;
    const char *why =
        parse_item(kind, json_object_array_get_idx(list, i), &j->items[i],
                   why_dyn);
    if (why || *why_dyn)
      return why;
  }
  return NULL;
}

static enum MHD_Result job_create(bks_req *r, const char *keyhex,
                                  json_object *values, size_t ds) {
  bks_server *srv = r->srv;
  bks_job *j = calloc(1, sizeof *j);
  if (!j)
    return MHD_NO;
  j->dataset = ds;
  memcpy(j->keyhex, keyhex, 65);
  int unsupported = 0;
  char *why_dyn = NULL;
  const char *why = parse_payload(srv, get(values, "payload"), ds, j,
                                  &unsupported, &why_dyn);
  if (!why && !why_dyn)
    why_dyn = check_objects(srv, j);
  if (why || why_dyn) {
    job_free(j);
    enum MHD_Result ret =
        unsupported ? bks_respond_v1_error(
                          r, 400, "UPLOAD_OPERATION_NOT_SUPPORTED_ERROR", why)
                    : invalid(r, why ? why : why_dyn);
    free(why_dyn);
    return ret;
  }
  int hit;
  enum MHD_Result ret = injected(r, BKS_CALL_CREATE, &hit);
  if (hit) {
    job_free(j);
    return ret;
  }
  bks_uuid4(j->hash);
  j->created = bk_now();
  j->state = JOB_PENDING;
  j->forced = JOB_PENDING;
  char code[48];
  pthread_mutex_lock(&srv->mu);
  if (bks_api_err_take_locked(srv, BKS_CALL_JOB, code))
    j->forced = strcmp(code, "CANCELLED") == 0 ? JOB_CANCELLED : JOB_ERROR;
  unsigned b = bks_hash(j->hash);
  j->next = srv->jobs[b];
  srv->jobs[b] = j;
  srv->counters.jobs_created++;
  pthread_mutex_unlock(&srv->mu);
  json_object *o = json_object_new_object();
  if (o)
    json_object_object_add(o, "process_hash", json_object_new_string(j->hash));
  return respond_ok(r, o);
}

/* ---- deciding a job: the data units of §9 ---------------------------------------------- */

typedef struct decision {
  unit *units;
  size_t nunits, capunits;
  unit_err *uerrs;
  size_t nuerrs, capuerrs;
} decision;

static int add_unit(decision *d, char *title, const char *backing) {
  if (!title)
    return -1;
  if (d->nunits == d->capunits) {
    size_t cap = d->capunits ? 2 * d->capunits : 8;
    unit *u = realloc(d->units, cap * sizeof *u);
    if (!u) {
      free(title);
      return -1;
    }
    d->units = u;
    d->capunits = cap;
  }
  unit *u = &d->units[d->nunits++];
  u->title = title;
  bks_uuid4(u->data_hash);
  if (backing)
    memcpy(u->backing, backing, 37);
  else
    bks_uuid4(u->backing);
  return 0;
}

static int add_uerr(decision *d, size_t item_i, char *error) {
  if (!error)
    return -1;
  if (d->nuerrs == d->capuerrs) {
    size_t cap = d->capuerrs ? 2 * d->capuerrs : 4;
    unit_err *e = realloc(d->uerrs, cap * sizeof *e);
    if (!e) {
      free(error);
      return -1;
    }
    d->uerrs = e;
    d->capuerrs = cap;
  }
  unit_err *e = &d->uerrs[d->nuerrs++];
  e->item = item_i;
  e->error = error;
  bks_uuid4(e->subtask);
  return 0;
}

/* An image group with clusterByResolution: one unit per resolution, in
 * the order of first appearance; images whose size cannot be read form
 * one more class. One class keeps the group's title; several are titled
 * "<title> (<W>x<H>)" / "<title> (unknown resolution)". */
static int group_units(bks_server *srv, const item *it, const char *title,
                       decision *d) {
  unsigned *w = calloc(it->n, sizeof *w), *h = calloc(it->n, sizeof *h);
  if (!w || !h) {
    free(w);
    free(h);
    return -1;
  }
  for (size_t i = 0; i < it->n; i++) {
    size_t len = 0;
    unsigned char *head =
        bks_store_read_head(srv->store, it->urls[i], BKS_IMAGE_HEAD, &len);
    if (!head || bks_image_size(head, len, &w[i], &h[i]) != 0)
      w[i] = h[i] = 0;
    free(head);
  }
  size_t classes = 0;
  for (size_t i = 0; i < it->n; i++) {
    size_t k = 0;
    while (k < i && (w[k] != w[i] || h[k] != h[i]))
      k++;
    classes += k == i;
  }
  int rc = 0;
  for (size_t i = 0; i < it->n && rc == 0; i++) {
    size_t k = 0;
    while (k < i && (w[k] != w[i] || h[k] != h[i]))
      k++;
    if (k < i)
      continue; /* not the first of its class */
    char *t;
    if (classes == 1)
      t = bks_strdup(title);
    else if (w[i])
      t = bks_asprintf("%s (%ux%u)", title, w[i], h[i]);
    else
      t = bks_asprintf("%s (unknown resolution)", title);
    rc = add_unit(d, t, NULL);
  }
  free(w);
  free(h);
  return rc;
}

/* Decide (without the lock: reads the store and the fixed items). */
static int job_decide(bks_server *srv, const bks_job *j, decision *d) {
  memset(d, 0, sizeof *d);
  for (size_t i = 0; i < j->nitems; i++) {
    const item *it = &j->items[i];
    if (j->forced == JOB_ERROR) {
      if (add_uerr(d, i, bks_strdup("injected by bulkup serve "
                                    "--fault-api-error job:ERROR")))
        return -1;
      continue;
    }
    size_t k = 0;
    while (k < it->n && bks_store_exists(srv->store, it->urls[k]))
      k++;
    if (k < it->n) {
      if (add_uerr(d, i, bks_asprintf("object %.200s not found",
                                      it->urls[k])))
        return -1;
      continue;
    }
    int rc;
    if (j->kind == KIND_VIDEO || j->kind == KIND_IMAGE) {
      char uuid[37];
      bks_objkey_check(srv, j->keyhex, kind_type[j->kind], it->urls[0], uuid);
      rc = add_unit(d, bks_strdup(it->title), uuid);
    } else {
      char gen[64];
      snprintf(gen, sizeof gen, "%s-%.8s",
               j->kind == KIND_GROUP ? "image-group" : "dicom-series",
               j->hash);
      const char *title = it->title ? it->title : gen;
      rc = j->kind == KIND_GROUP && it->cluster
               ? group_units(srv, it, title, d)
               : add_unit(d, bks_strdup(title), NULL);
    }
    if (rc)
      return -1;
  }
  return 0;
}

/* ---- datasetdatalongpolling / GET ---------------------------------------------------------- */

static json_object *job_json_locked(const bks_job *j) {
  static const char *const names[] = {"PENDING", "DONE", "ERROR",
                                      "CANCELLED"};
  json_object *o = json_object_new_object();
  json_object *units = json_object_new_array();
  json_object *errors = json_object_new_array();
  json_object *uerrs = json_object_new_array();
  if (!o || !units || !errors || !uerrs) {
    json_object_put(o);
    json_object_put(units);
    json_object_put(errors);
    json_object_put(uerrs);
    return NULL;
  }
  for (size_t i = 0; i < j->nunits; i++) {
    json_object *e = json_object_new_object();
    json_object_object_add(e, "data_hash",
                           json_object_new_string(j->units[i].data_hash));
    json_object_object_add(e, "title",
                           json_object_new_string(j->units[i].title));
    json_object_object_add(e, "backing_item_uuid",
                           json_object_new_string(j->units[i].backing));
    json_object_array_add(units, e);
  }
  for (size_t i = 0; i < j->nuerrs; i++) {
    const unit_err *ue = &j->uerrs[i];
    const item *it = &j->items[ue->item];
    json_object_array_add(errors, json_object_new_string(ue->error));
    json_object *e = json_object_new_object();
    json_object *urls = json_object_new_array();
    for (size_t k = 0; k < it->n; k++)
      json_object_array_add(urls, json_object_new_string(it->urls[k]));
    json_object_object_add(e, "object_urls", urls);
    json_object_object_add(e, "error", json_object_new_string(ue->error));
    json_object_object_add(e, "subtask_uuid",
                           json_object_new_string(ue->subtask));
    json_object_object_add(e, "action_description",
                           json_object_new_string(kind_action[j->kind]));
    json_object_array_add(uerrs, e);
  }
  size_t pending = j->state == JOB_PENDING ? j->nitems : 0;
  size_t cancelled = j->state == JOB_CANCELLED ? j->nitems : 0;
  json_object_object_add(o, "status", json_object_new_string(names[j->state]));
  json_object_object_add(o, "data_hashes_with_titles", units);
  json_object_object_add(o, "errors", errors);
  json_object_object_add(o, "data_unit_errors", uerrs);
  json_object_object_add(o, "units_pending_count",
                         json_object_new_int64((int64_t)pending));
  json_object_object_add(o, "units_done_count",
                         json_object_new_int64((int64_t)j->nunits));
  json_object_object_add(o, "units_error_count",
                         json_object_new_int64((int64_t)j->nuerrs));
  json_object_object_add(o, "units_cancelled_count",
                         json_object_new_int64((int64_t)cancelled));
  return o;
}

static struct timespec mono_at(double t) {
  struct timespec ts;
  ts.tv_sec = (time_t)t;
  ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

static enum MHD_Result job_poll(bks_req *r, json_object *values, size_t ds) {
  bks_server *srv = r->srv;
  json_object *payload = get(values, "payload");
  static const char *const req[] = {"process_hash", "timeout_seconds"};
  const char *missing, *bad;
  if (!json_object_is_type(payload, json_type_object))
    return invalid(r, "values.payload must be an object");
  if ((bad = keys_check(payload, req, 2, NULL, 0, &missing))) {
    char *why = why_keys("payload", bad, missing);
    enum MHD_Result ret = why ? invalid(r, why) : MHD_NO;
    free(why);
    return ret;
  }
  json_object *ph = get(payload, "process_hash");
  json_object *ts = get(payload, "timeout_seconds");
  if (!is_str(ph))
    return invalid(r, "process_hash must be a string");
  if (!json_object_is_type(ts, json_type_int) ||
      json_object_get_int64(ts) < 0 ||
      json_object_get_int64(ts) > TIMEOUT_MAX)
    return invalid(r, "timeout_seconds must be an integer from 0 to 604800");
  int hit;
  enum MHD_Result ret = injected(r, BKS_CALL_POLL, &hit);
  if (hit)
    return ret;
  double hold = (double)json_object_get_int64(ts);
  if (hold > POLL_HOLD_MAX)
    hold = POLL_HOLD_MAX;
  double deadline = bk_now() + hold;
  const char *hash = json_object_get_string(ph);
  pthread_mutex_lock(&srv->mu);
  bks_job *j = job_find_locked(srv, hash);
  if (!j || j->dataset != ds) {
    pthread_mutex_unlock(&srv->mu);
    return bks_respond_v1_error(r, 404, "RESOURCE_NOT_FOUND_ERROR",
                                "no such job in this dataset");
  }
  while (j->state == JOB_PENDING && !srv->stopping) {
    double now = bk_now();
    double ready = j->created + srv->job_pending;
    if (now >= ready) {
      if (j->forced == JOB_CANCELLED) {
        j->state = JOB_CANCELLED;
        break;
      }
      pthread_mutex_unlock(&srv->mu);
      decision d;
      int rc = job_decide(srv, j, &d);
      pthread_mutex_lock(&srv->mu);
      if (rc != 0) {
        units_free(d.units, d.nunits);
        uerrs_free(d.uerrs, d.nuerrs);
        pthread_mutex_unlock(&srv->mu);
        return MHD_NO;
      }
      if (j->state == JOB_PENDING) { /* not decided by another poll */
        j->units = d.units;
        j->nunits = d.nunits;
        j->uerrs = d.uerrs;
        j->nuerrs = d.nuerrs;
        j->state = d.nuerrs ? JOB_ERROR : JOB_DONE;
        srv->counters.data_units += d.nunits;
        pthread_cond_broadcast(&srv->job_cv);
      } else {
        units_free(d.units, d.nunits);
        uerrs_free(d.uerrs, d.nuerrs);
      }
      continue;
    }
    if (now >= deadline)
      break;
    struct timespec until = mono_at(ready < deadline ? ready : deadline);
    pthread_cond_timedwait(&srv->job_cv, &srv->mu, &until);
  }
  json_object *o = job_json_locked(j);
  if (o)
    srv->counters.polls++;
  pthread_mutex_unlock(&srv->mu);
  return respond_ok(r, o);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

enum MHD_Result bks_v1_dispatch(bks_req *r, const char *keyhex, void *envp,
                                size_t ds) {
  json_object *env = envp;
  const char *qt = json_object_get_string(get(env, "query_type"));
  const char *qm = json_object_get_string(get(env, "query_method"));
  json_object *values = get(env, "values");
  int get_m = strcmp(qm, "GET") == 0;
  if (strcmp(qt, "dataset") == 0) {
    if (!get_m)
      return invalid(r, "dataset supports query_method GET only");
    return dataset_get(r, values, ds);
  }
  if (strcmp(qt, "datasetdatalongpolling") != 0)
    return invalid(r, "unknown query_type (this server answers dataset and "
                      "datasetdatalongpolling)");
  json_object *uid = get(values, "uid");
  pthread_mutex_lock(&r->srv->mu);
  int same = is_str(uid) && strcmp(json_object_get_string(uid),
                                   r->srv->datasets[ds]->hash) == 0;
  pthread_mutex_unlock(&r->srv->mu);
  if (!same)
    return invalid(r, "values.uid must be the dataset hash of ResourceID");
  return get_m ? job_poll(r, values, ds) : job_create(r, keyhex, values, ds);
}
