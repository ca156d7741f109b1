/* queue.h - a bounded, lock-protected FIFO of pointers (internal).
 *
 * Producers block in bk_queue_push while it is full; consumers block in
 * bk_queue_pop while it is empty. Closing wakes everybody: pushes fail,
 * pops drain what is left and then return NULL.
 *
 * Wake-ups are the cost that matters (a futex call and a context switch
 * each): a full queue wakes its blocked producer only once it has drained
 * to half, so the producer refills it in one go instead of being woken for
 * every item, and nobody is signalled when nobody waits. */
#ifndef BULKUP_QUEUE_H
#define BULKUP_QUEUE_H

#include "internal.h"

typedef struct bk_queue {
  pthread_mutex_t lock;
  pthread_cond_t not_empty;
  pthread_cond_t not_full;
  void **slots;
  size_t cap, head, count;
  size_t low_water;   /* wake blocked producers only at or below this */
  size_t push_waiters;
  size_t pop_waiters;
  bool closed;
} bk_queue;

bulkup_err bk_queue_init(bk_queue *q, size_t capacity);
void bk_queue_destroy(bk_queue *q);
/* false if the queue was closed (the item was not taken). */
bool bk_queue_push(bk_queue *q, void *item);
/* The oldest item, or NULL once the queue is closed and empty. */
void *bk_queue_pop(bk_queue *q);
void bk_queue_close(bk_queue *q);
size_t bk_queue_length(bk_queue *q);

#endif
