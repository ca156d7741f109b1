/* engine/slot.h - one transfer slot of a worker (slot.c): what the worker
 * asks of it. */
#ifndef BULKUP_ENGINE_SLOT_H
#define BULKUP_ENGINE_SLOT_H

#include "engine/engine.h"

/* Make the slot's easy handle (s->u, s->w set). */
bulkup_err bk_slot_init(bk_slot *s);
/* Free what the slot holds (it is idle: no handle is in the multi). */
void bk_slot_cleanup(bk_slot *s);
/* Give an idle slot an item. The item may end at once (an item that
 * cannot be tried, a bad source, a cancelled run); otherwise its first
 * attempt is in the multi and the slot is RUNNING. */
void bk_slot_start(bk_slot *s, bk_item *it);
/* Give an idle slot a pending part of a multipart upload in progress
 * (parts.c) and start it: false when there is none. */
bool bk_slot_take_part(bk_slot *s);
/* The slot's attempt ended: libcurl reported it done with `result`, or
 * the worker aborted it (x.abort set). */
void bk_slot_attempt_done(bk_slot *s, CURLcode result);
/* Look at a RUNNING slot at `now`: abort it on cancel, a callback's abort
 * or a phase timeout. A WAITING slot whose time has come starts its retry
 * (or ends, if the run was cancelled). */
void bk_slot_tick(bk_slot *s, double now);
/* When the slot next needs bk_slot_tick (a phase deadline or the retry
 * time); INFINITY when only libcurl's events matter. */
double bk_slot_next(const bk_slot *s);

#endif
