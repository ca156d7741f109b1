#include "internal.h"
#include "queue.h"

bulkup_err bk_queue_init(bk_queue *q, size_t capacity) {
  memset(q, 0, sizeof *q);
  if (capacity == 0)
    return bk_error(BULKUP_EINVAL, "queue capacity must be > 0");
  q->slots = bk_calloc(capacity, sizeof(void *));
  if (!q->slots)
    return bk_error(BULKUP_ENOMEM, "out of memory for the queue");
  q->cap = capacity;
  q->low_water = capacity / 2;
  bk_mutex_init(&q->lock);
  bk_cond_init(&q->not_empty);
  bk_cond_init(&q->not_full);
  return BULKUP_OK;
}

void bk_queue_destroy(bk_queue *q) {
  if (!q->slots)
    return;
  bk_cond_destroy(&q->not_full);
  bk_cond_destroy(&q->not_empty);
  bk_mutex_destroy(&q->lock);
  bk_free(q->slots);
  q->slots = NULL;
}

bool bk_queue_push(bk_queue *q, void *item) {
  bk_mutex_lock(&q->lock);
  if (q->count == q->cap && !q->closed) {
    q->push_waiters++;
    /* Woken at the low-water mark (or on close); the loop also covers
     * spurious wake-ups and other producers that got there first. */
    while (q->count == q->cap && !q->closed)
      bk_cond_wait(&q->not_full, &q->lock);
    q->push_waiters--;
  }
  if (q->closed) {
    bk_mutex_unlock(&q->lock);
    return false;
  }
  q->slots[(q->head + q->count) % q->cap] = item;
  q->count++;
  /* One item wakes at most one consumer, and only if one waits. */
  if (q->pop_waiters)
    bk_cond_signal(&q->not_empty);
  bk_mutex_unlock(&q->lock);
  return true;
}

void *bk_queue_pop(bk_queue *q) {
  bk_mutex_lock(&q->lock);
  if (q->count == 0 && !q->closed) {
    q->pop_waiters++;
    while (q->count == 0 && !q->closed)
      bk_cond_wait(&q->not_empty, &q->lock);
    q->pop_waiters--;
  }
  void *item = NULL;
  if (q->count > 0) {
    item = q->slots[q->head];
    q->slots[q->head] = NULL;
    q->head = (q->head + 1) % q->cap;
    q->count--;
    /* Producers sleep until the queue is half empty, then all refill. */
    if (q->push_waiters && q->count <= q->low_water)
      bk_cond_broadcast(&q->not_full);
  }
  bk_mutex_unlock(&q->lock);
  return item;
}

void bk_queue_close(bk_queue *q) {
  bk_mutex_lock(&q->lock);
  q->closed = true;
  bk_cond_broadcast(&q->not_empty);
  bk_cond_broadcast(&q->not_full);
  bk_mutex_unlock(&q->lock);
}

size_t bk_queue_length(bk_queue *q) {
  bk_mutex_lock(&q->lock);
  size_t n = q->count;
  bk_mutex_unlock(&q->lock);
  return n;
}
