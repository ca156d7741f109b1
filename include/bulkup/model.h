/*
 * bulkup/model.h - helpers over model configurations, and a small ordered
 * set of strings they return.
 */
#ifndef BULKUP_MODEL_H
#define BULKUP_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An ordered set of distinct strings (insertion order). Opaque. */
typedef struct bulkup_string_set bulkup_string_set;

/* Number of strings in the set; 0 for NULL. */
BULKUP_EXTERN size_t bulkup_string_set_count(const bulkup_string_set *set);

/* The i-th string in insertion order, or NULL when i is out of range. The
 * pointer is owned by the set and valid until bulkup_string_set_free. */
BULKUP_EXTERN const char *bulkup_string_set_get(const bulkup_string_set *set,
                                                size_t i);

/* Whether the set holds `s` (byte-wise equal). */
BULKUP_EXTERN bool bulkup_string_set_contains(const bulkup_string_set *set,
                                              const char *s);

/* Free the set and its strings. NULL does nothing. */
BULKUP_EXTERN void bulkup_string_set_free(bulkup_string_set *set);

/*
 * bulkup_get_all_model_iteration_uids - from a JSON array of model
 * configurations (objects with "model_uid", "title", "description",
 * "feature_node_hashes", "model" and "model_iteration_uids": [string]),
 * the set of every model iteration uid across them, each once, in the
 * order first seen. The SDK's get_all_model_iteration_uids().
 *
 * json:  the text (need not be NUL-terminated); len its length in bytes.
 * out:   receives a new set, owned by the caller (bulkup_string_set_free).
 *
 * Returns BULKUP_OK; BULKUP_EINVAL for NULL arguments; BULKUP_EPARSE for
 * text that is not JSON, or a wrong shape, with bulkup_last_error_message()
 * saying which element and which field ("element 2: model_iteration_uids
 * must be an array of strings"); BULKUP_ENOMEM. On error *out is NULL.
 * The top level must be an array. Only model_iteration_uids is required of
 * each element; other fields are not checked. A uid containing a NUL
 * character (\u0000) is an error, so that two different uids can never
 * merge as C strings. Thread-safe.
 */
BULKUP_EXTERN bulkup_err
bulkup_get_all_model_iteration_uids(bulkup_string_set **out, const char *json,
                                    size_t len);

#ifdef __cplusplus
}
#endif
#endif /* BULKUP_MODEL_H */
