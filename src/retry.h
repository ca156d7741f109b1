/* retry.h - which failures are retried, and the shared retry budget
 * (internal). */
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

/* The shared retry budget (AWS "standard" retry mode). Lock-free. */
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

#endif
