/*
** timerheap.h — a binary min-heap of deadlines, with O(log n) removal.
**
** The runtime keeps every task deadline (sleeps, wait timeouts) in one heap
** and arms a single uv_timer for the earliest one, instead of one uv_timer
** per sleeping task: no handle to close per sleep, no close callback to wait
** for, 16 bytes per waiting task instead of ~150. Nodes are embedded in their
** owner (intrusive) and know their own index, so cancelling is O(log n).
** Pure C, no libuv or Lua: unit-tested on its own.
*/
#ifndef ATO_TIMERHEAP_H
#define ATO_TIMERHEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct ato_timer {
  uint64_t when;      /* deadline, in the caller's clock (the runtime uses ns) */
  uint64_t seq;       /* insertion order: equal deadlines fire FIFO */
  size_t index;       /* position in the heap + 1; 0 when not in a heap */
} ato_timer;

typedef struct ato_timerheap {
  ato_timer **nodes;
  size_t count, cap;
  uint64_t next_seq;
} ato_timerheap;

void ato_timerheap_init(ato_timerheap *h);
void ato_timerheap_free(ato_timerheap *h);            /* frees the array, not the nodes */

/* Inserts t with deadline `when`; t must not be in a heap. 0, or -1 on ENOMEM. */
int ato_timerheap_push(ato_timerheap *h, ato_timer *t, uint64_t when);

/* Removes t if it is in the heap (idempotent). */
void ato_timerheap_remove(ato_timerheap *h, ato_timer *t);

/* Earliest node, or NULL when empty. */
ato_timer *ato_timerheap_peek(const ato_timerheap *h);

/* Removes and returns the earliest node if its deadline is <= now, else NULL. */
ato_timer *ato_timerheap_pop_due(ato_timerheap *h, uint64_t now);

static inline int ato_timer_active(const ato_timer *t) { return t->index != 0; }

#endif
