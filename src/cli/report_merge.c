/*
 * report_merge.c - `bulkup report merge [-o OUT] REPORT...`: the reports of
 * the shards of one upload (--report) made into one.
 *
 * The summary is summed (elapsed_s is the longest shard's); failures and
 * cancelled items are concatenated, each tagged with "report", the file it
 * came from, and keeping its "index" (its position in that shard's run).
 * Items are identified across reports by their URL up to the query (the
 * object; a query holds signatures that change) or, without a URL, by
 * their path. An item listed by two reports is a conflict: it failed in
 * one and succeeded in another (a report lists successes only in an
 * optional "succeeded" array), or it was simply handed to two runs (shards
 * that overlap, the same shard merged twice). Two reports of the same
 * shard, or of shard sets of different sizes, are conflicts too. A
 * conflict makes the exit status 1 unless --allow-conflicts; the merged
 * report lists them in "conflicts" either way.
 *
 * Reports are read whole (json-c): a shard's report holds its failures
 * only, so it is small unless the shard failed wholesale.
 */
#include "report_merge.h"

#include "cli.h"
#include "grow.h"

#include <bulkup.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MERGE_MAX_SHOWN 5

/* ---- writing ---------------------------------------------------------------- */

bool cli_is_stdout(const char *path) {
  return !path || strcmp(path, "-") == 0;
}

int cli_write_file_atomic(const char *path, const char *text, size_t len,
                          char *err, size_t errlen) {
  if (cli_is_stdout(path)) {
    if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
      int e = errno ? errno : EIO;
      snprintf(err, errlen, "cannot write to standard output: %s",
               strerror(e));
      return e;
    }
    return 0;
  }
  /* /dev/stdout writes what stdio holds first, then the text. */
  fflush(stdout);
  if (bulkup_file_write(path, text, len) == BULKUP_OK)
    return 0;
  snprintf(err, errlen, "%s", bulkup_last_error_message());
  return EIO;
}

static const int JSON_FLAGS = JSON_C_TO_STRING_PRETTY |
                              JSON_C_TO_STRING_SPACED |
                              JSON_C_TO_STRING_NOSLASHESCAPE;

/* Serialize `o` with a final newline and write it to `path` ("-" or NULL:
 * standard output). */
static int write_json(json_object *o, const char *path, char *err,
                      size_t errlen) {
  size_t len = 0;
  const char *text = json_object_to_json_string_length(o, JSON_FLAGS, &len);
  if (!text) {
    snprintf(err, errlen, "out of memory");
    return ENOMEM;
  }
  char *buf = malloc(len + 2);
  if (!buf) {
    snprintf(err, errlen, "out of memory");
    return ENOMEM;
  }
  memcpy(buf, text, len);
  buf[len] = '\n';
  int e = cli_write_file_atomic(path, buf, len + 1, err, errlen);
  free(buf);
  return e;
}

bool report_write_run(const bulkup_report *rep, const char *path,
                      const report_extra *x, char *err, size_t errlen) {
  /* What the CLI adds, as a small JSON object; the library streams the
   * report itself (its failures are not all in memory: a run with
   * millions of failures writes them one by one). */
  json_object *extra = json_object_new_object();
  bool ok = extra != NULL;
  if (ok && x && x->shard_n) {
    json_object *shard = json_object_new_object();
    ok = shard &&
         json_object_object_add(shard, "index",
                                json_object_new_uint64(x->shard_k)) == 0 &&
         json_object_object_add(shard, "count",
                                json_object_new_uint64(x->shard_n)) == 0 &&
         json_object_object_add(shard, "key",
                                json_object_new_string(x->shard_key)) == 0;
    if (ok)
      ok = json_object_object_add(extra, "shard", shard) == 0;
    else
      json_object_put(shard);
  }
  if (ok && x && x->acct) {
    json_object *summary = json_object_new_object();
    ok = summary &&
         json_object_object_add(summary, "input",
                                json_object_new_uint64(x->input)) == 0 &&
         json_object_object_add(summary, "skipped",
                                json_object_new_uint64(x->skipped)) == 0 &&
         json_object_object_add(summary, "not_started",
                                json_object_new_uint64(x->not_started)) == 0;
    if (ok)
      ok = json_object_object_add(extra, "summary", summary) == 0;
    else
      json_object_put(summary);
  }
  const char *text = ok ? json_object_to_json_string_ext(
                              extra, JSON_C_TO_STRING_PLAIN |
                                         JSON_C_TO_STRING_NOSLASHESCAPE)
                        : NULL;
  if (!text) {
    json_object_put(extra);
    snprintf(err, errlen, "out of memory");
    return false;
  }
  /* "-": standard output, written through its descriptor after what stdio
   * holds. */
  if (cli_is_stdout(path)) {
    fflush(stdout);
    path = "/dev/stdout";
  }
  bulkup_err rc = bulkup_report_write_json_with(rep, path, text);
  json_object_put(extra);
  if (rc != BULKUP_OK) {
    snprintf(err, errlen, "%s", bulkup_last_error_message());
    return false;
  }
  return true;
}

/* ---- reading ---------------------------------------------------------------- */

static const char *const SUMMARY_FIELDS[] = {
    "submitted", "succeeded",  "failed",          "cancelled",
    "retries",   "bytes_sent", "bytes_succeeded", "details_dropped",
    "input",     "skipped",    "not_started", "journal_failures"};
#define NSUM (sizeof SUMMARY_FIELDS / sizeof SUMMARY_FIELDS[0])
#define SUM_OPTIONAL_FROM 7 /* details_dropped may be absent */

typedef struct input {
  const char *name;
  json_object *root;
  uint64_t sum[NSUM];
  double elapsed;
  bool has_shard;
  uint64_t shard_k, shard_n;
} input;

static char *read_all(const char *path, size_t *len, char *err,
                      size_t errlen) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
  if (!f) {
    snprintf(err, errlen, "cannot open: %s", strerror(errno));
    return NULL;
  }
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    if (n == cap) {
      char *nb = cap < ((size_t)1 << 40) ? realloc(buf, cap *= 2) : NULL;
      if (!nb) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0)
      break;
  }
  bool bad = !buf || ferror(f);
  int e = errno;
  if (f != stdin)
    fclose(f);
  if (bad) {
    snprintf(err, errlen, "cannot read: %s", buf ? strerror(e) : "out of memory");
    free(buf);
    return NULL;
  }
  *len = n;
  return buf;
}

static bool get_uint(json_object *o, const char *key, uint64_t *out) {
  json_object *v;
  if (!json_object_object_get_ex(o, key, &v) ||
      !json_object_is_type(v, json_type_int))
    return false;
  if (json_object_get_int64(v) < 0)
    return false;
  *out = json_object_get_uint64(v);
  return true;
}

/* An item of failures / cancelled / succeeded: an object with a whole
 * "index", a string "url" and a string or null "path". */
static const char *check_item(json_object *it) {
  json_object *v;
  uint64_t idx;
  if (!json_object_is_type(it, json_type_object))
    return "is not an object";
  if (!get_uint(it, "index", &idx))
    return "has no whole, non-negative \"index\"";
  if (!json_object_object_get_ex(it, "url", &v) ||
      !json_object_is_type(v, json_type_string))
    return "has no string \"url\"";
  if (json_object_object_get_ex(it, "path", &v) && v &&
      !json_object_is_type(v, json_type_string))
    return "has a \"path\" that is not a string or null";
  return NULL;
}

/* Parse and check one report. false with the reason in err. */
static bool load(input *in, char *err, size_t errlen) {
  size_t len = 0;
  char *text = read_all(in->name, &len, err, errlen);
  if (!text)
    return false;
  json_tokener *tok = json_tokener_new();
  if (!tok) {
    free(text);
    snprintf(err, errlen, "out of memory");
    return false;
  }
  in->root = len ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
  enum json_tokener_error je = json_tokener_get_error(tok);
  size_t end = json_tokener_get_parse_end(tok);
  json_tokener_free(tok);
  bool trailing = false;
  for (size_t i = end; i < len; i++)
    if (!strchr(" \t\r\n", text[i]))
      trailing = true;
  free(text);
  if (!in->root || je != json_tokener_success) {
    snprintf(err, errlen, "not JSON: %s",
             len == 0 ? "empty file"
             : je == json_tokener_continue
                 ? "unexpected end of file"
                 : json_tokener_error_desc(je));
    return false;
  }
  if (trailing) {
    snprintf(err, errlen, "not one JSON document: text after the report");
    return false;
  }
  json_object *summary, *arr;
  if (!json_object_is_type(in->root, json_type_object) ||
      !json_object_object_get_ex(in->root, "summary", &summary) ||
      !json_object_is_type(summary, json_type_object)) {
    snprintf(err, errlen, "not a bulkup report: no \"summary\" object");
    return false;
  }
  for (size_t i = 0; i < NSUM; i++) {
    if (!get_uint(summary, SUMMARY_FIELDS[i], &in->sum[i])) {
      if (i >= SUM_OPTIONAL_FROM &&
          !json_object_object_get_ex(summary, SUMMARY_FIELDS[i], NULL)) {
        in->sum[i] = 0;
        continue;
      }
      snprintf(err, errlen, "summary.%s is missing or not a whole number >= 0",
               SUMMARY_FIELDS[i]);
      return false;
    }
  }
  json_object *el;
  if (!json_object_object_get_ex(summary, "elapsed_s", &el) ||
      !(json_object_is_type(el, json_type_double) ||
        json_object_is_type(el, json_type_int)) ||
      json_object_get_double(el) < 0) {
    snprintf(err, errlen, "summary.elapsed_s is missing or not a number >= 0");
    return false;
  }
  in->elapsed = json_object_get_double(el);
  if (in->sum[1] + in->sum[2] + in->sum[3] != in->sum[0]) {
    snprintf(err, errlen,
             "summary does not add up: succeeded + failed + cancelled != "
             "submitted");
    return false;
  }
  static const char *const lists[] = {"failures", "cancelled", "succeeded"};
  for (int l = 0; l < 3; l++) {
    if (!json_object_object_get_ex(in->root, lists[l], &arr)) {
      if (l == 2) /* "succeeded" is optional */
        continue;
      snprintf(err, errlen, "no \"%s\" array", lists[l]);
      return false;
    }
    if (!json_object_is_type(arr, json_type_array)) {
      snprintf(err, errlen, "\"%s\" is not an array", lists[l]);
      return false;
    }
    size_t n = json_object_array_length(arr);
    for (size_t i = 0; i < n; i++) {
      const char *why = check_item(json_object_array_get_idx(arr, i));
      if (why) {
        snprintf(err, errlen, "%s[%zu] %s", lists[l], i, why);
        return false;
      }
    }
  }
  json_object *shard;
  if (json_object_object_get_ex(in->root, "shard", &shard) && shard) {
    if (!json_object_is_type(shard, json_type_object) ||
        !get_uint(shard, "index", &in->shard_k) ||
        !get_uint(shard, "count", &in->shard_n) || in->shard_n == 0 ||
        in->shard_k >= in->shard_n) {
      snprintf(err, errlen,
               "\"shard\" is not {\"index\": K, \"count\": N} with K < N");
      return false;
    }
    in->has_shard = true;
  }
  return true;
}

/* ---- identities and conflicts ------------------------------------------------ */

typedef struct occurrence {
  size_t input;
  const char *status; /* "succeeded", "failed", "cancelled" */
  uint64_t index;
  size_t next; /* the next occurrence of the same key, or SIZE_MAX */
} occurrence;

typedef struct slot {
  char *key;
  size_t first, last, count;
} slot;

typedef struct table {
  slot *slots;
  size_t cap, used;
  occurrence *occ;
  size_t nocc, occcap;
  size_t *order; /* slot indexes in first-seen order */
  size_t norder;
} table;

static uint64_t key_hash(const char *k) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a: a table, not a shard */
  for (; *k; k++)
    h = (h ^ (unsigned char)*k) * 1099511628211ULL;
  return h;
}

static bool table_grow(table *t) {
  size_t ncap = t->cap ? t->cap * 2 : 1024;
  slot *ns = calloc(ncap, sizeof *ns);
  size_t *no = malloc(ncap / 2 * sizeof *no);
  if (!ns || !no) {
    free(ns);
    free(no);
    return false;
  }
  size_t n = 0;
  for (size_t i = 0; i < t->norder; i++) {
    slot *s = &t->slots[t->order[i]];
    size_t j = key_hash(s->key) & (ncap - 1);
    while (ns[j].key)
      j = (j + 1) & (ncap - 1);
    ns[j] = *s;
    no[n++] = j;
  }
  free(t->slots);
  free(t->order);
  t->slots = ns;
  t->order = no;
  t->cap = ncap;
  return true;
}

/* Record that `key` appears in input `in` with this status and index. */
static bool table_add(table *t, const char *key, size_t keylen, size_t in,
                      const char *status, uint64_t index) {
  if ((t->used + 1) * 2 > t->cap && !table_grow(t))
    return false;
  void *occ = t->occ;
  if (!cli_grow(&occ, &t->occcap, t->nocc + 1, sizeof *t->occ, 1024))
    return false;
  t->occ = occ;
  char *k = strndup(key, keylen);
  if (!k)
    return false;
  size_t j = key_hash(k) & (t->cap - 1);
  while (t->slots[j].key && strcmp(t->slots[j].key, k) != 0)
    j = (j + 1) & (t->cap - 1);
  size_t o = t->nocc++;
  t->occ[o] = (occurrence){in, status, index, SIZE_MAX};
  slot *s = &t->slots[j];
  if (!s->key) {
    s->key = k;
    s->first = s->last = o;
    s->count = 1;
    t->used++;
    t->order[t->norder++] = j;
  } else {
    free(k);
    t->occ[s->last].next = o;
    s->last = o;
    s->count++;
  }
  return true;
}

static void table_free(table *t) {
  for (size_t i = 0; i < t->norder; i++)
    free(t->slots[t->order[i]].key);
  free(t->slots);
  free(t->order);
  free(t->occ);
}

/* The identity of an item: its URL up to the query, else its path. */
static const char *identity(json_object *it, size_t *len) {
  json_object *v;
  if (json_object_object_get_ex(it, "url", &v)) {
    const char *u = json_object_get_string(v);
    if (u && *u) {
      *len = strcspn(u, "?#");
      return u;
    }
  }
  if (json_object_object_get_ex(it, "path", &v) && v) {
    const char *p = json_object_get_string(v);
    if (p && *p) {
      *len = strlen(p);
      return p;
    }
  }
  return NULL;
}

/* ---- the command ----------------------------------------------------------- */

static const char merge_help[] =
    "Usage: bulkup report merge [-o OUT] [--allow-conflicts] REPORT...\n"
    "\n"
    "Combine the JSON reports (--report) of the shards of one upload\n"
    "(bulkup upload --shard K/N) into one report, written to OUT (default:\n"
    "standard output).\n"
    "\n"
    "The summary is summed (submitted, succeeded, failed, cancelled,\n"
    "retries, bytes_sent, bytes_succeeded; elapsed_s is the longest\n"
    "shard's). The failures and cancelled items are concatenated, each with\n"
    "\"report\": the file it came from, and its \"index\" in that run.\n"
    "\"reports\" lists every input with its shard and summary; with shard\n"
    "reports of one count N, \"shards\" names the shards that are missing.\n"
    "\n"
    "Conflicts, listed in \"conflicts\": an item (its URL up to the query,\n"
    "or its path when it has no URL) that appears in two reports or twice\n"
    "in one -- it succeeded in one and failed in another (successes are\n"
    "known from a report's optional \"succeeded\" list), or it was given to\n"
    "two runs -- and two reports of the same shard, or of different shard\n"
    "counts.\n"
    "\n"
    "Options:\n"
    "  -o, --output OUT     write the merged report to OUT (atomically)\n"
    "  --allow-conflicts    exit 0 even when there are conflicts\n"
    "  -q, --quiet          no summary on standard error\n"
    "  -h, --help           show this help\n"
    "\n"
    "Exit status: 0 merged; 1 conflicts (the merged report is written and\n"
    "lists them); 2 bad usage, or a REPORT that cannot be read or is not a\n"
    "bulkup report (named on standard error; nothing is written).\n"
    "\n"
    "Example:\n"
    "  bulkup report merge -o report.json r.*.json\n";

static const char report_help[] =
    "Usage: bulkup report merge [-o OUT] [--allow-conflicts] REPORT...\n"
    "\n"
    "Work with the JSON reports that 'bulkup upload --report' writes.\n"
    "\n"
    "Verbs:\n"
    "  merge      combine the reports of the shards of one upload\n"
    "             (bulkup upload --shard K/N) into one; see\n"
    "             'bulkup report merge --help'\n";

void cli_report_help(void *out) {
  fputs(report_help, (FILE *)out);
  fputc('\n', (FILE *)out);
  fputs(merge_help, (FILE *)out);
}

static json_object *shard_json(const input *in) {
  if (!in->has_shard)
    return NULL;
  json_object *s = json_object_new_object();
  if (s) {
    json_object_object_add(s, "index", json_object_new_uint64(in->shard_k));
    json_object_object_add(s, "count", json_object_new_uint64(in->shard_n));
  }
  return s;
}

/* Copy the items of list `name` of every input into one array, tagged. */
static json_object *concat(input *ins, size_t nin, const char *name,
                           bool *present) {
  json_object *out = json_object_new_array();
  if (!out)
    return NULL;
  for (size_t i = 0; i < nin; i++) {
    json_object *arr;
    if (!json_object_object_get_ex(ins[i].root, name, &arr))
      continue;
    *present = true;
    size_t n = json_object_array_length(arr);
    for (size_t j = 0; j < n; j++) {
      json_object *it = NULL;
      if (json_object_deep_copy(json_object_array_get_idx(arr, j), &it,
                                NULL) != 0 ||
          json_object_object_add(it, "report",
                                 json_object_new_string(ins[i].name)) != 0 ||
          json_object_array_add(out, it) != 0) {
        json_object_put(it);
        json_object_put(out);
        return NULL;
      }
    }
  }
  return out;
}

static json_object *conflict_new(const char *kind, const char *key) {
  json_object *c = json_object_new_object();
  if (c) {
    json_object_object_add(c, "kind", json_object_new_string(kind));
    json_object_object_add(c, "key", json_object_new_string(key));
    json_object_object_add(c, "entries", json_object_new_array());
  }
  return c;
}

static void conflict_entry(json_object *c, const char *report,
                           const char *status, const uint64_t *index) {
  json_object *entries, *e = json_object_new_object();
  json_object_object_get_ex(c, "entries", &entries);
  json_object_object_add(e, "report", json_object_new_string(report));
  if (status)
    json_object_object_add(e, "status", json_object_new_string(status));
  if (index)
    json_object_object_add(e, "index", json_object_new_uint64(*index));
  json_object_array_add(entries, e);
}

/* Conflicts between shards: the same K/N twice, different N. */
static void shard_conflicts(input *ins, size_t nin, json_object *conflicts) {
  for (size_t i = 0; i < nin; i++) {
    if (!ins[i].has_shard)
      continue;
    for (size_t j = i + 1; j < nin; j++) {
      if (!ins[j].has_shard)
        continue;
      char key[64];
      json_object *c = NULL;
      if (ins[j].shard_n != ins[i].shard_n) {
        snprintf(key, sizeof key, "%llu/%llu vs %llu/%llu",
                 (unsigned long long)ins[i].shard_k,
                 (unsigned long long)ins[i].shard_n,
                 (unsigned long long)ins[j].shard_k,
                 (unsigned long long)ins[j].shard_n);
        c = conflict_new("shard_count_mismatch", key);
      } else if (ins[j].shard_k == ins[i].shard_k) {
        snprintf(key, sizeof key, "%llu/%llu",
                 (unsigned long long)ins[i].shard_k,
                 (unsigned long long)ins[i].shard_n);
        c = conflict_new("duplicate_shard", key);
      }
      if (!c)
        continue;
      conflict_entry(c, ins[i].name, NULL, NULL);
      conflict_entry(c, ins[j].name, NULL, NULL);
      json_object_array_add(conflicts, c);
    }
  }
}

static int merge_main(int argc, char **argv) {
  static const struct option opts[] = {
      {"output", required_argument, NULL, 'o'},
      {"allow-conflicts", no_argument, NULL, 'A'},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *out_path = NULL;
  bool allow = false, quiet = false;
  opterr = 0;
  optind = 1;
  for (;;) {
    int ch = getopt_long(argc, argv, ":o:qh", opts, NULL);
    if (ch == -1)
      break;
    switch (ch) {
    case 'o':
      out_path = optarg;
      break;
    case 'A':
      allow = true;
      break;
    case 'q':
      quiet = true;
      break;
    case 'h':
      fputs(merge_help, stdout);
      return CLI_EXIT_OK;
    case ':':
      return cli_usage_error("report merge", "option '%s' needs a value",
                             argv[optind - 1]);
    default:
      return cli_usage_error("report merge", "unknown option '%s'",
                             argv[optind - 1]);
    }
  }
  size_t nin = (size_t)(argc - optind);
  if (nin == 0)
    return cli_usage_error("report merge", "no REPORT to merge");
  input *ins = calloc(nin, sizeof *ins);
  if (!ins) {
    cli_error("out of memory");
    return CLI_EXIT_FAILED;
  }
  int status = CLI_EXIT_OK;
  table t = {0};
  json_object *root = NULL;
  for (size_t i = 0; i < nin; i++) {
    ins[i].name = argv[optind + (int)i];
    char err[512];
    if (!load(&ins[i], err, sizeof err)) {
      cli_error("report merge: %s: %s", ins[i].name, err);
      status = CLI_EXIT_USAGE;
    }
  }
  if (status != CLI_EXIT_OK)
    goto done;

  /* The totals, and every input's own. */
  uint64_t sum[NSUM] = {0};
  double elapsed = 0;
  json_object *reports = json_object_new_array();
  root = json_object_new_object();
  for (size_t i = 0; i < nin; i++) {
    for (size_t f = 0; f < NSUM; f++)
      sum[f] += ins[i].sum[f];
    if (ins[i].elapsed > elapsed)
      elapsed = ins[i].elapsed;
    json_object *r = json_object_new_object(), *s = NULL;
    json_object_object_add(r, "file", json_object_new_string(ins[i].name));
    json_object_object_add(r, "shard", shard_json(&ins[i]));
    json_object_object_get_ex(ins[i].root, "summary", &s);
    json_object *scopy = NULL;
    json_object_deep_copy(s, &scopy, NULL);
    json_object_object_add(r, "summary", scopy);
    json_object_array_add(reports, r);
  }
  json_object *summary = json_object_new_object();
  for (size_t f = 0; f < NSUM; f++)
    if (f < SUM_OPTIONAL_FROM || sum[f])
      json_object_object_add(summary, SUMMARY_FIELDS[f],
                             json_object_new_uint64(sum[f]));
  json_object_object_add(summary, "elapsed_s", json_object_new_double(elapsed));
  json_object_object_add(summary, "reports", json_object_new_uint64(nin));
  json_object_object_add(root, "summary", summary);
  json_object_object_add(root, "reports", reports);

  /* Shards: all of one count N? Then which are missing. */
  bool all_sharded = true;
  for (size_t i = 0; i < nin; i++)
    if (!ins[i].has_shard || ins[i].shard_n != ins[0].shard_n)
      all_sharded = false;
  if (all_sharded) {
    uint64_t n = ins[0].shard_n;
    json_object *shards = json_object_new_object(), *missing =
                                                        json_object_new_array();
    char list[256] = "";
    size_t nmissing = 0;
    /* N may be huge; only a count this size is worth listing. */
    if (n <= 1000000) {
      unsigned char *seen = calloc(n, 1);
      for (size_t i = 0; seen && i < nin; i++)
        seen[ins[i].shard_k] = 1;
      for (uint64_t k = 0; seen && k < n; k++)
        if (!seen[k]) {
          json_object_array_add(missing, json_object_new_uint64(k));
          if (nmissing++ < 20)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%llu",
                     nmissing > 1 ? ", " : "", (unsigned long long)k);
        }
      free(seen);
    }
    json_object_object_add(shards, "count", json_object_new_uint64(n));
    json_object_object_add(shards, "missing", missing);
    json_object_object_add(root, "shards", shards);
    if (nmissing)
      cli_error("report merge: warning: %zu of the %llu shards missing: "
                "%s%s",
                nmissing, (unsigned long long)n, list,
                nmissing > 20 ? ", ..." : "");
  }

  bool has_succeeded = false, dummy = false;
  json_object *fails = concat(ins, nin, "failures", &dummy);
  json_object *canc = concat(ins, nin, "cancelled", &dummy);
  json_object *succ = concat(ins, nin, "succeeded", &has_succeeded);
  if (!fails || !canc || !succ) {
    json_object_put(fails);
    json_object_put(canc);
    json_object_put(succ);
    cli_error("out of memory");
    status = CLI_EXIT_FAILED;
    goto done;
  }
  json_object_object_add(root, "failures", fails);
  json_object_object_add(root, "cancelled", canc);
  if (has_succeeded)
    json_object_object_add(root, "succeeded", succ);
  else
    json_object_put(succ);

  /* Every listed item by its identity. */
  static const char *const lists[] = {"succeeded", "failures", "cancelled"};
  static const char *const statuses[] = {"succeeded", "failed", "cancelled"};
  for (size_t i = 0; i < nin; i++)
    for (int l = 0; l < 3; l++) {
      json_object *arr;
      if (!json_object_object_get_ex(ins[i].root, lists[l], &arr))
        continue;
      size_t n = json_object_array_length(arr);
      for (size_t j = 0; j < n; j++) {
        json_object *it = json_object_array_get_idx(arr, j);
        size_t klen = 0;
        const char *k = identity(it, &klen);
        uint64_t idx = 0;
        get_uint(it, "index", &idx);
        if (k && !table_add(&t, k, klen, i, statuses[l], idx)) {
          cli_error("out of memory");
          status = CLI_EXIT_FAILED;
          goto done;
        }
      }
    }
  json_object *conflicts = json_object_new_array();
  shard_conflicts(ins, nin, conflicts);
  for (size_t i = 0; i < t.norder; i++) {
    slot *s = &t.slots[t.order[i]];
    if (s->count < 2)
      continue;
    bool ok = false, bad = false;
    for (size_t o = s->first; o != SIZE_MAX; o = t.occ[o].next) {
      ok |= strcmp(t.occ[o].status, "succeeded") == 0;
      bad |= strcmp(t.occ[o].status, "failed") == 0;
    }
    json_object *c =
        conflict_new(ok && bad ? "succeeded_and_failed" : "duplicate", s->key);
    for (size_t o = s->first; o != SIZE_MAX; o = t.occ[o].next)
      conflict_entry(c, ins[t.occ[o].input].name, t.occ[o].status,
                     &t.occ[o].index);
    json_object_array_add(conflicts, c);
  }
  size_t nconf = json_object_array_length(conflicts);
  json_object_object_add(root, "conflicts", conflicts);

  char err[1024];
  if (write_json(root, out_path, err, sizeof err) != 0) {
    cli_error("report merge: %s", err);
    status = CLI_EXIT_FAILED;
    goto done;
  }
  if (!quiet)
    cli_error("merged %zu report%s: %llu submitted, %llu succeeded, %llu "
              "failed, %llu cancelled, %llu retries%s%s",
              nin, nin == 1 ? "" : "s", (unsigned long long)sum[0],
              (unsigned long long)sum[1], (unsigned long long)sum[2],
              (unsigned long long)sum[3], (unsigned long long)sum[4],
              out_path ? " -> " : "", out_path ? out_path : "");
  if (nconf) {
    cli_error("report merge: %zu conflict%s%s:", nconf, nconf == 1 ? "" : "s",
              allow ? " (allowed)" : "");
    for (size_t i = 0; i < nconf && i < MERGE_MAX_SHOWN; i++) {
      json_object *c = json_object_array_get_idx(conflicts, i), *v, *es;
      json_object_object_get_ex(c, "kind", &v);
      fprintf(stderr, "  %s: ", json_object_get_string(v));
      json_object_object_get_ex(c, "key", &v);
      fprintf(stderr, "%s:", json_object_get_string(v));
      json_object_object_get_ex(c, "entries", &es);
      for (size_t e = 0; e < json_object_array_length(es); e++) {
        json_object *en = json_object_array_get_idx(es, e), *r, *st;
        json_object_object_get_ex(en, "report", &r);
        fprintf(stderr, "%s %s", e ? "," : "", json_object_get_string(r));
        if (json_object_object_get_ex(en, "status", &st))
          fprintf(stderr, " (%s)", json_object_get_string(st));
      }
      fputc('\n', stderr);
    }
    if (nconf > MERGE_MAX_SHOWN)
      fprintf(stderr, "  ... and %zu more (see \"conflicts\")\n",
              nconf - MERGE_MAX_SHOWN);
    if (!allow)
      status = CLI_EXIT_FAILED;
  }

done:
  json_object_put(root);
  for (size_t i = 0; i < nin; i++)
    json_object_put(ins[i].root);
  free(ins);
  table_free(&t);
  return status;
}

int cli_report_main(int argc, char **argv) {
  if (argc < 2)
    return cli_usage_error("report", "a verb is required: merge");
  const char *verb = argv[1];
  if (strcmp(verb, "-h") == 0 || strcmp(verb, "--help") == 0) {
    cli_report_help(stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(verb, "merge") == 0)
    return merge_main(argc - 1, argv + 1);
  return cli_usage_error("report", "unknown verb '%s' (expected: merge)",
                         verb);
}
