/* queue.h - a bounded, lock-protected FIFO of pointers (internal).
 *
 * Producers block in bk_queue_push while it is full; consumers block in
 * bk_queue_pop while it is empty. Closing wakes everybody: pushes fail,
 * pops drain what is left and then return NULL. */
#ifndef BULKUP_QUEUE_H
#define BULKUP_QUEUE_H

#include "internal.h"

typedef struct bk_queue {
  pthread_mutex_t lock;
  pthread_cond_t not_empty;
  pthread_cond_t not_full;
  void **slots;
  size_t cap, head, count;
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
