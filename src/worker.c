/* worker.c - a worker thread: several transfer slots driven by one private
 * multi handle, event-driven.
 *
 * One thread serves up to `nslots` transfers at once: every wake-up of
 * curl_multi_poll serves all the connections that are ready, so a
 * request costs far less than a thread wake-up of its own. The loop:
 *
 *   1. fill free slots from the queue: without blocking while other slots
 *      are busy (an empty queue then lists the worker as hungry, and the
 *      next push wakes its multi with curl_multi_wakeup); blocking on the
 *      queue only when no slot has an item, since nothing else could need
 *      the thread then;
 *   2. curl_multi_perform, and hand every finished transfer to its slot;
 *   3. tick every slot: cancel, phase timeouts, retry timers;
 *   4. sleep in curl_multi_poll until libcurl has work, the earliest slot
 *      deadline or timer, a push, or a cancel (both curl_multi_wakeup);
 *      at most 1 s, as a safety net.
 *
 * The slots and the multi handle belong to this thread alone; the queue
 * and the uploader's counters have their own locks. */
#include "internal.h"
#include "uploader.h"

#include <math.h>
#include <stdio.h>

/* The queue's wake function: thread-safe (curl_multi_wakeup writes to the
 * multi's wake-up pipe; a wake before the poll makes the poll return). */
static void bk_worker_wake(void *multi) { curl_multi_wakeup(multi); }

bulkup_err bk_worker_init(bk_worker *w) {
  bulkup_err rc = bk_worker_init_curl(w);
  w->waiter.wake = bk_worker_wake;
  w->waiter.ctx = w->multi;
  return rc;
}

static bk_slot *bk_idle_slot(bk_worker *w) {
  for (unsigned i = 0; i < w->nslots; i++)
    if (w->slots[i].state == BK_SLOT_IDLE)
      return &w->slots[i];
  return NULL;
}

void *bk_worker_main(void *arg) {
  bk_worker *w = arg;
  bulkup_uploader *u = w->u;
  bool closed = false; /* the queue is closed and empty: no more jobs */
  for (;;) {
    while (w->busy < w->nslots && !closed) {
      bk_job *j;
      if (w->busy == 0) {
        j = bk_queue_pop_waiter(&u->queue, &w->waiter);
        closed = !j;
      } else {
        j = bk_queue_trypop(&u->queue, &w->waiter, &closed);
      }
      if (!j)
        break;
      bk_slot_start(bk_idle_slot(w), j);
    }
    if (w->busy == 0) {
      if (closed)
        break;
      continue;
    }

    unsigned busy_before = w->busy;
    int running = 0;
    CURLMcode mc = curl_multi_perform(w->multi, &running);
    if (mc != CURLM_OK) {
      /* The multi handle failed: every attempt in it ends (and may be
       * retried). */
      for (unsigned i = 0; i < w->nslots; i++) {
        bk_slot *s = &w->slots[i];
        if (s->state != BK_SLOT_RUNNING)
          continue;
        snprintf(s->errbuf, sizeof s->errbuf, "curl_multi_perform: %s",
                 curl_multi_strerror(mc));
        bk_slot_attempt_done(s, CURLE_OUT_OF_MEMORY);
      }
    }
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
    /* A slot came free: take the next job before sleeping. */
    if (w->busy < busy_before && !closed)
      continue;
    int ms = 0;
    if (next > now)
      ms = (int)ceil((next - now) * 1000.0);
    curl_multi_poll(w->multi, NULL, 0, ms, NULL);
  }
  return NULL;
}
