/* worker.c - a worker thread: several transfer slots driven by one private
 * multi handle, event-driven, one socket at a time.
 *
 * One thread serves up to `nslots` transfers at once through libcurl's
 * multi_socket interface: libcurl tells the worker which sockets it waits
 * on (the socket callback); the worker sleeps in poll() on those sockets
 * (and its eventfd, for wake-ups) and hands libcurl each ready socket in
 * turn
 * (curl_multi_socket_action). Right after each socket, a transfer that
 * ended is handed to its slot, and a slot that came free takes its next item
 * and sends its request at once, before the next ready socket is read. A
 * server that answered several requests in one go so gets the next request
 * as soon as the first answer is read, not after all of them (as with
 * curl_multi_perform, which reads every ready connection before any new
 * request can start: client and server then take turns instead of
 * overlapping). The socket interface also hands libcurl the readiness it
 * would otherwise poll for, transfer by transfer. The loop:
 *
 *   1. fill free slots from the queue: without blocking while other slots
 *      are busy (an empty queue then lists the worker as hungry, and the
 *      next push wakes it through its eventfd); blocking on the
 *      queue only when no slot has an item, since nothing else could need
 *      the thread then;
 *   2. run libcurl's due timers (new attempts start this way; the timers
 *      are read with curl_multi_timeout);
 *   3. tick every slot: cancel, phase timeouts, retry timers;
 *   4. sleep in poll() on the sockets libcurl named and the eventfd, until
 *      one is ready, libcurl's next timer (curl_multi_timeout) or the
 *      earliest slot deadline, a push or a cancel (both write the eventfd);
 *      at most 1 s, as a safety net;
 *   5. serve the ready sockets one by one, each followed by bk_settle
 *      (finished transfers to their slots, free slots refilled, the new
 *      requests sent).
 *
 * If libcurl's socket interface ever fails (it does when an allocation
 * fails inside it), the worker ends the attempts in flight (as allocation
 * failures) and goes on with curl_multi_perform for good: libcurl 7.x can
 * leave its socket table damaged after such a failure (an entry whose
 * transfer table it freed, which the next transfer on that socket would
 * divide by), and curl_multi_perform does not use that table.
 *
 * The slots, the multi handle and the socket list belong to this thread
 * alone; the queue and the uploader's counters have their own locks. */
#include "internal.h"
#include "engine/worker.h"
#include "engine/slot.h"

#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Sockets libcurl 7.x watches per transfer, at most (its
 * MAX_SOCKSPEREASYHANDLE); the worker's socket list has room for this many
 * per slot, and a few more. */
#define BK_SOCKS_PER_SLOT 5
#define BK_SOCKS_SPARE 16

/* The queue's wake function, and a cancel's: thread-safe (a write to the
 * worker's eventfd; a wake before the poll makes the poll return). */
static void bk_worker_wake_fd(void *arg) {
  bk_worker *w = arg;
  uint64_t one = 1;
  while (write(w->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
    ;
  /* EAGAIN: the counter is full, so a wake is pending anyway. */
}

static void bk_worker_drain_wake(bk_worker *w) {
  uint64_t n;
  while (read(w->wake_fd, &n, sizeof n) < 0 && errno == EINTR)
    ;
}

/* ---- the worker's handles ---------------------------------------------- */

bulkup_err bk_worker_init(bk_worker *w, struct bulkup_uploader *u,
                          unsigned int id, unsigned int nslots) {
  w->u = u;
  w->id = id;
  w->nslots = nslots;
  w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->wake_fd < 0)
    return bk_error(errno == ENOMEM ? BULKUP_ENOMEM : BULKUP_EIO,
                    "eventfd: %s", strerror(errno));
  bk_rng_seed(&w->rng, bk_random_seed() ^ id);
  w->slots = bk_calloc(w->nslots, sizeof *w->slots);
  if (!w->slots)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  for (unsigned i = 0; i < w->nslots; i++) {
    w->slots[i].u = u;
    w->slots[i].w = w;
    w->slots[i].x.fd = -1;
  }
  w->multi = curl_multi_init();
  if (!w->multi)
    return bk_error(BULKUP_ENOMEM, "curl_multi_init failed");
  w->waiter.wake = bk_worker_wake_fd;
  w->waiter.ctx = w;
  /* An idle connection per slot, and a few more in case items alternate
   * between hosts. One transfer per connection (no HTTP/2 multiplexing):
   * each slot's phases, timeouts and faults stay its own, and the server
   * sees as many connections as there are slots. */
  curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, (long)w->nslots + 4);
  /* Unless http_version is BULKUP_HTTP_1_1, transfers to one https
   * origin that speaks HTTP/2 share connections, their streams
   * multiplexed (the handshakes saved are the gain at high concurrency
   * over TLS: bench/RESULTS.md, "HTTP/2 multiplexing"); a slot's timeouts
   * stay its own, but a connection's failure is then every stream's.
   * Plain http and HTTP/1.1 servers get a connection per transfer. */
  curl_multi_setopt(w->multi, CURLMOPT_PIPELINING,
                    u->opt.http_version == BULKUP_HTTP_1_1
                        ? (long)CURLPIPE_NOTHING
                        : (long)CURLPIPE_MULTIPLEX);
  for (unsigned i = 0; i < w->nslots; i++) {
    bulkup_err rc = bk_slot_init(&w->slots[i]);
    if (rc != BULKUP_OK)
      return rc; /* bk_worker_cleanup frees what was made */
  }
  return BULKUP_OK;
}

void bk_worker_cleanup(bk_worker *w) {
  if (!w->u)
    return; /* never set up */
  /* Workers end with every slot idle; a handle is never left in the
   * multi. */
  for (unsigned i = 0; w->slots && i < w->nslots; i++)
    bk_slot_cleanup(&w->slots[i]);
  if (w->multi)
    curl_multi_cleanup(w->multi);
  w->multi = NULL;
  bk_free(w->slots);
  w->slots = NULL;
  if (w->wake_fd >= 0)
    close(w->wake_fd);
  w->wake_fd = -1;
}

static void *bk_worker_main(void *arg);

bulkup_err bk_worker_start(bk_worker *w) {
  int prc = pthread_create(&w->thread, NULL, bk_worker_main, w);
  if (prc != 0)
    return bk_error(BULKUP_ETHREAD, "pthread_create failed: %s", strerror(prc));
  w->started = true;
  return BULKUP_OK;
}

void bk_worker_join(bk_worker *w) {
  if (w->started) {
    pthread_join(w->thread, NULL);
    w->started = false;
  }
}

void bk_worker_wake(bk_worker *w) {
  if (w->wake_fd >= 0)
    bk_worker_wake_fd(w);
}

static bk_slot *bk_idle_slot(bk_worker *w) {
  for (unsigned i = 0; i < w->nslots; i++)
    if (w->slots[i].state == BK_SLOT_IDLE)
      return &w->slots[i];
  return NULL;
}

/* ---- libcurl's socket callback and timers ------------------------------ */

static int bk_find_socket(const bk_worker *w, curl_socket_t fd) {
  for (unsigned i = 0; i < w->nsocks; i++)
    if (w->socks[i].fd == fd)
      return (int)i;
  return -1;
}

/* libcurl's socket callback: keep w->socks, the sockets libcurl waits on
 * and for what. Only bookkeeping: the poll reads the list. */
static int bk_socket_cb(CURL *e, curl_socket_t fd, int what, void *userp,
                        void *socketp) {
  BK_UNUSED(e);
  BK_UNUSED(socketp);
  bk_worker *w = userp;
  int i = bk_find_socket(w, fd);
  short events = (short)(((what & CURL_POLL_IN) ? CURL_WAIT_POLLIN : 0) |
                         ((what & CURL_POLL_OUT) ? CURL_WAIT_POLLOUT : 0));
  if (events == 0) {
    /* CURL_POLL_REMOVE, or nothing to wait for now: out of the list (a
     * socket watched for nothing would still wake the poll if it hung
     * up). */
    if (i >= 0)
      w->socks[i] = w->socks[--w->nsocks];
    return 0;
  }
  if (i < 0) {
    if (w->nsocks == w->socks_cap) {
      /* Cannot happen with libcurl's limit of sockets per transfer; if it
       * did, failing the call (the worker then ends the attempts in flight
       * and goes on without the socket interface) beats a transfer left
       * waiting on a socket nobody watches. */
      bk_log(w->u, BULKUP_LOG_ERROR, "worker %u: more than %u sockets",
             w->id, w->socks_cap);
      return -1;
    }
    i = (int)w->nsocks++;
    w->socks[i].fd = fd;
  }
  w->socks[i].events = events;
  w->socks[i].revents = 0;
  return 0;
}

/* libcurl's timers are read with curl_multi_timeout when needed rather
 * than followed through a timer callback: libcurl calls that only when its
 * earliest timer changes, and a worker that came a fraction of a
 * millisecond early would wait for a call that never comes. */
static bool bk_curl_due(bk_worker *w) {
  long ms = -1;
  return curl_multi_timeout(w->multi, &ms) == CURLM_OK && ms == 0;
}

/* ---- the loop ------------------------------------------------------------ */

/* The slots this worker may fill now: its share of the concurrency target
 * (conc.c; an atomic read), spread over the workers as the slots are. At
 * least 1, so that every worker takes part (the controller's minimum is
 * the number of workers). A lower target leaves slots that come free
 * empty; nothing in flight is stopped. */
static unsigned bk_limit(bk_worker *w) {
  const bulkup_uploader *u = w->u;
  unsigned t = bk_conc_target(&u->conc);
  unsigned n = u->nworkers;
  unsigned lim = t / n + (w->id < t % n);
  if (lim < 1)
    lim = 1;
  if (lim > w->nslots)
    lim = w->nslots;
  w->limit_seen = lim;
  return lim;
}

/* Give free slots pending parts of multipart uploads in progress (before
 * new items: a large item's parts go out side by side). */
static void bk_fill_parts(bk_worker *w) {
  bk_slot *s;
  while (w->busy < bk_limit(w) && (s = bk_idle_slot(w)) && bk_slot_take_part(s))
    ;
}

/* Give free slots their next items without blocking. */
static void bk_fill(bk_worker *w, bool *closed) {
  bk_fill_parts(w);
  while (w->busy < bk_limit(w) && !*closed) {
    bk_item *j = bk_queue_trypop(&w->u->queue, &w->waiter, closed);
    if (!j)
      break;
    bk_slot_start(bk_idle_slot(w), j);
    bk_fill_parts(w); /* its parts, if it went in parts */
  }
}

/* The multi handle failed: every attempt in it ends, as an allocation
 * failure (kind nomem: not retried, as for any other one). */
static void bk_multi_failed(bk_worker *w, const char *what, CURLMcode mc) {
  for (unsigned i = 0; i < w->nslots; i++) {
    bk_slot *s = &w->slots[i];
    if (s->state != BK_SLOT_RUNNING)
      continue;
    snprintf(s->errbuf, sizeof s->errbuf, "%s: %s", what,
             curl_multi_strerror(mc));
    bk_slot_attempt_done(s, CURLE_OUT_OF_MEMORY);
  }
}

/* Hand every transfer libcurl finished to its slot. */
static void bk_collect(bk_worker *w) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(w->multi, &left))) {
    if (m->msg != CURLMSG_DONE)
      continue;
    /* Copy out before the slot acts: removing the handle frees m. */
    CURL *e = m->easy_handle;
    CURLcode result = m->data.result;
    bk_slot *s = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&s);
    if (s && s->state == BK_SLOT_RUNNING && s->easy == e)
      bk_slot_attempt_done(s, result);
  }
}

static void bk_action(bk_worker *w, curl_socket_t fd, int mask) {
  int running = 0;
  CURLMcode mc = curl_multi_socket_action(w->multi, fd, mask, &running);
  if (mc == CURLM_OK)
    return;
  /* For good: see the top of the file. */
  bk_log(w->u, BULKUP_LOG_WARN,
         "worker %u: curl_multi_socket_action: %s; going on with "
         "curl_multi_perform", w->id, curl_multi_strerror(mc));
  w->perform = true;
  curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, NULL);
  w->nsocks = 0;
  bk_multi_failed(w, "curl_multi_socket_action", mc);
}

/* After libcurl acted on a socket: hand every finished transfer to its
 * slot, give the slots that came free their next items, and let libcurl
 * start the new attempts now (their requests go out before the worker
 * reads the next ready socket). Again while that ends transfers. */
static void bk_settle(bk_worker *w, bool *closed) {
  /* Bounded: a libcurl that kept asking to run "now" would otherwise hold
   * the thread here; the main loop then goes on (its poll does not wait).
   * The last action is always followed by a collect: a transfer can end
   * inside the action that started it (a request sent in one go and
   * answered before libcurl's first look at the socket), and left in
   * libcurl's message queue it would hold its slot with no socket or
   * timer to wake the worker for it. */
  for (unsigned round = 0; !w->perform; round++) {
    bk_collect(w);
    bk_fill(w, closed);
    if (round > w->nslots + 1 || !bk_curl_due(w))
      return;
    bk_action(w, CURL_SOCKET_TIMEOUT, 0);
  }
}

static int bk_select_mask(short revents) {
  int mask = 0;
  if (revents & POLLIN)
    mask |= CURL_CSELECT_IN;
  if (revents & POLLOUT)
    mask |= CURL_CSELECT_OUT;
  if (revents & (POLLERR | POLLHUP | POLLNVAL))
    mask |= CURL_CSELECT_ERR;
  return mask;
}

/* Wait for the sockets, at most `ms`, and serve the ready ones one at a
 * time. `ready` has room for w->socks_cap + 1.
 *
 * The worker polls libcurl's sockets itself, with its eventfd for wake-ups:
 * each descriptor once. (curl_multi_poll, given libcurl's own sockets as
 * extra descriptors, polls each of them twice: past half the open-file
 * limit poll() fails with EINVAL.) */
static void bk_wait_and_serve(bk_worker *w, int ms, struct pollfd *ready,
                              bool *closed) {
  unsigned n = w->nsocks;
  for (unsigned i = 0; i < n; i++) {
    short ev = w->socks[i].events;
    ready[i].fd = w->socks[i].fd;
    ready[i].events = (short)(((ev & CURL_WAIT_POLLIN) ? POLLIN : 0) |
                              ((ev & CURL_WAIT_POLLOUT) ? POLLOUT : 0));
    ready[i].revents = 0;
  }
  ready[n].fd = w->wake_fd;
  ready[n].events = POLLIN;
  ready[n].revents = 0;
  int rc = poll(ready, n + 1, ms);
  if (rc < 0) {
    /* EINTR, or no memory for the poll: nothing is lost, the loop comes
     * back (its waits are at most 1 s). */
    if (errno != EINTR)
      bk_log(w->u, BULKUP_LOG_WARN, "worker %u: poll: %s", w->id,
             strerror(errno));
    return;
  }
  if (ready[n].revents)
    bk_worker_drain_wake(w);
  /* A snapshot of the ready sockets: serving one changes the list. */
  unsigned k = 0;
  for (unsigned i = 0; i < n; i++)
    if (ready[i].revents)
      ready[k++] = ready[i];
  for (unsigned i = 0; i < k && !w->perform; i++) {
    /* A socket that an earlier one's transfer closed is gone from the
     * list (its number may since name a new socket: an event for that is
     * then merely early, which libcurl takes in its stride). */
    if (bk_find_socket(w, ready[i].fd) < 0)
      continue;
    bk_action(w, ready[i].fd, bk_select_mask(ready[i].revents));
    bk_settle(w, closed);
  }
}

/* The fallback: libcurl runs every transfer, and says which ended. */
static void bk_perform(bk_worker *w) {
  int running = 0;
  CURLMcode mc = curl_multi_perform(w->multi, &running);
  if (mc != CURLM_OK)
    bk_multi_failed(w, "curl_multi_perform", mc);
  bk_collect(w);
}

static void *bk_worker_main(void *arg) {
  bk_worker *w = arg;
  bulkup_uploader *u = w->u;
  bool closed = false; /* the queue is closed and empty: no more items */

  /* The socket list lives on this thread's stack, as long as the loop. */
  unsigned cap = w->nslots * BK_SOCKS_PER_SLOT + BK_SOCKS_SPARE;
  struct curl_waitfd socks[cap];
  struct pollfd ready[cap + 1];
  w->socks = socks;
  w->socks_cap = cap;
  w->nsocks = 0;
  w->perform = false;
  curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
  curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, bk_socket_cb);

  for (;;) {
    uint64_t nudges = bk_queue_nudges(&u->queue);
    bk_fill_parts(w);
    while (w->busy < bk_limit(w) && !closed) {
      bk_item *j;
      if (w->busy == 0) {
        /* Returns NULL, not closed, when parts came up since `nudges`. */
        j = bk_queue_pop_nudgeable(&u->queue, &w->waiter, nudges, &closed);
      } else {
        j = bk_queue_trypop(&u->queue, &w->waiter, &closed);
      }
      if (!j)
        break;
      bk_slot_start(bk_idle_slot(w), j);
      bk_fill_parts(w); /* its parts, if it went in parts */
    }
    if (w->busy == 0) {
      if (closed && !bk_mp_wait(u))
        break; /* no item left, nor any multipart upload to help with */
      continue;
    }

    unsigned busy_before = w->busy;
    if (w->perform) {
      bk_perform(w);
    } else if (bk_curl_due(w)) {
      /* New attempts (just added to the multi) start here, and libcurl's
       * own timeouts run. */
      bk_action(w, CURL_SOCKET_TIMEOUT, 0);
      bk_settle(w, &closed);
    }
    double now = bk_now();
    double next = now + 1.0;
    for (unsigned i = 0; i < w->nslots; i++) {
      bk_slot *s = &w->slots[i];
      if (s->state == BK_SLOT_IDLE)
        continue;
      bk_slot_tick(s, now);
      double t = bk_slot_next(s);
      if (t < next)
        next = t;
    }
    /* A slot came free: take the next item before sleeping. */
    if (w->busy < busy_before && !closed)
      continue;
    if (w->busy == 0)
      continue;
    int ms = 0;
    if (next > now)
      ms = (int)ceil((next - now) * 1000.0);
    /* Until an item ends, wake each tick for the early ramp (conc.h). */
    bool early = bk_conc_early(&u->conc);
    if (early && ms > (int)(BK_CONC_TICK * 1000))
      ms = (int)(BK_CONC_TICK * 1000);
    if (w->perform) {
      /* curl_multi_poll also returns for libcurl's own next timer. */
      struct curl_waitfd wake = {.fd = w->wake_fd, .events = CURL_WAIT_POLLIN};
      curl_multi_poll(w->multi, &wake, 1, ms, NULL);
      if (wake.revents)
        bk_worker_drain_wake(w);
    } else {
      /* No later than libcurl's own next timer. */
      long cms = -1;
      if (curl_multi_timeout(w->multi, &cms) == CURLM_OK && cms >= 0 &&
          cms < ms)
        ms = (int)cms;
      bk_wait_and_serve(w, ms, ready, &closed);
    }
    if (early && bk_run_conc_tick(u)) {
      /* The other workers take their share of the new target now, not at
       * their next event. */
      for (unsigned i = 0; i < u->nworkers; i++)
        if (&u->workers[i] != w)
          bk_worker_wake(&u->workers[i]);
    }
  }

  curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, NULL);
  w->socks = NULL;
  w->nsocks = w->socks_cap = 0;
  return NULL;
}
