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
  /* The response's x-ms-error-code (Azure), "" or NULL when none. */
  const char *error_code;
} bk_outcome;

/* The verdict for an attempt, and the error kind to record. */
bk_verdict bk_classify(const bk_outcome *o, bulkup_error_kind *kind);

/* 408, 429, 500, 502, 503, 504. */
bool bk_http_status_transient(int status);

/* What an Azure x-ms-error-code says of a failed request: 1 transient
 * (ServerBusy, OperationTimedOut, InternalError), 0 permanent
 * (AuthenticationFailed, AuthorizationFailure,
 * AuthorizationPermissionMismatch), -1 the code says nothing (unknown,
 * empty or NULL: the status decides). bk_classify applies it; a 403 stays
 * permanent whatever the code. */
int bk_azure_error_transient(const char *code);

/* ---- the shared retry budget (AWS "standard" retry mode) and the outage
 * gate ----------------------------------------------------------------
 *
 * The budget is a token bucket: a retry takes tokens, a success gives
 * some back. Lock-free.
 *
 * The outage gate (engine only: bk_budget_set_outage) is what happens when
 * the budget runs dry, or the retries of an item run out while other
 * items are failing too and nothing succeeds (though something had
 * before): the run is taken to be in an outage. (A lone item that keeps
 * failing while the others succeed, or after they are done, fails on its
 * own, as does everything in a run that never succeeded once, unless the
 * budget runs dry.) Nothing then fails for
 * it; instead the gate opens, and while it is open one request at a time,
 * at most every BK_PROBE_INTERVAL seconds, goes out as a probe (the item
 * that sends it keeps its retries: the outage is not its fault). Every
 * other item waits ("holds"). The first success closes the gate, puts
 * enough tokens back for every transfer to retry once, and the held items
 * go on with fresh retry allowances. If nothing succeeds for
 * no_progress_limit seconds while the gate is open, the run gives up: each
 * held item, and each item not yet tried, ends as
 * BULKUP_ERROR_RETRY_BUDGET. The gate's state is under its mutex, but for
 * `open`, which the fast path reads. */
typedef struct bk_budget {
  bool enabled;
  unsigned int max;
  atomic_uint tokens;
  /* the outage gate (off unless bk_budget_set_outage was called) */
  bool gate;
  double no_progress_limit;  /* seconds; 0: never give up */
  unsigned int refill;       /* tokens put back when an outage ends */
  _Atomic double last_success; /* monotonic; 0: none yet */
  atomic_uint streaking;     /* items in a run of failures now */
  atomic_bool open;
  pthread_mutex_t lock;      /* the fields below */
  bool probing;              /* a probe is under way */
  double next_probe;         /* the next probe, not before */
  double progress_since;     /* the run's start, or its last success */
  uint64_t outages;          /* times the gate opened */
  uint64_t probes;           /* probes sent */
} bk_budget;

/* While the gate is open: one probe at a time, at most this often. */
#define BK_PROBE_INTERVAL 0.5
#define BK_RETRY_COST 5
#define BK_TIMEOUT_RETRY_COST 10
#define BK_NO_RETRY_INCREMENT 1

void bk_budget_init(bk_budget *b, bool enabled, unsigned int tokens);
void bk_budget_destroy(bk_budget *b);
/* Turn the outage gate on (the run starts at `now`). */
void bk_budget_set_outage(bk_budget *b, double no_progress_limit,
                          unsigned int refill, double now);
/* The gate's counters (tests, logs). */
void bk_budget_outage_stats(bk_budget *b, uint64_t *outages, uint64_t *probes);
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
  /* The outage gate's part (engine only; zero for the API client): */
  unsigned int owed;         /* a decided retry's cost, not yet paid */
  double streak_start;       /* when this run of failures began; 0: none */
  double last_failure;       /* when its latest failure was decided */
  bool parked;               /* held for an outage: the retries start afresh
                                when it ends */
  bool probe;                /* the attempt under way is the gate's probe */
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
  bool budget_exhausted;     /* without the gate: why it was not retried */
  /* With the gate: neither retried nor failed yet: ask bk_retry_admit
   * again after `wait` (the budget owes the retry, or an outage holds the
   * item). */
  bool hold;
  bool outage_began;         /* this decision opened the gate */
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

/* bk_retry_decide at the monotonic time `now` (bk_retry_decide reads the
 * clock). With the budget's gate on:
 *  - the attempt was the gate's probe and failed transiently: hold (the
 *    item's counters do not move), the next probe not before
 *    BK_PROBE_INTERVAL;
 *  - the limits are spent while the gate is open, or while other items
 *    are failing too and nothing has succeeded since this item's previous
 *    failure (though something had before): hold (parked), and the gate
 *    opens;
 *  - the budget cannot pay: hold, owing the cost, and the gate opens
 *    (until the next success puts tokens back).
 * Without the gate, a budget that cannot pay ends the request
 * (BULKUP_ERROR_RETRY_BUDGET), and spent limits end it with its kind. */
bk_retry_decision bk_retry_decide_at(const bulkup_upload_policy *policy,
                                     bk_budget *budget, bk_retry_state *st,
                                     bk_verdict v, bulkup_error_kind kind,
                                     int http_status, double retry_after,
                                     double u, double now);

typedef enum bk_admit {
  BK_ADMIT_GO,      /* send the attempt now */
  BK_ADMIT_WAIT,    /* ask again after *wait seconds */
  BK_ADMIT_GIVE_UP  /* the no-progress limit has passed: end the item
                       (BULKUP_ERROR_RETRY_BUDGET) */
} bk_admit;

/* Before every attempt that does not follow a success of the same item
 * (its first, and each retry after its wait): may it go? With the gate
 * closed it goes (paying what it owes: if the budget still cannot, it
 * waits). With the gate open only the probe goes. Without a budget or a
 * gate: always BK_ADMIT_GO. */
bk_admit bk_retry_admit(bk_budget *budget, bk_retry_state *st, double now,
                        double *wait);

/* The request succeeded: the budget gets back what it paid for its
 * retries, or BK_NO_RETRY_INCREMENT when it needed none; with the gate,
 * the run's last success is now, and an open gate closes (true: an outage
 * ended). */
void bk_retry_succeeded(bk_budget *budget, const bk_retry_state *st);
bool bk_retry_succeeded_at(bk_budget *budget, bk_retry_state *st, double now);
/* The request ends (any way): if its attempt was the probe, the gate may
 * send another. Idempotent. */
void bk_retry_release(bk_budget *budget, bk_retry_state *st, double now);
/* How long nothing has succeeded, as the gate counts it (0 with the gate
 * closed). */
double bk_retry_stalled_for(bk_budget *budget, double now);

#endif
