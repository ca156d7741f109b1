#include "internal.h"
#include "engine/queue.h"

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

/* Under the lock. */
static void bk_queue_unlist(bk_queue *q, bk_queue_waiter *w) {
  if (!w || !w->listed)
    return;
  for (bk_queue_waiter **pp = &q->hungry; *pp; pp = &(*pp)->next)
    if (*pp == w) {
      *pp = w->next;
      break;
    }
  w->next = NULL;
  w->listed = false;
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
  /* One item wakes at most one consumer, and only if one waits: a blocked
   * one first (it has nothing else to do), else a hungry one. */
  bk_queue_waiter *wake = NULL;
  if (q->pop_waiters) {
    bk_cond_signal(&q->not_empty);
  } else if (q->hungry) {
    wake = q->hungry;
    q->hungry = wake->next;
    wake->next = NULL;
    wake->listed = false;
  }
  bk_mutex_unlock(&q->lock);
  /* Outside the lock: the wake function (a worker's eventfd write) is a system
   * call, and the waiter stays valid as long as the queue does. */
  if (wake)
    wake->wake(wake->ctx);
  return true;
}

/* Under the lock: take the oldest item, if any. */
static void *bk_queue_take(bk_queue *q) {
  if (q->count == 0)
    return NULL;
  void *item = q->slots[q->head];
  q->slots[q->head] = NULL;
  q->head = (q->head + 1) % q->cap;
  q->count--;
  /* Producers sleep until the queue is half empty, then all refill. */
  if (q->push_waiters && q->count <= q->low_water)
    bk_cond_broadcast(&q->not_full);
  return item;
}

void *bk_queue_trypop(bk_queue *q, bk_queue_waiter *waiter, bool *closed) {
  bk_mutex_lock(&q->lock);
  bk_queue_unlist(q, waiter);
  void *item = bk_queue_take(q);
  *closed = !item && q->closed;
  if (!item && !q->closed && waiter) {
    /* Listed under the same lock that found the queue empty: a push that
     * comes after cannot miss this waiter. */
    waiter->next = q->hungry;
    q->hungry = waiter;
    waiter->listed = true;
  }
  bk_mutex_unlock(&q->lock);
  return item;
}

void *bk_queue_pop(bk_queue *q) { return bk_queue_pop_waiter(q, NULL); }

void *bk_queue_pop_waiter(bk_queue *q, bk_queue_waiter *waiter) {
  bk_mutex_lock(&q->lock);
  bk_queue_unlist(q, waiter);
  if (q->count == 0 && !q->closed) {
    q->pop_waiters++;
    while (q->count == 0 && !q->closed)
      bk_cond_wait(&q->not_empty, &q->lock);
    q->pop_waiters--;
  }
  void *item = bk_queue_take(q);
  bk_mutex_unlock(&q->lock);
  return item;
}

uint64_t bk_queue_nudges(bk_queue *q) {
  bk_mutex_lock(&q->lock);
  uint64_t n = q->nudges;
  bk_mutex_unlock(&q->lock);
  return n;
}

void *bk_queue_pop_nudgeable(bk_queue *q, bk_queue_waiter *waiter,
                             uint64_t since, bool *closed) {
  bk_mutex_lock(&q->lock);
  bk_queue_unlist(q, waiter);
  uint64_t seen = since;
  if (q->count == 0 && !q->closed) {
    q->pop_waiters++;
    while (q->count == 0 && !q->closed && q->nudges == seen)
      bk_cond_wait(&q->not_empty, &q->lock);
    q->pop_waiters--;
  }
  void *item = bk_queue_take(q);
  *closed = !item && q->closed;
  bk_mutex_unlock(&q->lock);
  return item;
}

void bk_queue_nudge(bk_queue *q) {
  bk_mutex_lock(&q->lock);
  q->nudges++;
  /* Rare (once per multipart upload): the wakes (eventfd writes) are made
   * under the lock, since a woken consumer may list itself again at once. */
  while (q->hungry) {
    bk_queue_waiter *w = q->hungry;
    q->hungry = w->next;
    w->next = NULL;
    w->listed = false;
    w->wake(w->ctx);
  }
  if (q->pop_waiters)
    bk_cond_broadcast(&q->not_empty);
  bk_mutex_unlock(&q->lock);
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
