/* retry.c - where a retry is decided (retry.h): classification, limits,
 * the shared budget and its costs, the backoff and Retry-After waits.
 * Pure but for the budget's atomic counter: the caller passes the random
 * number for jitter, so that the tests can pin it. */
#include "internal.h"
#include "retry.h"

#include <float.h>
#include <math.h>

bool bk_http_status_transient(int status) {
  switch (status) {
  case 408: /* request timeout */
  case 429: /* too many requests */
  case 500:
  case 502:
  case 503:
  case 504:
    return true;
  default:
    return false;
  }
}

int bk_azure_error_transient(const char *code) {
  static const char *const transient[] = {"ServerBusy", "OperationTimedOut",
                                          "InternalError"};
  static const char *const permanent[] = {
      "AuthenticationFailed", "AuthorizationFailure",
      "AuthorizationPermissionMismatch"};
  if (!code || !*code)
    return -1;
  for (size_t i = 0; i < sizeof transient / sizeof *transient; i++)
    if (strcmp(code, transient[i]) == 0)
      return 1;
  for (size_t i = 0; i < sizeof permanent / sizeof *permanent; i++)
    if (strcmp(code, permanent[i]) == 0)
      return 0;
  return -1;
}

bk_verdict bk_classify(const bk_outcome *o, bulkup_error_kind *kind) {
  /* Our own aborts first: libcurl reports them all as
   * CURLE_ABORTED_BY_CALLBACK (or a read error). */
  switch (o->abort) {
  case BK_ABORT_CANCEL:
    *kind = BULKUP_ERROR_CANCELLED;
    return BK_FAIL;
  case BK_ABORT_TIMEOUT_WRITE:
    *kind = BULKUP_ERROR_TIMEOUT_WRITE;
    return BK_RETRY;
  case BK_ABORT_TIMEOUT_READ:
    *kind = BULKUP_ERROR_TIMEOUT_READ;
    return BK_RETRY;
  case BK_ABORT_FILE:
    *kind = BULKUP_ERROR_FILE;
    return BK_FAIL;
  case BK_ABORT_FILE_CHANGED:
    *kind = BULKUP_ERROR_FILE_CHANGED;
    return BK_FAIL;
  case BK_ABORT_CONN_LOST:
    *kind = BULKUP_ERROR_SEND;
    return BK_RETRY;
  case BK_ABORT_NONE:
    break;
  }

  if (o->curl == CURLE_OK) {
    if (o->http_status >= 200 && o->http_status < 300) {
      *kind = BULKUP_ERROR_NONE;
      return BK_SUCCESS;
    }
    *kind = BULKUP_ERROR_HTTP_STATUS;
    /* Azure says why in x-ms-error-code: a busy server is worth another
     * try (on a 5xx, as Azure sends them), credentials that do not
     * authorise the request are not; a 403 never is. */
    int az = o->http_status == 403 ? 0
                                   : bk_azure_error_transient(o->error_code);
    if (az == 0 || (az == 1 && o->http_status >= 500))
      return az ? BK_RETRY : BK_FAIL;
    return bk_http_status_transient(o->http_status) ? BK_RETRY : BK_FAIL;
  }

  switch (o->curl) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    *kind = BULKUP_ERROR_DNS;
    return BK_RETRY_CONNECT;
  case CURLE_COULDNT_CONNECT:
    *kind = BULKUP_ERROR_CONNECT;
    return BK_RETRY_CONNECT;
  case CURLE_OPERATION_TIMEDOUT:
    /* Only the connect timeout is libcurl's; the others are ours. */
    *kind = o->connected ? BULKUP_ERROR_TIMEOUT_READ
                         : BULKUP_ERROR_TIMEOUT_CONNECT;
    return o->connected ? BK_RETRY : BK_RETRY_CONNECT;
  case CURLE_SSL_CONNECT_ERROR:
    /* A handshake cut short is transient; a certificate that does not
     * verify is not (below). */
    *kind = BULKUP_ERROR_TLS;
    return BK_RETRY_CONNECT;
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CRL_BADFILE:
    *kind = BULKUP_ERROR_TLS;
    return BK_FAIL;
  case CURLE_SEND_ERROR:
    *kind = BULKUP_ERROR_SEND;
    return o->connected ? BK_RETRY : BK_RETRY_CONNECT;
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
  case CURLE_HTTP3:
    *kind = BULKUP_ERROR_RECV;
    return o->connected ? BK_RETRY : BK_RETRY_CONNECT;
  case CURLE_SEND_FAIL_REWIND:
    /* The caller replaces the easy handle before retrying (curl issue
     * 18206: the failure survives a reset). */
    *kind = BULKUP_ERROR_SEND;
    return BK_RETRY;
  case CURLE_READ_ERROR:
    *kind = BULKUP_ERROR_FILE;
    return BK_FAIL;
  case CURLE_UNSUPPORTED_PROTOCOL:
    /* Before a connection: a scheme we refuse. After one: the server's
     * answer was not HTTP (libcurl says "HTTP/0.9 not allowed"). */
    *kind = o->connected ? BULKUP_ERROR_PROTOCOL : BULKUP_ERROR_URL;
    return BK_FAIL;
  case CURLE_URL_MALFORMAT:
    *kind = BULKUP_ERROR_URL;
    return BK_FAIL;
  case CURLE_OUT_OF_MEMORY:
    *kind = BULKUP_ERROR_NOMEM;
    return BK_FAIL;
  case CURLE_WEIRD_SERVER_REPLY:
  case CURLE_BAD_CONTENT_ENCODING:
  case CURLE_TOO_MANY_REDIRECTS:
    *kind = BULKUP_ERROR_PROTOCOL;
    return BK_FAIL;
  case CURLE_ABORTED_BY_CALLBACK:
    /* Without a reason of ours, a cancel is the only explanation. */
    *kind = BULKUP_ERROR_CANCELLED;
    return BK_FAIL;
  default:
    *kind = BULKUP_ERROR_INTERNAL;
    return BK_FAIL;
  }
}

void bk_budget_init(bk_budget *b, bool enabled, unsigned int tokens) {
  b->enabled = enabled;
  b->max = tokens;
  atomic_init(&b->tokens, tokens);
  b->gate = false;
  b->no_progress_limit = 0;
  b->refill = 0;
  atomic_init(&b->last_success, 0.0);
  atomic_init(&b->streaking, 0);
  atomic_init(&b->open, false);
  bk_mutex_init(&b->lock);
  b->probing = false;
  b->next_probe = 0;
  b->progress_since = 0;
  b->outages = 0;
  b->probes = 0;
}

void bk_budget_destroy(bk_budget *b) { bk_mutex_destroy(&b->lock); }

void bk_budget_set_outage(bk_budget *b, double no_progress_limit,
                          unsigned int refill, double now) {
  b->gate = true;
  b->no_progress_limit = no_progress_limit > 0 ? no_progress_limit : 0;
  b->refill = refill;
  b->progress_since = now;
}

void bk_budget_outage_stats(bk_budget *b, uint64_t *outages,
                            uint64_t *probes) {
  bk_mutex_lock(&b->lock);
  *outages = b->outages;
  *probes = b->probes;
  bk_mutex_unlock(&b->lock);
}

bool bk_budget_take(bk_budget *b, unsigned int cost) {
  if (!b->enabled)
    return true;
  unsigned int cur = atomic_load(&b->tokens);
  while (cur >= cost) {
    if (atomic_compare_exchange_weak(&b->tokens, &cur, cur - cost))
      return true;
  }
  return false;
}

void bk_budget_refund(bk_budget *b, unsigned int amount) {
  if (!b->enabled || amount == 0)
    return;
  unsigned int cur = atomic_load(&b->tokens);
  for (;;) {
    unsigned int next = cur + amount > b->max ? b->max : cur + amount;
    if (next == cur ||
        atomic_compare_exchange_weak(&b->tokens, &cur, next))
      return;
  }
}

/* --- backoff ------------------------------------------------------------- */

/* 2^2100 times the smallest positive double (2^-1074) is still above
 * DBL_MAX (~2^1024), so clamping the exponent here changes no finite
 * result: any positive factor already overflows to +inf. It keeps the
 * unsigned-to-int conversion for ldexp in range. */
#define BK_BACKOFF_MAX_EXP 2100u

double bulkup_backoff_delay(double backoff_factor, unsigned int retry,
                            double max_delay) {
  /* !(x > 0) also catches NaN. */
  if (retry == 0 || !(backoff_factor > 0.0))
    return 0.0;
  unsigned int e = retry - 1;
  if (e > BK_BACKOFF_MAX_EXP)
    e = BK_BACKOFF_MAX_EXP;
  double d = ldexp(backoff_factor, (int)e); /* +inf on overflow, no UB */
  if (max_delay > 0.0 && d > max_delay)
    d = max_delay;
  return d;
}

double bulkup_backoff_full_jitter(double backoff_factor, unsigned int retry,
                                  double max_delay, double u) {
  if (!(u > 0.0)) /* negative, zero or NaN */
    return 0.0;   /* also avoids 0 * inf = NaN when uncapped */
  if (u > 1.0)
    u = 1.0;
  return u * bulkup_backoff_delay(backoff_factor, retry, max_delay);
}

double bulkup_retry_wait(const bulkup_upload_policy *policy, unsigned int retry,
                         double retry_after, double u) {
  if (!policy)
    return 0.0;
  const bulkup_backoff_settings *b = &policy->backoff;
  double wait =
      b->jitter ? bulkup_backoff_full_jitter(policy->backoff_factor, retry,
                                             b->max_delay, u)
                : bulkup_backoff_delay(policy->backoff_factor, retry,
                                       b->max_delay);
  /* retry_after >= 0 is false for negatives and NaN: "none sent". */
  if (retry_after >= 0.0) {
    double ra = retry_after;
    double cap = b->retry_after_max > 0.0 ? b->retry_after_max : 0.0;
    if (ra > cap)
      ra = cap;
    if (ra > wait)
      wait = ra;
  }
  return wait;
}


/* --- the decision ------------------------------------------------------- */

static bool bk_kind_is_timeout(bulkup_error_kind kind) {
  return kind == BULKUP_ERROR_TIMEOUT_READ ||
         kind == BULKUP_ERROR_TIMEOUT_WRITE ||
         kind == BULKUP_ERROR_TIMEOUT_CONNECT;
}

/* Open the gate (under b->lock). */
static bool bk_gate_open_locked(bk_budget *b, double now) {
  if (atomic_load(&b->open))
    return false;
  atomic_store(&b->open, true);
  b->outages++;
  if (b->next_probe < now)
    b->next_probe = now;
  return true;
}

/* The wait until a held item next asks to go. */
static double bk_gate_wait_locked(const bk_budget *b, double now) {
  double w = b->next_probe - now;
  if (b->probing || w < 0.01)
    w = BK_PROBE_INTERVAL / 2;
  return w;
}

bk_retry_decision bk_retry_decide_at(const bulkup_upload_policy *p,
                                     bk_budget *budget, bk_retry_state *st,
                                     bk_verdict v, bulkup_error_kind kind,
                                     int http_status, double retry_after,
                                     double u, double now) {
  bk_retry_decision d = {.retry = false, .wait = 0, .retry_no = 0,
                         .kind = kind, .budget_exhausted = false,
                         .hold = false, .outage_began = false};
  bool transient = v == BK_RETRY || v == BK_RETRY_CONNECT;
  bool gate = budget && budget->gate;
  if (gate && st->probe) {
    /* The probe failed: the item keeps its retries (the outage's fault,
     * not its own); the next probe waits. A permanent failure is the
     * item's own: it ends. */
    st->probe = false;
    bk_mutex_lock(&budget->lock);
    budget->probing = false;
    budget->next_probe = now + BK_PROBE_INTERVAL;
    if (transient && atomic_load(&budget->open)) {
      st->parked = true;
      d.hold = true;
      d.wait = bk_gate_wait_locked(budget, now);
    }
    bk_mutex_unlock(&budget->lock);
    if (d.hold || !transient)
      return d;
  }
  if (!transient)
    return d;
  if (st->streak_start == 0) {
    st->streak_start = now;
    if (gate)
      atomic_fetch_add(&budget->streaking, 1);
  }
  /* Down, as far as this item can tell: the gate is open, or the run had
   * succeeded before, but not since this item's previous failure, and
   * other items are failing too. */
  double last = gate ? atomic_load(&budget->last_success) : 0;
  double since = st->last_failure > 0 ? st->last_failure : st->streak_start;
  bool quiet = last < since;
  st->last_failure = now;
  bool down = gate && (atomic_load(&budget->open) ||
                       (last > 0 && quiet &&
                        atomic_load(&budget->streaking) >= 2));
  bool allowed = v == BK_RETRY_CONNECT
                     ? st->conn_retries < p->connection_retries
                     : st->retries < p->max_retries;
  if (!allowed) {
    if (!down)
      return d;
    bk_mutex_lock(&budget->lock);
    d.outage_began = bk_gate_open_locked(budget, now);
    d.wait = bk_gate_wait_locked(budget, now);
    bk_mutex_unlock(&budget->lock);
    st->parked = true;
    d.hold = true;
    return d;
  }
  unsigned int cost =
      bk_kind_is_timeout(kind) ? BK_TIMEOUT_RETRY_COST : BK_RETRY_COST;
  if (v == BK_RETRY_CONNECT)
    st->conn_retries++;
  else
    st->retries++;
  d.retry_no = (unsigned int)(st->conn_retries + st->retries);
  if (budget && !bk_budget_take(budget, cost)) {
    if (!gate) {
      /* Not retried after all. */
      if (v == BK_RETRY_CONNECT)
        st->conn_retries--;
      else
        st->retries--;
      d.retry_no = 0;
      d.kind = BULKUP_ERROR_RETRY_BUDGET;
      d.budget_exhausted = true;
      return d;
    }
    /* The retry is decided but waits for the budget, which failures have
     * drained faster than successes refill it: the gate opens (probes
     * only) until the next success, which puts tokens back. */
    st->owed = cost;
    d.hold = true;
    bk_mutex_lock(&budget->lock);
    d.outage_began = bk_gate_open_locked(budget, now);
    d.wait = bk_gate_wait_locked(budget, now);
    bk_mutex_unlock(&budget->lock);
    return d;
  }
  if (budget)
    st->budget_spent += cost;
  d.retry = true;
  /* Only a 429 or a 503 makes a Retry-After a request to wait. */
  double ra = (http_status == 429 || http_status == 503) ? retry_after : -1;
  d.wait = bulkup_retry_wait(p, d.retry_no, ra, u);
  if (!(d.wait > 0))
    d.wait = 0;
  return d;
}

bk_retry_decision bk_retry_decide(const bulkup_upload_policy *p,
                                  bk_budget *budget, bk_retry_state *st,
                                  bk_verdict v, bulkup_error_kind kind,
                                  int http_status, double retry_after,
                                  double u) {
  return bk_retry_decide_at(p, budget, st, v, kind, http_status, retry_after,
                            u, bk_now());
}

/* The item's run of failures is over (it succeeded, ended, or starts
 * afresh after an outage). */
static void bk_streak_end(bk_budget *b, bk_retry_state *st) {
  if (st->streak_start != 0 && b && b->gate)
    atomic_fetch_sub(&b->streaking, 1);
  st->streak_start = 0;
  st->last_failure = 0;
}

bk_admit bk_retry_admit(bk_budget *b, bk_retry_state *st, double now,
                        double *wait) {
  *wait = 0;
  if (!b || !b->gate)
    return BK_ADMIT_GO;
  if (atomic_load_explicit(&b->open, memory_order_acquire)) {
    bk_mutex_lock(&b->lock);
    if (atomic_load(&b->open)) {
      bk_admit a = BK_ADMIT_WAIT;
      if (b->no_progress_limit > 0 &&
          now - b->progress_since >= b->no_progress_limit) {
        a = BK_ADMIT_GIVE_UP;
      } else if (!b->probing && now >= b->next_probe) {
        b->probing = true;
        b->probes++;
        st->probe = true;
        a = BK_ADMIT_GO;
      } else {
        *wait = bk_gate_wait_locked(b, now);
      }
      bk_mutex_unlock(&b->lock);
      return a;
    }
    bk_mutex_unlock(&b->lock);
  }
  if (st->parked) {
    /* The outage is over: its failures do not count against the item. */
    st->parked = false;
    st->retries = 0;
    st->conn_retries = 0;
    st->owed = 0;
    bk_streak_end(b, st);
  }
  if (st->owed) {
    if (!bk_budget_take(b, st->owed)) {
      /* Still nothing to pay with: probes only, until a success. */
      bk_mutex_lock(&b->lock);
      bk_gate_open_locked(b, now);
      *wait = bk_gate_wait_locked(b, now);
      bk_mutex_unlock(&b->lock);
      return BK_ADMIT_WAIT;
    }
    st->budget_spent += st->owed;
    st->owed = 0;
  }
  return BK_ADMIT_GO;
}

void bk_retry_succeeded(bk_budget *budget, const bk_retry_state *st) {
  if (budget)
    bk_budget_refund(budget, st->budget_spent ? st->budget_spent
                                              : BK_NO_RETRY_INCREMENT);
}

bool bk_retry_succeeded_at(bk_budget *b, bk_retry_state *st, double now) {
  bk_retry_succeeded(b, st);
  if (!b || !b->gate)
    return false;
  atomic_store(&b->last_success, now);
  bk_streak_end(b, st);
  st->probe = false;
  bool ended = false;
  bk_mutex_lock(&b->lock);
  b->progress_since = now;
  if (atomic_load(&b->open)) {
    atomic_store(&b->open, false);
    b->probing = false;
    ended = true;
  }
  bk_mutex_unlock(&b->lock);
  if (ended)
    bk_budget_refund(b, b->refill);
  return ended;
}

void bk_retry_release(bk_budget *b, bk_retry_state *st, double now) {
  if (!b || !b->gate)
    return;
  bk_streak_end(b, st);
  if (!st->probe)
    return;
  st->probe = false;
  bk_mutex_lock(&b->lock);
  b->probing = false;
  if (b->next_probe < now)
    b->next_probe = now;
  bk_mutex_unlock(&b->lock);
}

double bk_retry_stalled_for(bk_budget *b, double now) {
  if (!b || !b->gate || !atomic_load(&b->open))
    return 0;
  bk_mutex_lock(&b->lock);
  double t = now - b->progress_since;
  bk_mutex_unlock(&b->lock);
  return t;
}
