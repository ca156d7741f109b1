/* engine/conc.h - the adaptive concurrency controller (conc.c): how many
 * transfers may be in flight now.
 *
 * The workers read the target without a lock (an atomic); everything else
 * is changed only under the uploader's `lock` (run.c and slot.c call in
 * with it held), so the controller's decisions are serialised with the
 * counters they read. The decisions are a pure function of the events
 * and the clock and CPU readings handed in, which is what the unit test
 * drives. */
#ifndef BULKUP_ENGINE_CONC_H
#define BULKUP_ENGINE_CONC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum bk_conc_phase {
  BK_CONC_SETTLE = 0, /* after a change: let the transfers started at the
                         old level end before measuring */
  BK_CONC_MEASURE     /* a measuring window is open */
} bk_conc_phase;

typedef struct bk_conc {
  bool adaptive;           /* false: target stays at max */
  unsigned int min, max, start;
  double cores;            /* CPU the client can use: min(threads, cpus) */
  atomic_uint target;      /* read by the workers without a lock */
  atomic_bool early;       /* no item has ended yet (the workers read it
                              without a lock, to tick the controller) */
  /* The rest under the uploader's lock. */
  unsigned int lo, hi;     /* the range the target took */
  bk_conc_phase phase;
  uint64_t events;         /* items ended */
  uint64_t attempts;       /* items ended + attempts pushed back */
  uint64_t mark;           /* events when the phase began */
  double t_mark;
  uint64_t bytes_mark;
  double cpu_mark;
  /* The level judged last: its target and rates. */
  bool have_prev;
  unsigned int prev_target;
  double prev_files, prev_bytes;
  bool climbing;           /* doubling, until the rate stops rising */
  unsigned int hold;       /* windows to stay before probing upwards */
  unsigned int hold_len;   /* the next hold (doubles after a failed probe) */
  uint64_t cut_at;         /* attempts at the last pushback cut */
  unsigned int cut_from;   /* the target before it */
  bool cut_ever;
  uint64_t pushbacks, grows, shrinks;
  /* The early ramp's tick window (bk_conc_tick): opened when the target's
   * transfers are all in flight. */
  bool tick_open;
  double tick_t, tick_cpu;
  /* Reads the client's CPU seconds (process CPU time); a test may set its
   * own. Called once per window. */
  double (*cpu_now)(void);
} bk_conc;

/* Start at `start` (clamped to min..max); adaptive false fixes the target
 * at max. */
void bk_conc_init(bk_conc *c, bool adaptive, unsigned int min,
                  unsigned int start, unsigned int max, double cores,
                  double now);
/* An item ended at `now`; bytes_sent is the run's body bytes so far,
 * in_flight the items still taken by workers. Returns true when the
 * target changed. */
bool bk_conc_item_done(bk_conc *c, double now, uint64_t bytes_sent,
                       uint64_t in_flight);
/* An attempt failed in a way that says the server (or the path) is
 * overloaded: 429, 5xx, a timeout, a reset. Returns true when the target
 * was cut. */
bool bk_conc_pushback(bk_conc *c, double now, uint64_t bytes_sent);
static inline unsigned int bk_conc_target(const bk_conc *c) {
  return atomic_load_explicit(&((bk_conc *)c)->target, memory_order_relaxed);
}
/* The early ramp, before any item has ended: called by the workers every
 * BK_CONC_TICK seconds or so while bk_conc_early() (with the uploader's
 * lock held), with the items in flight. When the target's transfers have
 * all been in flight for a tick, none has ended and the client's CPU was
 * mostly idle, the round trip is the bound: the target grows by up to x4
 * at once (by how idle the CPU was), without waiting a round trip for a
 * window. Returns whether the target changed. */
#define BK_CONC_TICK 0.01
bool bk_conc_tick(bk_conc *c, double now, uint64_t in_flight);
static inline bool bk_conc_early(const bk_conc *c) {
  return atomic_load_explicit(&((bk_conc *)c)->early, memory_order_relaxed);
}
/* The process's CPU seconds (user + system). */
double bk_conc_process_cpu(void);

#endif
