#include "internal.h"
#include "retry.h"

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
