/* engine/queue.h - a bounded, lock-protected FIFO of pointers (internal).
 *
 * Producers block in bk_queue_push while it is full; consumers block in
 * bk_queue_pop while it is empty. Closing wakes everybody: pushes fail,
 * pops drain what is left and then return NULL.
 *
 * A consumer that is busy with other work (a worker whose other transfer
 * slots are running) must not block on the queue: it polls it with
 * bk_queue_trypop and, finding it empty, leaves a waiter behind. The next
 * push takes one waiter off the list and calls its wake function (outside
 * the lock), which for a worker is a write to the eventfd its loop polls:
 * the worker learns of the item at once, without polling the queue.
 *
 * Wake-ups are the cost that matters (a futex call and a context switch
 * each): a full queue wakes its blocked producer only once it has drained
 * to half, so the producer refills it in one go instead of being woken for
 * every item, and nobody is signalled when nobody waits. */
#ifndef BULKUP_QUEUE_H
#define BULKUP_QUEUE_H

#include "internal.h"

/* A consumer waiting for items without blocking on the queue. Owned by the
 * consumer; `wake` must be safe to call from any thread, and the waiter
 * must stay valid until the queue is destroyed. */
typedef struct bk_queue_waiter {
  struct bk_queue_waiter *next;
  bool listed;               /* on the queue's list (under its lock) */
  void (*wake)(void *ctx);
  void *ctx;
} bk_queue_waiter;

typedef struct bk_queue {
  pthread_mutex_t lock;
  pthread_cond_t not_empty;
  pthread_cond_t not_full;
  void **slots;
  size_t cap, head, count;
  size_t low_water;   /* wake blocked producers only at or below this */
  size_t push_waiters;
  size_t pop_waiters;
  bk_queue_waiter *hungry; /* consumers to wake on push (LIFO) */
  bool closed;
  uint64_t nudges;         /* bk_queue_nudge calls */
} bk_queue;

bulkup_err bk_queue_init(bk_queue *q, size_t capacity);
void bk_queue_destroy(bk_queue *q);
/* false if the queue was closed (the item was not taken). */
bool bk_queue_push(bk_queue *q, void *item);
/* The oldest item, or NULL once the queue is closed and empty. */
void *bk_queue_pop(bk_queue *q);
/* The oldest item without blocking. NULL when there is none: *closed then
 * says whether the queue is closed (and so empty for good); if it is not,
 * `waiter` (may be NULL) is listed to be woken by the next push. Taking an
 * item, or calling bk_queue_pop_waiter, takes the waiter off the list. */
void *bk_queue_trypop(bk_queue *q, bk_queue_waiter *waiter, bool *closed);
/* bk_queue_pop for a consumer that may have a waiter listed: unlists it
 * first, so that a push never wakes a consumer that is blocked here
 * anyway (the condition variable wakes it) instead of a hungry one. */
void *bk_queue_pop_waiter(bk_queue *q, bk_queue_waiter *waiter);
void bk_queue_close(bk_queue *q);
/* Work other than items came up (a multipart upload's parts): every
 * consumer blocked in bk_queue_pop_nudgeable returns, and every listed
 * waiter is woken. */
void bk_queue_nudge(bk_queue *q);
/* The nudges so far. */
uint64_t bk_queue_nudges(bk_queue *q);
/* bk_queue_pop_waiter that also returns NULL when the nudges are no longer
 * `since`; *closed says whether the queue is closed and empty (for
 * good). */
void *bk_queue_pop_nudgeable(bk_queue *q, bk_queue_waiter *waiter,
                             uint64_t since, bool *closed);
size_t bk_queue_length(bk_queue *q);

#endif
