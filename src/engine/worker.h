/* engine/worker.h - a worker thread (worker.c): what the uploader asks of
 * it. */
#ifndef BULKUP_ENGINE_WORKER_H
#define BULKUP_ENGINE_WORKER_H

#include "engine/engine.h"

/* Set the worker up: `nslots` slots with their handles and one multi
 * handle. On failure, what was made is freed by bk_worker_cleanup. */
bulkup_err bk_worker_init(bk_worker *w, struct bulkup_uploader *u,
                          unsigned int id, unsigned int nslots);
/* Start its thread. */
bulkup_err bk_worker_start(bk_worker *w);
/* Wait for its thread to end (it ends once the queue is closed and
 * drained and its slots are idle). */
void bk_worker_join(bk_worker *w);
/* Wake its loop now (a cancel): thread-safe. */
void bk_worker_wake(bk_worker *w);
/* Free its handles (the thread has ended, or never started). */
void bk_worker_cleanup(bk_worker *w);

#endif
