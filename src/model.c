/*
 * model.c - an ordered set of strings, and get_all_model_iteration_uids
 * over a JSON array of model configurations.
 */
#include "internal.h"

#include <limits.h>

#include <json-c/json.h>

/* --- the ordered string set ---------------------------------------------- */

/*
 * Strings live in `items` in insertion order. `slots` is an open-addressing
 * (linear probing) index over them: each slot holds item index + 1, or 0
 * when empty. The slot count is a power of two and at least twice the item
 * count, so probes stay short and always find an empty slot.
 */
struct bulkup_string_set {
  char **items;
  size_t count;
  size_t cap;
  size_t *slots;
  size_t nslots;
};

#define BK_SET_MIN_SLOTS 16u

/* FNV-1a, 64-bit. */
static uint64_t bk_hash(const char *s, size_t len) {
  uint64_t h = UINT64_C(14695981039346656037);
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= UINT64_C(1099511628211);
  }
  return h;
}

static bulkup_string_set *bk_string_set_new(void) {
  return bk_calloc(1, sizeof(bulkup_string_set));
}

void bulkup_string_set_free(bulkup_string_set *set) {
  if (!set)
    return;
  for (size_t i = 0; i < set->count; i++)
    bk_free(set->items[i]);
  bk_free(set->items);
  bk_free(set->slots);
  bk_free(set);
}

size_t bulkup_string_set_count(const bulkup_string_set *set) {
  return set ? set->count : 0;
}

const char *bulkup_string_set_get(const bulkup_string_set *set, size_t i) {
  if (!set || i >= set->count)
    return NULL;
  return set->items[i];
}

/* The slot holding `s`, or the empty slot where it would go. Requires
 * nslots > 0. */
static size_t bk_set_find(const bulkup_string_set *set, const char *s,
                          size_t len) {
  size_t mask = set->nslots - 1;
  size_t i = (size_t)bk_hash(s, len) & mask;
  for (;;) {
    size_t v = set->slots[i];
    if (v == 0)
      return i;
    const char *item = set->items[v - 1];
    if (strncmp(item, s, len) == 0 && item[len] == '\0')
      return i;
    i = (i + 1) & mask;
  }
}

bool bulkup_string_set_contains(const bulkup_string_set *set, const char *s) {
  if (!set || !s || set->nslots == 0)
    return false;
  return set->slots[bk_set_find(set, s, strlen(s))] != 0;
}

/* Rebuild the index with `nslots` slots (a power of two). */
static bulkup_err bk_set_rehash(bulkup_string_set *set, size_t nslots) {
  size_t *slots = bk_calloc(nslots, sizeof(size_t));
  if (!slots)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  size_t mask = nslots - 1;
  for (size_t k = 0; k < set->count; k++) {
    size_t i = (size_t)bk_hash(set->items[k], strlen(set->items[k])) & mask;
    while (slots[i] != 0)
      i = (i + 1) & mask;
    slots[i] = k + 1;
  }
  bk_free(set->slots);
  set->slots = slots;
  set->nslots = nslots;
  return BULKUP_OK;
}

/* Add the `len` bytes at `s` (no NUL among them) unless already present.
 * On failure the set is unchanged. */
static bulkup_err bk_set_add(bulkup_string_set *set, const char *s,
                             size_t len) {
  bulkup_err rc;
  /* Keep count + 1 <= nslots / 2 after the insertion. */
  if (set->nslots == 0 || (set->count + 1) > set->nslots / 2) {
    size_t n = set->nslots ? set->nslots : BK_SET_MIN_SLOTS / 2;
    if (n > SIZE_MAX / 2 / sizeof(size_t))
      return bk_error(BULKUP_ENOMEM, "out of memory");
    if ((rc = bk_set_rehash(set, n * 2)))
      return rc;
  }
  size_t slot = bk_set_find(set, s, len);
  if (set->slots[slot] != 0)
    return BULKUP_OK;

  if (set->count == set->cap) {
    size_t ncap = set->cap ? set->cap * 2 : 8;
    if (ncap > SIZE_MAX / sizeof(char *))
      return bk_error(BULKUP_ENOMEM, "out of memory");
    char **items = bk_realloc(set->items, ncap * sizeof(char *));
    if (!items)
      return bk_error(BULKUP_ENOMEM, "out of memory");
    set->items = items;
    set->cap = ncap;
  }
  char *copy = bk_strndup(s, len);
  if (!copy)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  set->items[set->count++] = copy;
  set->slots[slot] = set->count;
  return BULKUP_OK;
}

/* --- get_all_model_iteration_uids ---------------------------------------- */

static bool bk_json_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * Parse the whole of json[0, len) as one JSON value: strict RFC 8259
 * syntax, only whitespace after it. json-c takes an int length, so the
 * text is fed in chunks; a final "\0" tells the tokener the input ended
 * (without it a top-level number or literal stays incomplete).
 */
static bulkup_err bk_parse_json(const char *json, size_t len,
                                json_object **out) {
  *out = NULL;
  json_tokener *tok = json_tokener_new();
  if (!tok)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT);

  json_object *root = NULL;
  enum json_tokener_error jerr = json_tokener_continue;
  size_t off = 0;       /* start of the current chunk */
  size_t chunk = 0;     /* its length */
  const size_t max_chunk = (size_t)INT_MAX / 2;
  while (off < len) {
    chunk = len - off < max_chunk ? len - off : max_chunk;
    root = json_tokener_parse_ex(tok, json + off, (int)chunk);
    jerr = json_tokener_get_error(tok);
    if (root || jerr != json_tokener_continue)
      break;
    off += chunk;
  }

  size_t end; /* offset just past the value, in json */
  if (!root && jerr == json_tokener_continue) {
    /* Everything was consumed and the value is not complete yet. */
    root = json_tokener_parse_ex(tok, "", 1);
    jerr = json_tokener_get_error(tok);
    end = len;
  } else {
    end = off + json_tokener_get_parse_end(tok);
  }

  if (!root) {
    bulkup_err rc;
    if (jerr == json_tokener_success) /* the text is the JSON "null" */
      rc = bk_error(BULKUP_EPARSE,
                    "model configurations must be a JSON array, not null");
    else if (jerr == json_tokener_continue || jerr == json_tokener_error_parse_eof)
      rc = bk_error(BULKUP_EPARSE, "invalid JSON: unexpected end of text");
    else
      rc = bk_error(BULKUP_EPARSE, "invalid JSON near byte %zu: %s",
                    off + json_tokener_get_parse_end(tok),
                    json_tokener_error_desc(jerr));
    json_tokener_free(tok);
    return rc;
  }
  json_tokener_free(tok);

  for (size_t i = end; i < len; i++) {
    if (!bk_json_ws(json[i])) {
      json_object_put(root);
      return bk_error(BULKUP_EPARSE,
                      "invalid JSON: trailing characters at byte %zu", i);
    }
  }
  *out = root;
  return BULKUP_OK;
}

static bulkup_err bk_collect(bulkup_string_set *set, json_object *root) {
  if (!json_object_is_type(root, json_type_array))
    return bk_error(BULKUP_EPARSE,
                    "model configurations must be a JSON array");
  size_t n = json_object_array_length(root);
  for (size_t i = 0; i < n; i++) {
    json_object *cfg = json_object_array_get_idx(root, i);
    if (!json_object_is_type(cfg, json_type_object))
      return bk_error(BULKUP_EPARSE, "element %zu: not an object", i);
    json_object *uids = NULL;
    if (!json_object_object_get_ex(cfg, "model_iteration_uids", &uids))
      return bk_error(BULKUP_EPARSE, "element %zu: missing model_iteration_uids",
                      i);
    if (!json_object_is_type(uids, json_type_array))
      return bk_error(
          BULKUP_EPARSE,
          "element %zu: model_iteration_uids must be an array of strings", i);
    size_t m = json_object_array_length(uids);
    for (size_t j = 0; j < m; j++) {
      json_object *u = json_object_array_get_idx(uids, j);
      if (!json_object_is_type(u, json_type_string))
        return bk_error(BULKUP_EPARSE,
                        "element %zu: model_iteration_uids[%zu] is not a string",
                        i, j);
      const char *s = json_object_get_string(u);
      int slen = json_object_get_string_len(u);
      if (!s || slen < 0)
        return bk_error(BULKUP_EPARSE,
                        "element %zu: model_iteration_uids[%zu] is not a string",
                        i, j);
      /* The set holds C strings: a "\u0000" inside a uid would silently
       * truncate it (and could merge two different uids). */
      if (memchr(s, '\0', (size_t)slen))
        return bk_error(BULKUP_EPARSE,
                        "element %zu: model_iteration_uids[%zu] contains a NUL "
                        "character",
                        i, j);
      bulkup_err rc = bk_set_add(set, s, (size_t)slen);
      if (rc)
        return rc;
    }
  }
  return BULKUP_OK;
}

bulkup_err bulkup_get_all_model_iteration_uids(bulkup_string_set **out,
                                               const char *json, size_t len) {
  if (out)
    *out = NULL;
  if (!out)
    return bk_error(BULKUP_EINVAL, "out must not be NULL");
  if (!json)
    return bk_error(BULKUP_EINVAL, "json must not be NULL");

  json_object *root;
  bulkup_err rc = bk_parse_json(json, len, &root);
  if (rc)
    return rc;

  bulkup_string_set *set = bk_string_set_new();
  if (!set) {
    json_object_put(root);
    return bk_error(BULKUP_ENOMEM, "out of memory");
  }
  rc = bk_collect(set, root);
  json_object_put(root);
  if (rc) {
    bulkup_string_set_free(set);
    return rc;
  }
  *out = set;
  return BULKUP_OK;
}
