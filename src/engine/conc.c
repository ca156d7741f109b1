/* engine/conc.c - adaptive concurrency: grow the number of transfers in
 * flight while the rate rises, and shrink it when it stops rising, when the
 * server pushes back, or when the client's CPU is the bound.
 *
 * Windows. After each change of the target the controller first lets as
 * many items end as the new target (SETTLE: the transfers started at the
 * old level, and the new ones' connection set-up, would blur the
 * measurement), then measures files/s and bytes/s over a window of at
 * least max(target, 8) items and BK_CONC_MIN_WINDOW seconds (or, for large
 * items, BK_CONC_MAX_WINDOW seconds with at least one item). A window in
 * which the workers were starved (fewer items in flight than the target:
 * the input is slower than the uploads, or the run is ending) says
 * nothing about concurrency and is discarded.
 *
 * The early ramp. Before any item has ended, the first window is at least
 * a round trip away, and at a WAN round trip that is where a short run
 * loses most (at 80 ms, 16 transfers for two or three round trips is a
 * second's work at 256 not done). So until the first item ends, the
 * workers tick the controller every BK_CONC_TICK (bk_conc_tick): a tick
 * in which all the target's transfers were in flight, none ended, and the
 * client's CPU was less than half busy says the transfers wait on the
 * network; the target grows at once, by 0.5 / the CPU's busy share (at
 * most x2, not below x1.25). x2 a tick, not more: a TLS handshake's CPU
 * (1.5-2 ms a connection with OpenSSL 3 here) comes a round trip or two
 * after its connection starts, so at 20 ms the first handshakes show as a
 * busy CPU at about 40 ms and stop the ramp near 128, where x4 a tick had
 * opened 256 connections by then; at 80 ms x2 reaches 256 at about 40 ms
 * against x4's 20 (about 1% of a 2,000-file run). On a LAN items end
 * within a tick and it never fires. The windows below then judge where it
 * got to as they judge any level.
 *
 * CPU headroom. Every step up is bounded by the CPU's headroom in the
 * window that decided it: at most 0.9 / the busy share of the cores (not
 * below x1.25), so that a level whose CPU is half busy is not quadrupled
 * into a CPU bound (and a LAN's probe above the start opens fewer
 * connections).
 *
 * Decisions, once per window:
 *   - climbing (from the start): the first step is x4; then x4 again
 *     while a step gives 80% of the rise it would if the round trip were
 *     the only bound, x2 while it gives at least a third of it (x2 for x4,
 *     x1.33 for x2); otherwise go back to the level before and hold there
 *     (on a LAN, where the CPU is the bound from the start, that is one
 *     step of x4, judged flat, and back: the start stays);
 *   - holding: after `hold` windows, probe x1.25; a probe that does not
 *     pay (x1.08) goes back and doubles the next hold (up to 64 windows);
 *   - CPU-bound (the process used >= 85% of the cores its threads can
 *     use): no growth; at a held level above the start, probe downwards
 *     (/1.25, not below the start) and keep the lower level if it lost
 *     less than 5% against the best rate above it (so steps down never add
 *     up to more); at the start, stay (on a LAN the client is CPU-bound at
 *     the start, and fewer transfers measured slower there);
 *   - pushback (429, 5xx, a timeout, a reset: bk_conc_pushback): halve at
 *     once, at most once per round (as many attempt ends as the target was
 *     before the cut), and hold.
 * The target stays within min..max. Only counts and the readings handed
 * in decide: a test drives it with a fake clock and fake CPU. */
#include "internal.h"
#include "engine/conc.h"

#include <time.h>

#define BK_CONC_MIN_WINDOW 0.1 /* seconds */
#define BK_CONC_MAX_WINDOW 2.0
#define BK_CONC_MIN_ITEMS 8
#define BK_CONC_CPU_BOUND 0.85
#define BK_CONC_HOLD_FIRST 4
#define BK_CONC_HOLD_MAX 64

double bk_conc_process_cpu(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
    return 0;
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static unsigned int bk_clamp(const bk_conc *c, double v) {
  if (v < c->min)
    return c->min;
  if (v > c->max)
    return c->max;
  return (unsigned int)v;
}

/* Set the target and begin settling; returns whether it changed. */
static bool bk_conc_set(bk_conc *c, unsigned int t, double now,
                        uint64_t bytes) {
  unsigned int old = bk_conc_target(c);
  c->phase = BK_CONC_SETTLE;
  c->mark = c->events;
  c->t_mark = now;
  c->bytes_mark = bytes;
  if (t == old)
    return false;
  if (t > old)
    c->grows++;
  else
    c->shrinks++;
  atomic_store_explicit(&c->target, t, memory_order_relaxed);
  if (t < c->lo)
    c->lo = t;
  if (t > c->hi)
    c->hi = t;
  return true;
}

void bk_conc_init(bk_conc *c, bool adaptive, unsigned int min,
                  unsigned int start, unsigned int max, double cores,
                  double now) {
  memset(c, 0, sizeof *c);
  c->adaptive = adaptive;
  c->max = max ? max : 1;
  c->min = min < 1 ? 1 : min > c->max ? c->max : min;
  c->start = adaptive ? bk_clamp(c, start) : c->max;
  c->cores = cores > 0 ? cores : 1;
  atomic_init(&c->target, c->start);
  atomic_init(&c->early, adaptive);
  c->lo = c->hi = c->start;
  c->climbing = true;
  c->hold_len = BK_CONC_HOLD_FIRST;
  c->t_mark = now;
  c->cpu_now = bk_conc_process_cpu;
}

/* Judge a measured window at target t. */
/* A step of up to x`f`, within the CPU's headroom (busy: the window's
 * share of the cores). */
static double bk_headroom(double f, double busy) {
  if (busy > 0 && 0.9 / busy < f)
    f = 0.9 / busy;
  return f < 1.25 ? 1.25 : f;
}

static bool bk_conc_decide(bk_conc *c, double files, double bytes_rate,
                           double busy, double now, uint64_t bytes) {
  bool cpu_bound = busy >= BK_CONC_CPU_BOUND;
  unsigned int t = bk_conc_target(c);
  if (!c->have_prev) {
    /* The first window at this level: the reference. */
    c->have_prev = true;
    c->prev_target = t;
    c->prev_files = files;
    c->prev_bytes = bytes_rate;
    if (c->climbing && !cpu_bound && t < c->max)
      return bk_conc_set(c, bk_clamp(c, (double)t * bk_headroom(4, busy)),
                         now, bytes);
    c->climbing = false;
    c->hold = c->hold_len;
    return bk_conc_set(c, t, now, bytes);
  }
  double gain = c->prev_files > 0 ? files / c->prev_files : 1.0;
  if (c->prev_bytes > 0 && bytes_rate / c->prev_bytes > gain)
    gain = bytes_rate / c->prev_bytes;
  unsigned int pt = c->prev_target;
  if (t > pt) {
    /* A step up: did it pay? */
    double step = (double)t / pt;
    double need = 1.0 + (step - 1.0) / 3.0;
    if (gain >= need) {
      c->prev_target = t;
      c->prev_files = files;
      c->prev_bytes = bytes_rate;
      if (!cpu_bound && t < c->max) {
        /* Climbing: x2, or x4 when the step paid nearly in full (the
         * round trip is all that bounds the rate: fewer steps to the
         * level that pays). */
        if (c->climbing)
          return bk_conc_set(
              c,
              bk_clamp(c, (double)t * bk_headroom(gain >= 0.8 * step ? 4 : 2,
                                                  busy)),
              now, bytes);
        c->hold_len = BK_CONC_HOLD_FIRST;
        return bk_conc_set(c, bk_clamp(c, (double)t * 1.25 + 0.5), now,
                           bytes);
      }
      c->climbing = false;
      c->hold = c->hold_len;
      return bk_conc_set(c, t, now, bytes);
    }
    /* It did not: back to where the rate was as good. */
    if (!c->climbing && c->hold_len < BK_CONC_HOLD_MAX)
      c->hold_len *= 2;
    c->climbing = false;
    c->hold = c->hold_len;
    c->have_prev = false; /* measure that level afresh */
    return bk_conc_set(c, pt, now, bytes);
  }
  if (t < pt) {
    /* A step down (the CPU was the bound): keep it if little was lost. */
    if (gain >= 0.95) {
      /* The reference stays the better rate, so that steps down cannot
       * add up to more than 5%. */
      c->prev_target = t;
      if (files > c->prev_files)
        c->prev_files = files;
      if (bytes_rate > c->prev_bytes)
        c->prev_bytes = bytes_rate;
      c->hold = c->hold_len;
      return bk_conc_set(c, t, now, bytes);
    }
    c->hold = c->hold_len;
    c->have_prev = false;
    return bk_conc_set(c, pt, now, bytes);
  }
  /* Holding at a level: refresh its rates, then maybe probe. */
  if (files > c->prev_files || !cpu_bound) {
    c->prev_files = files;
    c->prev_bytes = bytes_rate;
  }
  if (c->hold > 0) {
    c->hold--;
    return bk_conc_set(c, t, now, bytes);
  }
  if (cpu_bound && t > c->start) {
    unsigned int down = bk_clamp(c, (double)t / 1.25);
    if (down < c->start)
      down = c->start;
    c->hold = c->hold_len;
    return bk_conc_set(c, down, now, bytes);
  }
  if (!cpu_bound && t < c->max) {
    unsigned int up = bk_clamp(c, (double)t * 1.25 + 0.5);
    if (up == t && t < c->max)
      up = t + 1;
    return bk_conc_set(c, up, now, bytes);
  }
  return bk_conc_set(c, t, now, bytes);
}

bool bk_conc_item_done(bk_conc *c, double now, uint64_t bytes_sent,
                       uint64_t in_flight) {
  c->events++;
  c->attempts++;
  if (!c->adaptive)
    return false;
  if (bk_conc_early(c))
    atomic_store_explicit(&c->early, false, memory_order_relaxed);
  unsigned int t = bk_conc_target(c);
  uint64_t n = c->events - c->mark;
  double el = now - c->t_mark;
  if (c->phase == BK_CONC_SETTLE) {
    if (n < t && !(el >= BK_CONC_MAX_WINDOW && n > 0))
      return false;
    c->phase = BK_CONC_MEASURE;
    c->mark = c->events;
    c->t_mark = now;
    c->bytes_mark = bytes_sent;
    c->cpu_mark = c->cpu_now();
    return false;
  }
  uint64_t need = t < BK_CONC_MIN_ITEMS ? BK_CONC_MIN_ITEMS : t;
  if (!((n >= need && el >= BK_CONC_MIN_WINDOW) ||
        (el >= BK_CONC_MAX_WINDOW && n > 0)))
    return false;
  /* in_flight no longer counts this item: +1 is the level while it ran. */
  if (in_flight + 1 < t) {
    /* Starved: the window says nothing; measure again. */
    c->mark = c->events;
    c->t_mark = now;
    c->bytes_mark = bytes_sent;
    c->cpu_mark = c->cpu_now();
    return false;
  }
  if (el <= 0)
    el = 1e-6;
  double cpu = c->cpu_now();
  double busy = (cpu - c->cpu_mark) / (el * c->cores);
  double files = (double)n / el;
  double bytes = bytes_sent > c->bytes_mark
                     ? (double)(bytes_sent - c->bytes_mark) / el
                     : 0;
  return bk_conc_decide(c, files, bytes, busy, now, bytes_sent);
}

bool bk_conc_pushback(bk_conc *c, double now, uint64_t bytes_sent) {
  c->pushbacks++;
  c->attempts++;
  if (!c->adaptive)
    return false;
  if (bk_conc_early(c))
    atomic_store_explicit(&c->early, false, memory_order_relaxed);
  unsigned int t = bk_conc_target(c);
  /* Once per round: the transfers in flight at the last cut have ended
   * (or failed) since. */
  if (c->cut_ever && c->attempts - c->cut_at < c->cut_from)
    return false;
  c->cut_ever = true;
  c->cut_at = c->attempts;
  c->cut_from = t;
  c->climbing = false;
  c->have_prev = false;
  c->hold = c->hold_len;
  return bk_conc_set(c, bk_clamp(c, (double)t / 2), now, bytes_sent);
}

bool bk_conc_tick(bk_conc *c, double now, uint64_t in_flight) {
  if (!c->adaptive || !bk_conc_early(c))
    return false;
  unsigned int t = bk_conc_target(c);
  if (in_flight < t || !c->tick_open) {
    /* Starved (the input is the bound), or the first tick: (re)open. */
    c->tick_open = in_flight >= t;
    c->tick_t = now;
    c->tick_cpu = c->cpu_now();
    return false;
  }
  double el = now - c->tick_t;
  if (el < BK_CONC_TICK)
    return false;
  double cpu = c->cpu_now();
  double busy = (cpu - c->tick_cpu) / (el * c->cores);
  c->tick_t = now;
  c->tick_cpu = cpu;
  if (t >= c->max || busy >= 0.5)
    return false;
  double f = busy > 0.25 ? 0.5 / busy : 2.0;
  if (f < 1.25)
    f = 1.25;
  return bk_conc_set(c, bk_clamp(c, (double)t * f + 0.5), now,
                     c->bytes_mark);
}
