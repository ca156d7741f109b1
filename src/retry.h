/* retry.h - where a retry is decided (retry.c): which failures are
 * transient, the per-item limits, the shared retry budget and its costs,
 * the backoff and Retry-After waits. One decision function,
 * bk_retry_decide, serves the upload engine and the API client alike. */
#ifndef BULKUP_RETRY_H
#define BULKUP_RETRY_H

#include "internal.h"

#include <curl/curl.h>
#include <stdatomic.h>

/* Why our own callbacks aborted a transfer. */
typedef enum bk_abort {
  BK_ABORT_NONE = 0,
  BK_ABORT_CANCEL,
  BK_ABORT_TIMEOUT_WRITE,
  BK_ABORT_TIMEOUT_READ,
  BK_ABORT_FILE,         /* the source could not be read */
  BK_ABORT_FILE_CHANGED, /* the source ended early or grew */
  BK_ABORT_CONN_LOST     /* a resumable chunk's connection died before any
                            answer: instead of libcurl's silent re-send of
                            the whole chunk, ask the server what it kept */
} bk_abort;

typedef enum bk_verdict {
  BK_SUCCESS = 0,
  BK_RETRY_CONNECT, /* never reached the server: counts against
                       connection_retries */
  BK_RETRY,         /* transient after the request was sent: max_retries */
  BK_FAIL           /* permanent */
} bk_verdict;

/* What one attempt produced. */
typedef struct bk_outcome {
  CURLcode curl;
  int http_status;  /* 0 if no response */
  bool connected;   /* a connection was established for this attempt */
  bk_abort abort;
} bk_outcome;

/* The verdict for an attempt, and the error kind to record. */
bk_verdict bk_classify(const bk_outcome *o, bulkup_error_kind *kind);

/* 408, 429, 500, 502, 503, 504. */
bool bk_http_status_transient(int status);

/* ---- the shared retry budget (AWS "standard" retry mode). Lock-free. --- */

typedef struct bk_budget {
  bool enabled;
  unsigned int max;
  atomic_uint tokens;
} bk_budget;

#define BK_RETRY_COST 5
#define BK_TIMEOUT_RETRY_COST 10
#define BK_NO_RETRY_INCREMENT 1

void bk_budget_init(bk_budget *b, bool enabled, unsigned int tokens);
/* Take `cost` tokens; false (nothing taken) if the bucket cannot pay. */
bool bk_budget_take(bk_budget *b, unsigned int cost);
/* Give back `amount`, up to the maximum. */
void bk_budget_refund(bk_budget *b, unsigned int amount);

/* ---- the decision ------------------------------------------------------ */

/* The retries one request (an item, an API call) has taken so far. Start
 * it zeroed. A caller may zero the counters again when the request made
 * progress (a resumable upload's confirmed bytes): the limits count
 * failures in a row. */
typedef struct bk_retry_state {
  int conn_retries;          /* after BK_RETRY_CONNECT verdicts */
  int retries;               /* after BK_RETRY verdicts */
  unsigned int budget_spent; /* tokens taken from the shared budget */
} bk_retry_state;

typedef struct bk_retry_decision {
  bool retry;                /* try again, after `wait` */
  double wait;               /* seconds, >= 0 */
  unsigned int retry_no;     /* the retry's number (1 for the first), i.e.
                                conn_retries + retries after it */
  /* Not retried: the kind to record. The attempt's own, or
   * BULKUP_ERROR_RETRY_BUDGET when the limits allowed a retry but the
   * shared budget could not pay for it. */
  bulkup_error_kind kind;
  bool budget_exhausted;
} bk_retry_decision;

/* Decide after an attempt that did not succeed, whose verdict and kind
 * bk_classify gave (or the caller's own, for failures it found itself):
 *  - BK_FAIL (and BK_SUCCESS) are not retried;
 *  - BK_RETRY_CONNECT while conn_retries < policy->connection_retries,
 *    BK_RETRY while retries < policy->max_retries, are retried if the
 *    budget (NULL: none) pays BK_TIMEOUT_RETRY_COST for a timeout kind,
 *    BK_RETRY_COST otherwise;
 *  - the wait is bulkup_retry_wait for the retry's number, with the
 *    server's Retry-After (seconds, < 0 for none) honoured only on a 429
 *    or a 503; `u` in [0, 1) is the jitter's random number.
 * A retry advances *st (the counter, budget_spent). */
bk_retry_decision bk_retry_decide(const bulkup_upload_policy *policy,
                                  bk_budget *budget, bk_retry_state *st,
                                  bk_verdict v, bulkup_error_kind kind,
                                  int http_status, double retry_after,
                                  double u);

/* The request succeeded: the budget gets back what it paid for its
 * retries, or BK_NO_RETRY_INCREMENT when it needed none. */
void bk_retry_succeeded(bk_budget *budget, const bk_retry_state *st);

#endif
